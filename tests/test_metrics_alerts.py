"""The observers of `hedger watch`: Prometheus metrics (hedger/ops/metrics.py) and webhook alerts
(hedger/ops/alerts.py). Unit tests feed synthetic cycles and read the results over HTTP on loopback
(the metrics endpoint scraped, the alerts caught by a webhook server started here); one test runs
the real keeper on anvil with both observers on."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import threading
import time
import urllib.request
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from hedger.ops import alerts as alerts_mod
from hedger.ops import metrics as metrics_mod
from hedger.config import Settings
from hedger.core.errors import ConfigError
from hedger.core.secrets import Secret
from hedger.sim.localchain import free_port
from hedger.core.types import (ActionKind, Call, CollateralStatus, CycleResult, Decision, DecisionKind, RefusalKind,
                          SentTx, Snapshot)
from hedger.ops.watch import CycleObserver
from tests.conftest import Hedge
from tests.snapshots import ACCOUNT_ADDRESS, MARKET_ADDRESS, eth, frac, make_snapshot, usd, with_chain
from tests.test_cli import BIN

KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
RPC = "https://eth-mainnet.example.com/v2/RPCKEY123456"
TOKEN = "SECRETTOKEN"
TS = 1_700_000_100
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# ---------------------------------------------------------------- helpers

def scrape(port: int) -> tuple[dict[tuple[str, tuple[tuple[str, str], ...]], float], str]:
    text = NO_PROXY.open(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, text


def val(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


class Hook:
    """A webhook on loopback that records every POST (path, content type, raw body)."""

    def __init__(self, status: int = 204, location: str | None = None) -> None:
        self.received: list[tuple[str, str, bytes]] = []
        self.headers: list[dict[str, str]] = []       # each POST's headers, in the order received
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                hook.headers.append(dict(self.headers.items()))
                hook.received.append((self.path, self.headers.get("Content-Type", ""), body))
                self.send_response(status)
                if location is not None:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802  (where a followed 302 would land)
                hook.headers.append(dict(self.headers.items()))
                hook.received.append((self.path, "GET", b""))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook/{TOKEN}"

    @property
    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(b) for _, _, b in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


@pytest.fixture()
def metrics() -> Iterator[metrics_mod.Metrics]:
    m = metrics_mod.build(free_port(), host="127.0.0.1")
    yield m
    m.close()


def settings(webhook: str, **kw: Any) -> Settings:
    base: dict[str, Any] = dict(rpc_url=RPC, private_key=Secret(KEY), account=ACCOUNT_ADDRESS, market=MARKET_ADDRESS,
                                chain_id=10, alert_webhook=Secret(webhook), alert_liq_distance=frac("0.15"),
                                alert_min_gas=eth("0.05"), alert_refusal_streak=3)
    return Settings(**{**base, **kw})


def alerts_for(hook: Hook, **kw: Any) -> alerts_mod.Alerts:
    a = alerts_mod.build(settings(hook.url, **kw))
    assert isinstance(a, alerts_mod.Alerts)
    a.clock = lambda: TS + 0.7
    return a


def expected(kind: str, severity: str, message: str, **details: Any) -> dict[str, Any]:
    return {"kind": kind, "severity": severity, "message": message, "account": ACCOUNT_ADDRESS,
            "market": MARKET_ADDRESS, "chain_id": 10, "ts": TS, "details": details}


def sent_tx(function: str, nonce: int) -> SentTx:
    call = Call(to=MARKET_ADDRESS, contract="market", function=function, args=(), data="0x",
                action=ActionKind.TRADE, risk_reducing=False)
    return SentTx(call=call, tx_hash="0x" + f"{nonce:064x}", nonce=nonce, status=1)


def cycle(snapshot: Snapshot | None = None, outcome: str = "held", code: str = "within_band",
          sent: list[SentTx] | None = None, error: str | None = None, exit_code: int = 0,
          reason: str = "all good") -> CycleResult:
    if snapshot is None:
        snapshot = make_snapshot()
    if outcome == "refused":
        d = Decision(kind=DecisionKind.REFUSE, reason=reason, code=code, refusal=RefusalKind.ORACLE)
        error, exit_code = reason, 3
    else:
        d = Decision(kind=DecisionKind.HOLD if outcome == "held" else DecisionKind.REBALANCE, reason=reason, code=code)
    return CycleResult(snapshot=snapshot, decision=d, plan=None, sent=list(sent or []), outcome=outcome,
                       exit_code=exit_code, error=error)


def short(liq: int | None = None, **kw: Any) -> Snapshot:
    """A 10 ETH short at 3000 USD with 15,000 USD of margin (2x), 12 ETH of spot."""
    return make_snapshot(size=-eth(10), margin=usd(15_000), spot=eth(12), liquidation_price=liq, **kw)


# ---------------------------------------------------------------- metrics

def test_metrics_values_over_http(metrics: metrics_mod.Metrics) -> None:
    assert metrics.port is not None
    snap = with_chain(short(liq=usd(4350)), account_balance=eth("0.5"))
    t0 = time.time()
    metrics.heartbeat()
    metrics.on_cycle(cycle(snap, outcome="acted", code="top_up",
                           sent=[sent_tx("transferMargin", 1), sent_tx("modifyPosition", 2),
                                 sent_tx("modifyPosition", 3)]))
    t1 = time.time()
    s, text = scrape(metrics.port)
    assert val(s, "hedger_cycles_total", outcome="acted") == 1
    assert val(s, "hedger_actions_total", function="transferMargin") == 1
    assert val(s, "hedger_actions_total", function="modifyPosition") == 2
    assert val(s, "hedger_oracle_age_seconds") == 60
    assert val(s, "hedger_oracle_price_usd") == 3000
    assert val(s, "hedger_position_size") == -10
    assert val(s, "hedger_margin_usd") == 15_000
    assert val(s, "hedger_leverage") == 2.0                    # 10 x 3000 / 15000
    assert val(s, "hedger_liquidation_distance") == pytest.approx(0.45, abs=1e-12)   # (4350 - 3000) / 3000
    assert val(s, "hedger_hedge_error") == 2.0                 # -10 short + 12 spot
    assert val(s, "hedger_gas_balance_eth") == 0.5
    assert val(s, "hedger_last_exit_code") == 0
    assert t0 <= val(s, "hedger_heartbeat_timestamp_seconds") <= t1
    assert val(s, "hedger_circuit_breaker_trips_total") == 0
    assert not any(n == "hedger_refusals_total" for n, _ in s)    # no refusal yet: no series
    # the types Prometheus sees
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert types["hedger_cycles"] == "counter" and types["hedger_leverage"] == "gauge"


def test_metrics_refusals_errors_breaker_and_no_position(metrics: metrics_mod.Metrics) -> None:
    assert metrics.port is not None
    t0 = time.time()
    metrics.on_cycle(cycle(short(liq=usd(4350)), outcome="held"))      # a cycle alone beats the heartbeat
    assert t0 <= (metrics.registry.get_sample_value("hedger_heartbeat_timestamp_seconds") or 0) <= time.time()
    # no position now, a stale oracle (10 minutes), no balance read
    flat = make_snapshot(updated_at=make_snapshot().chain.block_timestamp - 600, spot=eth(3))
    metrics.on_cycle(cycle(flat, outcome="refused", code="oracle_stale", reason="oracle is 600 s old"))
    metrics.on_cycle(cycle(flat, outcome="refused", code="oracle_stale"))
    metrics.on_error("rpc", f"connection refused by {RPC}")
    metrics.on_error("ChainGuardError", "chain id 1 is not 31337")
    metrics.on_circuit_breaker(5)
    s, text = scrape(metrics.port)
    assert val(s, "hedger_cycles_total", outcome="held") == 1
    assert val(s, "hedger_cycles_total", outcome="refused") == 2
    assert val(s, "hedger_cycles_total", outcome="error") == 2
    assert val(s, "hedger_refusals_total", reason="oracle_stale") == 2
    assert val(s, "hedger_refusals_total", reason="rpc") == 1
    assert val(s, "hedger_refusals_total", reason="ChainGuardError") == 1
    assert val(s, "hedger_circuit_breaker_trips_total") == 1
    assert val(s, "hedger_leverage") == 0.0
    assert math.isnan(val(s, "hedger_liquidation_distance"))
    assert val(s, "hedger_oracle_age_seconds") == 600
    assert val(s, "hedger_hedge_error") == 3.0
    assert val(s, "hedger_last_exit_code") == 3
    assert math.isnan(val(s, "hedger_gas_balance_eth"))         # never read: unknown, not 0
    # messages never reach the exposition, nor any URL part
    assert "RPCKEY123456" not in text and "example.com" not in text and "31337" not in text


def test_metrics_leverage_without_margin_is_infinite(metrics: metrics_mod.Metrics) -> None:
    assert metrics.port is not None
    metrics.on_cycle(cycle(make_snapshot(size=-eth(1), margin=0, liquidation_price=usd(3000)), outcome="refused",
                           code="no_margin"))
    s, _ = scrape(metrics.port)
    assert val(s, "hedger_leverage") == math.inf
    assert val(s, "hedger_liquidation_distance") == 0.0
    assert val(s, "hedger_refusals_total", reason="no_margin") == 1


def test_metrics_use_their_own_registry_and_fail_clearly_on_a_busy_port(metrics: metrics_mod.Metrics) -> None:
    assert REGISTRY.get_sample_value("hedger_cycles_total", {"outcome": "held"}) is None
    other = metrics_mod.Metrics()          # a second instance: no duplicate-registration error
    other.on_cycle(cycle())
    assert other.registry.get_sample_value("hedger_cycles_total", {"outcome": "held"}) == 1
    assert metrics.registry.get_sample_value("hedger_cycles_total", {"outcome": "held"}) is None
    with pytest.raises(ConfigError) as err:
        metrics_mod.build(metrics.port or 0, host="127.0.0.1")
    assert err.value.variable == "--metrics-port"
    assert isinstance(metrics, CycleObserver)


def test_metrics_with_several_markets_carry_the_market_label() -> None:
    m = metrics_mod.Metrics(markets=["ETH", "BTC"])
    get = m.registry.get_sample_value
    assert math.isnan(get("hedger_liquidation_distance", {"market": "BTC"}) or 0.0)   # unknown, not 0
    m.on_cycle(cycle(short(liq=usd(4350)), outcome="acted", sent=[sent_tx("modifyPosition", 1)]), "ETH")
    m.on_cycle(cycle(make_snapshot(updated_at=0), outcome="refused", code="oracle_stale"), "BTC")
    m.on_error("rpc", "connection refused")
    assert get("hedger_cycles_total", {"outcome": "acted", "market": "ETH"}) == 1
    assert get("hedger_actions_total", {"function": "modifyPosition", "market": "ETH"}) == 1
    assert get("hedger_refusals_total", {"reason": "oracle_stale", "market": "BTC"}) == 1
    assert get("hedger_cycles_total", {"outcome": "error", "market": "all"}) == 1     # no market was hedged
    assert get("hedger_leverage", {"market": "ETH"}) == 2.0
    assert get("hedger_last_exit_code", {"market": "BTC"}) == 3
    assert get("hedger_leverage") is None                                        # no unlabelled series
    assert get("hedger_gas_balance_eth") is not None                              # the account's: unlabelled


# ---------------------------------------------------------------- alerts

def test_alerts_keep_an_episode_per_market(hook: Hook) -> None:
    a = alerts_for(hook, market=None)
    btc = MARKET_ADDRESS.replace("1", "2")
    for _ in range(3):
        a.on_cycle(cycle(outcome="refused", code="oracle_stale", reason="stale"), "BTC")   # 3rd: BTC alert
        a.on_cycle(cycle(outcome="held"), "ETH")                                           # ETH fine
    near = short(liq=usd(3300))                                                          # 10% away
    a.on_cycle(cycle(near, outcome="held"), "ETH")                                       # ETH alarm
    a.on_cycle(cycle(replace(near, market=replace(near.market, address=btc)), outcome="held"), "BTC")  # BTC alarm
    a.on_cycle(cycle(near, outcome="held"), "ETH")                                       # same episode: quiet
    kinds = [(x["kind"], x["details"]["market_name"], x["market"]) for x in hook.payloads]
    assert kinds == [("refusal_streak", "BTC", MARKET_ADDRESS), ("liquidation_distance", "ETH", MARKET_ADDRESS),
                     ("liquidation_distance", "BTC", btc)]
    a.on_error("rpc", "connection refused")          # a cycle that could not run counts for every market
    assert a.episodes("ETH").streak == 1 and a.episodes("BTC").streak == 1



def test_refusal_streak_once_per_streak_and_rearmed(hook: Hook) -> None:
    a = alerts_for(hook)
    stale = "oracle is 4000 s old (max 3600)"
    for _ in range(2):
        a.on_cycle(cycle(outcome="refused", code="oracle_stale", reason=stale))
    a.on_cycle(cycle(outcome="acted", code="top_up"))                # breaks the streak before 3
    for _ in range(3):
        a.on_cycle(cycle(outcome="refused", code="oracle_stale", reason=stale))   # 3rd: alert
    a.on_cycle(cycle(outcome="refused", code="oracle_stale", reason=stale))       # same streak: quiet
    a.on_error("rpc", "connection refused")                                      # still the same streak
    assert a.streak == 5
    a.on_cycle(cycle(outcome="held"))                                            # re-armed
    a.on_error("rpc", "read timed out")
    a.on_error("ChainGuardError", "block lags the wall clock by 400 s")
    a.on_cycle(cycle(outcome="refused", code="sequencer_down", reason="the L2 sequencer is down"))  # alert
    assert hook.payloads == [
        expected("refusal_streak", "warning",
                 f"3 refused cycles in a row; the hedger cannot act. Last: oracle_stale: {stale}",
                 streak=3, reason="oracle_stale"),
        expected("refusal_streak", "warning",
                 "3 refused cycles in a row; the hedger cannot act. Last: sequencer_down: the L2 sequencer is down",
                 streak=3, reason="sequencer_down"),
    ]
    assert all(path == f"/hook/{TOKEN}" and ctype == "application/json" for path, ctype, _ in hook.received)
    assert (a.sent, a.delivered, a.failed) == (2, 2, 0)


def test_refusal_streak_counts_errors_alone(hook: Hook) -> None:
    a = alerts_for(hook, alert_refusal_streak=2)
    a.on_error("rpc", "connection refused")
    assert hook.payloads == []
    a.on_error("rpc", "read timed out")
    assert hook.payloads == [expected("refusal_streak", "warning",
                                      "2 refused cycles in a row; the hedger cannot act. Last: rpc: read timed out",
                                      streak=2, reason="rpc")]


def test_liquidation_distance_once_and_rearmed_on_recovery(hook: Hook) -> None:
    a = alerts_for(hook)
    for liq in (4350, 3300, 3240, 3450, 3360):     # 45%, 10% alert, 8% quiet, 15% (not below) re-arms, 12% alert
        a.on_cycle(cycle(short(liq=usd(liq))))
    a.on_cycle(cycle(make_snapshot(), outcome="acted"))       # no position: re-arms
    a.on_cycle(cycle(short(liq=usd(3300)), outcome="acted"))

    def liq_alert(liq: float, dist: float, pct: str, outcome: str) -> dict[str, Any]:
        return expected("liquidation_distance", "critical",
                        f"liquidation price {liq:,.2f} USD is {pct} from the price 3,000.00 USD (alert below 15.00%); "
                        f"cycle outcome: {outcome}",
                        liquidation_distance=dist, threshold=0.15, liquidation_price=liq, price=3000.0,
                        position_size=-10.0, outcome=outcome)

    assert hook.payloads == [liq_alert(3300.0, 0.1, "10.00%", "held"),
                             liq_alert(3360.0, 0.12, "12.00%", "held"),
                             liq_alert(3300.0, 0.1, "10.00%", "acted")]


def test_gas_low_once_and_rearmed(hook: Hook) -> None:
    a = alerts_for(hook, chain_id=None)          # HEDGER_CHAIN_ID unset: the chain id comes from the reading
    for bal in ("0.01", "0.01", None, "1", "0.05", "0.02"):     # alert, quiet, unknown, re-arm, at min, alert
        snap = make_snapshot() if bal is None else with_chain(make_snapshot(), account_balance=eth(bal))
        a.on_cycle(cycle(snap))

    def gas(bal: str, v: float) -> dict[str, Any]:
        return expected("gas_low", "warning", f"the hedged account holds {bal} ETH for gas, below 0.050000 ETH: "
                        "fund it or transactions will fail", balance_eth=v, min_eth=0.05)

    assert hook.payloads == [gas("0.010000", 0.01), gas("0.020000", 0.02)]


def test_collateral_fault_once_per_distinct_problem(hook: Hook) -> None:
    a = alerts_for(hook)
    paused = CollateralStatus(paused=True, account_blacklisted=False, market_blacklisted=False)
    listed = CollateralStatus(paused=False, account_blacklisted=True, market_blacklisted=False)
    ok = CollateralStatus(paused=False, account_blacklisted=False, market_blacklisted=False)
    for st in (paused, paused, listed, ok, paused):
        a.on_cycle(cycle(replace(make_snapshot(), collateral_status=st)))

    def fault(problem: str) -> dict[str, Any]:
        return expected("collateral_fault", "critical", f"{problem}: no margin can be deposited or withdrawn",
                        problem=problem)

    assert hook.payloads == [fault("the collateral token is paused"),
                             fault("the collateral token blacklists the hedged account"),
                             fault("the collateral token is paused")]


def test_gas_too_high_and_circuit_breaker(hook: Hook) -> None:
    a = alerts_for(hook)
    err = "transferMargin: base fee 2500 gwei is above the emergency ceiling 2000 gwei; nothing was sent"
    a.on_cycle(cycle(outcome="gas_too_high", code="top_up", error=err, exit_code=10))
    a.on_cycle(cycle(outcome="gas_too_high", code="top_up", error=err, exit_code=10))    # same episode
    a.on_cycle(cycle(outcome="acted", code="top_up"))
    a.on_cycle(cycle(outcome="gas_too_high", code="top_up", error=None, exit_code=10))
    a.on_circuit_breaker(5)
    blocked = "a risk-reducing step (top-up or hedge reduction) was blocked by gas above the emergency ceiling"
    assert hook.payloads == [
        expected("gas_too_high", "critical", f"{blocked}: {err}", exit_code=10),
        expected("gas_too_high", "critical", blocked, exit_code=10),
        expected("circuit_breaker", "critical", "the circuit breaker stopped the keeper after 5 failed cycles "
                 "in a row; nothing is hedged until it is restarted", failures=5),
    ]


def test_no_payload_carries_a_secret(hook: Hook) -> None:
    a = alerts_for(hook, alert_refusal_streak=1)
    leaky = (f"boom {RPC} and /v2/RPCKEY123456 key={KEY} bare={KEY[2:].upper()} hook={hook.url} "
             f"path=/hook/{TOKEN} other=https://user:pw@other.example.org/v1/OTHERKEY999?apikey=QUERYKEY77")
    a.on_error("rpc", leaky)                                             # refusal_streak, message quoted
    a.on_cycle(cycle(outcome="gas_too_high", error=leaky, exit_code=10))
    a.on_cycle(cycle(outcome="refused", code="oracle_stale", reason=leaky))
    assert [p["kind"] for p in hook.payloads] == ["refusal_streak", "gas_too_high", "refusal_streak"]
    for _, _, body in hook.received:
        text = body.decode()
        for secret in (KEY, KEY[2:], KEY[2:].upper(), TOKEN, "/hook/", "RPCKEY123456", "/v2/", hook.url,
                       "OTHERKEY999", "QUERYKEY77", "user:pw"):
            assert secret not in text
        assert "https://eth-mainnet.example.com" in text and "https://other.example.org" in text   # scheme, host


def test_dead_or_failing_webhook_never_raises(capsys: pytest.CaptureFixture[str],
                                              caplog: pytest.LogCaptureFixture) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook/{TOKEN}"       # nothing listens there
    a = alerts_mod.build(settings(dead, alert_refusal_streak=1))
    assert isinstance(a, alerts_mod.Alerts)
    t0 = time.monotonic()
    a.on_circuit_breaker(3)
    a.on_error("rpc", "connection refused")
    a.on_cycle(cycle(outcome="gas_too_high", error="blocked", exit_code=10))
    assert time.monotonic() - t0 < 5
    assert (a.sent, a.delivered, a.failed) == (3, 0, 3)
    failing = Hook(status=500)
    try:
        b = alerts_mod.build(settings(failing.url))
        assert isinstance(b, alerts_mod.Alerts)
        b.on_circuit_breaker(3)
        assert (b.sent, b.delivered, b.failed) == (1, 0, 1) and len(failing.received) == 1
    finally:
        failing.close()
    out, err = capsys.readouterr()
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "not delivered" in logged
    for text in (out, err, logged):
        assert TOKEN not in text and "/hook/" not in text


def test_build_without_webhook_is_a_no_op_observer() -> None:
    obs = alerts_mod.build(Settings(account=ACCOUNT_ADDRESS, market=MARKET_ADDRESS))
    assert type(obs) is CycleObserver


# ---------------------------------------------------------------- end to end on anvil

def start_watch(env: dict[str, str], cwd: Path, metrics_port: int) -> subprocess.Popen[str]:
    """``hedger watch`` with JSON logs, a short interval and metrics on ``metrics_port``."""
    return subprocess.Popen([str(BIN / "hedger"), "watch", "--json-logs", "--interval", "0.3", "--metrics-port",
                             str(metrics_port)], cwd=cwd, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)


def cycle_until_alert(h: Hook, next_cycle: Any, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while not h.received and time.time() < deadline:
        next_cycle()
    assert h.received, "no alert arrived"


def stop_watch(p: subprocess.Popen[str], h: Hook) -> tuple[str, str]:
    """Stop the keeper as an operator would (SIGINT) and the webhook; the keeper's output."""
    try:
        p.send_signal(signal.SIGINT)
        return p.communicate(timeout=60)
    finally:
        h.close()


