"""`hedger watch`: the long-running keeper as a real process against anvil."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from hedger.state.journal import Journal
from tests.conftest import WETH, Hedge
from tests.test_cli import BIN


def start(hedge: Hedge, tmp: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "hedger"), "watch", "--json-logs", *args], cwd=tmp, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **hedge.env, **(env or {})})


def lines(out: str) -> list[dict]:
    return [json.loads(x) for x in out.splitlines() if x.startswith("{")]


class Log:
    """The keeper's JSON log, line by line as it comes, read by a thread into a queue: every wait
    has a deadline, and a keeper that exits (end of file) fails the wait at once with its stderr,
    instead of a readline() that blocks for ever."""

    def __init__(self, p: subprocess.Popen, timeout: float = 90.0) -> None:
        self.p, self.timeout = p, timeout
        self.seen: list[dict] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        assert p.stdout is not None
        threading.Thread(target=self._pump, args=(p.stdout,), daemon=True).start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            self._q.put(line)
        self._q.put(None)

    def next(self, *events: str) -> dict:
        """The next record whose event is one of ``events``."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                line = self._q.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {'/'.join(events)} line within {self.timeout}s; seen: {self.seen[-5:]}")
            if line is None:
                self.p.wait(timeout=30)
                err = self.p.stderr.read() if self.p.stderr else ""
                raise AssertionError(f"the keeper exited ({self.p.returncode}) before a {'/'.join(events)} line: "
                                     f"{err[-2000:]}; seen: {self.seen[-5:]}")
            if line.startswith("{"):
                self.seen.append(json.loads(line))
                if self.seen[-1]["event"] in events:
                    return self.seen[-1]

    def rest(self) -> list[dict]:
        """Every record after the keeper exited (call after it was stopped)."""
        self.p.wait(timeout=60)
        while True:
            line = self._q.get(timeout=30)
            if line is None:
                return self.seen
            if line.startswith("{"):
                self.seen.append(json.loads(line))


def stop(p: subprocess.Popen, log: Log) -> list[dict]:
    p.send_signal(signal.SIGINT)
    return log.rest()


def test_watch_runs_cycles_then_stops(hedge: Hedge, tmp_path: Path) -> None:
    p = start(hedge, tmp_path, "--interval", "0.2", "--max-cycles", "3")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    events = lines(out)
    cycles = [e for e in events if e["event"] == "cycle"]
    assert [c["outcome"] for c in cycles] == ["acted", "held", "held"]
    assert events[0]["event"] == "start" and events[-1]["event"] == "stopped"
    assert hedge.position()[0] == -10 * WETH


def test_sigterm_finishes_the_cycle_and_exits_clean(hedge: Hedge, tmp_path: Path) -> None:
    p = start(hedge, tmp_path, "--interval", "0.3")
    log = Log(p)
    log.next("cycle")
    p.send_signal(signal.SIGTERM)
    events = log.rest()
    assert p.returncode == 0, p.stderr.read() if p.stderr else ""
    assert any(e["event"] == "stop_requested" and e["signal"] == "SIGTERM" for e in events)
    assert events[-1]["event"] == "stopped"
    j = Journal(hedge.env["HEDGER_JOURNAL_PATH"])
    assert all(r["outcome"] != "started" for r in j.cycles())     # nothing half-recorded


def test_second_keeper_refuses_naming_the_holder(hedge: Hedge, tmp_path: Path) -> None:
    first = start(hedge, tmp_path, "--interval", "0.3")
    log = Log(first)
    try:
        log.next("cycle")
        second = start(hedge, tmp_path, "--interval", "0.3", "--max-cycles", "1")
        out, err = second.communicate(timeout=60)
        assert second.returncode == 11
        assert f"pid {first.pid}" in err and "another hedger holds the lock" in err
    finally:
        stop(first, log)
    assert first.returncode == 0


def test_circuit_breaker_stops_after_rpc_failures_in_a_row(hedge: Hedge, tmp_path: Path) -> None:
    from tests.rpcproxy import FaultProxy
    with FaultProxy(hedge.chain.anvil.url) as proxy:
        p = start(hedge, tmp_path, "--interval", "0.2", "--max-failures", "3", "--backoff-max", "0.2",
                  env={"HEDGER_RPC_URL": proxy.url("/v2/KEY123456"), "HEDGER_RPC_TIMEOUT": "1"})
        log = Log(p)
        log.next("cycle")
        proxy.http_error(count=10_000)          # the node goes bad after a good start
        events = log.rest()
    err = p.stderr.read() if p.stderr else ""
    out = "\n".join(json.dumps(e) for e in events)
    assert p.returncode == 12, out + err
    errors = [e for e in events if e["event"] == "rpc_error"]
    assert len(errors) == 3
    assert [e["retry_in_s"] for e in errors] == [0.2, 0.2, 0.2]      # backoff, capped by --backoff-max
    assert events[-1]["event"] == "circuit_breaker"
    assert "KEY123456" not in out + err          # the RPC shown as scheme and host only


