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

from hedger.errors import ConfigError
from hedger.types import Call, Decision, Plan, SentTx, Snapshot

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
    block_number INTEGER
);
"""


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
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        with self._tx():
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    self.db.execute(stmt)

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
            return int(cur.lastrowid)

    def record_signed(self, cycle_id: int, call: Call, tx_hash: str, nonce: int) -> None:
        with self._tx():
            self.db.execute("INSERT INTO txs (cycle_id, contract, function, args, tx_hash, nonce, signed_at) "
                            "VALUES (?,?,?,?,?,?,?)",
                            (cycle_id, call.contract, call.function, to_json(call.args), tx_hash, nonce, time.time()))

    def record_mined(self, tx: SentTx) -> None:
        with self._tx():
            self.db.execute("UPDATE txs SET status=?, gas_used=?, effective_gas_price=?, block_number=? "
                            "WHERE tx_hash=?",
                            (tx.status, tx.gas_used, tx.effective_gas_price, tx.block_number, tx.tx_hash))

    def close_cycle(self, cycle_id: int, outcome: str, exit_code: int, error: str | None = None) -> None:
        with self._tx():
            self.db.execute("UPDATE cycles SET outcome=?, exit_code=?, error=?, finished_at=? WHERE id=?",
                            (outcome, exit_code, error, time.time(), cycle_id))

    def last_action_at(self, chain_id: int, genesis_hash: str, account: str, market: str) -> int | None:
        """Chain time of the last cycle that sent something (for the cooldown)."""
        row = self.db.execute(
            "SELECT block_timestamp FROM cycles WHERE chain_id=? AND genesis_hash=? AND account=? AND market=? "
            "AND outcome IN ('acted', 'partial') ORDER BY id DESC LIMIT 1",
            (chain_id, genesis_hash, account, market)).fetchone()
        return int(row["block_timestamp"]) if row else None

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
