"""`hedger report` against a real run: fees and gas exactly as the chain charged them."""

from __future__ import annotations

import csv
from pathlib import Path

from hedger.state.journal import Journal
from hedger.ops.report import build_report
from tests.conftest import USDC, WETH, Hedge
from tests.test_cli import BIN, run


def _run_a_few_days(hedge: Hedge) -> None:
    c = hedge.chain
    # another trader is net long: shorts receive funding
    c.deposit(3, 2_000_000 * USDC)
    c.trade(3, 5_000 * WETH)
    c.w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(20 * 10**9)])
    c.w3.provider.make_request("evm_mine", [])
    for price in (3000, 3300, 3600, 3100, 2700, 2900):
        hedge.cycle(HEDGER_COOLDOWN="0")
        c.advance(12 * 3600)
        c.set_price(price)
    hedge.cycle(HEDGER_COOLDOWN="0")


def test_report_matches_the_chain(hedge: Hedge, tmp_path: Path) -> None:
    _run_a_few_days(hedge)
    w3, m = hedge.chain.w3, hedge.chain.market
    j = Journal(hedge.env["HEDGER_JOURNAL_PATH"])
    rep = build_report(j, hedge.address, hedge.chain.d.market)
    # fees: exactly the PositionModified fees the market charged our account
    logs = m.events.PositionModified().get_logs(from_block=0, argument_filters={"account": hedge.address})
    assert rep.total.fees == sum(e["args"]["fee"] + e["args"]["keeperFee"] for e in logs) > 0
    # gas: exactly what our mined transactions cost
    hashes = [t["tx_hash"] for c in j.cycles(1000) for t in j.txs(c["id"]) if t["state"] == "mined"]
    receipts = [w3.eth.get_transaction_receipt(h) for h in hashes]
    assert rep.total.gas_wei == sum(r["gasUsed"] * r["effectiveGasPrice"] for r in receipts) > 0
    # shorts received funding in a long-skewed market, and paid none
    assert rep.total.funding_received > 0 and rep.total.funding_paid == 0
    assert rep.total.funding == rep.total.funding_received
    # 10 WETH held from 3000 to 2900: spot lost 1,000 USD, marked at the oracle
    assert rep.total.spot_pnl == 10 * (2900 - 3000) * 10**18
    # the hedge offsets it up to the band
    assert abs(rep.total.spot_pnl + rep.total.perp_pnl) < 150 * 10**18
    assert rep.total.net == rep.total.spot_pnl + rep.total.perp_pnl + rep.total.funding - rep.total.fees \
        - rep.total.gas_usd
    assert len(rep.days) >= 3 and sum(r.fees for r in rep.days) == rep.total.fees
    assert rep.total.cost_bps_per_year is not None
    assert rep.perp_settled + rep.perp_unsettled == rep.total.perp_pnl + rep.total.funding
    assert rep.perp_realised + rep.perp_open == rep.total.perp_pnl


