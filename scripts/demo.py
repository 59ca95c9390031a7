"""`make demo`: the hedger keeping a spot ETH holding delta-neutral on a local chain.

Starts anvil, deploys the reference protocol, gives a demo account 10 WETH and
60,000 USDC, then moves the price (and the holding) step by step, running one
hedge cycle after each step -- the same `Keeper.cycle` that `hedger run-once`
runs -- and prints what the hedger saw and did. No RPC URL, no key needed: the
accounts are anvil's public development accounts.

    python scripts/demo.py [--mode direct|delayed] [--protocol reference|gmx-v2|aave-v3] [--keep]

With ``--protocol gmx-v2`` the same story runs on the GMX v2 stand-in (contracts/Gmx*.vy): every
change is an order that GMX's keeper (the stand-in's, at the feed's price) executes later: the
hedge opens and follows the holding, a rally tops up margin while an order is pending, an order
is cancelled by GMX (acceptable price missed) and re-planned, and `hedger unwind` closes it all.

With ``--protocol aave-v3`` it runs on the real Aave v3 and Uniswap v3 (deployed from their npm
artifacts): the short opens as borrow WETH, sell it on Uniswap, supply the USDC; it follows the
holding, a rally (feed and pool together) tops up collateral, a drop withdraws the excess, and
`hedger unwind` buys the debt back, repays it and withdraws everything.

The exit code is not 0 when a cycle failed or the unwind did not finish.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from web3 import Web3  # noqa: E402

from hedger.cli import print_status_table, status_dict  # noqa: E402
from hedger.config import Settings  # noqa: E402
from hedger.sim.deploy import deploy_reference, transact  # noqa: E402
from hedger.chain.executor import KeySigner, Secret, TxSender  # noqa: E402
from hedger.cycle.keeper import Keeper, fill_due_orders  # noqa: E402
from hedger.sim.localchain import dev_account, start_anvil  # noqa: E402
from hedger.core.model import INFINITE, leverage  # noqa: E402
from hedger.decide import policy  # noqa: E402

USDC, WETH = 10**6, 10**18

# (hours forward, ETH price in USD, change of the demo account's WETH holding, what happens)
STEPS = [
    (1, 3000, 0, "start: 10 WETH held, unhedged"),
    (1, 3090, 0, "+3%: nothing to do"),
    (1, 3120, 5, "the holder buys 5 WETH"),
    (1, 3900, 0, "rally +25%: the short loses, leverage rises"),
    (1, 4350, 0, "rally continues"),
    (1, 3400, 0, "drop -22%"),
    (1, 2500, -8, "crash -26%; the holder sells 8 WETH"),
    (1, 2550, 0, "calm"),
]


def line(k: Keeper) -> str:
    s = k.read()
    a = s.account
    price = s.oracle.price_e18 / 1e18
    lev = leverage(a.size, s.oracle.price_e18, a.margin)
    lev_s = "-" if lev == 0 else ("inf" if lev >= INFINITE else f"{lev / 1e18:.2f}x")
    liq = f"{a.liquidation_price / 1e18:,.0f}" if a.size else "-"
    hf = getattr(a, "health_factor", None)           # Aave's own measure, beside the leverage
    hf_s = "" if hf is None else " | HF " + ("-" if hf >= INFINITE else f"{hf / 1e18:.2f}")
    return (f"price {price:>8,.2f} | spot {s.exposure.total / 1e18:>6.2f} ETH | perp {a.size / 1e18:>+8.3f} | "
            f"margin {a.margin / 1e18:>10,.2f} | lev {lev_s:>5} | liq {liq:>6} | "
            f"delta {(s.exposure.total + a.size) / 1e18:>+7.3f} ETH{hf_s}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["direct", "delayed"], default="direct",
                    help="direct trades, or two-step orders filled by a protocol keeper")
    ap.add_argument("--protocol", choices=["reference", "gmx-v2", "aave-v3"], default="reference",
                    help="the reference market, the GMX v2 stand-in (every change an order GMX's keeper executes), "
                         "or the real Aave v3 and Uniswap v3 (borrow, sell, supply)")
    ap.add_argument("--keep", action="store_true", help="leave anvil running at the end (prints its URL)")
    args = ap.parse_args(argv)
    if args.protocol == "gmx-v2":
        return gmx_demo(args.keep)
    if args.protocol == "aave-v3":
        return aave_demo(args.keep)

    anvil = start_anvil()
    try:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        deployer = TxSender(w3, KeySigner(Secret(dev_account(0).key.hex())))
        d = deploy_reference(deployer)
        holder, protocol_keeper, other = dev_account(1), dev_account(2), dev_account(3)
        transact(deployer, "ReferenceToken", d.spot, "mint", holder.address, 10 * WETH)
        transact(deployer, "ReferenceToken", d.collateral, "mint", holder.address, 60_000 * USDC)
        # another trader is net long, so the market has skew and funding moves
        other_tx = TxSender(w3, KeySigner(Secret(other.key.hex())))
        transact(deployer, "ReferenceToken", d.collateral, "mint", other.address, 1_000_000 * USDC)
        transact(other_tx, "ReferenceToken", d.collateral, "approve", d.market, 1_000_000 * USDC)
        transact(other_tx, "PerpMarket", d.market, "transferMargin", 1_000_000 * USDC)
        transact(other_tx, "PerpMarket", d.market, "modifyPosition", 500 * WETH, 2**255)

        journal = Path(tempfile.mkdtemp(prefix="hedger-demo-")) / "journal.sqlite"
        env = {"HEDGER_RPC_URL": anvil.url, "HEDGER_PRIVATE_KEY": holder.key.hex(), "HEDGER_MARKET": d.market,
               "HEDGER_ORACLE": d.oracle, "HEDGER_SPOT_TOKEN": d.spot, "HEDGER_COLLATERAL_TOKEN": d.collateral,
               "HEDGER_SEQUENCER_FEED": d.sequencer_feed, "HEDGER_SEQUENCER_GRACE": "0",
               "HEDGER_ORDER_MODE": args.mode, "HEDGER_JOURNAL_PATH": str(journal)}
        keeper = Keeper.from_settings(Settings.from_env(env, dotenv=False))
        pk_sender = TxSender(w3, KeySigner(Secret(protocol_keeper.key.hex())))

        print(f"local chain {anvil.url} (chain id {d.chain_id}); market {d.market} ({args.mode} orders)")
        print(f"hedged account {holder.address}; policy: ratio 1.0, band 5%, leverage 2x in [1.5x, 3x]\n")
        failed: list[int] = []           # exit codes of cycles that did not end well
        for i, (hours, price, spot_change, what) in enumerate(STEPS, 1):
            w3.provider.make_request("evm_increaseTime", [hours * 3600])
            transact(deployer, "PriceFeed", d.oracle, "setAnswer", price * 10**8)
            if spot_change > 0:
                transact(deployer, "ReferenceToken", d.spot, "mint", holder.address, spot_change * WETH)
            elif spot_change < 0:
                transact(TxSender(w3, KeySigner(Secret(holder.key.hex()))), "ReferenceToken", d.spot, "transfer",
                         deployer.signer.address, -spot_change * WETH)
            print(f"step {i}: {what}")
            print(f"  saw:  {line(keeper)}")
            res = keeper.cycle()
            print(f"  did:  {res.decision.kind.value} [{res.decision.code}] {res.decision.reason}")
            for t in res.sent:
                print(f"        tx {t.call.contract}.{t.call.function}{t.call.args}  gas {t.gas_used:,}")
            if res.exit_code:
                failed.append(res.exit_code)
                print(f"        outcome {res.outcome} (exit {res.exit_code}): {res.error}")
            if args.mode == "delayed" and any(t.call.function == "submitDelayedOrder" for t in res.sent):
                w3.provider.make_request("evm_increaseTime", [15])
                w3.provider.make_request("evm_mine", [])
                filled = fill_due_orders(w3, keeper.adapter, pk_sender, [holder.address])
                print(f"        protocol keeper filled {len(filled)} order(s) after the 15 s minimum delay")
            print(f"  now:  {line(keeper)}\n")

        snap = keeper.read()
        print("hedger status:")
        print_status_table(status_dict(snap, policy.decide(snap, keeper.params(snap))))
        rows = keeper.journal.cycles() if keeper.journal else []
        acted = sum(1 for r in rows if r["outcome"] == "acted")
        print(f"\njournal {journal}: {len(rows)} cycles, {acted} acted, "
              f"{sum(1 for r in rows if r['outcome'] == 'held')} held")
        if failed:
            print(f"demo: exit {failed[0]} ({len(failed)} cycle(s) failed)")
        if args.keep:
            # what `hedger` needs to go on against this chain: every address (the keys are anvil's own
            # development keys, printed by anvil, never here); the holder is development account 1
            print(f"anvil left running at {anvil.url} (pid {anvil.process.pid}); holder {holder.address}; "
                  f"journal {journal}")
            print(json.dumps(d.as_dict()))
        return failed[0] if failed else 0
    finally:
        if not args.keep:
            anvil.stop()


def gmx_demo(keep: bool) -> int:
    """The story on the GMX v2 stand-in."""
    from hedger.cycle.unwind import unwind
    from hedger.sim.gmx_standin import deploy_gmx_standin

    anvil = start_anvil()
    try:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        deployer = TxSender(w3, KeySigner(Secret(dev_account(0).key.hex())))
        d = deploy_reference(deployer)
        holder, gmx_keeper = dev_account(1), dev_account(2)
        s = deploy_gmx_standin(deployer, usdc=d.collateral, keepers=(gmx_keeper.address,))
        transact(deployer, "ReferenceToken", d.collateral, "mint", s.position_engine, 10_000_000 * USDC)
        # borrowing and funding on, at the stand-in's defaults (GmxParams): the hedge pays borrowing
        # and, alone on its side, funding, settled by each order GMX's keeper executes
        transact(deployer, "ReferenceToken", d.spot, "mint", holder.address, 10 * WETH)
        transact(deployer, "ReferenceToken", d.collateral, "mint", holder.address, 60_000 * USDC)
        journal = Path(tempfile.mkdtemp(prefix="hedger-demo-")) / "journal.sqlite"
        env = {"HEDGER_RPC_URL": anvil.url, "HEDGER_PRIVATE_KEY": holder.key.hex(), "HEDGER_PROTOCOL": "gmx-v2",
               "HEDGER_MARKET": s.market, "HEDGER_ORACLE": d.oracle, "HEDGER_SPOT_TOKEN": d.spot,
               "HEDGER_COLLATERAL_TOKEN": d.collateral, "HEDGER_SEQUENCER_FEED": d.sequencer_feed,
               "HEDGER_SEQUENCER_GRACE": "0", "HEDGER_JOURNAL_PATH": str(journal), "HEDGER_COOLDOWN": "0",
               "HEDGER_GMX_EXCHANGE_ROUTER": s.exchange_router, "HEDGER_GMX_READER": s.reader}
        keeper = Keeper.from_settings(Settings.from_env(env, dotenv=False))
        k_sender = TxSender(w3, KeySigner(Secret(gmx_keeper.key.hex())))
        h_sender = TxSender(w3, KeySigner(Secret(holder.key.hex())))

        def price(usd: int) -> None:
            transact(deployer, "PriceFeed", d.oracle, "setAnswer", usd * 10**8)

        def gmx_executes(what: str = "") -> None:
            n = 0
            while n < 4:
                call = keeper.adapter.fill_order_call(holder.address)
                if call is None:
                    break
                k_sender.send(call.to, call.data)
                n += 1
            if n:
                print(f"        GMX's keeper acted on {n} order(s){what}")

        def cycle(what: str) -> None:
            _cycle(keeper, what, failed, value=True)

        failed: list[int] = []           # exit codes of cycles that did not end well
        print(f"local chain {anvil.url}; GMX v2 stand-in market {s.market} (ExchangeRouter {s.exchange_router})")
        print(f"hedged account {holder.address}; every change is an order GMX's keeper executes later\n")
        price(3000)
        print("step 1: 10 WETH held, unhedged")
        cycle("the hedge opens as one order (collateral with it)")
        gmx_executes()
        print(f"  now:  {line(keeper)}\n")
        print("step 2: the holder buys 5 WETH")
        transact(deployer, "ReferenceToken", d.spot, "mint", holder.address, 5 * WETH)
        cycle("the hedge follows the holding")
        gmx_executes()
        print(f"  now:  {line(keeper)}\n")
        print("step 3: the holder buys 1 WETH, then a rally to 4,300 before GMX's keeper acts")
        transact(deployer, "ReferenceToken", d.spot, "mint", holder.address, 1 * WETH)
        cycle("a size order, left pending")
        price(4300)
        cycle("rally: margin restored beside the pending order")
        gmx_executes(" (both, in the order it likes)")
        print(f"  now:  {line(keeper)}\n")
        print("step 4: the holder sells 8 WETH; the price jumps past the order's acceptable price")
        transact(h_sender, "ReferenceToken", d.spot, "transfer", deployer.signer.address, 8 * WETH)
        cycle("a reduction order")
        price(4500)
        gmx_executes(": cancelled, acceptable price missed")
        cycle("re-planned from the new state")
        gmx_executes()
        print(f"  now:  {line(keeper)}\n")
        print("step 5: hedger unwind")

        def say(msg: str) -> None:
            print("\n".join(f"  {ln[:150]}" for ln in msg.splitlines()))
            if msg.startswith("waiting for the pending order"):
                gmx_executes()

        r = unwind(keeper, timeout=60, poll=0.05, say=say)
        print(f"  unwind: {r.message} (exit {r.exit_code})")
        print(f"  now:  {line(keeper)}")
        rows = keeper.journal.cycles() if keeper.journal else []
        print(f"\njournal {journal}: {len(rows)} cycles, {sum(1 for x in rows if x['outcome'] == 'acted')} acted")
        return _ending(r.exit_code, failed, anvil if keep else None)
    finally:
        if not keep:
            anvil.stop()


def _cycle(keeper: Keeper, what: str, failed: list[int], value: bool = False) -> None:
    """One hedge cycle of the GMX and Aave stories, printed as the reference story prints its steps
    (``value``: each transaction's native value too, GMX's execution fee); a failed cycle's exit
    code goes to ``failed``."""
    print(f"  {what}")
    print(f"  saw:  {line(keeper)}")
    res = keeper.cycle()
    print(f"  did:  {res.decision.kind.value} [{res.decision.code}] {res.decision.reason}"
          if res.decision else "  did:  (no decision)")
    for t in res.sent:
        print(f"        tx {t.call.contract}.{t.call.function}  gas {t.gas_used:,}"
              + (f"  value {t.call.value} wei" if value else ""))
    for note in res.notes:
        print(f"        note: {note}")
    if res.exit_code:
        failed.append(res.exit_code)
        print(f"        outcome {res.outcome} (exit {res.exit_code}): {res.error}")


def _ending(unwind_code: int, failed: list[int], kept: Any) -> int:
    """The demo's exit code: the unwind's when it did not finish, else the first failed cycle's, else 0;
    said when not 0. ``kept``: the anvil left running (its URL printed), or None."""
    code = unwind_code or (failed[0] if failed else 0)
    if code:
        print(f"demo: exit {code} ({'unwind unfinished' if unwind_code else 'a cycle failed'})")
    if kept is not None:
        print(f"anvil left running at {kept.url} (pid {kept.process.pid})")
    return code


def aave_demo(keep: bool) -> int:
    """The story on the real Aave v3 and Uniswap v3, deployed from their npm artifacts."""
    from hedger.cycle.unwind import unwind
    from hedger.sim.aave_uniswap import arbitrage_pool, artifact, deploy_aave_uniswap, set_prices
    from hedger.sim.npm_artifacts import ArtifactDeployer

    anvil = start_anvil()
    try:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        admin, signer, trader, holder = (dev_account(i) for i in range(4))

        def sender(acct: object) -> TxSender:
            return TxSender(w3, KeySigner(Secret(acct.key.hex())))  # type: ignore[attr-defined]

        d = deploy_aave_uniswap(w3, sender=sender(admin))
        tokens = ArtifactDeployer(sender(trader))        # the tokens mint to anyone (local market)

        def mint_weth(to: str, amount: int) -> None:
            tokens.call(artifact("WETH9Mocked"), d.weth, "mint", to, amount)

        mint_weth(holder.address, 10 * WETH)
        tokens.call(artifact("MintableERC20"), d.usdc, "mint", signer.address, 100_000 * USDC)
        journal = Path(tempfile.mkdtemp(prefix="hedger-demo-")) / "journal.sqlite"
        # what a user sets (README, "On Aave v3"): the venue's addresses, the signer, and the holder
        # whose WETH is hedged; the pool's 30-minute TWAP as the second price; the band's defaults
        env = {"HEDGER_RPC_URL": anvil.url, "HEDGER_PRIVATE_KEY": signer.key.hex(), "HEDGER_PROTOCOL": "aave-v3",
               "HEDGER_MARKET": d.addresses_provider, "HEDGER_ORACLE": d.weth_feed, "HEDGER_SPOT_TOKEN": d.weth,
               "HEDGER_COLLATERAL_TOKEN": d.usdc, "HEDGER_SWAP_ROUTER": d.swap_router,
               "HEDGER_SWAP_FEE": str(d.fee), "HEDGER_SECOND_ORACLE": f"univ3:{d.uniswap_pool}",
               "HEDGER_HOLDER": holder.address, "HEDGER_JOURNAL_PATH": str(journal)}
        keeper = Keeper.from_settings(Settings.from_env(env, dotenv=False))
        failed: list[int] = []

        def market(usd: int) -> None:
            """The market moves to ``usd``: a trader swaps the Uniswap pool there, an hour passes
            (the pool's TWAP follows), and the Chainlink-style feed publishes it."""
            arbitrage_pool(sender(trader), d, usd * 10**8)
            w3.provider.make_request("evm_increaseTime", [3600])
            set_prices(sender(admin), d, usd * 10**8)

        def cycle(what: str) -> None:
            _cycle(keeper, what, failed)
            print(f"  now:  {line(keeper)}\n")

        print(f"local chain {anvil.url}; Aave v3 pool {d.pool}, Uniswap v3 WETH/USDC pool {d.uniswap_pool} "
              f"(deployed from npm artifacts: {d.transactions} txs, {d.gas_used:,} gas)")
        print(f"holder {holder.address} holds the WETH; the hedger signs from {signer.address} (100,000 USDC); "
              "band: health factor 1.6, top up below 1.35, withdraw above 2.0\n")
        market(3000)
        print("step 1: 10 WETH held, unhedged")
        cycle("the short opens: borrow WETH, sell it on Uniswap, supply the USDC as collateral")
        market(3090)
        print("step 2: +3%: nothing to do")
        cycle("inside the band")
        mint_weth(holder.address, 5 * WETH)
        market(3090)
        print("step 3: the holder buys 5 WETH")
        cycle("the hedge follows the holding")
        market(3900)
        print("step 4: rally +26%: the debt is worth more, the health factor falls below 1.35")
        cycle("the hedger tops up the collateral")
        market(2600)
        print("step 5: drop -33%: the health factor rises above 2.0")
        cycle("the hedger withdraws the excess")
        print("step 6: hedger unwind")

        said: list[str] = []
        print("  buy the debt back with withdrawn collateral, repay it all, withdraw the rest")
        print(f"  saw:  {line(keeper)}")
        r = unwind(keeper, timeout=60, poll=0.05, say=said.append)
        steps = {f"{c.decision.kind.value} [{c.decision.code}] {c.decision.reason}" for c in r.cycles if c.decision}
        for msg in said:                     # what the unwind said beside its steps (none on a direct venue)
            if msg.splitlines()[0] not in steps:
                print(f"        note: {msg}")
        for c in r.cycles:                   # each step, as the cycles above
            if c.decision:
                print(f"  did:  {c.decision.kind.value} [{c.decision.code}] {c.decision.reason}")
            for t in c.sent:
                print(f"        tx {t.call.contract}.{t.call.function}  gas {t.gas_used:,}")
            if c.exit_code:
                failed.append(c.exit_code)
                print(f"        outcome {c.outcome} (exit {c.exit_code}): {c.error}")
        print(f"  unwind: {r.message} (exit {r.exit_code})")
        print(f"  now:  {line(keeper)}\n")

        snap = keeper.read()
        print("hedger status:")
        st = status_dict(snap, policy.decide(snap, keeper.params(snap)))
        st["paused"] = keeper.paused()       # as `hedger status` shows it: unwound, until `hedger resume`
        print_status_table(st)
        rows = keeper.journal.cycles() if keeper.journal else []
        print(f"\njournal {journal}: {len(rows)} cycles, {sum(1 for x in rows if x['outcome'] == 'acted')} acted, "
              f"{sum(1 for x in rows if x['outcome'] == 'held')} held")
        return _ending(r.exit_code, failed, anvil if keep else None)
    finally:
        if not keep:
            anvil.stop()


if __name__ == "__main__":
    sys.exit(main())
