"""`hedger watch`: the long-running keeper.

A cycle every N seconds (or on each new block), of one market or, with
``HEDGER_MARKETS``, of every configured market at once (a
:class:`hedger.cycle.multimarket.MultiKeeper`), under the account's lock for the
whole run (a second keeper refuses, naming the holder). SIGINT/SIGTERM ask
for a clean stop: the cycle in progress finishes (its transactions recorded),
then the loop exits 0. RPC errors back off exponentially; a circuit breaker
stops the keeper with exit 12 after N failed cycles in a row. A refusal (a
stale feed, a sequencer down, a chain guard) is not a failure: the keeper
keeps running at its interval, the observers alert on the streak
(``HEDGER_ALERT_REFUSAL_STREAK``), and it hedges as soon as the cause clears.
Refusals alert; failures stop.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Union

from hedger.core.secrets import redact_urls
from hedger.core.errors import HedgerError, RpcError
from hedger.cycle.keeper import Keeper
from hedger.core.types import CycleResult

if TYPE_CHECKING:
    from hedger.cycle.multimarket import MultiCycleResult, MultiKeeper

CIRCUIT_BREAKER_EXIT = 12


class CycleObserver:
    """Something that watches the keeper: metrics (``hedger.ops.metrics``), alerts (``hedger.ops.alerts``).
    Every method has a do-nothing default; an observer's own failure never stops the keeper."""

    def on_start(self, keeper: Keeper) -> None:
        """Once, before the first cycle."""

    def on_cycle(self, res: CycleResult, market: str | None = None) -> None:
        """After every completed cycle (acted, held, refused, failed...). With ``HEDGER_MARKETS``,
        once per market with the market's configured name; ``None`` for a single-market keeper."""

    def on_error(self, kind: str, message: str) -> None:
        """A cycle that could not run (RPC error, configuration or chain guard); ``message`` is redacted."""

    def on_circuit_breaker(self, failures: int) -> None:
        """The keeper is about to stop after ``failures`` failed cycles in a row."""

    def heartbeat(self) -> None:
        """Each loop iteration, whatever happened."""


def _logfmt(value: Any) -> str:
    """One value of a plain-text log line (``key=value``): quoted (as a JSON string) when it
    holds a space, a quote or an ``=``, so that a reason such as ``feed 0x.. is stale`` stays one
    field for whoever splits the line; lists and objects as compact JSON."""
    text = json.dumps(value, separators=(",", ":")) if isinstance(value, (list, dict, tuple)) else str(value)
    return json.dumps(text) if text == "" or re.search(r'[\s"=]', text) else text


def refused_only(res: Union[CycleResult, "MultiCycleResult"]) -> bool:
    """Whether every market that did not succeed was refused by a guard: the chain answered and
    the keeper did its job (it sent nothing on doubtful data); the cause is outside (a stale
    feed) and may clear by itself, so this does not count toward the circuit breaker."""
    results = [res] if isinstance(res, CycleResult) else list(res.results.values())
    return all(r.exit_code == 0 or r.outcome == "refused" for r in results)


@dataclass
class WatchOptions:
    interval: float = 60.0           # seconds between cycles (ignored with every_block)
    every_block: bool = False
    max_failures: int = 5            # circuit breaker
    backoff_max: float = 300.0
    max_cycles: int | None = None    # for tests and one-off runs
    json_logs: bool = False
    dry_run: bool = False


