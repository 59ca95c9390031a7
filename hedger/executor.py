"""The only code that signs and sends.

For each call of a plan, in order (risk-reducing steps first): simulate it
against the latest block (after the previous step was mined), sign, send,
wait for the receipt, and turn reverts into the project's errors. A failure
before anything was sent raises :class:`SimulationFailed` ("sent nothing");
a failure after some steps were mined raises :class:`PartialExecution`
("partial, safe": the mined steps were the risk-reducing ones).
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from dataclasses import replace
from typing import Any, Callable

from eth_account import Account
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError, TimeExhausted, Web3RPCError

from hedger.errors import (ConfigError, ExecutionError, PartialExecution, RpcError, SimulationFailed,
                           TransactionReverted)
from hedger.types import Call, SentTx

log = logging.getLogger("hedger.executor")


class Secret:
    """A string that never shows itself in repr, str or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


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


def _revert_reason(err: Exception) -> str:
    if isinstance(err, ContractCustomError):
        return f"custom error {err.data!r}"
    if isinstance(err, ContractPanicError):
        return f"panic: {err.message}"
    msg = getattr(err, "message", None) or str(err)
    return msg.replace("execution reverted: ", "").replace("execution reverted", "reverted").strip() or "reverted"


class TxSender:
    """Fees, nonce, simulation, signing, sending and waiting for one transaction at a time."""

    def __init__(self, w3: Web3, signer: Signer, *, receipt_timeout: float = 120.0,
                 priority_fee: int | None = None, gas_margin_bps: int = 2500) -> None:
        self.w3 = w3
        self.signer = signer
        self.receipt_timeout = receipt_timeout
        self.priority_fee = priority_fee
        self.gas_margin_bps = gas_margin_bps
        self._chain_id: int | None = None

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = self.w3.eth.chain_id
        return self._chain_id

    def fees(self) -> tuple[int, int]:
        """(max fee, tip) for EIP-1559: twice the latest base fee plus the tip."""
        block = self.w3.eth.get_block("latest")
        base = int(block.get("baseFeePerGas", 0) or 0)
        tip = self.priority_fee if self.priority_fee is not None else min(int(self.w3.eth.max_priority_fee), 2 * 10**9)
        return 2 * base + tip, tip

    def simulate(self, to: str | None, data: str, value: int = 0) -> int:
        """eth_estimateGas at the latest block; raises SimulationFailed with the revert reason."""
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
        # margin: a storage slot written with an unchanged value in the estimate can cost
        # ~20k more when the value changes by the time the transaction is mined
        return gas + gas * self.gas_margin_bps // 10_000 + 25_000

    def send(self, to: str | None, data: str, value: int = 0, *, gas: int | None = None,
             on_signed: Callable[[str, int, bytes], None] | None = None) -> dict[str, Any]:
        """Simulate (unless gas is given), sign, send and wait; returns the receipt. Raises on revert."""
        if gas is None:
            gas = self.simulate(to, data, value)
        max_fee, tip = self.fees()
        nonce = self.w3.eth.get_transaction_count(self.signer.address, "pending")
        tx: dict[str, Any] = {"chainId": self.chain_id, "nonce": nonce, "gas": gas, "maxFeePerGas": max_fee,
                              "maxPriorityFeePerGas": tip, "value": value, "data": data, "type": 2}
        if to:
            tx["to"] = Web3.to_checksum_address(to)
        raw = self.signer.sign_transaction(tx)
        tx_hash = Web3.to_hex(Web3.keccak(raw))
        if on_signed:
            on_signed(tx_hash, nonce, raw)
        try:
            self.w3.eth.send_raw_transaction(raw)
        except Web3RPCError as err:
            raise ExecutionError(f"node rejected the transaction: {_revert_reason(err)}", tx_hash=tx_hash) from err
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.receipt_timeout, poll_latency=0.05)
        except TimeExhausted as err:
            raise ExecutionError(f"no receipt within {self.receipt_timeout:.0f}s", tx_hash=tx_hash) from err
        receipt = dict(receipt)
        receipt["nonce"] = nonce
        if receipt.get("status") != 1:
            reason = self._replay_reason(tx, receipt)
            if receipt.get("gasUsed", 0) >= gas:
                reason = f"out of gas (limit {gas}); {reason}"
            raise TransactionReverted(f"transaction reverted: {reason}", tx_hash=tx_hash, revert_reason=reason)
        return receipt

    def _replay_reason(self, tx: dict[str, Any], receipt: dict[str, Any]) -> str:
        call = {"from": self.signer.address, "to": tx.get("to"), "data": tx["data"], "value": tx.get("value", 0)}
        try:
            self.w3.eth.call(call, receipt["blockNumber"] - 1)
        except Exception as err:  # the point is the reason
            return _revert_reason(err)
        return "reverted (reason unavailable)"


class Executor:
    """Sends a plan's calls in order, stopping at the first failure."""

    def __init__(self, sender: TxSender) -> None:
        self.sender = sender

    @staticmethod
    def order(calls: list[Call]) -> list[Call]:
        """Risk-reducing calls first (stable within each group)."""
        return sorted(calls, key=lambda c: 0 if c.risk_reducing else 1)

    def execute(self, calls: list[Call], *, on_signed: Callable[[Call, str, int], None] | None = None,
                on_mined: Callable[[SentTx], None] | None = None, sent: list[SentTx] | None = None) -> list[SentTx]:
        """Send ``calls``; each mined transaction is appended to ``sent`` (also when a later step fails)."""
        sent = [] if sent is None else sent
        for call in self.order(calls):
            step = f"{call.contract}.{call.function}"
            try:
                receipt = self.sender.send(
                    call.to, call.data, call.value,
                    on_signed=(lambda h, n, raw, c=call: on_signed(c, h, n)) if on_signed else None)
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
                        effective_gas_price=receipt.get("effectiveGasPrice"))
            sent.append(tx)
            log.info("mined %s %s gas=%s", step, tx.tx_hash, tx.gas_used)
            if on_mined:
                on_mined(tx)
        return sent
