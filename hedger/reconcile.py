"""Reconcile the journal with the chain before a cycle.

An earlier run may have stopped anywhere: after signing (the hash is journaled
before broadcast), after broadcast but before the receipt, or after the
receipt but before recording it. The chain is the truth; this module finds
out what happened to every transaction an earlier run signed and records it,
so that the cycle that follows never hedges twice:

- mined (or reverted): recorded, and the other hashes at its nonce marked replaced;
- still pending: waited for, and replaced with higher fees when stuck, through
  the executor's own logic (a cycle does not start while our transaction is in flight);
- unknown to the node and its nonce unused: dropped (never broadcast, or
  evicted); not resent: the cycle re-plans from the chain's state;
- unknown and its nonce used by another transaction: superseded.

Cycles left open by a stopped process are closed as "interrupted".
"""

from __future__ import annotations

import json
from itertools import groupby
from typing import TYPE_CHECKING, Any

from web3 import Web3
from web3.exceptions import TransactionNotFound

from hedger.errors import StuckTransaction

if TYPE_CHECKING:
    from hedger.journal import Journal
    from hedger.keeper import Keeper
    from hedger.types import Snapshot


def _receipt(w3: Web3, h: str) -> dict[str, Any] | None:
    try:
        r = w3.eth.get_transaction_receipt(h)
    except TransactionNotFound:
        return None
    return dict(r) if r else None


def _known(w3: Web3, h: str) -> bool:
    try:
        return w3.eth.get_transaction(h) is not None
    except TransactionNotFound:
        return False


def _fields(row: Any) -> dict[str, Any]:
    f = json.loads(row["fields"] or "{}")
    for k in ("chainId", "nonce", "gas", "maxFeePerGas", "maxPriorityFeePerGas", "value", "type"):
        if k in f:
            f[k] = int(f[k])
    return f


def reconcile(k: "Keeper") -> list[str]:
    j = k.journal
    assert j is not None
    if not j.has_loose_ends(k.account):
        return []
    head = k.reader.head()
    w3 = k.w3
    notes: list[str] = []
    rows = j.unresolved_txs(head.chain_id, head.genesis_hash, k.account)
    for nonce, group_it in groupby(rows, key=lambda r: int(r["nonce"])):
        group = list(group_it)
        hashes = [r["tx_hash"] for r in group]
        mined = None
        for h in hashes:
            r = _receipt(w3, h)
            if r is not None:
                j.record_receipt(h, int(r["status"]), int(r["gasUsed"]), r.get("effectiveGasPrice"),
                                 int(r["blockNumber"]))
                mined = (h, r)
                break
        if mined:
            notes.append(f"tx {mined[0]} (nonce {nonce}) from an earlier run was "
                         f"{'mined' if mined[1]['status'] == 1 else 'mined and reverted'}")
            continue
        pending = [h for h in hashes if _known(w3, h)]
        if pending:
            if k.signer is None:
                raise StuckTransaction(f"tx {pending[-1]} (nonce {nonce}) from an earlier run is still pending "
                                       "and no signer is configured to replace it: not acting until it lands",
                                       tx_hash=pending[-1])
            last = group[-1]
            tx = _fields(last)
            tx.pop("riskReducing", None)
            risk_reducing = bool(json.loads(last["fields"] or "{}").get("riskReducing", False))
            raw = bytes.fromhex(last["raw"][2:]) if last["raw"] else b""
            cycle_id = int(last["cycle_id"])
            receipt = k.sender().watch(
                tx, raw, list(hashes), risk_reducing,
                lambda h, n, r, f: j.record_signed_parts(cycle_id, last["contract"], last["function"], last["args"],
                                                         h, n, r, {**f, "riskReducing": risk_reducing}))
            j.record_receipt(Web3.to_hex(receipt["transactionHash"]), int(receipt["status"]), int(receipt["gasUsed"]),
                             receipt.get("effectiveGasPrice"), int(receipt["blockNumber"]))
            notes.append(f"tx {Web3.to_hex(receipt['transactionHash'])} (nonce {nonce}) from an earlier run was "
                         "pending; waited for it to be mined")
            continue
        used = int(w3.eth.get_transaction_count(k.account, "latest"))
        state = "superseded" if used > nonce else "dropped"
        for h in hashes:
            j.mark_tx(h, state)
        notes.append(f"tx {hashes[-1]} (nonce {nonce}) from an earlier run never landed ({state}); "
                     "re-planning from the chain's state")
    for c in j.unfinished_cycles(head.chain_id, head.genesis_hash, k.account):
        j.close_cycle(int(c["id"]), "interrupted", 7, "the process stopped during this cycle; reconciled by the next run")
        notes.append(f"cycle {c['id']} was interrupted; closed")
    return notes


def reconcile_state(j: "Journal", s: "Snapshot") -> list[str]:
    """Compare what the journal expects with what the chain reports, at the start of a cycle
    (before this cycle is journaled): two-step orders, the position, the account's nonce.
    The chain is the truth; differences become notes (journaled and printed)."""
    key = (s.chain.chain_id, s.chain.genesis_hash, s.account.address, s.market.address)
    notes: list[str] = []
    on_chain = s.account.pending_order
    filled = 0
    matched = False
    for o in j.pending_orders(*key):
        delta = int(o["size_delta"])
        if on_chain is not None and on_chain.size_delta == delta and not matched:
            matched = True
            continue
        moved = s.account.size - int(o["size_before"])
        if moved == delta or (delta != 0 and moved * delta > 0 and abs(moved) >= abs(delta)):
            j.resolve_order(int(o["id"]), "filled", "the market reports the position moved by the order")
            filled += delta
            notes.append(f"two-step order {o['tx_hash']} of {delta / 1e18:+.4f} was filled")
        else:
            j.resolve_order(int(o["id"]), "gone", "no longer pending and the position did not move by it")
            notes.append(f"two-step order {o['tx_hash']} of {delta / 1e18:+.4f} is gone unfilled "
                         "(cancelled or expired)")
    if on_chain is not None and not matched:
        notes.append(f"a pending order of {on_chain.size_delta / 1e18:+.4f} on the market was not submitted by "
                     "this hedger's journal")
    expected = j.expected_position(*key)
    if expected is not None and s.account.size != expected + filled:
        notes.append(f"position {s.account.size / 1e18:+.6f} differs from the journal's "
                     f"{(expected + filled) / 1e18:+.6f}: changed outside the hedger (a manual trade or a "
                     "liquidation)")
    mined = j.max_nonce(s.chain.chain_id, s.chain.genesis_hash, s.account.address)
    if mined is not None and s.chain.account_nonce is not None and s.chain.account_nonce > mined + 1:
        notes.append(f"{s.chain.account_nonce - mined - 1} transaction(s) were sent from this account outside "
                     "the hedger since its last one")
    return notes
