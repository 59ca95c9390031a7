"""Prometheus metrics for `hedger watch` (``--metrics-port``).

An observer of the keeper loop (:class:`hedger.ops.watch.CycleObserver`) that keeps
its own :class:`prometheus_client.CollectorRegistry` (never the process-global
one) and serves it over HTTP on the given address, loopback by default.

Metrics (floats: they are reports; each is converted once from the snapshot's
integers):

| name | type | labels | value |
|---|---|---|---|
| ``hedger_cycles_total`` | counter | ``outcome`` | completed cycles by outcome (acted, held, refused, held_gas, gas_too_high, partial, failed, dry_run), plus ``error`` for a cycle that could not run |
| ``hedger_actions_total`` | counter | ``function`` | mined transactions, by contract function (``transferMargin``, ``modifyPosition``, ``approve``...) |
| ``hedger_refusals_total`` | counter | ``reason`` | refused cycles by decision code (``oracle_stale``...), and cycles that could not run by error kind (``rpc``, ``ChainGuardError``, ``unexpected``...) |
| ``hedger_circuit_breaker_trips_total`` | counter | | circuit breaker trips |
| ``hedger_oracle_age_seconds`` | gauge | | latest block time minus the price round's ``updatedAt`` |
| ``hedger_oracle_price_usd`` | gauge | | the feed's price |
| ``hedger_position_size`` | gauge | | signed position size in asset units (negative: short) |
| ``hedger_margin_usd`` | gauge | | remaining margin |
| ``hedger_leverage`` | gauge | | abs(size) x price / margin; 0 without a position, +Inf with a position and no margin |
| ``hedger_liquidation_distance`` | gauge | | abs(liquidation price - price) / price, a fraction; NaN without a position |
| ``hedger_hedge_error`` | gauge | | net delta in asset units: position size + spot exposure |
| ``hedger_gas_balance_eth`` | gauge | | the hedged account's native balance; NaN until read |
| ``hedger_last_exit_code`` | gauge | | exit code of the last completed cycle |
| ``hedger_heartbeat_timestamp_seconds`` | gauge | | wall clock of the last loop iteration or cycle |

With ``HEDGER_MARKETS`` every metric but the circuit breaker, the heartbeat and
the gas balance (the account's) also carries a ``market`` label, the entry's
configured name (``ETH``, ``BTC``): each market's cycle counts under its name,
and a cycle that could not run at all (an RPC error, a chain guard) under
``market="all"``. A single-market keeper exports the metrics without that label.

Labels carry only bounded, non-secret values (outcomes, decision codes,
function names, error class names, configured market names), never a message,
a URL or a key.
"""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from hedger.core.types import UNIT, CycleResult, Snapshot
from hedger.ops.watch import CycleObserver

_LABEL_MAX = 64


def _label(value: str | None) -> str:
    """A label value: short and plain (the values are codes and names, never free text)."""
    v = (value or "unknown").strip() or "unknown"
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in v)[:_LABEL_MAX]


