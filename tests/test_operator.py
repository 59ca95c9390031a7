"""Operator controls: pause, daily limits, unwind."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from hedger.state.journal import Journal
from hedger.cycle.unwind import unwind
from tests.conftest import USDC, WETH, Hedge
from tests.test_cli import BIN, run


def hedger(env: dict[str, str], tmp: Path, *args: str):  # noqa: ANN201
    return run([str(BIN / "hedger"), *args], env, cwd=tmp)


def test_pause_reads_and_reports_but_sends_nothing(hedge: Hedge, tmp_path: Path) -> None:
    assert hedger(hedge.env, tmp_path, "pause", "--reason", "audit").returncode == 0
    n = hedge.nonce()
    p = hedger(hedge.env, tmp_path, "run-once", "--json")
    out = json.loads(p.stdout)
    assert p.returncode == 0 and out["outcome"] == "paused"
    assert any("paused by the operator" in x and "audit" in x for x in out["notes"])
    assert any("modifyPosition" in c for c in out["calls"])          # what it would do is reported
    assert hedge.nonce() == n and hedge.position() == (0, 0)
    st = hedger(hedge.env, tmp_path, "status")
    assert "YES since" in st.stdout and "audit" in st.stdout
    assert hedger(hedge.env, tmp_path, "resume").returncode == 0
    assert json.loads(hedger(hedge.env, tmp_path, "run-once", "--json").stdout)["outcome"] == "acted"
    assert hedge.position()[0] == -10 * WETH


def test_a_pause_of_a_market_the_journal_never_hedged_is_warned_about(hedge: Hedge, tmp_path: Path) -> None:
    """A mistyped HEDGER_MARKET pauses a market nothing hedges while the keeper goes on with the real
    one: the pause still happens (it may be a new market), and a warning names the markets known."""
    assert hedger(hedge.env, tmp_path, "run-once").returncode == 0          # the journal knows the real one
    ok = hedger(hedge.env, tmp_path, "pause", "--reason", "audit")
    assert ok.returncode == 0 and "warning" not in ok.stderr
    typo = {**hedge.env, "HEDGER_MARKET": hedge.chain.d.oracle}              # another address of the set-up
    p = hedger(typo, tmp_path, "pause", "--reason", "audit")
    assert p.returncode == 0 and "warning: the journal has no cycle" in p.stderr, p.stderr
    assert hedge.chain.d.market in p.stderr and "check HEDGER_MARKET" in p.stderr


def test_daily_notional_limit_holds_growth_not_top_ups(hedge: Hedge) -> None:
    limit = {"HEDGER_DAILY_MAX_NOTIONAL_USD": "40000", "HEDGER_COOLDOWN": "0"}
    assert hedge.cycle(**limit).outcome == "acted"                  # 30,000 traded
    hedge.chain.mint_weth(hedge.address, 5 * WETH)                  # +15,000 would pass 40,000
    res = hedge.cycle(**limit)
    assert res.outcome == "held_limit" and not res.sent
    assert "daily notional limit" in res.decision.reason and res.decision.code == "daily_limit"
    assert hedge.position()[0] == -10 * WETH
    # a rally: the top-up (risk-reducing) still goes, the growth still waits
    hedge.chain.set_price(4000)
    res = hedge.cycle(**limit)
    assert res.outcome == "acted" and [t.call.function for t in res.sent] == ["approve", "transferMargin"]
    assert hedge.position()[0] == -10 * WETH
    # the next UTC day (chain time): the growth goes
    hedge.chain.advance(86_400)
    hedge.chain.set_price(4000)
    res = hedge.cycle(**limit)
    assert res.outcome == "acted" and hedge.position()[0] == -15 * WETH


def test_daily_gas_limit(hedge: Hedge) -> None:
    hedge.chain.w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(50 * 10**9)])
    hedge.chain.w3.provider.make_request("evm_mine", [])
    limit = {"HEDGER_DAILY_MAX_GAS_ETH": "0.001", "HEDGER_COOLDOWN": "0"}
    assert hedge.cycle(**limit).outcome == "acted"                   # ~400k gas at ~50 gwei: 0.02 ETH
    spent = Journal(hedge.env["HEDGER_JOURNAL_PATH"]).spent(31337, hedge.keeper().read().chain.genesis_hash,
                                                             hedge.address, 0)[1]
    assert spent > 10**15
    hedge.chain.mint_weth(hedge.address, 5 * WETH)
    res = hedge.cycle(**limit)
    assert res.outcome == "held_limit" and "daily gas limit" in res.decision.reason


def test_unwind_closes_and_withdraws_through_the_executor(hedge: Hedge, tmp_path: Path) -> None:
    hedge.cycle()
    wallet0 = hedge.chain.usdc.functions.balanceOf(hedge.address).call()
    p = hedger(hedge.env, tmp_path, "unwind")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "unwound" in p.stdout
    size, margin = hedge.position()
    assert size == 0 and margin < 10**12                            # under one USDC unit of dust
    wallet = hedge.chain.usdc.functions.balanceOf(hedge.address).call()
    assert wallet > wallet0 + 14_900 * USDC                         # the margin came back, minus fees
    j = Journal(hedge.env["HEDGER_JOURNAL_PATH"])
    fns = [t["function"] for c in reversed(j.cycles()) for t in j.txs(c["id"])]
    assert fns[-2:] == ["modifyPosition", "transferMargin"]          # close first, then withdraw


def test_unwind_honours_a_pending_two_step_order(hedge: Hedge) -> None:
    env = {"HEDGER_ORDER_MODE": "delayed"}
    hedge.cycle(**env)
    hedge.chain.advance(15)
    hedge.fill_orders()
    hedge.chain.mint_weth(hedge.address, 5 * WETH)
    hedge.cycle(**env, HEDGER_COOLDOWN="0")                          # a second order, left pending
    assert hedge.chain.market.functions.delayedOrders(hedge.address).call()[0] != 0
    stop = threading.Event()

    def protocol_keeper() -> None:                                   # fills due orders now and then
        while not stop.is_set():
            time.sleep(0.5)
            hedge.chain.advance(5)
            hedge.fill_orders()
    t = threading.Thread(target=protocol_keeper, daemon=True)
    t.start()
    try:
        r = unwind(hedge.keeper(**env), timeout=120, poll=0.2, say=lambda _m: None)
    finally:
        stop.set()
        t.join()
    assert r.done and r.exit_code == 0, r.message
    submits = [c for c in r.cycles for s in c.sent if s.call.function == "submitDelayedOrder"]
    assert len(submits) == 1                                         # the close, after the pending one filled
    size, margin = hedge.position()
    assert size == 0 and margin < 10**12


def test_an_unwind_prints_the_fill_of_the_order_it_waited_for(hedge: Hedge) -> None:
    """The unwind's steps reconcile the journal as every cycle does (an order found filled, its price
    and fees), but printed none of it (run-once prints them as `reconciled:` lines); now it does. The
    journal holds no order as pending once it is done."""
    env = {"HEDGER_ORDER_MODE": "delayed"}
    hedge.cycle(**env)
    hedge.chain.advance(15)
    hedge.fill_orders()

    def keeper_fills(_order: object) -> None:                        # the protocol's keeper, at once
        hedge.chain.advance(15)
        hedge.fill_orders()
    said: list[str] = []
    r = unwind(hedge.keeper(**env), timeout=60, poll=0.0, say=said.append, wait=keeper_fills)
    assert r.done and hedge.position()[0] == 0, r.message
    d = hedge.chain.d
    j = Journal(hedge.env["HEDGER_JOURNAL_PATH"])
    assert j.open_orders(31337, hedge.keeper().reader.head().genesis_hash, hedge.address, d.market) == []
    assert any("was filled" in line for line in said), said


def test_unwind_stays_unwound_until_resume(hedge: Hedge, tmp_path: Path) -> None:
    """After `unwind`, no cycle reopens the hedge: the account stays paused (reason: unwound)."""
    hedge.cycle()
    p = hedger(hedge.env, tmp_path, "unwind")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "stays paused" in p.stdout and "hedger resume" in p.stdout
    size, margin = hedge.position()
    assert size == 0 and margin < 10**12
    n = hedge.nonce()
    p = hedger(hedge.env, tmp_path, "run-once", "--json")
    out = json.loads(p.stdout)
    assert p.returncode == 0 and out["outcome"] == "paused"
    assert any("unwound" in x for x in out["notes"]), out["notes"]
    assert hedge.nonce() == n and hedge.position()[0] == 0          # nothing sent, the short not reopened
    st = hedger(hedge.env, tmp_path, "status", "--json")
    assert json.loads(st.stdout)["paused"]["reason"] == "unwound"
    assert hedger(hedge.env, tmp_path, "resume").returncode == 0
    assert json.loads(hedger(hedge.env, tmp_path, "run-once", "--json").stdout)["outcome"] == "acted"
    assert hedge.position()[0] == -10 * WETH


def test_unwind_works_while_paused(hedge: Hedge, tmp_path: Path) -> None:
    """The natural order: pause first, then unwind. Pausing stops the hedger, not the operator's exit."""
    hedge.cycle()
    assert hedger(hedge.env, tmp_path, "pause", "--reason", "leaving").returncode == 0
    p = hedger(hedge.env, tmp_path, "unwind")
    assert p.returncode == 0, p.stdout + p.stderr
    size, margin = hedge.position()
    assert size == 0 and margin < 10**12
    pause = Journal(hedge.env["HEDGER_JOURNAL_PATH"]).get_control(hedge.address, hedge.chain.d.market, "pause")
    assert pause is not None and pause["reason"] == "unwound"


