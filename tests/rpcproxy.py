"""JSON-RPC proxies on loopback for tests.

:class:`RpcProxy` forwards every POST (whatever its path, as a hosted RPC with an API
key in the path would be) to an upstream node, and counts requests.

:class:`FaultProxy` is the same proxy with a fault injector and a stricter transaction
pool in front of the node:

- it counts what the client sent: ``calls[method]`` per JSON-RPC request (a batch counts
  each request it contains), ``http_requests`` per HTTP POST, ``forwarded[method]`` per
  request that actually reached the node;
- :meth:`FaultProxy.inject` (or the shortcuts ``timeout``, ``http_error``, ``malformed``,
  ``wrong_id``, ``truncated_batch``, ``latency``, ``drop_tx``) makes the next ``count``
  HTTP requests (optionally only those carrying one of ``methods``) fail in one way;
- it can stand for one backend of a load-balanced RPC that does not see what another
  backend sees: :meth:`FaultProxy.hide` answers ``null`` for given transactions in
  ``eth_getTransactionByHash`` / ``eth_getTransactionReceipt`` (for a number of lookups,
  or until unhidden), :meth:`FaultProxy.blackhole` answers given transactions' broadcasts
  with their hash but never forwards them, and ``on_raw_tx`` (a callable taking the raw
  hex) sees every broadcast before the proxy handles it, so that a test can have "the
  other backend" mine something first (by sending it to the node directly);
- with ``enforce_geth_replacement=True`` it applies geth's price-bump rule to raw
  transactions, which anvil does not: a second transaction at the same (sender, nonce)
  is refused with ``replacement transaction underpriced`` unless both its max fee and
  its priority fee are at least 110% of the pending one's.

Everything listens on 127.0.0.1; all threads are daemon threads. Leaving the ``with``
block wakes any request held by a ``timeout`` or ``latency`` fault, so shutdown takes a
fraction of a second whatever faults are pending.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable

JSON = "application/json"
FAULT_KINDS = ("timeout", "http_error", "malformed", "wrong_id", "truncated_batch", "latency", "drop_tx")
WRONG_ID_OFFSET = 1_000_000
DEFAULT_HTML = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
                b"</body>\r\n</html>\r\n")
DEFAULT_MALFORMED = b'{"jsonrpc":"2.0","id":1,"result":"0x'   # cut off mid-answer, as a dropped stream


class _Server(ThreadingHTTPServer):
    daemon_threads = True       # request threads never keep the interpreter alive
    block_on_close = False      # server_close() does not wait for request threads


class RpcProxy:
    """Forward every POST to ``upstream``; ``requests`` counts POSTs, ``paths`` records their paths."""

    def __init__(self, upstream: str, *, upstream_timeout: float = 30.0) -> None:
        self.upstream = upstream
        self.upstream_timeout = upstream_timeout
        self.requests = 0
        self.paths: list[str] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy._lock:
                    proxy.requests += 1
                    proxy.paths.append(self.path)
                answer = proxy._handle(body)
                if answer is not None:
                    status, content_type, data = answer
                    try:
                        self.send_response(status)
                        self.send_header("Content-Type", content_type)
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                    except OSError:
                        pass    # the client gave up (its own timeout) before the answer came

            def log_message(self, *args: object) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True, name=f"rpcproxy-{self.port}")

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # ---------------------------------------------------------------- forwarding

    def _handle(self, body: bytes) -> tuple[int, str, bytes] | None:
        """The answer to one POST as (status, content type, body), or None to answer nothing."""
        return self._forward(body)

    def _forward(self, body: bytes) -> tuple[int, str, bytes]:
        req = urllib.request.Request(self.upstream, data=body, headers={"Content-Type": JSON})
        try:
            with urllib.request.urlopen(req, timeout=self.upstream_timeout) as resp:
                return resp.status, resp.headers.get("Content-Type", JSON), resp.read()
        except urllib.error.HTTPError as err:      # relay the node's own HTTP error
            return err.code, err.headers.get("Content-Type", "text/plain"), err.read()
        except (urllib.error.URLError, OSError) as err:
            return 502, "text/plain", f"upstream unreachable: {err}".encode()

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> "RpcProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()          # wake requests held by a fault
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Fault:
    """One injected fault: applies to the next ``remaining`` HTTP requests that match ``methods``."""

    kind: str
    remaining: int = 1
    methods: frozenset[str] | None = None   # None: any request
    seconds: float = 0.0                    # timeout: how long to hold; latency: the delay
    status: int = 502                       # http_error
    body: bytes | None = None               # http_error / malformed: the body sent
    forward: bool = False                   # timeout/http_error/malformed: let the node see it first
    applied: int = 0

    def matches(self, methods: list[str], is_batch: bool) -> bool:
        if self.remaining <= 0:
            return False
        if self.kind == "truncated_batch" and not (is_batch and methods):
            return False
        if self.kind == "drop_tx" and "eth_sendRawTransaction" not in methods:
            return False
        return self.methods is None or any(m in self.methods for m in methods)


def _rpc_error(req_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": req_id, "error": {"code": code, "message": message}}


def _keccak_hex(data: bytes) -> str:
    from eth_utils import keccak
    return "0x" + keccak(data).hex()


def decode_raw_tx(raw_hex: str) -> dict[str, Any]:
    """Sender, nonce and fees of a signed raw transaction (legacy, EIP-2930 or EIP-1559).

    Legacy and EIP-2930 transactions have one gas price; it stands for both fees,
    as in geth's comparison.
    """
    from eth_account import Account
    from eth_account.typed_transactions import TypedTransaction
    from hexbytes import HexBytes

    raw = bytes(HexBytes(raw_hex))
    sender = Account.recover_transaction(raw)
    if raw[0] >= 0xC0:                      # legacy: rlp([nonce, gasPrice, gas, to, value, data, v, r, s])
        import rlp
        fields = rlp.decode(raw)
        nonce = int.from_bytes(fields[0], "big")
        max_fee = tip = int.from_bytes(fields[1], "big")
    else:
        tx = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        nonce = int(tx["nonce"])
        if "maxFeePerGas" in tx:
            max_fee, tip = int(tx["maxFeePerGas"]), int(tx["maxPriorityFeePerGas"])
        else:
            max_fee = tip = int(tx["gasPrice"])
    return {"sender": sender, "nonce": nonce, "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": tip, "hash": _keccak_hex(raw)}


class FaultProxy(RpcProxy):
    """A counting, fault-injecting JSON-RPC proxy (see the module docstring).

    ``enforce_geth_replacement``: refuse same-(sender, nonce) replacements that do not raise
    both fees by at least ``price_bump_percent`` (geth's default 10%). The proxy remembers
    the fees of every raw transaction the node accepted; an entry is forgotten lazily: when a
    new transaction arrives at a remembered (sender, nonce), the proxy asks the node for the
    sender's ``eth_getTransactionCount(…, "latest")`` and drops the sender's entries below it
    (those nonces are mined, so the node itself answers "nonce too low").
    """

    def __init__(self, upstream: str, *, enforce_geth_replacement: bool = False,
                 price_bump_percent: int = 10, upstream_timeout: float = 30.0) -> None:
        super().__init__(upstream, upstream_timeout=upstream_timeout)
        self.enforce_geth_replacement = enforce_geth_replacement
        self.price_bump_percent = price_bump_percent
        self.calls: Counter[str] = Counter()
        self.forwarded: Counter[str] = Counter()
        self.faults: list[Fault] = []
        self.applied: list[tuple[str, tuple[str, ...]]] = []     # (fault kind, methods of the request)
        self.dropped: list[str] = []                              # hashes answered but never forwarded
        self.rejected: list[dict[str, Any]] = []                  # replacements refused as underpriced
        self.pool: dict[tuple[str, int], dict[str, Any]] = {}     # (sender, nonce) -> decoded tx
        self.hidden: dict[str, int | None] = {}                   # tx hash -> lookups left hidden (None: all)
        self.blackholed: set[str] = set()                         # tx hashes never forwarded
        self.on_raw_tx: Callable[[str], None] | None = None       # sees every raw tx before it is handled

    @property
    def http_requests(self) -> int:
        return self.requests

    # ---------------------------------------------------------------- configuring faults

    def inject(self, kind: str, count: int = 1, *, methods: Iterable[str] | str | None = None,
               seconds: float = 0.0, status: int = 502, body: bytes | None = None,
               forward: bool = False) -> Fault:
        """Make the next ``count`` matching HTTP requests fail as ``kind``; returns the fault.

        Faults are consumed in the order they were injected; a request takes at most one.
        ``forward=True`` (timeout, http_error, malformed) sends the request to the node
        first, so it takes effect (a transaction is broadcast) and only the answer is lost.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
        if isinstance(methods, str):
            methods = [methods]
        fault = Fault(kind=kind, remaining=count, methods=None if methods is None else frozenset(methods),
                      seconds=seconds, status=status, body=body, forward=forward)
        with self._lock:
            self.faults.append(fault)
        return fault

    def timeout(self, seconds: float = 10.0, count: int = 1, *, methods: Iterable[str] | str | None = None,
                forward: bool = False) -> Fault:
        """Hold the connection ``seconds`` without answering, then close it."""
        return self.inject("timeout", count, methods=methods, seconds=seconds, forward=forward)

    def http_error(self, status: int = 502, count: int = 1, *, methods: Iterable[str] | str | None = None,
                   body: bytes | None = None, forward: bool = False) -> Fault:
        """Answer with HTTP ``status`` and an HTML body (nginx's 502 page by default)."""
        return self.inject("http_error", count, methods=methods, status=status, body=body, forward=forward)

    def malformed(self, count: int = 1, *, methods: Iterable[str] | str | None = None,
                  body: bytes | None = None, forward: bool = False) -> Fault:
        """Answer 200 ``application/json`` with a body that is not JSON (a cut-off answer by default)."""
        return self.inject("malformed", count, methods=methods, body=body, forward=forward)

    def wrong_id(self, count: int = 1, *, methods: Iterable[str] | str | None = None) -> Fault:
        """Answer with ids that do not match the requests: a single answer (or a batch of one)
        gets an id the client never sent (+1,000,000); a batch's ids are rotated by one, so a
        client that pairs answers with requests by id pairs each with another's result."""
        return self.inject("wrong_id", count, methods=methods)

    def truncated_batch(self, count: int = 1, *, methods: Iterable[str] | str | None = None) -> Fault:
        """Answer a batch with its last entry missing (single requests are not affected)."""
        return self.inject("truncated_batch", count, methods=methods)

    def latency(self, seconds: float, count: int = 1, *, methods: Iterable[str] | str | None = None) -> Fault:
        """Wait ``seconds``, then forward and answer normally."""
        return self.inject("latency", count, methods=methods, seconds=seconds)

    def drop_tx(self, count: int = 1) -> Fault:
        """Answer the next ``count`` requests carrying eth_sendRawTransaction with each
        transaction's hash (keccak of the raw bytes) but never forward those transactions;
        other requests of the same batch are forwarded as usual."""
        return self.inject("drop_tx", count)

    def hide(self, *hashes: str, lookups: int | None = None) -> None:
        """Answer ``null`` to eth_getTransactionByHash and eth_getTransactionReceipt for
        ``hashes``: for their next ``lookups`` lookups each (None: until :meth:`unhide`), as a
        backend that has not seen them."""
        with self._lock:
            for h in hashes:
                self.hidden[h.lower()] = lookups

    def unhide(self, *hashes: str) -> None:
        with self._lock:
            for h in hashes or list(self.hidden):
                self.hidden.pop(h.lower(), None)

    def blackhole(self, *hashes: str) -> None:
        """Answer every broadcast of these transactions with its hash, never forwarding it."""
        with self._lock:
            self.blackholed.update(h.lower() for h in hashes)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def reset_counts(self) -> None:
        with self._lock:
            self.calls.clear()
            self.forwarded.clear()
            self.requests = 0
            self.paths.clear()

    # ---------------------------------------------------------------- handling

    def _take_fault(self, methods: list[str], is_batch: bool) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.matches(methods, is_batch):
                    f.remaining -= 1
                    f.applied += 1
                    self.applied.append((f.kind, tuple(methods)))
                    return f
        return None

    def _handle(self, body: bytes) -> tuple[int, str, bytes] | None:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        is_batch = isinstance(payload, list)
        entries: list[Any] = payload if is_batch else [payload] if isinstance(payload, dict) else []
        methods = [e.get("method") for e in entries if isinstance(e, dict) and isinstance(e.get("method"), str)]
        with self._lock:
            self.calls.update(methods)
        if not entries:     # not JSON-RPC: let the node answer it
            return self._forward(body)

        fault = self._take_fault(methods, is_batch)
        kind = fault.kind if fault else None
        if kind in ("timeout", "http_error", "malformed"):
            if fault.forward:
                self._send(entries, is_batch, drop=False)
            if kind == "timeout":
                self._closing.wait(fault.seconds)
                return None
            if kind == "http_error":
                return fault.status, "text/html", fault.body if fault.body is not None else DEFAULT_HTML
            return 200, JSON, fault.body if fault.body is not None else DEFAULT_MALFORMED
        if kind == "latency":
            if self._closing.wait(fault.seconds):
                return None

        answers = self._send(entries, is_batch, drop=kind == "drop_tx")
        if isinstance(answers, tuple):        # the node's answer was not JSON: relay it as it is
            return answers
        if kind == "wrong_id":
            answers = _wrong_ids(answers)
        elif kind == "truncated_batch" and isinstance(answers, list):
            answers = answers[:-1]
        return 200, JSON, json.dumps(answers).encode()

    def _send(self, entries: list[Any], is_batch: bool, *, drop: bool) -> Any:
        """Answer raw transactions locally where a fault or the replacement rule says so,
        forward the rest, and merge the answers in request order."""
        local: dict[int, dict[str, Any]] = {}
        checked: dict[int, dict[str, Any]] = {}
        for i, e in enumerate(entries):
            if not isinstance(e, dict):
                continue
            if e.get("method") in ("eth_getTransactionByHash", "eth_getTransactionReceipt"):
                h = (e.get("params") or [None])[0]
                if isinstance(h, str) and self._take_hidden(h):
                    local[i] = {"jsonrpc": "2.0", "id": e.get("id"), "result": None}
                continue
            if e.get("method") != "eth_sendRawTransaction":
                continue
            raw = (e.get("params") or [None])[0]
            if not isinstance(raw, str):
                continue                # malformed params: the node answers them
            if self.on_raw_tx is not None:
                self.on_raw_tx(raw)
            try:
                raw_hash = _keccak_hex(bytes.fromhex(raw[2:] if raw.startswith("0x") else raw))
            except ValueError:
                continue                # not hex: the node answers it
            if drop or raw_hash in self.blackholed:
                with self._lock:
                    self.dropped.append(raw_hash)
                local[i] = {"jsonrpc": "2.0", "id": e.get("id"), "result": raw_hash}
            elif self.enforce_geth_replacement:
                try:
                    tx = decode_raw_tx(raw)
                except Exception:       # undecodable: the node answers it
                    continue
                refusal = self._replacement_refusal(tx)
                if refusal:
                    with self._lock:
                        self.rejected.append(tx)
                    local[i] = _rpc_error(e.get("id"), -32000, refusal)
                else:
                    checked[i] = tx

        rest = [e for i, e in enumerate(entries) if i not in local]
        upstream: list[Any] = []
        if rest:
            with self._lock:
                self.forwarded.update(e["method"] for e in rest
                                      if isinstance(e, dict) and isinstance(e.get("method"), str))
            status, ctype, data = self._forward(json.dumps(rest if is_batch else rest[0]).encode())
            try:
                decoded = json.loads(data)
            except ValueError:
                return status, ctype, data
            if not local:
                self._remember(entries, decoded, checked)
                return decoded
            upstream = decoded if isinstance(decoded, list) else [decoded]
        by_id = {json.dumps(a.get("id")): a for a in upstream if isinstance(a, dict)}
        merged: list[Any] = []
        pos = 0
        for i, e in enumerate(entries):
            if i in local:
                merged.append(local[i])
            elif isinstance(e, dict) and "id" in e:
                a = by_id.get(json.dumps(e.get("id")))
                if a is None and pos < len(upstream):
                    a = upstream[pos]
                pos += 1
                if a is not None:
                    merged.append(a)
        self._remember(entries, merged if is_batch else merged[0], checked)
        return merged if is_batch else merged[0]

    def _take_hidden(self, tx_hash: str) -> bool:
        with self._lock:
            key = tx_hash.lower()
            if key not in self.hidden:
                return False
            left = self.hidden[key]
            if left is None:
                return True
            if left <= 1:
                del self.hidden[key]
            else:
                self.hidden[key] = left - 1
            return left >= 1

    # ---------------------------------------------------------------- geth's replacement rule

    def _replacement_refusal(self, tx: dict[str, Any]) -> str | None:
        key = (tx["sender"], tx["nonce"])
        with self._lock:
            old = self.pool.get(key)
        if old is None:
            return None
        mined = self._mined_count(tx["sender"])
        if mined is not None and mined > tx["nonce"]:
            with self._lock:
                for k in [k for k in self.pool if k[0] == tx["sender"] and k[1] < mined]:
                    del self.pool[k]
            return None                 # the node answers "nonce too low"
        if tx["hash"] == old["hash"]:
            return "already known"
        bump = 100 + self.price_bump_percent
        if (tx["maxFeePerGas"] * 100 >= old["maxFeePerGas"] * bump
                and tx["maxPriorityFeePerGas"] * 100 >= old["maxPriorityFeePerGas"] * bump):
            return None
        return "replacement transaction underpriced"

    def _mined_count(self, sender: str) -> int | None:
        body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "eth_getTransactionCount",
                           "params": [sender, "latest"]}).encode()
        try:
            return int(json.loads(self._forward(body)[2])["result"], 16)
        except (ValueError, KeyError, TypeError):
            return None

    def _remember(self, entries: list[Any], answers: Any, checked: dict[int, dict[str, Any]]) -> None:
        """Record the fees of each checked raw transaction the node accepted."""
        if not checked:
            return
        answer_list = answers if isinstance(answers, list) else [answers]
        by_id = {json.dumps(a.get("id")): a for a in answer_list if isinstance(a, dict)}
        for i, tx in checked.items():
            a = by_id.get(json.dumps(entries[i].get("id")))
            if a is not None and "result" in a and "error" not in a:
                with self._lock:
                    self.pool[(tx["sender"], tx["nonce"])] = tx


def _wrong_ids(answers: Any) -> Any:
    if isinstance(answers, dict):
        return {**answers, "id": _shift_id(answers.get("id"))}
    if len(answers) <= 1:
        return [{**a, "id": _shift_id(a.get("id"))} for a in answers]
    ids = [a.get("id") for a in answers]
    return [{**a, "id": ids[(i + 1) % len(ids)]} for i, a in enumerate(answers)]


def _shift_id(req_id: Any) -> Any:
    if isinstance(req_id, int):
        return req_id + WRONG_ID_OFFSET
    if isinstance(req_id, str) and req_id.isdigit():
        return str(int(req_id) + WRONG_ID_OFFSET)
    return f"wrong-{req_id}"
