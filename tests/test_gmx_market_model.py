"""GMX v2's market model (``GmxModel``) as the policy sees it: pure, no chain. Every figure is
checked against GMX's own rules as ``hedger/protocols/gmx_v2/model.py`` implements them (those
functions are tested against GMX's cases in tests/test_gmx_model.py and against the stand-in)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedger.core.model import INFINITE, model_for
from hedger.core.types import DecisionKind, Order, OrderKind, OrderState, PolicyParams
from hedger.decide import policy
from hedger.protocols.gmx_v2 import model as gm
from tests.snapshots import NOW, eth, make_snapshot, usd, usdc

F = 10**30
USD30 = 10**30
ETH_PX = 10**12          # GMX price unit: $1 per ETH (18 decimals)
USDC_PX = 10**24         # $1 per USDC unit (6 decimals)
MARKET = "0x" + "44" * 20


def impact() -> gm.ImpactParams:
    return gm.ImpactParams(factor_positive=5 * F // 10**11, factor_negative=F // 10**10, exponent_positive=2 * F,
                           exponent_negative=2 * F, max_factor_positive=5 * F // 1000,
                           max_factor_negative=5 * F // 1000, max_factor_for_liquidations=F // 100)


def state(*, price: int = usd(3000), position: gm.Position | None = None, long_oi: int = 0, short_oi: int = 0,
          **kw: object) -> gm.GmxMarketState:
    fields = dict(address=MARKET, price=price, price_invalid=False, collateral_decimals=6, two_step=True,
                  index_decimals=18, long_open_interest=long_oi, short_open_interest=short_oi,
                  impact_pool_amount=10 * 10**18, impact=impact(), position_fee_factor_improved=4 * F // 10_000,
                  position_fee_factor_not_improved=6 * F // 10_000, min_collateral_usd=F,
                  min_collateral_factor=5 * F // 1000, min_collateral_factor_for_liquidation=5 * F // 1000,
                  min_position_size_usd=0, borrowing_factor_per_second_longs=0,
                  borrowing_factor_per_second_shorts=0, longs_pay_shorts=False, funding_factor_per_second=0,
                  request_expiration_time=300, position=position)
    fields.update(kw)
    return gm.GmxMarketState(**fields)  # type: ignore[arg-type]


def snap(market: gm.GmxMarketState, **kw: object):  # type: ignore[no-untyped-def]
    s = make_snapshot(price=market.price, two_step=True, **kw)  # type: ignore[arg-type]
    return replace(s, market=market, venue="gmx-v2")


def mdl(market: gm.GmxMarketState) -> gm.GmxModel:
    m = model_for(snap(market))
    assert isinstance(m, gm.GmxModel)
    return m


def short(size_usd: int, collateral: int, price: int = 3000, pending: int = 0) -> gm.Position:
    return gm.Position(is_long=False, size_in_usd=size_usd * USD30, size_in_tokens=size_usd * 10**18 // price,
                       collateral_amount=collateral, pending_impact_amount=pending)


def test_model_is_registered_and_declares_orders() -> None:
    m = mdl(state())
    assert (m.collateral_moves, m.trades_are_orders, m.orders_in_flight, m.collateral_orders_in_flight,
            m.can_hold_long) == ("order", True, 1, 1, True)
    assert m.market_price == usd(3000) and m.collateral_decimals == 6


def test_opening_fill_is_gmx_increase_with_impact_and_position_fee() -> None:
    m = mdl(state(long_oi=2_000 * USD30))
    fill, fee = m.fill(-eth(2))
    inc = gm.increase_execution(6_000 * USD30, False, 3000 * ETH_PX, 3000 * ETH_PX, 2_000 * USD30, 0,
                                10 * 10**18, impact())
    assert not inc.balance_was_improved and inc.price_impact_usd < 0
    assert fill == inc.execution_price * 10**6 and fill < usd(3000)      # a short sells below the price
    assert fee == gm.position_fee_usd(6_000 * USD30, False, 4 * F // 10_000, 6 * F // 10_000) // 10**12
    assert fee == usd("3.6")


def test_after_an_opening_is_gmx_liquidation_rule() -> None:
    m = mdl(state())
    pt = m.after(-eth(2), usdc(1_000))
    assert pt.size == -eth(2) and pt.notional == usd(6_000)
    # the position as GMX would hold it: fee out of the collateral, impact pending
    inc = gm.increase_execution(6_000 * USD30, False, 3000 * ETH_PX, 3000 * ETH_PX, 0, 0, 10 * 10**18, impact())
    pos = gm.Position(is_long=False, size_in_usd=6_000 * USD30, size_in_tokens=inc.size_delta_in_tokens,
                      collateral_amount=usdc(1_000) - usdc("3.6"), pending_impact_amount=inc.price_impact_amount)
    lm = gm.LiquidationMarket(collateral_price_min=USDC_PX, long_open_interest=0, short_open_interest=6_000 * USD30,
                              impact=impact(), position_fee_factor_improved=4 * F // 10_000,
                              position_fee_factor_not_improved=6 * F // 10_000, min_collateral_usd=F,
                              min_collateral_factor=5 * F // 1000)
    check = gm.liquidation_check(pos, lm, 3000 * ETH_PX)
    assert pt.margin == check.remaining_collateral_usd // 10**12
    liq = gm.liquidation_price(pos, lm)
    assert liq is not None and pt.liquidation_price == liq * 10**6
    assert gm.is_liquidatable(pos, lm, liq) and not gm.is_liquidatable(pos, lm, liq - 1)
    assert pt.liq_distance == (liq - 3000 * ETH_PX) * 10**18 // (3000 * ETH_PX)
    assert 0.15 < pt.liq_distance / 1e18 < 0.17                # ~$994 of margin on $6,000
    assert m.opening_allowed(pt)
    assert not m.opening_allowed(m.after(-eth(1000), usdc(1_000)))   # 3000x


def test_pending_fees_are_settled_by_the_next_order() -> None:
    pos = short(6_000, usdc(1_000))
    plain = mdl(state(position=pos, short_oi=6_000 * USD30)).after(0, 0)
    owing = mdl(state(position=pos, short_oi=6_000 * USD30, pending_borrowing_usd=5 * USD30,
                      pending_funding_amount=usdc(2))).after(0, 0)
    assert plain.margin - owing.margin == usd(7)
    assert owing.liq_distance < plain.liq_distance


def test_a_position_that_has_paid_borrowing_before_is_read_with_its_pending_fee_settled() -> None:
    """A position updated since borrowing began carries GMX's cumulative borrowing factor of that
    moment (Position.borrowingFactor > 0); what it owes since is the Reader's pending fee, settled
    by the next order. (The model took the market's factor as 0 against it and raised: with
    borrowing on, a second order's reading failed.)"""
    pos = replace(short(6_000, usdc(1_000)), borrowing_factor=3 * F // 10**4, funding_fee_amount_per_size=7)
    plain = mdl(state(position=replace(pos, borrowing_factor=0, funding_fee_amount_per_size=0),
                      short_oi=6_000 * USD30, pending_borrowing_usd=5 * USD30)).after(0, 0)
    owing = mdl(state(position=pos, short_oi=6_000 * USD30, pending_borrowing_usd=5 * USD30)).after(0, 0)
    assert owing == plain                       # the factors past are settled: only the pending fee counts
    grown = mdl(state(position=pos, short_oi=6_000 * USD30, pending_borrowing_usd=5 * USD30)).after(-eth(1), 0)
    assert grown.size == -eth(3) and grown.liq_distance > 0


def test_partial_close_in_profit_pays_out_and_a_full_close_returns_everything() -> None:
    pos = short(6_000, usdc(1_000))                            # opened at 3000
    m = mdl(state(price=usd(2700), position=pos, short_oi=6_000 * USD30))
    before = m.after(0, 0)
    half = m.after(eth(1), 0)
    assert half.size == -eth(1)
    # the profit of the half closed is paid out to the wallet: the collateral stays, the
    # remaining PnL halves, so the margin falls by about half the profit
    assert half.margin < before.margin
    assert abs((before.margin - half.margin) - usd(300)) < usd(10)
    closed = m.after(eth(2), 0)
    assert closed.size == 0 and closed.margin == 0 and closed.liq_distance == INFINITE


def test_a_partial_close_in_loss_takes_the_loss_and_the_fee_from_the_collateral() -> None:
    pos = short(6_000, usdc(1_000))                            # opened at 3000, now 3300: -$600
    m = mdl(state(price=usd(3300), position=pos, short_oi=6_000 * USD30, impact=gm.ImpactParams(0, 0)))
    before, half = m.after(0, 0), m.after(eth(1), 0)
    assert before.margin == usd(1_000) - usd(600) - usd("2.4")  # the rule counts closing it all (0.04%)
    # half closed: its $300 loss and its $1.20 fee leave the collateral, which is what the rule
    # already counted against it, so the remaining collateral holds
    assert half.size == -eth(1) and half.fee == usd("1.2")
    assert abs(half.margin - before.margin) <= usd("0.01")


def test_an_opening_needs_gmx_minimum_collateral_with_its_cushion() -> None:
    m = mdl(state())
    pt = m.after(-eth(2), usdc(1_000))          # $6,000: MIN_COLLATERAL_FACTOR 0.5% is $30, with 2% $30.60
    assert m.opening_allowed(replace(pt, margin=usd("30.6")))
    assert not m.opening_allowed(replace(pt, margin=usd("30.59")))


def test_an_order_its_collateral_cannot_pay_for_is_never_safe() -> None:
    # a short deep in profit whose $1 of collateral cannot pay the $5 of borrowing it owes: the
    # order's fees are taken from the collateral first, so GMX refuses it, whatever the PnL
    pos = short(6_000, usdc(1))
    m = mdl(state(price=usd(2000), position=pos, short_oi=6_000 * USD30, pending_borrowing_usd=5 * USD30))
    pt = m.after(0, 0)
    assert pt.liq_distance < 0 and not m.opening_allowed(pt)


def test_funding_and_capped_impact_waiting_to_be_claimed_are_counted() -> None:
    m = mdl(state(claimable_funding_amount=usdc(5), claimable_collateral=((1, usdc(2)), (2, usdc(3)))))
    assert m.claimable_usd() == usd(10)
    assert mdl(state()).claimable_usd() == 0


def test_crossing_zero_has_two_legs() -> None:
    m = mdl(state(position=short(3_000, usdc(500)), short_oi=3_000 * USD30))
    pt = m.after(eth(2), usdc(500))
    assert pt.size == eth(1) and len(pt.leg_fills) == 2


@given(size=st.integers(min_value=1, max_value=500), distance_pct=st.integers(min_value=1, max_value=60))
@settings(max_examples=25, deadline=None)
def test_margin_for_distance_gives_that_distance(size: int, distance_pct: int) -> None:
    m = mdl(state(long_oi=50_000 * USD30))
    d = distance_pct * 10**16
    need = m.margin_for_distance(-eth(size) // 10, d)
    bare = m.after(-eth(size) // 10, 0)
    deposit = m.collateral_native(max(need - bare.margin, 0), round_up=True)
    pt = m.after(-eth(size) // 10, deposit)
    assert pt.margin >= need - 1                               # (E18 rounding of a 1e30 USD figure)
    assert pt.liq_distance >= d - 10**12                        # up to rounding of the price search
    # one unit of collateral less does not reach it by more than a hair
    assert m.after(-eth(size) // 10, deposit - usdc(1)).liq_distance < d + 10**15


def test_distance_at_leverage_matches_collateral_of_that_leverage() -> None:
    m = mdl(state())
    d2, d5 = m.distance_at_leverage(-eth(2), 2 * 10**18), m.distance_at_leverage(-eth(2), 5 * 10**18)
    assert d2 > d5 > 0 and 0.45 < d2 / 1e18 < 0.5 and 0.15 < d5 / 1e18 < 0.2
    assert m.distance_at_leverage(0, 2 * 10**18) == INFINITE


def test_max_withdrawal_keeps_gmx_minimum_collateral() -> None:
    pos = short(60_000, usdc(1_000))                           # 60x: the 0.5% minimum is $300
    m = mdl(state(position=pos, short_oi=60_000 * USD30))
    w = m.max_withdrawal()
    remaining = m.after(0, 0).margin
    assert w > 0 and abs(remaining - m.collateral_usd(w) - usd(300)) <= usd("0.01")
    assert mdl(state()).max_withdrawal() == 0


def test_minimums_are_gmx_settings() -> None:
    m = mdl(state(min_position_size_usd=1_500 * USD30, min_collateral_usd=2 * USD30))
    assert m.minimums().collateral == usd(2) and m.minimums().order == eth("0.5")
    assert m.opening_allowed(m.after(-eth(1), usdc(1_000)))
    assert not m.opening_allowed(m.after(-eth("0.4"), usdc(1_000)))


def test_carry_is_borrowing_plus_funding_per_day() -> None:
    per_s = 10**30 // 10**9                                   # 1e-9 per second
    m = mdl(state(long_oi=40_000 * USD30, short_oi=100_000 * USD30, longs_pay_shorts=False,
                  funding_factor_per_second=2 * per_s, borrowing_factor_per_second_shorts=per_s,
                  borrowing_factor_per_second_longs=3 * per_s))
    day = 86_400 * 10**18 // 10**9
    assert m.carry_rate_per_day(-eth(1)) == 3 * day           # shorts pay funding and borrowing
    assert m.carry_rate_per_day(eth(1)) == 3 * day - 2 * day * 100 // 40    # longs receive, spread over less OI


def test_model_refuses_a_foreign_market_state() -> None:
    with pytest.raises(TypeError, match="GmxMarketState"):
        model_for(replace(make_snapshot(), venue="gmx-v2"))


def test_policy_opens_the_hedge_with_collateral_and_holds_while_an_order_is_pending() -> None:
    p = PolicyParams()
    s = snap(state(), spot=eth(2), wallet=usdc(10_000))
    d = policy.decide(s, p)
    assert d.kind is DecisionKind.REBALANCE and d.size_delta == -eth(2) and d.margin_delta > 0
    m = mdl(state())
    assert m.opening_allowed(m.after(d.size_delta, d.margin_delta))
    order = Order(key="0x" + "ab" * 32, kind=OrderKind.INCREASE, size_delta=-eth(2), collateral_delta=d.margin_delta,
                  acceptable_price=usd(2985), submitted_at=NOW - 5, executable_at=NOW - 4, expires_at=NOW + 295)
    held = policy.decide(snap(state(), spot=eth(2), wallet=usdc(10_000) - d.margin_delta, orders=(order,)), p)
    assert held.kind is DecisionKind.HOLD and held.code == "order_pending"
    gone = policy.decide(snap(state(), spot=eth(2), orders=(replace(order, expires_at=NOW - 1),)), p)
    assert gone.cancel_order and gone.order_key == order.key
    assert OrderState.PENDING is order.state


def test_distance_at_leverage_of_a_position_in_loss_uses_its_remaining_collateral() -> None:
    """After a rally a short's remaining collateral counts its loss: the leverage edge is where
    that remaining collateral is the notional at today's price / the leverage (the policy's measure)."""
    pos = short(6_000, usdc(1_000))                            # opened at 3,000; now 4,300: $2,600 down
    m = mdl(state(price=usd(4300), position=pos, short_oi=6_000 * USD30))
    d3 = m.distance_at_leverage(-eth(2), 3 * 10**18)
    assert 0.3 < d3 / 1e18 < 0.34
    need = usd(8_600) // 3
    deposit = m.collateral_native(need - m.after(0, 0).margin, round_up=True)
    pt = m.after(0, deposit)
    assert abs(pt.leverage - 3 * 10**18) < 10**15 and abs(pt.liq_distance - d3) < 10**13
