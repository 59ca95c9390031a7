"""Simulation metrics on hand-made runs (no chain): variance reduction, summaries, the cost
comparison at equal risk, the frontier, JSON written whole."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from statistics import pvariance

import pytest

from hedger.sim import simreport
from hedger.sim.simulate import RunResult, StepRecord


def step(d_spot: float, d_perp: float = 0.0, *, fees: float = 0.0, gas: float = 0.0, funding: float = 0.0,
         position: float = -100.0, exposure: float = 100.0, margin_ratio: float | None = 0.5,
         liq: float | None = 0.4) -> StepRecord:
    return StepRecord(t_hours=0.0, price=3000.0, exposure=exposure, target=-exposure, position=position,
                      leverage=2.0, margin_ratio=margin_ratio, liq_distance=liq, d_spot=d_spot, d_perp_price=d_perp,
                      d_funding=funding, d_fees=fees, d_execution=0.0, d_gas=gas, funding_rate_yr=0.1,
                      base_fee_gwei=15.0)


def run(steps: list[StepRecord], policy: str = "default", scenario: str = "gbm", seed: int = 1, *,
        fees: float = 0.0, gas: float = 0.0, liqs: int = 0, txs: int = 0) -> RunResult:
    return RunResult(scenario, seed, policy, steps, liqs, txs, txs * 100_000, 0, fees, 0.0, 0.0, gas,
                     500_000.0, 1000.0, {})


def test_variance_reduction_of_a_perfect_and_a_half_hedge() -> None:
    moves = [100.0, -50.0, 30.0, -80.0, 10.0]
    perfect = run([step(0.0)] + [step(m, -m) for m in moves])
    half = run([step(0.0)] + [step(m, -m / 2) for m in moves])
    none = run([step(0.0)] + [step(m) for m in moves])
    assert simreport.variance_reduction([perfect]) == pytest.approx(1.0)
    assert simreport.variance_reduction([half]) == pytest.approx(0.75)     # 1 - (1/2)^2
    assert simreport.variance_reduction([none]) == pytest.approx(0.0)
    # the opening step (index 0) never counts; pooling concatenates the runs' steps
    pooled = 1 - pvariance([0.0] * 5 + moves) / pvariance(moves + moves)
    assert simreport.variance_reduction([perfect, none]) == pytest.approx(pooled)
    assert simreport.variance_reduction([run([step(0.0), step(0.0)])]) is None


def test_summary_sums_and_extremes() -> None:
    a = run([step(0.0, margin_ratio=None, liq=None), step(10.0, -10.0, margin_ratio=0.3, liq=0.2,
                                                           position=-90.0)], fees=5.0, gas=2.0, txs=3)
    b = run([step(0.0), step(-10.0, 10.0, margin_ratio=0.6, liq=0.5)], seed=2, fees=1.0, liqs=1, txs=1)
    s = simreport.summarize([a, b])
    assert s["runs"] == 2 and s["txs"] == 4 and s["liquidations"] == 1 and s["gas_used"] == 400_000
    assert s["cost_usd"] == pytest.approx(8.0) and s["cost_usd_per_run"] == pytest.approx(4.0)
    assert s["min_margin_ratio"] == 0.3 and s["nearest_liquidation"] == 0.2
    assert s["residual_delta_max"] == pytest.approx(10.0)


def _pol(risk: float, cost: float) -> dict[str, float]:
    return {"residual_risk_usd": risk, "cost_usd": cost}


def test_cost_compared_at_equal_risk_by_interpolation() -> None:
    pols = {"default": _pol(200, 1000), "fixed-interval": _pol(100, 10_000), "fixed-interval-4h": _pol(300, 4000)}
    c = simreport.compare_fixed_interval(pols)
    assert c is not None
    # at risk 200, halfway between 100 and 300: 7000
    assert c["equal_risk_cost_usd"] == pytest.approx(7000) and c["cost_ratio"] == pytest.approx(1000 / 7000)
    assert [p["against"] for p in c["per_interval"]] == ["fixed-interval", "fixed-interval-4h"]
    # less risky than every fixed interval: the least risky one is the (conservative) comparator
    c2 = simreport.compare_fixed_interval({**pols, "default": _pol(50, 1000)})
    assert c2["against"] == "fixed-interval" and c2["cost_ratio"] == pytest.approx(0.1)
    # riskier than every fixed interval: no claim
    c3 = simreport.compare_fixed_interval({**pols, "default": _pol(400, 1000)})
    assert "cost_ratio" not in c3 and "longer intervals" in c3["note"]
    assert simreport.compare_fixed_interval({"default": _pol(1, 1)}) is None


def test_frontier_marks_only_undominated_points() -> None:
    doc = {"policies": {
        "a": {"residual_risk_usd": 100, "cost_usd_per_run": 50, "variance_reduction": 0.99, "liquidations": 0},
        "b": {"residual_risk_usd": 200, "cost_usd_per_run": 20, "variance_reduction": 0.98, "liquidations": 0},
        "c": {"residual_risk_usd": 250, "cost_usd_per_run": 60, "variance_reduction": 0.97, "liquidations": 0},
        "d": {"residual_risk_usd": 100, "cost_usd_per_run": 50, "variance_reduction": 0.99, "liquidations": 0},
    }}
    pts = {p["label"]: p["frontier"] for p in simreport.frontier(doc)}
    assert pts == {"a": True, "b": True, "c": False, "d": True}     # c is dominated by both a and b
    assert "*" in simreport.frontier_table(simreport.frontier(doc))


def test_report_table_and_json(tmp_path: Path) -> None:
    runs = [run([step(0.0)] + [step(m, -m * 0.9) for m in (10.0, -20.0, 5.0)], policy=p, scenario=sc, seed=seed)
            for p in ("default", "fixed-interval") for sc in ("gbm", "crash") for seed in (1, 2)]
    doc = simreport.report(runs, {"seeds": [1, 2]})
    for name in ("default", "fixed-interval"):
        pol = doc["policies"][name]
        assert pol["runs"] == 4 and set(pol["scenarios"]) == {"gbm", "crash"}
        assert pol["variance_reduction"] == pytest.approx(0.99)
    text = simreport.table(doc)
    assert "(all)" in text and "crash" in text and "var.red." in text
    out = tmp_path / "r.json"
    simreport.write_json(doc, out)
    assert json.loads(out.read_text())["policies"]["default"]["runs"] == 4
    assert not (tmp_path / "r.json.tmp").exists()


def test_run_series_cumulates_each_component_and_the_hedged_total() -> None:
    """Figures worked out by hand, not from the series' own components."""
    steps = [step(0.0), step(100.0, -90.0, fees=-2.0, gas=-1.0, funding=-3.0),
             step(-50.0, 45.0, fees=-1.0, funding=0.5), step(20.0, -20.0, gas=-0.25)]
    steps[2].d_execution = -0.75
    r = run(steps)
    series = simreport.run_series(r)
    assert series["cum_unhedged"] == [0.0, 100.0, 50.0, 70.0]
    assert series["cum_spot"] == [0.0, 100.0, 50.0, 70.0]
    assert series["cum_perp_price"] == [0.0, -90.0, -45.0, -65.0]
    assert series["cum_fees"] == [0.0, -2.0, -3.0, -3.0]
    assert series["cum_gas"] == [0.0, -1.0, -1.0, -1.25]
    assert series["cum_funding"] == [0.0, -3.0, -2.5, -2.5]
    assert series["cum_execution"] == [0.0, 0.0, -0.75, -0.75]
    # 100 - 90 - 2 - 1 - 3 = 4; then -50 + 45 - 1 + 0.5 - 0.75 = -6.25; then 20 - 20 - 0.25
    assert series["cum_hedged"] == pytest.approx([0.0, 4.0, -2.25, -2.5])
    assert series["position"] == [-100.0] * 4 and series["price"] == [3000.0] * 4


