"""The only code that signs and sends.

For each call of a plan, in order (risk-reducing steps first): simulate it
against the latest block (after the previous step was mined), sign, send,
wait for the receipt, and turn reverts into the project's errors. A failure
before anything was sent raises :class:`SimulationFailed` ("sent nothing");
a failure after some steps were mined raises :class:`PartialExecution`
("partial, safe": the mined steps were the risk-reducing ones).

A step counts as mined for the next step as soon as its receipt is there: the
sender never waits for confirmations. How deep a receipt must be before it is
final (``HEDGER_CONFIRMATIONS``) is the journal's and reconciliation's concern:
each run re-checks the blocks of receipts not yet that deep. A send answered
"nonce too low" is never signed again at another nonce: the nonce may have been
taken by the same call another backend knew of; the cycle ends and the next one
re-reads.
"""

from __future__ import annotations

import logging
import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any, Callable

from eth_account import Account
from web3 import Web3
from web3.exceptions import (ContractCustomError, ContractLogicError, ContractPanicError, TransactionNotFound,
                             Web3RPCError)

from hedger.core.errors import (ActionTooLarge, ConfigError, ExecutionError, GasHeld, GasTooHigh, PartialExecution, RpcError,
                           SimulationFailed, StuckTransaction, TransactionReverted)
from hedger.core.secrets import Secret
from hedger.core.types import Call, SentTx

log = logging.getLogger("hedger.chain.executor")


class Signer(ABC):
    """Holds the key; signs transactions. Registered implementations: key, ape account."""

    address: str

    @abstractmethod
    def sign_transaction(self, tx: dict[str, Any]) -> bytes:
        """Return the raw signed transaction for a complete EIP-1559 tx dict."""


class KeySigner(Signer):
    """A private key from the environment (``HEDGER_PRIVATE_KEY``, possibly via ``.env``)."""

    def __init__(self, key: Secret) -> None:
        try:
            self._account = Account.from_key(key.get_secret_value())
        except Exception as err:  # never include the key in the message
            raise ConfigError("HEDGER_PRIVATE_KEY", "is not a valid 32-byte hex private key",
                              "set it to 0x followed by 64 hex digits, or use HEDGER_APE_ACCOUNT") from None
        self.address = self._account.address

    def sign_transaction(self, tx: dict[str, Any]) -> bytes:
        return bytes(self._account.sign_transaction(tx).raw_transaction)

    def __repr__(self) -> str:
        return f"KeySigner({self.address})"


class ApeAccountSigner(Signer):
    """An account stored by ape (``ape accounts import ALIAS``), unlocked with its passphrase.

    The passphrase comes from ``APE_ACCOUNTS_<alias>_PASSPHRASE`` (ape's own
    convention) or ape's prompt when a terminal is attached.
    """

    def __init__(self, alias: str) -> None:
        try:
            from ape import accounts
            self._account = accounts.load(alias)
        except Exception as err:
            raise ConfigError("HEDGER_APE_ACCOUNT", f"no ape account named {alias!r} ({type(err).__name__})",
                              "create it with `ape accounts import ALIAS` or set HEDGER_PRIVATE_KEY") from None
        self.address = str(self._account.address)
        passphrase = os.environ.get(f"APE_ACCOUNTS_{alias}_PASSPHRASE")
        if passphrase and hasattr(self._account, "set_autosign"):
            # unattended (cron, keeper): sign without ape's confirmation prompt
            try:
                self._account.set_autosign(True, passphrase=passphrase)
            except Exception:
                raise ConfigError(f"APE_ACCOUNTS_{alias}_PASSPHRASE", "does not unlock the ape account",
                                  "set the account's passphrase") from None

    def sign_transaction(self, tx: dict[str, Any]) -> bytes:
        from ape import networks
        ecosystem = networks.ethereum
        fields = {"chain_id": tx["chainId"], "nonce": tx["nonce"], "gas_limit": tx["gas"],
                  "max_fee": tx["maxFeePerGas"], "max_priority_fee": tx["maxPriorityFeePerGas"],
                  "receiver": tx.get("to"), "value": tx.get("value", 0), "data": tx.get("data", b""),
                  "type": 2}
        txn = ecosystem.create_transaction(**fields)
        signed = self._account.sign_transaction(txn)
        if signed is None or signed.signature is None:
            raise ExecutionError("ape account refused to sign")
        return bytes(signed.serialize_transaction())

    def __repr__(self) -> str:
        return f"ApeAccountSigner({self.address})"


