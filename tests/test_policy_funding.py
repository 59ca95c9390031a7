"""The funding-aware option of the policy: while the hedge pays funding above a threshold,
any hedge ratio inside [funding_min_ratio, hedge_ratio] is on target. No chain."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hedger.decide import policy
from hedger.core.fixedpoint import UNIT, sdiv
from hedger.core.types import DecisionKind, PolicyParams
from tests.snapshots import eth, make_snapshot, usd, usdc

P = PolicyParams(funding_min_ratio=8 * UNIT // 10)        # range 0.8 .. 1.0 above 10%/yr
SHORTS_PAY = -UNIT * 20 // 100 // 365                      # -20%/yr per day: shorts pay longs
LONGS_PAY = UNIT * 20 // 100 // 365


def test_inside_range_holds_while_shorts_pay() -> None:
    # 10 ETH exposure, short 8.5: ratio 0.85 is inside 0.8..1.0 -> hold
    s = make_snapshot(spot=eth(10), size=-eth("8.5"), margin=usd(12_750), wallet=usdc(50_000),
                      funding_rate=SHORTS_PAY)
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.HOLD and d.code == "funding_range"
    assert "shorts pay 20.0%/yr" in d.reason
    # the same position with the option off is outside the 5% band: it trades to -10
    d_off = policy.decide(s, replace(P, funding_min_ratio=UNIT))
    assert d_off.kind is DecisionKind.REBALANCE and d_off.size_delta == -eth("1.5")


def test_below_range_trades_to_the_near_edge_only() -> None:
    s = make_snapshot(spot=eth(10), size=-eth(5), margin=usd(7_500), wallet=usdc(50_000), funding_rate=SHORTS_PAY)
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.REBALANCE and d.size_delta == -eth(3)   # to -8, not -10
    assert d.target_size == -eth(8)


def test_over_hedged_trades_back_to_full_ratio_edge() -> None:
    s = make_snapshot(spot=eth(10), size=-eth(12), margin=usd(18_000), wallet=usdc(50_000), funding_rate=SHORTS_PAY)
    d = policy.decide(s, P)
    assert d.size_delta == eth(2)


def test_no_range_when_shorts_receive_or_pay_little() -> None:
    for rate in (LONGS_PAY, 0, -UNIT * 5 // 100 // 365):      # receiving, zero, paying 5%/yr < 10%
        s = make_snapshot(spot=eth(10), size=-eth("8.5"), margin=usd(12_750), wallet=usdc(50_000),
                          funding_rate=rate)
        d = policy.decide(s, P)
        assert d.code != "funding_range" and d.size_delta == -eth("1.5")


def test_long_hedge_uses_the_long_side() -> None:
    # negative exposure (short spot) is hedged long; longs pay when the rate is positive
    s = make_snapshot(extra=-eth(10), size=eth("8.5"), margin=usd(12_750), wallet=usdc(50_000),
                      funding_rate=LONGS_PAY)
    assert policy.decide(s, P).code == "funding_range"
    s2 = make_snapshot(extra=-eth(10), size=eth("8.5"), margin=usd(12_750), wallet=usdc(50_000),
                       funding_rate=SHORTS_PAY)
    assert policy.decide(s2, P).code != "funding_range"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exposure=st.integers(1, 1_000).map(lambda n: eth(n)),
       ratio_now=st.integers(0, 150),
       min_ratio=st.integers(50, 100),
       rate_pct=st.integers(-200, 200))
def test_trade_never_leaves_or_overshoots_the_range(exposure: int, ratio_now: int, min_ratio: int,
                                                    rate_pct: int) -> None:
    """Whatever the funding, a trade ends between the current position and the range, never beyond
    the full hedge ratio; with the hedge receiving funding (or paying little) the range is ignored."""
    size = -exposure * ratio_now // 100
    p = replace(P, funding_min_ratio=UNIT * min_ratio // 100, min_trade_usd=0)
    rate = UNIT * rate_pct // 100 // 365
    s = make_snapshot(spot=exposure, size=size, margin=abs(size) * 3000 // 2 + usd(100),
                      wallet=usdc(10**9), funding_rate=rate)
    d = policy.decide(s, p)
    full = -exposure
    edge = -sdiv(exposure * p.funding_min_ratio, UNIT)
    after = size + d.size_delta
    paying = -rate * 365 > p.funding_threshold and p.funding_min_ratio < UNIT
    if not paying:
        assert d == policy.decide(s, replace(p, funding_min_ratio=UNIT))
        return
    if size < full:                       # over-hedged: back toward the full-ratio edge, not past it
        assert size <= after <= full
    elif size > edge:                     # under-hedged: toward the low edge only, not past it
        assert edge <= after <= size
    else:                                 # inside the range: the position stays
        assert d.size_delta == 0 and d.code == "funding_range"
