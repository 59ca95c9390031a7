"""Benchmark: one keeper cycle's reads for 1 and 10 markets, several ways, in the same run.

- sequential: one eth_call per view, one HTTP request each (the baseline)
- batch: the head, then every view in one JSON-RPC batch pinned to that block (the default)
- multicall: the head, then every view in one eth_call to Multicall3's aggregate3
- keeper: a whole keeper read (``MultiKeeper.read`` with HEDGER_MARKETS, through Multicall3),
  parsed into snapshots
- staged: the same with a venue that reads in two stages (``tests/staged.py``: stage 2 asks
  each market's own feed, whose address stage 1 returned), against its own sequential
  baseline (``seq-staged``: the views of both stages, one request each)

Each market reads a price feed of its own. HTTP round trips are counted by a loopback
proxy in front of anvil, wall time is the median of the repetitions. Prints the figures
and the ratios against the baseline of the same views.

    .venv/bin/python bench/reads.py [--reps 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from web3 import Web3  # noqa: E402

from hedger.chain.abi import ERC20  # noqa: E402
from hedger.config import Settings  # noqa: E402
from hedger.cycle.multimarket import MultiKeeper  # noqa: E402
from hedger.sim.deploy import MarketParams, deploy_contract, deploy_reference, transact  # noqa: E402
from hedger.chain.executor import KeySigner, Secret, TxSender  # noqa: E402
from hedger.sim.localchain import dev_account, start_anvil  # noqa: E402
from hedger.chain.oracle import feed_specs  # noqa: E402
from hedger.protocols.reference.adapter import ReferenceMarket  # noqa: E402
from hedger.chain.reader import CallSpec, ChainReader  # noqa: E402
from tests.rpcproxy import FaultProxy  # noqa: E402
from tests.staged import StagedMarket, use_staged  # noqa: E402


def specs_for(markets: list[tuple[str, str]], d, account: str, w3: Web3,  # noqa: ANN001
              staged: bool = False) -> list[CallSpec]:
    """Every view of a cycle over ``markets`` ((market, its feed) each); ``staged``: with the
    staged venue's second-stage views too (formed from the market's feed address)."""
    out = [CallSpec("spot.balance", d.spot, ERC20, "balanceOf", (account,)),
           CallSpec("spot.decimals", d.spot, ERC20, "decimals")]
    for i, (m, feed) in enumerate(markets):
        ad = (StagedMarket if staged else ReferenceMarket)(w3, m, d.collateral, two_step=False)
        views = feed_specs("oracle", feed) + ad.read_specs(account)
        if staged:
            views += ad.read_stage2(account, {"m.feed": feed})
        out += [CallSpec(f"{i}:{s.key}", s.address, s.abi, s.fn, s.args, s.optional) for s in views]
    return out


def sequential(w3: Web3, reader: ChainReader, specs: list[CallSpec]) -> None:
    block = w3.eth.block_number
    for s in specs:
        fn = reader._contract(s.address, s.abi).get_function_by_name(s.fn)(*s.args)
        fn.call(block_identifier=block)


def measure(label: str, fn, proxy: FaultProxy, reps: int) -> tuple[float, float]:  # noqa: ANN001
    times = []
    trips = []
    for _ in range(reps):
        before = proxy.http_requests
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        trips.append(proxy.http_requests - before)
    return statistics.median(times) * 1000, statistics.median(trips)


def multi_keeper(url: str, w3: Web3, d, markets: list[tuple[str, str]], account: str, tmp: Path,  # noqa: ANN001
                 staged: bool = False) -> MultiKeeper:
    """The production read path: a HEDGER_MARKETS keeper (the reference deployment's spot token, each
    market's own feed), reading through Multicall3; ``staged``: every market's venue in two stages."""
    entries = [{"name": f"M{i}", "market": m, "oracle": feed, "spot_token": d.spot}
               for i, (m, feed) in enumerate(markets)]
    env = {"HEDGER_RPC_URL": url, "HEDGER_ACCOUNT": account, "HEDGER_COLLATERAL_TOKEN": d.collateral,
           "HEDGER_MARKETS": json.dumps(entries), "HEDGER_MULTICALL": d.multicall,
           "HEDGER_JOURNAL_PATH": str(tmp / f"bench-{len(markets)}.sqlite")}
    mk = MultiKeeper.from_settings(Settings.from_env(env, dotenv=False), w3=w3, use_journal=False)
    if staged:
        for k in mk.keepers.values():
            use_staged(k)
    return mk


def own_feed_market(dep: TxSender, d, usd: int) -> tuple[str, str]:  # noqa: ANN001
    """One more market on the reference collateral, reading a feed of its own: (market, feed)."""
    feed = deploy_contract(dep, "PriceFeed", 8, "ASSET / USD", 1)
    transact(dep, "PriceFeed", feed, "setAnswer", usd * 10**8)
    return deploy_contract(dep, "PerpMarket", d.collateral, feed, MarketParams().as_tuple()), feed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-reads-"))
    with start_anvil() as node, FaultProxy(node.url) as proxy:
        w3d = Web3(Web3.HTTPProvider(node.url))
        dep = TxSender(w3d, KeySigner(Secret(dev_account(0).key.hex())))
        d = deploy_reference(dep)
        markets = [(d.market, d.oracle)] + [own_feed_market(dep, d, 3000 + 100 * i) for i in range(1, 10)]
        account = dev_account(1).address
        transact(dep, "ReferenceToken", d.spot, "mint", account, 10**19)
        w3 = Web3(Web3.HTTPProvider(proxy.url(), exception_retry_configuration=None))
        print(f"anvil {node.url}, {args.reps} repetitions each, median figures\n")
        print(f"{'markets':>7}  {'views':>5}  {'method':<10}  {'round trips':>11}  {'wall ms':>8}  "
              f"{'trips vs seq':>12}  {'time vs seq':>11}")
        for n in (1, 10):
            specs = specs_for(markets[:n], d, account, w3)
            staged_specs = specs_for(markets[:n], d, account, w3, staged=True)
            batch = ChainReader(w3)
            multi = ChainReader(w3, multicall=d.multicall)
            keeper = multi_keeper(proxy.url(), w3, d, markets[:n], account, tmp)
            staged = multi_keeper(proxy.url(), w3, d, markets[:n], account, tmp, staged=True)
            groups = [[   # each group's first row is the baseline of its ratios
                ("sequential", specs, lambda: sequential(w3, batch, specs)),
                ("batch", specs, lambda: batch.call_many(specs, batch.head(account).block_number)),
                ("multicall", specs, lambda: multi.call_many(specs, multi.head(account).block_number)),
                ("keeper", specs, keeper.read),
            ], [
                ("seq-staged", staged_specs, lambda: sequential(w3, batch, staged_specs)),
                ("staged", staged_specs, staged.read),
            ]]
            for rows in groups:
                base = None
                for label, views, fn in rows:
                    fn()   # warm-up
                    ms, trips = measure(label, fn, proxy, args.reps)
                    if base is None:
                        base = (ms, trips)
                    print(f"{n:>7}  {len(views):>5}  {label:<10}  {trips:>11.0f}  {ms:>8.2f}  "
                          f"{trips / base[1]:>12.3f}  {ms / base[0]:>11.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
