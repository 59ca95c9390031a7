"""Batched, block-pinned reads.

A cycle reads in two round trips whatever it reads: the latest block (with
chain id and, once, the genesis hash), then every ``eth_call`` of the cycle in
one JSON-RPC batch pinned to that block number, so that all readings are
mutually consistent. A venue whose calls need an earlier answer (a second
stage) adds one more :meth:`ChainReader.call_many` pinned to the same block:
three round trips at most. Other requests of the cycle (a venue's ``eth_getLogs`` up to
the head's block) ride in a stage's batch (:meth:`ChainReader.call_many_with`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from eth_abi.exceptions import DecodingError
from web3 import Web3

from hedger.chain.abi import load_abi
from hedger.core.errors import ChainGuardError, RpcError
from hedger.core.types import ChainView


# Multicall3 at the address it has on most EVM chains (the same deployer and nonce everywhere)
CANONICAL_MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
MULTICALL_FIX = (f"set HEDGER_MULTICALL to a Multicall3 (aggregate3) on this chain (`hedger deploy` prints one; "
                 f"{CANONICAL_MULTICALL3} on most chains), or unset it to read through a JSON-RPC batch")


@dataclass(frozen=True)
class CallSpec:
    """One view call: ``key`` names its result."""

    key: str
    address: str
    abi: str          # name of a file under abis/
    fn: str
    args: tuple[Any, ...] = ()
    optional: bool = False   # a revert yields None instead of an error


class CallFailed(Exception):
    def __init__(self, spec: CallSpec, reason: str) -> None:
        super().__init__(f"{spec.fn} on {spec.address} failed: {reason}")
        self.spec = spec
        self.reason = reason


class NoAnswer(CallFailed, ChainGuardError):
    """A view answered nothing: no contract at the address, or another interface. A caller that knows
    which setting named the address catches it as CallFailed and says so; to any other it is a
    ChainGuardError (exit 5) by itself."""


class ChainReader:
    def __init__(self, w3: Web3, *, retries: int = 2, backoff: float = 0.25, multicall: str | None = None) -> None:
        self.w3 = w3
        self.multicall = Web3.to_checksum_address(multicall) if multicall else None
        self.retries = retries
        self.backoff = backoff
        self.round_trips = 0
        self._genesis: str | None = None
        self._contracts: dict[tuple[str, str], Any] = {}
        self._encoding: dict[tuple[Any, ...], tuple[str, str, list[str]]] = {}
        self._id = 0

    def _batch(self, requests: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        """One JSON-RPC batch; transient failures (timeout, HTTP error, malformed or incomplete
        answer) are retried ``retries`` times with a short backoff, then raise RpcError."""
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * attempt)
            try:
                return self._batch_once(requests)
            except RpcError as err:
                last = err
        assert last is not None
        raise RpcError(f"{last} (after {self.retries + 1} attempts)") from last

    def _batch_once(self, requests: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        self.round_trips += 1
        try:
            resp = self.w3.provider.make_batch_request(requests)  # type: ignore[attr-defined]
        except Exception as err:
            raise RpcError(f"RPC batch request failed: {type(err).__name__}: {_clean(err)}") from err
        if not isinstance(resp, list):
            raise RpcError(f"RPC answered a batch with a single response: {_clean(Exception(str(resp)[:200]))}")
        if len(resp) != len(requests):
            raise RpcError(f"RPC answered {len(resp)} of {len(requests)} batched requests")
        ids = [r.get("id") for r in resp]
        if None in ids:
            raise RpcError("RPC answered a batch entry without an id")
        resp = sorted(resp, key=lambda r: int(r["id"]))
        return resp

    def head(self, account: str | None = None) -> ChainView:
        """Round trip 1: latest block and chain id (the genesis hash the first time, and the
        account's mined nonce when an account is given)."""
        return self.head_with_code(account)[0]

    def head_with_code(self, account: str | None = None, code_at: str | None = None) -> tuple[ChainView, bool | None]:
        """:meth:`head`, and in the same round trip whether ``code_at`` holds code at the latest
        block (None when no address is given)."""
        reqs: list[tuple[str, list[Any]]] = [("eth_getBlockByNumber", ["latest", False]), ("eth_chainId", [])]
        if account is not None:
            reqs.append(("eth_getTransactionCount", [account, "latest"]))
            reqs.append(("eth_getBalance", [account, "latest"]))
        if code_at is not None:
            reqs.append(("eth_getCode", [Web3.to_checksum_address(code_at), "latest"]))
        if self._genesis is None:
            reqs.append(("eth_getBlockByNumber", ["0x0", False]))
        resp = self._batch(reqs)
        for r in resp:
            if "error" in r or r.get("result") is None:
                raise RpcError(f"RPC error reading the chain head: {r.get('error')}")
        block = resp[0]["result"]
        has_code = None
        if code_at is not None:
            has_code = resp[4 if account is not None else 2]["result"] not in ("0x", "0x0", "")
        if self._genesis is None:
            self._genesis = resp[-1]["result"]["hash"]
        return ChainView(chain_id=int(resp[1]["result"], 16), block_number=int(block["number"], 16),
                         block_timestamp=int(block["timestamp"], 16), wall_clock=int(time.time()),
                         genesis_hash=self._genesis or "",
                         account_nonce=int(resp[2]["result"], 16) if account is not None else None,
                         account_balance=int(resp[3]["result"], 16) if account is not None else None), has_code

    def _contract(self, address: str, abi: str) -> Any:
        key = (address, abi)
        if key not in self._contracts:
            self._contracts[key] = self.w3.eth.contract(address=Web3.to_checksum_address(address),
                                                        abi=load_abi(abi))
        return self._contracts[key]

    def call_many(self, specs: list[CallSpec], block_number: int) -> dict[str, Any]:
        """Round trip 2: all calls at one block. Returns key -> decoded value (a tuple when
        the function returns several values). A call to an address without code, or a
        revert of a non-optional call, raises."""
        return self.call_many_with(specs, block_number)[0]

    def call_many_with(self, specs: list[CallSpec], block_number: int,
                       raw: list[tuple[str, list[Any]]] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """:meth:`call_many`, with ``raw`` JSON-RPC requests (method, params; e.g. an ``eth_getLogs``
        whose filter ends at ``block_number``) sent in the same HTTP batch: no round trip of their
        own. Returns the decoded calls and each raw request's JSON-RPC answer as the node gave it
        (``result`` or ``error``, in ``raw``'s order): an error answer to one of them is the
        caller's to judge and fails nothing else."""
        raw = list(raw or [])
        if not specs:
            return {}, (self._batch(raw) if raw else [])
        encoded = [self._encoded(spec) for spec in specs]
        if self.multicall:
            answers, extra = self._via_multicall(specs, encoded, block_number, raw)
        else:
            reqs = [("eth_call", [{"to": to, "data": data}, hex(block_number)]) for to, data, _ in encoded]
            resp = self._batch(reqs + raw)
            resp, extra = resp[:len(reqs)], resp[len(reqs):]
            answers = [(None, bytes.fromhex(r["result"][2:])) if "error" not in r
                       else (str(r["error"].get("message", r["error"])), b"") for r in resp]
        return self._decoded(specs, encoded, answers), extra

    def _decoded(self, specs: list[CallSpec], encoded: list[tuple[str, str, list[str]]],
                 answers: list[tuple[str | None, bytes]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for spec, (_, _, types), (failure, raw) in zip(specs, encoded, answers):
            if failure is not None:
                if spec.optional:
                    out[spec.key] = None
                    continue
                raise CallFailed(spec, failure)
            if not raw and types:
                raise NoAnswer(spec, f"returned nothing: no contract there, or not the expected interface ({spec.abi})")
            try:
                vals = self.w3.codec.decode(types, raw)
            except (DecodingError, OverflowError) as err:
                raise ChainGuardError(f"{spec.fn}() at {spec.address} returned data that is not a {spec.abi} "
                                      f"answer", address=spec.address) from err
            out[spec.key] = vals[0] if len(vals) == 1 else tuple(vals)
        return out

    def _encoded(self, spec: CallSpec) -> tuple[str, str, list[str]]:
        """(checksummed address, call data, output types) of a view call, encoded once: a
        keeper reads the same views every cycle, and web3's encoder is slow."""
        key = (spec.address, spec.abi, spec.fn, spec.args)
        hit = self._encoding.get(key)
        if hit is None:
            fn = self._contract(spec.address, spec.abi).get_function_by_name(spec.fn)(*spec.args)
            types = [_tuple_type(o) if o["type"].startswith("tuple") else o["type"] for o in fn.abi["outputs"]]
            hit = (Web3.to_checksum_address(spec.address), fn._encode_transaction_data(), types)
            self._encoding[key] = hit
        return hit

    AGGREGATE3 = "0x82ad56cb"   # aggregate3((address,bool,bytes)[])

    def _via_multicall(self, specs: list[CallSpec], encoded: list[tuple[str, str, list[str]]], block_number: int,
                       raw: list[tuple[str, list[Any]]]) -> tuple[list[tuple[str | None, bytes]], list[dict[str, Any]]]:
        """All calls in one eth_call to a Multicall3-compatible aggregate3 (allowFailure on every
        call; the failures are sorted out per call afterwards), batched with the ``raw`` requests.
        Returns (failure or None, data) per call, and the raw requests' answers."""
        from hedger.chain.executor import decode_revert_data
        calls = [(to, True, bytes.fromhex(data[2:])) for to, data, _ in encoded]
        data = self.AGGREGATE3 + self.w3.codec.encode(["(address,bool,bytes)[]"], [calls]).hex()
        r, *extra = self._batch([("eth_call", [{"to": self.multicall, "data": data}, hex(block_number)]), *raw])
        if "error" in r:
            raise RpcError(f"aggregate3 at {self.multicall} (HEDGER_MULTICALL) failed: "
                           f"{r['error'].get('message', r['error'])}. Fix: {MULTICALL_FIX}")
        answer = bytes.fromhex((r.get("result") or "0x")[2:])
        if not answer:
            raise ChainGuardError(f"multicall: aggregate3 at {self.multicall} (HEDGER_MULTICALL) returned nothing: no "
                                  f"contract there, or not a Multicall3. Fix: {MULTICALL_FIX}", address=self.multicall)
        try:
            (results,) = self.w3.codec.decode(["(bool,bytes)[]"], answer)
        except (DecodingError, OverflowError) as err:
            raise ChainGuardError(f"multicall: aggregate3 at {self.multicall} (HEDGER_MULTICALL) returned data that "
                                  f"is not a Multicall3 answer. Fix: {MULTICALL_FIX}", address=self.multicall) from err
        if len(results) != len(specs):
            raise RpcError(f"aggregate3 answered {len(results)} of {len(specs)} calls")
        return [(None, bytes(ret)) if ok else (decode_revert_data(bytes(ret)), b"") for ok, ret in results], extra


def _tuple_type(o: dict[str, Any]) -> str:
    """The ABI type string of a tuple output, arrays of tuples included (``tuple[]`` -> ``(...)[]``)."""
    inner = ",".join(_tuple_type(c) if c["type"].startswith("tuple") else c["type"] for c in o["components"])
    return f"({inner}){o['type'][len('tuple'):]}"


def _clean(err: Exception) -> str:
    """An error message with any URL reduced to scheme and host (hosted RPCs put keys in paths)."""
    from hedger.core.secrets import redact_urls
    return redact_urls(str(err))[:300]