def test_report_cli_table_and_csv(hedge: Hedge, tmp_path: Path) -> None:
    _run_a_few_days(hedge)
    out = tmp_path / "report.csv"
    p = run([str(BIN / "hedger"), "report", "--csv", str(out)], hedge.env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "cost bps/yr" in p.stdout and "total" in p.stdout and "realised" in p.stdout
    rows = list(csv.DictReader(out.open()))
    assert rows[-1]["day"] == "total" and len(rows) >= 4
    assert float(rows[-1]["fees_usd"]) > 0 and float(rows[-1]["gas_eth"]) > 0
    assert abs(sum(float(r["fees_usd"]) for r in rows[:-1]) - float(rows[-1]["fees_usd"])) < 1e-5


def _totals(rep) -> tuple[int, ...]:  # noqa: ANN001
    t = rep.total
    return (t.spot_pnl, t.perp_pnl, t.funding, t.fees, t.gas_wei, t.notional_seconds, rep.perp_settled,
            rep.perp_unsettled, rep.perp_realised)


def test_dry_runs_never_enter_the_figures(hedge: Hedge, tmp_path: Path) -> None:
    """Dry runs are journaled but not counted: here with another oracle (a 25% higher feed), which
    made a fully hedged book show thousands of dollars of PnL."""
    from hedger.sim.deploy import deploy_contract, transact
    _run_a_few_days(hedge)
    j = Journal(hedge.env["HEDGER_JOURNAL_PATH"])
    before = build_report(j, hedge.address, hedge.chain.d.market)
    feed = deploy_contract(hedge.chain.deployer, "PriceFeed", 8, "ETH / USD (other)", 1)
    transact(hedge.chain.deployer, "PriceFeed", feed, "setAnswer", 3625 * 10**8)
    for _ in range(2):
        hedge.chain.advance(3600)
        hedge.keeper(HEDGER_ORACLE=feed).cycle(dry_run=True)
    assert sum(1 for c in j.cycles(1000) if c["dry_run"]) == 2
    after = build_report(j, hedge.address, hedge.chain.d.market)
    assert _totals(after) == _totals(before)
    assert after.cycles == before.cycles and after.dry_cycles == 2
    assert any("2 dry-run cycles" in n and "not counted" in n for n in after.notes)


def test_no_yearly_rate_over_minutes(hedge: Hedge, tmp_path: Path) -> None:
    """A yearly cost over a few minutes means nothing: the table shows the plain cost and the period."""
    c = hedge.chain
    c.w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(20 * 10**9)])
    c.w3.provider.make_request("evm_mine", [])
    hedge.cycle()
    c.advance(300)
    c.set_price(3010)
    hedge.cycle()
    rep = build_report(Journal(hedge.env["HEDGER_JOURNAL_PATH"]), hedge.address, c.d.market)
    assert rep.total.seconds >= 300 and rep.total.seconds < 400
    assert rep.total.cost > 0 and rep.total.cost_bps_per_year is None
    p = run([str(BIN / "hedger"), "report"], hedge.env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    total = next(x for x in p.stdout.splitlines() if x.lstrip().startswith("total"))
    assert total.rstrip().endswith("-") and " 5m " in total
    assert "cost bps/yr is shown over a day or more only: over 5m" in p.stdout


def test_settled_into_margin_is_not_called_realised(hedge: Hedge, tmp_path: Path) -> None:
    """PnL the market settles into margin while the short stays open is "settled", not "realised";
    realised is the PnL of size closed."""
    c = hedge.chain
    hedge.cycle()                                       # short 10
    c.advance(60)
    c.set_price(3600)                                   # +20%: the short loses, the policy tops up
    res = hedge.cycle(HEDGER_COOLDOWN="0")
    assert "transferMargin" in [t.call.function for t in res.sent]
    c.advance(60)
    hedge.cycle(HEDGER_COOLDOWN="0")                    # reads the account after the top-up
    j = Journal(hedge.env["HEDGER_JOURNAL_PATH"])
    rep = build_report(j, hedge.address, c.d.market)
    assert rep.perp_realised == 0                       # nothing closed
    assert rep.perp_settled < -5_000 * 10**18           # the loss settled into margin by the top-up
    assert rep.perp_open == rep.total.perp_pnl == -6_000 * 10**18
    # sell half the spot: the short is halved, and half of the loss is realised
    c.call_as(1, "ReferenceToken", c.d.spot, "transfer", c.d.deployer, 5 * WETH)
    c.advance(60)
    c.set_price(3600)
    hedge.cycle(HEDGER_COOLDOWN="0")
    c.advance(60)
    c.set_price(3600)
    hedge.cycle(HEDGER_COOLDOWN="0")
    rep = build_report(j, hedge.address, c.d.market)
    assert rep.perp_realised == -3_000 * 10**18
    assert rep.perp_realised + rep.perp_open == rep.total.perp_pnl
    p = run([str(BIN / "hedger"), "report"], hedge.env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "settled into margin" in p.stdout and "Perp: realised" not in p.stdout
    assert "realised -3,000.00 USD on size closed" in p.stdout


def test_csv_path_checked_before_printing(hedge: Hedge, tmp_path: Path) -> None:
    hedge.cycle()
    p = run([str(BIN / "hedger"), "report", "--csv", "/nonexistent/dir/r.csv"], hedge.env, cwd=tmp_path)
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stdout == ""                               # no table printed before the error
    assert "--csv" in p.stderr and "/nonexistent/dir" in p.stderr and "Fix:" in p.stderr
    assert "unexpected" not in p.stderr


def test_an_order_cancelled_after_expiry_is_journaled_cancelled_and_never_counted_as_a_fill(hedge: Hedge) -> None:
    """Issue 10: a mined transaction that created an order is not a fill. An order nobody filled
    expires, is cancelled by its key (``cancelDelayedOrder``), and is journaled cancelled from what
    the market reports; the report counts no fill and no fee for it."""
    env = {"HEDGER_ORDER_MODE": "delayed", "HEDGER_COOLDOWN": "0"}
    res = hedge.cycle(**env)
    assert res.outcome == "acted" and [t.call.function for t in res.sent][-1] == "submitDelayedOrder"
    j = Journal(hedge.env["HEDGER_JOURNAL_PATH"])
    first = j.db.execute("SELECT * FROM orders").fetchone()
    assert first["state"] == "pending" and first["order_key"] == hedge.address   # submitted, not filled
    hedge.chain.advance(121)                         # past maxOrderDelay: no keeper filled it
    hedge.chain.set_price(3000)
    res = hedge.cycle(**env)
    assert res.decision.code == "cancel_expired_order" and res.decision.order_key == hedge.address
    assert [t.call.function for t in res.sent] == ["cancelDelayedOrder"]
    assert j.order_state(first["tx_hash"]) == "expired"                          # as the market reported it
    res = hedge.cycle(**env)                         # the order is gone and the position never moved
    assert j.order_state(first["tx_hash"]) == "cancelled"
    assert any("gone unfilled" in n and first["tx_hash"] in n for n in res.notes), res.notes
    assert hedge.position()[0] == 0
    rep = build_report(j, hedge.address, hedge.chain.d.market)
    assert rep.total.fees == 0 and not rep.total.fee_estimated                   # no fill, no fee
    assert rep.total.perp_pnl == 0 and rep.perp_realised == 0
    assert any("not executed" in n for n in rep.notes), rep.notes


def test_a_keeper_filled_orders_fee_is_the_venues_from_the_keepers_transaction(hedge: Hedge) -> None:
    """Issue 10: fees charged in the keeper's transaction (as on GMX) are taken from the venue's
    events through the adapter once the order is found executed, not the policy's estimate."""
    env = {"HEDGER_ORDER_MODE": "delayed", "HEDGER_COOLDOWN": "0"}
    res = hedge.cycle(**env)
    assert [t.call.function for t in res.sent][-1] == "submitDelayedOrder"
    estimate = res.decision.expected_fee
    hedge.chain.advance(20)
    hedge.chain.set_price(3030)                      # the keeper fills at a later price: another fee
    [keeper_tx] = hedge.fill_orders()
    from web3.logs import DISCARD
    ev = hedge.chain.market.events.PositionModified().process_receipt(
        hedge.chain.w3.eth.get_transaction_receipt(keeper_tx), errors=DISCARD)[0]["args"]
    charged = int(ev["fee"]) + int(ev["keeperFee"])
    assert charged != estimate                       # the fill moved the price: the estimate is not the fee
    res = hedge.cycle(**env)
    j = Journal(hedge.env["HEDGER_JOURNAL_PATH"])
    o = j.db.execute("SELECT * FROM orders").fetchone()
    assert o["state"] == "executed" and o["fill_tx"] == keeper_tx
    assert (int(o["fill_fee"]), int(o["fill_price"])) == (charged, int(ev["fillPrice"]))
    assert any(keeper_tx in n for n in res.notes), res.notes
    rep = build_report(j, hedge.address, hedge.chain.d.market)
    assert rep.total.fees == charged and not rep.total.fee_estimated
