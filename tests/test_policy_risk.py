"""What counts as risk-increasing, and which price each figure is taken at. No chain.

- One definition (``hedger.decide.planner.split_trade``) for the policy's gates (price divergence,
  daily limits) and the planner's flags: moving toward zero is risk-reducing, opening or growing
  either side is risk-increasing, a trade through zero is split (close, then open).
- Negative exposure is legal: the hedge is a long.
- Margin, leverage, liquidation and fills are at the market's own price; the oracle values the
  exposure. A collateral token's decimals are its own (not assumed to be 6).
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hedger.decide import planner, policy
from hedger.core.fixedpoint import UNIT, market_fill_price, market_order_fee
from hedger.core.types import ActionKind, DailyBudget, DecisionKind, PolicyParams, Snapshot
from tests.snapshots import eth, frac, make_snapshot, usd, usdc
from tests.test_policy import after, policy_params, snapshots

P = PolicyParams()
PROPS = settings(max_examples=200, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def flip(**kw: object) -> Snapshot:
    """Short 10 ETH at 3000, fully margined; the holder is now short 8 ETH of spot elsewhere, so
    the target is a long of 8: the trade crosses zero (close 10, open 8)."""
    base: dict[str, object] = dict(spot=0, extra=-eth(8), size=-eth(10), margin=usd(15_000),
                                   wallet=usdc(50_000))
    base.update(kw)
    return make_snapshot(**base)  # type: ignore[arg-type]


def with_reference(s: Snapshot, price: int) -> Snapshot:
    return replace(s, reference_price=price, reference_source="second feed 0xabc")


# ---- sign flips ----------------------------------------------------------------------------

def test_negative_exposure_opens_a_long_hedge() -> None:
    d = policy.decide(make_snapshot(extra=-eth(5), wallet=usdc(50_000)), P)
    assert d.target_size == eth(5) and d.size_delta == eth(5) and d.code == "rebalance"
    a = after(make_snapshot(extra=-eth(5), wallet=usdc(50_000)), d.size_delta, d.margin_delta)
    assert a.size == eth(5) and a.leverage <= 2 * UNIT


def test_flip_is_two_legs_close_then_open() -> None:
    s = flip()
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.REBALANCE and d.size_delta == eth(18) and d.target_size == eth(8)
    plan = planner.plan(d, P, s.account.size)
    trades = [a for a in plan.actions if a.kind is ActionKind.TRADE]
    assert [(t.amount, t.risk_reducing) for t in trades] == [(eth(10), True), (eth(8), False)]
    # each leg bounded from its own fill: the close at skew 0 -> +10, the opening at +10 -> +18
    close_fill = market_fill_price(usd(3000), 0, eth(10), s.market.skew_scale)
    open_fill = market_fill_price(usd(3000), eth(10), eth(8), s.market.skew_scale)
    assert d.leg_fill_prices == (close_fill, open_fill)
    assert [t.price_bound for t in trades] == [planner.price_bound(close_fill, eth(10), P.max_slippage),
                                               planner.price_bound(open_fill, eth(8), P.max_slippage)]
    # the fee is the two legs' fees
    assert d.expected_fee == (market_order_fee(0, eth(10), close_fill, s.market.taker_fee, s.market.maker_fee)
                              + market_order_fee(eth(10), eth(8), open_fill, s.market.taker_fee,
                                                 s.market.maker_fee))


def test_flip_opening_leg_waits_on_price_divergence() -> None:
    """A short of 10 becoming a long of 8 used to pass the divergence check (|8| < |-10|)."""
    s = with_reference(flip(), usd(3100))                   # 3.3% off the oracle: beyond 2%
    d = policy.decide(s, P)
    assert d.code == "price_divergence" and d.size_delta == eth(10)      # the close only
    assert [(a.amount, a.risk_reducing) for a in planner.plan(d, P, s.account.size).actions
            if a.kind is ActionKind.TRADE] == [(eth(10), True)]
    # within the limit, both legs go
    assert policy.decide(with_reference(flip(), usd(3050)), P).size_delta == eth(18)


def test_flip_opening_leg_waits_on_daily_limit() -> None:
    # 24,000 USD of room: the 8 ETH long (24,000 at 3000) fits, 7,000 does not
    roomy = replace(flip(), daily=DailyBudget(notional_left=usd(24_000), gas_left=None))
    assert policy.decide(roomy, P).size_delta == eth(18)
    tight = replace(flip(), daily=DailyBudget(notional_left=usd(7_000), gas_left=None))
    d = policy.decide(tight, P)
    assert d.code == "daily_limit" and d.size_delta == eth(10)


def test_flip_on_a_two_step_market_closes_first() -> None:
    d = policy.decide(flip(two_step=True), P)
    assert d.size_delta == eth(10) and "one order at a time" in d.reason
    assert len([a for a in planner.plan(d, P, -eth(10)).actions if a.kind is ActionKind.TRADE]) == 1


def test_long_hedge_flipping_to_short_is_gated_too() -> None:
    s = with_reference(make_snapshot(spot=eth(8), size=eth(10), margin=usd(15_000), wallet=usdc(50_000)),
                       usd(2900))
    d = policy.decide(s, P)
    assert d.code == "price_divergence" and d.size_delta == -eth(10)


def test_price_divergence_blocks_growth_but_not_reduction() -> None:
    grow = make_snapshot(spot=eth(10), wallet=usdc(50_000))
    assert policy.decide(with_reference(grow, usd(3061)), P).code == "price_divergence"     # 2.03%
    assert policy.decide(with_reference(grow, usd(3061)), P).size_delta == 0
    assert policy.decide(with_reference(grow, usd(3059)), P).size_delta == -eth(10)          # 1.97%
    assert policy.decide(with_reference(grow, usd(2939)), P).size_delta == 0
    shrink = make_snapshot(spot=eth(5), size=-eth(10), margin=usd(15_000))
    d = policy.decide(with_reference(shrink, usd(3300)), P)
    assert d.size_delta == eth(5)                                           # reducing: allowed
    # an unusable second source blocks growth as well
    bad = replace(grow, reference_problem="stale", reference_source="second feed 0xabc")
    assert policy.decide(bad, P).size_delta == 0 and "unusable" in policy.decide(bad, P).reason


@st.composite
def restricted(draw: st.DrawFn) -> tuple[Snapshot, PolicyParams]:
    s = draw(snapshots(pending=False, two_step=False))
    p = draw(policy_params(trading=True))
    if draw(st.booleans()):
        off = draw(st.integers(p.max_price_divergence * 10_000 // UNIT + 1, 5_000))     # bps beyond the limit
        s = with_reference(s, s.oracle.price_e18 * (10_000 + draw(st.sampled_from([off, -off]))) // 10_000)
    else:
        # no room left today (a positive remainder, however small, lets a trade that small through)
        s = replace(s, daily=DailyBudget(notional_left=draw(st.integers(-usd(10), 0)), gas_left=None))
    return s, p


@PROPS
@given(case=restricted())
def test_under_a_gate_no_position_opens_or_grows(case: tuple[Snapshot, PolicyParams]) -> None:
    """Price in doubt or no room left today: the position only moves toward zero, never past it."""
    s, p = case
    d = policy.decide(s, p)
    old, new = s.account.size, s.account.size + d.size_delta
    assert abs(new) <= abs(old) and new * old >= 0, (old, d.size_delta, d.code)
    for a in planner.plan(d, p, old).actions:
        if a.kind is ActionKind.TRADE:
            assert a.risk_reducing


@PROPS
@given(s=snapshots(pending=False), p=policy_params(trading=True))
def test_policy_and_planner_agree_on_risk(s: Snapshot, p: PolicyParams) -> None:
    d = policy.decide(s, p)
    assume(d.size_delta != 0)
    old = s.account.size
    trades = [a for a in planner.plan(d, p, old).actions if a.kind is ActionKind.TRADE]
    for t in trades:
        # toward zero and not past it: risk-reducing; anything else opens or grows a side
        assert t.risk_reducing == (old != 0 and abs(old + t.amount) < abs(old) and (old + t.amount) * old >= 0)
        old += t.amount
    assert old == s.account.size + d.size_delta


# ---- deposits: risk-reducing only when the position as it stands needs them -----------------

def test_deposit_funding_a_bigger_short_is_not_risk_reducing() -> None:
    # short 5 at 2x, exposure 10: grow by 5 with the collateral for it
    s = make_snapshot(spot=eth(10), size=-eth(5), margin=usd(7_500), wallet=usdc(50_000))
    d = policy.decide(s, P)
    assert d.size_delta == -eth(5) and d.margin_delta > 0 and not d.deposit_risk_reducing
    dep = next(a for a in planner.plan(d, P, s.account.size).actions if a.kind is ActionKind.DEPOSIT)
    assert not dep.risk_reducing
    # the same short at 3.3x needs the top-up as it stands: risk-reducing
    s2 = make_snapshot(spot=eth(10), size=-eth(10), margin=usd(9_000), wallet=usdc(50_000))
    d2 = policy.decide(s2, P)
    assert d2.code == "top_up" and d2.deposit_risk_reducing
    assert planner.plan(d2, P, s2.account.size).actions[0].risk_reducing


# ---- one price for the market's figures ------------------------------------------------------

def test_fill_and_leverage_at_the_market_price() -> None:
    """The oracle reads 3000, the market's own feed 3030 (1%, within the divergence limit)."""
    s = make_snapshot(spot=eth(10), wallet=usdc(50_000), market_price=usd(3030))
    d = policy.decide(s, P)
    assert d.size_delta == -eth(10)
    assert d.expected_fill_price == market_fill_price(usd(3030), 0, -eth(10), s.market.skew_scale)
    assert d.expected_fill_price == usd("3029.98485")
    # margin for 2x of the notional the market sees (30,300), not the oracle's 30,000
    assert d.leverage_after <= 2 * UNIT and d.margin_delta > usdc(15_150)
    held = make_snapshot(spot=eth(10), size=-eth(10), margin=usd(10_000), market_price=usd(3030))
    assert policy.decide(held, P).leverage_before == usd(30_300) * UNIT // usd(10_000)


