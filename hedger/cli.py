"""The command line. Thin: it parses arguments, builds the keeper, prints, exits.

Exit codes (also in the README):
  0  acted, held on purpose, or dry run
  1  unexpected internal error
  2  bad configuration (the message names the variable and the fix)
  3  refused: oracle unusable (stale, future, zero round, non-positive)
  4  refused: L2 sequencer down or within its grace period
  5  refused: wrong chain id, block lagging the wall clock, or no contract at an address
  6  refused: a step failed simulation; nothing was sent
  7  partial, safe: some steps were mined, then one failed; the rest was not sent
  8  RPC unreachable or answering nonsense
  9  refused: the account needs manual action (no margin left, or a long hedge the venue does not offer)
 10  alarm: a risk-reducing step (top-up, hedge reduction) was blocked by gas above the emergency ceiling
 11  another hedger holds this account's lock (overlapping runs); nothing was done
 12  watch: the circuit breaker stopped the keeper after N failed cycles in a row
 13  unwind: not finished, nothing failed (an order still pending at --timeout, a limit holding the
     withdrawal); run it again later
 14  simulate: more than half the cycles of some run failed or were refused (the summary names the
     first error of each kind), or with --engine ray a run failed twice and has no result
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, Sequence

from hedger.config import Settings, positive_e18
from hedger.core.secrets import redact_urls
from hedger.core.errors import ConfigError, HedgerError, RpcError
from hedger.core.fixedpoint import UNIT
from hedger.core.types import CycleResult, Snapshot

log = logging.getLogger("hedger")


def _f(v: int, decimals: int = 18) -> float:
    """Integer amount -> float, for reports only."""
    return v / 10**decimals


def _carry(s: Snapshot, size: int) -> int:
    """The venue's signed carry of a position on ``size``'s side (E18 fraction a day; 0 without a size)."""
    from hedger.core.model import model_for
    return model_for(s).carry_rate_per_day(size) if size else 0


def status_dict(s: Snapshot, decision: Any) -> dict[str, Any]:
    from hedger.core.model import INFINITE, leverage
    a, m = s.account, s.market
    price = s.oracle.price_e18
    # the market liquidates at its own price: the distance is measured from it (the oracle's when invalid)
    liq_ref = m.price if m.price > 0 and not m.price_invalid else price
    lev = leverage(a.size, price, a.margin)
    target = decision.target_size
    now = s.chain.block_timestamp
    return {
        "chain_id": s.chain.chain_id, "block": s.chain.block_number, "block_timestamp": s.chain.block_timestamp,
        "account": a.address, "market": m.address, "order_mode": "delayed" if m.two_step else "direct",
        "oracle": s.oracle.address, "oracle_description": s.oracle.description,
        "oracle_price": _f(price), "oracle_round_id": s.oracle.round_id,
        "oracle_age_s": s.chain.block_timestamp - s.oracle.updated_at,
        "market_price": _f(m.price),
        "sequencer": None if s.sequencer is None else {"up": s.sequencer.answer == 0,
                                                       "since_s": s.chain.block_timestamp - s.sequencer.started_at},
        "spot_exposure": _f(s.exposure.total),
        "lp_exposure": _f(s.exposure.lp, s.exposure.spot_decimals),
        "target_size": _f(target),
        "position_size": _f(a.size),
        "hedge_error": _f(a.size - target),
        "margin": _f(a.margin), "accessible_margin": _f(a.accessible_margin),
        "collateral_wallet": _f(a.collateral_wallet, m.collateral_decimals),
        "leverage": None if lev >= INFINITE else _f(lev),
        "liquidation_price": _f(a.liquidation_price) if a.size != 0 else None,
        "liquidation_distance": (abs(a.liquidation_price - liq_ref) / liq_ref) if a.size != 0 and liq_ref else None,
        "liquidation_distance_from": "market_price" if liq_ref == m.price else "oracle_price",
        "accrued_funding": _f(a.accrued_funding), "pnl": _f(a.pnl),
        # a venue without one funding rate (GMX v2: funding and borrowing by side) shows the carry instead
        "funding_rate": _f(m.funding_rate) if hasattr(m, "funding_rate") else None,
        "funding_rate_annual": _f(m.funding_rate) * 365 if hasattr(m, "funding_rate") else None,
        "carry_rate_per_day": _f(_carry(s, target or a.size)),
        "skew": _f(m.skew) if hasattr(m, "skew") else None,
        "second_price_source": s.reference_source,
        "second_price": None if s.reference_price is None else _f(s.reference_price),
        "second_price_problem": s.reference_problem,
        "collateral_problem": s.collateral_status.problem(),
        # every order the venue lists for the account, in any state, with its age in chain time
        "orders": [{"key": o.key, "kind": o.kind.value, "state": o.state.value, "size_delta": _f(o.size_delta),
                    "collateral_delta": _f(o.collateral_delta, m.collateral_decimals),
                    "acceptable_price": _f(o.acceptable_price), "submitted_at": o.submitted_at,
                    "age_s": now - o.submitted_at, "executable_at": o.executable_at, "expires_at": o.expires_at}
                   for o in a.orders],
        "market_price_invalid": m.price_invalid,
        "decision": {"kind": decision.kind.value, "code": decision.code, "reason": decision.reason,
                     "size_delta": _f(decision.size_delta),
                     "margin_delta": _f(decision.margin_delta, m.collateral_decimals)},
        # a lending venue's own health measure (aave-v3); absent elsewhere
        **({"health_factor": None if a.health_factor >= INFINITE else _f(a.health_factor)}
           if hasattr(a, "health_factor") else {}),
    }


def print_status_table(d: dict[str, Any]) -> None:
    from hedger.core.timefmt import duration, utc, when
    now = d["block_timestamp"]

    def fmt(v: Any, unit: str = "", nd: int = 4) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:,.{nd}f}{unit}"
        return f"{v}{unit}"
    rows = [
        ("chain / block", f"{d['chain_id']} / {d['block']} at {utc(now)}"),
        ("account", d["account"]), ("market", f"{d['market']} ({d['order_mode']})"),
        ("oracle price", f"{fmt(d['oracle_price'], nd=2)} USD  (age {duration(d['oracle_age_s'])}, "
                         f"round {d['oracle_round_id']})"),
        ("market price", fmt(d["market_price"], nd=2) + " USD" + ("  INVALID" if d.get("market_price_invalid") else "")),
        ("sequencer", "not configured" if d["sequencer"] is None else
         ("up" if d["sequencer"]["up"] else "DOWN") + f" for {duration(d['sequencer']['since_s'])}"),
        ("spot exposure", fmt(d["spot_exposure"]) + (f"  (of which {fmt(d['lp_exposure'])} in LP positions)"
                                                      if d["lp_exposure"] else "")),
        ("target position", fmt(d["target_size"])),
        ("position", fmt(d["position_size"])), ("hedge error", fmt(d["hedge_error"])),
        ("margin", f"{fmt(d['margin'], nd=2)} USD (accessible {fmt(d['accessible_margin'], nd=2)})"),
        ("wallet collateral", fmt(d["collateral_wallet"], nd=2)),
        ("leverage", fmt(d["leverage"], "x", 2)),
        *([("health factor", fmt(d["health_factor"], "", 3) if d["health_factor"] is not None else "inf (no debt)")]
          if "health_factor" in d else []),
        ("liquidation price", fmt(d["liquidation_price"], nd=2) +
         ("" if d["liquidation_distance"] is None else
          f"  ({d['liquidation_distance'] * 100:.1f}% away from the "
          f"{'market' if d['liquidation_distance_from'] == 'market_price' else 'oracle'} price)")),
        ("funding rate", f"{d['funding_rate'] * 100:.4f}%/day ({d['funding_rate_annual'] * 100:.2f}%/yr; "
                         "positive: longs pay shorts)") if d["funding_rate"] is not None else
        ("carry", f"{d['carry_rate_per_day'] * 100:.4f}%/day of the hedge's notional (funding + borrowing; "
                  "negative: it earns)"),
        ("accrued funding", fmt(d["accrued_funding"], nd=2)),
        *([("orders", "none")] if not d["orders"] else
          [("order", f"{o['state'].upper() if o['state'] != 'pending' else o['state']} {o['kind']} "
                     + (f"{o['size_delta']:+.4f}" if o["size_delta"] else f"collateral {o['collateral_delta']:+,.2f}")
                     + f", age {duration(o['age_s'])} (executable at {when(o['executable_at'], now)}, "
                     + (f"expires at {utc(o['expires_at'])}" if o["expires_at"] else "no expiry")
                     + f"), key {o['key']}") for o in d["orders"]]),
        ("second price", "NONE: no independent second price source is configured (set HEDGER_SECOND_ORACLE)"
         if d["second_price_source"] == "none" else
         f"{fmt(d['second_price'], nd=2)} from {d['second_price_source']}" +
         (f"  UNUSABLE: {d['second_price_problem']}" if d["second_price_problem"] else "")),
        ("collateral token", d["collateral_problem"].upper() if d["collateral_problem"] else "ok"),
        ("paused", "no" if not d.get("paused") else f"YES since {when(d['paused']['since'])}: {d['paused']['reason']} "
                                                    "(`hedger resume` to hedge again)"),
        ("decision", f"{d['decision']['kind']} [{d['decision']['code']}]"),
        ("reason", d["decision"]["reason"]),
    ]
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k.ljust(w)}  {v}")


def cycle_dict(res: CycleResult) -> dict[str, Any]:
    d = res.decision
    return {"outcome": res.outcome, "exit_code": res.exit_code, "dry_run": res.dry_run, "notes": res.notes,
            "decision": None if d is None else {"kind": d.kind.value, "code": d.code, "reason": d.reason},
            "calls": [c.describe() for c in res.calls],
            "txs": [{"hash": t.tx_hash, "function": t.call.function, "gas_used": t.gas_used} for t in res.sent],
            "error": res.error, "cycle_id": res.cycle_id}


def print_cycle(res: CycleResult, *, as_json: bool = False) -> None:
    d = res.decision
    if as_json:
        print(json.dumps(cycle_dict(res)))
        return
    for note in res.notes:
        print(f"reconciled: {note}")
    if d is not None:
        print(f"decision: {d.kind.value} [{d.code}] {d.reason}")
    if res.dry_run and res.calls:
        print("dry run: planned calls (nothing sent):")
    for c in res.calls:
        if res.dry_run:
            print(f"  {c.describe()}   # {c.note}")
    for t in res.sent:
        print(f"  sent {t.call.contract}.{t.call.function}{t.call.args_text()} tx {t.tx_hash} gas {t.gas_used}")
    if res.error and res.exit_code == 0:
        print(f"note: {res.error}")
    print(f"outcome: {res.outcome}")


def cmd_status(args: argparse.Namespace) -> int:
    from hedger.decide import policy
    from hedger.cycle.keeper import Keeper
    settings = Settings.from_env()
    if settings.markets:
        return _status_multi(settings, args)
    k = Keeper.from_settings(settings, use_journal=settings.journal_path.exists())
    snap = k.read()
    decision = policy.decide(snap, k.params(snap))
    d = status_dict(snap, decision)
    pause = k.paused()
    d["paused"] = pause
    if args.json:
        print(json.dumps(d))
    else:
        print_status_table(d)
    return 0


def _status_multi(settings: Settings, args: argparse.Namespace) -> int:
    from hedger.cycle.multimarket import MultiKeeper
    mk = MultiKeeper.from_settings(settings, use_journal=settings.journal_path.exists())
    blocks = []
    for name, snap, decision, pause in mk.status():
        d = {"name": name, **status_dict(snap, decision), "paused": pause}
        blocks.append(d)
    if args.json:
        print(json.dumps({"markets": blocks}))
        return 0
    for i, d in enumerate(blocks):
        if i:
            print()
        print(f"== {d['name']} ==")
        print_status_table(d)
    return 0


def _selected(settings: Settings, args: argparse.Namespace, *, checked: bool = False,
              use_journal: bool = True) -> list[tuple[str | None, Any]]:
    """The keepers a one-market command acts on: the single market, or with ``HEDGER_MARKETS``
    every configured market in order (``--market NAME``: that one). Name None: single market."""
    from hedger.cycle.keeper import Keeper
    name = getattr(args, "market", None)
    if not settings.markets:
        if name is not None:
            raise ConfigError("--market", f"names an entry of HEDGER_MARKETS, which is not set (got {name!r})",
                              "drop --market: this configuration has one market (HEDGER_MARKET)")
        k = _checked_keeper(settings) if checked else Keeper.from_settings(settings, use_journal=use_journal)
        return [(None, k)]
    from hedger.cycle.multimarket import MultiKeeper
    mk = (_checked_multi_keeper(settings) if checked
          else MultiKeeper.from_settings(settings, use_journal=use_journal))
    if name is None:
        return list(mk.keepers.items())
    if name not in mk.keepers:
        raise ConfigError("--market", f"{name!r} is not a name in HEDGER_MARKETS ({', '.join(mk.keepers)})",
                          "use one of those names, or drop --market to act on every market")
    return [(name, mk.keepers[name])]


def _heading(name: str | None, k: Any, first: bool) -> None:
    if name is not None:
        print(("" if first else "\n") + f"== {name} ({k.adapter.market}) ==")


def cmd_pause(args: argparse.Namespace) -> int:
    for name, k in _selected(Settings.from_env(), args):
        k.set_paused(args.reason)
        print(f"paused: cycles for {k.account} on {k.adapter.market}{'' if name is None else f' ({name})'} read "
              f"and report but send nothing (`hedger resume` to undo)")
        _warn_unknown_market(k, "pause")
    return 0


def _warn_unknown_market(k: Any, what: str) -> None:
    """A pause is kept per market: a mistyped HEDGER_MARKET pauses a market nothing hedges while the
    keeper goes on with the real one. When the journal knows this account on other markets only, say so."""
    if k.journal is None:
        return
    known = k.journal.markets_of(k.account)
    if known and k.adapter.market not in known:
        print(f"hedger: warning: the journal has no cycle of {k.account} on {k.adapter.market}, only on "
              f"{', '.join(known[:5])}: the {what} applies to {k.adapter.market} alone; check HEDGER_MARKET",
              file=sys.stderr)


def cmd_resume(args: argparse.Namespace) -> int:
    for name, k in _selected(Settings.from_env(), args):
        k.set_paused(None)
        print(f"resumed: cycles for {k.account} on {k.adapter.market}{'' if name is None else f' ({name})'} "
              f"send again")
        _warn_unknown_market(k, "resume")
    return 0


def cmd_unwind(args: argparse.Namespace) -> int:
    """Each selected market in turn; a market that cannot be unwound does not stop the next one."""
    from hedger.cycle.multimarket import worst_exit_code
    from hedger.cycle.unwind import UNFINISHED, unwind
    _positive("--timeout", args.timeout, "give the seconds it may wait for pending orders, e.g. 600", closed=True)
    settings = Settings.from_env()
    selected = _selected(settings, args, checked=True)
    if selected[0][1].signer is None and not args.dry_run:
        raise ConfigError("HEDGER_PRIVATE_KEY", "unwinding needs a signer", "set HEDGER_PRIVATE_KEY or "
                          "HEDGER_APE_ACCOUNT (or use --dry-run)")
    codes = []
    for i, (name, k) in enumerate(selected):
        _heading(name, k, i == 0)
        r = unwind(k, timeout=args.timeout, dry_run=args.dry_run)
        where = "" if name is None else f"{name}: "
        print(where + r.message, file=sys.stderr if r.exit_code else sys.stdout)
        codes.append(r.exit_code)
    # 13 ("run it again later") must not hide another market's alarm or failure
    return worst_exit_code([c for c in codes if c != UNFINISHED]) or (UNFINISHED if UNFINISHED in codes else 0)


def cmd_report(args: argparse.Namespace) -> int:
    from hedger.state.journal import Journal
    from hedger.ops.report import build_report, eth_prices, print_report, write_csv
    settings = Settings.from_env()
    if not settings.journal_path.exists():
        raise ConfigError("HEDGER_JOURNAL_PATH", f"no journal at {settings.journal_path}",
                          "point it at the journal the hedger writes")
    selected = _selected(settings, args, use_journal=False)
    eth_usd = None if args.eth_usd is None else positive_e18("--eth-usd", args.eth_usd, "3000")
    csv_paths = {name: _csv_path(args.csv, name, len(selected)) for name, _k in selected} if args.csv else {}
    journal = Journal(settings.journal_path)
    # with HEDGER_MARKETS, an ETH market's readings price the other markets' gas, cycle by cycle
    eth_usd_at: dict[tuple[str, int], int] = {}
    if eth_usd is None:
        for m in settings.markets:
            eth_usd_at.update(eth_prices(journal, selected[0][1].account, m.market))
    for i, (name, k) in enumerate(selected):
        _heading(name, k, i == 0)
        rep = build_report(journal, k.account, k.adapter.market, eth_usd=eth_usd, eth_usd_at=eth_usd_at)
        print_report(rep)
        if args.csv:
            path = csv_paths[name]
            write_csv(rep, path)
            print(f"written: {path}")
    return 0


def _csv_path(arg: str, name: str | None, n_markets: int) -> "Any":
    """Where ``report --csv`` writes (one file per market: NAME before the suffix, report.csv ->
    report-BTC.csv), checked before anything is printed: its folder must exist and be writable."""
    import os
    from pathlib import Path
    path = Path(arg)
    if name is not None and n_markets > 1:
        path = path.with_name(f"{path.stem}-{name}{path.suffix}")
    folder = path.parent
    if path.is_dir():
        raise ConfigError("--csv", f"{path} is a folder", "give a file name, e.g. --csv report.csv")
    if not folder.is_dir():
        raise ConfigError("--csv", f"the folder {folder} does not exist",
                          f"create it (mkdir -p {folder}) or write elsewhere, e.g. --csv report.csv")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError("--csv", f"{path} is not writable", "choose a path you may write to")
    return path


def cmd_check(args: argparse.Namespace) -> int:
    from hedger.ops.check import print_checks, run_checks, run_multi_checks
    from hedger.cycle.keeper import Keeper
    settings = Settings.from_env()
    if settings.markets:
        from hedger.cycle.multimarket import MultiKeeper
        checks = run_multi_checks(MultiKeeper.from_settings(settings, use_journal=False))
    else:
        checks = run_checks(Keeper.from_settings(settings, use_journal=False))
    print_checks(checks)
    return 0 if all(c.ok for c in checks) else 5


def _checked_keeper(settings: Settings) -> "Any":
    """A keeper whose configuration passed `hedger check` (else ChainGuardError, exit 5)."""
    from hedger.ops.check import require_ok, run_checks
    from hedger.cycle.keeper import Keeper
    k = Keeper.from_settings(settings)
    require_ok(run_checks(k))
    return k


def cmd_run_once(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if settings.markets:
        return _run_once_multi(settings, args)
    k = _checked_keeper(settings)
    if k.signer is None and not args.dry_run:
        print("no signer configured (HEDGER_PRIVATE_KEY / HEDGER_APE_ACCOUNT): dry run, nothing is sent",
              file=sys.stderr)
    res = k.cycle(dry_run=args.dry_run)
    print_cycle(res, as_json=args.json)
    if res.exit_code != 0:
        print(f"hedger: {res.outcome}: {res.error}", file=sys.stderr)
    return res.exit_code


def _checked_multi_keeper(settings: Settings) -> "Any":
    """A MultiKeeper whose every market passed `hedger check` (else ChainGuardError, exit 5)."""
    from hedger.ops.check import require_ok, run_multi_checks
    from hedger.cycle.multimarket import MultiKeeper
    mk = MultiKeeper.from_settings(settings)
    require_ok(run_multi_checks(mk))
    return mk


def _run_once_multi(settings: Settings, args: argparse.Namespace) -> int:
    mk = _checked_multi_keeper(settings)
    if mk.signer is None and not args.dry_run:
        print("no signer configured (HEDGER_PRIVATE_KEY / HEDGER_APE_ACCOUNT): dry run, nothing is sent",
              file=sys.stderr)
    res = mk.cycle(dry_run=args.dry_run)
    if args.json:
        print(json.dumps({"exit_code": res.exit_code, "notes": res.notes,
                          "markets": [{"name": name, "market": mk.keepers[name].adapter.market, **cycle_dict(r)}
                                      for name, r in res.results.items()]}))
    else:
        for note in res.notes:
            print(f"reconciled: {note}")
        for i, (name, r) in enumerate(res.results.items()):
            if i:
                print()
            print(f"== {name} ({mk.keepers[name].adapter.market}) ==")
            print_cycle(r)
    for name, r in res.results.items():
        if r.exit_code != 0:
            print(f"hedger: {name}: {r.outcome}: {r.error}", file=sys.stderr)
    return res.exit_code


def cmd_deploy(args: argparse.Namespace) -> int:
    from hedger.sim.deploy import deploy_reference
    from hedger.chain.executor import TxSender
    from hedger.cycle.keeper import make_web3
    settings = Settings.from_env(for_deploy=True)
    signer = settings.build_signer()
    if signer is None:
        raise ConfigError("HEDGER_PRIVATE_KEY", "deploying needs a signer",
                          "set HEDGER_PRIVATE_KEY or HEDGER_APE_ACCOUNT")
    w3 = make_web3(settings.rpc_url)
    try:
        w3.eth.chain_id
    except Exception as err:
        from hedger.core.secrets import RPC_FIX
        raise RpcError(f"cannot reach the RPC at {settings.rpc_display}: {type(err).__name__}. "
                       f"Fix: {RPC_FIX}") from err
    sender = TxSender(w3, signer)
    from hedger.sim.deploy import check_reuse
    oracle, collateral = check_reuse(sender, args.oracle, args.collateral)     # before the first transaction
    if args.fund:                          # refuse before deploying: a reused collateral may not be ours
        from hedger.sim.deploy import check_fund, fund
        check_fund(sender, args.fund, {"collateral": collateral} if collateral else {})
    d = deploy_reference(sender, oracle=oracle, collateral=collateral)
    print(f"deployed the reference protocol on chain {d.chain_id} via {settings.rpc_display}", file=sys.stderr)
    if args.fund:
        minted = fund(sender, d, args.fund)
        print(f"funded {args.fund}: {minted['WETH'] / 10**18:g} WETH, {minted['USDC'] / 10**6:,.0f} USDC (test "
              "tokens minted on the reference tokens)", file=sys.stderr)
    print(json.dumps(d.as_dict()))
    return 0


def _positive(flag: str, value: float | None, fix: str, *, lo: float = 0, hi: float | None = None,
              closed: bool = False) -> None:
    """A numeric flag within (lo, hi] (``closed``: [lo, hi]); a ConfigError naming it otherwise."""
    if value is None:
        return
    if value < lo or (value == lo and not closed) or (hi is not None and value > hi) or value != value:
        raise ConfigError(flag, f"{value:g} is out of range", fix)


def cmd_watch(args: argparse.Namespace) -> int:
    from hedger.ops.watch import WatchOptions, Watcher
    # before any setting is read: --interval 0 would poll the node in a tight loop
    _positive("--interval", args.interval, "give the seconds between cycles, e.g. --interval 60")
    _positive("--max-failures", args.max_failures, "give the failed cycles in a row that stop the keeper, e.g. 5")
    _positive("--backoff-max", args.backoff_max, "give the longest wait after errors in seconds, e.g. 300")
    _positive("--max-cycles", args.max_cycles, "give a number of cycles, or leave it out to run until stopped")
    _positive("--metrics-port", args.metrics_port, "give a TCP port from 1 to 65535, e.g. 9108", hi=65535)
    settings = Settings.from_env()
    k: Any
    if settings.markets:
        k = _checked_multi_keeper(settings)
    else:
        k = _checked_keeper(settings)
    if k.signer is None and not args.dry_run:
        print("no signer configured: watching in dry-run mode, nothing is sent", file=sys.stderr)
    opts = WatchOptions(interval=args.interval, every_block=args.every_block, max_failures=args.max_failures,
                        backoff_max=args.backoff_max, max_cycles=args.max_cycles, json_logs=args.json_logs,
                        dry_run=args.dry_run)
    observers = []
    if args.metrics_port is not None:
        from hedger.ops.metrics import build as build_metrics
        observers.append(build_metrics(args.metrics_port, host=args.metrics_host,
                                       markets=[m.name for m in settings.markets]))
    if settings.alert_webhook is not None:
        from hedger.ops.alerts import build as build_alerts
        observers.append(build_alerts(settings))
    return Watcher(k, opts, observers=observers).run()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("perp-hedger")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hedger", description="On-chain perp hedger: keep a spot holding delta-neutral.")
    p.add_argument("-v", "--verbose", action="store_true", help="log each step to stderr")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    st = sub.add_parser("status", help="read everything and show what the hedger would decide")
    st.add_argument("--json", action="store_true", help="one JSON object")
    st.set_defaults(func=cmd_status)
    ro = sub.add_parser("run-once", help="one hedge cycle (safe for cron)")
    ro.add_argument("--dry-run", action="store_true", help="print the planned calls, send nothing")
    ro.add_argument("--json", action="store_true", help="print the result as one JSON object")
    ro.set_defaults(func=cmd_run_once)
    pa = sub.add_parser("pause", help="pause: cycles read and report but send nothing")
    pa.add_argument("--reason", default="paused by the operator", help="shown by status and every cycle")
    pa.set_defaults(func=cmd_pause)
    re_ = sub.add_parser("resume", help="undo pause")
    re_.set_defaults(func=cmd_resume)
    un = sub.add_parser("unwind", help="close the short and withdraw the margin, in safe steps")
    un.add_argument("--timeout", type=float, default=600.0,
                    help="at most this many seconds in all of waiting for pending two-step orders (each is waited "
                         "for until filled or, at the latest, its own expiry, then cancelled); default 600")
    un.add_argument("--dry-run", action="store_true", help="show the first step, send nothing")
    un.set_defaults(func=cmd_unwind)
    rp = sub.add_parser("report", help="funding, fees, gas, PnL and hedge cost per day, from the journal")
    rp.add_argument("--csv", help="also write the table to this CSV file")
    rp.add_argument("--eth-usd", help="price gas at this ETH/USD (default: the oracle's, when it prices ETH)")
    for cmd in (pa, re_, un, rp):
        cmd.add_argument("--market", metavar="NAME", help="with HEDGER_MARKETS: only this entry (default: every "
                         "market, in the configured order)")
    rp.set_defaults(func=cmd_report)
    ch = sub.add_parser("check", help="confirm addresses, interfaces, chain id and signer gas on chain")
    ch.set_defaults(func=cmd_check)
    wa = sub.add_parser("watch", help="the long-running keeper: a cycle every N seconds or on each new block")
    wa.add_argument("--interval", type=float, default=60.0, help="seconds between cycles (default 60)")
    wa.add_argument("--every-block", action="store_true", help="run a cycle on each new block")
    wa.add_argument("--max-failures", type=int, default=5, help="circuit breaker: stop after N failed cycles in a row")
    wa.add_argument("--backoff-max", type=float, default=300.0, help="longest wait between retries after errors")
    wa.add_argument("--max-cycles", type=int, default=None, help="stop after N cycles")
    wa.add_argument("--json-logs", action="store_true", help="one JSON object per line")
    wa.add_argument("--dry-run", action="store_true", help="decide and print, send nothing")
    wa.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port")
    wa.add_argument("--metrics-host", default="127.0.0.1", help="address for the metrics endpoint (default loopback)")
    wa.set_defaults(func=cmd_watch)
    de = sub.add_parser("deploy", help="deploy the reference protocol; prints its addresses as JSON")
    de.add_argument("--oracle", help="reuse this AggregatorV3 price feed instead of deploying one")
    de.add_argument("--collateral", help="reuse this ERC20 as collateral instead of deploying one")
    de.add_argument("--fund", metavar="ADDRESS", help="then mint 10 test WETH and 50,000 test USDC to ADDRESS "
                    "(only on the reference tokens this deploy owns)")
    de.set_defaults(func=cmd_deploy)
    from hedger.sim.simcli import add_parser as add_simulate
    add_simulate(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("web3", "urllib3", "ape"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except HedgerError as err:
        print(f"hedger: {type(err).__name__}: {redact_urls(str(err))}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader of our output went away (`hedger report | head`): stop quietly, as a command
        # stopped by SIGPIPE does (nothing more is printed, and the exit's flush goes nowhere)
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return 141
    except Exception as err:  # last resort: still never leak a URL
        print(f"hedger: unexpected {type(err).__name__}: {redact_urls(str(err))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