ERROR_SELECTOR = bytes.fromhex("08c379a0")   # Error(string)
PANIC_SELECTOR = bytes.fromhex("4e487b71")   # Panic(uint256)
PANIC_CODES = {0x01: "assert failed", 0x11: "arithmetic overflow", 0x12: "division by zero",
               0x21: "bad enum value", 0x31: "pop on empty array", 0x32: "array index out of bounds",
               0x41: "out of memory", 0x51: "call to an uninitialised function"}


def _custom_errors() -> dict[bytes, tuple[str, list[str]]]:
    """Custom errors declared in any ABI under abis/, by selector."""
    from hedger.chain.abi import ABI_DIR
    import json
    out: dict[bytes, tuple[str, list[str]]] = {}
    for path in ABI_DIR.glob("*.json"):
        for e in json.loads(path.read_text()):
            if e.get("type") == "error":
                types = [i["type"] for i in e.get("inputs", [])]
                sig = f"{e['name']}({','.join(types)})"
                out[bytes(Web3.keccak(text=sig)[:4])] = (e["name"], types)
    return out


def decode_revert_data(data: bytes | str | None) -> str:
    """A readable reason from revert data: Error(string), Panic(uint256), a custom error known
    from the ABIs, or the raw selector."""
    from eth_abi import decode
    if isinstance(data, str):
        data = bytes.fromhex(data[2:] if data.startswith("0x") else data)
    if not data:
        return "reverted without a reason"
    sel, body = data[:4], data[4:]
    try:
        if sel == ERROR_SELECTOR:
            return decode(["string"], body)[0]
        if sel == PANIC_SELECTOR:
            code = decode(["uint256"], body)[0]
            return f"panic 0x{code:02x}: {PANIC_CODES.get(code, 'unknown panic')}"
        known = _custom_errors().get(sel)
        if known:
            name, types = known
            args = decode(types, body) if types else ()
            return f"{name}({', '.join(repr(a) for a in args)})"
    except Exception:
        pass
    return f"custom error 0x{sel.hex()}" + (f" with {len(body)} bytes of data" if body else "")


def _revert_reason(err: Exception) -> str:
    data = getattr(err, "data", None)
    if isinstance(err, ContractCustomError) and isinstance(data, (str, bytes)):
        return decode_revert_data(data)
    if isinstance(err, ContractPanicError):
        return f"panic: {err.message}"
    msg = getattr(err, "message", None) or str(err)
    return msg.replace("execution reverted: ", "").replace("execution reverted", "reverted").strip() or "reverted"


GWEI = 10**9


def _hex(v: Any) -> str | None:
    """A hash from a receipt (HexBytes, bytes or str) as 0x-hex, None when absent."""
    if v is None:
        return None
    return v if isinstance(v, str) else Web3.to_hex(v)

