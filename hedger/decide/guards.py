"""Pure guards on a snapshot's readings: refuse loudly rather than act on doubtful data.

Chainlink consumer guards (``../shared/PROTOCOLS.md``): a non-positive answer,
round id 0, ``updatedAt`` 0 or in the future, or older than the feed's max
age; an L2 sequencer that is down or came back less than the grace period
ago. A collateral valued by a feed (``HEDGER_COLLATERAL_FEED``) is guarded
as the price feed is. "Now" is the latest block's timestamp, so the guards
stay right on a chain whose time was moved forward; separately, the block
itself must not lag the wall clock by more than a limit (off on local chains).
"""

from __future__ import annotations

from hedger.core.types import Decision, DecisionKind, FeedRound, PolicyParams, RefusalKind, Snapshot


def _refuse(kind: RefusalKind, code: str, reason: str) -> Decision:
    return Decision(kind=DecisionKind.REFUSE, reason=reason, code=code, refusal=kind)


def _feed_check(o: FeedRound, now: int, max_age: int) -> tuple[str, str] | None:
    """(code, reason) when a price round must not be used."""
    feed = f"feed {o.address}"
    if o.round_id == 0:
        return "oracle_zero_round", f"{feed} returned round id 0 (no data)"
    if o.answer <= 0:
        return "oracle_nonpositive", f"{feed} answered {o.answer} (not positive)"
    if o.updated_at == 0:
        return "oracle_no_timestamp", f"{feed} round {o.round_id} has updatedAt 0"
    if o.updated_at > now:
        return "oracle_future", f"{feed} round {o.round_id} is dated {o.updated_at - now}s in the future of block time {now}"
    age = now - o.updated_at
    if age > max_age:
        return "oracle_stale", f"{feed} is stale: last update {age}s ago, max age {max_age}s (HEDGER_ORACLE_MAX_AGE)"
    return None


def feed_problem(o: FeedRound, now: int, max_age: int) -> str | None:
    """Why a price round must not be used, or None."""
    found = _feed_check(o, now, max_age)
    return None if found is None else found[1]


def check(s: Snapshot, p: PolicyParams) -> Decision | None:
    """Return a REFUSE decision when any guard fails, else None."""
    now = s.chain.block_timestamp
    if p.max_block_lag_s > 0 and s.chain.wall_clock - now > p.max_block_lag_s:
        return _refuse(RefusalKind.CHAIN, "block_lag",
                       f"latest block {s.chain.block_number} is {s.chain.wall_clock - now}s behind the wall clock "
                       f"(limit {p.max_block_lag_s}s): the node is out of date")
    found = _feed_check(s.oracle, now, p.oracle_max_age_s)
    if found is not None:
        return _refuse(RefusalKind.ORACLE, *found)
    if s.collateral_feed is not None:
        found = _feed_check(s.collateral_feed, now, p.oracle_max_age_s)
        if found is not None:
            code, reason = found
            return _refuse(RefusalKind.ORACLE, "collateral_" + code.removeprefix("oracle_"),
                           f"collateral price (HEDGER_COLLATERAL_FEED): {reason}: the collateral cannot be valued")
    if s.market.price_invalid:
        return _refuse(RefusalKind.ORACLE, "market_price_invalid",
                       f"market {s.market.address} reports its own price invalid (its feed is stale or broken): "
                       "it would refuse every trade and margin move")
    q = s.sequencer
    if q is not None:
        if q.answer != 0:
            return _refuse(RefusalKind.SEQUENCER, "sequencer_down",
                           f"sequencer feed {q.address} reports the sequencer down (answer {q.answer})")
        if q.started_at == 0:
            return _refuse(RefusalKind.SEQUENCER, "sequencer_invalid",
                           f"sequencer feed {q.address} has startedAt 0 (invalid round)")
        up_for = now - q.started_at
        if up_for < p.sequencer_grace_s:
            return _refuse(RefusalKind.SEQUENCER, "sequencer_grace",
                           f"sequencer back up only {up_for}s ago; grace period {p.sequencer_grace_s}s "
                           "(HEDGER_SEQUENCER_GRACE)")
    return None
