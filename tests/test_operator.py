"""Operator controls: pause, daily limits, unwind."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from hedger.journal import Journal
from hedger.unwind import unwind
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