class Metrics(CycleObserver):
    """The keeper's Prometheus metrics. Construct, then :meth:`serve` (``build`` does both)."""

    def __init__(self, registry: CollectorRegistry | None = None, markets: Sequence[str] = ()) -> None:
        """``markets``: the configured names with ``HEDGER_MARKETS`` (adds the ``market`` label)."""
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.markets = [_label(m) for m in markets]
        r = self.registry
        mk = ["market"] if self.markets else []
        self.cycles = Counter("hedger_cycles", "Keeper cycles, by outcome", ["outcome", *mk], registry=r)
        self.actions = Counter("hedger_actions", "Mined transactions, by contract function", ["function", *mk],
                               registry=r)
        self.refusals = Counter("hedger_refusals", "Refused cycles by decision code, and cycles that could "
                                "not run by error kind", ["reason", *mk], registry=r)
        self.breaker_trips = Counter("hedger_circuit_breaker_trips", "Circuit breaker trips", registry=r)
        self.oracle_age = Gauge("hedger_oracle_age_seconds", "Block time minus the price round's updatedAt",
                                mk, registry=r)
        self.price = Gauge("hedger_oracle_price_usd", "The price feed's answer in USD", mk, registry=r)
        self.position_size = Gauge("hedger_position_size", "Signed position size in asset units "
                                   "(negative: short)", mk, registry=r)
        self.margin = Gauge("hedger_margin_usd", "Remaining margin in USD", mk, registry=r)
        self.leverage = Gauge("hedger_leverage", "abs(size) * price / margin; 0 without a position", mk,
                              registry=r)
        self.liquidation_distance = Gauge("hedger_liquidation_distance", "abs(liquidation price - price) / "
                                          "price; NaN without a position", mk, registry=r)
        self.hedge_error = Gauge("hedger_hedge_error", "Net delta in asset units: position size + spot exposure",
                                 mk, registry=r)
        self.gas_balance = Gauge("hedger_gas_balance_eth", "The hedged account's native balance", registry=r)
        self.last_exit_code = Gauge("hedger_last_exit_code", "Exit code of the last completed cycle", mk,
                                    registry=r)
        self.heartbeat_ts = Gauge("hedger_heartbeat_timestamp_seconds", "Wall clock of the last loop iteration",
                                  registry=r)
        for m in self.markets or [None]:
            self._of(self.liquidation_distance, m).set(math.nan)
        self.gas_balance.set(math.nan)                # unknown until a balance is read
        self._server: Any = None
        self._thread: Any = None

    # ---- serving ----

    def serve(self, port: int, host: str = "127.0.0.1") -> "Metrics":
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        return self

    @property
    def port(self) -> int | None:
        return None if self._server is None else int(self._server.server_address[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ---- observer ----

    def heartbeat(self) -> None:
        self.heartbeat_ts.set(time.time())

    def _of(self, metric: Any, market: str | None, **labels: str) -> Any:
        """The metric's child for these labels (and the market's, with ``HEDGER_MARKETS``)."""
        if self.markets:
            labels["market"] = _label(market or "all")
        return metric.labels(**labels) if labels else metric

    def on_cycle(self, res: CycleResult, market: str | None = None) -> None:
        self.heartbeat_ts.set(time.time())
        self._of(self.cycles, market, outcome=_label(res.outcome)).inc()
        self._of(self.last_exit_code, market).set(res.exit_code)
        if res.outcome == "refused":
            self._of(self.refusals, market, reason=_label(res.decision.code if res.decision else None)).inc()
        for tx in res.sent:          # the executor lists only mined, successful transactions
            self._of(self.actions, market, function=_label(tx.call.function)).inc()
        if res.snapshot is not None:
            self._observe(res.snapshot, market)

    def on_error(self, kind: str, message: str) -> None:
        self._of(self.cycles, None, outcome="error").inc()
        self._of(self.refusals, None, reason=_label(kind)).inc()

    def on_circuit_breaker(self, failures: int) -> None:
        self.breaker_trips.inc()

    def _observe(self, s: Snapshot, market: str | None) -> None:
        price = s.oracle.price_e18 / UNIT
        size = s.account.size / UNIT
        margin = s.account.margin / UNIT
        self._of(self.oracle_age, market).set(s.chain.block_timestamp - s.oracle.updated_at)
        self._of(self.price, market).set(price)
        self._of(self.position_size, market).set(size)
        self._of(self.margin, market).set(margin)
        self._of(self.hedge_error, market).set((s.account.size + s.exposure.total) / UNIT)
        if s.account.size == 0:
            self._of(self.leverage, market).set(0.0)
            self._of(self.liquidation_distance, market).set(math.nan)
        else:
            self._of(self.leverage, market).set(abs(size) * price / margin if margin > 0 else math.inf)
            self._of(self.liquidation_distance, market).set(abs(s.account.liquidation_price / UNIT - price) / price
                                                            if price > 0 else math.nan)
        if s.chain.account_balance is not None:
            self.gas_balance.set(s.chain.account_balance / UNIT)      # the account's, whatever the market


def build(port: int, host: str = "127.0.0.1", markets: Sequence[str] = ()) -> Metrics:
    """The metrics observer, serving on ``host:port`` (``hedger watch --metrics-port``); ``markets``:
    the configured names with ``HEDGER_MARKETS``."""
    from hedger.core.errors import ConfigError
    m = Metrics(markets=markets)
    try:
        return m.serve(port, host)
    except OSError as err:
        raise ConfigError("--metrics-port", f"cannot serve metrics on {host}:{port} ({err.strerror or err})",
                          "choose a free port (or another --metrics-host)") from None