def test_unwind_dry_run_neither_sends_nor_pauses(hedge: Hedge, tmp_path: Path) -> None:
    hedge.cycle()
    n = hedge.nonce()
    p = hedger(hedge.env, tmp_path, "unwind", "--dry-run")
    assert p.returncode == 0 and "nothing was sent" in p.stdout, p.stdout + p.stderr
    assert hedge.nonce() == n and hedge.position()[0] == -10 * WETH
    assert Journal(hedge.env["HEDGER_JOURNAL_PATH"]).get_control(hedge.address, hedge.chain.d.market,
                                                                 "pause") is None


def test_unwind_that_sends_nothing_never_exits_7(hedge: Hedge, tmp_path: Path) -> None:
    """Exit 7 means "some steps were mined": an unwind that could not send anything says why with
    another code (13: nothing failed, run it again later; a refusal: its own code)."""
    env = {**hedge.env, "HEDGER_ORDER_MODE": "delayed"}
    hedge.cycle(HEDGER_ORDER_MODE="delayed")                         # an order left pending (no keeper)
    n = hedge.nonce()
    p = hedger(env, tmp_path, "unwind", "--timeout", "1")
    assert p.returncode == 13, p.stdout + p.stderr
    assert "still pending" in p.stderr and "--timeout" in p.stderr
    assert hedge.nonce() == n
    # a stale oracle: refused (3), nothing sent; still paused, so no cycle reopens anything meanwhile
    hedge.chain.advance(4000)
    p = hedger(hedge.env, tmp_path, "unwind")
    assert p.returncode == 3, p.stdout + p.stderr
    assert hedge.nonce() == n
    pause = Journal(hedge.env["HEDGER_JOURNAL_PATH"]).get_control(hedge.address, hedge.chain.d.market, "pause")
    assert pause is not None and pause["reason"].startswith("unwind unfinished")


