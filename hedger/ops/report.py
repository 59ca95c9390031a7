"""`hedger report`: what hedging cost and earned, per day and in total, from the journal.

Between two consecutive cycles (chain time), with oracle prices P0 -> P1:
- spot PnL   = exposure x (P1 - P0)
- perp PnL   = position held x (P1 - P0)        (mark to market at the oracle)
- funding    = change of the market's accrued funding (reset when our transactions settle it),
               counted as received or paid interval by interval
- fees       = the trading fees the market charged, read from its events when our
               transaction traded; for a two-step order filled by a keeper, from the events of
               the keeper's transaction as the venue's adapter reads them when the order is
               found executed (``Adapter.order_fill``); the fee the policy expected (marked as
               an estimate) only when the venue's records do not say
- gas        = gas used x effective gas price of every mined transaction (in ETH; in USD when
               the oracle prices ETH, or at --eth-usd, or, with HEDGER_MARKETS, at the price
               an ETH market's oracle read in the same cycle)
On a lending venue (aave-v3) funding is the interest: paid on the debt (its scaled balance times
the growth of the debt index), received on the supplied collateral (the same with the income
index); fees are each swap's whole cost against the oracle: the pool's fee from the receipt, and
the fill premium, what the signer's equity at the oracle lost over the swap's interval beyond the
position's price move and the interest (a transfer to the signer in that interval counts in it).
Net = spot + perp + funding - fees - gas. Hedge cost = fees + gas - funding; in basis points
per year of the hedged notional (the position's notional integrated over time), but only over
a period of a day or more (over minutes a yearly rate means nothing): else the plain cost and
the period.
The perp's price PnL is split into realised (on size closed, average-cost, at the oracle) and
open (the position still held, marked at the oracle); apart from that, what the market has
settled into margin (it settles PnL and funding on each trade and margin transfer, while the
short stays open) and what is not settled yet.
Dry runs (`--dry-run`, paused, no signer) are journaled but never counted: they sent
nothing, and may have read another configuration.
Amounts are integers (E18) throughout; they become decimal strings only when printed.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hedger.core.fixedpoint import UNIT, fmt_units
from hedger.state.journal import Journal
from hedger.core.timefmt import duration

YEAR = 365 * 86_400
MIN_ANNUALISED_S = 86_400   # a yearly rate only over a day or more
POSITION_ACTIONS = ("trade", "deposit", "withdraw")   # a mined one settles PnL and funding into margin


@dataclass
class Row:
    day: str
    funding_received: int = 0  # E18 USD
    funding_paid: int = 0      # E18 USD (positive number)
    claimed: int = 0           # E18 USD claimed from the venue (GMX v2: funding received, capped price impact)
    fees: int = 0             # E18 USD paid
    fee_estimated: bool = False
    gas_wei: int = 0
    gas_usd: int = 0          # E18 USD (0 when gas cannot be priced)
    spot_pnl: int = 0
    perp_pnl: int = 0
    notional_seconds: int = 0  # E18 USD x seconds
    seconds: int = 0           # chain time covered (sum of the intervals between counted cycles)

    @property
    def funding(self) -> int:
        """Net funding, + received."""
        return self.funding_received - self.funding_paid

    @property
    def net(self) -> int:
        return self.spot_pnl + self.perp_pnl + self.funding + self.claimed - self.fees - self.gas_usd

    @property
    def cost(self) -> int:
        return self.fees + self.gas_usd - self.funding - self.claimed

    @property
    def cost_bps_per_year(self) -> int | None:
        """Integer bps/yr (rounded toward zero); None without hedged notional or over less than a day."""
        if self.notional_seconds <= 0 or self.seconds < MIN_ANNUALISED_S:
            return None
        return self.cost * 10_000 * YEAR // self.notional_seconds if self.cost >= 0 else \
            -((-self.cost) * 10_000 * YEAR // self.notional_seconds)

    def add(self, o: "Row") -> None:
        for f in ("funding_received", "funding_paid", "claimed", "fees", "gas_wei", "gas_usd", "spot_pnl", "perp_pnl",
                  "notional_seconds", "seconds"):
            setattr(self, f, getattr(self, f) + getattr(o, f))
        self.fee_estimated |= o.fee_estimated


@dataclass
class Report:
    days: list[Row]
    total: Row
    perp_unsettled: int = 0     # E18: PnL and funding not yet settled into margin, at the last reading
    perp_settled: int = 0       # E18: the rest of the perp's mark-to-market PnL and funding: settled into margin
    perp_realised: int = 0      # E18: price PnL realised on size closed (average cost, at the oracle)
    perp_open: int = 0          # E18: price PnL of the size still open (marked at the oracle)
    spot_unrealised: int = 0
    cycles: int = 0
    dry_cycles: int = 0         # journaled dry runs, not counted
    notes: list[str] = field(default_factory=list)
    interest_paid: int = 0      # E18 USD: on aave-v3, the debt's interest (in the funding-out column)
    interest_earned: int = 0    # E18 USD: on aave-v3, the collateral's supply interest (in the funding-in column)
    swap_premium: int = 0       # E18 USD: on aave-v3, the swaps' fills against the oracle beyond the pool fee (in fees)


RAY = 10**27


def lending_interest(s0: dict[str, Any], s1: dict[str, Any]) -> tuple[int, int] | None:
    """(interest paid on the debt, interest earned on the supplied collateral), E18 USD, between two
    readings of a lending venue (aave-v3: its indices grow every second), or None on another venue.
    The debt's interest is its scaled balance (as it stood at the later reading) times the growth of
    the debt index, at the later oracle price; the same for the collateral with the income index.
    The seconds between the first reading and its cycle's own transactions are counted on the
    later balance."""
    m0, m1, a1 = s0["market"], s1["market"], s1["account"]
    if not int(m0.get("debt_index") or 0) or not int(m1.get("debt_index") or 0):
        return None
    d0, d1, i0, i1 = (int(m0["debt_index"]), int(m1["debt_index"]), int(m0["supply_index"]),
                      int(m1["supply_index"]))
    paid_native = int(a1["scaled_debt"]) * max(0, d1 - d0) // RAY
    scaled_supply = int(a1["supplied"]) * RAY // i1 if i1 else 0
    earned_native = scaled_supply * max(0, i1 - i0) // RAY
    paid = paid_native * 10 ** (18 - int(m1["asset_decimals"])) * int(m1["price"]) // UNIT
    earned = earned_native * int(m1["collateral_price"]) // 10 ** int(m1["collateral_decimals"])
    return paid, earned


def lending_equity(sn: dict[str, Any]) -> int:
    """The signer's equity on a lending venue at a reading, E18 USD at its oracle prices: supplied
    and wallet collateral plus the wallet's asset, less the debt."""
    m, a = sn["market"], sn["account"]
    cp, cd = int(m["collateral_price"]), int(m["collateral_decimals"])
    asset = (int(a["asset_wallet"]) - int(a["debt"])) * 10 ** (18 - int(m["asset_decimals"]))
    return (int(a["supplied"]) + int(a["collateral_wallet"])) * cp // 10**cd + asset * int(m["price"]) // UNIT