@dataclass
class Watcher:
    keeper: Union[Keeper, "MultiKeeper"]
    opts: WatchOptions
    out: Callable[[str], None] = field(default=lambda line: print(line, flush=True))
    observers: list[CycleObserver] = field(default_factory=list)
    stopping: bool = False
    cycles: int = 0
    failures: int = 0

    def _request_stop(self, signum: int, _frame: Any) -> None:
        self.stopping = True
        self.log({"event": "stop_requested", "signal": signal.Signals(signum).name})

    def log(self, record: dict[str, Any]) -> None:
        record = {"ts": int(time.time()), **record}
        if self.opts.json_logs:
            self.out(json.dumps(record))
        else:
            self.out(" ".join(f"{k}={_logfmt(v)}" for k, v in record.items()))

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < end:
            time.sleep(min(0.2, max(0.0, end - time.monotonic())))

    def _wait_next(self, last_block: int | None) -> None:
        if not self.opts.every_block:
            self._sleep(self.opts.interval)
            return
        while not self.stopping:
            try:
                if self.keeper.w3.eth.block_number != last_block:
                    return
            except Exception:
                return   # let the cycle meet the RPC error and back off
            self._sleep(min(1.0, self.opts.interval))

    def _notify(self, method: str, *args: Any) -> None:
        for o in self.observers:
            try:
                getattr(o, method)(*args)
            except Exception as err:  # an observer must not take the keeper down
                self.log({"event": "observer_error", "observer": type(o).__name__, "method": method,
                          "error": redact_urls(str(err))[:200]})

    def _record(self, res: Union[CycleResult, "MultiCycleResult"]) -> int | None:
        """Log and report a completed cycle (a line per market with ``HEDGER_MARKETS``); its block."""
        if isinstance(res, CycleResult):
            per_market: list[tuple[str | None, CycleResult]] = [(None, res)]
        else:
            per_market = list(res.results.items())
            if res.notes:
                self.log({"event": "reconciled", "n": self.cycles, "notes": res.notes})
        block = None
        for name, r in per_market:
            self._notify("on_cycle", r, name)
            d = r.decision
            self.log({"event": "cycle", "n": self.cycles, **({} if name is None else {"market": name}),
                      "outcome": r.outcome, "exit_code": r.exit_code,
                      "decision": None if d is None else d.code,
                      "reason": None if d is None else d.reason,
                      "txs": [t.tx_hash for t in r.sent], "error": r.error, "notes": r.notes})
            if r.snapshot is not None:
                block = r.snapshot.chain.block_number
        return block

    def run(self) -> int:
        old = {s: signal.signal(s, self._request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            with self.keeper.lock():
                return self._loop()
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def _loop(self) -> int:
        first_backoff = min(1.0, self.opts.backoff_max)
        backoff = first_backoff
        last_block: int | None = None
        where: dict[str, Any] = (
            {"market": self.keeper.adapter.market} if isinstance(self.keeper, Keeper)
            else {"markets": {name: k.adapter.market for name, k in self.keeper.keepers.items()}})
        self.log({"event": "start", "account": self.keeper.account, **where,
                  "rpc": self.keeper.settings.rpc_display})
        self._notify("on_start", self.keeper)
        while not self.stopping:
            self._notify("heartbeat")
            self.cycles += 1
            ok = False
            try:
                res = self.keeper.cycle(dry_run=self.opts.dry_run, locked=True)
                last_block = self._record(res) or last_block
                ok = res.exit_code == 0 or refused_only(res)
            except RpcError as err:
                self.log({"event": "rpc_error", "n": self.cycles, "error": redact_urls(str(err)),
                          "retry_in_s": backoff})
                self._notify("on_error", "rpc", redact_urls(str(err)))
            except HedgerError as err:
                self.log({"event": "error", "n": self.cycles, "kind": type(err).__name__,
                          "error": redact_urls(str(err)), "exit_code": err.exit_code})
                self._notify("on_error", type(err).__name__, redact_urls(str(err)))
            except Exception as err:  # a keeper survives the unexpected, and counts it
                self.log({"event": "unexpected", "n": self.cycles, "kind": type(err).__name__,
                          "error": redact_urls(str(err))[:300]})
                self._notify("on_error", "unexpected", redact_urls(str(err))[:300])
            if ok:
                self.failures, backoff = 0, first_backoff
            else:
                self.failures += 1
                if self.failures >= self.opts.max_failures:
                    self.log({"event": "circuit_breaker", "failures": self.failures,
                              "message": f"{self.failures} failed cycles in a row: stopping"})
                    self._notify("on_circuit_breaker", self.failures)
                    return CIRCUIT_BREAKER_EXIT
            if self.opts.max_cycles is not None and self.cycles >= self.opts.max_cycles:
                break
            if self.stopping:
                break
            if ok:
                self._wait_next(last_block)
            else:
                self._sleep(backoff)
                backoff = min(backoff * 2, self.opts.backoff_max)
        self.log({"event": "stopped", "cycles": self.cycles})
        return 0
