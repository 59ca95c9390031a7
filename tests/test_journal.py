"""The journal: an older file is upgraded in place, and every write is one transaction."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from hedger.core.types import ActionKind, Call, Decision, DecisionKind, OrderState, Plan, SentTx, Snapshot
from hedger.state.journal import Journal
from hedger.state.reconcile import reconcile_state
from tests.snapshots import NOW, eth, make_snapshot, pending_order

FIRST_RELEASE = """
CREATE TABLE cycles (id INTEGER PRIMARY KEY AUTOINCREMENT, started_at REAL NOT NULL, finished_at REAL,
 chain_id INTEGER NOT NULL, genesis_hash TEXT NOT NULL, account TEXT NOT NULL, market TEXT NOT NULL,
 block_number INTEGER, block_timestamp INTEGER, kind TEXT, code TEXT, reason TEXT, dry_run INTEGER NOT NULL DEFAULT 0,
 snapshot TEXT, plan TEXT, outcome TEXT NOT NULL DEFAULT 'started', exit_code INTEGER, error TEXT);
CREATE TABLE txs (id INTEGER PRIMARY KEY AUTOINCREMENT, cycle_id INTEGER NOT NULL, contract TEXT NOT NULL,
 function TEXT NOT NULL, args TEXT NOT NULL, tx_hash TEXT NOT NULL UNIQUE, nonce INTEGER NOT NULL,
 signed_at REAL NOT NULL, status INTEGER, gas_used INTEGER, effective_gas_price INTEGER, block_number INTEGER);
INSERT INTO cycles (started_at, chain_id, genesis_hash, account, market, block_timestamp, outcome)
 VALUES (1, 1, '0xg', 'a', 'm', 100, 'acted');
INSERT INTO txs (cycle_id, contract, function, args, tx_hash, nonce, signed_at, status, gas_used, effective_gas_price)
 VALUES (1, 'market', 'modifyPosition', '[1, 2]', '0xh', 0, 1, 1, 21000, 7);
"""


def test_first_release_journal_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(FIRST_RELEASE)
    db.commit()
    db.close()
    j = Journal(path)
    cols = {r["name"] for r in j.db.execute("PRAGMA table_info(txs)")}
    assert {"raw", "fields", "state", "notional", "fee", "block_hash", "rebroadcasts", "confirmed"} <= cols
    assert {r["name"] for r in j.db.execute("PRAGMA table_info(cycles)")} >= {"notes"}
    assert j.db.execute("SELECT state FROM txs").fetchone()["state"] == "signed"   # the new column's default
    j.set_control("a", "m", "pause", {"reason": "x"})                              # new tables exist
    assert j.get_control("a", "m", "pause") == {"reason": "x"}
    assert j.open_orders(1, "0xg", "a", "m") == []
    Journal(path)                                                                  # opening twice is harmless


# the release before reorg checks: receipts had no block hash, re-broadcasts were not counted
BEFORE_REORG_CHECKS = FIRST_RELEASE.split("INSERT INTO cycles")[0] + """
ALTER TABLE txs ADD COLUMN raw TEXT;
ALTER TABLE txs ADD COLUMN fields TEXT;
ALTER TABLE txs ADD COLUMN state TEXT NOT NULL DEFAULT 'signed';
ALTER TABLE cycles ADD COLUMN notes TEXT;
ALTER TABLE txs ADD COLUMN notional TEXT;
ALTER TABLE txs ADD COLUMN fee TEXT;
INSERT INTO cycles (started_at, chain_id, genesis_hash, account, market, block_timestamp, outcome)
 VALUES (1, 1, '0xg', 'a', 'm', 100, 'acted');
INSERT INTO txs (cycle_id, contract, function, args, tx_hash, nonce, signed_at, status, gas_used, effective_gas_price,
 block_number, state) VALUES (1, 'market', 'modifyPosition', '[1, 2]', '0xh', 0, 1, 1, 21000, 7, 5, 'mined');
