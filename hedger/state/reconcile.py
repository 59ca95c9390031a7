"""Reconcile the journal with the chain before a cycle.

An earlier run may have stopped anywhere: after signing (the hash and the raw
bytes are journaled before broadcast), after broadcast but before the receipt,
or after the receipt but before recording it; and a block that held one of our
transactions may since have been reorganised away. The chain is the truth; this
module finds out what happened to every transaction an earlier run signed and
records it, so that the cycle that follows never hedges twice:

- receipts not yet ``HEDGER_CONFIRMATIONS`` deep: the block at the receipt's number
  must still have the journaled hash; if not, the receipt is looked up again: moved
  to another block (recorded anew), or gone (every transaction at that nonce goes
  back to "signed" and is settled as below);
- mined (or reverted): recorded, and the other hashes at its nonce marked replaced
  (or cancelled, when the one mined is our cancel);
- still pending: waited for, and replaced with higher fees when stuck, through
  the executor's own logic (a cycle does not start while our transaction is in flight);
- unknown to the node and its nonce unused: in doubt, since another backend of the
  RPC or a relay may still mine it. Its journaled raw bytes are broadcast again
  (counted in the journal) and waited for; after ``HEDGER_MAX_REBROADCASTS`` of
  them, the nonce is cancelled by a zero-value transfer to ourselves at higher fees.
  Nothing is planned until that nonce is mined, whichever transaction took it;
- unknown and its nonce used by another transaction: superseded (the cycle then
  reads a chain on which that nonce is settled).

Cycles left open by a stopped process are closed as "interrupted". Then every action an earlier
run left with some of its transactions (legs) mined and others not is settled by asking the
venue's adapter (``resume``), never by reading function names: re-plan (the venue's legs leave
nothing loose), finish it (send the remaining legs) or unwind it (send the legs that undo it).
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from itertools import groupby
from typing import TYPE_CHECKING, Any, Callable, Protocol

from web3 import Web3
from web3.exceptions import BlockNotFound, TransactionNotFound

from hedger.core.errors import StuckTransaction
from hedger.state.journal import CANCEL_CONTRACT, CANCEL_FUNCTION

if TYPE_CHECKING:
    from hedger.chain.executor import Signer, TxSender
    from hedger.chain.reader import ChainReader
    from hedger.core.types import ChainView, Fill, JournaledAction, Resume, Snapshot
    from hedger.state.journal import Journal


class ReconcileSettings(Protocol):
    max_rebroadcasts: int

    def confirmations_for_chain(self, chain_id: int) -> int: ...


class Reconciling(Protocol):
    """What reconciliation needs from the cycle that calls it (the keeper passes itself): the
    chain, the journal, the account, its signer and sender, and two settings. Reconciliation
    sits below the cycle and knows nothing else of it."""

    w3: Web3
    reader: "ChainReader"
    journal: "Journal | None"
    account: str
    signer: "Signer | None"
    settings: ReconcileSettings

    def sender(self) -> "TxSender": ...

    def resume_action(self, action: "JournaledAction") -> "Resume": ...

CANCEL_ACTION = {"action": "cancel_nonce", "leg": "main"}   # how the journal records a nonce's cancel

log = logging.getLogger("hedger.state.reconcile")


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


def _hex(v: Any) -> str | None:
    if v is None:
        return None
    return v if isinstance(v, str) else Web3.to_hex(v)


def _fields(row: Any) -> dict[str, Any]:
    f = json.loads(row["fields"] or "{}")
    for k in ("chainId", "nonce", "gas", "maxFeePerGas", "maxPriorityFeePerGas", "value", "type"):
        if k in f:
            f[k] = int(f[k])
    f.pop("riskReducing", None)
    f.setdefault("nonce", int(row["nonce"]))   # rows journaled before the fields were
    return f


def _risk_reducing(row: Any) -> bool:
    return bool(json.loads(row["fields"] or "{}").get("riskReducing", False))


def _raw(row: Any) -> bytes:
    return bytes.fromhex(row["raw"][2:]) if row["raw"] else b""


def _record(k: "Reconciling", head: "ChainView", h: str, r: dict[str, Any]) -> None:
    need = k.settings.confirmations_for_chain(head.chain_id)
    depth = head.block_number - int(r["blockNumber"])   # negative when mined after ``head`` was read
    k.journal.record_receipt(h, int(r["status"]), int(r["gasUsed"]), r.get("effectiveGasPrice"),  # type: ignore[union-attr]
                             int(r["blockNumber"]), _hex(r.get("blockHash")), confirmed=need == 0 or depth >= need)


def _canonical_hash(w3: Web3, number: int) -> str | None:
    try:
        block = w3.eth.get_block(number)
    except BlockNotFound:
        return None
    return _hex(block.get("hash")) if block else None


def recheck_receipts(k: "Reconciling", head: "ChainView") -> list[str]:
    """Receipts not yet deep enough: still in a canonical block? Confirm those deep enough,
    record those moved to another block, and reopen the nonces of those gone."""
    j = k.journal
    assert j is not None
    w3 = k.w3
    need = k.settings.confirmations_for_chain(head.chain_id)
    notes: list[str] = []
    canonical: dict[int, str | None] = {}   # one block read per block number
    for row in j.unconfirmed_receipts(head.chain_id, head.genesis_hash, k.account):
        h, number = row["tx_hash"], int(row["block_number"])
        if number > head.block_number:
            continue   # a node behind the one that gave the receipt: look again next cycle
        if number not in canonical:
            canonical[number] = _canonical_hash(w3, number)
        if canonical[number] == row["block_hash"]:
            if head.block_number - number >= need:
                j.mark_confirmed(h)
            continue
        r = _receipt(w3, h)
        if r is not None:
            _record(k, head, h, r)
            notes.append(f"tx {h} (nonce {row['nonce']}): its block {number} was reorganised away; it is now in "
                         f"block {int(r['blockNumber'])}" + ("" if int(r["status"]) == 1 else " (reverted)"))
            continue
        j.reopen_nonce(head.chain_id, head.genesis_hash, k.account, int(row["nonce"]))
        notes.append(f"tx {h} (nonce {row['nonce']}): its block {number} was reorganised away and the chain no "
                     "longer holds it; settled again below")
    return notes


def reconcile(k: "Reconciling") -> list[str]:
    j = k.journal
    assert j is not None
    if not j.has_loose_ends(k.account):
        return []
    head = k.reader.head()
    notes = recheck_receipts(k, head)
    rows = j.unresolved_txs(head.chain_id, head.genesis_hash, k.account)
    for nonce, group_it in groupby(rows, key=lambda r: int(r["nonce"])):
        notes.append(_settle_nonce(k, head, nonce, list(group_it)))
    for c in j.unfinished_cycles(head.chain_id, head.genesis_hash, k.account):
        j.close_cycle(int(c["id"]), "interrupted", 7, "the process stopped during this cycle; reconciled by the next run")
        notes.append(f"cycle {c['id']} was interrupted; closed")
    for a in j.unfinished_actions(head.chain_id, head.genesis_hash, k.account):
        notes.append(_settle_action(k, head, a))
    return notes


def _settle_action(k: "Reconciling", head: "ChainView", a: "JournaledAction") -> str:
    """Settle an action left part-done, as the venue's adapter says; the legs it sends are
    journaled under the action's own cycle. Raises (the cycle does not plan) when a leg fails:
    the action stays unfinished for the next run."""
    from hedger.chain.executor import Executor
    j = k.journal
    assert j is not None
    r = k.resume_action(a)
    what = f"{a.kind.value} of cycle {a.cycle_id} ({sum(lg.state == 'mined' for lg in a.legs)} of {a.legs_planned} legs mined)"
    if r.how == "replan" or not r.calls:
        j.settle_action(a.id, "replanned", r.note)
        return f"unfinished {what}: {r.note}"
    if k.signer is None:
        raise StuckTransaction(f"unfinished {what} must be {r.how}ed ({r.note}), and no signer is configured to "
                               "send its legs: not acting until it is settled")
    calls = [replace(c, action_index=a.seq) for c in r.calls]
    at_once = k.settings.confirmations_for_chain(head.chain_id) == 0
    Executor(k.sender()).execute(
        calls, on_signed=lambda c, h, n, raw, f: j.record_signed(a.cycle_id, c, h, n, raw, {**f, "riskReducing": c.risk_reducing}),
        on_mined=lambda tx: j.record_mined(tx, confirmed=at_once))
    state = "finished" if r.how == "finish" else "unwound"
    j.settle_action(a.id, state, r.note)
    return f"unfinished {what}: {state} ({r.note})"



def _settle_nonce(k: "Reconciling", head: "ChainView", nonce: int, group: list[Any]) -> str:
    """Find out which transaction (if any) took ``nonce``; returns the note. Raises (the cycle
    does not plan) while the nonce stays in doubt."""
    j = k.journal
    assert j is not None
    w3 = k.w3
    hashes = [r["tx_hash"] for r in group]
    last = group[-1]
    rebroadcast = False
    for _ in range(3):   # a second look after the node said "nonce too low"; a third never needed
        for h in hashes:
            r = _receipt(w3, h)
            if r is not None:
                _record(k, head, h, r)
                return _mined_note(group, h, r, nonce, rebroadcast)
        pending = [h for h in hashes if _known(w3, h)]
        if pending:
            return _wait(k, head, nonce, group, hashes, "was pending; waited for it to be mined")
        used = int(w3.eth.get_transaction_count(k.account, "latest"))
        if used > nonce:
            for h in hashes:
                j.mark_tx(h, "superseded")
            return (f"tx {hashes[-1]} (nonce {nonce}) from an earlier run never landed: another transaction took "
                    "its nonce (superseded); re-planning from the chain's state")
        if rebroadcast:   # the node took it, then forgot it again at once: still in doubt
            raise StuckTransaction(f"tx {hashes[-1]} (nonce {nonce}) from an earlier run is unknown to the node even "
                                   "after broadcasting it again: not planning until its nonce is settled",
                                   tx_hash=hashes[-1])
        if k.signer is None:
            raise StuckTransaction(f"tx {hashes[-1]} (nonce {nonce}) from an earlier run is unknown to the node and "
                                   "its nonce is unused; no signer is configured to broadcast it again or cancel it: "
                                   "not acting until it is settled", tx_hash=hashes[-1])
        count = sum(int(r["rebroadcasts"] or 0) for r in group)
        limit = k.settings.max_rebroadcasts
        if (count >= limit or not last["raw"]) and last["function"] != CANCEL_FUNCTION:
            # (a row journaled before raw bytes were kept cannot be sent again: cancel at once)
            note = _cancel(k, head, nonce, group, hashes, count)
            if note is not None:
                return note
            continue   # the nonce was taken meanwhile: look again at which transaction took it
        # in doubt: another backend or a relay may still mine it. Send the very bytes again
        # (the same nonce: this can never become a second trade) and wait for them.
        complaint = k.sender().broadcast(_raw(last))
        j.add_rebroadcast(last["tx_hash"])
        log.warning("tx %s (nonce %s) unknown to the node with its nonce unused: broadcast again (%d of %d)",
                    last["tx_hash"], nonce, count + 1, limit)
        rebroadcast = True
        if complaint and "nonce too low" in complaint.lower():
            continue   # the nonce was taken meanwhile: look again at which transaction took it
        if complaint:
            raise StuckTransaction(f"tx {last['tx_hash']} (nonce {nonce}) from an earlier run is in doubt and the node "
                                   f"refused it again ({complaint}): not planning until its nonce is settled",
                                   tx_hash=last["tx_hash"])
        return _wait(k, head, nonce, group, hashes,
                     f"was unknown to the node with its nonce unused; broadcast again from the journal "
                     f"({count + 1} of {limit}) and mined")
    raise StuckTransaction(f"nonce {nonce}: the node says it is used but shows neither a receipt of ours nor a "
                           "used count: not planning until the node answers consistently", tx_hash=hashes[-1])


def _mined_note(group: list[Any], h: str, r: dict[str, Any], nonce: int, rebroadcast: bool) -> str:
    by_hash = {row["tx_hash"]: row for row in group}
    what = "mined" if int(r["status"]) == 1 else "mined and reverted"
    if by_hash[h]["function"] == CANCEL_FUNCTION:
        return f"nonce {nonce} was cancelled by {h} ({what}); the transaction it replaced never landed"
    how = " (after broadcasting it again from the journal)" if rebroadcast else ""
    return f"tx {h} (nonce {nonce}) from an earlier run was {what}{how}"


def _wait(k: "Reconciling", head: "ChainView", nonce: int, group: list[Any], hashes: list[str], what: str) -> str:
    """Wait for one of ``hashes`` to be mined (replacing the last with higher fees when stuck);
    StuckTransaction when nothing lands in time (the next run settles it)."""
    j = k.journal
    assert j is not None
    if k.signer is None:
        raise StuckTransaction(f"tx {hashes[-1]} (nonce {nonce}) from an earlier run is still pending "
                               "and no signer is configured to replace it: not acting until it lands",
                               tx_hash=hashes[-1])
    last = group[-1]
    risk_reducing = _risk_reducing(last)
    cycle_id = int(last["cycle_id"])
    receipt = k.sender().watch(
        _fields(last), _raw(last), list(hashes), risk_reducing,
        lambda h, n, r, f: j.record_signed_parts(cycle_id, last["contract"], last["function"], last["args"],
                                                 h, n, r, {**f, "riskReducing": risk_reducing},
                                                 int(last["notional"] or 0), j.action_of(last)))
    h = Web3.to_hex(receipt["transactionHash"])
    _record(k, head, h, receipt)
    if j.tx_function(h) == CANCEL_FUNCTION:
        return f"nonce {nonce} was cancelled by {h}; the transaction it replaced never landed"
    if last["function"] == CANCEL_FUNCTION:
        return f"tx {h} (nonce {nonce}) took the nonce before its cancel did ({what})"
    return f"tx {h} (nonce {nonce}) from an earlier run {what}"


def _cancel(k: "Reconciling", head: "ChainView", nonce: int, group: list[Any], hashes: list[str],
            count: int) -> str | None:
    """Take ``nonce`` with a zero-value transfer to ourselves that outbids every transaction
    signed at it, then wait until one of them (the cancel or an original) is mined. None when
    the node says the nonce was taken meanwhile."""
    j = k.journal
    assert j is not None
    sender = k.sender()
    tx, raw, h = sender.cancel_tx(nonce, [_fields(r) for r in group])
    cycle_id = int(group[-1]["cycle_id"])
    j.record_signed_parts(cycle_id, CANCEL_CONTRACT, CANCEL_FUNCTION, [], h, nonce, raw,
                          {**tx, "riskReducing": True}, meta=CANCEL_ACTION)
    log.warning("tx %s (nonce %s) still unknown after %d re-broadcasts: cancelling the nonce with %s",
                hashes[-1], nonce, count, h)
    complaint = sender.broadcast(raw)
    if complaint and "nonce too low" in complaint.lower():
        j.mark_tx(h, "superseded")
        return None
    if complaint:
        raise StuckTransaction(f"cancelling nonce {nonce} (tx {h}) was refused by the node ({complaint}): not "
                               "planning until the nonce is settled", tx_hash=h)
    receipt = sender.watch(tx, raw, [*hashes, h], True,
                           lambda rh, n, r, f: j.record_signed_parts(cycle_id, CANCEL_CONTRACT, CANCEL_FUNCTION, [],
                                                                     rh, n, r, {**f, "riskReducing": True},
                                                                     meta=CANCEL_ACTION))
    mined = Web3.to_hex(receipt["transactionHash"])
    _record(k, head, mined, receipt)
    if j.tx_function(mined) != CANCEL_FUNCTION:
        return (f"tx {mined} (nonce {nonce}) from an earlier run was mined while its nonce was being cancelled "
                f"after {count} re-broadcast(s)")
    return (f"nonce {nonce} was cancelled by {mined} (a zero-value transfer to ourselves) after {count} "
            f"re-broadcast(s) of tx {hashes[-1]}; re-planning from the chain's state")


FillOf = Callable[[str, int, int], "Fill | None"]   # (order key, size delta, block created) -> the venue's fill


def reconcile_state(j: "Journal", s: "Snapshot", fill_of: FillOf | None = None,
                    found: dict[str, int] | None = None, drift: Callable[[int], int] | None = None) -> list[str]:
    """Compare what the journal expects with what the chain reports, at the start of a cycle
    (before this cycle is journaled): two-step orders, the position, the account's nonce.
    The chain is the truth; differences become notes (journaled and printed). ``fill_of`` asks
    the venue how an order found executed was filled (price and fees, from the transaction that
    executed it: a keeper's on a two-step venue), for the report. ``found`` (when given) receives
    ``reduced_by_venue``: how much smaller (E18, absolute) the position is than the journal expects
    (GMX v2's auto-deleveraging or a liquidation: no order of ours did it), 0 otherwise."""
    key = (s.chain.chain_id, s.chain.genesis_hash, s.account.address, s.market.address)
    notes: list[str] = []
    filled, exact = _reconcile_orders(j, s, key, notes, fill_of)
    expected = j.expected_position(*key)
    # ``drift``: how far the position may move by itself over n seconds (a lending venue's interest)
    allowed = 0
    if drift is not None and expected is not None:
        last = j.last_reading(*key)
        allowed = drift(s.chain.block_timestamp - (last[1] if last else s.chain.block_timestamp))
    if found is not None:
        # judged when every order of ours found executed since is booked at the size the venue's
        # record says it executed (a GMX order's size is in USD: its size in the asset, as booked,
        # drifts with the price between creation and execution; without that record the rest of the
        # change cannot be told from our fill)
        ours = any("was filled" in n for n in notes) and not exact
        want, size = (expected + filled) if expected is not None else 0, s.account.size
        shrank = (expected is not None and not ours and want != 0 and abs(size) < abs(want) - allowed
                  and (size == 0 or (size > 0) == (want > 0)))
        found["reduced_by_venue"] = abs(want) - abs(size) if shrank else 0
    if expected is not None and abs(s.account.size - (expected + filled)) > allowed:
        notes.append(f"position {s.account.size / 1e18:+.6f} differs from the journal's "
                     f"{(expected + filled) / 1e18:+.6f}: changed outside the hedger (a manual trade or a "
                     "liquidation)")
    mined = j.max_nonce(s.chain.chain_id, s.chain.genesis_hash, s.account.address)
    if mined is not None and s.chain.account_nonce is not None:
        # counted from the hedger's last transaction, or from the nonce its last cycle saw when that is
        # later: a transaction sent outside is noted once, not by every cycle until the hedger sends again
        seen = j.last_seen_nonce(s.chain.chain_id, s.chain.genesis_hash, s.account.address)
        since = max(mined + 1, seen or 0)
        if s.chain.account_nonce > since:
            notes.append(f"{s.chain.account_nonce - since} transaction(s) were sent from this account outside "
                         "the hedger since its last one")
    return notes


def _same_key(a: str | None, b: str) -> bool:
    return bool(a) and str(a).lower() == b.lower()


def _record_fill(j: "Journal", row: Any, key: str | None, fill_of: FillOf | None) -> tuple[str, "Fill | None"]:
    """Journal how the venue filled the executed order of ``row``: a note's tail saying so, and
    the venue's record (None without one)."""
    if fill_of is None:
        return "", None
    created = j.order_row(row["tx_hash"])
    block = int(created["created_block"]) if created is not None and created["created_block"] is not None else 0
    fill = fill_of(key or "", int(row["size_delta"]), block)
    if fill is None:
        return "", None
    j.set_order_fill(int(row["id"]), fill)
    return f" at {fill.price / 1e18:,.2f}, fees ${fill.fee / 1e18:,.2f} (tx {fill.tx_hash})", fill


def _executed_size(fill: "Fill | None", booked: int) -> tuple[int, bool]:
    """What an executed order added to the position: the venue's record of it when it says,
    else ``booked``; and whether that is the venue's record."""
    if fill is not None and fill.size_delta is not None:
        return fill.size_delta, True
    return booked, False


def _reconcile_orders(j: "Journal", s: "Snapshot", key: tuple[Any, ...], notes: list[str],
                      fill_of: FillOf | None = None) -> tuple[int, bool]:
    """Move each order the journal holds open (pending, expired, frozen) to what the venue says:
    its state while the venue lists it; once gone, executed when the position moved by it, else
    cancelled (by the venue, or by us after it expired). A mined transaction that created an order
    is never taken as its fill. Returns the size the orders found executed added (E18), and whether
    each of those sizes is the venue's record of its execution (so that any other change of the
    position is the venue's own: ADL, a liquidation)."""
    venue = list(s.account.orders)
    claimed: set[int] = set()       # indexes of venue orders matched to a journal row
    filled, exact = 0, True
    for row in j.open_orders(*key):                       # newest first: a key reused (the reference
        delta = int(row["size_delta"])                    # market's is the account) is the newest's
        jkey = row["order_key"]
        label = f"two-step order {jkey or '(key not yet known)'} (tx {row['tx_hash']}) of {delta / 1e18:+.4f}"
        match = next((i for i, o in enumerate(venue) if i not in claimed and o.size_delta == delta
                      and (_same_key(jkey, o.key) if jkey else True)), None)
        if match is not None:
            claimed.add(match)
            o = venue[match]
            state = o.state.value
            if state != row["state"] or not jkey:
                j.set_order_state(int(row["id"]), state, f"the venue reports it {state}", o.key)
            if state == "executed":
                tail, fill = _record_fill(j, row, o.key, fill_of)
                size, known = _executed_size(fill, delta)
                filled, exact = filled + size, exact and known
                notes.append(f"{label} was filled (executed, as the venue reports)" + tail)
            elif state == "cancelled":
                notes.append(f"{label} is gone unfilled: cancelled by the venue")
            elif state != row["state"]:
                notes.append(f"{label} is {state} at the venue")
            continue
        moved = s.account.size - int(row["size_before"])
        by_events = ""
        # (an order of no size, collateral only, moves no position: only the venue's record tells)
        if (delta == 0 or not (moved == delta or (moved * delta > 0 and abs(moved) >= abs(delta)))) and jkey:
            # a venue whose fill differs from the order's booked size (GMX sizes orders in USD): its
            # own record of the execution, found by the order's key, decides
            by_events, fill = _record_fill(j, row, jkey, fill_of)
            if by_events:
                j.set_order_state(int(row["id"]), "executed", "no longer listed; the venue's events record its execution")
                size, known = _executed_size(fill, moved)
                filled, exact = filled + size, exact and known
                notes.append(f"{label} was filled (executed, as the venue's events record)" + by_events)
                continue
        if (moved == delta and not (delta == 0 and jkey)) or (delta != 0 and moved * delta > 0
                                                               and abs(moved) >= abs(delta)):
            j.set_order_state(int(row["id"]), "executed", "no longer listed and the position moved by it")
            tail, fill = _record_fill(j, row, jkey, fill_of)
            size, known = _executed_size(fill, delta)
            filled, exact = filled + size, exact and known
            notes.append(f"{label} was filled (executed: the position moved by it)" + tail)
        else:
            was = " after it expired" if row["state"] == "expired" else ""
            j.set_order_state(int(row["id"]), "cancelled",
                              f"no longer listed{was} and the position did not move by it")
            notes.append(f"{label} is gone unfilled (cancelled{was or ' or expired'}): no fill")
    for i, o in enumerate(venue):
        if i not in claimed and o.in_flight:
            notes.append(f"a {o.state.value} order {o.key} of {o.size_delta / 1e18:+.4f} on the market was not "
                         "submitted by this hedger's journal")
    return filled, exact
