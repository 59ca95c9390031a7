"""Benchmark: one keeper cycle's reads for 1 and 10 markets, three ways, in the same run.

- sequential: one eth_call per view, one HTTP request each (the baseline)
- batch: the head, then every view in one JSON-RPC batch pinned to that block (the default)
- multicall: the head, then every view in one eth_call to Multicall3's aggregate3
- keeper: a whole keeper read (``MultiKeeper.read`` with HEDGER_MARKETS, through Multicall3),
  parsed into snapshots

HTTP round trips are counted by a loopback proxy in front of anvil, wall time is the
median of the repetitions. Prints the figures and the ratios against the baseline.

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


def specs_for(markets: list[str], d, account: str, w3: Web3) -> list[CallSpec]:  # noqa: ANN001
    out = feed_specs("oracle", d.oracle) + [CallSpec("spot.balance", d.spot, ERC20, "balanceOf", (account,)),
                                            CallSpec("spot.decimals", d.spot, ERC20, "decimals")]
    for i, m in enumerate(markets):
        ad = ReferenceMarket(w3, m, d.collateral, two_step=False)
        out += [CallSpec(f"{i}:{s.key}", s.address, s.abi, s.fn, s.args, s.optional)
                for s in ad.read_specs(account)]
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


def multi_keeper(url: str, w3: Web3, d, markets: list[str], account: str, tmp: Path) -> MultiKeeper:  # noqa: ANN001
    """The production read path: a HEDGER_MARKETS keeper (one spot token and feed per market here,
    all the reference deployment's), reading through Multicall3."""
    entries = [{"name": f"M{i}", "market": m, "oracle": d.oracle, "spot_token": d.spot} for i, m in enumerate(markets)]
    env = {"HEDGER_RPC_URL": url, "HEDGER_ACCOUNT": account, "HEDGER_COLLATERAL_TOKEN": d.collateral,
           "HEDGER_MARKETS": json.dumps(entries), "HEDGER_MULTICALL": d.multicall,
           "HEDGER_JOURNAL_PATH": str(tmp / f"bench-{len(markets)}.sqlite")}
    return MultiKeeper.from_settings(Settings.from_env(env, dotenv=False), w3=w3, use_journal=False)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-reads-"))
    with start_anvil() as node, FaultProxy(node.url) as proxy:
        w3d = Web3(Web3.HTTPProvider(node.url))
        dep = TxSender(w3d, KeySigner(Secret(dev_account(0).key.hex())))
        d = deploy_reference(dep)
        markets = [d.market] + [deploy_contract(dep, "PerpMarket", d.collateral, d.oracle, MarketParams().as_tuple())
                                for _ in range(9)]
        account = dev_account(1).address
        transact(dep, "ReferenceToken", d.spot, "mint", account, 10**19)
        w3 = Web3(Web3.HTTPProvider(proxy.url(), exception_retry_configuration=None))
        print(f"anvil {node.url}, {args.reps} repetitions each, median figures\n")
        print(f"{'markets':>7}  {'views':>5}  {'method':<10}  {'round trips':>11}  {'wall ms':>8}  "
              f"{'trips vs seq':>12}  {'time vs seq':>11}")
        for n in (1, 10):
            specs = specs_for(markets[:n], d, account, w3)
            batch = ChainReader(w3)
            multi = ChainReader(w3, multicall=d.multicall)
            keeper = multi_keeper(proxy.url(), w3, d, markets[:n], account, tmp)
            rows = [
                ("sequential", lambda: sequential(w3, batch, specs)),
                ("batch", lambda: batch.call_many(specs, batch.head(account).block_number)),
                ("multicall", lambda: multi.call_many(specs, multi.head(account).block_number)),
                ("keeper", keeper.read),
            ]
            base = None
            for label, fn in rows:
                fn()   # warm-up
                ms, trips = measure(label, fn, proxy, args.reps)
                if base is None:
                    base = (ms, trips)
                print(f"{n:>7}  {len(specs):>5}  {label:<10}  {trips:>11.0f}  {ms:>8.2f}  "
                      f"{trips / base[1]:>12.3f}  {ms / base[0]:>11.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
