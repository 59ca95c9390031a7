"""The seam between the policy and a venue: the policy driven by a fake market model.

The fake venue has none of the reference market's formulas (a fixed 0.1% spread and 0.1% fee,
liquidation at 5% maintenance margin, a flat carry, withdrawals that keep a reserve), and the
snapshots it answers for carry absurd reference-market parameters (skew scale 1, 100% fees, a
market price of 1 USD): a decision that used any PerpsV2 figure from ``ReferenceMarketState`` would show
it. Every figure the policy announces is the fake model's own. Pure, no chain.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from hedger.core.model import INFINITE, MarketModel, Minimums, PostTrade, leverage, model_for, register_model
from hedger.core.types import DecisionKind, OrderKind, OrderState, PolicyParams, RefusalKind, Snapshot
from hedger.decide import planner, policy
from tests.snapshots import NOW, eth, frac, make_snapshot, pending_order, usd, usdc

P = PolicyParams()
SPREAD = frac("0.001")
FEE = frac("0.001")
MAINTENANCE = frac("0.05")
RESERVE = usd(1_000)
SHORTS_PAY_A_DAY = frac("0.001")      # 36.5% a year


@dataclass(frozen=True)
class FakeModel(MarketModel):
    size: int
    margin: int
    price: int
    collateral_decimals: int = 6
    trades_are_orders: bool = False
    collateral_moves: str = "direct"   # type: ignore[assignment]
    can_hold_long: bool = False
    collateral_orders_in_flight: int = 0
    collateral_price: int = 10**18     # type: ignore[assignment]
    maintenance: int = MAINTENANCE

    @property
    def market_price(self) -> int:
        return self.price

    def fill(self, size_delta: int) -> tuple[int, int]:
        if size_delta == 0:
            return self.price, 0
        fill = self.price + (1 if size_delta > 0 else -1) * self.price * SPREAD // 10**18
        return fill, abs(size_delta) * fill // 10**18 * FEE // 10**18

    def after(self, size_delta: int, collateral_delta_native: int) -> PostTrade:
        fill, fee = self.fill(size_delta)
        size = self.size + size_delta
        margin = (self.margin + self.collateral_usd(collateral_delta_native) - fee
                  - abs(size_delta) * abs(fill - self.price) // 10**18)
        notional = abs(size) * self.price // 10**18
        dist = INFINITE if notional == 0 else (margin - notional * self.maintenance // 10**18) * 10**18 // notional
        liq = 0 if size == 0 else self.price - dist * self.price // 10**18 * (1 if size > 0 else -1)
        return PostTrade(size=size, margin=margin, notional=notional, leverage=leverage(size, self.price, margin),
                         liq_distance=dist, fill_price=fill, fee=fee, liquidation_price=liq)

    def max_withdrawal(self) -> int:
        free = self.margin - abs(self.size) * self.price // 10**18 // 10 - RESERVE
        return self.collateral_native(max(free, 0))

    def minimums(self) -> Minimums:
        return Minimums(collateral=usd(100))

    def carry_rate_per_day(self, size: int) -> int:
        return SHORTS_PAY_A_DAY if size < 0 else -SHORTS_PAY_A_DAY

    def margin_for_leverage(self, notional: int, leverage: int) -> int:
        return notional * 10**18 // leverage

    def distance_at_leverage(self, size: int, leverage: int) -> int:
        notional = abs(size) * self.price // 10**18
        if notional == 0 or leverage <= 0:
            return INFINITE
        margin = -(-notional * 10**18 // leverage)
        return -(-(margin - notional * self.maintenance // 10**18) * 10**18 // notional)

    def margin_for_distance(self, size: int, distance: int) -> int:
        notional = abs(size) * self.price // 10**18
        return 0 if notional == 0 else -(-distance * notional // 10**18) + notional * self.maintenance // 10**18

    def opening_allowed(self, pt: PostTrade) -> bool:
        return pt.margin >= pt.notional // 10 and pt.liq_distance > 0


@register_model("fake")
def _fake(s: Snapshot) -> FakeModel:
    return FakeModel(size=s.account.size, margin=s.account.margin, price=s.oracle.price_e18)


@register_model("fake-orders")
def _fake_orders(s: Snapshot) -> FakeModel:
    return replace(_fake(s), trades_are_orders=True, collateral_moves="order")


@register_model("fake-gmx")
def _fake_gmx(s: Snapshot) -> FakeModel:
    """Orders for trades and collateral, one collateral-only order allowed beside a size order."""
    return replace(_fake_orders(s), collateral_orders_in_flight=1)


HIGH_MAINTENANCE = frac("0.30")     # a venue liquidating early: 30% of the notional


@register_model("fake-early")
def _fake_early(s: Snapshot) -> FakeModel:
    """Liquidates at 30% maintenance margin: leverage and distance diverge (3x is 3.3% from
    liquidation, the 2x target 20%, inside the 25% buffer)."""
    return replace(_fake(s), maintenance=HIGH_MAINTENANCE)


@register_model("fake-eth")
def _fake_eth(s: Snapshot) -> FakeModel:
    """Collateral is a token of 18 decimals worth ``Snapshot.collateral_price`` (2,000 USD below)."""
    return replace(_fake(s), collateral_decimals=18, collateral_price=s.collateral_price)


ABSURD = dict(skew_scale=1, taker_fee=10**18, maker_fee=10**18, max_leverage=10**18, min_initial_margin=10**30,
              liquidation_buffer_ratio=10**18, order_keeper_fee=usd(500), funding_rate=10**18)


def fake(venue: str = "fake", **kw: object) -> Snapshot:
    return replace(make_snapshot(market=ABSURD, market_price=usd(1), **kw), venue=venue)  # type: ignore[arg-type]


def test_opening_a_hedge_uses_the_models_figures() -> None:
    s = fake(spot=eth(10), wallet=usdc(50_000))
    mdl = model_for(s)
    assert isinstance(mdl, FakeModel)
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.REBALANCE and d.code == "rebalance"
    assert d.size_delta == -eth(10)
    assert (d.expected_fill_price, d.expected_fee) == mdl.fill(-eth(10)) == (usd(2997), usd("29.97"))
    # collateral to the target leverage (2x) of the notional after the trade, net of fill costs
    pt = mdl.after(-eth(10), 0)
    want = usd(15_000) - pt.margin
    assert d.margin_delta == -(-want // 10**12)
    done = mdl.after(-eth(10), d.margin_delta)
    assert (d.leverage_after, d.liquidation_distance_after) == (done.leverage, done.liq_distance)
    assert d.leverage_after == 2 * 10**18
    # and the planner bounds the trade from the model's fill
    plan = planner.plan(d, P, 0)
    trade = [a for a in plan.actions if a.amount == -eth(10)][0]
    assert trade.price_bound == planner.price_bound(usd(2997), -eth(10), P.max_slippage)


def test_a_flat_account_withdraws_what_the_model_allows() -> None:
    d = policy.decide(fake(margin=usd(5_000)), P)
    assert d.code == "withdraw_excess" and d.margin_delta == -usdc(4_000)     # the fake keeps 1,000 USD


def test_carry_comes_from_the_model() -> None:
    """The fake's shorts pay 36.5% a year (the absurd ReferenceMarketState says shorts earn): the funding-aware
    range applies."""
    p = replace(P, funding_min_ratio=frac("0.8"))
    s = fake(spot=eth(10), size=-eth(9), margin=usd(13_500), wallet=usdc(10_000))
    d = policy.decide(s, p)
    assert d.code == "funding_range" and "shorts pay 36.5%/yr" in d.reason
    assert policy.decide(s, P).code == "rebalance"       # no range configured: back to the full hedge


def test_a_venue_that_cannot_hold_a_long_refuses_a_long_target_by_name() -> None:
    """Issue 9: a venue that cannot hold a long refuses such a target by name, sending nothing
    (not even the close of a short left from before the exposure turned negative)."""
    for size in (0, -eth(3)):
        s = fake(extra=-eth(10), size=size, margin=usd(13_500), wallet=usdc(50_000))
        d = policy.decide(s, P)
        assert d.kind is DecisionKind.REFUSE and d.refusal is RefusalKind.ACCOUNT and d.code == "long_not_offered"
        assert not d.acts and d.size_delta == 0 and d.margin_delta == 0
        assert repr(s.venue) in d.reason and "long" in d.reason


def test_orders_one_at_a_time_and_collateral_by_order() -> None:
    # a flip on a venue whose trades are orders: the close first, the other side next cycle
    d = policy.decide(fake("fake-orders", spot=eth(10), size=eth(2), margin=usd(3_000), wallet=usdc(50_000)), P)
    assert d.size_delta == -eth(2) and "one order at a time" in d.reason
    # a pending order and a position that needs collateral: collateral moves by order, so it waits
    s = fake("fake-orders", spot=eth(10), size=-eth(10), margin=usd(6_000), wallet=usdc(50_000),
             pending=pending_order(-eth(1), NOW - 5))
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.HOLD and d.code == "order_pending" and "collateral moves by order" in d.reason
    # the same on a venue that moves collateral directly: topped up
    assert policy.decide(replace(s, venue="fake"), P).code == "top_up_pending"


def test_collateral_orders_count_against_their_own_allowance() -> None:
    """Issue 10: a pending size order counts against ``orders_in_flight``, a collateral-only order
    against ``collateral_orders_in_flight``: a top-up by order waits only when that one is full."""
    needy = dict(spot=eth(10), size=-eth(10), margin=usd(6_000), wallet=usdc(50_000))
    size_order = pending_order(-eth(1), NOW - 5, key="0x" + "ab" * 32)
    # one collateral order allowed beside the size order: the top-up goes
    d = policy.decide(fake("fake-gmx", **needy, pending=size_order), P)
    assert d.code == "top_up_pending" and d.margin_delta > 0 and d.size_delta == 0
    # a collateral order already pending fills the allowance: the top-up waits, naming the count
    deposit = pending_order(0, NOW - 5, key="0x" + "cd" * 32, collateral_delta=usdc(1_000))
    assert deposit.kind is OrderKind.COLLATERAL_IN and not deposit.kind.changes_size
    d = policy.decide(fake("fake-gmx", **needy, orders=(size_order, deposit)), P)
    assert d.kind is DecisionKind.HOLD and d.code == "order_pending" and "1 pending, 1 allowed" in d.reason
    # a collateral order alone at the allowance: nothing more is planned until the venue settles it
    calm = dict(spot=eth(10), margin=usd(20_000), wallet=usdc(50_000))
    d = policy.decide(fake("fake-gmx", **calm, orders=(deposit,)), P)
    assert d.kind is DecisionKind.HOLD and d.code == "order_pending" and not d.acts
    # the same order cancelled or executed by the venue is not in flight: the hedge is planned
    for state in (OrderState.CANCELLED, OrderState.EXECUTED):
        d = policy.decide(fake("fake-gmx", **calm, orders=(replace(deposit, state=state),)), P)
        assert d.kind is DecisionKind.REBALANCE and d.size_delta == -eth(10), (state, d.reason)


def test_an_unknown_venue_is_named() -> None:
    with pytest.raises(LookupError, match="Snapshot.venue 'nowhere'"):
        policy.decide(replace(make_snapshot(), venue="nowhere"), P)


# --------------------------------------------------------------------------------------------
# Collateral decided by distance to liquidation (issue 10), valued through the model
# --------------------------------------------------------------------------------------------

def test_a_venue_liquidating_early_is_topped_up_by_distance_out_of_the_buffer() -> None:
    """At 30% maintenance, 2.5x (under the 3x maximum) is 10% from liquidation, inside the 25%
    buffer. The old rule topped up to the 2x target, which is still only 20% away (inside the
    buffer again, every cycle); by distance the target is lifted above the buffer's floor."""
    s = fake("fake-early", spot=eth(10), size=-eth(10), margin=usd(12_000), wallet=usdc(50_000))
    mdl = model_for(s)
    b = policy.band(mdl, P, -eth(10))
    assert b.floor == P.liquidation_buffer and b.target > b.floor
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.REBALANCE and d.code == "top_up"
    done = mdl.after(0, d.margin_delta)
    assert done.liq_distance >= b.target > P.liquidation_buffer
    assert d.liquidation_distance_after == done.liq_distance
    assert "liquidation within 10.0% of the price (floor 25.0%)" in d.reason
    # the new margin is not withdrawn again next cycle (it sits under the lifted ceiling)
    topped = fake("fake-early", spot=eth(10), size=-eth(10), margin=done.margin, wallet=usdc(1_000))
    assert policy.decide(topped, P).code == "within_band"


