"""`hedger deploy --fund ADDRESS`: test WETH and USDC for a local walkthrough, minted only on the
reference tokens the deploy owns."""

from __future__ import annotations

import json
from pathlib import Path

from hedger.sim.localchain import dev_account
from tests.conftest import USDC, WETH, Hedge
from tests.test_cli import hedger


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
