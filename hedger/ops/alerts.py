"""Webhook alerts for `hedger watch` (``HEDGER_ALERT_WEBHOOK``).

An observer of the keeper loop (:class:`hedger.ops.watch.CycleObserver`) that
POSTs one JSON object per alert to the webhook:

    {"kind": "liquidation_distance", "severity": "critical", "message": "...",
     "account": "0x..", "market": "0x..", "chain_id": 31337, "ts": 1700000000,
     "details": {...}}

| kind | severity | when | again |
|---|---|---|---|
| ``refusal_streak`` | warning | ``HEDGER_ALERT_REFUSAL_STREAK`` refused cycles in a row (a cycle refused by a guard, or one that could not run) | after a cycle that was not refused |
| ``circuit_breaker`` | critical | the keeper stops after N failed cycles in a row | each trip (the keeper exits) |
| ``liquidation_distance`` | critical | the liquidation price is closer than ``HEDGER_ALERT_LIQ_DISTANCE`` of the price (read at the start of the cycle) | after a reading at or beyond it, or without a position |
| ``gas_low`` | warning | the account holds less than ``HEDGER_ALERT_MIN_GAS_ETH`` | after a reading at or above it |
| ``collateral_fault`` | critical | the collateral token is paused or blacklists the account or the market | for each distinct problem; again after it clears |
| ``adl`` | critical | the position is smaller than the last cycle left it, by no order of ours (GMX v2's auto-deleveraging of a profitable position, or a liquidation); the cycle re-hedges from the new size | each time it is seen |
| ``liquidated`` | critical | the venue reports the account liquidated by a third party since the last cycle (a cycle's note starting ``liquidated:``) | for each liquidation |
| ``gas_too_high`` | critical | a risk-reducing step (top-up, hedge reduction) was blocked by gas above the emergency ceiling | after a cycle with another outcome |

With ``HEDGER_MARKETS``, each market keeps its own episodes (a refusal streak,
a liquidation alarm, a collateral fault, a blocked top-up) and its alerts carry
that market's address and ``details.market_name``; a cycle that could not run
at all counts toward every market's refusal streak. The gas balance is the
account's: one ``gas_low`` episode.

Each POST is signed when ``HEDGER_ALERT_WEBHOOK_SECRET`` is set, as Stripe signs
its webhooks: ``X-Hedger-Timestamp`` carries the Unix time of sending and
``X-Hedger-Signature`` carries ``v1=`` and the hex HMAC-SHA256, keyed with the
secret, of ``<timestamp>.<body>`` (the raw body bytes). The receiver recomputes
it, compares in constant time, and rejects a timestamp more than a few minutes
old (a replayed alert). Redirects are not followed (a 3xx is a failed delivery):
a redirect would send the alert, signed, somewhere not configured.

Delivery is synchronous with a 5 s timeout, so an alert sent just before the
circuit breaker stops the process is not lost; any failure (refused
connection, timeout, HTTP error) is swallowed and counted (``failed``), and
logged by its exception type only. The webhook URL is a secret (it carries
the token): it is never printed, logged or put in a payload. Every message
passes :func:`hedger.core.secrets.redact_urls` and a scrub of the private key, the
webhook URL and the RPC URL's path, query and user info.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable

from hedger.config import Settings

from hedger.core.secrets import redact_urls, register_rpc_url
from hedger.core.types import UNIT, CycleResult, Snapshot
from hedger.ops.watch import CycleObserver

log = logging.getLogger(__name__)


@dataclass
class _Episodes:
    """One market's alert state: what has fired and is not yet re-armed."""

    market: str | None               # address for the payload
    streak: int = 0
    streak_armed: bool = True
    liq_armed: bool = True
    gas_high_armed: bool = True
    collateral_problem: str | None = None
    old_orders: set[str] = field(default_factory=set)   # keys of orders already alerted as too old


TIMEOUT_S = 5.0
TIMESTAMP_HEADER = "X-Hedger-Timestamp"
SIGNATURE_HEADER = "X-Hedger-Signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=`` and the hex HMAC-SHA256 of ``<timestamp>.<body>`` keyed with ``secret``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx answer is an error (the alert is not re-sent to wherever it points)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