"""


def test_journal_from_before_reorg_checks_opens_and_its_receipts_count_as_final(tmp_path: Path) -> None:
    path = tmp_path / "before.sqlite"
    db = sqlite3.connect(path)
    db.executescript(BEFORE_REORG_CHECKS)
    db.commit()
    db.close()
    j = Journal(path)
    assert {"block_hash", "rebroadcasts", "confirmed"} <= {r["name"] for r in j.db.execute("PRAGMA table_info(txs)")}
    row = j.db.execute("SELECT * FROM txs").fetchone()
    assert (row["state"], row["confirmed"], row["rebroadcasts"], row["block_hash"]) == ("mined", 1, 0, None)
    assert not j.has_loose_ends("a")                 # nothing to re-check: no block hash to compare
    assert j.unconfirmed_receipts(1, "0xg", "a") == []
    # new rows get the new behaviour in the upgraded file
    j.record_signed_parts(1, "market", "modifyPosition", [3, 4], "0xi", 1, b"\x01", {"nonce": 1})
    j.record_receipt("0xi", 1, 21000, 7, 9, "0xblock", confirmed=False)
    assert [r["tx_hash"] for r in j.unconfirmed_receipts(1, "0xg", "a")] == ["0xi"]
    assert j.has_loose_ends("a")
    assert j.reopen_nonce(1, "0xg", "a", 1) == ["0xi"]
    assert j.tx_function("0xi") == "modifyPosition"
    assert j.unresolved_txs(1, "0xg", "a")[0]["block_hash"] is None
    Journal(path)                                    # opening again changes nothing
    assert Journal(path).db.execute("SELECT confirmed FROM txs WHERE tx_hash='0xh'").fetchone()[0] == 1


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    with pytest.raises(sqlite3.Error):
        with j._tx():
            j.db.execute("INSERT INTO controls (account, market, key, value, updated_at) VALUES ('a','m','k','{}',1)")
            j.db.execute("INSERT INTO no_such_table VALUES (1)")
    assert j.get_control("a", "m", "k") is None


def _open_at_barrier(path: str, barrier: "multiprocessing.synchronize.Barrier") -> None:
    barrier.wait()
    Journal(path).close()


def test_many_processes_opening_a_new_journal_at_once_all_succeed(tmp_path: Path) -> None:
    # two cron runs starting in the same second both create the journal; SQLite answers the
    # loser of the switch to WAL with "database is locked" at once, which once failed a run
    ctx = multiprocessing.get_context("fork")
    for round_ in range(60):
        path = str(tmp_path / f"j{round_}.sqlite")
        barrier = ctx.Barrier(2)
        procs = [ctx.Process(target=_open_at_barrier, args=(path, barrier)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * 2, f"round {round_}"
        assert {r[0] for r in sqlite3.connect(path).execute("PRAGMA journal_mode")} == {"wal"}


LEGACY_ROWS = """
INSERT INTO cycles (started_at, chain_id, genesis_hash, account, market, block_timestamp, outcome, snapshot)
 VALUES (2, 1, '0xg', 'a', 'm', 200, 'acted', '{"account": {"size": "-5"}}');
INSERT INTO txs (cycle_id, contract, function, args, tx_hash, nonce, signed_at, status, gas_used, effective_gas_price)
 VALUES (2, 'collateral', 'approve', '["m", 9]', '0xa1', 1, 2, 1, 1, 1),
        (2, 'market', 'transferMargin', '[9]', '0xa2', 2, 2, 1, 1, 1),
        (2, 'market', 'transferMargin', '[-4]', '0xa3', 3, 2, 1, 1, 1),
        (2, 'market', 'submitDelayedOrder', '[-7, 1]', '0xa4', 4, 2, 1, 1, 1),
        (2, 'market', 'cancelDelayedOrder', '["a"]', '0xa5', 5, 2, 1, 1, 1);
