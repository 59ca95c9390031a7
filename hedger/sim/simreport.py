"""Simulation results: metrics per run and per policy, the summary table, JSON, plots, frontier.

Definitions (per step, after the keeper acted; USD):
- unhedged change: the spot holding's value change at the new price (flows excluded; an LP
  leg valued as a constant-product position, 2 * sqrt(k * P));
- hedged change: unhedged change + perp price PnL + funding + fees + execution (fill premium,
  liquidation losses) + gas;
- variance reduction: 1 - Var(hedged change) / Var(unhedged change), pooled over all runs
  of a group (seeds and scenarios) by concatenating their steps;
- residual risk: the standard deviation of the hedged change (USD per step);
- cost: fees + execution + gas (funding is reported apart: it is carry, not a trading cost);
  every run ends by unwinding through `hedger unwind`'s path, so exit fees, fill premium and gas
  are in it (the last step, ``unwind``);
- baselines in the same run, on the same seeds: ``open-once`` (the opening hedge, never touched:
  run on chain like any policy) and ``ideal`` (computed: exactly on target after every price
  update, no fees, no gas, no funding); ``risk_vs_open_once`` is a policy's residual risk over
  open-once's, ``gap_to_ideal_usd`` its residual risk less the ideal's;
- tracking: ``in_band_fraction``, the fraction of steps where the position is within a fixed 5%
  of the target (one yardstick for every policy), and ``min_hedge_ratio``, the lowest position /
  target reached (the closing unwind excluded from both).
Floats: this module only reports.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace
from pathlib import Path
from statistics import fmean, pvariance
from typing import Any, Iterable

from hedger.sim.simulate import FAILED_OUTCOMES, RunResult, StepRecord


COLLATERAL_SHORT = {"collateral_limited", "collateral_short", "deleverage"}
IN_BAND = 0.05                 # the fixed tracking yardstick: within 5% of the target
OPEN_ONCE, IDEAL = "open-once", "ideal"


def ideal_run(r: RunResult) -> RunResult:
    """The ideal hedge of ``r``'s path and holding: exactly on target (hedge ratio 1) after every
    price update, no fees, no gas, no funding. Computed from the path, not run on chain."""
    st = r.tracking_steps()
    steps: list[StepRecord] = []
    for i, s in enumerate(st):
        d_perp = 0.0 if i == 0 else -st[i - 1].exposure * (s.price - st[i - 1].price)
        steps.append(replace(s, target=-s.exposure, position=-s.exposure, leverage=0.0, margin_ratio=None,
                             liq_distance=None, d_perp_price=d_perp, d_funding=0.0, d_fees=0.0, d_execution=0.0,
                             d_gas=0.0, decision=IDEAL, txs=0, target_low=None))
    return RunResult(r.scenario, r.seed, IDEAL, steps, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, r.reserve_start_usd, 0.0, {},
                     "exactly on target after every price update; no fees, gas or funding")


def _tracking(runs: list[RunResult]) -> tuple[float | None, float | None]:
    """(fraction of steps within IN_BAND of the target, lowest hedge ratio reached)."""
    steps = [s for r in runs for s in r.tracking_steps() if abs(s.target) > 1e-12]
    if not steps:
        return None, None
    in_band = sum(1 for s in steps if abs(s.position - s.target) <= IN_BAND * abs(s.target))
    return in_band / len(steps), min(s.position / s.target for s in steps)


def _var(xs: list[float]) -> float:
    return pvariance(xs) if len(xs) > 1 else 0.0


def variance_reduction(runs: Iterable[RunResult]) -> float | None:
    h: list[float] = []
    u: list[float] = []
    for r in runs:
        h += r.hedged_changes()
        u += r.unhedged_changes()
    vu = _var(u)
    if vu == 0:
        return None
    return 1 - _var(h) / vu


def summarize(runs: list[RunResult]) -> dict[str, Any]:
    """One group's figures (totals over its runs, and per-run means where it says so)."""
    if not runs:
        return {}
    h = [x for r in runs for x in r.hedged_changes()]
    resid = [abs(s.exposure + s.position) for r in runs for s in r.tracking_steps()]
    resid_usd = [abs(s.exposure + s.position) * s.price for r in runs for s in r.tracking_steps()]
    margins = [s.margin_ratio for r in runs for s in r.tracking_steps() if s.margin_ratio is not None]
    liq = [s.liq_distance for r in runs for s in r.tracking_steps() if s.liq_distance is not None]
    n = len(runs)
    cost = sum(r.cost_usd for r in runs)
    in_band, min_ratio = _tracking(runs)
    outcomes: dict[str, int] = {}
    errors: dict[str, str] = {}
    for r in runs:
        for o, k in r.outcomes.items():
            outcomes[o] = outcomes.get(o, 0) + k
        for o, e in r.errors.items():
            errors.setdefault(o, f"{r.scenario} seed {r.seed}: {e}")
    return {
        "runs": n,
        "variance_reduction": variance_reduction(runs),
        "residual_risk_usd": math.sqrt(_var(h)) if h else 0.0,
        "residual_delta_mean": fmean(resid) if resid else 0.0,
        "residual_delta_max": max(resid) if resid else 0.0,
        "residual_delta_usd_mean": fmean(resid_usd) if resid_usd else 0.0,
        "min_margin_ratio": min(margins) if margins else None,
        "nearest_liquidation": min(liq) if liq else None,
        "liquidations": sum(r.liquidations for r in runs),
        "txs": sum(r.txs for r in runs),
        "gas_used": sum(r.gas_used for r in runs),
        "gas_usd": sum(r.gas_usd for r in runs),
        "fees_usd": sum(r.fees_usd for r in runs),
        "execution_usd": sum(r.execution_usd for r in runs),
        "funding_usd": sum(r.funding_usd for r in runs),
        # margin and fees liquidations took beyond the positions' losses (+: lost), apart from cost
        "liquidation_usd": sum(r.liquidation_usd for r in runs),
        "cost_usd": cost,
        "cost_usd_per_run": cost / n,
        "txs_per_run": sum(r.txs for r in runs) / n,
        "reserve_used_usd_max": max(r.reserve_used_usd for r in runs),
        # cycles where the reserve could not fund what the policy wanted (it grew less or deleveraged)
        "collateral_short_cycles": sum(1 for r in runs for s in r.steps if s.decision in COLLATERAL_SHORT),
        "funding_rate_yr_mean": fmean(s.funding_rate_yr for r in runs for s in r.steps),
        "funding_rate_yr_min": min(s.funding_rate_yr for r in runs for s in r.steps),
        "funding_rate_yr_max": max(s.funding_rate_yr for r in runs for s in r.steps),
        "spot_pnl_usd": sum(sum(s.d_spot for s in r.steps) for r in runs),
        "perp_price_pnl_usd": sum(sum(s.d_perp_price for s in r.steps) for r in runs),
        "in_band_fraction": in_band,
        "min_hedge_ratio": min_ratio,
        "outcomes": outcomes,
        "failed_cycles": sum(r.failed_cycles for r in runs),
        "first_errors": errors,
        "unwound_runs": sum(1 for r in runs if r.unwound),
    }


