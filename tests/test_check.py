"""`hedger check`, and run-once refusing on a configuration that fails it."""

from __future__ import annotations

from pathlib import Path

from eth_account import Account

from tests.conftest import Hedge
from tests.test_cli import BIN, run


def check(env: dict[str, str], tmp: Path):  # noqa: ANN201
    return run([str(BIN / "hedger"), "check"], env, cwd=tmp)


def test_check_passes_on_the_reference_deployment(hedge: Hedge, tmp_path: Path) -> None:
    p = check(hedge.env, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    for name in ("chain id", "price feed", "sequencer feed", "spot token", "collateral token", "market",
                 "signer gas"):
        assert any(line.startswith("OK") and name in line for line in p.stdout.splitlines()), name
    assert "FAIL" not in p.stdout


def test_check_names_what_is_wrong_and_the_fix(hedge: Hedge, tmp_path: Path) -> None:
    d = hedge.chain.d
    # a token where the feed should be, the spot token as collateral, and a signer without gas
    broke = Account.create()
    env = {**hedge.env, "HEDGER_ORACLE": d.spot, "HEDGER_COLLATERAL_TOKEN": d.spot,
           "HEDGER_PRIVATE_KEY": broke.key.hex(), "HEDGER_SEQUENCER_FEED": "0x000000000000000000000000000000000000dEaD"}
    p = check(env, tmp_path)
    assert p.returncode == 5
    out = p.stdout
    assert "FAIL price feed" in out and "HEDGER_ORACLE must be an AggregatorV3 proxy" in out
    assert "FAIL sequencer feed" in out and "no contract at 0x000000000000000000000000000000000000dEaD" in out
    assert "FAIL market" in out and f"(configured: {d.spot})" in out
    assert "FAIL signer gas" in out and f"send ETH to {broke.address}" in out
    assert broke.key.hex() not in out + p.stderr
    # run-once runs the same checks first and refuses, sending nothing
    p = run([str(BIN / "hedger"), "run-once"], env, cwd=tmp_path)
    assert p.returncode == 5 and "Fix:" in p.stderr
    assert hedge.position() == (0, 0)


def test_check_wrong_chain_id(hedge: Hedge, tmp_path: Path) -> None:
    p = check({**hedge.env, "HEDGER_CHAIN_ID": "10"}, tmp_path)
    assert p.returncode == 5 and "FAIL chain id" in p.stdout and "RPC reports 31337" in p.stdout
