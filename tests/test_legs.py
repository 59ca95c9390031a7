"""Actions with legs (issue 10): the journal records every action of a plan with the number of
transactions it takes and the state of each; an action an earlier run left part-done is settled
by the venue's adapter (re-plan, finish or unwind), never by reading function names."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hedger.chain import executor
from hedger.core.types import (Action, ActionKind, Call, ChainView, Decision, DecisionKind, JournaledAction, Plan,
                               Resume, SentTx)
from hedger.protocols.reference.adapter import ReferenceMarket
from hedger.state.journal import Journal
from tests.conftest import USDC, WETH, Hedge
from tests.snapshots import make_snapshot as snap

MARKET = "0x" + "11" * 20


def _call(kind: ActionKind, leg: str, index: int, amount: int = 0, creates_order: bool = False) -> Call:
    return Call(to=MARKET, contract="market", function=f"f_{leg}", args=(), data="0x", action=kind,
                risk_reducing=False, leg=leg, amount=amount, creates_order=creates_order, action_index=index)


def _open(j: Journal, calls: list[Call], actions: tuple[Action, ...], dry: bool = False) -> int:
    s = snap()
    s = replace(s, market=replace(s.market, address=MARKET),
                chain=ChainView(chain_id=31337, block_number=10, block_timestamp=1_000, wall_clock=1_000,
                                genesis_hash="0xg"))
    d = Decision(kind=DecisionKind.REBALANCE, reason="r", code="rebalance")
    return j.open_cycle(s, d, Plan(decision=d, actions=actions), calls, dry)


def _mined(j: Journal, cid: int, c: Call, h: str, nonce: int, status: int = 1) -> None:
    j.record_signed(cid, c, h, nonce)
    j.record_mined(SentTx(call=c, tx_hash=h, nonce=nonce, status=status, gas_used=1, block_number=5,
                          effective_gas_price=1, block_hash="0xb"), confirmed=True)


PLAN = (Action(ActionKind.DEPOSIT, 1_000 * USDC), Action(ActionKind.TRADE, -WETH))
CALLS = [_call(ActionKind.DEPOSIT, "approve", 0), _call(ActionKind.DEPOSIT, "main", 0, 1_000 * USDC),
         _call(ActionKind.TRADE, "main", 1, -WETH)]


def _states(j: Journal, cid: int) -> list[tuple[str, int, str]]:
    return [(r["kind"], int(r["legs"]), r["state"]) for r in j.actions(cid)]


def test_actions_are_journaled_with_their_legs_and_settle_as_legs_are_mined(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    cid = _open(j, CALLS, PLAN)
    assert _states(j, cid) == [("deposit", 2, "planned"), ("trade", 1, "planned")]
    _mined(j, cid, CALLS[0], "0x01", 0)
    assert _states(j, cid)[0] == ("deposit", 2, "partial")
    _mined(j, cid, CALLS[1], "0x02", 1)
    _mined(j, cid, CALLS[2], "0x03", 2)
    assert _states(j, cid) == [("deposit", 2, "done"), ("trade", 1, "done")]
    j.close_cycle(cid, "acted", 0)
    assert j.unfinished_actions(31337, "0xg", snap().account.address) == []


def test_a_closed_cycle_leaves_its_part_done_action_unfinished_and_the_rest_not_sent(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    cid = _open(j, CALLS, PLAN)
    _mined(j, cid, CALLS[0], "0x01", 0)
    j.close_cycle(cid, "partial", 7)
    assert _states(j, cid) == [("deposit", 2, "unfinished"), ("trade", 1, "not_sent")]
    assert j.has_loose_ends(snap().account.address)
    [a] = j.unfinished_actions(31337, "0xg", snap().account.address)
    assert (a.kind, a.amount, a.legs_planned, a.seq, a.market) == (ActionKind.DEPOSIT, 1_000 * USDC, 2, 0, MARKET)
    assert [(lg.leg, lg.state) for lg in a.legs] == [("approve", "mined")]
    j.settle_action(a.id, "replanned", "why")
    assert j.unfinished_actions(31337, "0xg", snap().account.address) == []
    assert not j.has_loose_ends(snap().account.address)


def test_an_order_creating_leg_is_submitted_not_done_and_a_reverted_leg_fails_the_action(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    calls = [_call(ActionKind.TRADE, "main", 0, -WETH, creates_order=True), _call(ActionKind.WITHDRAW, "main", 1)]
    cid = _open(j, calls, (Action(ActionKind.TRADE, -WETH), Action(ActionKind.WITHDRAW, 5)))
    _mined(j, cid, calls[0], "0x01", 0)
    _mined(j, cid, calls[1], "0x02", 1, status=0)
    assert _states(j, cid) == [("trade", 1, "submitted"), ("withdraw", 1, "failed")]


def test_a_dry_run_journals_no_actions(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    cid = _open(j, CALLS, PLAN, dry=True)
    assert j.actions(cid) == []


def test_a_journal_from_before_legs_opens_and_gains_the_actions_table(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE cycles (id INTEGER PRIMARY KEY AUTOINCREMENT, started_at REAL NOT NULL, finished_at REAL,
          chain_id INTEGER NOT NULL, genesis_hash TEXT NOT NULL, account TEXT NOT NULL, market TEXT NOT NULL,
          block_number INTEGER, block_timestamp INTEGER, kind TEXT, code TEXT, reason TEXT,
          dry_run INTEGER NOT NULL DEFAULT 0, snapshot TEXT, plan TEXT, outcome TEXT NOT NULL DEFAULT 'started',
          exit_code INTEGER, error TEXT);
        CREATE TABLE txs (id INTEGER PRIMARY KEY AUTOINCREMENT, cycle_id INTEGER NOT NULL, contract TEXT NOT NULL,
          function TEXT NOT NULL, args TEXT NOT NULL, tx_hash TEXT NOT NULL UNIQUE, nonce INTEGER NOT NULL,
          signed_at REAL NOT NULL, status INTEGER, gas_used INTEGER, effective_gas_price INTEGER,
          block_number INTEGER);
        INSERT INTO cycles (started_at, chain_id, genesis_hash, account, market, outcome)
          VALUES (1, 31337, '0xg', '0xA', '0xM', 'acted');
        INSERT INTO txs (cycle_id, contract, function, args, tx_hash, nonce, signed_at, status)
          VALUES (1, 'market', 'transferMargin', '[5]', '0xold', 0, 1, 1);
    """)
    db.commit()
    db.close()
    j = Journal(path)
    assert j.actions(1) == []
    assert j.unfinished_actions(31337, "0xg", "0xA") == []
    assert j.txs(1)[0]["action_seq"] is None
    # the old transaction's receipt recorded again touches no action
    j.record_receipt("0xold", 1, 1, 1, 5)