def test_top_up_judged_at_the_market_price() -> None:
    # 10,100 margin on 10 ETH: 2.97x at the oracle's 3000, 3.03x at the market's 3060
    s = make_snapshot(spot=eth(10), size=-eth(10), margin=usd(10_100), wallet=usdc(50_000),
                      market_price=usd(3060))
    d = policy.decide(s, P)
    assert d.code == "top_up" and d.margin_delta == usdc(30_600 // 2 - 10_100)
    assert policy.decide(replace(s, market=replace(s.market, price=usd(3000))), P).kind is DecisionKind.HOLD


def test_hedge_error_valued_at_the_oracle() -> None:
    # target -0.02 ETH: $60 at the oracle's 3000 is above the $50 minimum trade
    s = make_snapshot(spot=eth("0.02"), wallet=usdc(1_000), market_price=usd(2450))
    assert policy.decide(s, P).size_delta == -eth("0.02")


# ---- collateral decimals ---------------------------------------------------------------------

def test_collateral_with_18_decimals() -> None:
    s = make_snapshot(spot=eth(10), wallet=50_000 * 10**18, collateral_decimals=18)
    d = policy.decide(s, P)
    # the same deposit as with 6-decimal USDC (15,018.14991 USD), in 18-decimal units
    assert d.margin_delta == usd("15018.14991")
    assert d.leverage_after == 2 * UNIT
    w = make_snapshot(spot=eth(10), size=-eth(10), margin=usd(25_000), collateral_decimals=18)
    assert policy.decide(w, P).margin_delta == -usd(10_000)


def test_collateral_with_8_decimals() -> None:
    s = make_snapshot(spot=eth(10), size=-eth(10), margin=usd(9_000), wallet=10_000 * 10**8,
                      collateral_decimals=8)
    assert policy.decide(s, P).margin_delta == 6_000 * 10**8


def test_min_collateral_move_in_usd_whatever_the_decimals() -> None:
    s = make_snapshot(spot=0, size=0, margin=usd(5), collateral_decimals=18)
    assert policy.decide(s, P).kind is DecisionKind.HOLD
    assert policy.decide(s, replace(P, min_collateral_usd=frac(5))).margin_delta == -usd(5)


# ---- the per-cycle cap ----------------------------------------------------------------------

def test_cap_applies_just_above_it() -> None:
    # 100 ETH at 3000 is 300,000 USD: above the 250,000 cap by a fifth, so the trade is capped
    d = policy.decide(make_snapshot(spot=eth(100), wallet=usdc(10_000_000)), P)
    assert d.code == "split" and d.size_delta == -(usd(250_000) * UNIT // usd(3000))


@PROPS
@given(s=snapshots(pending=False), p=policy_params(trading=True))
def test_no_trade_beyond_the_cap(s: Snapshot, p: PolicyParams) -> None:
    d = policy.decide(s, p)
    assume(d.size_delta != 0 and d.code != "deleverage")        # a forced reduction is not capped
    assert abs(d.size_delta) <= p.max_trade_usd * UNIT // s.oracle.price_e18


def test_searches_aim_one_percent_inside_the_maximum() -> None:
    """Funding and price moves between reading and mining would leave a position sized at the
    maximum leverage a hair above it: growing and deleveraging searches aim 1% inside."""
    grow = make_snapshot(spot=eth(10), wallet=usdc(6000))
    d = policy.decide(grow, P)
    assert d.code == "collateral_limited"
    assert P.max_leverage * 98 // 100 < after(grow, d.size_delta, d.margin_delta).leverage <= P.max_leverage * 99 // 100
    cut = make_snapshot(spot=eth(10), size=-eth(10), margin=usd(3500), wallet=0)
    d = policy.decide(cut, P)
    assert d.code == "deleverage"
    assert P.max_leverage * 98 // 100 < after(cut, d.size_delta, 0).leverage <= P.max_leverage * 99 // 100