def test_a_venue_liquidating_early_keeps_collateral_the_leverage_rule_would_withdraw() -> None:
    """1.43x is below the 1.5x minimum leverage, but 17.6% more price move from liquidation than
    the buffer: withdrawing to 2x would land inside the buffer (20% away). By distance: hold."""
    s = fake("fake-early", spot=eth(10), size=-eth(10), margin=usd(21_000), wallet=0)
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.HOLD and d.margin_delta == 0, d.reason


def test_leverage_band_translated_through_the_model() -> None:
    """Without the buffer in the way, the band's edges are the model's distances at the leverages
    and the reasons keep speaking leverage, with the distance beside it."""
    p = replace(P, liquidation_buffer=0)
    s = fake(spot=eth(10), size=-eth(10), margin=usd(9_000), wallet=usdc(50_000))   # 3.33x
    mdl = model_for(s)
    b = policy.band(mdl, p, -eth(10))
    assert (b.hard, b.target, b.ceiling) == tuple(mdl.distance_at_leverage(-eth(10), x) for x in
                                                  (p.max_leverage, p.target_leverage, p.min_leverage))
    d = policy.decide(s, p)
    assert d.code == "top_up" and "leverage 3.33x above 3.00x (liquidation 25.0% from the price" in d.reason
    assert "toward 2.00x (liquidation 45.0% away)" in d.reason


