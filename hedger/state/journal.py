"""Durable record of every cycle, in SQLite.

A cycle row is written when the cycle has decided (readings, decision, plan),
each transaction is recorded when signed (hash and nonce, before it is
broadcast) and again when mined, and the cycle is closed with its outcome.
Every write is one SQLite transaction, so a crash never leaves a partly
written row. Rows are keyed by chain id, genesis hash, account and market: a
restarted local chain is a new chain, not a corrupted journal.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from enum import Enum
from pathlib import Path
from typing import Any, Iterator

from hedger.core.errors import ConfigError
from hedger.core.types import ActionKind, Call, Decision, Fill, JournaledAction, Leg, Plan, SentTx, Snapshot

SCHEMA = """
CREATE TABLE IF NOT EXISTS cycles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    finished_at REAL,
    chain_id INTEGER NOT NULL,
    genesis_hash TEXT NOT NULL,
    account TEXT NOT NULL,
    market TEXT NOT NULL,
    block_number INTEGER,
    block_timestamp INTEGER,
    kind TEXT,
    code TEXT,
    reason TEXT,
    dry_run INTEGER NOT NULL DEFAULT 0,
    snapshot TEXT,
    plan TEXT,
    outcome TEXT NOT NULL DEFAULT 'started',
    exit_code INTEGER,
    error TEXT
);
CREATE INDEX IF NOT EXISTS cycles_key ON cycles (chain_id, genesis_hash, account, market, id);
CREATE TABLE IF NOT EXISTS txs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cycle_id INTEGER NOT NULL REFERENCES cycles(id),
    contract TEXT NOT NULL,
    function TEXT NOT NULL,
    args TEXT NOT NULL,
    tx_hash TEXT NOT NULL UNIQUE,
    nonce INTEGER NOT NULL,
    signed_at REAL NOT NULL,
    status INTEGER,
    gas_used INTEGER,
    effective_gas_price INTEGER,
    block_number INTEGER,
    raw TEXT,
    fields TEXT,
    state TEXT NOT NULL DEFAULT 'signed'
);
CREATE INDEX IF NOT EXISTS txs_nonce ON txs (nonce);
CREATE TABLE IF NOT EXISTS controls (
    account TEXT NOT NULL,
    market TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (account, market, key)
);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cycle_id INTEGER NOT NULL REFERENCES cycles(id),
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    amount TEXT NOT NULL,
    order_key TEXT,
    legs INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'planned',
    note TEXT,
    updated_at REAL NOT NULL,
    UNIQUE (cycle_id, seq)
);
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chain_id INTEGER NOT NULL,
    genesis_hash TEXT NOT NULL,
    account TEXT NOT NULL,
    market TEXT NOT NULL,
    tx_hash TEXT NOT NULL UNIQUE,
    size_delta TEXT NOT NULL,
    size_before TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    resolved_at REAL,
    note TEXT,
    order_key TEXT
);
"""

# Columns added after the first release: (table, column, definition). New fields always
# have defaults, so an older journal opens and is upgraded in place.
MIGRATIONS = [
    ("txs", "raw", "TEXT"),
    ("txs", "fields", "TEXT"),
    ("txs", "state", "TEXT NOT NULL DEFAULT 'signed'"),
    ("cycles", "notes", "TEXT"),
    ("txs", "notional", "TEXT"),
    ("txs", "fee", "TEXT"),
    ("txs", "block_hash", "TEXT"),
    ("txs", "rebroadcasts", "INTEGER NOT NULL DEFAULT 0"),
    ("txs", "confirmed", "INTEGER NOT NULL DEFAULT 0"),
    ("txs", "action", "TEXT"),
    ("txs", "leg", "TEXT NOT NULL DEFAULT 'main'"),
    ("txs", "amount", "TEXT"),
    ("txs", "creates_order", "INTEGER NOT NULL DEFAULT 0"),
    ("txs", "action_seq", "INTEGER"),
    ("txs", "order_key", "TEXT"),
    ("orders", "order_key", "TEXT"),
    ("orders", "fill_price", "TEXT"),
    ("orders", "fill_fee", "TEXT"),
    ("orders", "fill_tx", "TEXT"),
]

# Run once, right after a migration adds the column: receipts recorded before reorg checks
# existed have no block hash to compare, so they are taken as confirmed (never re-checked).
BACKFILL = {
    ("txs", "confirmed"): "UPDATE txs SET confirmed=1 WHERE state IN ('mined', 'reverted')",
    # Rows written before actions were journaled came from the reference market's adapter (the
    # only venue then): its function names say what each one did. The last place they are read.
    ("txs", "creates_order"): """
        UPDATE txs SET
          action = CASE function WHEN 'approve' THEN 'deposit'
                                 WHEN 'transferMargin' THEN
                                   CASE WHEN CAST(json_extract(args, '$[0]') AS INTEGER) < 0 THEN 'withdraw'
                                        ELSE 'deposit' END
                                 WHEN 'modifyPosition' THEN 'trade' WHEN 'submitDelayedOrder' THEN 'trade'
                                 WHEN 'cancelDelayedOrder' THEN 'cancel_order' ELSE action END,
          leg = CASE function WHEN 'approve' THEN 'approve' ELSE 'main' END,
          amount = CASE WHEN function IN ('transferMargin', 'modifyPosition', 'submitDelayedOrder')
                        THEN CAST(json_extract(args, '$[0]') AS TEXT) ELSE amount END,
          creates_order = CASE function WHEN 'submitDelayedOrder' THEN 1 ELSE 0 END
        WHERE action IS NULL""",
    # Orders journaled before keys were: the reference market's (the only venue then), whose one
    # delayed order is keyed by the account; their states renamed to the venue's words.
    ("orders", "order_key"): """
        UPDATE orders SET order_key = account,
          state = CASE state WHEN 'filled' THEN 'executed' WHEN 'gone' THEN 'cancelled' ELSE state END""",
}

# orders: pending -> executed | cancelled (by the venue, or by us once expired) | expired (until
# cancelled) | frozen, moved only by what the venue reports (its order list and the position),
# never by our own transaction being mined. Rows in OPEN_ORDER_STATES are still in flight.
OPEN_ORDER_STATES = ("pending", "expired", "frozen")

_OPEN_TIMEOUT_S = 30.0

# The zero-value transfer to itself that takes a nonce whose transaction is in doubt.
CANCEL_CONTRACT, CANCEL_FUNCTION = "account", "cancelNonce"

# action states: planned (journaled with its cycle, nothing mined) -> partial (some legs mined) ->
# done (every leg mined) | submitted (every leg mined, one created an order the venue fills later)
# | failed (a leg reverted); when its cycle closes, planned -> not_sent and partial -> unfinished;
# reconciliation settles an unfinished action through the venue's adapter: replanned | finished
# | unwound. Actions journaled before legs were (no rows here) are not settled again.

# tx states: signed (journaled, maybe broadcast) -> mined | reverted | replaced | cancelled | superseded
# (| dropped, written by older versions). A mined or reverted row carries its block's hash and
# is ``confirmed`` once HEDGER_CONFIRMATIONS blocks are on top of it; until then each cycle's
# reconciliation checks that its block is still canonical, and a row whose block was reorganised
# away goes back to 'signed'.


def _jsonable(o: Any) -> Any:
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return {f.name: _jsonable(getattr(o, f.name)) for f in dataclasses.fields(o)}
    if isinstance(o, Enum):
        return o.value
    if isinstance(o, (list, tuple)):
        return [_jsonable(x) for x in o]
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, bytes):
        return "0x" + o.hex()
    if isinstance(o, int) and not isinstance(o, bool) and abs(o) >= 2**53:
        return str(o)   # exact: JSON readers lose precision on large integers
    return o


def to_json(o: Any) -> str:
    return json.dumps(_jsonable(o), sort_keys=True)


class Journal:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.db = sqlite3.connect(str(self.path), isolation_level=None, timeout=30)
        except sqlite3.Error as err:
            raise ConfigError("HEDGER_JOURNAL_PATH", f"cannot open {self.path}: {err}",
                              "point it at a writable file") from err
        self.db.row_factory = sqlite3.Row
        # Two processes opening a new journal at once (two cron runs start in the same second)
        # race on the switch to WAL, where SQLite answers "database is locked" at once instead
        # of waiting out the busy timeout. The set-up is idempotent, so it is simply retried.
        deadline = time.monotonic() + _OPEN_TIMEOUT_S
        while True:
            try:
                self._set_up()
                break
            except sqlite3.OperationalError as err:
                if ("locked" not in str(err) and "busy" not in str(err)) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
            except sqlite3.DatabaseError as err:     # another file (a .env, a log): read only, left as it was
                self.db.close()
                raise ConfigError("HEDGER_JOURNAL_PATH", f"{self.path} is not a hedger journal (SQLite: {err})",
                                  "point it at the journal's .sqlite file, or at a new path to start one") from err

    def _set_up(self) -> None:
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        with self._tx():
            # every statement is IF NOT EXISTS, so an older journal gets the new tables;
            # the columns added since go in through MIGRATIONS
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    self.db.execute(stmt)
            for table, column, definition in MIGRATIONS:
                cols = {r["name"] for r in self.db.execute(f"PRAGMA table_info({table})")}
                if column not in cols:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
                    if (table, column) in BACKFILL:
                        self.db.execute(BACKFILL[(table, column)])

    def _tx(self) -> "_Tx":
        return _Tx(self.db)

    def close(self) -> None:
        self.db.close()

    def open_cycle(self, snapshot: Snapshot, decision: Decision, plan: Plan, calls: list[Call],
                   dry_run: bool) -> int:
        c = snapshot.chain
        with self._tx():
            cur = self.db.execute(
                "INSERT INTO cycles (started_at, chain_id, genesis_hash, account, market, block_number, "
                "block_timestamp, kind, code, reason, dry_run, snapshot, plan) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (time.time(), c.chain_id, c.genesis_hash, snapshot.account.address, snapshot.market.address,
                 c.block_number, c.block_timestamp, decision.kind.value, decision.code, decision.reason,
                 int(dry_run), to_json(snapshot), to_json({"plan": plan, "calls": [cl.describe() for cl in calls]})))
            cid = int(cur.lastrowid)
            if not dry_run:
                # every action with the number of transactions (legs) it takes, in the same SQLite
                # transaction as the cycle: an action is never journaled without its plan
                for i, act in enumerate(plan.actions):
                    legs = sum(1 for cl in calls if cl.action_index == i)
                    if legs:
                        self.db.execute("INSERT INTO actions (cycle_id, seq, kind, amount, legs, updated_at) "
                                        "VALUES (?,?,?,?,?,?)", (cid, i, act.kind.value, str(act.amount), legs,
                                                                 time.time()))
            return cid

    def record_signed(self, cycle_id: int, call: Call, tx_hash: str, nonce: int, raw: bytes | None = None,
                      fields: dict[str, Any] | None = None) -> None:
        """Written before the transaction is broadcast: a crash after this line leaves a hash to look for.
        Beside the raw call, what it does in venue-neutral terms (action, leg, amount, whether it
        creates an order): what the journal's own readers, reconciliation and the report use."""
        meta = {"action": call.action.value, "leg": call.leg, "amount": str(call.amount),
                "creates_order": int(call.creates_order), "action_seq": call.action_index,
                "order_key": call.order_key or None}
        self.record_signed_parts(cycle_id, call.contract, call.function, call.args, tx_hash, nonce, raw, fields,
                                 call.notional_usd if call.leg == "main" else 0, meta)

    @staticmethod
    def action_of(row: Any) -> dict[str, Any]:
        """The venue-neutral part of a journaled transaction, to journal its replacement alike."""
        return {"action": row["action"], "leg": row["leg"], "amount": row["amount"],
                "creates_order": int(row["creates_order"] or 0), "action_seq": row["action_seq"],
                "order_key": row["order_key"]}

    def record_signed_parts(self, cycle_id: int, contract: str, function: str, args: Any, tx_hash: str, nonce: int,
                            raw: bytes | None = None, fields: dict[str, Any] | None = None,
                            notional: int = 0, meta: dict[str, Any] | None = None) -> None:
        m = meta or {}
        with self._tx():
            self.db.execute("INSERT OR IGNORE INTO txs (cycle_id, contract, function, args, tx_hash, nonce, "
                            "signed_at, raw, fields, state, notional, action, leg, amount, creates_order, "
                            "action_seq, order_key) VALUES (?,?,?,?,?,?,?,?,?, 'signed', ?,?,?,?,?,?,?)",
                            (cycle_id, contract, function, args if isinstance(args, str) else to_json(args), tx_hash,
                             nonce, time.time(), None if raw is None else "0x" + bytes(raw).hex(),
                             None if fields is None else to_json(fields), str(notional), m.get("action"),
                             m.get("leg") or "main", m.get("amount"), int(m.get("creates_order") or 0),
                             m.get("action_seq"), m.get("order_key")))

    # ------------------------------------------------------------- operator controls

    def set_control(self, account: str, market: str, key: str, value: dict[str, Any] | None) -> None:
        with self._tx():
            if value is None:
                self.db.execute("DELETE FROM controls WHERE account=? AND market=? AND key=?", (account, market, key))
            else:
                self.db.execute("INSERT OR REPLACE INTO controls (account, market, key, value, updated_at) "
                                "VALUES (?,?,?,?,?)", (account, market, key, json.dumps(value), time.time()))

    def get_control(self, account: str, market: str, key: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT value FROM controls WHERE account=? AND market=? AND key=?",
                              (account, market, key)).fetchone()
        return None if row is None else json.loads(row["value"])

    def spent(self, chain_id: int, genesis_hash: str, account: str, since_ts: int) -> tuple[int, int]:
        """(traded notional E18 USD, gas wei) of transactions mined in cycles since chain time ``since_ts``."""
        notional = gas = 0
        for r in self.db.execute(
                "SELECT t.action, t.leg, t.notional, t.gas_used, t.effective_gas_price, t.state FROM txs t JOIN cycles c "
                "ON c.id=t.cycle_id WHERE c.chain_id=? AND c.genesis_hash=? AND c.account=? AND c.block_timestamp>=? "
                "AND t.state IN ('mined', 'reverted')", (chain_id, genesis_hash, account, since_ts)):
            gas += int(r["gas_used"] or 0) * int(r["effective_gas_price"] or 0)
            if r["state"] == "mined" and r["action"] == "trade" and r["leg"] == "main":
                notional += int(r["notional"] or 0)
        return notional, gas

    def record_receipt(self, tx_hash: str, status: int, gas_used: int, effective_gas_price: int | None,
                       block_number: int, block_hash: str | None = None, confirmed: bool = False) -> None:
        """A mined transaction; the other transactions signed at its nonce in the same cycle were
        replaced (or, when the mined one is a cancel, cancelled)."""
        with self._tx():
            self.db.execute("UPDATE txs SET status=?, gas_used=?, effective_gas_price=?, block_number=?, state=?, "
                            "block_hash=?, confirmed=? WHERE tx_hash=?",
                            (status, gas_used, effective_gas_price, block_number,
                             "mined" if status == 1 else "reverted", block_hash, int(confirmed), tx_hash))
            row = self.db.execute(
                "SELECT t.cycle_id, t.nonce, t.function, t.creates_order, t.amount, t.order_key, t.action, c.chain_id, "
                "c.genesis_hash, "
                "c.account, c.market, "
                "c.snapshot FROM txs t JOIN cycles c ON c.id=t.cycle_id WHERE t.tx_hash=?", (tx_hash,)).fetchone()
            if row is not None:
                self._refresh_action(int(row["cycle_id"]), tx_hash)
                other = "cancelled" if row["function"] == CANCEL_FUNCTION else "replaced"
                self.db.execute("UPDATE txs SET state=? WHERE cycle_id=? AND nonce=? AND tx_hash<>? "
                                "AND state='signed'", (other, row["cycle_id"], row["nonce"], tx_hash))
                if status == 1 and row["creates_order"]:
                    # submitted, not filled: the row stays 'pending' until the venue says otherwise
                    # a collateral order (GMX v2: a deposit or withdrawal is an order too) changes no size
                    size_delta = int(row["amount"] or 0) if row["action"] in (None, "trade") else 0
                    size_before = int(json.loads(row["snapshot"] or "{}").get("account", {}).get("size", 0))
                    self.db.execute(
                        "INSERT OR IGNORE INTO orders (chain_id, genesis_hash, account, market, tx_hash, size_delta, "
                        "size_before, order_key) VALUES (?,?,?,?,?,?,?,?)",
                        (row["chain_id"], row["genesis_hash"], row["account"], row["market"], tx_hash,
                         str(size_delta), str(size_before), row["order_key"]))

    def record_mined(self, tx: SentTx, confirmed: bool = False) -> None:
        """``confirmed``: already deep enough (HEDGER_CONFIRMATIONS is 0); otherwise the next
        cycles re-check its block until it is."""
        self.record_receipt(tx.tx_hash, int(tx.status or 0), int(tx.gas_used or 0), tx.effective_gas_price,
                            int(tx.block_number or 0), tx.block_hash, confirmed)
        if tx.fee is not None:
            with self._tx():
                self.db.execute("UPDATE txs SET fee=? WHERE tx_hash=?", (str(tx.fee), tx.tx_hash))

    def _refresh_action(self, cycle_id: int, tx_hash: str) -> None:
        """Recompute the state of the action ``tx_hash`` is a leg of from its legs' states (inside
        the caller's SQLite transaction). Settled actions (replanned, finished, unwound) stay."""
        t = self.db.execute("SELECT action_seq FROM txs WHERE tx_hash=?", (tx_hash,)).fetchone()
        if t is None or t["action_seq"] is None:
            return
        a = self.db.execute("SELECT id, legs, state FROM actions WHERE cycle_id=? AND seq=?",
                            (cycle_id, int(t["action_seq"]))).fetchone()
        if a is None or a["state"] in ("replanned", "finished", "unwound"):
            return
        legs = list(self.db.execute("SELECT state, creates_order FROM txs WHERE cycle_id=? AND action_seq=?",
                                    (cycle_id, int(t["action_seq"]))))
        mined = [lg for lg in legs if lg["state"] == "mined"]
        if any(lg["state"] == "reverted" for lg in legs):
            state = "failed"
        elif len(mined) >= int(a["legs"]):
            state = "submitted" if any(lg["creates_order"] for lg in mined) else "done"
        elif mined:
            state = "unfinished" if a["state"] in ("unfinished", "not_sent") else "partial"
        else:
            state = "not_sent" if a["state"] in ("unfinished", "not_sent") else "planned"
        if state != a["state"]:
            self.db.execute("UPDATE actions SET state=?, updated_at=? WHERE id=?", (state, time.time(), a["id"]))

    def unfinished_actions(self, chain_id: int, genesis_hash: str, account: str) -> list[JournaledAction]:
        """Actions of closed cycles left with some legs mined and others not, oldest first."""
        out = []
        for a in self.db.execute(
                "SELECT a.*, c.market FROM actions a JOIN cycles c ON c.id=a.cycle_id WHERE c.chain_id=? AND c.genesis_hash=? "
                "AND c.account=? AND c.outcome<>'started' AND a.state='unfinished' ORDER BY a.id",
                (chain_id, genesis_hash, account)):
            legs = tuple(Leg(leg=t["leg"], amount=int(t["amount"] or 0), state=t["state"], tx_hash=t["tx_hash"])
                         for t in self.db.execute("SELECT * FROM txs WHERE cycle_id=? AND action_seq=? ORDER BY id",
                                                  (a["cycle_id"], a["seq"])))
            out.append(JournaledAction(id=int(a["id"]), cycle_id=int(a["cycle_id"]), seq=int(a["seq"]),
                                       market=a["market"], kind=ActionKind(a["kind"]),
                                       amount=int(a["amount"]), legs_planned=int(a["legs"]), legs=legs,
                                       order_key=a["order_key"]))
        return out

    def settle_action(self, action_id: int, state: str, note: str) -> None:
        """How reconciliation settled an unfinished action: replanned, finished or unwound."""
        with self._tx():
            self.db.execute("UPDATE actions SET state=?, note=?, updated_at=? WHERE id=?",
                            (state, note, time.time(), action_id))

    def actions(self, cycle_id: int) -> list[sqlite3.Row]:
        return list(self.db.execute("SELECT * FROM actions WHERE cycle_id=? ORDER BY seq", (cycle_id,)))

    def mark_tx(self, tx_hash: str, state: str) -> None:
        with self._tx():
            self.db.execute("UPDATE txs SET state=? WHERE tx_hash=?", (state, tx_hash))

    def tx_function(self, tx_hash: str) -> str | None:
        row = self.db.execute("SELECT function FROM txs WHERE tx_hash=?", (tx_hash,)).fetchone()
        return None if row is None else str(row["function"])

    def add_rebroadcast(self, tx_hash: str) -> None:
        """Count one re-broadcast of a journaled transaction's raw bytes (across runs)."""
        with self._tx():
            self.db.execute("UPDATE txs SET rebroadcasts=rebroadcasts+1 WHERE tx_hash=?", (tx_hash,))

    def unconfirmed_receipts(self, chain_id: int, genesis_hash: str, account: str) -> list[sqlite3.Row]:
        """Mined (or reverted) transactions of this chain not yet HEDGER_CONFIRMATIONS deep."""
        return list(self.db.execute(
            "SELECT t.* FROM txs t JOIN cycles c ON c.id = t.cycle_id WHERE c.chain_id=? AND c.genesis_hash=? "
            "AND c.account=? AND t.state IN ('mined', 'reverted') AND t.confirmed=0 AND t.block_hash IS NOT NULL "
            "ORDER BY t.nonce, t.id", (chain_id, genesis_hash, account)))

    def mark_confirmed(self, tx_hash: str) -> None:
        with self._tx():
            self.db.execute("UPDATE txs SET confirmed=1 WHERE tx_hash=?", (tx_hash,))

    def reopen_nonce(self, chain_id: int, genesis_hash: str, account: str, nonce: int) -> list[str]:
        """A reorganisation took the block of the transaction mined at ``nonce`` away: every
        transaction signed at that nonce (the mined one and those it replaced or cancelled) goes
        back to 'signed', its receipt fields cleared, so that reconciliation finds out anew which
        one (if any) the canonical chain holds. Returns their hashes."""
        with self._tx():
            rows = self.db.execute(
                "SELECT t.id, t.tx_hash FROM txs t JOIN cycles c ON c.id = t.cycle_id WHERE c.chain_id=? AND "
                "c.genesis_hash=? AND c.account=? AND t.nonce=? AND t.state IN ('mined', 'reverted', 'replaced', "
                "'cancelled')", (chain_id, genesis_hash, account, nonce)).fetchall()
            for r in rows:
                self.db.execute("UPDATE txs SET state='signed', status=NULL, gas_used=NULL, effective_gas_price=NULL, "
                                "block_number=NULL, block_hash=NULL, confirmed=0 WHERE id=?", (r["id"],))
                cyc = self.db.execute("SELECT cycle_id FROM txs WHERE id=?", (r["id"],)).fetchone()
                self._refresh_action(int(cyc["cycle_id"]), r["tx_hash"])
            if rows:
                # an order row written when its submit was mined no longer stands on the chain
                self.db.execute(f"DELETE FROM orders WHERE state='pending' AND tx_hash IN "
                                f"({','.join('?' * len(rows))})", [r["tx_hash"] for r in rows])
        return [r["tx_hash"] for r in rows]

    def unresolved_txs(self, chain_id: int, genesis_hash: str, account: str) -> list[sqlite3.Row]:
        """Transactions signed by earlier runs on this chain whose outcome was never recorded."""
        return list(self.db.execute(
            "SELECT t.*, c.market FROM txs t JOIN cycles c ON c.id = t.cycle_id WHERE c.chain_id=? AND "
            "c.genesis_hash=? AND c.account=? AND t.state='signed' ORDER BY t.nonce, t.id",
            (chain_id, genesis_hash, account)))

    def unfinished_cycles(self, chain_id: int, genesis_hash: str, account: str) -> list[sqlite3.Row]:
        return list(self.db.execute(
            "SELECT * FROM cycles WHERE chain_id=? AND genesis_hash=? AND account=? AND outcome='started'",
            (chain_id, genesis_hash, account)))

    def open_orders(self, chain_id: int, genesis_hash: str, account: str, market: str) -> list[sqlite3.Row]:
        """Orders our mined transactions created that the venue has not yet reported executed or
        cancelled (pending, expired, frozen), newest first."""
        return list(self.db.execute(
            "SELECT * FROM orders WHERE chain_id=? AND genesis_hash=? AND account=? AND market=? AND state IN "
            f"({','.join('?' * len(OPEN_ORDER_STATES))}) ORDER BY id DESC",
            (chain_id, genesis_hash, account, market, *OPEN_ORDER_STATES)))

    def set_order_state(self, order_id: int, state: str, note: str, order_key: str | None = None) -> None:
        """Record what the venue reports of an order (its key, when learned from the venue's list);
        executed and cancelled are final."""
        with self._tx():
            self.db.execute("UPDATE orders SET state=?, note=?, order_key=COALESCE(?, order_key), "
                            "resolved_at=CASE WHEN ? IN ('executed', 'cancelled') THEN ? ELSE resolved_at END "
                            "WHERE id=?", (state, note, order_key, state, time.time(), order_id))

    def set_order_fill(self, order_id: int, fill: Fill) -> None:
        """How the venue filled an executed order (price, fee, the executing transaction)."""
        with self._tx():
            self.db.execute("UPDATE orders SET fill_price=?, fill_fee=?, fill_tx=? WHERE id=?",
                            (str(fill.price), str(fill.fee), fill.tx_hash, order_id))

    def order_row(self, tx_hash: str) -> sqlite3.Row | None:
        """The order the transaction ``tx_hash`` created, with the block it was created in."""
        return self.db.execute("SELECT o.*, t.block_number AS created_block FROM orders o LEFT JOIN txs t "
                               "ON t.tx_hash=o.tx_hash WHERE o.tx_hash=?", (tx_hash,)).fetchone()

    def cancelled_in_a_row(self, chain_id: int, genesis_hash: str, account: str, market: str,
                           since: float = 0.0) -> int:
        """How many of the latest orders on ``market`` the venue cancelled one after the other (an
        acceptable price missed), back to the last one it executed or to one resolved before
        ``since`` (wall clock); an expired order we cancelled ourselves neither counts nor breaks the run."""
        n = 0
        for row in self.db.execute("SELECT state, note, resolved_at FROM orders WHERE chain_id=? AND genesis_hash=? "
                                   "AND account=? AND market=? ORDER BY id DESC",
                                   (chain_id, genesis_hash, account, market)):
            if row["state"] == "executed" or (row["resolved_at"] is not None and row["resolved_at"] < since):
                break
            if row["state"] == "cancelled" and "after it expired" not in (row["note"] or ""):
                n += 1
        return n

    def order_state(self, tx_hash: str) -> str | None:
        """The state of the order the transaction ``tx_hash`` created (None: no order journaled for it)."""
        row = self.db.execute("SELECT state FROM orders WHERE tx_hash=?", (tx_hash,)).fetchone()
        return None if row is None else str(row["state"])

    def last_reading(self, chain_id: int, genesis_hash: str, account: str, market: str) -> tuple[int, int] | None:
        """(block number, block timestamp) of the latest cycle that read this market (None: none yet)."""
        row = self.db.execute(
            "SELECT MAX(block_number) AS b, MAX(block_timestamp) AS t FROM cycles WHERE chain_id=? AND "
            "genesis_hash=? AND account=? AND market=? AND snapshot IS NOT NULL",
            (chain_id, genesis_hash, account, market)).fetchone()
        return None if row is None or row["b"] is None else (int(row["b"]), int(row["t"]))

    def expected_position(self, chain_id: int, genesis_hash: str, account: str, market: str) -> int | None:
        """The position the journal expects: the last cycle's reading plus its mined direct trades
        and the two-step orders known filled since (None without history)."""
        row = self.db.execute(
            "SELECT id, snapshot FROM cycles WHERE chain_id=? AND genesis_hash=? AND account=? AND market=? "
            "AND snapshot IS NOT NULL ORDER BY id DESC LIMIT 1", (chain_id, genesis_hash, account, market)).fetchone()
        if row is None:
            return None
        size = int(json.loads(row["snapshot"]).get("account", {}).get("size", 0))
        for t in self.db.execute("SELECT amount FROM txs WHERE cycle_id=? AND action='trade' AND leg='main' AND "
                                 "creates_order=0 AND state='mined'", (row["id"],)):
            size += int(t["amount"] or 0)
        return size

    def max_nonce(self, chain_id: int, genesis_hash: str, account: str) -> int | None:
        row = self.db.execute(
            "SELECT MAX(t.nonce) AS n FROM txs t JOIN cycles c ON c.id=t.cycle_id WHERE c.chain_id=? AND "
            "c.genesis_hash=? AND c.account=? AND t.state IN ('mined', 'reverted')",
            (chain_id, genesis_hash, account)).fetchone()
        return None if row is None or row["n"] is None else int(row["n"])

    def last_seen_nonce(self, chain_id: int, genesis_hash: str, account: str) -> int | None:
        """The account's nonce as the latest cycle of the account (any market) read it (None: none)."""
        row = self.db.execute(
            "SELECT snapshot FROM cycles WHERE chain_id=? AND genesis_hash=? AND account=? AND snapshot IS NOT NULL "
            "ORDER BY id DESC LIMIT 1", (chain_id, genesis_hash, account)).fetchone()
        if row is None:
            return None
        nonce = (json.loads(row["snapshot"]).get("chain") or {}).get("account_nonce")
        return None if nonce is None else int(nonce)

    def set_notes(self, cycle_id: int, notes: list[str]) -> None:
        with self._tx():
            self.db.execute("UPDATE cycles SET notes=? WHERE id=?", ("\n".join(notes), cycle_id))

    def has_loose_ends(self, account: str) -> bool:
        """Anything an earlier run left unrecorded or unconfirmed for this account, on any chain
        (no RPC needed)."""
        row = self.db.execute(
            "SELECT 1 FROM cycles c WHERE c.account=? AND (c.outcome='started' OR EXISTS (SELECT 1 FROM txs t "
            "WHERE t.cycle_id=c.id AND (t.state='signed' OR (t.state IN ('mined', 'reverted') AND t.confirmed=0 "
            "AND t.block_hash IS NOT NULL))) OR EXISTS (SELECT 1 FROM actions a WHERE a.cycle_id=c.id AND "
            "a.state IN ('partial', 'unfinished'))) LIMIT 1", (account,)).fetchone()
        return row is not None

    def close_cycle(self, cycle_id: int, outcome: str, exit_code: int, error: str | None = None) -> None:
        """Close a cycle; its actions still planned were never sent, those partly mined are left
        unfinished (for reconciliation to settle)."""
        with self._tx():
            self.db.execute("UPDATE cycles SET outcome=?, exit_code=?, error=?, finished_at=? WHERE id=?",
                            (outcome, exit_code, error, time.time(), cycle_id))
            self.db.execute("UPDATE actions SET state = CASE state WHEN 'planned' THEN 'not_sent' ELSE 'unfinished' "
                            "END, updated_at=? WHERE cycle_id=? AND state IN ('planned', 'partial')",
                            (time.time(), cycle_id))

    def last_action_at(self, chain_id: int, genesis_hash: str, account: str, market: str) -> int | None:
        """Chain time of the last cycle that sent something (for the cooldown)."""
        row = self.db.execute(
            "SELECT block_timestamp FROM cycles WHERE chain_id=? AND genesis_hash=? AND account=? AND market=? "
            "AND outcome IN ('acted', 'partial', 'interrupted', 'held_gas') AND id IN (SELECT cycle_id FROM txs "
            "WHERE state IN ('mined', 'reverted') AND function<>?) ORDER BY id DESC LIMIT 1",
            (chain_id, genesis_hash, account, market, CANCEL_FUNCTION)).fetchone()
        return int(row["block_timestamp"]) if row else None

    def markets_of(self, account: str) -> list[str]:
        """The markets the journal has cycles of for ``account`` (any chain), most recent first."""
        rows = self.db.execute("SELECT market, MAX(id) AS last FROM cycles WHERE account=? GROUP BY market "
                               "ORDER BY last DESC", (account,))
        return [str(r["market"]) for r in rows]

    def cycles(self, limit: int = 50) -> list[sqlite3.Row]:
        return list(self.db.execute("SELECT * FROM cycles ORDER BY id DESC LIMIT ?", (limit,)))

    def txs(self, cycle_id: int) -> list[sqlite3.Row]:
        return list(self.db.execute("SELECT * FROM txs WHERE cycle_id=? ORDER BY id", (cycle_id,)))


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