def test_watch_serves_metrics_and_alerts_on_anvil(hedge: Hedge, tmp_path: Path) -> None:
    port = free_port()
    h = Hook()
    env = {**os.environ, **hedge.env, "HEDGER_ALERT_WEBHOOK": h.url, "HEDGER_ALERT_LIQ_DISTANCE": "0.4"}
    p = start_watch(env, tmp_path, port)
    seen: list[dict[str, Any]] = []
    try:
        assert p.stdout is not None

        def next_cycle() -> dict[str, Any]:
            while True:
                line = p.stdout.readline()           # type: ignore[union-attr]
                assert line, "the keeper exited early"
                if line.startswith("{"):
                    seen.append(json.loads(line))
                    if seen[-1]["event"] == "cycle":
                        return seen[-1]

        assert next_cycle()["outcome"] == "acted"             # opens the 2x short: liquidation ~49% away
        assert next_cycle()["outcome"] == "held"
        assert h.received == []                               # nothing to alert about yet
        hedge.chain.set_price(3600)                           # +20%: leverage 4x, liquidation ~24% away
        cycle_until_alert(h, next_cycle)
        next_cycle()                                           # the top-up's effect is read back
        samples, _ = scrape(port)
    finally:
        out, err = stop_watch(p, h)
    assert p.returncode == 0, err
    events = seen + [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert events[-1]["event"] == "stopped"
    assert not any(e["event"] == "observer_error" for e in events)

    alerts = h.payloads
    assert [x["kind"] for x in alerts] == ["liquidation_distance"]      # once: the top-up re-armed it
    al = alerts[0]
    assert al["severity"] == "critical" and al["account"] == hedge.address and al["market"] == hedge.chain.d.market
    assert al["chain_id"] == 31337 and abs(al["ts"] - time.time()) < 60
    d = al["details"]
    assert d["price"] == 3600.0 and d["position_size"] == -10.0 and d["threshold"] == 0.4
    assert 0.15 < d["liquidation_distance"] < 0.35 and d["outcome"] == "acted"
    assert d["liquidation_price"] == pytest.approx(3600 * (1 + d["liquidation_distance"]), rel=1e-9)
    for path, _, body in h.received:
        assert path == f"/hook/{TOKEN}"
        assert TOKEN not in body.decode() and hedge.env["HEDGER_PRIVATE_KEY"][2:] not in body.decode()
    assert TOKEN not in out + err

    cycles = {dict(k[1])["outcome"]: v for k, v in samples.items() if k[0] == "hedger_cycles_total"}
    assert cycles.get("acted", 0) >= 2 and sum(cycles.values()) >= 4
    assert val(samples, "hedger_actions_total", function="modifyPosition") >= 1
    assert val(samples, "hedger_actions_total", function="transferMargin") >= 2      # open, then the top-up
    assert 1.5 <= val(samples, "hedger_leverage") <= 2.5                         # back near the 2x target
    assert 0.4 <= val(samples, "hedger_liquidation_distance") < 0.6
    assert abs(val(samples, "hedger_heartbeat_timestamp_seconds") - time.time()) < 10
    assert abs(val(samples, "hedger_hedge_error")) < 0.5
    assert val(samples, "hedger_gas_balance_eth") > 1


# ---------------------------------------------------------------- signed alerts, no redirects

SIGNING = "whsec_" + "7f3a9c" * 6


def test_alerts_are_signed_over_timestamp_and_body(hook: Hook) -> None:
    import hashlib
    import hmac
    a = alerts_for(hook, alert_webhook_secret=Secret(SIGNING))
    a.on_circuit_breaker(3)
    a.on_error("rpc", f"leaked {SIGNING}?")
    assert len(hook.received) == 1 and a.delivered == 1
    (_, _, body), headers = hook.received[0], {k.lower(): v for k, v in hook.headers[0].items()}
    ts = headers["x-hedger-timestamp"]
    assert ts == str(TS) == str(json.loads(body)["ts"])
    # the receiver's check, written out independently of hedger.ops.alerts
    want = "v1=" + hmac.new(SIGNING.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-hedger-signature"], want)
    # the signature binds the timestamp and every byte of the body
    assert alerts_mod.signature(SIGNING, TS + 1, body) != want
    assert alerts_mod.signature(SIGNING, TS, body.replace(b"3", b"4", 1)) != want
    assert SIGNING not in body.decode()


def test_alerts_without_a_secret_are_unsigned(hook: Hook) -> None:
    alerts_for(hook).on_circuit_breaker(3)
    assert not {k.lower() for k in hook.headers[0]} & {"x-hedger-timestamp", "x-hedger-signature"}


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed(hook: Hook, status: int) -> None:
    """A 3xx is a failed delivery: the alert (signed) never reaches where the redirect points."""
    moved = Hook(status=status, location=hook.url)
    try:
        a = alerts_mod.build(settings(moved.url, alert_webhook_secret=Secret(SIGNING)))
        assert isinstance(a, alerts_mod.Alerts)
        a.on_circuit_breaker(3)
        assert (a.sent, a.delivered, a.failed) == (1, 0, 1)
        assert len(moved.received) == 1 and hook.received == []
    finally:
        moved.close()


@pytest.mark.parametrize("env, problem", [
    ({"HEDGER_ALERT_WEBHOOK_SECRET": SIGNING}, "HEDGER_ALERT_WEBHOOK is not"),
    ({"HEDGER_ALERT_WEBHOOK": "https://hooks.example.org/x", "HEDGER_ALERT_WEBHOOK_SECRET": "short"},
     "characters"),
])
def test_webhook_secret_config_errors(env: dict[str, str], problem: str) -> None:
    base = {"HEDGER_PRIVATE_KEY": KEY, "HEDGER_CHAIN_ID": "10", "HEDGER_JOURNAL_PATH": "/tmp/x.sqlite",
            "HEDGER_MARKET": MARKET_ADDRESS, "HEDGER_ORACLE": MARKET_ADDRESS, "HEDGER_SPOT_TOKEN": MARKET_ADDRESS,
            "HEDGER_COLLATERAL_TOKEN": MARKET_ADDRESS}
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**base, **env}, dotenv=False)
    assert info.value.variable == "HEDGER_ALERT_WEBHOOK_SECRET" and problem in str(info.value)
    assert SIGNING not in str(info.value) and "short" not in str(info.value)
    ok = Settings.from_env({**base, "HEDGER_ALERT_WEBHOOK": "https://hooks.example.org/x",
                            "HEDGER_ALERT_WEBHOOK_SECRET": SIGNING}, dotenv=False)
    assert ok.alert_webhook_secret is not None and SIGNING not in repr(ok)


