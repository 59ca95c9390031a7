"""Collateral as a token with a value (issue 10): a collateral that is not a USD stablecoin is
valued by ``HEDGER_COLLATERAL_FEED`` (read with the cycle's other feeds, guarded as the oracle
is), deposits approve the adapter's spender and the allowance is read against it, and
`hedger check` prints the collateral's token, decimals, price source and spender."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from web3 import Web3

from hedger.chain.reader import ChainReader
from hedger.config import Settings
from hedger.core.errors import ConfigError
from hedger.core.types import UNIT, Action, ActionKind, DecisionKind, FeedRound, RefusalKind
from hedger.decide import guards, policy
from hedger.protocols.reference.adapter import ReferenceMarket
from hedger.sim.deploy import deploy_contract, transact
from tests.conftest import PRICE_DECIMALS, USDC, Hedge
from tests.rpcproxy import FaultProxy
from tests.snapshots import NOW, eth, make_snapshot, usdc
from tests.test_check import check

ROUTER = Web3.to_checksum_address("0x" + "ab" * 20)
KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"   # anvil dev account 0


def collateral_feed(hedge: Hedge, usd: str) -> str:
    feed = deploy_contract(hedge.chain.deployer, "PriceFeed", PRICE_DECIMALS, "WETH / USD", 1)
    transact(hedge.chain.deployer, "PriceFeed", feed, "setAnswer", int(float(usd) * 10**PRICE_DECIMALS))
    return feed


# ----------------------------------------------------------------------------- the price

def test_without_a_feed_the_collateral_is_a_usd_stablecoin(hedge: Hedge) -> None:
    snap = hedge.keeper().read()
    assert snap.collateral_price == UNIT and snap.collateral_feed is None


def test_a_collateral_feed_is_read_with_the_cycle_into_the_snapshot(hedge: Hedge) -> None:
    feed = collateral_feed(hedge, "0.9995")
    with FaultProxy(hedge.chain.anvil.url) as proxy:
        k = hedge.keeper(HEDGER_COLLATERAL_FEED=feed, HEDGER_RPC_URL=proxy.url())
        proxy.reset_counts()
        snap = k.read()
        assert proxy.http_requests == 2, proxy.calls          # read with the other feeds, no extra round trip
    assert snap.collateral_price == 9995 * 10**14              # E18 USD per whole token
    assert snap.collateral_feed is not None and snap.collateral_feed.address == feed
    assert snap.collateral_feed.description == "WETH / USD"
    assert policy.decide(snap, k.params(snap)).kind is not DecisionKind.REFUSE


def test_every_market_of_a_multi_market_cycle_values_the_shared_collateral(hedge: Hedge) -> None:
    import json

    from hedger.cycle.multimarket import MultiKeeper
    d = hedge.chain.d
    feed = collateral_feed(hedge, "0.98")
    from hedger.sim.deploy import MarketParams
    other = deploy_contract(hedge.chain.deployer, "PerpMarket", d.collateral, d.oracle, MarketParams().as_tuple())
    entries = [{"name": "ETH", "market": d.market, "oracle": d.oracle, "spot_token": d.spot},
               {"name": "ETH2", "market": other, "oracle": d.oracle, "spot_token": d.spot}]
    env = {k: v for k, v in hedge.env.items() if k not in ("HEDGER_MARKET", "HEDGER_ORACLE", "HEDGER_SPOT_TOKEN")}
    with FaultProxy(hedge.chain.anvil.url) as proxy:
        mk = MultiKeeper.from_settings(Settings.from_env(
            {**env, "HEDGER_RPC_URL": proxy.url(), "HEDGER_MARKETS": json.dumps(entries),
             "HEDGER_COLLATERAL_FEED": feed}, dotenv=False))
        proxy.reset_counts()
        snaps = mk.read()
        assert proxy.http_requests == 2, proxy.calls
    assert [s.collateral_price for s in snaps.values()] == [98 * UNIT // 100] * 2
    assert all(s.collateral_feed is not None and s.collateral_feed.address == feed for s in snaps.values())


def test_a_stale_collateral_feed_refuses_the_cycle_and_sends_nothing(hedge: Hedge) -> None:
    feed = collateral_feed(hedge, "3000")
    hedge.chain.advance(3700)                              # past HEDGER_ORACLE_MAX_AGE (3600 s)
    hedge.chain.set_price(3000)                            # the asset's own feed stays fresh
    nonce = hedge.nonce()
    res = hedge.cycle(HEDGER_COLLATERAL_FEED=feed)
    assert res.outcome == "refused" and res.exit_code == 3, (res.outcome, res.error)
    assert res.decision.code == "collateral_stale"
    assert "HEDGER_COLLATERAL_FEED" in res.error and f"feed {feed} is stale" in res.error
    assert hedge.nonce() == nonce and hedge.position() == (0, 0)
    # the same account without the collateral feed hedges
    assert hedge.cycle().outcome == "acted"


def _round(**kw: int) -> FeedRound:
    base = dict(address="0x" + "44" * 20, decimals=8, round_id=7, answer=3000 * 10**8, started_at=NOW - 60,
                updated_at=NOW - 60)
    return FeedRound(**{**base, **kw})


@pytest.mark.parametrize("bad, code", [
    (dict(answer=0), "collateral_nonpositive"), (dict(round_id=0), "collateral_zero_round"),
    (dict(updated_at=0), "collateral_no_timestamp"), (dict(updated_at=NOW + 5), "collateral_future"),
    (dict(updated_at=NOW - 3601), "collateral_stale")])
def test_the_collateral_feed_is_guarded_as_the_oracle(bad: dict[str, int], code: str) -> None:
    s = make_snapshot(spot=eth(10), wallet=usdc(50_000))
    ok = replace(s, collateral_feed=_round(), collateral_price=3000 * UNIT)
    assert guards.check(ok, policy.PolicyParams()) is None
    d = policy.decide(replace(ok, collateral_feed=_round(**bad)), policy.PolicyParams())
    assert d.kind is DecisionKind.REFUSE and d.refusal is RefusalKind.ORACLE and d.code == code
    assert "HEDGER_COLLATERAL_FEED" in d.reason


# ----------------------------------------------------------------------------- the setting

def _settings(**env: str) -> Settings:
    return Settings.from_env({"HEDGER_PRIVATE_KEY": KEY, "HEDGER_MARKET": "0x" + "11" * 20,
                              "HEDGER_ORACLE": "0x" + "22" * 20, "HEDGER_SPOT_TOKEN": "0x" + "33" * 20,
                              "HEDGER_COLLATERAL_TOKEN": "0x" + "55" * 20, **env}, dotenv=False)


def test_the_collateral_feed_setting_names_the_variable_and_the_fix() -> None:
    assert _settings().collateral_feed is None
    assert _settings(HEDGER_COLLATERAL_FEED="0x" + "44" * 20).collateral_feed == Web3.to_checksum_address(
        "0x" + "44" * 20)
    with pytest.raises(ConfigError) as err:
        _settings(HEDGER_COLLATERAL_FEED="0x1234")
    assert err.value.variable == "HEDGER_COLLATERAL_FEED" and "unset it for a USD stablecoin" in str(err.value)
    with pytest.raises(ConfigError) as err:
        _settings(HEDGER_COLLATERAL_FEED="0x" + "55" * 20)
    assert err.value.variable == "HEDGER_COLLATERAL_FEED" and "is the collateral token itself" in str(err.value)


# ----------------------------------------------------------------------------- the spender

class RoutedMarket(ReferenceMarket):
    """The reference market as a venue whose router pulls the collateral (as GMX v2's does)."""

    @property
    def spender(self) -> str:
        return ROUTER


def test_deposits_approve_the_adapters_spender_and_the_allowance_is_read_against_it(hedge: Hedge) -> None:
    d, w3 = hedge.chain.d, hedge.chain.w3
    ref, routed = (cls(w3, d.market, d.collateral, two_step=False) for cls in (ReferenceMarket, RoutedMarket))
    assert ref.spender == d.market and routed.spender == ROUTER
    assert ref.collateral_token(6, "USDC").spender == d.market
    token = routed.collateral_token(6, "USDC", "0x" + "44" * 20)
    assert (token.spender, token.decimals, token.symbol) == (ROUTER, 6, "USDC")
    assert token.price_source == f"price feed {Web3.to_checksum_address('0x' + '44' * 20)}"

    def read(adapter: ReferenceMarket):  # noqa: ANN202
        r = ChainReader(w3)
        head = r.head()
        return adapter.parse(r.call_many(adapter.read_specs(hedge.address), head.block_number), hedge.address, head)

    market, acct = read(routed)
    calls = routed.build_calls((Action(ActionKind.DEPOSIT, 1_000 * USDC, risk_reducing=True),), acct, market)
    approve = next(c for c in calls if c.function == "approve")
    assert approve.to == d.collateral and approve.args == (ROUTER, 1_000 * USDC)
    hedge.chain.sender(1).send(approve.to, approve.data)              # the router may now pull 1,000 USDC
    assert read(routed)[1].collateral_allowance == 1_000 * USDC     # read against the spender
    assert read(ref)[1].collateral_allowance == 0                    # the market itself was not approved
    # a leftover allowance is cleared first, at the spender too
    _, acct = read(routed)
    calls = routed.build_calls((Action(ActionKind.DEPOSIT, 2_000 * USDC),), acct, market)
    assert [c.args for c in calls if c.function == "approve"] == [(ROUTER, 0), (ROUTER, 2_000 * USDC)]


# ----------------------------------------------------------------------------- hedger check

def collateral_line(out: str) -> str:
    """The "collateral" check's line (not "collateral token", "collateral feed" or "collateral price")."""
    return next(x for x in out.splitlines() if re.match(r"(OK|FAIL)\s+collateral\s+token 0x", x))


def test_check_prints_the_collateral_line(hedge: Hedge, tmp_path: Path) -> None:
    d = hedge.chain.d
    p = check(hedge.env, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    line = collateral_line(p.stdout)
    assert line.startswith("OK") and f"token {d.collateral} USDC, 6 decimals" in line
    assert "declared USD stablecoin (1.0)" in line and f"approved to {d.market} (the market)" in line

    feed = collateral_feed(hedge, "1.0002")
    p = check({**hedge.env, "HEDGER_COLLATERAL_FEED": feed}, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert any(x.startswith("OK") and "collateral feed" in x and "WETH / USD" in x for x in lines)
    line = collateral_line(p.stdout)
    assert f"priced by price feed {feed}" in line
    assert any(x.startswith("OK") and "collateral price" in x and "$1.00" in x for x in lines)

    # a token where the collateral feed should be: named, with the fix, exit 5
    p = check({**hedge.env, "HEDGER_COLLATERAL_FEED": d.spot}, tmp_path)
    assert p.returncode == 5 and "FAIL collateral feed" in p.stdout
    assert "HEDGER_COLLATERAL_FEED must be an AggregatorV3 feed" in p.stdout
