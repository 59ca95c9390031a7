"""Several markets in one cycle (``HEDGER_MARKETS``, ``hedger.cycle.multimarket``).

Settings parsing without a chain; the pure collateral allocation on hand-built
snapshots (examples and a property test); then on anvil: an ETH and a BTC
market (its own feed, an 8-decimal WBTC, skew scale 100,000 BTC) sharing the
reference deployment's USDC, hedged in one cycle, read in two HTTP requests
whatever the number of markets, and a wallet that funds only one market.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3

from hedger.core.model import INFINITE
from hedger.decide import policy
from hedger.config import LpPosition, Settings
from hedger.sim.deploy import MarketDeployment, MarketParams, deploy_contract, deploy_market
from hedger.core.errors import ConfigError
from hedger.state.journal import Journal
from hedger.cycle.multimarket import (CANONICAL_MULTICALL3, MultiKeeper, allocate_collateral, liquidation_distance,
                                market_settings)
from hedger.core.types import UNIT, DecisionKind, PolicyParams
from hedger.sim.localchain import dev_account
from tests.conftest import USDC, Hedge
from tests.rpcproxy import FaultProxy
from tests.snapshots import eth, make_snapshot, usd, usdc

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"   # anvil dev account 0
A1 = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
A2 = "0xe7f1725e7734ce288f8367e1bb143e90bb3f0512"
A3 = "0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0"
A4 = "0xcf7ed3acca5a467e9e704c703e8d87f634fb0fc9"
A5 = "0xdc64a140aa3e981100a9beca4e685f962f0cf6c9"
A6 = "0x5fc8d32690cc91d4c39d9d3abcbd16989f875707"
WBTC = 10**8
P = PolicyParams()


# --------------------------------------------------------------------------------------------
# settings
# --------------------------------------------------------------------------------------------

def entry(name: str, market: str, oracle: str = A2, spot: str = A3, **kw: Any) -> dict[str, Any]:
    return {"name": name, "market": market, "oracle": oracle, "spot_token": spot, **kw}


def load(markets: Any, **env: str) -> Settings:
    base = {"HEDGER_PRIVATE_KEY": KEY, "HEDGER_COLLATERAL_TOKEN": A4,
            "HEDGER_MARKETS": markets if isinstance(markets, str) else json.dumps(markets), **env}
    return Settings.from_env(base, dotenv=False)


def test_markets_parsed_and_single_market_variables_not_required() -> None:
    s = load([entry("ETH", A1, extra_exposure="2.5"),
              entry("BTC", A5, oracle=A6, spot=A6, hedge_ratio="0.5", sequencer_feed=A2, second_oracle=A3)],
             HEDGER_SEQUENCER_FEED=A4, HEDGER_HEDGE_RATIO="0.9")
    assert s.market == "" and s.oracle == "" and s.spot_token == ""
    eth_m, btc_m = s.markets
    assert eth_m.name == "ETH" and eth_m.market == Web3.to_checksum_address(A1)
    assert eth_m.extra_exposure == 25 * UNIT // 10 and eth_m.hedge_ratio is None
    assert btc_m.hedge_ratio == UNIT // 2 and btc_m.second_oracle == Web3.to_checksum_address(A3)
    # the per-market settings a single-market keeper runs on
    es, bs = market_settings(s, eth_m), market_settings(s, btc_m)
    assert (es.market, es.oracle, es.spot_token) == (eth_m.market, eth_m.oracle, eth_m.spot_token)
    assert es.sequencer_feed == Web3.to_checksum_address(A4)           # the chain's, shared
    assert bs.sequencer_feed == Web3.to_checksum_address(A2)           # its own
    assert es.policy.hedge_ratio == 9 * UNIT // 10 and bs.policy.hedge_ratio == UNIT // 2
    assert es.extra_exposure == 25 * UNIT // 10 and bs.extra_exposure == 0
    assert es.collateral_token == bs.collateral_token == s.collateral_token and es.markets == ()


def test_an_entrys_lp_positions_reach_its_keeper() -> None:
    s = load([entry("ETH", A1, lp_positions=f"{A5}:7, {A5}:9"), entry("BTC", A6, oracle=A6, spot=A6)])
    eth_m, btc_m = s.markets
    want = (LpPosition(Web3.to_checksum_address(A5), 7), LpPosition(Web3.to_checksum_address(A5), 9))
    assert eth_m.lp_positions == want and btc_m.lp_positions == ()
    assert market_settings(s, eth_m).lp_positions == want and market_settings(s, btc_m).lp_positions == ()
    assert s.lp_positions == ()


@pytest.mark.parametrize("var, value, key", [
    ("HEDGER_MARKET", A5, "market"), ("HEDGER_ORACLE", A5, "oracle"), ("HEDGER_SPOT_TOKEN", A5, "spot_token"),
    ("HEDGER_SECOND_ORACLE", A5, "second_oracle"), ("HEDGER_EXTRA_EXPOSURE", "3", "extra_exposure"),
    ("HEDGER_LP_POSITIONS", f"{A5}:7", "lp_positions")])
def test_a_single_market_variable_beside_markets_is_refused_not_dropped(var: str, value: str, key: str) -> None:
    """An .env kept from a single-market set-up: its exposure (extra, LP) or second feed would
    silently go unused once HEDGER_MARKETS is added; the refusal says where it belongs."""
    with pytest.raises(ConfigError) as info:
        load([entry("ETH", A1)], **{var: value})
    err = info.value
    assert err.variable == var and "HEDGER_MARKETS" in err.problem and f'"{key}"' in err.fix
    load([entry("ETH", A1)], **{var: " "})          # set but empty: nothing is dropped


def test_a_single_market_left_out_of_the_markets_is_refused_by_name() -> None:
    """Moving to HEDGER_MARKETS with HEDGER_MARKET still set to a market not in the list (its short still
    open) silently stopped hedging it: no top-up ever again. Refused now, naming it and the fix."""
    with pytest.raises(ConfigError) as info:
        load([entry("ETH", A1)], HEDGER_MARKET=A5)
    err = info.value
    assert err.variable == "HEDGER_MARKET" and Web3.to_checksum_address(A5) in err.problem
    assert "not one of its entries" in err.problem and "add it to HEDGER_MARKETS" in err.fix
    with pytest.raises(ConfigError) as listed:                       # listed: merely redundant
        load([entry("ETH", A1)], HEDGER_MARKET=A1)
    assert "would not be used" in listed.value.problem


def test_json_numbers_are_exact() -> None:
    (m,) = load('[{"name":"ETH","market":"%s","oracle":"%s","spot_token":"%s","extra_exposure":0.1}]'
                % (A1, A2, A3)).markets
    assert m.extra_exposure == UNIT // 10


def test_without_markets_the_single_market_variables_stay_required() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"HEDGER_PRIVATE_KEY": KEY, "HEDGER_COLLATERAL_TOKEN": A4}, dotenv=False)
    assert info.value.variable == "HEDGER_MARKET"


@pytest.mark.parametrize("markets, expect", [
    ("ETH,BTC", "not valid JSON"),
    ('{"name": "ETH"}', "not a non-empty JSON list"),
    ("[]", "not a non-empty JSON list"),
    ('["ETH"]', "entry 0 is not a JSON object"),
    ([entry("ETH", A1), {"market": A5, "oracle": A2, "spot_token": A3}], "entry 1 has no \"name\""),
    ([entry("ETH", A1), {"name": "BTC", "oracle": A2, "spot_token": A3}], "entry 1 ('BTC') market: is not set"),
    ([entry("ETH", A1, oracle="0x1234")], "entry 0 ('ETH') oracle: '0x1234' is not an address"),
    ([entry("ETH", A1, spot=42)], "entry 0 ('ETH') spot_token: is not a string"),
    ([entry("ETH", A1), entry("eth", A5)], "entry 1 ('eth') repeats the name of entry 0"),
    ([entry("ETH", A1), entry("BTC", A1)], "entry 1 ('BTC') market: "),
    ([entry("ETH", A1, orcale=A2)], "entry 0 has unknown key(s) 'orcale'"),
    ([entry("ETH", A1, extra_exposure="lots")], "entry 0 ('ETH') extra_exposure: 'lots' is not a number"),
    ([entry("ETH", A1, extra_exposure=True)], "entry 0 ('ETH') extra_exposure: is not a number"),
    ([entry("ETH", A1, hedge_ratio="3")], "entry 0 ('ETH') hedge_ratio: '3' is too large"),
    ([entry("ETH", A1, lp_positions="0x12:1")], "entry 0 ('ETH') lp_positions: '0x12' is not an address"),
    ([entry("ETH", A1, lp_positions=[f"{A5}:1"])], "entry 0 ('ETH') lp_positions: is not a string"),
    ([entry("ETH", A1, lp_positions=f"{A5}:7"), entry("BTC", A6, lp_positions=f"{A6}:1,{A5}:7")],
     "entry 1 ('BTC') lp_positions: position 7 of"),
])
def test_bad_markets_name_the_variable_the_entry_and_the_fix(markets: Any, expect: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(markets)
    err = info.value
    assert err.variable == "HEDGER_MARKETS" and str(err).startswith("HEDGER_MARKETS:")
    assert expect in err.problem, err.problem
    assert err.fix.strip() and f"Fix: {err.fix}" in str(err) and err.exit_code == 2


# --------------------------------------------------------------------------------------------
# the allocation, pure
# --------------------------------------------------------------------------------------------

def short(spot_eth: str, margin_usd: int, price: int = 3000, wallet: int = 0, **kw: Any) -> Any:
    """A -spot ETH short (hedged 1:1) with ``margin_usd`` of margin, priced at ``price``."""
    return make_snapshot(price=usd(price), spot=eth(spot_eth), size=-eth(spot_eth), margin=usd(margin_usd),
                         wallet=wallet, **kw)


def test_enough_collateral_changes_nothing() -> None:
    a = short("10", 9_000, wallet=usdc(100_000))       # 3.3x: wants a top-up to 2x
    b = short("5", 5_000, price=4000, wallet=usdc(100_000))   # 4x
    out = allocate_collateral([("A", a, P), ("B", b, P)])
    assert [x.decision for x in out] == [policy.decide(a, P), policy.decide(b, P)]
    assert all(not x.redecided and x.note is None for x in out)
    assert [x.allocated for x in out] == [x.wanted for x in out] and all(x.allocated > 0 for x in out)


def test_short_wallet_funds_the_market_nearest_liquidation_first() -> None:
    wallet = usdc(12_000)
    # far: 10 ETH short at 3.3x (liquidation ~29% away); near: 10 ETH short at 8.6x (~11% away)
    far = short("10", 9_000, wallet=wallet)
    near = short("10", 3_500, wallet=wallet)
    assert liquidation_distance(near, policy.decide(near, P)) < liquidation_distance(far, policy.decide(far, P))
    first = [policy.decide(far, P), policy.decide(near, P)]
    assert first[0].margin_delta + first[1].margin_delta > wallet      # both want a top-up, together too much
    out = allocate_collateral([("far", far, P), ("near", near, P)])    # the far one is listed first
    f, n = out
    assert (n.rank, f.rank) == (0, 1)
    assert n.allocated == n.wanted == first[1].margin_delta and not n.redecided
    assert n.decision == first[1] and n.decision.code == "top_up"
    # the far one gets what is left and is decided again with it: deposit all of it, reduce the short
    assert f.redecided and f.allocated == wallet - n.allocated
    assert f.snapshot.account.collateral_wallet == wallet - n.allocated
    assert f.decision == policy.decide(replace(far, account=replace(far.account, collateral_wallet=f.allocated)), P)
    assert f.decision.margin_delta == f.allocated and f.decision.size_delta > 0     # buys back part of the short
    assert f.decision.leverage_after <= P.max_leverage
    assert "rank 2 of 2" in f.note and "rank 1 of 2" in n.note
    # the order the markets are given in does not matter
    again = allocate_collateral([("near", near, P), ("far", far, P)])
    assert [(x.name, x.allocated, x.decision) for x in again] == [(x.name, x.allocated, x.decision) for x in (n, f)]


def test_a_new_short_waits_behind_a_position_at_risk() -> None:
    wallet = usdc(10_000)
    new = make_snapshot(spot=eth(10), wallet=wallet)           # wants ~15,000 to open at 2x
    at_risk = short("10", 3_500, wallet=wallet)
    opened, risky = allocate_collateral([("new", new, P), ("risky", at_risk, P)])
    assert liquidation_distance(new, opened.decision) == INFINITE
    assert risky.rank == 0 and risky.allocated == risky.wanted
    assert opened.redecided and opened.allocated == wallet - risky.allocated
    assert opened.decision.code in ("collateral_limited", "collateral_short")


def test_refused_market_takes_nothing() -> None:
    wallet = usdc(5_000)
    stale = short("10", 3_500, wallet=wallet, updated_at=1_700_000_000 - 7200)   # oracle two hours old
    ok = short("10", 3_500, wallet=wallet)
    r, o = allocate_collateral([("stale", stale, P), ("ok", ok, P)])
    assert r.decision.kind is DecisionKind.REFUSE and r.allocated == 0
    assert o.rank == 0 and o.allocated == wallet


def test_daily_notional_is_shared() -> None:
    from hedger.core.types import DailyBudget
    budget = DailyBudget(notional_left=usd(40_000), gas_left=None)
    a = replace(make_snapshot(spot=eth(10), wallet=usdc(100_000)), daily=budget)
    b = replace(a, market=replace(a.market, address="0x" + "44" * 20))
    x, y = allocate_collateral([("A", a, P), ("B", b, P)])
    assert x.decision.size_delta == -eth(10)                  # $30,000 fits the $40,000 left today
    assert y.redecided and y.decision.code == "daily_limit" and y.decision.size_delta == 0


# property: never more than the wallet, never negative, nearest first ------------------------

@st.composite
def market_states(draw: Any) -> tuple[int, int, int, bool]:
    spot = draw(st.integers(1, 50))                            # whole ETH
    price = draw(st.integers(1_000, 6_000))
    lev_tenths = draw(st.integers(15, 120))                    # current leverage 1.5x .. 12x
    has_position = draw(st.booleans())
    return spot, price, lev_tenths, has_position


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states=st.lists(market_states(), min_size=1, max_size=5), wallet_usd=st.integers(0, 200_000))
def test_allocation_properties(states: list[tuple[int, int, int, bool]], wallet_usd: int) -> None:
    wallet = usdc(wallet_usd)
    markets = []
    for i, (spot, price, lev_tenths, has_position) in enumerate(states):
        size = -eth(spot) if has_position else 0
        margin = usd(spot * price * 10 // lev_tenths) if has_position else 0
        s = make_snapshot(price=usd(price), spot=eth(spot), size=size, margin=margin, wallet=wallet)
        s = replace(s, market=replace(s.market, address=f"0x{i + 1:040x}"))
        markets.append((f"m{i}", s, P))
    first = [policy.decide(s, p) for _, s, p in markets]
    out = allocate_collateral(markets)
    assert [a.name for a in out] == [m[0] for m in markets]
    assert all(a.allocated >= 0 for a in out)
    assert sum(a.allocated for a in out) <= wallet
    for a in out:
        # a decision deposits exactly its allocation, never more
        assert max(0, a.decision.margin_delta) == a.allocated
        assert a.snapshot.account.collateral_wallet >= a.allocated
    # the market nearest liquidation among those that want collateral is served first, in full
    wanting = [i for i, d in enumerate(first) if d.margin_delta > 0]
    if wanting:
        nearest = min(wanting, key=lambda i: (liquidation_distance(markets[i][1], first[i]), i))
        assert out[nearest].allocated == min(first[nearest].margin_delta, wallet)
        assert all(out[nearest].rank < out[i].rank for i in wanting if i != nearest)
    if sum(max(0, d.margin_delta) for d in first) <= wallet:
        assert [a.decision for a in out] == first


# --------------------------------------------------------------------------------------------
# on anvil
# --------------------------------------------------------------------------------------------

@dataclass
class Multi:
    hedge: Hedge
    btc: MarketDeployment
    env: dict[str, str]

    @property
    def chain(self) -> Any:
        return self.hedge.chain

    def markets(self, *extra: dict[str, Any]) -> list[dict[str, Any]]:
        d = self.chain.d
        return [{"name": "ETH", "market": d.market, "oracle": d.oracle, "spot_token": d.spot},
                {"name": "BTC", "market": self.btc.market, "oracle": self.btc.oracle, "spot_token": self.btc.spot},
                *extra]

    def keeper(self, markets: list[dict[str, Any]] | None = None, **overrides: str) -> MultiKeeper:
        env = {**self.env, "HEDGER_MARKETS": json.dumps(markets or self.markets()), **overrides}
        env = {k: v for k, v in env.items() if v != ""}
        return MultiKeeper.from_settings(Settings.from_env(env, dotenv=False))

    def position(self, market: str) -> tuple[int, int]:
        m = self.chain.contract("PerpMarket", market).functions
        return m.positions(self.hedge.address).call()[1], m.remainingMargin(self.hedge.address).call()[0]

    def leverage(self, market: str) -> float:
        size, margin = self.position(market)
        price = self.chain.contract("PerpMarket", market).functions.assetPrice().call()[0]
        return abs(size) * price / 10**18 / margin

    def set_btc_price(self, usd_price: int) -> None:
        self.chain.admin("PriceFeed", self.btc.oracle, "setAnswer", usd_price * 10**8)

    def wallet(self) -> int:
        return self.chain.usdc.functions.balanceOf(self.hedge.address).call()


@pytest.fixture()
def multi(hedge: Hedge) -> Multi:
    """The hedged account holds 10 WETH (ETH at 3,000) and 0.5 WBTC (BTC at 60,000), and 50,000 USDC."""
    c = hedge.chain
    btc = deploy_market(c.deployer, c.d.collateral, name="Wrapped Bitcoin", symbol="WBTC", decimals=8,
                        initial_price=60_000 * 10**8, params=MarketParams(skewScale=100_000 * UNIT),
                        seed_liquidity=10_000_000 * USDC)
    c.admin("ReferenceToken", btc.spot, "mint", hedge.address, WBTC // 2)
    env = {k: v for k, v in hedge.env.items() if k not in ("HEDGER_MARKET", "HEDGER_ORACLE", "HEDGER_SPOT_TOKEN")}
    return Multi(hedge=hedge, btc=btc, env=env)


def test_deploy_market_shares_the_collateral(multi: Multi) -> None:
    c, btc = multi.chain, multi.btc
    m = c.contract("PerpMarket", btc.market).functions
    assert m.collateral().call() == c.d.collateral and m.feed().call() == btc.oracle
    assert m.params().call()[1] == 100_000 * UNIT                           # skew scale
    assert c.contract("ReferenceToken", btc.spot).functions.decimals().call() == 8 == btc.spot_decimals
    assert m.assetPrice().call()[0] == 60_000 * UNIT


def test_one_cycle_opens_both_shorts(multi: Multi) -> None:
    mk = multi.keeper()
    res = mk.cycle()
    assert res.exit_code == 0 and res.outcome == "acted", {n: (r.decision.reason, r.error)
                                                           for n, r in res.results.items()}
    eth_size, _ = multi.position(multi.chain.d.market)
    btc_size, _ = multi.position(multi.btc.market)
    assert abs(-eth_size / 1e18 - 10) <= 0.05 * 10
    assert abs(-btc_size / 1e18 - 0.5) <= 0.05 * 0.5
    for market in (multi.chain.d.market, multi.btc.market):
        assert 1.5 <= multi.leverage(market) <= 3.0
    # collateral for a new short is not risk-reducing (issue 9): each market's deposit is mined
    # before its own short, and any risk-reducing step before every other step
    sent = [t for r in res.results.values() for t in r.sent]
    assert [t.call.function for t in res.results["BTC"].sent] == ["approve", "transferMargin", "modifyPosition"]
    for r in res.results.values():
        dep = next(t for t in r.sent if t.call.function == "transferMargin")
        short = next(t for t in r.sent if t.call.function == "modifyPosition")
        assert not dep.call.risk_reducing and dep.block_number < short.block_number
    reducing = [t.block_number for t in sent if t.call.risk_reducing]
    assert all(t.block_number > max(reducing, default=-1) for t in sent if not t.call.risk_reducing)
    # one journal row per market, as a single-market cycle writes it
    rows = Journal(multi.env["HEDGER_JOURNAL_PATH"]).cycles()
    assert {(r["market"], r["outcome"]) for r in rows} == {(multi.chain.d.market, "acted"),
                                                           (multi.btc.market, "acted")}
    # the next cycle holds on purpose in both
    again = multi.keeper().cycle()
    assert again.exit_code == 0 and {r.decision.code for r in again.results.values()} == {"within_band"}
    assert not any(r.sent for r in again.results.values())


def test_each_market_names_its_own_venue_settings(multi: Multi) -> None:
    """HEDGER_MARKETS entries may each name their protocol and order mode: here ETH trades directly
    and BTC through two-step orders, one account, one cycle (issue 10)."""
    d = multi.chain.d
    markets = [{"name": "ETH", "market": d.market, "oracle": d.oracle, "spot_token": d.spot,
                "protocol": "reference", "order_mode": "direct"},
               {"name": "BTC", "market": multi.btc.market, "oracle": multi.btc.oracle, "spot_token": multi.btc.spot,
                "order_mode": "delayed"}]
    mk = multi.keeper(markets)
    assert {n: (k.adapter.name, k.adapter.two_step) for n, k in mk.keepers.items()} == \
        {"ETH": ("reference", False), "BTC": ("reference", True)}
    res = mk.cycle()
    assert res.exit_code == 0, {n: (r.decision.reason, r.error) for n, r in res.results.items()}
    assert "modifyPosition" in [t.call.function for t in res.results["ETH"].sent]
    btc_calls = [t.call.function for t in res.results["BTC"].sent]
    assert "submitDelayedOrder" in btc_calls and "modifyPosition" not in btc_calls
    assert multi.position(d.market)[0] < 0                        # ETH: hedged at once
    assert multi.position(multi.btc.market)[0] == 0               # BTC: an order waiting for its keeper
    order = multi.chain.contract("PerpMarket", multi.btc.market).functions.delayedOrders(multi.hedge.address).call()
    assert order[0] < 0


def test_a_market_entry_with_an_unknown_protocol_is_refused_by_name() -> None:
    with pytest.raises(ConfigError) as err:
        load([entry("ETH", A1), entry("BTC", A4, protocol="perps-v9")])
    assert "HEDGER_MARKETS" in str(err.value) and "'BTC'" in str(err.value) and "protocol" in str(err.value)
    assert "reference" in str(err.value)


def test_status_and_run_once_from_the_command_line(multi: Multi, tmp_path: Path) -> None:
    from tests.test_cli import hedger
    env = {**multi.env, "HEDGER_MARKETS": json.dumps(multi.markets())}
    p = hedger(["status", "--json"], env, tmp_path)
    assert p.returncode == 0, p.stderr
    eth_block, btc_block = json.loads(p.stdout)["markets"]
    assert (eth_block["name"], btc_block["name"]) == ("ETH", "BTC")
    assert eth_block["spot_exposure"] == 10.0 and btc_block["spot_exposure"] == 0.5
    assert btc_block["oracle_price"] == 60_000.0 and btc_block["decision"]["kind"] == "rebalance"
    p = hedger(["run-once"], env, tmp_path)
    assert p.returncode == 0, p.stderr
    assert "== ETH (" in p.stdout and "== BTC (" in p.stdout and p.stdout.count("outcome: acted") == 2
    table = hedger(["status"], env, tmp_path)
    assert table.returncode == 0 and "== BTC ==" in table.stdout and table.stdout.count("liquidation price") == 2


def test_pause_resume_report_and_unwind_per_market(multi: Multi, tmp_path: Path) -> None:
    from tests.test_cli import hedger
    env = {**multi.env, "HEDGER_MARKETS": json.dumps(multi.markets())}
    eth_market, btc_market = multi.chain.d.market, multi.btc.market
    # a name that is not configured is refused, naming the option and the names there are
    p = hedger(["pause", "--market", "SOL"], env, tmp_path)
    assert p.returncode == 2 and "--market" in p.stderr and "ETH, BTC" in p.stderr
    p = hedger(["pause", "--market", "BTC", "--reason", "BTC audit"], env, tmp_path)
    assert p.returncode == 0 and "(BTC)" in p.stdout and "(ETH)" not in p.stdout
    out = json.loads(hedger(["run-once", "--json"], env, tmp_path).stdout)
    by_name = {m["name"]: m for m in out["markets"]}
    assert (by_name["ETH"]["outcome"], by_name["BTC"]["outcome"]) == ("acted", "paused")
    assert multi.position(btc_market)[0] == 0 and multi.position(eth_market)[0] < 0
    assert hedger(["resume", "--market", "BTC"], env, tmp_path).returncode == 0
    p = hedger(["run-once"], env, tmp_path)
    assert p.returncode == 0, p.stderr
    assert multi.position(btc_market)[0] < 0
    # the report: a table per market; --csv writes one file per market
    p = hedger(["report", "--csv", str(tmp_path / "r.csv")], env, tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"== ETH ({eth_market}) ==" in p.stdout and f"== BTC ({btc_market}) ==" in p.stdout
    assert (tmp_path / "r-ETH.csv").read_text().count("\n") >= 2 and (tmp_path / "r-BTC.csv").exists()
    # BTC's gas is priced at the ETH market's reading of the same cycle (3,000 USD/ETH here)
    btc_total = list(csv.DictReader((tmp_path / "r-BTC.csv").open()))[-1]
    assert btc_total["day"] == "total" and float(btc_total["gas_eth"]) > 0
    assert float(btc_total["gas_usd"]) == pytest.approx(float(btc_total["gas_eth"]) * 3000, rel=1e-4)
    assert "gas is shown in ETH only" not in p.stdout
    # unwind one market: the other keeps its hedge
    p = hedger(["unwind", "--market", "ETH"], env, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert multi.position(eth_market)[0] == 0
    assert multi.position(eth_market)[1] < 10**18                  # margin withdrawn (under 1 USD left)
    assert multi.position(btc_market)[0] < 0
    # pause with no --market pauses every market
    p = hedger(["pause"], env, tmp_path)
    assert p.returncode == 0 and "(ETH)" in p.stdout and "(BTC)" in p.stdout
    # --market without HEDGER_MARKETS says it has nothing to name
    single = {**multi.hedge.env}
    p = hedger(["pause", "--market", "ETH"], single, tmp_path)
    assert p.returncode == 2 and "--market" in p.stderr and "HEDGER_MARKETS" in p.stderr


def test_watch_hedges_every_market_with_labelled_metrics_and_per_market_alerts(multi: Multi,
                                                                               tmp_path: Path) -> None:
    from hedger.sim.localchain import free_port
    from tests.test_metrics_alerts import Hook, cycle_until_alert, scrape, start_watch, stop_watch, val
    port, h = free_port(), Hook()
    env = {**os.environ, **multi.env, "HEDGER_MARKETS": json.dumps(multi.markets()),
           "HEDGER_ALERT_WEBHOOK": h.url, "HEDGER_ALERT_LIQ_DISTANCE": "0.4"}
    p = start_watch(env, tmp_path, port)
    seen: list[dict[str, Any]] = []

    def next_cycle() -> dict[str, dict[str, Any]]:
        """The two lines (ETH, BTC) of the next cycle, by market name."""
        got: dict[str, dict[str, Any]] = {}
        while len(got) < 2:
            line = p.stdout.readline()              # type: ignore[union-attr]
            assert line, "the keeper exited early"
            if line.startswith("{"):
                seen.append(json.loads(line))
                if seen[-1]["event"] == "cycle":
                    got[seen[-1]["market"]] = seen[-1]
        assert len({c["n"] for c in got.values()}) == 1
        return got

    try:
        first = next_cycle()
        assert {n: c["outcome"] for n, c in first.items()} == {"ETH": "acted", "BTC": "acted"}
        assert {c["outcome"] for c in next_cycle().values()} == {"held"}
        assert h.received == []
        multi.set_btc_price(72_000)                 # BTC +20%: its short at 4x, liquidation ~24% away
        cycle_until_alert(h, next_cycle)
        next_cycle()
        samples, _ = scrape(port)
    finally:
        out, err = stop_watch(p, h)
    assert p.returncode == 0, err
    events = seen + [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    start = events[0]
    assert start["event"] == "start" and start["markets"] == {"ETH": multi.chain.d.market, "BTC": multi.btc.market}
    assert events[-1]["event"] == "stopped"
    assert not any(e["event"] == "observer_error" for e in events)
    # the alert names the BTC market; ETH, 49% from liquidation, is quiet
    assert [(a["kind"], a["market"], a["details"]["market_name"]) for a in h.payloads] == [
        ("liquidation_distance", multi.btc.market, "BTC")]
    assert h.payloads[0]["details"]["price"] == 72_000.0
    # each market has its own labelled series; the gas balance is the account's
    assert val(samples, "hedger_oracle_price_usd", market="ETH") == 3000.0
    assert val(samples, "hedger_oracle_price_usd", market="BTC") == 72_000.0
    assert val(samples, "hedger_position_size", market="BTC") == pytest.approx(-0.5, rel=0.05)
    assert 1.5 <= val(samples, "hedger_leverage", market="BTC") <= 2.5         # topped up after the alert
    assert val(samples, "hedger_cycles_total", market="ETH", outcome="acted") == 1
    assert val(samples, "hedger_actions_total", market="BTC", function="transferMargin") >= 2
    assert val(samples, "hedger_gas_balance_eth") > 1


def ten_markets(multi: Multi) -> list[dict[str, Any]]:
    c = multi.chain
    more = [deploy_contract(c.deployer, "PerpMarket", c.d.collateral, c.d.oracle, MarketParams().as_tuple())
            for _ in range(8)]
    return multi.markets(*({"name": f"ETH{i}", "market": m, "oracle": c.d.oracle, "spot_token": c.d.spot}
                           for i, m in enumerate(more)))


@pytest.mark.parametrize("mode", ["batch", "multicall", "canonical"])
def test_reads_take_two_http_requests_whatever_the_number_of_markets(multi: Multi, mode: str) -> None:
    c = multi.chain
    overrides: dict[str, str] = {}
    if mode == "multicall":
        overrides["HEDGER_MULTICALL"] = c.d.multicall
    if mode == "canonical":      # the canonical Multicall3 present, as on a real chain: used without being set
        code = c.w3.eth.get_code(c.d.multicall)
        c.w3.provider.make_request("anvil_setCode", [CANONICAL_MULTICALL3, Web3.to_hex(code)])
    markets = {2: multi.markets(), 10: ten_markets(multi)}
    with FaultProxy(c.anvil.url) as proxy:
        for n, ms in markets.items():
            # no signer: the whole cycle is a dry run, so its reads are all it asks of the node
            mk = multi.keeper(ms, HEDGER_RPC_URL=proxy.url(), HEDGER_PRIVATE_KEY="", HEDGER_ACCOUNT=multi.hedge.address,
                              **overrides)
            assert len(mk.keepers) == n
            proxy.reset_counts()
            snaps = mk.read()
            assert proxy.http_requests == 2, (n, mode, proxy.calls)
            assert len({s.chain.block_number for s in snaps.values()}) == 1          # one pinned block
            assert {s.market.address for s in snaps.values()} == {Web3.to_checksum_address(m["market"]) for m in ms}
            if mode == "batch":
                assert proxy.calls["eth_call"] > n                 # one batched eth_call per distinct view
            else:
                assert proxy.calls["eth_call"] == 1                # everything in one aggregate3
            proxy.reset_counts()
            res = mk.cycle()
            assert proxy.http_requests == 2, (n, mode, proxy.calls)
            # (with ten markets on one 50,000 USDC wallet, the last ones get nothing and hold)
            assert res.exit_code == 0 and res.results["ETH"].outcome == "dry_run"
            assert {r.outcome for r in res.results.values()} <= {"dry_run", "held"}
    assert snaps["BTC"].exposure.total == UNIT // 2 and snaps["BTC"].exposure.spot_decimals == 8
    assert snaps["ETH"].exposure.total == 10 * UNIT


def test_short_collateral_goes_to_the_market_nearest_liquidation(multi: Multi) -> None:
    assert multi.keeper().cycle().exit_code == 0                # both shorts open at ~2x
    c = multi.chain
    # keep 3,000 USDC in the wallet, send the rest away
    c.call_as(1, "ReferenceToken", c.d.collateral, "transfer", c.d.deployer, multi.wallet() - 3_000 * USDC)
    # ETH +40% (its short is ~7% from liquidation), BTC +15% (~27%): both want a top-up, far above 3,000
    c.set_price(4200)
    multi.set_btc_price(69_000)
    # BTC listed first: were the wallet handed out in the configured order, BTC would get it
    markets = list(reversed(multi.markets()))
    mk = multi.keeper(markets, HEDGER_COOLDOWN="0")
    snaps = mk.read()
    first = {n: policy.decide(s, mk.keepers[n].params(s)) for n, s in snaps.items()}
    assert first["ETH"].margin_delta > 0 and first["BTC"].margin_delta > 0
    assert liquidation_distance(snaps["ETH"], first["ETH"]) < liquidation_distance(snaps["BTC"], first["BTC"])
    res = mk.cycle()
    assert res.exit_code == 0, {n: (r.decision.reason, r.error) for n, r in res.results.items()}
    eth_r, btc_r = res.results["ETH"], res.results["BTC"]
    assert res.allocations["ETH"].rank == 0 and res.allocations["ETH"].allocated == 3_000 * USDC
    # ETH: the whole wallet as a top-up, and the short reduced to what it can carry
    deposits = [t for t in eth_r.sent if t.call.function == "transferMargin"]
    assert [t.call.args[0] for t in deposits] == [3_000 * USDC]
    assert eth_r.decision.code == "deleverage"
    # BTC: nothing left for it, decided again with an empty wallet: it buys back part of its short
    assert res.allocations["BTC"].redecided and res.allocations["BTC"].allocated == 0
    assert btc_r.decision.code == "deleverage" and btc_r.decision.margin_delta == 0
    assert [t.call.function for t in btc_r.sent] == ["modifyPosition"]
    assert any("nearest liquidation" in n for n in btc_r.notes)
    assert multi.wallet() == 0
    for market in (c.d.market, multi.btc.market):
        assert multi.leverage(market) <= 3.0
    # the ETH top-up went first
    eth_deposit = deposits[0].block_number
    assert all(t.block_number > eth_deposit for t in btc_r.sent)


def test_a_market_hedge_ratio_keeps_the_funding_range_as_configured() -> None:
    from hedger.config import MarketConfig
    from hedger.cycle.multimarket import market_settings
    m = MarketConfig(name="BTC", market="0x" + "11" * 20, oracle="0x" + "22" * 20, spot_token="0x" + "33" * 20,
                     hedge_ratio=12 * UNIT // 10)
    off = market_settings(Settings(policy=PolicyParams()), m).policy
    assert off.hedge_ratio == off.funding_min_ratio == 12 * UNIT // 10          # still off
    on = market_settings(Settings(policy=PolicyParams(funding_min_ratio=8 * UNIT // 10)), m).policy
    assert on.funding_min_ratio == 96 * UNIT // 100                               # 0.8 of the market's 1.2


def test_a_market_liquidated_by_a_third_party_is_noted_alerted_and_rehedged(multi: Multi) -> None:
    """A keeper of several markets asks each venue's liquidation records in its stage-1 batch, as a
    single market's keeper does, and sees a position smaller than it left it by no order of ours
    (the `adl` alert's source): BTC's short, liquidated past its liquidation price, is noted with who
    liquidated it and re-hedged; ETH's market says nothing."""
    assert multi.keeper().cycle().exit_code == 0
    btc_size, _ = multi.position(multi.btc.market)
    bm = multi.chain.contract("PerpMarket", multi.btc.market).functions
    liq = bm.liquidationPrice(multi.hedge.address).call()[0]
    price = liq // UNIT + 100                                       # the short (about 2x) past its liquidation
    multi.set_btc_price(price)
    assert bm.canLiquidate(multi.hedge.address).call()
    multi.chain.call_as(5, "PerpMarket", multi.btc.market, "liquidate", multi.hedge.address)
    assert multi.position(multi.btc.market)[0] == 0
    res = multi.keeper().cycle()
    btc, eth = res.results["BTC"], res.results["ETH"]
    (note,) = [n for n in btc.notes if n.startswith("liquidated:")]
    assert dev_account(5).address in note and f"{price:,}.00" in note, note
    assert btc.reduced_by_venue == -btc_size == UNIT // 2              # the whole 0.5 BTC short
    assert any("by no order of ours" in n for n in btc.notes)
    assert btc.outcome == "acted" and btc.decision.size_delta < 0, btc.decision.reason
    assert eth.reduced_by_venue == 0 and not any(n.startswith("liquidated:") for n in eth.notes)