def test_an_order_waiting_too_long_for_the_venues_keeper_alerts_once(hook: Hook) -> None:
    from hedger.core.types import Order, OrderKind
    from tests.snapshots import NOW
    a = alerts_for(hook, alert_order_age=600)
    o = Order(key="0x" + "ab" * 32, kind=OrderKind.INCREASE, size_delta=-eth(1), collateral_delta=0,
              acceptable_price=usd(2990), submitted_at=NOW - 700, executable_at=NOW - 699, expires_at=0)
    young = replace(o, key="0x" + "cd" * 32, submitted_at=NOW - 100)
    for orders in ((o, young), (o, young), (), (o,)):           # alert, quiet, gone (forgotten), back: alert
        a.on_cycle(cycle(make_snapshot(orders=orders)))
    old = expected("order_old", "warning", f"order {o.key} (increase, pending) has waited 700s for the venue's "
                   "keeper (alert above 600s)", order_key=o.key, age_s=700, state="pending")
    assert hook.payloads == [old, old]


def test_a_position_reduced_by_no_order_of_ours_alerts_adl(hook: Hook) -> None:
    a = alerts_for(hook)
    snap = make_snapshot()
    a.on_cycle(cycle(snap))                                       # nothing reduced: quiet
    res = cycle(snap, outcome="acted", code="rebalance")
    res.reduced_by_venue = eth(1)
    a.on_cycle(res)
    size = snap.account.size / 10**18
    assert hook.payloads == [expected(
        "adl", "critical", f"the position was reduced by 1.000000 by no order of ours (the venue's "
        f"auto-deleveraging, or a liquidation): now {size:+.6f}; the cycle re-hedges (outcome: acted)",
        reduced_by=1.0, position_size=size, outcome="acted")]