# ------------------------------------------------------------------ on a chain

class _Stop(BaseException):
    """Stands for the process being killed (nothing catches it)."""


def _die_after_first_receipt(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {"n": 0}

    def fault(name: str) -> None:
        if name == "after_receipt":
            seen["n"] += 1
            if seen["n"] == 1:
                raise _Stop()
    monkeypatch.setattr(executor, "fault_point", fault)


def _first_cycle_dies_after_the_approval(hedge: Hedge, monkeypatch: pytest.MonkeyPatch) -> tuple[Journal, int]:
    _die_after_first_receipt(monkeypatch)
    with pytest.raises(_Stop):
        hedge.cycle()
    monkeypatch.undo()
    j = Journal(hedge.env["HEDGER_JOURNAL_PATH"])
    cid = int(j.cycles()[0]["id"])
    assert [(r["kind"], r["state"]) for r in j.actions(cid)] == [("deposit", "planned"), ("trade", "planned")]
    assert hedge.position() == (0, 0)
    return j, cid


def test_reference_market_replans_a_deposit_whose_approval_alone_was_mined(
        hedge: Hedge, monkeypatch: pytest.MonkeyPatch) -> None:
    j, cid = _first_cycle_dies_after_the_approval(hedge, monkeypatch)
    res = hedge.cycle()
    assert res.exit_code == 0, res.error
    [dep, trade] = j.actions(cid)
    assert (dep["state"], trade["state"]) == ("replanned", "not_sent")
    assert "only its approval was mined" in dep["note"]
    assert any("unfinished deposit" in n for n in res.notes)
    assert hedge.position()[0] == -10 * WETH                 # hedged once, after re-planning


class _Finishing(ReferenceMarket):
    """A venue whose part-done deposits must be finished (as an Aave borrow must be swapped)."""

    resumed: list[JournaledAction] = []

    def resume(self, action: JournaledAction) -> Resume:
        self.resumed.append(action)
        calls = self.build_calls((Action(ActionKind.DEPOSIT, action.amount, risk_reducing=True),),
                                 _allowance_of(self, action.amount), None)   # type: ignore[arg-type]
        return Resume("finish", "send the deposit its approval was for", tuple(c for c in calls if c.leg == "main"))


def _allowance_of(adapter: ReferenceMarket, amount: int) -> Any:
    from types import SimpleNamespace
    return SimpleNamespace(collateral_allowance=amount, address=None)


def test_reconcile_finishes_an_action_as_the_venue_says_before_planning(
        hedge: Hedge, monkeypatch: pytest.MonkeyPatch) -> None:
    j, cid = _first_cycle_dies_after_the_approval(hedge, monkeypatch)
    dep_amount = int(j.actions(cid)[0]["amount"])
    k = hedge.keeper()
    k.adapter = _Finishing(k.w3, k.adapter.market, k.adapter.collateral, two_step=False)
    monkeypatch.setattr(type(k.adapter), "build_calls", _market_for_build(k.adapter))
    notes = k.reconcile()
    [dep, _trade] = j.actions(cid)
    assert dep["state"] == "finished", notes
    assert [a.kind for a in _Finishing.resumed] == [ActionKind.DEPOSIT]
    assert [(lg.leg, lg.state) for lg in _Finishing.resumed[0].legs] == [("approve", "mined")]
    legs = [(t["leg"], t["state"]) for t in j.txs(cid) if t["action_seq"] == 0]
    assert legs == [("approve", "mined"), ("main", "mined")]  # the finishing leg journaled under its action
    assert hedge.position()[1] == dep_amount * 10**12          # the deposit arrived, before any new plan
    assert any("finished" in n for n in notes)


def _market_for_build(adapter: ReferenceMarket) -> Any:
    """build_calls with a market stand-in carrying only what a deposit needs."""
    from types import SimpleNamespace
    original = ReferenceMarket.build_calls

    def build(self: Any, actions: Any, account: Any, market: Any) -> list[Call]:
        return original(self, actions, account, market or SimpleNamespace(collateral_decimals=6, price=0))
    return build