_FAULT_COUNTS: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Crash-test hook: with HEDGER_FAULT_KILL_AT=NAME[:N] the process kills itself (SIGKILL, as
    `kill -9` would) the N-th time (default 1st) it reaches point NAME. Points: after_sign
    (journaled, not broadcast), after_broadcast (sent, no receipt yet), after_receipt (mined,
    not yet recorded). Unset in production; the reliability tests set it."""
    spec = os.environ.get("HEDGER_FAULT_KILL_AT")
    if not spec:
        return
    target, _, nth = spec.partition(":")
    if target != name:
        return
    _FAULT_COUNTS[name] = _FAULT_COUNTS.get(name, 0) + 1
    if _FAULT_COUNTS[name] == int(nth or 1):
        import signal
        os.kill(os.getpid(), signal.SIGKILL)


def bump_fee(fee: int) -> int:
    """A replacement's fee: at least 12.5% more (rounded up) and at least 1 gwei more.
    geth requires +10% on both the max fee and the tip; 12.5% leaves room for rounding."""
    return max(-(-fee * 9 // 8), fee + GWEI)


@dataclass(frozen=True)
class GasPolicy:
    """Fee limits and the patience of one step. Fees in wei."""

    max_fee: int | None = None            # ceiling for risk-increasing steps (None: none)
    emergency_max_fee: int | None = None  # ceiling for risk-reducing steps (top-ups, hedge reductions)
    priority_fee: int | None = None       # fixed tip; None: the node's suggestion, capped at max_tip
    max_tip: int = 2 * GWEI
    replace_after: float = 30.0           # seconds pending before a fee-bumped replacement
    max_replacements: int = 3
    receipt_timeout: float = 180.0        # total wait for one step, replacements included
    poll: float = 0.1

    def ceiling(self, risk_reducing: bool) -> int | None:
        if risk_reducing:
            return self.emergency_max_fee if self.emergency_max_fee is not None else self.max_fee
        return self.max_fee


class NonceManager:
    """The next nonce: the node's pending count, or one past the last nonce this process used,
    whichever is higher (a load-balanced RPC may not show our last transaction yet).
    Transactions sent from the same account by anyone else raise the node's count, so they
    are never collided with. If the node no longer knows our last transaction (a restarted
    or reverted chain, an evicted transaction), the node's count wins: no nonce gap."""

    def __init__(self, w3: Web3, address: str) -> None:
        self.w3 = w3
        self.address = address
        self._next: int | None = None
        self._last_hash: str | None = None

    def next(self) -> int:
        node = int(self.w3.eth.get_transaction_count(self.address, "pending"))
        if self._next is None or self._next <= node:
            return node
        try:
            known = self._last_hash is not None and self.w3.eth.get_transaction(self._last_hash) is not None
        except TransactionNotFound:
            known = False
        if not known:
            self.reset()
            return node
        return self._next

    def used(self, nonce: int, tx_hash: str | None = None) -> None:
        self._next = max(self._next or 0, nonce + 1)
        self._last_hash = tx_hash

    def reset(self) -> None:
        self._next = None
        self._last_hash = None


