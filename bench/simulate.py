"""Benchmark: simulated steps per second, with the simulation's own moves as the baseline.

Measured in the same run, on the same forked chain:
- harness: every step's market moves (time, feed price, other traders, liquidation check,
  base fee, the metrics read) with the keeper cycle skipped: the baseline;
- keeper, 1 process: the same steps with one production keeper cycle each (default policy);
- keeper, N processes: N times the jobs over N worker processes, each with its own chains
  (chain start-up included).

    .venv/bin/python bench/simulate.py [--steps 48] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hedger.sim.simulate import Job, Runner, SimChain, SimOptions, policies, run_jobs  # noqa: E402
from hedger.core.types import PolicyParams  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    pols = policies(PolicyParams())
    harness = replace(pols["default"], name="harness", interval_s=10**12)   # keeper at step 0 only
    opts = SimOptions(workdir=Path(tempfile.mkdtemp(prefix="bench-sim-")))
    t = time.perf_counter()
    chain = SimChain().start()
    setup = time.perf_counter() - t
    rows = []
    try:
        runner = Runner(chain, opts)
        runner.run(Job("gbm", 99, pols["default"], steps=4))           # warm-up: caches, fork state
        for label, spec in (("harness (no keeper cycle)", harness), ("keeper, 1 process", pols["default"]),
                            ("keeper, fixed-interval, 1 process", pols["fixed-interval"])):
            t = time.perf_counter()
            r = runner.run(Job("gbm", 1, spec, steps=args.steps))
            dt = time.perf_counter() - t
            rows.append((label, len(r.steps), dt, r.txs))
    finally:
        chain.stop()
    jobs = [Job("gbm", seed, pols["default"], steps=args.steps) for seed in range(1, 2 * args.workers + 1)]
    t = time.perf_counter()
    runs = run_jobs(jobs, options=opts, workers=args.workers, progress=False)
    dt = time.perf_counter() - t
    rows.append((f"keeper, {args.workers} processes (incl. chain start)", sum(len(r.steps) for r in runs), dt,
                 sum(r.txs for r in runs)))
    base = rows[0][1] / rows[0][2]
    print(f"chain start (upstream anvil, deploy, ape-foundry fork): {setup:.1f}s")
    print(f"{'run':<46} {'steps':>6} {'seconds':>8} {'txs':>5} {'steps/s':>8} {'vs harness':>11}")
    for label, n, secs, txs in rows:
        print(f"{label:<46} {n:>6} {secs:>8.2f} {txs:>5} {n / secs:>8.1f} {n / secs / base:>11.2f}")


if __name__ == "__main__":
    main()