def test_an_unwind_held_by_the_fee_ceiling_says_so(hedge: Hedge, tmp_path: Path) -> None:
    """The withdrawal after the close is risk-increasing: above HEDGER_MAX_FEE_GWEI it is held. unwind
    exited 13 with "cannot go further now: ... withdraw 20,991.80 excess collateral" and no word of why;
    now the message names the ceiling (the fix: wait, or raise it)."""
    hedge.cycle()
    p = hedger({**hedge.env, "HEDGER_MAX_FEE_GWEI": "0.01"}, tmp_path, "unwind")
    assert p.returncode == 13, p.stdout + p.stderr
    assert hedge.position()[0] == 0                                  # the close went (risk-reducing)
    assert "cannot go further now" in p.stderr and "HEDGER_MAX_FEE_GWEI" in p.stderr


class _ChainClock:
    """Stands in for the `time` module inside hedger.cycle.unwind: each poll's sleep moves chain time
    (and this clock) forward instead of waiting, as blocks would come on a live chain."""

    def __init__(self, hedge: Hedge) -> None:
        self.hedge = hedge
        self.slept = 0.0
        self.sleeps = 0

    def monotonic(self) -> float:
        return time.monotonic() + self.slept

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.sleeps += 1
        self.hedge.chain.advance(max(int(seconds), 1))


def test_unwind_waits_for_a_pending_order_until_its_expiry_then_cancels(hedge: Hedge, monkeypatch) -> None:  # noqa: ANN001
    """Delayed mode and no protocol keeper: the order can only expire (120 s after submission).
    The unwind waits that long (polling every 2 s), not a fixed number of steps, then cancels
    the order and withdraws the margin."""
    import hedger.cycle.unwind as unwind_mod
    env = {"HEDGER_ORDER_MODE": "delayed"}
    hedge.cycle(**env)                                               # deposit + an order nobody fills
    order = hedge.chain.market.functions.delayedOrders(hedge.address).call()
    assert order[0] != 0
    clock = _ChainClock(hedge)
    monkeypatch.setattr(unwind_mod, "time", clock)
    said: list[str] = []
    r = unwind(hedge.keeper(**env), timeout=600, poll=2.0, say=said.append)
    assert r.done and r.exit_code == 0, r.message
    assert clock.slept > 100                                         # waited past the old 50-step limit
    assert sum("waiting for the pending order" in m for m in said) == 1   # said once, not at every poll
    fns = [s.call.function for c in r.cycles for s in c.sent]
    assert fns[0] == "cancelDelayedOrder" and "submitDelayedOrder" not in fns and fns[-1] == "transferMargin"
    assert hedge.position()[0] == 0 and hedge.position()[1] < 10**12
    assert hedge.chain.market.functions.delayedOrders(hedge.address).call()[0] == 0