class Alerts(CycleObserver):
    """Decides when to alert, builds the payload, POSTs it. ``clock`` gives ``ts`` (tests fix it)."""

    def __init__(self, settings: Settings, *, timeout: float = TIMEOUT_S,
                 clock: Callable[[], float] = time.time) -> None:
        if settings.alert_webhook is None:
            raise ValueError("HEDGER_ALERT_WEBHOOK is not set")
        self._webhook = settings.alert_webhook                  # a Secret until the moment of sending
        self._signing = settings.alert_webhook_secret           # None: alerts go unsigned
        url = self._webhook.get_secret_value()
        self.timeout = timeout
        self.clock = clock
        self.account = settings.account
        self.market = settings.market
        self.chain_id = settings.chain_id
        self.liq_threshold = settings.alert_liq_distance      # E18 fraction
        self.min_gas = settings.alert_min_gas                 # wei
        self.streak_limit = max(1, settings.alert_refusal_streak)
        self.order_age = settings.alert_order_age             # seconds of chain time
        # redact_urls reduces URLs to scheme, host and port and blanks registered URL parts wherever
        # they appear (settings built by hand may not have registered them yet)
        register_rpc_url(settings.rpc_url)
        register_rpc_url(url)
        self._key_re: re.Pattern[str] | None = None
        if settings.private_key is not None:
            hexkey = settings.private_key.get_secret_value().lower().removeprefix("0x")
            self._key_re = re.compile(r"(0x)?" + re.escape(hexkey), re.IGNORECASE)
        self._secret_re = (re.compile(re.escape(self._signing.get_secret_value()))
                           if self._signing is not None else None)
        # episode state: per market (key None: a single-market keeper), the gas balance account-wide
        self._episodes: dict[str | None, _Episodes] = {}
        self._gas_armed = True
        # delivery counters
        self.sent = 0
        self.delivered = 0
        self.failed = 0

    # ---- payloads ----

    def scrub(self, text: str) -> str:
        """No key, no signing secret, no webhook, no RPC URL beyond scheme, host and port."""
        text = redact_urls(text)
        for pattern in (self._key_re, self._secret_re):
            if pattern is not None:
                text = pattern.sub("***", text)
        return text

    def episodes(self, market: str | None = None) -> _Episodes:
        """The alert state of one market (by configured name; None for a single-market keeper)."""
        if market not in self._episodes:
            self._episodes[market] = _Episodes(market=self.market)
        return self._episodes[market]

    @property
    def streak(self) -> int:
        """The longest current run of refused cycles among the markets."""
        return max((e.streak for e in self._episodes.values()), default=0)

    def payload(self, kind: str, severity: str, message: str, *, market: str | None = None,
                **details: Any) -> dict[str, Any]:
        """``market``: the configured name with ``HEDGER_MARKETS`` (its address goes in ``market``)."""
        if market is not None:
            details = {"market_name": market, **details}
        address = self._episodes[market].market if market in self._episodes else self.market
        return {"kind": kind, "severity": severity, "message": self.scrub(message),
                "account": self.account, "market": address, "chain_id": self.chain_id,
                "ts": int(self.clock()),
                "details": {k: self.scrub(v) if isinstance(v, str) else v for k, v in details.items()}}

    def send(self, kind: str, severity: str, message: str, *, market: str | None = None, **details: Any) -> None:
        payload = self.payload(kind, severity, message, market=market, **details)
        body = json.dumps(payload).encode()
        self.sent += 1
        headers = {"Content-Type": "application/json", "User-Agent": "hedger-alerts"}
        if self._signing is not None:
            ts = payload["ts"]
            headers[TIMESTAMP_HEADER] = str(ts)
            headers[SIGNATURE_HEADER] = signature(self._signing.get_secret_value(), ts, body)
        req = urllib.request.Request(self._webhook.get_secret_value(), data=body, method="POST", headers=headers)
        try:
            with _OPENER.open(req, timeout=self.timeout) as resp:
                resp.read(4096)
            self.delivered += 1
        except Exception as err:   # a dead webhook must never stop the keeper; the URL is never shown
            self.failed += 1
            log.warning("alert %s not delivered (%s); %d undelivered so far", kind, type(err).__name__, self.failed)

    # ---- observer ----

    def on_start(self, keeper: Any) -> None:
        self.account = self.account or getattr(keeper, "account", None)
        adapter = getattr(keeper, "adapter", None)
        self.market = self.market or getattr(adapter, "market", None)
        for name, k in (getattr(keeper, "keepers", None) or {}).items():     # HEDGER_MARKETS
            self.episodes(name).market = k.adapter.market

    def on_cycle(self, res: CycleResult, market: str | None = None) -> None:
        ep = self.episodes(market)
        if res.snapshot is not None:
            self.chain_id = res.snapshot.chain.chain_id
            ep.market = res.snapshot.market.address
        if res.outcome == "refused":
            d = res.decision
            last = f"{d.code}: {d.reason}" if d is not None else (res.error or "refused")
            self._refused(market, d.code if d is not None else "refused", last)
        else:
            ep.streak, ep.streak_armed = 0, True
        if res.outcome == "gas_too_high":
            if ep.gas_high_armed:
                ep.gas_high_armed = False
                msg = "a risk-reducing step (top-up or hedge reduction) was blocked by gas above the emergency ceiling"
                self.send("gas_too_high", "critical", f"{msg}: {res.error}" if res.error else msg,
                          market=market, exit_code=res.exit_code)
        else:
            ep.gas_high_armed = True
        if res.reduced_by_venue > 0 and res.snapshot is not None:
            size = res.snapshot.account.size
            self.send("adl", "critical",
                      f"the position was reduced by {res.reduced_by_venue / UNIT:.6f} by no order of ours (the venue's "
                      f"auto-deleveraging, or a liquidation): now {size / UNIT:+.6f}; the cycle re-hedges "
                      f"(outcome: {res.outcome})", market=market, reduced_by=res.reduced_by_venue / UNIT,
                      position_size=size / UNIT, outcome=res.outcome)
        for note in res.notes:
            if note.startswith("liquidated:"):
                self.send("liquidated", "critical", note, market=market)
        if res.snapshot is not None:
            self._check_snapshot(market, res.snapshot, res.outcome)

    def on_error(self, kind: str, message: str) -> None:
        # the cycle could not run: no market was hedged
        for market in list(self._episodes) or [None]:
            self._refused(market, kind, f"{kind}: {message}")

    def on_circuit_breaker(self, failures: int) -> None:
        self.send("circuit_breaker", "critical",
                  f"the circuit breaker stopped the keeper after {failures} failed cycles in a row; "
                  "nothing is hedged until it is restarted", failures=failures)

    # ---- rules ----

    def _refused(self, market: str | None, reason: str, last: str) -> None:
        ep = self.episodes(market)
        ep.streak += 1
        if ep.streak >= self.streak_limit and ep.streak_armed:
            ep.streak_armed = False
            self.send("refusal_streak", "warning",
                      f"{ep.streak} refused cycles in a row; the hedger cannot act. Last: {last}",
                      market=market, streak=ep.streak, reason=reason)

    def _check_snapshot(self, market: str | None, s: Snapshot, outcome: str) -> None:
        ep = self.episodes(market)
        problem = s.collateral_status.problem()
        if problem is not None and problem != ep.collateral_problem:
            self.send("collateral_fault", "critical",
                      f"{problem}: no margin can be deposited or withdrawn", market=market, problem=problem)
        ep.collateral_problem = problem

        # an order the venue's keeper has left pending this long (GMX v2: its keepers usually act in
        # seconds): once per order, the list forgotten as orders leave the venue's list
        now = s.chain.block_timestamp
        live = {o.key for o in s.account.orders if o.in_flight}
        ep.old_orders &= live
        for o in s.account.orders:
            age = now - o.submitted_at
            if o.in_flight and age > self.order_age and o.key not in ep.old_orders:
                ep.old_orders.add(o.key)
                self.send("order_old", "warning",
                          f"order {o.key} ({o.kind.value}, {o.state.value}) has waited {age}s for the venue's keeper "
                          f"(alert above {self.order_age}s)", market=market, order_key=o.key, age_s=age,
                          state=o.state.value)

        px = s.oracle.price_e18
        size = s.account.size
        if size != 0 and px > 0:
            liq = s.account.liquidation_price
            dist_e18 = abs(liq - px) * UNIT // px
            if dist_e18 < self.liq_threshold:
                if ep.liq_armed:
                    ep.liq_armed = False
                    dist, thr = abs(liq - px) / px, self.liq_threshold / UNIT
                    self.send("liquidation_distance", "critical",
                              f"liquidation price {liq / UNIT:,.2f} USD is {dist:.2%} from the price "
                              f"{px / UNIT:,.2f} USD (alert below {thr:.2%}); cycle outcome: {outcome}",
                              market=market, liquidation_distance=dist, threshold=thr, liquidation_price=liq / UNIT,
                              price=px / UNIT, position_size=size / UNIT, outcome=outcome)
            else:
                ep.liq_armed = True
        else:
            ep.liq_armed = True

        bal = s.chain.account_balance
        if bal is not None:
            if bal < self.min_gas:
                if self._gas_armed:
                    self._gas_armed = False
                    self.send("gas_low", "warning",
                              f"the hedged account holds {bal / UNIT:.6f} ETH for gas, below "
                              f"{self.min_gas / UNIT:.6f} ETH: fund it or transactions will fail",
                              balance_eth=bal / UNIT, min_eth=self.min_gas / UNIT)
            else:
                self._gas_armed = True


def build(settings: Settings) -> CycleObserver:
    """The alerting observer for ``settings.alert_webhook`` (a do-nothing observer without one)."""
    if settings.alert_webhook is None:
        return CycleObserver()
    return Alerts(settings)
