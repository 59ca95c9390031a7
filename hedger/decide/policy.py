"""The hedging policy: pure, no I/O. Readings + parameters -> a decision with its reason.

Rules, in order (defaults in :class:`hedger.core.types.PolicyParams`, documented in the README):

1. Guards (``hedger.decide.guards``): refuse on a doubtful oracle, sequencer or chain.
2. A two-step order still pending: never submit a second; once expired, cancel it. While it is
   pending, still top up when the liquidation distance calls for it, sized for the worse
   of the position before and after the order fills (withdrawals wait).
3. Target = -(exposure x hedge ratio): a short for a holder who is long, a long for one who is
   short (negative exposure). Funding-aware option: while the hedge side
   pays funding above ``funding_threshold`` a year, any ratio inside
   [``funding_min_ratio``, ``hedge_ratio``] is on target (outside it, the nearest edge is).
   Trade when the position is outside the band (a fraction of the target) and the error is worth at least the minimum trade
   size; during the cooldown after a rebalance, hold unless the error exceeds twice
   the band. A trade is capped per cycle (larger moves split across cycles) and never
   overshoots the target.
   Risk: moving the position toward zero is risk-reducing; opening or growing a position, on
   either side, is risk-increasing (``hedger.decide.planner.split_trade``, shared with the planner). A
   trade that crosses zero is split: the close always goes; the opening of the other side must
   pass the price-divergence check and the daily limits like any growth (on a two-step market it
   waits for the next cycle: one order at a time).
4. Collateral, decided in one venue-neutral measure: the distance to liquidation (the fraction
   the price must move against the hedge to reach it). The band (:func:`band`) has a floor, a
   target and a ceiling, each set directly (``min/target/max_liq_distance``) or translated by
   the venue's model from the leverage settings (the distance of a position held at the
   maximum, target, minimum leverage); the liquidation buffer is an extra floor. After the
   planned trade, top up to the target when liquidation would be nearer than the floor;
   withdraw the excess down to the target when it is further than the ceiling. If the wallet
   cannot fund a needed top-up, the hedge is grown only as far as the collateral allows, or
   reduced, so that liquidation after the action is never nearer than the maximum leverage's
   distance (the buffer asks for collateral; it never cuts the hedge). Collateral is valued
   through the model (:meth:`hedger.core.model.MarketModel.collateral_usd`): a token need not
   be worth 1 USD. A plan that closes the position withdraws nothing:
   the next cycle withdraws what the market then says is withdrawable (accessible margin),
   so an adverse fill within the slippage bound cannot make the withdrawal fail.

Venue: the policy knows no venue's formulas. It asks the snapshot's market model
(:class:`hedger.core.model.MarketModel`, built by :func:`hedger.core.model.model_for` from the
venue's reads: the reference market's is ``hedger.protocols.reference.model``) for the fill and
fee of a trade, the account after a trade and a collateral move, the largest withdrawal, the
minimum collateral, the carry of a side, the distance at a leverage, the margin for a distance,
the value of its collateral token and the venue's opening checks.

Prices: margin, leverage and liquidation distance are the market's own figures, so the model
computes them at the market's price (its feed: that is what liquidates), as it does the fill
and the fee. The hedger's oracle values the exposure and the hedge error, sizes the per-cycle
cap, the minimum trade and the daily limits, and is what the guards check.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hedger.decide import guards
from hedger.core.fixedpoint import UNIT, fmt_units, sdiv
from hedger.core.model import INFINITE, MarketModel, PostTrade, leverage, model_for
from hedger.decide.planner import price_bound, split_trade
from hedger.core.timefmt import when
from hedger.core.types import Decision, DecisionKind, Order, OrderState, PolicyParams, RefusalKind, Snapshot


def _usd(v: int) -> str:
    return "$" + fmt_units(v, 18, 2)


def _lev(v: int, other: int | None = None) -> str:
    """Leverage for a reason, with enough digits to tell it from ``other`` (the limit it is
    compared with): 3.004x against 3x reads "3.004x above 3.00x", never "3.00x above 3.00x"."""
    if v >= INFINITE:
        return "inf"
    places = 2
    if other is not None and other < INFINITE and v != other:
        while places < 18 and fmt_units(v, 18, places) == fmt_units(other, 18, places):
            places += 1
    return fmt_units(v, 18, places) + "x"


def _units(v: int) -> str:
    return fmt_units(v, 18, 4)


def post_trade(s: Snapshot, delta: int, deposit_native: int) -> PostTrade:
    """Expected state after trading ``delta`` (E18) and moving ``deposit_native`` collateral (+/-),
    as the snapshot's venue computes it (:meth:`hedger.core.model.MarketModel.after`)."""
    return model_for(s).after(delta, deposit_native)


