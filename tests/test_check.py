"""`hedger check`, and run-once refusing on a configuration that fails it."""

from __future__ import annotations

from pathlib import Path

from eth_account import Account

from hedger.sim.localchain import dev_account
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


def test_a_passing_check_has_no_fix_line(hedge: Hedge, tmp_path: Path) -> None:
    """A fix line belongs only under a failing check (it was printed under a passing gas check)."""
    p = check(hedge.env, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "fix:" not in p.stdout.lower()


def _feed(hedge: Hedge, usd: float) -> str:
    from hedger.sim.deploy import deploy_contract, transact
    feed = deploy_contract(hedge.chain.deployer, "PriceFeed", 8, "ETH / USD (other)", 1)
    transact(hedge.chain.deployer, "PriceFeed", feed, "setAnswer", int(usd * 10**8))
    return feed


def test_check_fails_an_oracle_that_disagrees_with_the_markets_price(hedge: Hedge, tmp_path: Path) -> None:
    """The market liquidates at its own price: a configured feed 25% away from it is the wrong feed."""
    env = {**hedge.env, "HEDGER_ORACLE": _feed(hedge, 3750)}           # the market reads 3,000
    p = check(env, tmp_path)
    assert p.returncode == 5, p.stdout + p.stderr
    line = next(x for x in p.stdout.splitlines() if "oracle vs market price" in x)
    assert line.startswith("FAIL") and "20.00% apart" in line and "HEDGER_MAX_PRICE_DIVERGENCE" in line
    assert "fix: check that HEDGER_ORACLE" in p.stdout
    # within the limit it passes; a looser limit is the operator's choice
    p = check({**env, "HEDGER_MAX_PRICE_DIVERGENCE": "0.25"}, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert any(x.startswith("OK") and "oracle vs market price" in x for x in p.stdout.splitlines())


def test_check_compares_the_second_source_when_set(hedge: Hedge, tmp_path: Path) -> None:
    env = {**hedge.env, "HEDGER_SECOND_ORACLE": _feed(hedge, 2700)}      # 10% below the oracle
    p = check(env, tmp_path)
    assert p.returncode == 5, p.stdout + p.stderr
    assert any(x.startswith("FAIL") and "oracle vs second price" in x and "10.00% apart" in x
               for x in p.stdout.splitlines()), p.stdout
    assert any(x.startswith("OK") and "oracle vs market price" in x for x in p.stdout.splitlines())
    p = check({**env, "HEDGER_SECOND_ORACLE": _feed(hedge, 3010)}, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr


def test_a_wrong_multicall_fails_its_own_check_line(hedge: Hedge, tmp_path: Path) -> None:
    """HEDGER_MULTICALL at a contract that is no Multicall3 (here the feed) was blamed on the collateral
    token ("fix: check HEDGER_COLLATERAL_TOKEN"); at an address without code `status` died with
    `unexpected InsufficientDataBytes` (exit 1). Both now name HEDGER_MULTICALL and its fix."""
    p = check({**hedge.env, "HEDGER_MULTICALL": hedge.chain.d.oracle}, tmp_path)
    assert p.returncode == 5
    assert "FAIL multicall" in p.stdout and "HEDGER_MULTICALL" in p.stdout
    assert "check HEDGER_COLLATERAL_TOKEN" not in p.stdout
    eoa = "0x000000000000000000000000000000000000dEaD"
    p = run([str(BIN / "hedger"), "status"], {**hedge.env, "HEDGER_MULTICALL": eoa}, cwd=tmp_path)
    assert p.returncode == 5, p.stderr
    assert "unexpected" not in p.stderr and "HEDGER_MULTICALL" in p.stderr and "Fix:" in p.stderr


def test_the_collateral_token_as_the_spot_token_is_refused(hedge: Hedge, tmp_path: Path) -> None:
    """HEDGER_SPOT_TOKEN set to the collateral (the deploy's JSON line has "collateral" and "spot" side by
    side) passed the check, and run-once hedged the wallet's 50,000 USDC as 50,000 units of the asset: it
    deposited it all and opened a 49 ETH short. Now the check fails by name and run-once sends nothing."""
    env = {**hedge.env, "HEDGER_SPOT_TOKEN": hedge.chain.d.collateral}
    p = check(env, tmp_path)
    assert p.returncode == 5, p.stdout + p.stderr
    assert "FAIL spot vs collateral" in p.stdout and "HEDGER_SPOT_TOKEN" in p.stdout
    p = run([str(BIN / "hedger"), "run-once"], env, cwd=tmp_path)
    assert p.returncode == 5 and "HEDGER_SPOT_TOKEN" in p.stderr, p.stdout + p.stderr
    assert hedge.position() == (0, 0)


def test_a_market_of_another_venue_fails_the_market_line_not_unexpectedly(hedge: Hedge, tmp_path: Path) -> None:
    """HEDGER_PROTOCOL=aave-v3 with HEDGER_MARKET at something that is no PoolAddressesProvider (here the
    reference market): the market line failed, then the collateral line asked that address for Aave's
    pool and the command died `unexpected ContractLogicError` (exit 1). Now exit 5, the market named."""
    env = {**hedge.env, "HEDGER_PROTOCOL": "aave-v3", "HEDGER_SWAP_ROUTER": dev_account(8).address,
           "HEDGER_HOLDER": dev_account(9).address}
    for cmd in ("check", "run-once"):
        p = run([str(BIN / "hedger"), cmd], env, cwd=tmp_path)
        assert p.returncode == 5, (cmd, p.stdout + p.stderr)
        assert "unexpected" not in p.stderr and "HEDGER_MARKET" in p.stdout + p.stderr
    assert hedge.position() == (0, 0)


def test_status_at_a_market_address_without_code_names_the_variable_and_the_fix(hedge: Hedge, tmp_path: Path) -> None:
    """`hedger status` (which runs no check) at a HEDGER_MARKET without code said "params() at 0x..
    returned nothing: no contract there, ..." naming neither the setting nor a fix, unlike a market
    that reverts; both now read "HEDGER_MARKET: ... Fix: check that HEDGER_MARKET is the right address"."""
    p = run([str(BIN / "hedger"), "status"], {**hedge.env, "HEDGER_MARKET": dev_account(8).address}, cwd=tmp_path)
    assert p.returncode == 5, p.stdout + p.stderr
    assert "HEDGER_MARKET:" in p.stderr and "Fix: check that HEDGER_MARKET" in p.stderr, p.stderr