def test_a_stale_feed_alerts_without_stopping_the_keeper_and_it_hedges_on_recovery(
        hedge: Hedge, tmp_path: Path) -> None:
    """Refusals alert, failures stop: a stale feed for more cycles than --max-failures keeps the
    keeper running (and alerting); once the feed answers again, the next cycle hedges."""
    from tests.test_metrics_alerts import Hook
    hook = Hook()
    hedge.chain.advance(4000)          # stale oracle: every cycle refuses
    p = start(hedge, tmp_path, "--interval", "0.1", "--max-failures", "2", "--backoff-max", "0.1",
              env={"HEDGER_ALERT_WEBHOOK": hook.url, "HEDGER_ALERT_REFUSAL_STREAK": "2"})
    log = Log(p)
    try:
        refused = [log.next("cycle") for _ in range(5)]          # more than --max-failures in a row
        assert [(c["outcome"], c["exit_code"]) for c in refused] == [("refused", 3)] * 5
        assert [a["kind"] for a in hook.payloads] == ["refusal_streak"]      # alerted, once per streak
        hedge.chain.set_price(3000)      # the feed answers again
        while (c := log.next("cycle"))["outcome"] == "refused":
            pass
        assert c["outcome"] == "acted" and c["exit_code"] == 0
    finally:
        events = stop(p, log)
        hook.close()
    assert p.returncode == 0
    assert not any(e["event"] == "circuit_breaker" for e in events)
    assert hedge.position()[0] == -10 * WETH


def test_every_block_waits_for_a_new_block(hedge: Hedge, tmp_path: Path) -> None:
    from tests.rpcproxy import FaultProxy
    with FaultProxy(hedge.chain.anvil.url) as proxy:
        p = start(hedge, tmp_path, "--every-block", "--interval", "0.2", "--max-cycles", "3",
                  env={"HEDGER_RPC_URL": proxy.url()})
        log = Log(p)
        try:
            assert log.next("cycle")["outcome"] == "acted"
            held = log.next("cycle")                  # the acting cycle mined blocks: this one followed at once
            assert held["outcome"] == "held"
            reads = proxy.calls["eth_getBlockByNumber"]
            # the keeper now polls the block number; three polls without a cycle between them are
            # the proof that it waits (a keeper that did not wait would start a cycle instead)
            polls = proxy.latency(0, count=3, methods="eth_blockNumber")
            deadline = time.monotonic() + 60
            while polls.remaining > 0:
                assert p.poll() is None and time.monotonic() < deadline, "the keeper did not poll for a block"
                time.sleep(0.05)
            assert proxy.calls["eth_getBlockByNumber"] == reads       # no cycle read the chain meanwhile
            hedge.chain.w3.provider.make_request("evm_mine", [])
            assert log.next("cycle")["outcome"] == "held"              # the new block: the third cycle
        except BaseException:
            p.kill()
            raise
        events = log.rest()
    assert p.returncode == 0
    assert [e["event"] for e in events].count("cycle") == 3


def test_plain_text_log_quotes_values_with_spaces() -> None:
    import shlex
    from hedger.ops.watch import WatchOptions, Watcher
    out: list[str] = []
    w = Watcher(keeper=None, opts=WatchOptions(), out=out.append)     # type: ignore[arg-type]
    w.log({"event": "cycle", "n": 2, "reason": "feed 0xabc is stale: last update 4000s ago",
           "error": None, "txs": [], "notes": ["paused by the operator (maintenance)"], "quote": 'say "hi"',
           "empty": ""})
    fields = dict(tok.split("=", 1) for tok in shlex.split(out[0]))
    assert fields["reason"] == "feed 0xabc is stale: last update 4000s ago"
    assert fields["notes"] == '["paused by the operator (maintenance)"]'
    assert fields["quote"] == 'say "hi"' and fields["empty"] == ""
    assert fields["event"] == "cycle" and fields["n"] == "2" and fields["error"] == "None" and fields["txs"] == "[]"