def group(runs: list[RunResult], key: str) -> dict[str, list[RunResult]]:
    out: dict[str, list[RunResult]] = {}
    for r in runs:
        out.setdefault(getattr(r, key), []).append(r)
    return out


def _against_baselines(entry: dict[str, Any], open_once: dict[str, Any] | None, ideal: dict[str, Any] | None) -> None:
    risk = entry["residual_risk_usd"]
    base = open_once["residual_risk_usd"] if open_once else None
    entry["risk_vs_open_once"] = risk / base if base else None
    entry["gap_to_ideal_usd"] = risk - ideal["residual_risk_usd"] if ideal else None


def report(runs: list[RunResult], meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON document: ``policies.<name>`` over all scenarios, with ``scenarios.<name>`` inside;
    the ``ideal`` baseline computed from the paths (one per scenario and seed)."""
    paths: dict[tuple[str, int], RunResult] = {}
    for r in runs:
        paths.setdefault((r.scenario, r.seed), r)
    ideal = [ideal_run(r) for r in paths.values()]
    pols: dict[str, Any] = {}
    for name, rs in {**group(runs, "policy"), IDEAL: ideal}.items():
        entry = summarize(rs)
        entry["scenarios"] = {sc: summarize(g) for sc, g in group(rs, "scenario").items()}
        pols[name] = entry
    for name, entry in pols.items():
        _against_baselines(entry, pols.get(OPEN_ONCE), pols[IDEAL])
        for sc, e in entry["scenarios"].items():
            _against_baselines(e, pols.get(OPEN_ONCE, {}).get("scenarios", {}).get(sc), pols[IDEAL]["scenarios"].get(sc))
    return {**meta, "policies": pols, "comparison": compare_fixed_interval(pols),
            "runs": [run_summary(r) for r in runs]}


def run_summary(r: RunResult) -> dict[str, Any]:
    s = summarize([r])
    return {"scenario": r.scenario, "seed": r.seed, "policy": r.policy, "description": r.description,
            "outcomes": r.outcomes, "reserve_start_usd": r.reserve_start_usd,
            "reserve_used_usd": r.reserve_used_usd, **{k: v for k, v in s.items() if k != "runs"}}


def compare_fixed_interval(pols: dict[str, Any], against: str = "default") -> dict[str, Any] | None:
    """The cost target, at equal residual risk: ``against``'s cost over the cost of fixed-interval
    rebalancing at the same residual risk, read off the fixed-interval runs' cost/risk curve
    (linear between the two intervals whose risks bracket ``against``'s). When ``against`` is
    less risky than every fixed interval run, the least risky one is the comparator (at equal
    risk fixed-interval would cost more still). Also each interval's own cost ratio and risk."""
    mine = pols.get(against)
    fixed = sorted(((v["residual_risk_usd"], v["cost_usd"], k) for k, v in pols.items()
                    if k.startswith("fixed-interval")), key=lambda x: x[0])
    if not mine or not fixed:
        return None
    risk, cost = mine["residual_risk_usd"], mine["cost_usd"]
    per = [{"against": k, "against_risk": r, "against_cost_usd": c, "cost_ratio": cost / c if c else None,
            "risk_ratio": risk / r if r else None} for r, c, k in fixed]
    out: dict[str, Any] = {"policy": against, "risk": risk, "cost_usd": cost, "per_interval": per}
    if risk <= fixed[0][0]:
        out.update(against=fixed[0][2], equal_risk_cost_usd=fixed[0][1],
                   how=f"{fixed[0][2]} is the least risky fixed interval run and is riskier still")
    elif risk > fixed[-1][0]:
        out["note"] = ("every fixed-interval policy run had lower residual risk; run longer intervals "
                       "(e.g. --policies fixed-interval-24h)")
        return out
    else:
        for (r0, c0, k0), (r1, c1, k1) in zip(fixed, fixed[1:]):
            if r0 <= risk <= r1:
                w = (risk - r0) / (r1 - r0) if r1 > r0 else 0.0
                out.update(against=f"{k0}..{k1}", equal_risk_cost_usd=c0 + w * (c1 - c0),
                           how=f"interpolated between {k0} and {k1} at equal residual risk")
                break
    eq = out["equal_risk_cost_usd"]
    out["cost_ratio"] = cost / eq if eq else None
    return out


MATCH_TOLERANCE = 0.05     # --match-risk: a fixed-interval run within 5% of the policy's residual risk


def match_risk(pols: dict[str, Any], against: str, tolerance: float = MATCH_TOLERANCE) -> dict[str, Any]:
    """``against``'s cost beside fixed-interval runs whose measured residual risk is within
    ``tolerance`` of its own (no interpolation): every such run, and the cost ratio against the
    cheapest of them. None of them within it: ``cost_ratio`` None and a note saying so."""
    mine = pols[against]
    risk, cost = mine["residual_risk_usd"], mine["cost_usd"]
    runs = sorted(((v["residual_risk_usd"], v["cost_usd"], k) for k, v in pols.items()
                   if k.startswith("fixed-interval")), key=lambda x: x[0])
    swept = [{"against": k, "against_risk": r, "against_cost_usd": c, "risk_ratio": r / risk if risk else None,
              "cost_ratio": cost / c if c else None} for r, c, k in runs]
    within = [p for p in swept if p["risk_ratio"] is not None and abs(p["risk_ratio"] - 1) <= tolerance]
    out: dict[str, Any] = {"policy": against, "risk": risk, "cost_usd": cost, "tolerance": tolerance,
                           "swept": swept, "matched": [p["against"] for p in within], "cost_ratio": None}
    if within:
        # the cheapest run that reached this risk: what fixed-interval needs for it (the conservative ratio)
        best = min(within, key=lambda p: p["against_cost_usd"])
        out.update(against=best["against"], against_risk=best["against_risk"],
                   against_cost_usd=best["against_cost_usd"], cost_ratio=best["cost_ratio"])
    else:
        near = min(swept, key=lambda p: abs((p["risk_ratio"] or 0) - 1), default=None)
        out["note"] = (f"no fixed-interval run within {tolerance:.0%} of {against}'s residual risk "
                       f"({risk:,.1f} $/step)" + (f"; the nearest, {near['against']}, has {near['against_risk']:,.1f}"
                                                  if near else "") + ": no ratio")
    return out


def dominance(pols: dict[str, Any]) -> dict[str, Any]:
    """Which policies run dominate which: lower cost per run and lower residual risk (both
    strictly), over the runs given; the computed ideal is left out (it pays nothing)."""
    pts = {k: (v["residual_risk_usd"], v["cost_usd_per_run"]) for k, v in pols.items() if k != IDEAL}
    by = {k: sorted(o for o, (r2, c2) in pts.items() if r2 < r and c2 < c) for k, (r, c) in pts.items()}
    return {"points": [{"policy": k, "risk": r, "cost_usd_per_run": c, "dominated_by": by[k],
                        "frontier": not by[k]} for k, (r, c) in sorted(pts.items(), key=lambda x: x[1][0])],
            "default_on_frontier": (not by["default"]) if "default" in by else None}


def dominance_text(d: dict[str, Any]) -> str:
    pts = d["points"]
    w = max([6] + [len(p["policy"]) for p in pts])
    lines = [f"{'policy':<{w}} {'risk $/step':>12} {'cost $/run':>11}  frontier  dominated by (lower cost and lower risk)"]
    for p in pts:
        lines.append(f"{p['policy']:<{w}} {p['risk']:>12,.1f} {p['cost_usd_per_run']:>11,.0f}  "
                     f"{'yes' if p['frontier'] else 'no':<8}  {', '.join(p['dominated_by']) or '-'}")
    for p in pts:
        for q in p["dominated_by"]:
            lines.append(f"{q} dominates {p['policy']}")
    if d["default_on_frontier"] is not None:
        lines.append("default is on the frontier" if d["default_on_frontier"] else
                     "default is NOT on the frontier (dominated by "
                     + ", ".join(next(p for p in pts if p["policy"] == "default")["dominated_by"]) + ")")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ terminal

def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.2f}%"


def _money(v: float) -> str:
    return f"{v:,.0f}"


def table(doc: dict[str, Any]) -> str:
    """The summary table: one row per scenario and policy (all seeds pooled), then per policy."""
    cols = ["scenario", "policy", "runs", "var.red.", "risk $/step", "vs open-once", "gap to ideal $", "in band",
            "min ratio", "|delta| avg", "min margin", "nearest liq", "liqs", "txs", "gas used", "gas $", "fees $",
            "exec $", "funding $", "cost $", "liq. loss $", "reserve used $", "failed"]
    rows = []
    for pname, p in doc["policies"].items():
        for sc, s in p["scenarios"].items():
            rows.append((sc, pname, s))
        if len(p["scenarios"]) > 1:
            rows.append(("(all)", pname, p))
    rows.sort(key=lambda r: (r[0] == "(all)", r[0], r[1]))
    body = []
    for sc, pname, s in rows:
        body.append([sc, pname, str(s["runs"]), _pct(s["variance_reduction"]), _money(s["residual_risk_usd"]),
                     "-" if s.get("risk_vs_open_once") is None else f"{s['risk_vs_open_once']:.3f}",
                     "-" if s.get("gap_to_ideal_usd") is None else _money(s["gap_to_ideal_usd"]),
                     _pct(s["in_band_fraction"]),
                     "-" if s["min_hedge_ratio"] is None else f"{s['min_hedge_ratio']:.2f}",
                     f"{s['residual_delta_mean']:.2f}", _pct(s["min_margin_ratio"]), _pct(s["nearest_liquidation"]),
                     str(s["liquidations"]), str(s["txs"]), f"{s['gas_used']:,}", _money(s["gas_usd"]),
                     _money(s["fees_usd"]), _money(s["execution_usd"]), _money(s["funding_usd"]),
                     _money(s["cost_usd"]), _money(s["liquidation_usd"]), _money(s["reserve_used_usd_max"]),
                     str(s["failed_cycles"])])
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(cols)]
    line = lambda cells: "  ".join(c.rjust(w) if i > 1 else c.ljust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    out = [line(cols), line(["-" * w for w in widths])] + [line(b) for b in body]
    short = [(sc, pname, s["collateral_short_cycles"]) for sc, pname, s in rows
             if sc != "(all)" and s["collateral_short_cycles"]]
    for sc, pname, n in short:
        out.append(f"note: {sc} / {pname}: the reserve ran short in {n} cycles (the short grew less or was "
                   f"reduced); raise --reserve-usd (or --capital) to see what it needs")
    for pname, p in doc["policies"].items():
        for outcome, err in p["first_errors"].items():
            if outcome in FAILED_OUTCOMES or outcome == "unwind":
                out.append(f"error: {pname}: first {outcome}: {err}")
    cmp = doc.get("comparison")
    if cmp:
        out.append("")
        for p in cmp["per_interval"]:
            ratio = "-" if p["cost_ratio"] is None else f"{p['cost_ratio']:.3f}"
            out.append(f"cost of {cmp['policy']} / cost of {p['against']}: {ratio} "
                       f"(residual risk {cmp['risk']:,.0f} vs {p['against_risk']:,.0f} $/step)")
        if doc.get("matched_risk") is None:
            if cmp.get("cost_ratio") is not None:
                out.append(f"cost of {cmp['policy']} / cost of fixed-interval at equal residual risk "
                           f"({cmp['how']}; interpolated, not measured: --match-risk measures it): "
                           f"{cmp['cost_ratio']:.3f}")
            elif cmp.get("note"):
                out.append(f"at equal residual risk: {cmp['note']}")
    m = doc.get("matched_risk")
    if m:
        out.append("")
        for p in m["swept"]:
            mark = "  within 5%" if p["against"] in m["matched"] else ""
            rr = "-" if p["risk_ratio"] is None else f"{p['risk_ratio']:.3f}"
            out.append(f"matched risk: {p['against']}: residual risk {p['against_risk']:,.1f} $/step "
                       f"({rr} x {m['policy']}'s), cost {p['against_cost_usd']:,.0f} ${mark}")
        if m["cost_ratio"] is not None:
            out.append(f"cost of {m['policy']} / cost of {m['against']} at matched measured residual risk "
                       f"({m['risk']:,.1f} vs {m['against_risk']:,.1f} $/step, within {m['tolerance']:.0%}): "
                       f"{m['cost_ratio']:.3f}")
        else:
            out.append(f"matched risk: {m['note']}")
    return "\n".join(out)


def write_json(doc: dict[str, Any], path: Path) -> None:
    """Whole file or nothing: written beside the target, then renamed over it."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    tmp.replace(path)


def run_series(r: RunResult) -> dict[str, list[float | None]]:
    """A run as the plot's series (cumulative PnL by component)."""
    series: dict[str, list[float | None]] = {k: [] for k in (
        "t_hours", "price", "target", "target_low", "position", "exposure", "leverage", "liq_distance", "cum_spot",
        "cum_perp_price", "cum_funding", "cum_fees", "cum_execution", "cum_gas", "cum_liquidation", "cum_hedged",
        "cum_unhedged", "flow")}
    acc = dict(spot=0.0, perp_price=0.0, funding=0.0, fees=0.0, execution=0.0, gas=0.0, liquidation=0.0)
    for s in r.steps:
        acc["spot"] += s.d_spot
        acc["perp_price"] += s.d_perp_price
        acc["funding"] += s.d_funding
        acc["fees"] += s.d_fees
        acc["execution"] += s.d_execution
        acc["gas"] += s.d_gas
        acc["liquidation"] += s.d_liquidation
        series["t_hours"].append(s.t_hours)
        series["price"].append(s.price)
        series["target"].append(s.target)
        series["target_low"].append(s.target_low)
        series["position"].append(s.position)
        series["exposure"].append(s.exposure)
        series["leverage"].append(s.leverage)
        series["liq_distance"].append(s.liq_distance)
        series["flow"].append(s.flow)
        for k, v in acc.items():
            series[f"cum_{k}"].append(v)
        series["cum_hedged"].append(sum(acc.values()))
        series["cum_unhedged"].append(acc["spot"])
    return series


def plot_name(scenario: str, policy: str, seed: int) -> str:
    """The PNG's file name for a run: ``crash-default-seed1.png``; a ``csv:`` scenario by its
    file's name and window (``csv:data/eth.csv:2020-03-01:2020-03-20`` gives
    ``eth-2020-03-01-2020-03-20-default-seed1.png``)."""
    if scenario.startswith("csv:"):
        base = scenario[4:].rsplit("/", 1)[-1]
        stem, _, window = base.partition(".csv")
        scenario = stem + window.replace(":", "-")
    return f"{scenario}-{policy}-seed{seed}".replace(":", "_").replace("/", "_") + ".png"


def write_plots(runs: list[RunResult], folder: Path) -> list[Path]:
    """One PNG per scenario and policy, for the first seed run."""
    from hedger.sim import plots
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    seen: set[tuple[str, str]] = set()
    out = []
    for r in runs:
        key = (r.scenario, r.policy)
        if key in seen:
            continue
        seen.add(key)
        out.append(plots.plot_run(run_series(r), folder / plot_name(r.scenario, r.policy, r.seed),
                            title=f"{r.scenario} (seed {r.seed}), policy {r.policy}"))
    return out


def frontier(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Sweep points (risk, cost) with the Pareto frontier marked: no other point is both
    cheaper and less risky."""
    pts = [{"label": name, "risk": p["residual_risk_usd"], "cost_usd": p["cost_usd_per_run"],
            "variance_reduction": p["variance_reduction"], "liquidations": p["liquidations"],
            "policy": name.split("[")[0]} for name, p in doc["policies"].items() if name != IDEAL]
    for p in pts:
        p["frontier"] = not any(q is not p and q["risk"] <= p["risk"] and q["cost_usd"] <= p["cost_usd"]
                                and (q["risk"] < p["risk"] or q["cost_usd"] < p["cost_usd"]) for q in pts)
    return sorted(pts, key=lambda p: p["risk"])


def frontier_table(points: list[dict[str, Any]]) -> str:
    w = max([5] + [len(p["label"]) for p in points])
    lines = [f"{'point':<{w}} {'risk $/step':>12} {'cost $/run':>11} {'var.red.':>9} {'liqs':>5}  frontier"]
    for p in points:
        lines.append(f"{p['label']:<{w}} {p['risk']:>12,.1f} {p['cost_usd']:>11,.0f} "
                     f"{_pct(p['variance_reduction']):>9} {p['liquidations']:>5}  {'*' if p['frontier'] else ''}")
    return "\n".join(lines)


def as_dict(r: RunResult) -> dict[str, Any]:
    return asdict(r)
