"""The hedging policy (``hedger.decide.policy.decide``), without a chain.

Property tests (hypothesis) over generated snapshots and parameters, then one
example per rule with concrete numbers. Post-action state is recomputed here
from the snapshot and the decision with the market mirrors of
``hedger/core/fixedpoint.py``, not with ``hedger.decide.policy.post_trade``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hedger.core.model import INFINITE
from hedger.decide import planner, policy
from hedger.core.fixedpoint import UNIT, market_fill_price, market_order_fee, sdiv
from hedger.core.types import ActionKind, Decision, DecisionKind, PolicyParams, RefusalKind, Snapshot
from tests.snapshots import (MIN_INITIAL_MARGIN, NOW, eth, frac, initial_margin_required, make_snapshot,
                             pending_order, usd, usdc)

# The state space deliberately includes states that call for no action; the properties about
# actions filter those out (assume), which can trip hypothesis's filter_too_much health check
# on a slow or loaded machine without saying anything about the policy.
PROPS = settings(max_examples=300, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
INF = INFINITE


# --------------------------------------------------------------------------------------------
# independent recomputation of the state after a decision
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class After:
    size: int
    margin: int        # E18 remaining margin, valued at the market's price
    notional: int      # E18 USD at the market's price
    fill: int
    fee: int           # trading fee + keeper fee on a two-step market

    @property
    def leverage(self) -> int:
        if self.notional == 0:
            return 0
        if self.margin <= 0:
            return INF
        return self.notional * UNIT // self.margin


def after(s: Snapshot, size_delta: int, margin_delta: int) -> After:
    """Account after depositing/withdrawing ``margin_delta`` (native) and trading ``size_delta``.

    The trade fills at the skew-adjusted price of the market's own price; its fee (plus the
    order keeper fee on a two-step market) comes out of margin, and the position is then valued
    at the market's price, so (fill - price) * size_delta is a cost as well. A trade through
    zero is sent as two trades (close, then open), each filled and charged on its own."""
    m, a = s.market, s.account
    scale = 10 ** (18 - m.collateral_decimals)
    margin = a.margin + margin_delta * scale
    fill, fee = m.price, 0
    if size_delta:
        crosses = a.size != 0 and (a.size + size_delta) * a.size < 0
        legs = [-a.size, a.size + size_delta] if crosses else [size_delta]
        skew = m.skew
        for leg in legs:
            f = market_fill_price(m.price, skew, leg, m.skew_scale)
            leg_fee = market_order_fee(skew, leg, f, m.taker_fee, m.maker_fee)
            if m.two_step:
                leg_fee += m.order_keeper_fee
            fee += leg_fee
            margin -= leg_fee
            margin -= sdiv(leg * (f - m.price), UNIT)
            skew += leg
        fill = market_fill_price(m.price, m.skew, size_delta, m.skew_scale)
    size = a.size + size_delta
    return After(size=size, margin=margin, notional=abs(size) * m.price // UNIT, fill=fill, fee=fee)


def target_of(s: Snapshot, p: PolicyParams) -> int:
    return -sdiv(s.exposure.total * p.hedge_ratio, UNIT)


# --------------------------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------------------------

# Strategies are built once here: building them inside a composite on every draw costs
# more than the policy itself.
_LEV_MIN = st.integers(UNIT // 2, 3 * UNIT)
_LEV_STEP = st.integers(1, 5 * UNIT)
_HEDGE_RATIO = st.sampled_from([UNIT, UNIT // 2]) | st.integers(0, 2 * UNIT)
_BAND = {False: st.sampled_from([5 * UNIT // 100, 0]) | st.integers(0, UNIT // 2),
         True: st.sampled_from([5 * UNIT // 100, 0]) | st.integers(0, UNIT // 10)}
_MIN_TRADE = {False: st.sampled_from([usd(50), 0]) | st.integers(0, usd(1000)),
              True: st.sampled_from([usd(50), 0]) | st.integers(0, usd(100))}
_MAX_TRADE = st.sampled_from([usd(250_000)]) | st.integers(usd(100), usd(2_000_000))
_SLIPPAGE = st.integers(0, UNIT // 20)
_LIQ_BUFFER = st.sampled_from([UNIT // 4]) | st.integers(0, UNIT // 2)
_MIN_COLLATERAL = st.sampled_from([usd(10)]) | st.integers(0, usd(100))
_COOLDOWN = st.sampled_from([900, 0]) | st.integers(0, 3600)

_ANSWER = st.integers(100 * 10**8, 100_000 * 10**8)          # 100 .. 100k USD, 8 decimals
_SPOT = st.just(0) | st.integers(0, eth(20)) | st.integers(0, eth(5000))
# negative exposure is legal (a holder who is short spot elsewhere): the hedge is then a long
_EXTRA = st.just(0) | st.integers(0, eth(1000)) | st.integers(-eth(1000), 0)
# the market's own price (its feed) a little off the hedger's oracle, in basis points
_MARKET_OFF_BPS = st.just(0) | st.integers(-150, 150)
# a size, or a percentage of the (hedged) exposure
_SIZE = (st.just(0) | st.integers(-eth(20), eth(5)) | st.integers(-eth(6000), 0)).map(lambda v: (v, None)) \
    | st.integers(0, 150).map(lambda pct: (0, pct))
_SIZE_NEAR = st.just((0, None)) | st.integers(90, 110).map(lambda pct: (0, pct))
_PER_MILLION = st.integers(0, 10**6)
_IDLE_MARGIN = {False: st.just(0) | st.integers(0, usd(1_000_000)), True: st.integers(usd(1), usd(1_000_000))}
_WALLET = st.just(0) | st.integers(0, usdc(100)) | st.integers(0, usdc(50_000_000))
_SKEW = st.just(0) | st.integers(-eth(100_000), eth(100_000))
_FUNDING = st.integers(-UNIT // 10, UNIT // 10)
_LAST = st.none() | st.integers(NOW - 7200, NOW)
_ONE_IN_8 = st.integers(0, 7)
_SUBMITTED = st.integers(NOW - 400, NOW)
_ORDER_SIZE = st.integers(-eth(100), -1) | st.integers(1, eth(100))
_REAL_SPOT = st.integers(eth("0.1"), eth(5000))
_BUFFER_LOW = st.integers(0, UNIT // 4)
_REAL_HEDGE_RATIO = st.sampled_from([UNIT, UNIT // 2]) | st.integers(UNIT // 10, 2 * UNIT)


@st.composite
def policy_params(draw: st.DrawFn, *, trading: bool = False) -> PolicyParams:
    """Consistent parameters (min < target < max leverage). ``trading``: a band of at most 10%
    and a minimum trade of at most $100, so that most states call for a trade."""
    min_lev = draw(_LEV_MIN)
    target_lev = min_lev + draw(_LEV_STEP)
    max_lev = target_lev + draw(_LEV_STEP)
    return PolicyParams(
        hedge_ratio=draw(_HEDGE_RATIO),
        band=draw(_BAND[trading]),
        min_trade_usd=draw(_MIN_TRADE[trading]),
        max_trade_usd=draw(_MAX_TRADE),
        max_slippage=draw(_SLIPPAGE),
        target_leverage=target_lev,
        max_leverage=max_lev,
        min_leverage=min_lev,
        liquidation_buffer=draw(_LIQ_BUFFER),
        min_collateral_usd=draw(_MIN_COLLATERAL),
        cooldown_s=draw(_COOLDOWN),
    )


@st.composite
def snapshots(draw: st.DrawFn, *, pending: bool | None = False, two_step: bool | None = None,
              max_lev_before: int = 200 * UNIT, idle_margin: bool = False,
              hedged_at: int | None = None, spot: st.SearchStrategy[int] = _SPOT) -> Snapshot:
    """A valid reading (guards pass) of an account with positive margin whenever it holds a
    position: a state in which a safe action always exists (closing the position, at worst).
    Leverage before lies between 0.05x and ``max_lev_before`` (200x: the market liquidates far
    below that).

    ``hedged_at``: a hedge ratio; when given, the position is either none or within 10%
    of -(exposure x hedged_at).
    ``idle_margin``: without a position, always some margin (else sometimes none).
    ``pending``: False never, True always, None sometimes (1 in 8) a pending two-step order."""
    answer = draw(_ANSWER)
    px = answer * 10**10
    spot = draw(spot)
    extra = draw(_EXTRA)
    total = spot + extra
    spot_units = spot
    size, pct = draw(_SIZE if hedged_at is None else _SIZE_NEAR)
    if pct is not None:
        size = -total * (UNIT if hedged_at is None else hedged_at) // UNIT * pct // 100
    notional = abs(size) * px // UNIT
    if notional > 0:
        lo = UNIT // 20
        lev = lo + (max_lev_before - lo) * draw(_PER_MILLION) // 10**6
        margin = max(notional * UNIT // lev, 1)
    else:
        margin = draw(_IDLE_MARGIN[idle_margin])
    wallet = draw(_WALLET)
    skew = draw(_SKEW)
    funding = draw(_FUNDING)
    is_two_step = draw(st.booleans()) if two_step is None else two_step
    last = draw(_LAST)
    order = None
    if pending or (pending is None and draw(_ONE_IN_8) == 0):
        order = pending_order(draw(_ORDER_SIZE), draw(_SUBMITTED))
    market_price = px * (10_000 + draw(_MARKET_OFF_BPS)) // 10_000
    return make_snapshot(answer=answer, spot=spot_units, extra=extra, size=size, margin=margin, wallet=wallet,
                         skew=skew, funding_rate=funding, two_step=is_two_step, last_rebalance_at=last,
                         pending=order, market_price=market_price)


# --------------------------------------------------------------------------------------------
# (a) no overshoot
# --------------------------------------------------------------------------------------------

@PROPS
@given(s=snapshots(pending=None), p=policy_params(trading=True))
def test_trade_never_overshoots_the_target(s: Snapshot, p: PolicyParams) -> None:
    d = policy.decide(s, p)
    assume(d.size_delta != 0 and d.code != "deleverage")
    old, target = s.account.size, d.target_size
    new = old + d.size_delta
    full = target_of(s, p)
    if p.funding_min_ratio >= p.hedge_ratio:
        assert target == full
    else:   # a hedge ratio above 1 makes the default funding_min_ratio (1) a funding-aware range
        edge = -sdiv(s.exposure.total * p.funding_min_ratio, UNIT)
        assert min(full, edge) <= target <= max(full, edge)
    assert min(old, target) <= new <= max(old, target), (old, d.size_delta, target)
    assert (d.size_delta > 0) == (target > old)


# --------------------------------------------------------------------------------------------
# (b) leverage after the action <= max_leverage
# --------------------------------------------------------------------------------------------

@PROPS
@given(s=snapshots(pending=None), p=policy_params(trading=True))
def test_leverage_after_action_never_exceeds_max(s: Snapshot, p: PolicyParams) -> None:
    # generation keeps margin > 0 with a position (see ``snapshots``): a safe action exists
    d = policy.decide(s, p)
    assert d.kind is not DecisionKind.REFUSE
    assume(d.acts and not d.cancel_order)
    o = next(iter(s.account.orders), None)
    if o is not None:
        # a top-up while a two-step order is pending: sized for the worse of the position before
        # and after the order fills; it can only fall short when the wallet does
        assert d.size_delta == 0 and d.margin_delta > 0 and d.code == "top_up_pending"
        both = [after(s, 0, d.margin_delta), after(s, o.size_delta, d.margin_delta)]
        assert d.leverage_after == max(x.leverage for x in both)
        if d.margin_delta < s.account.collateral_wallet:
            assert all(x.leverage <= p.target_leverage for x in both), (both, d)
        return
    a = after(s, d.size_delta, d.margin_delta)
    assume(a.size != 0)
    assert a.margin > 0
    assert a.leverage <= p.max_leverage, (a, d)
    # the decision reports the same leverage and fill
    assert d.leverage_after == a.leverage
    if d.size_delta:
        assert d.expected_fill_price == a.fill
        assert d.expected_fee == a.fee


@PROPS
@given(s=snapshots(pending=False), p=policy_params())
def test_deposit_never_exceeds_wallet(s: Snapshot, p: PolicyParams) -> None:
    d = policy.decide(s, p)
    assert d.margin_delta <= s.account.collateral_wallet


# --------------------------------------------------------------------------------------------
# (c) nothing traded on a refused reading
# --------------------------------------------------------------------------------------------

FAULTS = {
    "oracle_nonpositive": RefusalKind.ORACLE,
    "oracle_zero_round": RefusalKind.ORACLE,
    "oracle_no_timestamp": RefusalKind.ORACLE,
    "oracle_future": RefusalKind.ORACLE,
    "oracle_stale": RefusalKind.ORACLE,
    "market_price_invalid": RefusalKind.ORACLE,
    "sequencer_down": RefusalKind.SEQUENCER,
    "sequencer_invalid": RefusalKind.SEQUENCER,
    "sequencer_grace": RefusalKind.SEQUENCER,
    "block_lag": RefusalKind.CHAIN,
}


@st.composite
def faulty(draw: st.DrawFn) -> tuple[Snapshot, PolicyParams, str]:
    s = draw(snapshots(pending=None))
    p = draw(policy_params())
    p = replace(p, oracle_max_age_s=draw(st.integers(1, 86_400)), sequencer_grace_s=draw(st.integers(1, 86_400)),
                max_block_lag_s=draw(st.integers(0, 3600)))
    fault = draw(st.sampled_from(sorted(FAULTS)))
    now = s.chain.block_timestamp
    o, q, c = s.oracle, s.sequencer, s.chain
    # the other readings are made valid, so that only ``fault`` can refuse
    o = replace(o, updated_at=now - draw(st.integers(0, p.oracle_max_age_s)))
    q = replace(q, answer=0, started_at=now - p.sequencer_grace_s - draw(st.integers(0, 10**6)))
    c = replace(c, wall_clock=now + draw(st.integers(0, p.max_block_lag_s)))
    m = s.market
    if fault == "oracle_nonpositive":
        o = replace(o, answer=draw(st.integers(-10**12, 0)))
    elif fault == "oracle_zero_round":
        o = replace(o, round_id=0)
    elif fault == "oracle_no_timestamp":
        o = replace(o, updated_at=0)
    elif fault == "oracle_future":
        o = replace(o, updated_at=now + draw(st.integers(1, 10**6)))
    elif fault == "oracle_stale":
        o = replace(o, updated_at=now - p.oracle_max_age_s - draw(st.integers(1, 10**6)))
    elif fault == "market_price_invalid":
        m = replace(m, price_invalid=True)
    elif fault == "sequencer_down":
        q = replace(q, answer=draw(st.integers(1, 5)))
    elif fault == "sequencer_invalid":
        q = replace(q, started_at=0)
    elif fault == "sequencer_grace":
        q = replace(q, started_at=now - draw(st.integers(-1000, p.sequencer_grace_s - 1)))
    elif fault == "block_lag":
        p = replace(p, max_block_lag_s=draw(st.integers(1, 3600)))
        c = replace(c, wall_clock=now + p.max_block_lag_s + draw(st.integers(1, 10**6)))
    return replace(s, oracle=o, sequencer=q, chain=c, market=m), p, fault


@PROPS
@given(case=faulty())
def test_refused_reading_trades_nothing(case: tuple[Snapshot, PolicyParams, str]) -> None:
    s, p, fault = case
    d = policy.decide(s, p)
    assert d.kind is DecisionKind.REFUSE
    assert d.code == fault
    assert d.refusal is FAULTS[fault]
    assert d.size_delta == 0 and d.margin_delta == 0 and not d.cancel_order
    assert not d.acts
    assert planner.plan(d, p, s.account.size).actions == ()


# --------------------------------------------------------------------------------------------
# (d) every decision explains itself
# --------------------------------------------------------------------------------------------

@PROPS
@given(s=snapshots(pending=None), p=policy_params())
def test_every_decision_has_reason_and_code(s: Snapshot, p: PolicyParams) -> None:
    d = policy.decide(s, p)
    assert isinstance(d, Decision)
    assert d.reason.strip() and d.code.strip()
    assert d.code == d.code.strip() and " " not in d.code          # machine-readable
    if d.kind is DecisionKind.REFUSE:
        assert d.refusal is not None
    else:
        assert d.refusal is None
    if d.kind is DecisionKind.REBALANCE:
        assert d.acts


# --------------------------------------------------------------------------------------------
# (e) withdrawals
# --------------------------------------------------------------------------------------------

@st.composite
def low_leverage(draw: st.DrawFn) -> tuple[Snapshot, PolicyParams]:
    """Accounts levered at most ``min_leverage`` before the cycle, holding no position or one
    near a real hedge (at least 0.1 ETH x 0.1): where withdrawals happen."""
    p = draw(policy_params())
    # a liquidation buffer a position at the minimum leverage satisfies (else it tops up instead)
    p = replace(p, liquidation_buffer=draw(_BUFFER_LOW), hedge_ratio=draw(_REAL_HEDGE_RATIO))
    return draw(snapshots(pending=False, max_lev_before=p.min_leverage, idle_margin=True,
                          hedged_at=p.hedge_ratio, spot=_REAL_SPOT)), p


@PROPS
@given(case=low_leverage())
def test_withdrawal_is_bounded(case: tuple[Snapshot, PolicyParams]) -> None:
    s, p = case
    d = policy.decide(s, p)
    assume(d.margin_delta < 0)
    scale = 10 ** (18 - s.market.collateral_decimals)
    out = -d.margin_delta * scale
    assert out >= p.min_collateral_usd                  # no dust withdrawals
    if d.size_delta == 0:
        assert out <= s.account.margin                  # never more than the account holds
    a = after(s, d.size_delta, d.margin_delta)
    # never more than is left after the trade (closing a short below the market price,
    # against a negative skew, realises a gain: that may be withdrawn too)
    assert a.margin >= 0
    assert a.leverage <= p.max_leverage
    if a.size != 0:
        assert a.leverage <= p.target_leverage          # withdraws down to the target, not below it
        assert a.margin >= initial_margin_required(a.size, s.market.price, s.market)
    if s.account.size == 0 and d.size_delta == 0:
        assert out <= s.account.accessible_margin
    if s.market.two_step:
        assert d.size_delta == 0                        # on a two-step market never with a pending trade


# --------------------------------------------------------------------------------------------
# (f) pending two-step order
# --------------------------------------------------------------------------------------------

@PROPS
@given(s=snapshots(pending=True, two_step=True), p=policy_params())
def test_pending_order_never_leads_to_another_trade(s: Snapshot, p: PolicyParams) -> None:
    d = policy.decide(s, p)
    o = next(iter(s.account.orders), None)
    assert o is not None
    assert d.size_delta == 0 and d.margin_delta >= 0          # never a trade, never a withdrawal
    actions = planner.plan(d, p, s.account.size).actions
    assert all(a.kind is not ActionKind.TRADE for a in actions)
    if s.chain.block_timestamp > o.expires_at:
        assert d.kind is DecisionKind.REBALANCE and d.cancel_order and d.code == "cancel_expired_order"
        assert [a.kind for a in actions] == [ActionKind.CANCEL_ORDER]
        return
    assert not d.cancel_order
    assert "UTC" in d.reason and str(o.expires_at) not in d.reason   # times for people, not Unix seconds
    before, filled = after(s, 0, 0), after(s, o.size_delta, 0)

    def needs(x: After) -> bool:
        dist = policy.post_trade(s, x.size - s.account.size, 0).liq_distance
        return x.size != 0 and (x.leverage > p.max_leverage or dist < p.liquidation_buffer)
    if d.kind is DecisionKind.HOLD:
        assert d.code == "order_pending" and actions == ()
        assert not (needs(before) or needs(filled)) or s.account.collateral_wallet == 0
    else:
        # a top-up: only when the position before or after the fill calls for it, at most the
        # wallet, risk-reducing (the order cannot be taken back before it expires)
        assert d.code == "top_up_pending" and (needs(before) or needs(filled))
        assert 0 < d.margin_delta <= s.account.collateral_wallet
        assert [(a.kind, a.risk_reducing) for a in actions] == [(ActionKind.DEPOSIT, True)]


def test_pending_order_top_up_sized_for_the_worse_of_before_and_after_the_fill() -> None:
    # short 10 ETH at 3000 with 15,000 margin; an order to grow it to 12 is pending. The price
    # is up 35%: the short lost 10,500 and stands at 9x; once the order fills, 12 ETH at 4050.
    s = make_snapshot(price=usd(4050), spot=eth(12), size=-eth(10), margin=usd(4500), wallet=usdc(50_000),
                      two_step=True, pending=pending_order(-eth(2), NOW - 5))
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.REBALANCE and d.code == "top_up_pending" and d.size_delta == 0
    filled = after(s, -eth(2), 0)
    # to 2x for 12 ETH (the worse: more notional), not for the 10 ETH held now
    assert d.margin_delta == -(-(48_600 * UNIT // 2 - filled.margin) // 10**12)
    assert 2 * UNIT - 10**11 < after(s, -eth(2), d.margin_delta).leverage <= 2 * UNIT    # rounded up to 1e-6 USDC
    assert after(s, 0, d.margin_delta).leverage < P.max_leverage
    assert d.deposit_risk_reducing
    # an order that shrinks the short: sized for the position as it stands
    s2 = replace(s, account=replace(s.account, orders=(pending_order(eth(2), NOW - 5),)))
    d2 = policy.decide(s2, P)
    assert d2.margin_delta == usdc(40_500 // 2 - 4500)
    # the same with nothing to fear holds, as before
    calm = make_snapshot(spot=eth(12), size=-eth(10), margin=usd(15_000), wallet=usdc(50_000), two_step=True,
                         pending=pending_order(-eth(2), NOW - 5))
    assert policy.decide(calm, P).code == "order_pending"
    # an empty wallet or a paused token: hold, saying why
    broke = replace(s, account=replace(s.account, collateral_wallet=0))
    assert policy.decide(broke, P).kind is DecisionKind.HOLD and "wallet" in policy.decide(broke, P).reason


# --------------------------------------------------------------------------------------------
# examples, one per rule
# --------------------------------------------------------------------------------------------

P = PolicyParams()


def test_open_from_unhedged() -> None:
    s = make_snapshot(spot=eth(10), wallet=usdc(50_000))
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.REBALANCE and d.code == "rebalance"
    assert d.target_size == -eth(10) and d.size_delta == -eth(10)
    # fill = 3000 * (1 + (0 - 10/1e6) / 2) = 2999.985; fee = 10 * 2999.985 * 0.0006 = 17.99991
    assert d.expected_fill_price == usd("2999.985")
    assert d.expected_fee == usd("17.99991")
    # deposit = notional / 2 + fee + premium cost 10 * 0.015 = 15000 + 17.99991 + 0.15, rounded up
    assert d.margin_delta == usdc("15018.14991")
    assert d.leverage_after == 2 * UNIT
    assert usdc(15_000) < d.margin_delta < usdc(15_030)
    plan = planner.plan(d, P, 0)
    assert [a.kind for a in plan.actions] == [ActionKind.DEPOSIT, ActionKind.TRADE]


def test_within_band_holds() -> None:
    s = make_snapshot(spot=eth(10), size=-eth("9.6"), margin=usd(14_400), wallet=usdc(50_000))
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.HOLD and d.code == "within_band"
    assert d.size_delta == 0 and d.margin_delta == 0
    # just outside the band (error 0.6 > 0.5 ETH) it trades
    d2 = policy.decide(make_snapshot(spot=eth(10), size=-eth("9.4"), margin=usd(14_100), wallet=usdc(50_000)), P)
    assert d2.kind is DecisionKind.REBALANCE and d2.size_delta == -eth("0.6")


def test_band_edge_is_inclusive() -> None:
    s = make_snapshot(spot=eth(10), size=-eth("9.5"), margin=usd(14_250))
    assert policy.decide(s, P).code == "within_band"


def test_below_minimum_trade_holds() -> None:
    # target -0.01 ETH: error $30 < $50 minimum
    s = make_snapshot(spot=eth("0.01"), wallet=usdc(50_000))
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.HOLD and d.code == "below_min_trade"
    assert policy.decide(s, replace(P, min_trade_usd=usd(29))).size_delta == -eth("0.01")


def test_cooldown_holds_inside_twice_the_band() -> None:
    # band 0.5 ETH; error 0.8 ETH is outside the band but within twice it
    s = make_snapshot(spot=eth(10), size=-eth("9.2"), margin=usd(13_800), wallet=usdc(50_000),
                      last_rebalance_at=NOW - 100)
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.HOLD and d.code == "cooling_down"
    # once the cooldown is over it trades
    d2 = policy.decide(replace(s, last_rebalance_at=NOW - 900), P)
    assert d2.kind is DecisionKind.REBALANCE and d2.size_delta == -eth("0.8")


def test_cooldown_holds_at_exactly_twice_the_band() -> None:
    s = make_snapshot(spot=eth(10), size=-eth(9), margin=usd(13_500), wallet=usdc(50_000),
                      last_rebalance_at=NOW - 899)
    assert policy.decide(s, P).code == "cooling_down"


def test_cooldown_skipped_when_error_exceeds_twice_the_band() -> None:
    s = make_snapshot(spot=eth(10), size=-eth("8.9"), margin=usd(13_350), wallet=usdc(50_000),
                      last_rebalance_at=NOW - 100)
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.REBALANCE and d.code == "rebalance"
    assert d.size_delta == -eth("1.1")


def test_per_cycle_cap_splits_the_move() -> None:
    s = make_snapshot(spot=eth(200), wallet=usdc(10_000_000))
    d = policy.decide(s, P)
    assert d.code == "split"
    cap = usd(250_000) * UNIT // usd(3000)          # 83.333... ETH
    assert d.size_delta == -cap
    assert d.target_size == -eth(200)
    notional = cap * usd(3000) // UNIT
    assert notional <= usd(250_000)
    a = after(s, d.size_delta, d.margin_delta)
    assert a.leverage <= 2 * UNIT                    # funded to the target leverage


def test_top_up_when_leverage_above_max() -> None:
    # -10 ETH at 3000 with 9000 margin: 3.33x > 3x -> top up to 2x (15000 margin)
    s = make_snapshot(spot=eth(10), size=-eth(10), margin=usd(9000), wallet=usdc(10_000))
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.REBALANCE and d.code == "top_up"
    assert d.size_delta == 0 and d.margin_delta == usdc(6000)
    assert d.leverage_before == 30 * UNIT // 9 and d.leverage_after == 2 * UNIT


def test_top_up_when_liquidation_within_buffer() -> None:
    # 50k ETH short: liquidation premium 50k/1e6 * 1.5625 = 7.8% of notional. At 2.988x
    # (below the 3x maximum) liquidation is 24.9% away, inside the 25% buffer.
    s = make_snapshot(spot=eth(50_000), size=-eth(50_000), margin=usd(50_200_000), wallet=usdc(30_000_000))
    d = policy.decide(s, P)
    assert d.leverage_before < 3 * UNIT
    assert d.kind is DecisionKind.REBALANCE and d.code == "top_up"
    assert d.margin_delta == usdc(75_000_000 - 50_200_000)
    assert d.leverage_after == 2 * UNIT
    assert d.liquidation_distance_after >= P.liquidation_buffer
    # with a buffer of 20% the same account is left alone
    assert policy.decide(s, replace(P, liquidation_buffer=frac("0.2"))).kind is DecisionKind.HOLD


def test_withdraw_excess_below_min_leverage() -> None:
    # -10 ETH with 25000 margin: 1.2x < 1.5x -> withdraw down to 2x (15000)
    s = make_snapshot(spot=eth(10), size=-eth(10), margin=usd(25_000))
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.REBALANCE and d.code == "withdraw_excess"
    assert d.margin_delta == -usdc(10_000) and d.size_delta == 0
    assert d.leverage_after == 2 * UNIT
    assert [a.kind for a in planner.plan(d, P, s.account.size).actions] == [ActionKind.WITHDRAW]


def test_small_excess_below_min_collateral_is_kept() -> None:
    # no position, 5 USD of margin: less than the $10 minimum collateral move
    s = make_snapshot(spot=0, size=0, margin=usd(5))
    assert policy.decide(s, P).kind is DecisionKind.HOLD
    assert policy.decide(s, replace(P, min_collateral_usd=usd(5))).margin_delta == -usdc(5)


def test_collateral_limited_growth_when_wallet_short() -> None:
    s = make_snapshot(spot=eth(10), wallet=usdc(6000))
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.REBALANCE and d.code == "collateral_limited"
    assert d.margin_delta == usdc(6000)                     # the whole wallet
    assert -eth(6) < d.size_delta < -eth("5.9")             # ~3x on 6000 USD
    a = after(s, d.size_delta, d.margin_delta)
    assert a.leverage <= P.max_leverage
    # the largest such short: one wei more would breach the maximum
    # the search aims 1% inside the maximum (policy._with_cushion) and is tight there
    assert after(s, d.size_delta - 1, d.margin_delta).leverage > P.max_leverage * 99 // 100


def test_deleverage_when_too_levered_and_wallet_empty() -> None:
    # -10 ETH with 3500 margin (8.6x), nothing in the wallet: buy back just enough
    s = make_snapshot(spot=eth(10), size=-eth(10), margin=usd(3500), wallet=0)
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.REBALANCE and d.code == "deleverage"
    assert d.margin_delta == 0
    assert eth(6) < d.size_delta < eth(7)
    a = after(s, d.size_delta, 0)
    assert a.leverage <= P.max_leverage
    # the smallest reduction that reaches 1% inside the maximum (policy._with_cushion)
    assert after(s, d.size_delta - 1, 0).leverage > P.max_leverage * 99 // 100
    plan = planner.plan(d, P, s.account.size)
    assert len(plan.actions) == 1 and plan.actions[0].risk_reducing


def test_partial_top_up_then_deleverage() -> None:
    # a wallet too small for the full top-up: deposit all of it, then reduce
    s = make_snapshot(spot=eth(10), size=-eth(10), margin=usd(3500), wallet=usdc(1000))
    d = policy.decide(s, P)
    assert d.code == "deleverage" and d.margin_delta == usdc(1000) and d.size_delta > 0
    assert after(s, d.size_delta, d.margin_delta).leverage <= P.max_leverage
    kinds = [a.kind for a in planner.plan(d, P, s.account.size).actions]
    assert kinds == [ActionKind.DEPOSIT, ActionKind.TRADE]


def test_expired_pending_order_is_cancelled() -> None:
    o = pending_order(-eth(10), NOW - 121)                 # expires at NOW - 1
    s = make_snapshot(spot=eth(10), two_step=True, pending=o, wallet=usdc(50_000))
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.REBALANCE and d.code == "cancel_expired_order" and d.cancel_order
    assert d.size_delta == 0 and d.margin_delta == 0


def test_pending_order_holds_until_after_expiry() -> None:
    o = pending_order(-eth(10), NOW - 120)                 # expires exactly now: still fillable
    s = make_snapshot(spot=eth(10), two_step=True, pending=o, wallet=usdc(50_000), margin=usd(15_100))
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.HOLD and d.code == "order_pending"


def test_hedge_ratio_half_halves_the_target() -> None:
    s = make_snapshot(spot=eth(10), wallet=usdc(50_000))
    d = policy.decide(s, replace(P, hedge_ratio=UNIT // 2))
    assert d.target_size == -eth(5) and d.size_delta == -eth(5)


def test_extra_exposure_adds_to_spot_balance() -> None:
    s = make_snapshot(spot=eth(10), extra=eth("2.5"), wallet=usdc(100_000))
    d = policy.decide(s, P)
    assert d.target_size == -eth("12.5") and d.size_delta == -eth("12.5")


def test_spot_token_decimals_are_respected() -> None:
    # a WBTC-like 8-decimal spot token: 1.5 units
    s = make_snapshot(spot=150_000_000, spot_decimals=8, wallet=usdc(50_000))
    assert policy.decide(s, P).target_size == -eth("1.5")


def test_no_position_no_exposure_withdraws_all_margin() -> None:
    s = make_snapshot(spot=0, size=0, margin=usd(500))
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.REBALANCE and d.code == "withdraw_excess"
    assert d.margin_delta == -usdc(500) and d.size_delta == 0


def test_no_position_withdrawal_capped_by_accessible_margin() -> None:
    s = make_snapshot(spot=0, size=0, margin=usd(500), accessible_margin=usd(300))
    assert policy.decide(s, P).margin_delta == -usdc(300)


def test_closing_the_hedge_when_exposure_is_gone() -> None:
    s = make_snapshot(spot=0, size=-eth(10), margin=usd(15_000))
    d = policy.decide(s, P)
    assert d.target_size == 0 and d.size_delta == eth(10)
    a = after(s, d.size_delta, d.margin_delta)
    assert a.size == 0
    # no withdrawal in the plan that closes: the close may fill up to the slippage bound worse
    # than expected, so a withdrawal sized at the expected fill could fail
    assert d.margin_delta == 0 and "next cycle" in d.reason
    kinds = [x.kind for x in planner.plan(d, P, s.account.size).actions]
    assert kinds == [ActionKind.TRADE]
    # the next cycle withdraws what the market says is withdrawable, not what was expected
    later = make_snapshot(spot=0, size=0, margin=a.margin - usd(40), accessible_margin=a.margin - usd(40))
    d2 = policy.decide(later, P)
    assert d2.code == "withdraw_excess" and d2.margin_delta == -((a.margin - usd(40)) // 10**12)


def test_liquidatable_account_is_refused() -> None:
    s = make_snapshot(spot=eth(10), size=-eth(10), margin=0, wallet=usdc(50_000))
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.REFUSE and d.refusal is RefusalKind.ACCOUNT and d.code == "no_margin"
    assert planner.plan(d, P, s.account.size).actions == ()


def test_two_step_keeper_fee_is_counted() -> None:
    direct = policy.decide(make_snapshot(spot=eth(10), wallet=usdc(50_000)), P)
    two = policy.decide(make_snapshot(spot=eth(10), wallet=usdc(50_000), two_step=True), P)
    assert two.expected_fee == direct.expected_fee + usd(2)
    assert two.margin_delta == direct.margin_delta + usdc(2)


# --------------------------------------------------------------------------------------------
# bugs found by these tests and fixed (kept as regression tests)
# --------------------------------------------------------------------------------------------

TRADE_CODES = {"rebalance", "split", "collateral_limited"}


@pytest.mark.parametrize("s", [
    # 10 ETH to hedge, no margin, empty wallet: HOLD 'rebalance' "... trade -10.0000"
    make_snapshot(spot=eth(10), wallet=0),
    # the same above the per-cycle cap: HOLD 'split'
    make_snapshot(spot=eth(200), wallet=0),
    # two-step market, 1 USDC: less than the 2 USD keeper fee, so no trade is possible;
    # REBALANCE 'rebalance' that only deposits the 1 USDC (below the $10 minimum collateral move)
    make_snapshot(spot=eth(10), wallet=usdc(1), two_step=True),
], ids=["hold_rebalance", "hold_split", "deposit_only_rebalance"])
def test_code_matches_what_the_decision_does(s: Snapshot) -> None:
    d = policy.decide(s, P)
    assert d.size_delta == 0                                   # no trade can be funded
    assert d.code not in TRADE_CODES, (d.kind, d.code, d.reason)
    assert "collateral" in d.reason


def test_collateral_limited_trade_meets_market_minimum_margin() -> None:
    # 30 USDC in the wallet, no margin: the policy deposits 30 and shorts ~0.03 ETH at 3x,
    # leaving ~30 USD margin, below the market's 40 USD minimum, so the market rejects the trade.
    s = make_snapshot(spot=eth(10), wallet=usdc(30))
    d = policy.decide(s, P)
    if d.size_delta != 0:
        a = after(s, d.size_delta, d.margin_delta)
        assert a.margin >= max(a.notional * UNIT // s.market.max_leverage, MIN_INITIAL_MARGIN)


def test_reasons_show_enough_digits_and_utc_times() -> None:
    """'leverage 3.00x above 3.00x' was not true to read; raw Unix seconds were not readable."""
    from hedger.decide.policy import _lev
    assert _lev(3 * UNIT + 4 * UNIT // 1000, 3 * UNIT) == "3.004x"
    assert _lev(3 * UNIT, 3 * UNIT + 4 * UNIT // 1000) == "3.000x"
    assert _lev(2 * UNIT, 3 * UNIT) == "2.00x"


def test_a_refusal_still_carries_the_target_it_would_hedge_to() -> None:
    """`hedger status` during a refusal (a stale feed, the sequencer's grace) showed "target position
    0.0000" and "hedge error 0.0000" for 10 ETH held unhedged: a refused decision carried no target.
    It carries the target now (nothing is sent either way)."""
    s = make_snapshot(spot=eth(10), size=0, margin=0, updated_at=NOW - 10_000)       # stale feed
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.REFUSE and d.size_delta == 0 and d.margin_delta == 0
    assert d.target_size == -eth(10)