"""


def test_rows_from_before_actions_were_journaled_get_them_from_the_reference_functions(tmp_path: Path) -> None:
    """The journal's readers use venue-neutral actions; an older journal (the reference market's
    function names only) is given them once, when the columns are added."""
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(FIRST_RELEASE + LEGACY_ROWS)
    db.commit()
    db.close()
    j = Journal(path)
    got = {r["tx_hash"]: (r["action"], r["leg"], r["amount"], r["creates_order"])
           for r in j.db.execute("SELECT * FROM txs")}
    assert got == {"0xh": ("trade", "main", "1", 0), "0xa1": ("deposit", "approve", None, 0),
                   "0xa2": ("deposit", "main", "9", 0), "0xa3": ("withdraw", "main", "-4", 0),
                   "0xa4": ("trade", "main", "-7", 1), "0xa5": ("cancel_order", "main", None, 0)}


def test_the_journal_reads_actions_not_a_venues_function_names(tmp_path: Path) -> None:
    """A venue whose order-creating call is not named like the reference market's (GMX's
    createOrder in a multicall): what it does is journaled beside the call, and read from there."""
    from hedger.core.types import ActionKind, Call, SentTx
    from tests.snapshots import make_snapshot
    from hedger.core.types import Decision, DecisionKind, Plan
    j = Journal(tmp_path / "j.sqlite")
    s = make_snapshot()
    d = Decision(kind=DecisionKind.REBALANCE, reason="r", code="rebalance")
    cid = j.open_cycle(s, d, Plan(decision=d), [], False)
    approve = Call(to="0x1", contract="router", function="approve", args=(), data="0x", action=ActionKind.TRADE,
                   risk_reducing=False, notional_usd=10**24, leg="approve")
    order = Call(to="0x2", contract="exchangeRouter", function="multicall", args=(), data="0x",
                 action=ActionKind.TRADE, risk_reducing=False, notional_usd=7 * 10**21, amount=-2 * 10**18,
                 creates_order=True)
    for n, (call, h) in enumerate(((approve, "0xb1"), (order, "0xb2"))):
        j.record_signed(cid, call, h, n)
        j.record_mined(SentTx(call=call, tx_hash=h, nonce=n, status=1, gas_used=1, block_number=1,
                              effective_gas_price=1))
    c = s.chain
    notional, _gas = j.spent(c.chain_id, c.genesis_hash, s.account.address, 0)
    assert notional == 7 * 10**21                       # the order's notional; the approval moves none
    orders = j.open_orders(c.chain_id, c.genesis_hash, s.account.address, s.market.address)
    assert [(o["tx_hash"], int(o["size_delta"])) for o in orders] == [("0xb2", -2 * 10**18)]
    # a submitted order is not a filled trade: the expected position does not move by it
    assert j.expected_position(c.chain_id, c.genesis_hash, s.account.address, s.market.address) == s.account.size


# the release before order keys: an orders table without them, its states 'filled' and 'gone'
BEFORE_ORDER_KEYS = FIRST_RELEASE.split("INSERT INTO cycles")[0] + """
ALTER TABLE txs ADD COLUMN action TEXT;
ALTER TABLE txs ADD COLUMN leg TEXT NOT NULL DEFAULT 'main';
ALTER TABLE txs ADD COLUMN amount TEXT;
ALTER TABLE txs ADD COLUMN creates_order INTEGER NOT NULL DEFAULT 0;
CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT, chain_id INTEGER NOT NULL, genesis_hash TEXT NOT NULL,
 account TEXT NOT NULL, market TEXT NOT NULL, tx_hash TEXT NOT NULL UNIQUE, size_delta TEXT NOT NULL,
 size_before TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending', resolved_at REAL, note TEXT);
INSERT INTO orders (chain_id, genesis_hash, account, market, tx_hash, size_delta, size_before, state) VALUES
 (1, '0xg', 'a', 'm', '0xo1', '-5', '0', 'filled'),
 (1, '0xg', 'a', 'm', '0xo2', '-5', '-5', 'gone'),
 (1, '0xg', 'a', 'm', '0xo3', '-5', '-5', 'pending');
