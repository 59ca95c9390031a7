"""``hedger simulate``: replay scenarios on a fork through the keeper and compare policies.

Examples::

    hedger simulate                                  # the default scenario set, seed 1, all policies
    hedger simulate --scenario gbm --seeds 20 --json gbm.json
    hedger simulate --scenario crash --order-mode delayed --plots out/
    hedger simulate --scenario csv:eth.csv:2020-03-11:2020-03-13   # a window of a long price file
    hedger simulate --scenario gbm --seeds 4 --sweep band=0.02,0.05,0.1 --sweep cooldown=0,3600
    hedger simulate --fork-url $RPC --oracle 0x5f4e... --collateral 0xA0b8...   # a real chain
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from dataclasses import fields, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from hedger.config import positive_e18
from hedger.core.errors import ConfigError
from hedger.sim.scenarios import SCENARIOS
from hedger.core.types import UNIT, PolicyParams

DEFAULT_SET = tuple(SCENARIOS)
DEFAULT_POLICIES = ("fixed-interval", "band-only", "default", "funding-aware", "open-once")
FAILED_RUN = 14          # exit code: more than half of some run's cycles failed or were refused

# policy parameters a user may set or sweep: name -> (PolicyParams field, kind)
TUNABLE = {"band": ("band", "frac"), "hedge_ratio": ("hedge_ratio", "frac"),
           "target_leverage": ("target_leverage", "frac"), "max_leverage": ("max_leverage", "frac"),
           "min_leverage": ("min_leverage", "frac"), "min_trade_usd": ("min_trade_usd", "frac"),
           "cooldown": ("cooldown_s", "int"), "liquidation_buffer": ("liquidation_buffer", "frac"),
           "funding_min_ratio": ("funding_min_ratio", "frac"), "funding_threshold": ("funding_threshold", "frac"),
           "interval": ("interval", "hours")}


def add_parser(sub: Any) -> None:
    sp = sub.add_parser("simulate", help="replay market scenarios on a fork through the keeper; compare policies")
    sp.add_argument("--scenario", action="append", metavar="NAME",
                    help=f"{', '.join(DEFAULT_SET)}, csv:PATH or csv:PATH:FROM:TO (a UTC date window, "
                         f"YYYY-MM-DD or ISO date-times, either end may be empty); repeat for several "
                         f"(default: all {len(DEFAULT_SET)} named ones)")
    sp.add_argument("--seed", type=int, default=1, help="first seed (default 1); a seed reproduces a run exactly")
    sp.add_argument("--seeds", type=int, default=1, help="number of seeds from --seed (default 1)")
    sp.add_argument("--steps", type=int, default=None, help="use only the first N steps of each scenario")
    sp.add_argument("--policies", default=",".join(DEFAULT_POLICIES),
                    help="comma list of fixed-interval[-Nh], band-only, default, funding-aware, open-once "
                         "(the ideal hedge is always computed beside them)")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help=f"policy parameter for every policy: {', '.join(k for k in TUNABLE if k != 'interval')}")
    sp.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2",
                    help="sweep the default policy over these values (interval=H1,H2 sweeps fixed-interval "
                         "hours); reports the cost/risk frontier")
    # the names of hedger.sim.venues.VENUES, written out: every command builds this parser, and the
    # keeper's own commands should not import the simulator's modules
    sp.add_argument("--protocol", choices=("reference", "gmx-v2", "aave-v3"), default="reference",
                    help="the venue: the reference market (default), the GMX v2 stand-in, or the real Aave v3 and "
                         "Uniswap v3 from their npm artifacts")
    sp.add_argument("--order-mode", choices=("direct", "delayed"), default=None,
                    help="direct or delayed (two-step) orders; default: the venue's first (reference direct, "
                         "gmx-v2 delayed, aave-v3 direct)")
    sp.add_argument("--keeper-delay", type=int, default=None, metavar="S",
                    help="gmx-v2: seconds between an order's creation and its execution by GMX's keeper "
                         "(default 2; below the request expiration of 300)")
    sp.add_argument("--gmx-deployment", metavar="NAME",
                    help="with --fork-url and --protocol gmx-v2: replay through GMX's own deployment on a fork of "
                         "its chain (arbitrum, avalanche), the simulator acting as GMX's keeper (unverified: README)")
    sp.add_argument("--gmx-market", metavar="ADDRESS",
                    help="with --gmx-deployment: the GM market token (default on arbitrum: ETH/USD [WETH-USDC])")
    sp.add_argument("--token0", action="store_true",
                    help="aave-v3: the asset is the Uniswap pool's token0 (default: token1, as WETH/USDC on mainnet)")
    sp.add_argument("--spot", default="60", help="spot asset held at the start (default 60)")
    sp.add_argument("--lp", default="40", help="asset in a constant-product LP leg at the start (default 40)")
    sp.add_argument("--no-flows", action="store_true", help="no scheduled inflow (+20%%) and outflow (-30%%)")
    sp.add_argument("--holding", choices=("mixed", "lp-only"), default="mixed",
                    help="mixed: --spot in the wallet with scheduled flows plus the --lp leg (default); "
                         "lp-only: one LP leg of --spot + --lp units and no flows (its delta moves only with price)")
    sp.add_argument("--capital", metavar="F",
                    help="the account's collateral in all (posted and in reserve) is F times the opening hedge's "
                         "notional, instead of --reserve-usd (e.g. 0.75); a top-up it cannot fund deleverages")
    sp.add_argument("--cycle-every", type=int, default=1, metavar="N",
                    help="the keeper runs every N steps (default 1), e.g. 12: hourly against 5-minute prices")
    sp.add_argument("--substeps", type=int, default=1, metavar="K",
                    help="each step after the first as K price updates (a Brownian bridge to the step's price, "
                         "the path's own volatility), the keeper running at the step's end only: prices, a gap "
                         "or an outage between two cycles (default 1)")
    sp.add_argument("--fill-lag", type=int, default=0, metavar="K",
                    help="with --order-mode delayed: orders are filled K steps after they were placed, at the "
                         "price then (default 0: right after the cycle)")
    sp.add_argument("--match-risk", metavar="POLICY",
                    help="also run fixed-interval every 1, 2, 4, 8, 12, 24 h and compare POLICY's cost with the "
                         "runs whose residual risk is within 5%% of POLICY's (no ratio when none is)")
    sp.add_argument("--frontier", action="store_true",
                    help="print which policies run dominate which (lower cost and lower residual risk)")
    sp.add_argument("--reserve-usd", type=int, default=500_000, help="collateral reserve in USD (default 500000)")
    sp.add_argument("--eth-usd", help="price gas at this ETH/USD (default: the hedged asset's price at each step, "
                    "right for ETH; give it when replaying another asset, e.g. a BTC csv:)")
    sp.add_argument("--workers", type=int, default=None,
                    help="parallel processes, each with its own chain (default: CPUs, at most 4); with "
                         "--engine ray, at most this many actors (default: one per CPU of the cluster)")
    sp.add_argument("--json", type=Path, help="write the results here")
    sp.add_argument("--plots", type=Path, help="write PNG plots into this folder")
    sp.add_argument("--fork-url", help="fork this chain instead of a local upstream (shown redacted)")
    sp.add_argument("--oracle", help="with --fork-url: reuse this AggregatorV3 feed (etched to be settable)")
    sp.add_argument("--collateral", help="with --fork-url: reuse this ERC20 as collateral")
    sp.add_argument("--no-progress", action="store_true", help="no progress bar")
    sp.add_argument("--engine", choices=("local", "ray"), default="local",
                    help="local: worker processes on this machine (default); ray: Ray actors, each owning a "
                         "chain, on a local Ray instance or the cluster at --ray-address")
    sp.add_argument("--ray-address", default=os.environ.get("RAY_ADDRESS") or None, metavar="ADDRESS",
                    help="with --engine ray: join this Ray cluster (default: RAY_ADDRESS, else a local instance)")
    sp.add_argument("--resume", type=Path, metavar="PATH",
                    help="skip the runs already stored for the report PATH (PATH.runs.jsonl, written as runs "
                         "finish); the report is written to PATH unless --json says otherwise")
    sp.set_defaults(func=cmd_simulate)


def _value(flag: str, key: str, raw: str) -> int:
    if key not in TUNABLE:
        raise ConfigError(flag, f"unknown parameter {key!r}", f"use one of {', '.join(TUNABLE)}")
    kind = TUNABLE[key][1]
    try:
        d = Decimal(raw)
    except InvalidOperation:
        raise ConfigError(flag, f"{key}={raw!r} is not a number", f"e.g. {key}=0.05") from None
    if not d.is_finite():
        raise ConfigError(flag, f"{key}={raw!r} is not a finite number", f"e.g. {key}=0.05")
    if d < 0:
        raise ConfigError(flag, f"{key}={raw} is negative", "give a value >= 0")
    if kind == "int":
        return int(d)
    if kind == "hours":
        return int(d * 3600)
    return int(d * UNIT)


def _pairs(flag: str, items: list[str]) -> list[tuple[str, list[str]]]:
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError(flag, f"{item!r} is not KEY=VALUE", "e.g. band=0.05")
        k, v = item.split("=", 1)
        vals = [x.strip() for x in v.split(",") if x.strip()]
        if not vals:
            raise ConfigError(flag, f"{k} has no value", "e.g. band=0.02,0.05")
        out.append((k.strip(), vals))
    return out


def _apply(params: PolicyParams, flag: str, assignments: dict[str, str]) -> PolicyParams:
    names = {f.name for f in fields(PolicyParams)}
    changes = {}
    for k, raw in assignments.items():
        field_name = TUNABLE.get(k, (k, ""))[0]
        if field_name == "interval":
            continue
        if field_name not in names:
            raise ConfigError(flag, f"unknown parameter {k!r}", f"use one of {', '.join(TUNABLE)}")
        changes[field_name] = _value(flag, k, raw)
    if "hedge_ratio" in changes and "funding_min_ratio" not in changes and \
            params.funding_min_ratio == params.hedge_ratio:
        changes["funding_min_ratio"] = changes["hedge_ratio"]     # the funding-aware range stays off
    p = replace(params, **changes)
    if not p.min_leverage < p.target_leverage < p.max_leverage:
        raise ConfigError(flag, "target_leverage must lie strictly between min_leverage and max_leverage",
                          "e.g. min_leverage=1.5 target_leverage=2 max_leverage=3")
    if p.funding_min_ratio > p.hedge_ratio:
        raise ConfigError(flag, "funding_min_ratio is above hedge_ratio", "e.g. funding_min_ratio=0.8")
    return p


def build_policies(args: argparse.Namespace) -> list[Any]:
    """PolicySpecs to run: the named ones, then sweep points."""
    from hedger.sim.simulate import PolicySpec, policies
    base = _apply(PolicyParams(), "--set", {k: v[-1] for k, v in _pairs("--set", args.set)})
    named = policies(base)
    out: list[PolicySpec] = []
    for name in [n.strip() for n in args.policies.split(",") if n.strip()]:
        if name.startswith("fixed-interval-") and name.endswith("h"):
            try:
                hours = Decimal(name[len("fixed-interval-"):-1])
                if not hours.is_finite() or hours <= 0:
                    raise InvalidOperation
            except InvalidOperation:
                raise ConfigError("--policies", f"{name!r}: the interval is not a positive number of hours",
                                  "e.g. fixed-interval-4h") from None
            fi = named["fixed-interval"]
            out.append(replace(fi, name=name, interval_s=int(hours * 3600),
                               description=f"exact target every {hours}h"))
        elif name in named:
            out.append(named[name])
        else:
            raise ConfigError("--policies", f"unknown policy {name!r}",
                              "use fixed-interval, fixed-interval-<N>h, band-only, default, funding-aware, "
                              "open-once")
    sweep = _pairs("--sweep", args.sweep)
    intervals = [v for k, v in sweep if k == "interval"]
    grid = [(k, v) for k, v in sweep if k != "interval"]
    for k, vals in grid:
        for v in vals:
            _value("--sweep", k, v)
    for hours in (intervals[0] if intervals else []):
        secs = _value("--sweep", "interval", hours)
        fi = named["fixed-interval"]
        out.append(replace(fi, name=f"fixed-interval-{hours}h", interval_s=secs))
    if grid:
        keys = [k for k, _ in grid]
        for combo in itertools.product(*(v for _, v in grid)):
            assign = dict(zip(keys, combo))
            label = "default[" + ",".join(f"{k}={v}" for k, v in assign.items()) + "]"
            out.append(PolicySpec(label, _apply(named["default"].params, "--sweep", assign)))
    names = [p.name for p in out]
    if len(set(names)) != len(names):
        raise ConfigError("--policies", "a policy is listed twice", "list each policy once")
    if not out:
        raise ConfigError("--policies", "no policy to run", "e.g. --policies default,fixed-interval")
    return out


MATCH_HOURS = ("1", "2", "4", "8", "12", "24")


def with_match_sweep(pols: list[Any], against: str, base: PolicyParams | None = None) -> list[Any]:
    """``pols`` with ``against`` and the fixed-interval policy at every interval of MATCH_HOURS
    (those not already given): the runs --match-risk compares at equal measured risk."""
    from hedger.sim.simulate import policies
    named = policies(base or PolicyParams())
    names = {p.name: p for p in pols}
    if against not in names:
        if against not in named or against == "open-once":
            raise ConfigError("--match-risk", f"{against!r} is not a policy to compare",
                              "give one of --policies, e.g. --match-risk default")
        pols = pols + [named[against]]
    fi = named["fixed-interval"]
    have = {p.interval_s for p in pols if p.name.startswith("fixed-interval")}
    extra = [replace(fi, name=f"fixed-interval-{h}h", interval_s=int(h) * 3600, description=f"exact target every {h}h")
             for h in MATCH_HOURS if int(h) * 3600 not in have]
    return pols + extra


def _market_meta(protocol: str, mp: Any) -> dict[str, Any]:
    """What the report says of the simulated venue (floats: a report)."""
    if protocol == "gmx-v2":
        from hedger.sim.venues import GMX_OTHERS_BASE
        return {"venue": "GMX v2 stand-in (contracts/Gmx*.vy)", "pool_usdc": 30_000_000, "pool_weth": 10_000,
                "others_open_interest_each_side": GMX_OTHERS_BASE / UNIT, "position_fee": "0.04% / 0.06%"}
    if protocol == "aave-v3":
        from hedger.sim.venues import AAVE_BACKGROUND_UTILISATION
        return {"venue": "Aave v3 + Uniswap v3 (npm artifacts)", "weth_reserve": 20_000,
                "weth_utilisation_by_others": AAVE_BACKGROUND_UTILISATION / 100, "usdc_reserve": 200_000_000,
                "uniswap_pool_weth": 50_000, "uniswap_fee": 0.0005}
    return {"skew_scale": mp.skewScale / UNIT, "max_funding_velocity": mp.maxFundingVelocity / UNIT,
            "taker_fee": mp.takerFee / UNIT, "maker_fee": mp.makerFee / UNIT}


def cmd_simulate(args: argparse.Namespace) -> int:
    from hedger.sim import simreport
    from hedger.core.secrets import redact_url, register_rpc_url
    from hedger.sim.simulate import Holding, Job, SimOptions, TraderModel, run_jobs, scenario

    scenarios = args.scenario or list(DEFAULT_SET)
    for sc in scenarios:
        try:
            scenario(sc, args.seed)
        except (ValueError, OSError) as err:
            fix = getattr(err, "fix", "use a named scenario, csv:PATH with timestamp,price rows or csv:PATH:FROM:TO")
            raise ConfigError("--scenario", str(err), fix) from None
    if args.seeds < 1:
        raise ConfigError("--seeds", f"{args.seeds} is not a count", "give 1 or more")
    if args.steps is not None and args.steps < 2:
        raise ConfigError("--steps", f"{args.steps} is too few", "give 2 or more")
    if (args.oracle or args.collateral) and not args.fork_url:
        raise ConfigError("--oracle/--collateral", "reuse real contracts only on a fork of a real chain",
                          "add --fork-url URL, or drop them to use the bundled upstream")
    if args.fork_url:
        register_rpc_url(args.fork_url)
    try:
        spot_d, lp_d = Decimal(args.spot), Decimal(args.lp)
        if not (spot_d.is_finite() and lp_d.is_finite()):
            raise InvalidOperation
        spot, lp = int(spot_d * UNIT), int(lp_d * UNIT)
    except InvalidOperation:
        raise ConfigError("--spot/--lp", "not a finite number", "e.g. --spot 60 --lp 40") from None
    if spot < 0 or lp < 0 or spot + lp == 0:
        raise ConfigError("--spot/--lp", "the hedged holding must be positive", "e.g. --spot 60 --lp 40")
    if args.reserve_usd <= 0:
        raise ConfigError("--reserve-usd", "must be positive", "e.g. --reserve-usd 500000")
    eth_usd = None if args.eth_usd is None else positive_e18("--eth-usd", args.eth_usd, "3000")
    if args.resume is not None:
        from hedger.sim.runstore import stream_path
        if not stream_path(args.resume).exists():
            raise ConfigError("--resume", f"no runs stored at {stream_path(args.resume)}",
                              "give the --json PATH of an earlier run of this sweep, or drop --resume")
        if args.json is None:
            args.json = args.resume
    if args.ray_address and args.engine != "ray":
        raise ConfigError("--ray-address", "a Ray address applies to --engine ray only",
                          "add --engine ray, or drop --ray-address (and unset RAY_ADDRESS)")
    if args.engine == "ray" and args.ray_address and args.ray_address not in ("auto", "local"):
        _probe_ray_head(args.ray_address)
    if args.json is not None and not args.json.parent.is_dir():
        raise ConfigError("--json", f"folder {args.json.parent} does not exist", "create it or give another path")
    if getattr(args, "plots", None) is not None and args.plots.exists() and not args.plots.is_dir():
        raise ConfigError("--plots", f"{args.plots} is a file, not a folder", "give a folder (it is created if "
                          "missing), e.g. --plots out/")
    if args.cycle_every < 1:
        raise ConfigError("--cycle-every", f"{args.cycle_every} is not a number of steps", "give 1 or more")
    if args.fill_lag < 0:
        raise ConfigError("--fill-lag", f"{args.fill_lag} is negative", "give 0 or more steps")
    if not 1 <= args.substeps <= 60:
        raise ConfigError("--substeps", f"{args.substeps} is not a number of price updates a step",
                          "give 1 (off) to 60, e.g. 12: 5-minute prices in an hourly scenario")
    from hedger.sim.venues import make_venue
    modes = make_venue(args.protocol).modes         # the venue's own (nothing deployed yet)
    if args.order_mode is None:
        args.order_mode = modes[0]
    elif args.order_mode not in modes:
        raise ConfigError("--order-mode", f"{args.order_mode} orders are not offered on {args.protocol}",
                          f"use --order-mode {' or '.join(modes)}, or leave it out")
    if args.keeper_delay is not None and args.protocol != "gmx-v2":
        raise ConfigError("--keeper-delay", f"GMX's keeper delay does not apply to {args.protocol}",
                          "add --protocol gmx-v2, or drop --keeper-delay (the reference market's delayed "
                          "orders wait its minOrderDelay; --fill-lag adds feed updates)")
    if args.keeper_delay is not None and not 0 <= args.keeper_delay < 300:
        raise ConfigError("--keeper-delay", f"{args.keeper_delay} s is outside 0..299",
                          "give a delay below GMX's request expiration (300 s); --fill-lag K lets K feed updates pass")
    if args.token0 and args.protocol != "aave-v3":
        raise ConfigError("--token0", f"the pool's token order applies to aave-v3, not {args.protocol}",
                          "add --protocol aave-v3, or drop --token0")
    from hedger.sim.gmx_fork import describe_fork, validate_fork_args
    gmx_deployment = validate_fork_args(fork_url=args.fork_url, protocol=args.protocol,
                                        gmx_deployment=args.gmx_deployment)
    if args.gmx_market is not None and gmx_deployment is None:
        raise ConfigError("--gmx-market", "names a market of GMX's own deployment on a fork",
                          "add --fork-url URL --protocol gmx-v2 --gmx-deployment arbitrum, or drop --gmx-market")
    if args.fork_url and args.protocol == "gmx-v2" and gmx_deployment is None:
        raise ConfigError("--fork-url", "a fork on gmx-v2 replays GMX's own deployment there",
                          "add --gmx-deployment arbitrum (or avalanche), or drop --fork-url to use the GMX stand-in")
    if args.fork_url and args.protocol == "aave-v3":
        raise ConfigError("--fork-url", "a fork is not offered on aave-v3 yet",
                          "drop --fork-url to use Aave v3 and Uniswap v3 deployed from their npm artifacts")
    if args.fill_lag and args.protocol == "gmx-v2":
        raise ConfigError("--fill-lag", "GMX's keepers execute an order within seconds, before the next feed update, "
                          "and the stand-in expires it after 300 s", "use --keeper-delay S instead")
    if args.fill_lag and args.order_mode != "delayed":
        raise ConfigError("--fill-lag", "a fill lag applies to two-step orders only",
                          "add --order-mode delayed, or drop --fill-lag")
    capital = None
    if args.capital is not None:
        capital = positive_e18("--capital", args.capital, "0.75")
    if args.holding == "lp-only":
        spot, lp = 0, spot + lp
    pols = build_policies(args)
    if args.match_risk is not None:
        pols = with_match_sweep(pols, args.match_risk,
                                _apply(PolicyParams(), "--set", {k: v[-1] for k, v in _pairs("--set", args.set)}))
    seeds = list(range(args.seed, args.seed + args.seeds))
    jobs = [Job(sc, seed, p, steps=args.steps) for sc in scenarios for seed in seeds for p in pols]
    workers = args.workers or min(os.cpu_count() or 1, 4)
    workers = max(1, min(workers, len(jobs)))
    options = SimOptions(holding=Holding(spot=spot, lp=lp, flows=not args.no_flows and args.holding == "mixed"),
                         reserve_usd=args.reserve_usd, eth_usd=eth_usd, capital=capital,
                         cycle_every=args.cycle_every, fill_lag=args.fill_lag, substeps=args.substeps)
    chain_kw: dict[str, Any] = {"fork_url": args.fork_url, "oracle": args.oracle, "collateral": args.collateral,
                                "order_mode": args.order_mode, "protocol": args.protocol,
                                "asset_is_token0": args.token0}
    if args.keeper_delay is not None:
        chain_kw["keeper_delay_s"] = args.keeper_delay
    if gmx_deployment is not None:
        chain_kw["gmx_deployment"] = gmx_deployment
        if args.gmx_market is not None:
            from hedger.config import _address
            chain_kw["gmx_market"] = _address("--gmx-market", args.gmx_market)
    if args.fill_lag and args.protocol == "reference":
        # a lagged order must still be fillable when its turn comes: the market's expiry covers the lag
        from hedger.sim.deploy import MarketParams
        longest = max(s.dt for sc in scenarios for s in scenario(sc, args.seed).steps)
        base_mp = MarketParams()
        chain_kw["market_params"] = replace(base_mp, maxOrderDelay=max(
            base_mp.maxOrderDelay, (args.fill_lag + 1) * longest + base_mp.maxOrderDelay))
    if args.fork_url:
        # every worker forks the same state: the block the command saw at its start
        chain_kw["fork_block"] = pin_fork_block(args.fork_url, chain_id=None if gmx_deployment else 1)
    started = time.monotonic()
    runs, engine_note, lost = _run(args, jobs, chain_kw, options, workers)
    elapsed = time.monotonic() - started
    if not runs:
        print(f"no run has a result: all {lost} failed twice (above; exit {FAILED_RUN})", file=sys.stderr)
        return FAILED_RUN
    steps = sum(len(r.steps) for r in runs)
    from hedger.sim.deploy import MarketParams
    mp = MarketParams()
    meta = {"protocol": args.protocol, "scenarios": scenarios, "seeds": seeds, "steps": args.steps,
            "order_mode": args.order_mode,
            "keeper_delay_s": chain_kw.get("keeper_delay_s", 2) if args.protocol == "gmx-v2" else None,
            "fork": ((describe_fork(args.fork_url, gmx_deployment) if gmx_deployment else redact_url(args.fork_url))
                     + f" at block {chain_kw['fork_block']}") if args.fork_url else "local upstream anvil (chain id 1)",
            "engine": args.engine,
            "exposure": {"holding": args.holding, "spot": spot / UNIT, "lp": lp / UNIT,
                         "flows": options.holding.flows},
            "reserve_usd": args.reserve_usd if capital is None else None,
            "capital": args.capital, "cycle_every": args.cycle_every, "substeps": args.substeps,
            "fill_lag": args.fill_lag,
            "gas_priced_at": f"{args.eth_usd} USD/ETH" if eth_usd is not None else "the hedged asset's price",
            "market": _market_meta(args.protocol, mp),
            "traders": {"depth": TraderModel().depth / UNIT, "noise": TraderModel().noise / UNIT}
            if args.protocol == "reference" else None,
            "policy_params": {p.name: {"interval_s": p.interval_s, "description": p.description,
                                       **{f.name: getattr(p.params, f.name) for f in fields(PolicyParams)}}
                              for p in pols},
            "elapsed_s": round(elapsed, 1), "steps_total": steps, "workers": workers}
    doc = simreport.report(runs, meta)
    if args.match_risk is not None:
        doc["matched_risk"] = simreport.match_risk(doc["policies"], args.match_risk)
    print(simreport.table(doc))
    if args.frontier:
        doc["dominance"] = simreport.dominance(doc["policies"])
        print()
        print(simreport.dominance_text(doc["dominance"]))
    if args.sweep:
        pts = simreport.frontier(doc)
        doc["frontier"] = pts
        print()
        print(simreport.frontier_table(pts))
    print(f"\n{len(runs)} runs, {steps} steps in {elapsed:.1f}s ({steps / elapsed:.1f} steps/s, {engine_note})")
    if args.plots:
        paths = simreport.write_plots(runs, args.plots)
        if args.sweep:
            from hedger.sim.plots import plot_frontier
            paths.append(plot_frontier(doc["frontier"], args.plots / "frontier.png"))
        print(f"plots: {len(paths)} PNG files in {args.plots}")
    if args.json:
        simreport.write_json(doc, args.json)
        print(f"json: {args.json}")
    # loud failures: a run whose cycles mostly failed measured nothing worth a figure
    bad = [r for r in runs if r.cycles and 2 * r.failed_cycles > r.cycles]
    for r in bad:
        first = "; ".join(f"{o}: {e}" for o, e in r.errors.items()) or "no error recorded"
        print(f"FAILED RUN: {r.scenario} seed {r.seed} / {r.policy}: {r.failed_cycles} of {r.cycles} cycles failed "
              f"or were refused ({first})", file=sys.stderr)
    if bad:
        print(f"{len(bad)} run(s) failed more than half their cycles: their figures measure the failures, not "
              f"the policy (exit {FAILED_RUN})", file=sys.stderr)
    if lost:
        print(f"{lost} run(s) failed twice and have no result (above; exit {FAILED_RUN}); run the same command "
              f"with --resume {args.json} to try them again" if args.json else
              f"{lost} run(s) failed twice and have no result (above; exit {FAILED_RUN})", file=sys.stderr)
    if bad or lost:
        return FAILED_RUN
    return 0


def _probe_ray_head(address: str) -> None:
    """A TCP connection to the Ray head's HOST:PORT, before Ray is asked to join it: with nothing there
    Ray keeps trying for minutes, which looks like a hang."""
    import socket
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError("--ray-address", f"{address!r} is not HOST:PORT", "give the head's address, e.g. "
                          "--ray-address 10.0.0.5:6379 (the port of `ray start --head --port 6379`)")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise ConfigError("--ray-address", f"nothing answers at {hostport} ({err.strerror or err})",
                          "start the head there (`ray start --head --port PORT`) or fix the address; without "
                          "--ray-address (and RAY_ADDRESS) a local Ray instance is started") from None


def pin_fork_block(url: str, chain_id: int | None = None) -> int:
    """The fork URL's latest block number, read once: every worker forks at it. ``chain_id``: the
    chain the fork must be of (the reference market forks through ape's ethereum:mainnet-fork
    network, chain id 1: ape refuses another chain in every worker), checked first."""
    from hedger.core.secrets import redact_url
    from hedger.cycle.keeper import make_web3
    try:
        w3 = make_web3(url, timeout=30)
        got = None if chain_id is None else int(w3.eth.chain_id)
        block = int(w3.eth.block_number)
    except Exception as err:
        from hedger.core.secrets import redact_urls
        raise ConfigError("--fork-url", f"could not read the latest block of {redact_url(url)}: "
                                        f"{redact_urls(str(err))[:200]}",
                          "check the URL and that the node answers") from None
    if got is not None and got != chain_id:
        raise ConfigError("--fork-url", f"{redact_url(url)} reports chain id {got}: the reference market's fork "
                                        f"runs on ape's ethereum:mainnet-fork network, chain id {chain_id} only",
                          "give an Ethereum mainnet RPC (chain id 1); GMX's chains fork with --protocol gmx-v2 "
                          "--gmx-deployment arbitrum (or avalanche)")
    return block


def _run(args: argparse.Namespace, jobs: list[Any], chain_kw: dict[str, Any], options: Any,
         workers: int) -> tuple[list[Any], str, int]:
    """Run the jobs not already stored (--resume) on the chosen engine, each result streamed
    to PATH.runs.jsonl as it finishes: (results in the jobs' order, a note on the engine, runs
    that failed twice and have no result)."""
    from hedger.sim import runstore
    from hedger.sim.simulate import run_jobs
    shared = runstore.shared_settings(options, chain_kw)
    keys = [runstore.run_key(j, shared) for j in jobs]
    done = runstore.load(args.resume) if args.resume is not None else {}
    results: dict[int, Any] = {i: done[k] for i, k in enumerate(keys) if k in done}
    todo = [i for i in range(len(jobs)) if i not in results]
    if args.resume is not None:
        print(f"resume: {len(results)} of {len(jobs)} runs already in {runstore.stream_path(args.resume)}, "
              f"{len(todo)} to run", file=sys.stderr)
    stream = runstore.RunStream(args.json, keep=[(keys[i], results[i]) for i in sorted(results)]) \
        if args.json is not None else None

    def on_result(n: int, r: Any) -> None:
        results[todo[n]] = r
        if stream is not None:
            stream.append(keys[todo[n]], r)

    lost = 0
    try:
        if not todo:
            note = "nothing left to run"
        elif args.engine == "ray":
            from hedger.sim.engine_ray import run_jobs_ray
            out = run_jobs_ray([jobs[i] for i in todo], chain_kw=chain_kw, options=options,
                               actors=args.workers, address=args.ray_address,
                               progress=not args.no_progress, on_result=on_result)
            note = f"{out.actors} Ray actors, {out.where}"
            for rt in out.retries:
                j = jobs[todo[rt.index]]
                what = f"{j.scenario} seed {j.seed} / {j.policy.name}"
                print(f"RETRIED RUN: {what} failed on {rt.first_actor} ({rt.error}); retried on {rt.retry_actor}: "
                      + (f"FAILED again ({rt.failed_again})" if rt.failed_again else "done"), file=sys.stderr)
            lost = len(out.failed)
        else:
            out_local = run_jobs([jobs[i] for i in todo], chain_kw=chain_kw, options=options,
                                 workers=min(workers, len(todo)), progress=not args.no_progress, on_result=on_result)
            # every result run_jobs returns counts, streamed or not (an engine that does not call back)
            for n, r in enumerate(out_local):
                if todo[n] not in results:
                    on_result(n, r)
            note = f"{min(workers, len(todo))} worker processes"
    except KeyboardInterrupt:
        if stream is not None:
            print(f"\ninterrupted: {len(results)} of {len(jobs)} runs kept in {stream.path}; the same command "
                  f"with --resume {args.json} runs the rest", file=sys.stderr)
        raise
    finally:
        if stream is not None:
            stream.close()
    return [results[i] for i in range(len(jobs)) if i in results], note, lost
