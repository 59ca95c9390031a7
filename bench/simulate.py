"""Benchmark: simulated steps per second, with the simulation's own moves as the baseline.

Measured in the same run, on the same forked chain:
- harness: every step's market moves (time, feed price, other traders, liquidation check,
  base fee, the metrics read) with the keeper cycle skipped: the baseline;
- keeper, 1 process: the same steps with one production keeper cycle each (default policy);
- keeper, N processes: N times the jobs over N worker processes, each with its own chains
  (chain start-up included).

    .venv/bin/python bench/simulate.py [--steps 48] [--workers 2]

With ``--engines``, instead: runs per second of the same sweep on ``--engine local`` (worker
processes) and ``--engine ray`` (a local Ray instance with ``--workers`` CPUs, its start timed
apart), and with ``--ray-address ADDRESS`` also on a Ray instance started separately (``ray
start --head``), each as a ratio to the local engine; every engine's runs are checked equal:

    .venv/bin/python bench/simulate.py --engines [--runs 8] [--steps 24] [--ray-address 127.0.0.1:6379]
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
    ap.add_argument("--engines", action="store_true", help="compare the local and Ray engines (runs/s)")
    ap.add_argument("--runs", type=int, default=8, help="with --engines: runs in the sweep (seeds x 2 policies)")
    ap.add_argument("--ray-address", help="with --engines: also run on the Ray instance at this address")
    args = ap.parse_args()
    if args.engines:
        engines(args)
        return
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


def engines(args: argparse.Namespace) -> None:
    from dataclasses import asdict

    from hedger.sim import engine_ray
    import ray
    pols = policies(PolicyParams())
    jobs = [Job("gbm", seed, pols[name], steps=args.steps) for seed in range(1, args.runs // 2 + 1)
            for name in ("default", "fixed-interval")]
    opts = SimOptions(workdir=Path(tempfile.mkdtemp(prefix="bench-sim-")))
    rows = []
    t = time.perf_counter()
    local = run_jobs(jobs, options=opts, workers=args.workers, progress=False)
    rows.append((f"local, {args.workers} processes", time.perf_counter() - t))
    t = time.perf_counter()
    engine_ray.connect(None, num_cpus=args.workers)
    ray_start = time.perf_counter() - t
    try:
        t = time.perf_counter()
        out = engine_ray.run_jobs_ray(jobs, options=opts, actors=args.workers, progress=False)
        rows.append((f"ray, local instance, {out.actors} actors", time.perf_counter() - t))
    finally:
        ray.shutdown()
    same = [r is not None and asdict(a) == asdict(r) for a, r in zip(local, out.results)]
    lost = len(out.failed)
    if args.ray_address:
        t = time.perf_counter()
        engine_ray.connect(args.ray_address)
        join = time.perf_counter() - t
        try:
            t = time.perf_counter()
            far = engine_ray.run_jobs_ray(jobs, options=opts, actors=args.workers, progress=False)
            rows.append((f"ray, --ray-address (ray start --head), {far.actors} actors", time.perf_counter() - t))
        finally:
            ray.shutdown()
        same += [r is not None and asdict(a) == asdict(r) for a, r in zip(local, far.results)]
        lost += len(far.failed)
        print(f"joining the separate Ray instance: {join:.1f}s (not in the figures)")
    print(f"local Ray instance start: {ray_start:.1f}s (not in the figures; chain starts are)")
    print(f"{len(jobs)} runs of {args.steps} steps (gbm, default and fixed-interval); "
          f"every run identical to the local engine's on every engine: {all(same)}"
          + (f"; {lost} run(s) FAILED twice (figures not comparable)" if lost else ""))
    base = len(jobs) / rows[0][1]
    print(f"{'engine':<52} {'seconds':>8} {'runs/s':>7} {'vs local':>9}")
    for label, secs in rows:
        print(f"{label:<52} {secs:>8.2f} {len(jobs) / secs:>7.2f} {len(jobs) / secs / base:>9.2f}")


if __name__ == "__main__":
    main()