class TxSender:
    """Fees, nonce, simulation, signing, sending, waiting and replacing, one step at a time."""

    def __init__(self, w3: Web3, signer: Signer, *, receipt_timeout: float | None = None,
                 gas: GasPolicy | None = None, gas_margin_bps: int = 2500) -> None:
        self.w3 = w3
        self.signer = signer
        self.gas = gas or GasPolicy()
        if receipt_timeout is not None:
            self.gas = replace(self.gas, receipt_timeout=receipt_timeout)
        self.gas_margin_bps = gas_margin_bps
        self.nonces = NonceManager(w3, signer.address)
        self._chain_id: int | None = None

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = self.w3.eth.chain_id
        return self._chain_id

    def base_fee(self) -> int:
        """The base fee the next block will charge (the pending block's), else the latest block's."""
        for tag in ("pending", "latest"):
            try:
                block = self.w3.eth.get_block(tag)
            except Exception:
                continue
            if block and block.get("baseFeePerGas") is not None:
                return int(block["baseFeePerGas"])
        return 0

    def fees(self, risk_reducing: bool = False) -> tuple[int, int]:
        """(max fee, tip): twice the base fee plus the tip, held under the step's ceiling.
        Raises GasTooHigh when even the base fee plus the tip is above the ceiling."""
        base = self.base_fee()
        g = self.gas
        tip = g.priority_fee if g.priority_fee is not None else min(int(self.w3.eth.max_priority_fee), g.max_tip)
        max_fee = 2 * base + tip
        ceiling = g.ceiling(risk_reducing)
        if ceiling is not None:
            if base + tip > ceiling:
                kind = "emergency ceiling" if risk_reducing else "ceiling"
                var = "HEDGER_EMERGENCY_MAX_FEE_GWEI" if risk_reducing else "HEDGER_MAX_FEE_GWEI"
                raise GasTooHigh(f"base fee {base / GWEI:.2f} gwei + tip {tip / GWEI:.2f} gwei is above the "
                                 f"{kind} of {ceiling / GWEI:.2f} gwei ({var})", risk_reducing=risk_reducing)
            max_fee = min(max_fee, ceiling)
        return max_fee, tip

    def simulate(self, to: str | None, data: str, value: int = 0) -> int:
        """eth_estimateGas at the pending block; raises SimulationFailed with the revert reason."""
        tx: dict[str, Any] = {"from": self.signer.address, "data": data, "value": value}
        if to:
            tx["to"] = to
        try:
            # at "pending": the next block's time, so time-dependent storage writes
            # (funding recomputation) are priced as they will be when mined
            gas = int(self.w3.eth.estimate_gas(tx, "pending"))
        except (ContractLogicError, ContractCustomError, ContractPanicError) as err:
            raise SimulationFailed(f"simulation reverted: {_revert_reason(err)}",
                                   revert_reason=_revert_reason(err)) from err
        except Web3RPCError as err:
            raise SimulationFailed(f"simulation failed: {_revert_reason(err)}",
                                   revert_reason=_revert_reason(err)) from err
        # margin: the estimate runs at the pending block's timestamp, which can equal the last
        # funding recompute's, so funding slots are rewritten unchanged (cheap); mined a second
        # later they change, from zero on a fresh market (about 22k gas each, two or three of
        # them). Unused gas is not charged, so the cushion is generous.
        return gas + gas * self.gas_margin_bps // 10_000 + 70_000

    def _sign(self, tx: dict[str, Any]) -> tuple[bytes, str]:
        raw = self.signer.sign_transaction(tx)
        return raw, Web3.to_hex(Web3.keccak(raw))

    def _broadcast(self, raw: bytes) -> str | None:
        """Send; returns None when accepted (or already known), else the node's complaint."""
        try:
            self.w3.eth.send_raw_transaction(raw)
            return None
        except Web3RPCError as err:
            msg = _revert_reason(err)
            if any(k in msg.lower() for k in ("already known", "known transaction", "already imported")):
                return None
            return msg
        except (ConnectionError, OSError, ValueError) as err:
            # may or may not have reached the node: the hash is journaled and watched
            log.warning("broadcast failed (%s); watching the hash anyway", type(err).__name__)
            return None

    def _receipt(self, tx_hash: str) -> dict[str, Any] | None:
        try:
            r = self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None
        except (ConnectionError, OSError, ValueError, Web3RPCError) as err:
            log.warning("receipt poll failed (%s); retrying", type(err).__name__)
            return None
        return dict(r) if r else None

    def _known(self, tx_hash: str) -> bool:
        try:
            return self.w3.eth.get_transaction(tx_hash) is not None
        except TransactionNotFound:
            return False
        except Exception:
            return True   # cannot tell: assume still there

    def send(self, to: str | None, data: str, value: int = 0, *, gas: int | None = None,
             risk_reducing: bool = False,
             on_signed: Callable[[str, int, bytes, dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Simulate (unless gas is given), sign, send, wait and replace when stuck; returns the
        receipt. Every signed transaction goes to ``on_signed`` (hash, nonce, raw, fields) before
        it is broadcast. Raises on revert, on a node's refusal, and when nothing lands in time."""
        if gas is None:
            gas = self.simulate(to, data, value)
        max_fee, tip = self.fees(risk_reducing)
        nonce = self.nonces.next()
        tx: dict[str, Any] = {"chainId": self.chain_id, "nonce": nonce, "gas": gas, "maxFeePerGas": max_fee,
                              "maxPriorityFeePerGas": tip, "value": value, "data": data, "type": 2}
        if to:
            tx["to"] = Web3.to_checksum_address(to)
        raw, tx_hash = self._sign(tx)
        if on_signed:
            on_signed(tx_hash, nonce, raw, tx)
        fault_point("after_sign")
        complaint = self._broadcast(raw)
        fault_point("after_broadcast")
        if complaint and "nonce too low" in complaint.lower():
            # The nonce was taken between our read and our send: perhaps by a transaction of ours
            # that another backend of the RPC knew of (the same trade). Never sign this call again
            # at the next nonce: the cycle ends, and the next one re-reads the chain and reconciles.
            self.nonces.reset()
            raise ExecutionError(f"node rejected the transaction: {complaint} (nonce {nonce} was used by "
                                 "another transaction); not re-signed: the next cycle re-reads the chain",
                                 tx_hash=tx_hash)
        if complaint:
            raise ExecutionError(f"node rejected the transaction: {complaint}", tx_hash=tx_hash)
        self.nonces.used(nonce, tx_hash)
        hashes = [tx_hash]
        receipt = self.watch(tx, raw, hashes, risk_reducing, on_signed)
        fault_point("after_receipt")
        receipt["nonce"] = nonce
        receipt["hashes"] = list(hashes)
        if receipt.get("status") != 1:
            reason = self._replay_reason(tx, receipt)
            if receipt.get("gasUsed", 0) >= tx["gas"]:
                reason = f"out of gas (limit {tx['gas']}); {reason}"
            raise TransactionReverted(f"transaction reverted: {reason}", tx_hash=Web3.to_hex(receipt["transactionHash"]),
                                      revert_reason=reason)
        return receipt

    def broadcast(self, raw: bytes) -> str | None:
        """Send already signed bytes again (a journaled transaction in doubt); None when the node
        took them (or knew them), else its complaint."""
        return self._broadcast(raw)

    def cancel_tx(self, nonce: int, prior: list[dict[str, Any]]) -> tuple[dict[str, Any], bytes, str]:
        """Sign a zero-value transfer to ourselves at ``nonce`` that replaces every transaction in
        ``prior`` (their fields) under geth's rule: both the max fee and the tip at least
        :func:`bump_fee` of the highest before, and never below what the next block asks.
        Not broadcast. Returns (fields, raw, hash)."""
        max_fee, tip = self.fees(risk_reducing=True)
        for f in prior:
            tip = max(tip, bump_fee(int(f.get("maxPriorityFeePerGas", 0))))
            max_fee = max(max_fee, bump_fee(int(f.get("maxFeePerGas", 0))))
        max_fee = max(max_fee, tip)
        ceiling = self.gas.ceiling(True)
        if ceiling is not None and max_fee > ceiling:
            raise GasTooHigh(f"cancelling nonce {nonce} needs a max fee of {max_fee / GWEI:.2f} gwei, above the "
                             f"emergency ceiling of {ceiling / GWEI:.2f} gwei (HEDGER_EMERGENCY_MAX_FEE_GWEI)", risk_reducing=True)
        tx: dict[str, Any] = {"chainId": self.chain_id, "nonce": nonce, "gas": 21_000, "maxFeePerGas": max_fee,
                              "maxPriorityFeePerGas": tip, "value": 0, "data": "0x", "type": 2,
                              "to": Web3.to_checksum_address(self.signer.address)}
        raw, tx_hash = self._sign(tx)
        return tx, raw, tx_hash

    def watch(self, tx: dict[str, Any], raw: bytes, hashes: list[str], risk_reducing: bool,
              on_signed: Callable[[str, int, bytes, dict[str, Any]], None] | None) -> dict[str, Any]:
        """Watch every hash sent at this nonce until one is mined; replace with bumped fees when
        pending too long; rebroadcast when the node forgot it (dropped)."""
        g = self.gas
        start = time.monotonic()
        next_action = start + g.replace_after
        replacements = 0
        cur_tx, cur_raw = dict(tx), raw
        delay = 0.01   # a local chain mines at once: poll fast first, then back off to g.poll
        while True:
            for h in hashes:
                r = self._receipt(h)
                if r is not None:
                    return r
            now = time.monotonic()
            if now - start > g.receipt_timeout:
                raise StuckTransaction(
                    f"nonce {tx['nonce']} still pending after {g.receipt_timeout:.0f}s and {replacements} "
                    f"replacement(s); hashes {', '.join(hashes)}", tx_hash=hashes[-1])
            if now >= next_action:
                next_action = now + g.replace_after
                try:
                    mined_nonce = int(self.w3.eth.get_transaction_count(self.signer.address, "latest"))
                except Exception:
                    continue
                if mined_nonce > tx["nonce"]:
                    # the nonce is used: one of ours (receipt lagging) or someone else's
                    if any(self._receipt(h) for h in hashes):
                        continue
                    raise ExecutionError(f"nonce {tx['nonce']} was used by a transaction that is not ours; "
                                         "this step did not land", tx_hash=hashes[-1])
                if not any(self._known(h) for h in hashes):
                    log.warning("transaction %s was dropped by the node; broadcasting it again", hashes[-1])
                    self._broadcast(cur_raw)
                    continue
                if replacements >= g.max_replacements:
                    continue
                new_tip, new_max = bump_fee(cur_tx["maxPriorityFeePerGas"]), bump_fee(cur_tx["maxFeePerGas"])
                try:
                    base = self.base_fee()
                except Exception:
                    base = 0
                new_max = max(new_max, 2 * base + new_tip)
                ceiling = g.ceiling(risk_reducing)
                if ceiling is not None and new_max > ceiling:
                    log.warning("nonce %s pending; a replacement would exceed the %s ceiling: waiting",
                                tx["nonce"], "emergency" if risk_reducing else "normal")
                    continue
                cur_tx = {**cur_tx, "maxPriorityFeePerGas": new_tip, "maxFeePerGas": new_max}
                cur_raw, h = self._sign(cur_tx)
                if on_signed:
                    on_signed(h, cur_tx["nonce"], cur_raw, cur_tx)
                complaint = self._broadcast(cur_raw)
                if complaint:
                    log.warning("replacement of nonce %s refused: %s", tx["nonce"], complaint)
                    continue
                replacements += 1
                hashes.append(h)
                self.nonces.used(cur_tx["nonce"], h)
                log.info("nonce %s replaced (%d): max fee %.2f gwei, tip %.2f gwei, %s", tx["nonce"],
                         replacements, new_max / GWEI, new_tip / GWEI, h)
            time.sleep(delay)
            delay = min(delay * 2, g.poll)

    def _replay_reason(self, tx: dict[str, Any], receipt: dict[str, Any]) -> str:
        call = {"from": self.signer.address, "to": tx.get("to"), "data": tx["data"], "value": tx.get("value", 0)}
        try:
            self.w3.eth.call(call, receipt["blockNumber"] - 1)
        except Exception as err:  # the point is the reason
            return _revert_reason(err)
        return "reverted (reason unavailable)"


class Executor:
    """Sends a plan's calls in order, stopping at the first failure."""

    def __init__(self, sender: TxSender, *, max_action_usd: int | None = None,
                 fee_of: Callable[[dict[str, Any]], int | None] | None = None) -> None:
        self.sender = sender
        self.max_action_usd = max_action_usd
        self.fee_of = fee_of

    @staticmethod
    def order(calls: list[Call]) -> list[Call]:
        """Risk-reducing calls first (stable within each group)."""
        return sorted(calls, key=lambda c: 0 if c.risk_reducing else 1)

    def check_caps(self, calls: list[Call]) -> None:
        """Refuse the whole plan, before anything is sent, when one action is too large."""
        check_caps(calls, self.max_action_usd)

    def execute(self, calls: list[Call], *,
                on_signed: Callable[[Call, str, int, bytes, dict[str, Any]], None] | None = None,
                on_mined: Callable[[SentTx], None] | None = None, sent: list[SentTx] | None = None) -> list[SentTx]:
        """Send ``calls``; each mined transaction is appended to ``sent`` (also when a later step fails).

        A risk-increasing step whose fees would exceed the ceiling is held (``GasHeld``), after the
        risk-reducing steps before it were sent at up to the emergency ceiling."""
        sent = [] if sent is None else sent
        self.check_caps(calls)
        for call in self.order(calls):
            step = f"{call.contract}.{call.function}"
            try:
                receipt = self.sender.send(
                    call.to, call.data, call.value, risk_reducing=call.risk_reducing,
                    on_signed=(lambda h, n, raw, f, c=call: on_signed(c, h, n, raw, f)) if on_signed else None)
            except GasTooHigh as err:
                if not call.risk_reducing:
                    raise GasHeld(f"{step} held: {err.message} (risk-increasing steps wait for lower gas)",
                                  step=step, sent=len(sent)) from err
                raise GasTooHigh(f"{step}: {err.message}: a risk-reducing step could not be sent"
                                 + (f" after {len(sent)} step(s)" if sent else "; nothing was sent"),
                                 step=step, risk_reducing=True, sent=len(sent)) from err
            except ExecutionError as err:
                err.step = step
                if not sent:
                    if isinstance(err, SimulationFailed):
                        raise SimulationFailed(f"{step}: {err.message}; nothing was sent",
                                               step=step, revert_reason=err.revert_reason) from err
                    raise type(err)(f"{step}: {err.message}", step=step, tx_hash=err.tx_hash,
                                    revert_reason=err.revert_reason) from err
                raise PartialExecution(
                    f"partial, safe: {len(sent)} step(s) mined, then {step} failed ({err.message}); "
                    "the remaining steps were not sent", step=step, tx_hash=err.tx_hash,
                    revert_reason=err.revert_reason, sent=len(sent)) from err
            except (ConnectionError, OSError) as err:
                if not sent:
                    raise RpcError(f"{step}: RPC failed before anything was mined: {type(err).__name__}") from err
                raise PartialExecution(f"partial, safe: RPC failed at {step} after {len(sent)} step(s)",
                                       step=step, sent=len(sent)) from err
            tx = SentTx(call=call, tx_hash=Web3.to_hex(receipt["transactionHash"]), nonce=receipt["nonce"],
                        status=receipt["status"], gas_used=receipt["gasUsed"], block_number=receipt["blockNumber"],
                        effective_gas_price=receipt.get("effectiveGasPrice"),
                        fee=self.fee_of(receipt) if self.fee_of else None,
                        block_hash=_hex(receipt.get("blockHash")))
            sent.append(tx)
            log.info("mined %s %s gas=%s", step, tx.tx_hash, tx.gas_used)
            if on_mined:
                on_mined(tx)
        return sent


def check_caps(calls: list[Call], max_action_usd: int | None) -> None:
    """Refuse a whole plan (ActionTooLarge) when one of its actions moves more than ``max_action_usd``
    (E18 USD; None: no cap): before anything is sent, and for a dry run's report alike."""
    if max_action_usd is None:
        return
    for c in calls:
        if c.notional_usd > max_action_usd:
            raise ActionTooLarge(
                f"{c.contract}.{c.function} moves ${c.notional_usd / 10**18:,.2f}, above the cap of "
                f"${max_action_usd / 10**18:,.2f} per action (HEDGER_MAX_ACTION_USD); nothing was sent",
                step=f"{c.contract}.{c.function}")