def test_reserve_running_short_is_counted_and_noted() -> None:
    steps = [step(0.0), step(10.0, -10.0), step(-5.0, 5.0)]
    steps[1].decision = "collateral_limited"
    steps[2].decision = "deleverage"
    doc = simreport.report([run(steps, scenario="rally")], {})
    assert doc["policies"]["default"]["collateral_short_cycles"] == 2
    assert "rally / default: the reserve ran short in 2 cycles" in simreport.table(doc)


def test_the_hedged_change_pays_every_cost_and_the_cost_leaves_funding_apart() -> None:
    """Residual risk is the spread of what the hedged holding really did: fees, execution, gas,
    funding and what a liquidation took all move it; the cost of hedging is fees, execution and
    gas only (funding is carry, a liquidation's loss its own figure)."""
    s = replace(step(100.0, -90.0, fees=-2.0, gas=-1.0, funding=-3.0), d_execution=-4.0, d_liquidation=-50.0)
    r = run([step(0.0), s], fees=2.0, gas=1.0)
    r = replace(r, execution_usd=4.0, funding_usd=3.0, liquidation_usd=50.0)
    assert r.hedged_changes() == [100.0 - 90.0 - 2.0 - 1.0 - 3.0 - 4.0 - 50.0]
    assert r.unhedged_changes() == [100.0]
    assert r.cost_usd == pytest.approx(7.0)
    summary = simreport.summarize([r])
    assert summary["cost_usd"] == pytest.approx(7.0) and summary["funding_usd"] == 3.0
    assert summary["liquidation_usd"] == 50.0


def test_refused_and_failed_cycles_both_count_as_failed() -> None:
    r = replace(run([step(0.0)]), outcomes={"acted": 2, "held": 1, "refused": 3, "failed": 1, "partial": 1})
    assert r.failed_cycles == 5
    assert simreport.summarize([r])["failed_cycles"] == 5


def test_each_scenarios_figures_are_against_that_scenarios_baselines() -> None:
    """A policy's per-scenario risk vs open-once divides by open-once's risk in the same scenario,
    not over all scenarios (a calm scenario would otherwise look as good as a wild one)."""
    def moves(scale: float, hedge: float, policy: str, scenario: str) -> RunResult:
        ms = [scale, -scale / 2, scale / 3, -scale]
        return run([step(0.0)] + [step(m, -hedge * m) for m in ms], policy=policy, scenario=scenario)
    runs = [moves(10.0, 0.9, "default", "calm"), moves(10.0, 0.0, "open-once", "calm"),
            moves(1000.0, 0.9, "default", "wild"), moves(1000.0, 0.5, "open-once", "wild")]
    doc = simreport.report(runs, {})
    pols = doc["policies"]
    for sc in ("calm", "wild"):
        mine, base = pols["default"]["scenarios"][sc], pols["open-once"]["scenarios"][sc]
        ideal = pols["ideal"]["scenarios"][sc]
        assert mine["risk_vs_open_once"] == pytest.approx(mine["residual_risk_usd"] / base["residual_risk_usd"])
        assert mine["gap_to_ideal_usd"] == pytest.approx(mine["residual_risk_usd"] - ideal["residual_risk_usd"])
    assert pols["default"]["scenarios"]["calm"]["risk_vs_open_once"] == pytest.approx(0.1)
    assert pols["default"]["scenarios"]["wild"]["risk_vs_open_once"] == pytest.approx(0.2)
