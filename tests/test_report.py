"""`hedger report` against a real run: fees and gas exactly as the chain charged them."""

from __future__ import annotations

import csv
from pathlib import Path

from hedger.journal import Journal
from hedger.report import build_report
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
    assert rep.perp_realised + rep.perp_unrealised == rep.total.perp_pnl + rep.total.funding


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
