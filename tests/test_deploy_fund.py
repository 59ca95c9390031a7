"""`hedger deploy --fund ADDRESS`: test WETH and USDC for a local walkthrough, minted only on the
reference tokens the deploy owns."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hedger.chain.abi import PROJECT_ROOT
from hedger.sim.localchain import dev_account
from tests.conftest import USDC, WETH, Chain, Hedge
from tests.test_cli import BIN, hedger, run


def balance(hedge: Hedge, token: str, who: str) -> int:
    return hedge.chain.contract("ReferenceToken", token).functions.balanceOf(who).call()


def test_deploy_fund_mints_test_tokens(hedge: Hedge, tmp_path: Path) -> None:
    to = dev_account(7).address
    env = {"HEDGER_RPC_URL": hedge.chain.anvil.url, "HEDGER_PRIVATE_KEY": dev_account(5).key.hex()}
    p = hedger(["deploy", "--fund", to.lower()], env, tmp_path)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout.strip().splitlines()[-1])
    assert balance(hedge, d["spot"], to) == 10 * WETH
    assert balance(hedge, d["collateral"], to) == 50_000 * USDC
    assert f"funded {to.lower()}: 10 WETH, 50,000 USDC" in p.stderr


def test_deploy_fund_refuses_a_token_it_does_not_own(hedge: Hedge, tmp_path: Path) -> None:
    signer = dev_account(5)
    env = {"HEDGER_RPC_URL": hedge.chain.anvil.url, "HEDGER_PRIVATE_KEY": signer.key.hex()}
    nonce = hedge.chain.w3.eth.get_transaction_count(signer.address)
    foreign = hedge.chain.d.collateral                     # minted by dev account 0, not by the signer
    p = hedger(["deploy", "--collateral", foreign, "--fund", dev_account(7).address], env, tmp_path)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "--fund" in p.stderr and f"collateral {foreign}" in p.stderr and dev_account(0).address in p.stderr
    assert hedge.chain.w3.eth.get_transaction_count(signer.address) == nonce       # nothing deployed
    p = hedger(["deploy", "--fund", "0x1234"], env, tmp_path)
    assert p.returncode == 2 and "--fund" in p.stderr


def test_deploy_at_an_unreachable_rpc_names_the_variable(tmp_path: Path) -> None:
    """`hedger deploy` at a node that is not there said `unexpected ConnectionError` (exit 1, the
    "internal error" code); now exit 8 naming HEDGER_RPC_URL and the fix, the URL's key still hidden."""
    import socket
    with socket.socket() as s:                      # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"HEDGER_RPC_URL": f"http://127.0.0.1:{port}/v3/SECRETKEY", "HEDGER_PRIVATE_KEY": dev_account(5).key.hex()}
    p = hedger(["deploy"], env, tmp_path)
    assert p.returncode == 8, p.stderr
    assert "unexpected" not in p.stderr and "HEDGER_RPC_URL" in p.stderr and "Fix:" in p.stderr
    assert "SECRETKEY" not in p.stdout + p.stderr and dev_account(5).key.hex()[2:] not in p.stdout + p.stderr


# where the README's walkthrough says each setting comes from: the deploy's JSON line
FROM_JSON = {"HEDGER_MARKET": "market", "HEDGER_ORACLE": "oracle", "HEDGER_SPOT_TOKEN": "spot",
             "HEDGER_COLLATERAL_TOKEN": "collateral", "HEDGER_SEQUENCER_FEED": "sequencer_feed",
             "HEDGER_MULTICALL": "multicall"}


def _walkthrough_settings() -> tuple[list[str], dict[str, str]]:
    """The settings the README's local walkthrough tells a new user to put in .env after `cp
    .env.example .env`: the names it takes from the JSON line, and those it gives a value."""
    from tests.test_readme import README
    text = README.read_text()
    block = text[text.index("A local walkthrough"):]
    block = block[block.index("cp .env.example .env"):]
    block = block[:block.index("hedger check")]
    return re.findall(r"HEDGER_[A-Z_]+", block), dict(re.findall(r"(HEDGER_[A-Z_]+)=(\w+)", block))


def test_the_readme_walkthrough_hedges(chain: Chain, tmp_path: Path) -> None:
    """The README's local walkthrough, followed as written: `hedger deploy --fund` dev account 1,
    `.env` from `.env.example` with the settings the README names, then check, status and run-once.
    It ended with run-once refusing (exit 4): the deployed sequencer feed has been "up" only since
    the deploy, inside the default grace period of an hour, and the walkthrough did not say so."""
    hedged = dev_account(1)
    env = {"HEDGER_RPC_URL": chain.anvil.url, "HEDGER_PRIVATE_KEY": dev_account(5).key.hex()}
    p = hedger(["deploy", "--fund", hedged.address], env, tmp_path)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout.strip().splitlines()[-1])
    names, given = _walkthrough_settings()
    settings = {"HEDGER_PRIVATE_KEY": hedged.key.hex(), **given}
    for name in names:
        if name not in settings:
            assert name in FROM_JSON, f"the walkthrough names {name}: say here where it comes from"
            settings[name] = d[FROM_JSON[name]]
    lines = [ln for ln in (PROJECT_ROOT / ".env.example").read_text().splitlines()
             if ln.split("=", 1)[0] not in settings]
    folder = tmp_path / "op"
    folder.mkdir()
    (folder / ".env").write_text("\n".join(lines + [f"{k}={v}" for k, v in settings.items()]) + "\n")
    env = {"HEDGER_RPC_URL": chain.anvil.url, "XDG_STATE_HOME": str(tmp_path / "state")}   # anvil's port
    for cmd in (["check"], ["status"]):
        p = run([str(BIN / "hedger"), *cmd], env, cwd=folder)
        assert p.returncode == 0, p.stdout + p.stderr
    p = run([str(BIN / "hedger"), "run-once"], env, cwd=folder)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "outcome: acted" in p.stdout


def test_deploy_checks_a_reused_oracle_and_collateral_before_deploying_anything(hedge: Hedge, tmp_path: Path) -> None:
    """`--oracle` at an address without a feed deployed the two tokens, then failed `SimulationFailed:
    simulation reverted` naming no flag; a token given as `--oracle` made a market priced by a token's
    answers; `--collateral 0x1234` died `unexpected ValueError` (exit 1). Each is now refused by its flag
    (exit 2) before the first transaction."""
    signer = dev_account(5)
    env = {"HEDGER_RPC_URL": hedge.chain.anvil.url, "HEDGER_PRIVATE_KEY": signer.key.hex()}
    nonce = hedge.chain.w3.eth.get_transaction_count(signer.address)
    eoa, token = dev_account(8).address, hedge.chain.d.collateral
    for args, flag in ((["--oracle", eoa], "--oracle"), (["--oracle", token], "--oracle"),
                       (["--collateral", "0x1234"], "--collateral"), (["--collateral", eoa], "--collateral"),
                       (["--collateral", hedge.chain.d.oracle], "--collateral")):
        p = hedger(["deploy", *args], env, tmp_path)
        assert p.returncode == 2, (args, p.stdout + p.stderr)
        assert f"{flag}:" in p.stderr and "Fix:" in p.stderr and "unexpected" not in p.stderr, (args, p.stderr)
    assert hedge.chain.w3.eth.get_transaction_count(signer.address) == nonce       # nothing deployed
