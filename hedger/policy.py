"""The hedging policy: pure, no I/O. Readings + parameters -> a decision with its reason.

Rules, in order (defaults in :class:`hedger.types.PolicyParams`, documented in the README):

1. Guards (``hedger.guards``): refuse on a doubtful oracle, sequencer or chain.
2. A two-step order still pending: hold (never submit a second); once expired, cancel it.
3. Target short = -(exposure x hedge ratio). Funding-aware option: while the hedge side
   pays funding above ``funding_threshold`` a year, any ratio inside
   [``funding_min_ratio``, ``hedge_ratio``] is on target (outside it, the nearest edge is).
   Trade when the position is outside the band (a fraction of the target) and the error is worth at least the minimum trade
   size; during the cooldown after a rebalance, hold unless the error exceeds twice
   the band. A trade is capped per cycle (larger moves split across cycles) and never
   overshoots the target.
4. Collateral: after the planned trade, top up to the target leverage when leverage
   would exceed the maximum or the liquidation price would be within the liquidation
   buffer of the price; withdraw the excess down to the target leverage when leverage
   falls below the minimum. If the wallet cannot fund a needed top-up, the short is
   grown only as far as the collateral allows, or reduced, so that leverage after the
   action never exceeds the maximum.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hedger import guards
from hedger.fixedpoint import UNIT, fmt_units, market_fill_price, market_order_fee, sdiv
from hedger.types import Decision, DecisionKind, PolicyParams, RefusalKind, Snapshot

INFINITE = 2**255


@dataclass(frozen=True)
class PostTrade:
    """The account as the policy expects it after a trade and a collateral move (E18)."""

    size: int
    margin: int          # remaining margin at the oracle price
    notional: int
    leverage: int        # INFINITE when margin <= 0 with a position
    liq_distance: int    # fraction of the price before liquidation; INFINITE without a position
    fill_price: int
    fee: int


def _usd(v: int) -> str:
    return "$" + fmt_units(v, 18, 2)


def _lev(v: int) -> str:
    return "inf" if v >= INFINITE else fmt_units(v, 18, 2) + "x"


def _units(v: int) -> str:
    return fmt_units(v, 18, 4)


def leverage(size: int, price: int, margin: int) -> int:
    notional = abs(size) * price // UNIT
    if notional == 0:
        return 0
    if margin <= 0:
        return INFINITE
    return notional * UNIT // margin


def post_trade(s: Snapshot, delta: int, deposit_native: int) -> PostTrade:
    """Expected state after trading ``delta`` (E18) and moving ``deposit_native`` collateral (+/-)."""
    m, a = s.market, s.account
    price = s.oracle.price_e18
    scale = 10 ** (18 - m.collateral_decimals)
    fill, fee = price, 0
    if delta != 0:
        fill = market_fill_price(m.price or price, m.skew, delta, m.skew_scale)
        fee = market_order_fee(m.skew, delta, fill, m.taker_fee, m.maker_fee)
        if m.two_step:
            fee += m.order_keeper_fee
        # realised at the fill price, valued at the market's price: the premium is a cost
        premium_cost = sdiv(delta * (fill - (m.price or price)), UNIT)
    else:
        premium_cost = 0
    size = a.size + delta
    margin = a.margin + deposit_native * scale - premium_cost - fee
    notional = abs(size) * price // UNIT
    lev = leverage(size, price, margin)
    if notional == 0:
        dist = INFINITE
    else:
        liq_fee = min(max(notional * m.liquidation_fee_ratio // UNIT, m.min_keeper_fee), m.max_keeper_fee)
        liq_margin = notional * m.liquidation_buffer_ratio // UNIT + liq_fee
        liq_premium = notional * abs(size) // m.skew_scale * m.liquidation_premium_multiplier // UNIT
        dist = (margin - liq_margin - liq_premium) * UNIT // notional
    return PostTrade(size=size, margin=margin, notional=notional, leverage=lev, liq_distance=dist,
                     fill_price=fill, fee=fee)


def _margin_target(s: Snapshot, p: PolicyParams, notional: int) -> int:
    """Margin that puts the position at the target leverage, never below the market's minimum."""
    if notional == 0:
        return 0
    return max(notional * UNIT // p.target_leverage, s.market.min_initial_margin * 5 // 4)


def _acceptable(s: Snapshot, p: PolicyParams, pt: PostTrade, growing: bool) -> bool:
    """Leverage after the action within the policy's maximum; a growing position must also meet
    the market's own opening checks (initial margin, minimum margin, not liquidatable), with a
    2% cushion for the gap between fill and mark price."""
    if pt.size == 0:
        return True
    if pt.leverage > p.max_leverage:
        return False
    if growing:
        m = s.market
        required = max(pt.notional * UNIT // m.max_leverage, m.min_initial_margin) * 102 // 100
        if pt.margin < required or pt.liq_distance <= 0:
            return False
    return True


def _with_cushion(p: PolicyParams) -> PolicyParams:
    """The searches below aim 1% inside the maximum leverage: funding accrued and prices moved
    between reading and mining would otherwise leave the result a hair above it."""
    return replace(p, max_leverage=p.max_leverage * 99 // 100)


def _largest_acceptable(s: Snapshot, p: PolicyParams, delta: int, deposit: int) -> int:
    """Largest part of a growing ``delta`` (same sign, toward zero) that is acceptable."""
    p = _with_cushion(p)
    lo, hi = 0, abs(delta)
    sign = 1 if delta > 0 else -1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _acceptable(s, p, post_trade(s, sign * mid, deposit), growing=True):
            lo = mid
        else:
            hi = mid - 1
    return sign * lo


def _smallest_deleverage(s: Snapshot, p: PolicyParams, deposit: int) -> int:
    """Smallest reduction of the position (toward zero) that brings leverage <= max."""
    p = _with_cushion(p)
    size = s.account.size
    sign = -1 if size > 0 else 1
    lo, hi = 0, abs(size)
    while lo < hi:
        mid = (lo + hi) // 2
        if _acceptable(s, p, post_trade(s, sign * mid, deposit), growing=False):
            hi = mid
        else:
            lo = mid + 1
    return sign * lo


def _price_doubt(s: Snapshot, p: PolicyParams) -> str | None:
    """Why the oracle's price is in doubt (an independent source disagrees or is unusable), or None."""
    if s.reference_problem:
        return f"second price source {s.reference_source} unusable ({s.reference_problem})"
    if s.reference_price is None:
        return None
    price = s.oracle.price_e18
    div = abs(price - s.reference_price) * UNIT // price
    if div > p.max_price_divergence:
        return (f"oracle {_usd(price)} and {s.reference_source} {_usd(s.reference_price)} disagree by "
                f"{fmt_units(div * 100, 18, 2)}% (limit {fmt_units(p.max_price_divergence * 100, 18, 2)}%)")
    return None


def _funding_range(s: Snapshot, p: PolicyParams, target: int) -> str | None:
    """When the hedge side pays funding above ``funding_threshold`` a year and a range is
    configured (``funding_min_ratio`` below ``hedge_ratio``): why the range applies, else None."""
    if target == 0 or p.funding_min_ratio >= p.hedge_ratio:
        return None
    # positive rate: longs pay shorts. The hedge pays when its side is the paying one.
    paying = -s.market.funding_rate if target < 0 else s.market.funding_rate
    annual = paying * 365
    if annual <= p.funding_threshold:
        return None
    side = "shorts" if target < 0 else "longs"
    return (f"{side} pay {fmt_units(annual * 100, 18, 1)}%/yr funding (above "
            f"{fmt_units(p.funding_threshold * 100, 18, 1)}%), so the hedge ratio may sit between "
            f"{fmt_units(p.funding_min_ratio, 18, 2)} and {fmt_units(p.hedge_ratio, 18, 2)}")


def decide(s: Snapshot, p: PolicyParams) -> Decision:
    refused = guards.check(s, p)
    if refused is not None:
        return refused
    m, a = s.market, s.account
    now = s.chain.block_timestamp
    price = s.oracle.price_e18
    scale = 10 ** (18 - m.collateral_decimals)
    target = -sdiv(s.exposure.total * p.hedge_ratio, UNIT)
    lev_before = leverage(a.size, price, a.margin)
    base = dict(target_size=target, leverage_before=lev_before)

    o = a.pending_order
    if o is not None:
        if now > o.expires_at:
            return Decision(kind=DecisionKind.REBALANCE, code="cancel_expired_order", cancel_order=True,
                            reason=f"two-step order of {_units(o.size_delta)} expired at {o.expires_at} "
                                   f"unfilled: cancelling it before hedging again", **base)
        return Decision(kind=DecisionKind.HOLD, code="order_pending",
                        reason=f"two-step order of {_units(o.size_delta)} pending (executable at {o.executable_at}, "
                               f"expires at {o.expires_at}); not submitting another", **base)
    if a.size != 0 and a.margin <= 0:
        return Decision(kind=DecisionKind.REFUSE, refusal=RefusalKind.ACCOUNT, code="no_margin",
                        reason="the position has no remaining margin (liquidatable): act by hand", **base)

    # 1. size (with the funding-aware range, the target is the nearest point of the range)
    funding_note = _funding_range(s, p, target)
    in_range = False
    if funding_note is not None:
        edge = -sdiv(s.exposure.total * p.funding_min_ratio, UNIT)
        lo, hi = min(edge, target), max(edge, target)
        in_range = lo <= a.size <= hi
        target = min(max(a.size, lo), hi)
        base["target_size"] = target
    error = a.size - target
    band_abs = abs(target) * p.band // UNIT
    err_usd = abs(error) * price // UNIT
    cooling = s.last_rebalance_at is not None and now - s.last_rebalance_at < p.cooldown_s
    delta = 0
    reasons: list[str] = []
    if in_range:
        code = "funding_range"
        reasons.append(f"position {_units(a.size)} inside the funding-aware range: {funding_note}")
    elif abs(error) <= band_abs:
        code = "within_band"
        reasons.append(f"position {_units(a.size)} within {fmt_units(p.band * 100, 18, 1)}% band of target "
                       f"{_units(target)}")
    elif err_usd < p.min_trade_usd:
        code = "below_min_trade"
        reasons.append(f"hedge error {_units(error)} ({_usd(err_usd)}) below the minimum trade {_usd(p.min_trade_usd)}")
    elif cooling and abs(error) <= 2 * band_abs:
        code = "cooling_down"
        reasons.append(f"cooling down: last rebalance {now - s.last_rebalance_at}s ago (cooldown {p.cooldown_s}s) "
                       f"and error {_units(error)} within twice the band")
    else:
        delta = target - a.size
        cap = p.max_trade_usd * UNIT // price
        code = "rebalance"
        if abs(delta) > cap:
            delta = cap if delta > 0 else -cap
            code = "split"
            reasons.append(f"moving {_units(delta)} of {_units(target - a.size)} toward target {_units(target)} "
                           f"(max {_usd(p.max_trade_usd)} per cycle)")
        else:
            reasons.append(f"position {_units(a.size)} off target {_units(target)} by {_units(error)}: "
                           f"trade {_units(delta)}")
        if funding_note is not None:
            reasons.append(f"target is the nearest edge of the funding-aware range ({funding_note})")

    # risk-increasing actions need a price that an independent source confirms, and room
    # under today's limits
    restricted = _price_doubt(s, p)
    growing = delta != 0 and abs(a.size + delta) > abs(a.size)
    if restricted and growing:
        reasons.append(f"{restricted}: not growing the hedge (risk-reducing actions only)")
        delta, code, growing = 0, "price_divergence", False
    if growing and s.daily is not None:
        over = s.daily.blocks(abs(delta) * price // UNIT)
        if over:
            reasons.append(f"{over}: growing the hedge waits until the next day")
            delta, code, growing = 0, "daily_limit", False
    if s.daily is not None and not restricted:
        restricted = s.daily.blocks(0)

    # 2. collateral
    deposit = 0
    pt = post_trade(s, delta, 0)
    cs = s.collateral_status
    wallet = a.collateral_wallet if cs.can_move else 0
    if not cs.can_move and (delta != 0 or pt.leverage > p.max_leverage or pt.leverage < p.min_leverage):
        reasons.append(f"{cs.problem()}: no collateral can be deposited or withdrawn")
    needs_margin = pt.size != 0 and (pt.leverage > p.max_leverage or pt.liq_distance < p.liquidation_buffer
                                     or not _acceptable(s, p, pt, growing))
    if needs_margin:
        if a.size == 0:
            why = "new short needs collateral"
        elif pt.leverage > p.max_leverage:
            why = f"leverage {_lev(pt.leverage)} above {_lev(p.max_leverage)}"
        else:
            why = f"liquidation within {fmt_units(max(pt.liq_distance, 0) * 100, 18, 1)}% of the price"
        want = _margin_target(s, p, pt.notional) - pt.margin
        deposit = max(0, min(-(-want // scale), wallet))
        pt = post_trade(s, delta, deposit)
        cut_note = ""
        if not _acceptable(s, p, pt, growing):
            short_of = f"collateral short ({fmt_units(wallet, m.collateral_decimals, 2)} in wallet)"
            if growing:
                wanted = delta
                delta = _largest_acceptable(s, p, delta, deposit)
                if delta != 0:
                    code = "collateral_limited"
                    cut_note = (f"{short_of}: hedge grown by {_units(delta)} of {_units(wanted)} only, "
                                f"to keep leverage <= {_lev(p.max_leverage)}")
                else:
                    code = "collateral_short"
                    cut_note = f"{short_of}: cannot fund growing the hedge by {_units(wanted)}"
            if not _acceptable(s, p, post_trade(s, delta, deposit), growing=False):
                delta, code = _smallest_deleverage(s, p, deposit), "deleverage"
                cut_note = (f"{short_of}: reducing the hedge by {_units(delta)} "
                            f"to keep leverage <= {_lev(p.max_leverage)}")
        if delta == 0 and deposit > 0:
            # a deposit only where it serves: the position as it stands must need it
            cur = post_trade(s, 0, 0)
            if cur.size == 0 or (cur.leverage <= p.max_leverage and cur.liq_distance >= p.liquidation_buffer):
                deposit = 0
        if deposit > 0:
            reasons.append(f"{why}: top up {fmt_units(deposit, m.collateral_decimals, 2)} collateral "
                           f"toward {_lev(p.target_leverage)}")
            if delta == 0 and code not in ("collateral_short", "deleverage"):
                code = "top_up"
        if cut_note:
            reasons.append(cut_note)
        pt = post_trade(s, delta, deposit)
    elif pt.leverage < p.min_leverage and not (m.two_step and delta != 0) and cs.can_move and not restricted:
        # (on a two-step market a withdrawal waits until the order has filled)
        excess = pt.margin - _margin_target(s, p, pt.notional)
        if pt.size == 0:
            excess = min(excess, a.accessible_margin) if delta == 0 else excess
        excess_native = max(0, excess) // scale
        if excess_native > 0 and excess_native * scale >= p.min_collateral_usd:
            deposit = -excess_native
            reasons.append(f"leverage {_lev(pt.leverage)} below {_lev(p.min_leverage)}: withdraw "
                           f"{fmt_units(excess_native, m.collateral_decimals, 2)} excess collateral")
            code = code if delta else "withdraw_excess"
            pt = post_trade(s, delta, deposit)
    if delta == 0 and deposit == 0:
        return Decision(kind=DecisionKind.HOLD, code=code, reason="; ".join(reasons) or "nothing to do",
                        leverage_after=pt.leverage, liquidation_distance_after=pt.liq_distance, **base)
    return Decision(kind=DecisionKind.REBALANCE, code=code, reason="; ".join(reasons), size_delta=delta,
                    margin_delta=deposit, expected_fill_price=pt.fill_price if delta else 0,
                    expected_fee=pt.fee, leverage_after=pt.leverage, liquidation_distance_after=pt.liq_distance,
                    **base)
