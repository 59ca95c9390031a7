"""`hedger unwind`: close the short and withdraw the margin, in safe steps, through the
same keeper cycle and executor as every hedge, and keep it unwound.

Each step is an ordinary cycle with the policy told to hedge nothing: first the position
is closed (no withdrawal in the same cycle, so a withdrawal is sized on what the close
really left), then the accessible margin is withdrawn, and it ends with a claim of whatever the
venue still holds for the account (GMX v2: funding received, capped price impact). A pending two-step order is
honoured: never a second one; the unwind waits for it to be filled (by the protocol's
keepers) or, at the latest, until its own expiry, then cancels it and goes on.

One safe procedure: the account is paused before the first step (so that an unwind
stopped half-way is not undone by the next cron run) and stays paused once unwound,
with the reason ``unwound``, until ``hedger resume``: no `run-once` or `watch` cycle
reopens the hedge. Unwinding works while the account is paused: pausing stops the
hedger, not the operator's exit.

Exit codes: 0 unwound (or a dry run); the code of the step that stopped it otherwise (a
refusal 3/4/5/9 sends nothing, 6 a step failed before sending, 7 a step failed after
earlier ones were mined, 10 gas alarm), and :data:`UNFINISHED` (13) when nothing failed
but it could not finish yet (a pending order still within its life past ``--timeout``, a
daily limit holding the withdrawal): run it again later.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable

from hedger.core.errors import HedgerError
from hedger.core.model import model_for
from hedger.cycle.keeper import Keeper
from hedger.core.timefmt import duration, utc
from hedger.core.types import CycleResult, Order, OrderState, PolicyParams, UNIT

UNFINISHED = 13          # nothing failed, nothing more could be done yet: run `hedger unwind` again later
EXPIRY_GRACE_S = 60      # wall-clock seconds allowed past an order's expiry for the chain's time to pass it
MAX_ACTING_STEPS = 20    # cycles that send something (close, cancel, withdraw, ...): a few are enough


@dataclass
class UnwindResult:
    done: bool
    exit_code: int
    message: str
    cycles: list[CycleResult] = field(default_factory=list)


def unwind_params(p: PolicyParams, closing: bool) -> PolicyParams:
    """Target zero, trade any size, no cooldown; withdraw only once the position is closed."""
    return replace(p, hedge_ratio=0, band=0, min_trade_usd=0, max_trade_usd=10**30 * UNIT, cooldown_s=0,
                   min_collateral_usd=0, min_leverage=0 if closing else UNIT, target_leverage=2 * UNIT,
                   max_leverage=max(p.max_leverage, 3 * UNIT), min_liq_distance=None, target_liq_distance=None,
                   max_liq_distance=None, min_claim_usd=0)


def unwind(k: Keeper, *, timeout: float = 600.0, poll: float = 2.0, dry_run: bool = False,
           say: Callable[[str], None] = print, wait: Callable[[Order], None] | None = None,
           locked: bool = False) -> UnwindResult:
    """Unwind ``k``'s account (see the module's docstring). ``timeout``: wall-clock seconds in all
    that the unwind may spend waiting for pending two-step orders. ``wait``: called with a pending
    order instead of sleeping ``poll`` seconds (the simulator fills it as the protocol's keeper).
    ``locked``: the caller holds the account (the simulator, whose accounts live on its own chains)."""
    if locked:
        return _unwind(k, timeout, poll, dry_run, say, wait)
    with k.lock():
        return _unwind(k, timeout, poll, dry_run, say, wait)


def _unwind(k: Keeper, timeout: float, poll: float, dry_run: bool, say: Callable[[str], None],
            wait: Callable[[Order], None] | None) -> UnwindResult:
    if dry_run:
        return _steps(k, timeout, poll, True, say, wait)
    k.set_paused(Keeper.UNWINDING)      # an unwind stopped half-way must not be undone by a cycle
    r = _steps(k, timeout, poll, False, say, wait)
    if r.done:
        k.set_paused(Keeper.UNWOUND)
        r.message += "; the account stays paused (reason: unwound) until `hedger resume`"
    else:
        k.set_paused(Keeper.UNFINISHED_UNWIND)
        r.message += "; the account stays paused until `hedger unwind` finishes or `hedger resume`"
    return r


def _steps(k: Keeper, timeout: float, poll: float, dry_run: bool, say: Callable[[str], None],
           wait: Callable[[Order], None] | None = None) -> UnwindResult:
    deadline = time.monotonic() + timeout
    cycles: list[CycleResult] = []
    waited: tuple[int, int] | None = None        # (submitted_at, expires_at) of the order waited for
    wait_until = 0.0                             # wall clock: its expiry, plus a grace for blocks to pass it
    acting = 0
    while True:
        s = k.read()
        a, m = s.account, s.market
        scale = 10 ** (18 - m.collateral_decimals)
        now = s.chain.block_timestamp
        # an order still able to fill is waited for; an expired one is cancelled by the next step,
        # a frozen one refused by it (the operator decides), a cancelled or executed one is done
        live = [x for x in a.orders if x.in_flight]
        o = next((x for x in live if x.state is OrderState.PENDING and not x.expired_at(now)), None)
        if o is not None:
            if dry_run:
                return UnwindResult(False, 0, f"dry run: a two-step order of {o.size_delta / UNIT:+.4f} is pending "
                                    f"(expires at {utc(o.expires_at)}); the unwind would wait for it to be filled or "
                                    "to expire, then go on; nothing was sent", cycles)
            if waited != (o.submitted_at, o.expires_at):
                waited = (o.submitted_at, o.expires_at)
                wait_until = (time.monotonic() + (o.expires_at - now) + EXPIRY_GRACE_S) if o.expires_at \
                    else float("inf")        # no expiry: only --timeout ends the wait
                say(f"waiting for the pending order of {o.size_delta / UNIT:+.4f} (executable at "
                    f"{utc(o.executable_at)}, expires at {utc(o.expires_at)}, in {duration(o.expires_at - now)} of "
                    "chain time): filled by the protocol's keepers, or cancelled once expired")
            if time.monotonic() > deadline:
                return UnwindResult(False, UNFINISHED, f"a two-step order is still pending (expires at "
                                    f"{utc(o.expires_at)}) after --timeout {timeout:g}s; run unwind again later "
                                    "or with a longer --timeout", cycles)
            if time.monotonic() > wait_until:
                return UnwindResult(False, UNFINISHED, f"the chain's time ({utc(now)}) has not passed the pending "
                                    f"order's expiry ({utc(o.expires_at)}) {EXPIRY_GRACE_S}s after it was due: are "
                                    "blocks being produced? Run unwind again later", cycles)
            if wait is not None:
                wait(o)
            else:
                time.sleep(poll)
            continue
        if a.size == 0 and not live and a.accessible_margin < scale:
            if a.margin >= scale:
                # the venue holds margin it will not release now (Aave: the collateral reserve lent
                # out all its liquidity, utilisation 100%): nothing failed, run again later
                return UnwindResult(False, UNFINISHED, f"the position is closed, but {a.margin / UNIT:.6f} USD of "
                                    "margin stays at the venue, which lets none of it be withdrawn now (on Aave: the "
                                    "collateral reserve's liquidity is all lent out, utilisation 100%); run "
                                    "`hedger unwind` again once it can be withdrawn", cycles)
            if model_for(s).claimable_usd() <= 0:
                if not dry_run:
                    # book what the venue did since the last step (a two-step venue's closing order,
                    # filled while the unwind waited): no later cycle may come to do it (the account
                    # stays paused), and `hedger report` reads the journal
                    for note in k.check_state(s)[0]:
                        say(f"reconciled: {note}")
                return UnwindResult(True, 0, "unwound: no position, no margin left to withdraw, nothing left to "
                                    "claim", cycles)
        if acting >= MAX_ACTING_STEPS:
            return UnwindResult(False, UNFINISHED, f"not unwound after {acting} steps; run unwind again", cycles)
        params = unwind_params(k.params(s), closing=a.size != 0)
        try:
            res = k.cycle(dry_run=dry_run, locked=True, params=params, unwinding=True)
        except HedgerError as err:
            return UnwindResult(False, err.exit_code, str(err), cycles)
        cycles.append(res)
        acting += 1
        for note in res.notes:          # as run-once prints them: an order found filled, with its fees
            say(f"reconciled: {note}")
        say(f"{res.decision.kind.value} [{res.decision.code}] {res.decision.reason}"
            + "".join(f"\n  tx {t.call.contract}.{t.call.function}{t.call.args_text()} {t.tx_hash}" for t in res.sent))
        if res.exit_code != 0:
            return UnwindResult(False, res.exit_code, f"stopped: {res.outcome} {res.error or ''}".strip(), cycles)
        if dry_run:
            return UnwindResult(False, 0, "dry run: the first step is shown above; nothing was sent", cycles)
        if not res.sent:   # held (a daily limit, prices in doubt for a withdrawal, ...): nothing failed
            # why it was held, when the decision does not say (the fee above HEDGER_MAX_FEE_GWEI)
            why = f" ({res.outcome}: {res.error})" if res.error else ""
            return UnwindResult(False, UNFINISHED, f"cannot go further now: {res.decision.reason}{why}", cycles)