@dataclass(frozen=True)
class Band:
    """The collateral band of a position, in liquidation distance (E18 fractions of the market's
    price: how far the price must move against the hedge to liquidate it), and the margin (E18
    USD) each edge needs, by which the account is compared: the same rule as the distance, at the
    margin's finer precision (a distance is rounded to an E18 fraction of the notional)."""

    hard: int          # the least distance an action may leave (max_leverage, or min_liq_distance)
    floor: int         # top up below it: ``hard``, or the liquidation buffer when that is further
    target: int        # top-ups and withdrawals aim here
    ceiling: int       # withdraw above it (INFINITE: never, as with min_leverage 0)
    hard_margin: int
    floor_margin: int
    ceiling_margin: int


def band(mdl: MarketModel, p: PolicyParams, size: int) -> Band:
    """The band of a position of ``size`` on ``mdl``'s venue: each edge is the distance set directly
    (``min/target/max_liq_distance``), else the distance the venue's model gives the matching
    leverage (max, target, min: :meth:`~hedger.core.model.MarketModel.distance_at_leverage`, the
    distance of the position held with margin = notional / leverage). The liquidation buffer is an
    extra floor; when it lifts the floor towards the target (a venue liquidating early, with a large
    maintenance margin), the target stays above the floor by at least half the gap the settings
    give, the ceiling likewise above the target, so a top-up never lands inside the floor and a
    withdrawal never undoes a top-up."""
    notional = abs(size) * mdl.market_price // UNIT

    def edge(distance: int | None, lev: int) -> int:
        return distance if distance is not None else mdl.distance_at_leverage(size, lev)
    hard = edge(p.min_liq_distance, p.max_leverage)
    target = edge(p.target_liq_distance, p.target_leverage)
    ceiling0 = edge(p.max_liq_distance, p.min_leverage)
    floor = max(hard, p.liquidation_buffer)
    lifted = max(target, floor + max(target - hard, 0) // 2)
    ceiling = max(ceiling0, lifted + max(ceiling0 - target, 0) // 2)
    # margins: an edge set as a leverage needs notional / leverage (what its distance stands for),
    # counted as the core's ``leverage()`` counts it; an edge set or lifted as a distance, the
    # margin the model says puts liquidation that far
    if p.min_liq_distance is None:
        hard_margin = notional * UNIT // (p.max_leverage + 1) + 1    # least margin at most at max_leverage
    else:
        hard_margin = mdl.margin_for_distance(size, hard)
    floor_margin = hard_margin if floor == hard else max(hard_margin, mdl.margin_for_distance(size, floor))
    if ceiling >= INFINITE:
        ceiling_margin = INFINITE
    elif p.max_liq_distance is None and ceiling == ceiling0:
        ceiling_margin = notional * UNIT // p.min_leverage                # above it: below min_leverage
    else:
        ceiling_margin = mdl.margin_for_distance(size, ceiling)
    return Band(hard=hard, floor=floor, target=lifted, ceiling=ceiling, hard_margin=hard_margin,
                floor_margin=floor_margin, ceiling_margin=ceiling_margin)


def _pct(v: int) -> str:
    return "inf" if v >= INFINITE else fmt_units(max(v, 0) * 100, 18, 1)


def _needs_top_up(mdl: MarketModel, p: PolicyParams, pt: PostTrade) -> bool:
    """A position whose liquidation is nearer than the band's floor (the distance the maximum
    leverage gives on this venue, or the liquidation buffer when that is further)."""
    return pt.size != 0 and pt.margin < band(mdl, p, pt.size).floor_margin


def _too_far(mdl: MarketModel, p: PolicyParams, pt: PostTrade) -> bool:
    """Collateral to spare: liquidation further than the band's ceiling, or no position (unless the
    ceiling is infinite: min_leverage 0 without a distance set withdraws nothing)."""
    if pt.size == 0:
        return p.max_liq_distance is not None or p.min_leverage > 0
    return pt.margin > band(mdl, p, pt.size).ceiling_margin


def _why_low(mdl: MarketModel, p: PolicyParams, pt: PostTrade, moment: str = "") -> str:
    """Why a position needs collateral, in the venue's leverage when that is what the operator set."""
    b = band(mdl, p, pt.size)
    at = f" {moment}" if moment else ""
    where = f"liquidation {_pct(pt.liq_distance)}% from the price, floor {_pct(b.floor)}%"
    if p.min_liq_distance is None and pt.leverage > p.max_leverage:
        return f"leverage {_lev(pt.leverage, p.max_leverage)}{at} above {_lev(p.max_leverage, pt.leverage)} ({where})"
    return f"liquidation within {_pct(pt.liq_distance)}% of the price{at} (floor {_pct(b.floor)}%)"


def _why_high(mdl: MarketModel, p: PolicyParams, pt: PostTrade) -> str:
    """Why a position has collateral to spare."""
    if pt.size == 0:
        return "no position"
    b = band(mdl, p, pt.size)
    where = f"liquidation {_pct(pt.liq_distance)}% from the price, ceiling {_pct(b.ceiling)}%"
    if p.max_liq_distance is None and pt.leverage < p.min_leverage:
        return f"leverage {_lev(pt.leverage, p.min_leverage)} below {_lev(p.min_leverage, pt.leverage)} ({where})"
    return where


def _aim(mdl: MarketModel, p: PolicyParams, size: int) -> str:
    """The target a collateral move aims at, as set: a leverage and its distance, or a distance."""
    b = band(mdl, p, size)
    if p.target_liq_distance is None and b.target == mdl.distance_at_leverage(size, p.target_leverage):
        return f"{_lev(p.target_leverage)} (liquidation {_pct(b.target)}% away)"
    return f"liquidation {_pct(b.target)}% away"


def _limit(mdl: MarketModel, p: PolicyParams, size: int) -> str:
    """The limit an action keeps, as set: the maximum leverage and its distance, or a distance."""
    hard = _pct(band(mdl, p, size).hard)
    if p.min_liq_distance is None:
        return f"leverage <= {_lev(p.max_leverage)} (liquidation at least {hard}% away)"
    return f"liquidation at least {hard}% away"


def _margin_target(mdl: MarketModel, p: PolicyParams, size: int) -> int:
    """Margin that puts the position's liquidation at the band's target distance, never below the
    market's minimum."""
    if size == 0:
        return 0
    target = band(mdl, p, size).target
    if p.target_liq_distance is None and target == mdl.distance_at_leverage(size, p.target_leverage):
        # the target leverage's own distance: its margin exactly (a distance, an E18 fraction of
        # the notional, is coarser than the margin it stands for)
        margin = mdl.margin_for_leverage(abs(size) * mdl.market_price // UNIT, p.target_leverage)
    else:
        margin = mdl.margin_for_distance(size, target)
    return max(margin, mdl.minimums().collateral * 5 // 4)


def _acceptable(mdl: MarketModel, p: PolicyParams, pt: PostTrade, growing: bool) -> bool:
    """Liquidation after the action at least the band's hard floor away (the maximum leverage's
    distance: the buffer asks for a top-up, it never cuts the hedge); a growing position must also
    meet the venue's own opening checks (with its cushion for the gap between fill and mark price)."""
    if pt.size == 0:
        return True
    if pt.margin < band(mdl, p, pt.size).hard_margin:
        return False
    return not growing or mdl.opening_allowed(pt)


def _with_cushion(p: PolicyParams) -> PolicyParams:
    """The searches below aim 1% inside the maximum leverage (1% further than a floor set as a
    distance): funding accrued and prices moved between reading and mining would otherwise leave
    the result a hair beyond it."""
    floor = None if p.min_liq_distance is None else p.min_liq_distance * 101 // 100
    return replace(p, max_leverage=p.max_leverage * 99 // 100, min_liq_distance=floor)


def _largest_acceptable(mdl: MarketModel, size: int, p: PolicyParams, delta: int, deposit: int) -> int:
    """Largest part of a growing ``delta`` (same sign, toward zero) that is acceptable; of a trade
    crossing zero, the close always (a flat position is acceptable) and as much of the opening."""
    p = _with_cushion(p)
    closing, _ = split_trade(size, delta)
    lo, hi = abs(closing), abs(delta)
    sign = 1 if delta > 0 else -1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _acceptable(mdl, p, mdl.after(sign * mid, deposit), growing=True):
            lo = mid
        else:
            hi = mid - 1
    return sign * lo


def _within_reduction_budget(mdl: MarketModel, p: PolicyParams, size: int, delta: int) -> int:
    """``delta`` with its reducing part cut to what the venue's reduction budget buys at the worst
    fill the plan accepts (:meth:`MarketModel.reduction_budget`); unchanged where there is no budget."""
    budget = mdl.reduction_budget()
    closing, opening = split_trade(size, delta)
    if budget is None or closing == 0:
        return delta
    worst = price_bound(mdl.fill(closing)[0], closing, p.max_slippage)
    most = mdl.collateral_usd(budget) * UNIT // worst if worst > 0 else 0
    if abs(closing) <= most:
        return delta
    return most if closing > 0 else -most


def _smallest_deleverage(mdl: MarketModel, size: int, p: PolicyParams, deposit: int) -> int:
    """Smallest reduction of the position (toward zero) that brings its liquidation to the hard floor."""
    p = _with_cushion(p)
    sign = -1 if size > 0 else 1
    lo, hi = 0, abs(size)
    while lo < hi:
        mid = (lo + hi) // 2
        if _acceptable(mdl, p, mdl.after(sign * mid, deposit), growing=False):
            hi = mid
        else:
            lo = mid + 1
    return sign * lo


def _least_deposit(mdl: MarketModel, p: PolicyParams, delta: int, lo: int, hi: int) -> int:
    """The least deposit in (``lo``, ``hi``] with which growing by ``delta`` is acceptable (``hi`` is)."""
    while lo < hi:
        mid = (lo + hi) // 2
        if _acceptable(mdl, p, mdl.after(delta, mid), growing=True):
            hi = mid
        else:
            lo = mid + 1
    return hi


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


def _funding_range(mdl: MarketModel, p: PolicyParams, target: int) -> str | None:
    """When the hedge side pays funding above ``funding_threshold`` a year and a range is
    configured (``funding_min_ratio`` below ``hedge_ratio``): why the range applies, else None."""
    if target == 0 or p.funding_min_ratio >= p.hedge_ratio:
        return None
    # what the hedge's side pays a day (funding on a perp), as a fraction of its notional
    annual = mdl.carry_rate_per_day(target) * 365
    if annual <= p.funding_threshold:
        return None
    side = "shorts" if target < 0 else "longs"
    return (f"{side} pay {fmt_units(annual * 100, 18, 1)}%/yr funding (above "
            f"{fmt_units(p.funding_threshold * 100, 18, 1)}%), so the hedge ratio may sit between "
            f"{fmt_units(p.funding_min_ratio, 18, 2)} and {fmt_units(p.hedge_ratio, 18, 2)}")


def _pending_order(s: Snapshot, mdl: MarketModel, p: PolicyParams, o: Order, base: dict,
                   collateral_orders: int = 0) -> Decision:
    """A two-step order is pending (not expired): never a second order, no withdrawal; a top-up
    when the position as it stands, or as it will be once the order fills, needs one, sized for
    the worse of the two (the order cannot be withdrawn before it expires: its fill is not ours
    to prevent, so the deposit counts as risk-reducing). ``collateral_orders``: collateral-only
    orders already pending, counted against the model's ``collateral_orders_in_flight``."""
    a = s.account
    dec = mdl.collateral_decimals
    now = s.chain.block_timestamp
    held = (f"two-step order {o.key} of {_units(o.size_delta)} pending (executable at {when(o.executable_at, now)}, "
            f"expires at {when(o.expires_at, now)}); not submitting another")
    # an order may carry collateral (GMX: an increase sends it with the order): it arrives with the fill
    before, filled = mdl.after(0, 0), mdl.after(o.size_delta, o.collateral_delta)
    needy = [(moment, pt) for moment, pt in (("as it stands", before), ("once the order fills", filled))
             if _needs_top_up(mdl, p, pt)]
    worse = max(before, filled, key=lambda pt: pt.leverage)
    hold = dict(kind=DecisionKind.HOLD, code="order_pending", leverage_after=worse.leverage,
                liquidation_distance_after=min(before.liq_distance, filled.liq_distance), **base)
    if not needy:
        return Decision(reason=held, **hold)
    moment, pt = needy[0]
    why = _why_low(mdl, p, pt, moment)
    cs = s.collateral_status
    if not cs.can_move:
        return Decision(reason=f"{held}; {why}, but {cs.problem()}: no collateral can be deposited", **hold)
    if mdl.collateral_moves == "order" and collateral_orders >= mdl.collateral_orders_in_flight:
        return Decision(reason=f"{held}; {why}, but collateral moves by order on this market and no further "
                               f"collateral order may be in flight ({collateral_orders} pending, "
                               f"{mdl.collateral_orders_in_flight} allowed): the top-up waits", **hold)
    want = max(_margin_target(mdl, p, x.size) - x.margin for x in (before, filled))
    deposit = max(0, min(mdl.collateral_native(max(want, 0), round_up=True), a.collateral_wallet))
    if deposit == 0:
        return Decision(reason=f"{held}; {why}, but the wallet holds no collateral to top up with", **hold)
    after_before, after_fill = mdl.after(0, deposit), mdl.after(o.size_delta, deposit + o.collateral_delta)
    worse = max(after_before, after_fill, key=lambda x: x.leverage)
    return Decision(kind=DecisionKind.REBALANCE, code="top_up_pending", margin_delta=deposit,
                    deposit_risk_reducing=True,
                    reason=f"{held}; {why}: top up {fmt_units(deposit, dec, 2)} collateral "
                           f"toward {_aim(mdl, p, pt.size)} for the worse of before and after the fill",
                    leverage_after=worse.leverage,
                    liquidation_distance_after=min(after_before.liq_distance, after_fill.liq_distance), **base)


def decide(s: Snapshot, p: PolicyParams) -> Decision:
    """The decision for this snapshot, with a claim of what the venue holds for the account
    (:func:`claim`) when it is worth one."""
    d = _decide(s, p)
    usd = claim(s, p, d)
    return replace(d, claim_usd=usd) if usd else d


def claim(s: Snapshot, p: PolicyParams, d: Decision) -> int:
    """E18 USD to claim this cycle: what the venue's model says is claimable, once at least
    ``min_claim_usd`` (a claim costs a transaction), unless the guards refused the readings or the
    day's gas budget is spent; 0 otherwise. Venue-neutral: a venue with nothing to claim says 0."""
    if d.kind is DecisionKind.REFUSE:        # nothing is sent on a refusal
        return 0
    usd = model_for(s).claimable_usd()
    if usd <= 0 or usd < p.min_claim_usd:
        return 0
    if s.daily is not None and s.daily.gas_left is not None and s.daily.gas_left <= 0:
        return 0
    return usd


def _decide(s: Snapshot, p: PolicyParams) -> Decision:
    # a refusal carries the target too (nothing is sent): `status` shows the hedge error it leaves
    target = -sdiv(s.exposure.total * p.hedge_ratio, UNIT)
    refused = guards.check(s, p)
    if refused is not None:
        return replace(refused, target_size=target)
    mdl, a = model_for(s), s.account
    refused_account = mdl.account_refusal()
    if refused_account is not None:
        return Decision(kind=DecisionKind.REFUSE, refusal=RefusalKind.ACCOUNT, code="account_refused",
                        target_size=target, reason=f"{refused_account}; nothing is sent")
    now = s.chain.block_timestamp
    price = s.oracle.price_e18           # values the exposure and the hedge error (see the module doc)
    dec = mdl.collateral_decimals
    if target > 0 and not mdl.can_hold_long:
        # refused by name, sending nothing: the operator decides (the holding is short the asset,
        # and this venue can only short it)
        return Decision(kind=DecisionKind.REFUSE, refusal=RefusalKind.ACCOUNT, code="long_not_offered",
                        target_size=target,
                        reason=f"the exposure is negative ({_units(-s.exposure.total)}): its hedge would be a long "
                               f"of {_units(target)}, which the venue {s.venue!r} does not offer; nothing is sent "
                               "(hedge it on a venue that holds longs, or set HEDGER_EXTRA_EXPOSURE / "
                               "HEDGER_HEDGE_RATIO so the target is not a long)")
    before = mdl.after(0, 0)
    lev_before = before.leverage
    base = dict(target_size=target, leverage_before=lev_before)

    # orders at the venue: executed and cancelled ones (the venue cancels a market order whose
    # acceptable price was missed) are no longer in flight, so the plan starts from the chain's state
    live = [o for o in a.orders if o.in_flight]
    frozen = [o for o in live if o.state is OrderState.FROZEN]
    if frozen:
        o = frozen[0]
        return Decision(kind=DecisionKind.REFUSE, refusal=RefusalKind.ACCOUNT, code="order_frozen",
                        reason=f"order {o.key} of {_units(o.size_delta)} is frozen by the venue: it may still execute, "
                               "so nothing is sent; cancel it (or let it execute) by hand, then run again", **base)
    expired = [o for o in live if o.expired_at(now)]
    if expired:
        o = expired[0]
        return Decision(kind=DecisionKind.REBALANCE, code="cancel_expired_order", cancel_order=True, order_key=o.key,
                        reason=f"two-step order {o.key} of {_units(o.size_delta)} expired at "
                               f"{when(o.expires_at, now)} unfilled: cancelling it before hedging again", **base)
    if before.size != 0 and before.margin <= 0:
        return Decision(kind=DecisionKind.REFUSE, refusal=RefusalKind.ACCOUNT, code="no_margin",
                        reason="the position has no remaining margin (liquidatable): act by hand", **base)
    sized = [o for o in live if o.kind.changes_size]
    collateral_orders = len(live) - len(sized)
    # pending size orders count against the model's ``orders_in_flight``; the plan starts from the
    # position as it stands, so while one is pending no other is submitted (it would hedge twice)
    if sized:
        return _pending_order(s, mdl, p, sized[0], base, collateral_orders)
    if collateral_orders and collateral_orders >= mdl.collateral_orders_in_flight:
        return Decision(kind=DecisionKind.HOLD, code="order_pending",
                        reason=f"{collateral_orders} collateral order(s) pending at the venue "
                               f"({mdl.collateral_orders_in_flight} allowed in flight): waiting for the venue to "
                               "execute or cancel them before planning again", **base)

    # 1. size (with the funding-aware range, the target is the nearest point of the range)
    funding_note = _funding_range(mdl, p, target)
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
        closing, opening = split_trade(a.size, delta)
        if closing and opening and mdl.trades_are_orders and mdl.orders_in_flight < 2:
            reasons.append(f"crossing zero on a two-step market: closing {_units(closing)} first, the other side "
                           f"opens once this order has filled (one order at a time)")
            delta = closing

    # risk-increasing actions (opening or growing a position, on either side) need a price that
    # an independent source confirms, and room under today's limits; a trade crossing zero keeps
    # its close
    restricted = _price_doubt(s, p)
    closing, opening = split_trade(a.size, delta)
    growing = opening != 0
    if restricted and growing:
        reasons.append(f"{restricted}: not growing the hedge (risk-reducing actions only)")
        delta, code, growing = closing, "price_divergence", False
    if growing and s.daily is not None:
        over = s.daily.blocks(-(-abs(opening) * price // UNIT))     # rounded up: any opening uses room
        if over:
            reasons.append(f"{over}: growing the hedge waits until the next day")
            delta, code, growing = closing, "daily_limit", False
    if s.daily is not None and not restricted:
        restricted = s.daily.blocks(0)
    if growing:
        venue_says = mdl.venue_refusal(mdl.after(delta, 0))
        if venue_says is not None:
            return Decision(kind=DecisionKind.REFUSE, refusal=RefusalKind.ACCOUNT, code="venue_refused",
                            reason=f"{'; '.join(reasons + [venue_says])}: nothing is sent", size_delta=0, **base)

    # 2. collateral
    deposit = 0
    pt = mdl.after(delta, 0)
    cs = s.collateral_status
    wallet = a.collateral_wallet if cs.can_move else 0
    if not cs.can_move and (delta != 0 or _needs_top_up(mdl, p, pt) or _too_far(mdl, p, pt)):
        reasons.append(f"{cs.problem()}: no collateral can be deposited or withdrawn")
    needs_margin = pt.size != 0 and (_needs_top_up(mdl, p, pt) or not _acceptable(mdl, p, pt, growing))
    if needs_margin:
        why = "new position needs collateral" if a.size == 0 else _why_low(mdl, p, pt)
        want = _margin_target(mdl, p, pt.size) - pt.margin
        deposit = max(0, min(mdl.collateral_native(max(want, 0), round_up=True), wallet))
        pt = mdl.after(delta, deposit)
        if growing and deposit < wallet and not _acceptable(mdl, p, pt, growing) \
                and _acceptable(mdl, p, mdl.after(delta, wallet), growing):
            # the venue's opening checks ask more than the target (Aave: the borrow is mined before
            # the sale's proceeds are supplied, so the LTV holds on the deposit alone): the least
            # deposit the wallet can fund that passes them, rather than a smaller hedge
            deposit = _least_deposit(mdl, p, delta, deposit, wallet)
            pt = mdl.after(delta, deposit)
            why += " (more than the target: the venue's opening checks ask for it)"
        cut_note = ""
        if not _acceptable(mdl, p, pt, growing):
            short_of = f"collateral short ({fmt_units(wallet, dec, 2)} in wallet, {_usd(mdl.collateral_usd(wallet))})"
            if growing:
                wanted = delta
                delta = _largest_acceptable(mdl, a.size, p, delta, deposit)
                if split_trade(a.size, delta)[1] != 0:
                    code = "collateral_limited"
                    cut_note = (f"{short_of}: hedge grown by {_units(delta)} of {_units(wanted)} only, "
                                f"to keep {_limit(mdl, p, delta + a.size)}")
                else:
                    code = "collateral_short"
                    cut_note = f"{short_of}: cannot fund growing the hedge by {_units(wanted)}"
                    if delta != 0:
                        cut_note += f" (closing {_units(delta)} only)"
            if not _acceptable(mdl, p, mdl.after(delta, deposit), growing=False):
                delta, code = _smallest_deleverage(mdl, a.size, p, deposit), "deleverage"
                cut_note = (f"{short_of}: reducing the hedge by {_units(delta)} "
                            f"to keep {_limit(mdl, p, delta + a.size)}")
        if delta == 0 and deposit > 0:
            # a deposit only where it serves: the position as it stands must need it
            if not _needs_top_up(mdl, p, before):
                deposit = 0
        if deposit > 0:
            reasons.append(f"{why}: top up {fmt_units(deposit, dec, 2)} collateral "
                           f"({_usd(mdl.collateral_usd(deposit))}) toward {_aim(mdl, p, pt.size)}")
            if delta == 0 and code not in ("collateral_short", "deleverage"):
                code = "top_up"
        if cut_note:
            reasons.append(cut_note)
        pt = mdl.after(delta, deposit)
    elif _too_far(mdl, p, pt) and not (mdl.trades_are_orders and delta != 0) and cs.can_move and not restricted:
        # (on a two-step market a withdrawal waits until the order has filled)
        if pt.size == 0 and delta != 0:
            # closing: the fill may be up to the slippage bound worse than expected, so the
            # freed margin is withdrawn next cycle, as the market then reports it withdrawable
            reasons.append("the freed collateral is withdrawn next cycle, once the close is mined "
                           "(what the market then reports as withdrawable)")
        else:
            excess_native = mdl.collateral_native(max(0, pt.margin - _margin_target(mdl, p, pt.size)))
            if pt.size == 0:
                excess_native = min(excess_native, mdl.max_withdrawal())
            if excess_native > 0 and mdl.collateral_usd(excess_native) >= p.min_collateral_usd:
                deposit = -excess_native
                reasons.append(f"{_why_high(mdl, p, pt)}: withdraw {fmt_units(excess_native, dec, 2)} excess "
                               f"collateral ({_usd(mdl.collateral_usd(excess_native))})")
                code = code if delta else "withdraw_excess"
                pt = mdl.after(delta, deposit)
    capped = _within_reduction_budget(mdl, p, a.size, delta)
    if capped != delta:
        # the venue pays for a reduction out of collateral it may not release at once (Aave's health
        # factor, checked with the debt still owed): shrink by what that collateral buys at the worst
        # accepted fill; each repay frees more for the next cycle
        budget_usd = mdl.collateral_usd(mdl.reduction_budget() or 0)
        reasons.append(f"reducing by {_units(capped)} of {_units(delta)} now, the most that {_usd(budget_usd)} of "
                       f"collateral free to pay for it buys (the rest in later cycles)")
        delta, code = capped, code if code == "deleverage" else "split"
        pt = mdl.after(delta, deposit)
    if delta == 0 and deposit == 0:
        return Decision(kind=DecisionKind.HOLD, code=code, reason="; ".join(reasons) or "nothing to do",
                        leverage_after=pt.leverage, liquidation_distance_after=pt.liq_distance, **base)
    return Decision(kind=DecisionKind.REBALANCE, code=code, reason="; ".join(reasons), size_delta=delta,
                    margin_delta=deposit, expected_fill_price=pt.fill_price if delta else 0,
                    expected_fee=pt.fee, leverage_after=pt.leverage, liquidation_distance_after=pt.liq_distance,
                    deposit_risk_reducing=deposit > 0 and _needs_top_up(mdl, p, before),
                    leg_fill_prices=pt.leg_fills if delta else (), **base)
