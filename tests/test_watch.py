"""`hedger watch`: the long-running keeper as a real process against anvil."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from hedger.journal import Journal
from tests.conftest import WETH, Hedge
from tests.test_cli import BIN


def start(hedge: Hedge, tmp: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "hedger"), "watch", "--json-logs", *args], cwd=tmp, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **hedge.env, **(env or {})})


def lines(out: str) -> list[dict]:
    return [json.loads(x) for x in out.splitlines() if x.startswith("{")]


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
    deadline = time.time() + 60
    seen = []
    assert p.stdout is not None
    while time.time() < deadline:
        line = p.stdout.readline()
        if line.startswith("{"):
            seen.append(json.loads(line))
            if seen[-1]["event"] == "cycle":
                break
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    events = seen + lines(out)
    assert any(e["event"] == "stop_requested" and e["signal"] == "SIGTERM" for e in events)
    assert events[-1]["event"] == "stopped"
    j = Journal(hedge.env["HEDGER_JOURNAL_PATH"])
    assert all(r["outcome"] != "started" for r in j.cycles())     # nothing half-recorded


def test_second_keeper_refuses_naming_the_holder(hedge: Hedge, tmp_path: Path) -> None:
    first = start(hedge, tmp_path, "--interval", "0.3")
    try:
        assert first.stdout is not None
        while True:
            line = first.stdout.readline()
            if line.startswith("{") and json.loads(line)["event"] == "cycle":
                break
        second = start(hedge, tmp_path, "--interval", "0.3", "--max-cycles", "1")
        out, err = second.communicate(timeout=60)
        assert second.returncode == 11
        assert f"pid {first.pid}" in err and "another hedger holds the lock" in err
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 0


def test_circuit_breaker_stops_after_rpc_failures_in_a_row(hedge: Hedge, tmp_path: Path) -> None:
    from tests.rpcproxy import FaultProxy
    with FaultProxy(hedge.chain.anvil.url) as proxy:
        p = start(hedge, tmp_path, "--interval", "0.2", "--max-failures", "3", "--backoff-max", "0.2",
                  env={"HEDGER_RPC_URL": proxy.url("/v2/KEY123456"), "HEDGER_RPC_TIMEOUT": "1"})
        assert p.stdout is not None
        while True:
            line = p.stdout.readline()
            if line.startswith("{") and json.loads(line)["event"] == "cycle":
                break
        proxy.http_error(count=10_000)          # the node goes bad after a good start
        out, err = p.communicate(timeout=120)
    assert p.returncode == 12, out + err
    events = lines(out)
    errors = [e for e in events if e["event"] == "rpc_error"]
    assert len(errors) == 3
    assert [e["retry_in_s"] for e in errors] == [0.2, 0.2, 0.2]      # backoff, capped by --backoff-max
    assert events[-1]["event"] == "circuit_breaker"
    assert "KEY123456" not in out + err          # the RPC shown as scheme and host only


def test_refusal_streak_trips_the_breaker_and_recovery_resets_it(hedge: Hedge, tmp_path: Path) -> None:
    hedge.chain.advance(4000)          # stale oracle: every cycle refuses
    p = start(hedge, tmp_path, "--interval", "0.1", "--max-failures", "2", "--backoff-max", "0.1")
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 12
    assert [e.get("exit_code") for e in lines(out) if e["event"] == "cycle"] == [3, 3]


def test_every_block_waits_for_a_new_block(hedge: Hedge, tmp_path: Path) -> None:
    p = start(hedge, tmp_path, "--every-block", "--interval", "0.2", "--max-cycles", "3")
    assert p.stdout is not None
    cycles = 0
    while cycles < 2:                           # the acting cycle mines blocks: the next one follows
        line = p.stdout.readline()
        if line.startswith("{") and json.loads(line)["event"] == "cycle":
            cycles += 1
    time.sleep(1.5)
    assert p.poll() is None                     # no new block since the held cycle: still waiting
    hedge.chain.w3.provider.make_request("evm_mine", [])
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert [e["event"] for e in lines(out)].count("cycle") == 1