def test_distance_settings_set_the_band_directly() -> None:
    p = replace(P, liquidation_buffer=0, min_liq_distance=frac("0.40"), target_liq_distance=frac("0.5"),
                max_liq_distance=frac("0.7"))
    s = fake(spot=eth(10), size=-eth(10), margin=usd(13_000), wallet=usdc(50_000))   # 2.3x, 38.3% away
    d = policy.decide(s, p)
    assert d.code == "top_up" and "liquidation within 38.3% of the price (floor 40.0%)" in d.reason
    assert model_for(s).after(0, d.margin_delta).liq_distance == frac("0.5")
    assert policy.decide(fake(spot=eth(10), size=-eth(10), margin=usd(20_000)), p).code == "within_band"
    w = policy.decide(fake(spot=eth(10), size=-eth(10), margin=usd(25_000)), p)       # 78.3% away
    assert w.code == "withdraw_excess" and w.margin_delta == -usdc(8_500)            # to 55% margin (50% + 5%)


def test_collateral_worth_2000_usd_a_token_is_deposited_in_its_own_units() -> None:
    """An 18-decimal collateral worth 2,000 USD: the 15,000 USD a 10 ETH short needs at 2x is 7.5
    tokens (and a little for the fill's costs), not 15,000 tokens' worth of wei."""
    wallet = 10 * 10**18
    s = replace(fake("fake-eth", spot=eth(10), wallet=wallet), collateral_price=usd(2_000))
    mdl = model_for(s)
    d = policy.decide(s, P)
    assert d.code == "rebalance" and d.size_delta == -eth(10)
    want = usd(15_000) - mdl.after(-eth(10), 0).margin
    assert d.margin_delta == mdl.collateral_native(want, round_up=True)
    assert 7 * 10**18 < d.margin_delta < 8 * 10**18 < wallet
    assert mdl.after(-eth(10), d.margin_delta).leverage == 2 * 10**18
    assert "top up 7.52 collateral ($15,059.97) toward 2.00x" in d.reason


def test_collateral_worth_2000_usd_a_token_is_withdrawn_by_its_value() -> None:
    """Two tokens free (4,000 USD) are worth more than the 10 USD minimum move."""
    s = replace(fake("fake-eth", margin=usd(5_000)), collateral_price=usd(2_000))
    d = policy.decide(s, P)
    assert d.code == "withdraw_excess" and d.margin_delta == -2 * 10**18
    assert "($4,000.00)" in d.reason