def _n(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _day(ts: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def _prices_eth(sn: dict[str, Any]) -> bool:
    return "ETH" in (sn["oracle"].get("description") or "").upper()


def _price(sn: dict[str, Any]) -> int:
    o = sn["oracle"]
    return int(o["answer"]) * 10 ** (18 - int(o["decimals"]))


def eth_prices(j: Journal, account: str, market: str) -> dict[tuple[str, int], int]:
    """E18 ETH/USD by (genesis hash, block timestamp), as read by a market's cycles whose oracle prices ETH;
    empty for a market that prices something else. With ``HEDGER_MARKETS`` every market of a
    cycle reads at one block, so the ETH market's reading prices the gas of the others."""
    out: dict[tuple[str, int], int] = {}
    for c in j.db.execute("SELECT genesis_hash, block_timestamp, snapshot FROM cycles WHERE account=? AND market=? AND "
                          "snapshot IS NOT NULL AND dry_run=0", (account, market)):
        sn = json.loads(c["snapshot"])
        if _prices_eth(sn):
            out[(c["genesis_hash"], int(c["block_timestamp"]))] = _price(sn)
    return out


def build_report(j: Journal, account: str, market: str, *, eth_usd: int | None = None,
                 eth_usd_at: dict[tuple[str, int], int] | None = None) -> Report:
    """``eth_usd``: price all gas at this E18 ETH/USD; else a market whose oracle prices ETH prices
    its own, and ``eth_usd_at`` ((genesis hash, block timestamp) -> price, see :func:`eth_prices`) prices the
    rest, cycle by cycle."""
    eth_usd_at = eth_usd_at or {}
    everything = [c for c in j.db.execute(
        "SELECT * FROM cycles WHERE account=? AND market=? AND snapshot IS NOT NULL ORDER BY id", (account, market))]
    if not everything:
        return Report(days=[], total=Row(day="total"), notes=["the journal has no cycles for this account and market"])
    # one chain only: the newest (a restarted local chain is another chain)
    key = (everything[-1]["chain_id"], everything[-1]["genesis_hash"])
    everything = [c for c in everything if (c["chain_id"], c["genesis_hash"]) == key]
    # dry runs sent nothing, and may have read another configuration (another oracle): never counted
    cycles = [c for c in everything if not c["dry_run"]]
    dry = len(everything) - len(cycles)
    dry_note = [f"{_n(dry, 'dry-run cycle')} (--dry-run, paused, or no signer) in the journal, not counted"] if dry \
        else []
    if not cycles:
        return Report(days=[], total=Row(day="total"), dry_cycles=dry,
                      notes=["the journal has only dry-run cycles for this account and market: nothing was sent"])
    days: dict[str, Row] = {}
    snaps = [json.loads(c["snapshot"]) for c in cycles]

    def row(ts: int) -> Row:
        return days.setdefault(_day(ts), Row(day=_day(ts)))

    price_of = _price

    def exposure_of(sn: dict[str, Any]) -> int:
        e = sn["exposure"]
        d = int(e["spot_decimals"])
        return int(e["spot_balance"]) * 10 ** (18 - d) + int(e["extra"])

    notes: list[str] = []
    unfilled = 0
    for c, sn in zip(cycles, snaps):
        notes += [n for n in (c["notes"] or "").split("\n") if n.startswith("liquidated:")]
        txs = j.txs(int(c["id"]))
        r = row(int(c["block_timestamp"]))
        oracle_is_eth = _prices_eth(sn)
        cycle_eth = (eth_usd if eth_usd is not None else price_of(sn) if oracle_is_eth
                     else eth_usd_at.get((c["genesis_hash"], int(c["block_timestamp"]))))
        for t in txs:
            if t["state"] not in ("mined", "reverted"):
                continue
            wei = int(t["gas_used"] or 0) * int(t["effective_gas_price"] or 0)
            r.gas_wei += wei
            if cycle_eth is not None:
                r.gas_usd += wei * cycle_eth // UNIT
            if t["state"] == "mined" and t["action"] == "claim":
                # what the claim paid out, as the cycle read it claimable (collateral units, a USD stablecoin)
                r.claimed += int(t["amount"] or 0) * 10 ** (18 - int(sn["market"]["collateral_decimals"]))
            elif t["state"] == "mined" and t["fee"] is not None:
                r.fees += int(t["fee"])
            elif t["state"] == "mined" and t["creates_order"] and _filled(j, t):
                venue_fee = _fill_fee(j, t)
                if venue_fee is not None:     # charged in the executing (keeper's) transaction, as the venue said
                    r.fees += venue_fee
                else:
                    plan = json.loads(c["plan"] or "{}")
                    r.fees += int(plan.get("plan", {}).get("decision", {}).get("expected_fee", 0))
                    r.fee_estimated = True
            elif t["state"] == "mined" and t["creates_order"]:
                unfilled += 1
        if cycle_eth is None and any(t["gas_used"] for t in txs):
            notes.append("gas is shown in ETH only: the oracle does not price ETH (pass --eth-usd)")
    pos, avg, realised = int(snaps[0]["account"]["size"]), price_of(snaps[0]), 0   # average cost, at the oracle
    interest_paid = interest_earned = swap_premium = 0
    for (c0, s0), (c1, s1) in zip(zip(cycles, snaps), zip(cycles[1:], snaps[1:])):
        t0, t1 = int(c0["block_timestamp"]), int(c1["block_timestamp"])
        p0, p1 = price_of(s0), price_of(s1)
        txs0 = [t for t in j.txs(int(c0["id"])) if t["state"] == "mined"]
        size0 = int(s0["account"]["size"])
        main = [t for t in txs0 if t["leg"] == "main"]
        if any(t["creates_order"] and _filled(j, t) for t in main):
            held = int(s1["account"]["size"])      # a keeper filled it seconds after
            settled = True
        else:
            # an order created but never executed (cancelled, expired) moved nothing: no fill
            held = size0 + sum(int(t["amount"] or 0) for t in main if t["action"] == "trade" and not t["creates_order"])
            settled = any(t["action"] in POSITION_ACTIONS and not t["creates_order"] for t in main)
        r = row(t1)
        for size in (size0, held):        # what changed since the last counted cycle, then this cycle's trades
            pos, avg, gain = _average_cost(pos, avg, size, p0)
            realised += gain
        r.spot_pnl += exposure_of(s0) * (p1 - p0) // UNIT
        r.perp_pnl += held * (p1 - p0) // UNIT
        r.seconds += max(t1 - t0, 0)
        interest = lending_interest(s0, s1)
        if interest is not None:
            paid, earned = interest
            r.funding_paid += paid
            r.funding_received += earned
            interest_paid += paid
            interest_earned += earned
            if any(t["leg"] == "main" and t["action"] == "trade" for t in txs0):
                # the swap's whole cost against the oracle is what the equity lost beyond the price
                # move of the position held and the interest; less the pool's fee (already in fees),
                # the fill premium (a price impact, or a better fill when negative)
                x1 = (int(s1["account"]["asset_wallet"]) - int(s1["account"]["debt"])) * \
                    10 ** (18 - int(s1["market"]["asset_decimals"]))
                cost = x1 * (p1 - p0) // UNIT - paid + earned - (lending_equity(s1) - lending_equity(s0))
                pool_fee = sum(int(t["fee"] or 0) for t in txs0)
                r.fees += cost - pool_fee
                swap_premium += cost - pool_fee
        base = 0 if settled else int(s0["account"]["accrued_funding"])
        accrued = int(s1["account"]["accrued_funding"]) - base
        if accrued >= 0:
            r.funding_received += accrued
        else:
            r.funding_paid += -accrued
        r.notional_seconds += abs(held) * p0 // UNIT * max(t1 - t0, 0)
    if unfilled:
        notes.append(f"{_n(unfilled, 'two-step order')} created but not executed (cancelled, expired or still "
                     "pending): counted as no fill, no fee")
    total = Row(day="total")
    ordered = [days[d] for d in sorted(days)]
    for r in ordered:
        total.add(r)
    last = snaps[-1]["account"]
    unsettled = int(last["pnl"]) + int(last["accrued_funding"])
    return Report(days=ordered, total=total, perp_unsettled=unsettled,
                  perp_settled=total.perp_pnl + total.funding - unsettled, perp_realised=realised,
                  perp_open=total.perp_pnl - realised, spot_unrealised=total.spot_pnl,
                  cycles=len(cycles), dry_cycles=dry, notes=sorted(set(notes)) + dry_note,
                  interest_paid=interest_paid, interest_earned=interest_earned, swap_premium=swap_premium)


def _filled(j: Journal, t: Any) -> bool:
    """Did the order transaction ``t`` created execute, as the venue reported it (reconciliation)?
    A journal from before orders were tracked has no row for it: taken as filled, as it was then."""
    state = j.order_state(str(t["tx_hash"]))
    return state is None or state == "executed"


def _fill_fee(j: Journal, t: Any) -> int | None:
    """The fees the venue charged when it filled the order ``t`` created (None: not recorded)."""
    row = j.order_row(str(t["tx_hash"]))
    return None if row is None or row["fill_fee"] is None else int(row["fill_fee"])


def _average_cost(pos: int, avg: int, new: int, price: int) -> tuple[int, int, int]:
    """Position ``pos`` (E18, signed) at average entry ``avg`` becomes ``new`` at ``price``:
    (new size, new average entry, price PnL realised on the size closed)."""
    if new == pos:
        return pos, avg, 0
    if pos == 0 or (new > 0) == (pos > 0) and abs(new) > abs(pos):     # opening or growing
        return new, (pos * avg + (new - pos) * price) // new, 0
    if new == 0 or (new > 0) == (pos > 0):                             # reducing
        return new, avg, (pos - new) * (price - avg) // UNIT
    return new, price, pos * (price - avg) // UNIT                     # through zero: close, then open


COLUMNS = ["day", "funding_received_usd", "funding_paid_usd", "fees_usd", "gas_eth", "gas_usd", "spot_pnl_usd", "perp_pnl_usd", "net_usd",
           "hedge_cost_bps_per_year", "hedge_cost_usd", "period_s", "claimed_usd"]


def _values(r: Row) -> list[str]:
    bps = r.cost_bps_per_year
    return [r.day, fmt_units(r.funding_received, 18, 6).replace(",", ""),
            fmt_units(r.funding_paid, 18, 6).replace(",", ""),
            fmt_units(r.fees, 18, 6).replace(",", "") + ("~" if r.fee_estimated else ""),
            fmt_units(r.gas_wei, 18, 8).replace(",", ""), fmt_units(r.gas_usd, 18, 6).replace(",", ""),
            fmt_units(r.spot_pnl, 18, 6).replace(",", ""), fmt_units(r.perp_pnl, 18, 6).replace(",", ""),
            fmt_units(r.net, 18, 6).replace(",", ""), "" if bps is None else str(bps),
            fmt_units(r.cost, 18, 6).replace(",", ""), str(r.seconds), fmt_units(r.claimed, 18, 6).replace(",", "")]


def write_csv(rep: Report, path: Path) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for r in rep.days + [rep.total]:
            w.writerow(_values(r))


def _table_values(r: Row) -> list[str]:
    """A printed row: the CSV's values, the period readable, and no yearly rate under a day."""
    v = _values(r)
    return v[:9] + [v[10], duration(r.seconds), "-" if r.cost_bps_per_year is None else f"{r.cost_bps_per_year:,}"]


def print_report(rep: Report) -> None:
    head = ["day", "funding in", "funding out", "fees", "gas ETH", "gas USD", "spot PnL", "perp PnL", "net",
            "cost USD", "period", "cost bps/yr"]
    rows = [head] + [_table_values(r) for r in rep.days] + [_table_values(rep.total)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for n, r in enumerate(rows):
        print("  ".join(v.rjust(w) for v, w in zip(r, widths)))
        if n == 0 or n == len(rows) - 2:
            print("  ".join("-" * w for w in widths))
    def usd(v: int) -> str:
        return fmt_units(v, 18, 2) + " USD"
    print(f"\n{_n(rep.cycles, 'cycle')}" + (f" ({_n(rep.dry_cycles, 'dry run')} not counted)" if rep.dry_cycles else "")
          + ".")
    print(f"Perp price PnL: realised {usd(rep.perp_realised)} on size closed; {usd(rep.perp_open)} on the "
          "position still open (marked at the oracle).")
    print(f"Perp PnL and funding: {usd(rep.perp_settled)} settled into margin (the market settles them on every "
          f"trade and margin transfer, while the position stays open); {usd(rep.perp_unsettled)} not yet settled.")
    print(f"Spot: unrealised {usd(rep.spot_unrealised)} (mark to market; sales are not tracked).")
    if rep.total.claimed:
        print(f"Claimed from the venue: {usd(rep.total.claimed)} (funding received and capped price impact, which "
              "the venue holds apart from the collateral; counted in net and cost)")
    if rep.interest_paid or rep.interest_earned:
        print(f"Lending interest (the funding columns): paid {usd(rep.interest_paid)} on the debt, earned "
              f"{usd(rep.interest_earned)} on the supplied collateral; fees are the swaps' cost against the "
              f"oracle: the pool's fee and a fill premium of {usd(rep.swap_premium)} (price impact).")
    if rep.total.cost_bps_per_year is None and rep.total.seconds < MIN_ANNUALISED_S:
        print(f"cost bps/yr is shown over a day or more only: over {duration(rep.total.seconds)} the hedge cost "
              f"{usd(rep.total.cost)} (fees + gas - funding)")
    if any(r.fee_estimated for r in rep.days):
        print("~ fees of two-step orders filled by keepers are the policy's estimate")
    for n in rep.notes:
        print(f"note: {n}")
