"""`hedger unwind`: close the short and withdraw the margin, in safe steps, through the
same keeper cycle and executor as every hedge.

Each step is an ordinary cycle with the policy told to hedge nothing: first the position
is closed (no withdrawal in the same cycle, so a withdrawal is sized on what the close
really left), then the accessible margin is withdrawn. A pending two-step order is
honoured: never a second one; the unwind waits for it to be filled (by the protocol's
keepers) or to expire (then it is cancelled).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable

from hedger.errors import HedgerError
from hedger.keeper import Keeper
from hedger.types import CycleResult, PolicyParams, UNIT


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
                   max_leverage=max(p.max_leverage, 3 * UNIT))


def unwind(k: Keeper, *, timeout: float = 600.0, poll: float = 2.0, dry_run: bool = False,
           say: Callable[[str], None] = print) -> UnwindResult:
    deadline = time.monotonic() + timeout
    cycles: list[CycleResult] = []
    with k.lock():
        for _ in range(50):
            s = k.read()
            a, m = s.account, s.market
            scale = 10 ** (18 - m.collateral_decimals)
            if a.pending_order is not None and s.chain.block_timestamp <= a.pending_order.expires_at:
                if time.monotonic() > deadline:
                    return UnwindResult(False, 7, "a two-step order is still pending; run unwind again later",
                                        cycles)
                say(f"waiting for the pending order of {a.pending_order.size_delta / UNIT:+.4f} "
                    f"(executable at {a.pending_order.executable_at}, expires at {a.pending_order.expires_at})")
                time.sleep(poll)
                continue
            if a.size == 0 and a.pending_order is None and a.accessible_margin < scale:
                return UnwindResult(True, 0, "unwound: no position, no margin left to withdraw", cycles)
            params = unwind_params(k.params(s), closing=a.size != 0)
            try:
                res = k.cycle(dry_run=dry_run, locked=True, params=params)
            except HedgerError as err:
                return UnwindResult(False, err.exit_code, str(err), cycles)
            cycles.append(res)
            say(f"{res.decision.kind.value} [{res.decision.code}] {res.decision.reason}"
                + "".join(f"\n  tx {t.call.contract}.{t.call.function}{t.call.args} {t.tx_hash}" for t in res.sent))
            if res.exit_code != 0 or res.outcome in ("refused", "paused", "held_limit"):
                return UnwindResult(False, res.exit_code or 7, f"stopped: {res.outcome} {res.error or ''}".strip(),
                                    cycles)
            if dry_run:
                return UnwindResult(False, 0, "dry run: the first step is shown above; nothing was sent", cycles)
            if not res.sent and res.outcome == "held":
                return UnwindResult(False, 7, f"cannot go further: {res.decision.reason}", cycles)
        return UnwindResult(False, 7, "gave up after 50 steps", cycles)