"""


def test_journal_from_before_order_keys_opens_with_the_reference_markets_keys(tmp_path: Path) -> None:
    path = tmp_path / "before-keys.sqlite"
    db = sqlite3.connect(path)
    db.executescript(BEFORE_ORDER_KEYS)
    db.commit()
    db.close()
    j = Journal(path)
    assert "order_key" in {r["name"] for r in j.db.execute("PRAGMA table_info(txs)")}
    got = {r["tx_hash"]: (r["state"], r["order_key"]) for r in j.db.execute("SELECT * FROM orders")}
    # the reference market's one delayed order per account was keyed by the account
    assert got == {"0xo1": ("executed", "a"), "0xo2": ("cancelled", "a"), "0xo3": ("pending", "a")}
    assert [r["tx_hash"] for r in j.open_orders(1, "0xg", "a", "m")] == ["0xo3"]
    assert j.order_state("0xo1") == "executed" and j.order_state("0xnone") is None
    j.close()
    assert Journal(path).order_state("0xo2") == "cancelled"      # opening again changes nothing


def _submit(j: Journal, s: Snapshot, h: str, nonce: int, size_delta: int, key: str = "") -> None:
    d = Decision(kind=DecisionKind.REBALANCE, reason="r", code="rebalance")
    cid = j.open_cycle(s, d, Plan(decision=d), [], False)
    call = Call(to="0x2", contract="market", function="createOrder", args=(), data="0x", action=ActionKind.TRADE,
                risk_reducing=False, amount=size_delta, creates_order=True, order_key=key)
    j.record_signed(cid, call, h, nonce)
    j.record_mined(SentTx(call=call, tx_hash=h, nonce=nonce, status=1, gas_used=1, block_number=1,
                          effective_gas_price=1))


def test_an_orders_state_moves_only_by_what_the_venue_reports(tmp_path: Path) -> None:
    """Mined is submitted: the journal's order stays pending until the venue lists it otherwise or
    drops it; then executed only when the position moved by it, else cancelled."""
    j = Journal(tmp_path / "j.sqlite")
    s = make_snapshot(two_step=True, spot=eth(10))
    key = s.account.address
    _submit(j, s, "0xo1", 0, -eth(10), key)
    assert j.order_state("0xo1") == "pending"
    listed = pending_order(-eth(10), NOW, key=key)
    at = replace(s, account=replace(s.account, orders=(listed,)))
    assert reconcile_state(j, at) == [] and j.order_state("0xo1") == "pending"
    expired = replace(at, account=replace(at.account, orders=(replace(listed, state=OrderState.EXPIRED),)))
    assert any("is expired" in n for n in reconcile_state(j, expired))
    assert j.order_state("0xo1") == "expired"
    notes = reconcile_state(j, s)                     # gone (cancelled), the position never moved
    assert j.order_state("0xo1") == "cancelled" and any("gone unfilled" in n for n in notes)
    assert j.open_orders(s.chain.chain_id, s.chain.genesis_hash, key, s.market.address) == []
    # the next order with the same key (the reference market's is the account), filled
    _submit(j, s, "0xo2", 1, -eth(10), key)
    filled = replace(s, account=replace(s.account, size=-eth(10)))
    notes = reconcile_state(j, filled)
    assert j.order_state("0xo2") == "executed" and any("was filled" in n for n in notes)
    assert j.order_state("0xo1") == "cancelled"


def test_an_order_key_unknown_when_mined_is_learned_from_the_venues_list(tmp_path: Path) -> None:
    """GMX's key comes from the chain: the journal takes it from the venue's order of that size; a
    market order the venue cancelled (acceptable price missed) is journaled cancelled, not filled."""
    j = Journal(tmp_path / "j.sqlite")
    s = make_snapshot(two_step=True, spot=eth(10))
    _submit(j, s, "0xo1", 0, -eth(10))
    other = pending_order(eth(1), NOW, key="0x" + "99" * 32)        # not ours
    ours = pending_order(-eth(10), NOW, key="0x" + "5e" * 32)
    notes = reconcile_state(j, replace(s, account=replace(s.account, orders=(other, ours))))
    row = j.db.execute("SELECT * FROM orders WHERE tx_hash='0xo1'").fetchone()
    assert row["order_key"] == ours.key and row["state"] == "pending"
    assert any(other.key in n and "not submitted by this hedger" in n for n in notes), notes
    cancelled = replace(ours, state=OrderState.CANCELLED)
    notes = reconcile_state(j, replace(s, account=replace(s.account, orders=(cancelled,))))
    assert j.order_state("0xo1") == "cancelled" and any("cancelled by the venue" in n for n in notes)


def test_a_file_that_is_no_journal_is_refused_by_name_and_left_as_it_was(tmp_path: Path) -> None:
    """HEDGER_JOURNAL_PATH at another file (the .env, say) died `unexpected DatabaseError: file is not a
    database` (exit 1); now a ConfigError naming the variable (exit 2), the file untouched."""
    from hedger.core.errors import ConfigError
    f = tmp_path / "dotenv"
    text = "HEDGER_RPC_URL=http://127.0.0.1:8545\n" * 200
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        Journal(f)
    assert err.value.variable == "HEDGER_JOURNAL_PATH" and err.value.exit_code == 2
    assert f.read_text() == text
