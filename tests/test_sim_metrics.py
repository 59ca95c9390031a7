"""Simulator figures that can fail (issue 13): baselines in the same run (open-once on chain, the
ideal hedge computed), tracking on one yardstick, every run ending with a paid exit, a squeeze
that liquidates a hedge nobody tops up, and runs whose cycles mostly fail made loud."""

from __future__ import annotations

import argparse
import math
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import pytest

from hedger.core.types import UNIT, PolicyParams
from hedger.sim import scenarios, simcli, simreport, simulate
from hedger.core.errors import ConfigError
from hedger.sim.simulate import Job, RunResult, Runner, SimChain, SimOptions, StepRecord, policies

POL = policies(PolicyParams())


def _step(price: float, exposure: float, position: float, *, d_spot: float = 0.0, d_perp: float = 0.0,
          decision: str = "held") -> StepRecord:
    return StepRecord(t_hours=0, price=price, exposure=exposure, target=-exposure, position=position, leverage=2.0,
                      margin_ratio=0.5, liq_distance=0.4, d_spot=d_spot, d_perp_price=d_perp, d_funding=0.0,
                      d_fees=-1.0, d_execution=0.0, d_gas=-0.5, funding_rate_yr=0.0, base_fee_gwei=10.0,
                      decision=decision)


def _run(policy: str, steps: list[StepRecord], **kw: Any) -> RunResult:
    return RunResult("path", 1, policy, steps, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 500_000.0, 0.0,
                     kw.pop("outcomes", {"acted": 1}), **kw)


def test_the_ideal_hedge_is_on_target_after_every_update_without_costs() -> None:
    # 10 units, price 100 -> 110 -> 99: the ideal short of 10 cancels the spot's moves exactly
    steps = [_step(100, 10, -6), _step(110, 10, -6, d_spot=100, d_perp=-60), _step(99, 12, -6, d_spot=-110, d_perp=66),
             _step(99, 12, 0, decision=simulate.UNWIND)]
    ideal = simreport.ideal_run(_run("default", steps))
    assert [s.position for s in ideal.steps] == [-10, -10, -12]          # the unwind is not a tracking step
    assert ideal.hedged_changes() == [0.0, 0.0]
    doc = simreport.report([_run("default", steps), _run("open-once", steps)], {})
    assert doc["policies"]["ideal"]["residual_risk_usd"] == 0.0
    assert doc["policies"]["default"]["gap_to_ideal_usd"] == doc["policies"]["default"]["residual_risk_usd"] > 0
    assert doc["policies"]["default"]["risk_vs_open_once"] == 1.0


def test_tracking_is_one_yardstick_for_every_policy() -> None:
    steps = [_step(100, 10, -10), _step(100, 10, -9.6), _step(100, 10, -9.4), _step(100, 10, -3),
             _step(100, 10, 0, decision=simulate.UNWIND)]
    s = simreport.summarize([_run("x", steps)])
    assert s["in_band_fraction"] == 0.5                                   # -10 and -9.6 within 5% of -10
    assert s["min_hedge_ratio"] == pytest.approx(0.3)                     # the unwind's 0 does not count


def test_a_run_whose_cycles_mostly_failed_is_loud_and_exits_non_zero(monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    steps = [_step(100, 10, 0), _step(100, 10, 0)]
    failing = _run("default", steps, outcomes={"failed": 3, "acted": 1},
                   errors={"failed": "step 1: collateral.approve: simulation reverted: Cannot call fallback"})
    monkeypatch.setattr(simulate, "run_jobs", lambda *a, **k: [failing])
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    simcli.add_parser(sub)
    args = parser.parse_args(["simulate", "--scenario", "gbm", "--policies", "default", "--no-progress"])
    assert simcli.cmd_simulate(args) == simcli.FAILED_RUN
    out = capsys.readouterr()
    assert "FAILED RUN: path seed 1 / default: 3 of 4 cycles failed" in out.err
    assert "Cannot call fallback" in out.err and "Cannot call fallback" in out.out    # and in the summary
    # a run with a minority of failures is reported, not fatal
    failing.outcomes = {"failed": 1, "acted": 3}
    assert simcli.cmd_simulate(args) == 0


def test_the_squeeze_rises_60pct_in_six_hours_with_gas_50x() -> None:
    sc = scenarios.make("squeeze", 1)
    answers = sc.prices()
    assert answers[84 - 1] / answers[11] == pytest.approx(1.6, rel=0.03)
    assert sum(s.dt for s in sc.steps[12:84]) == 6 * 3600
    calm = sum(s.base_fee for s in sc.steps[:12]) / 12
    assert min(s.base_fee for s in sc.steps[12:84]) > 20 * calm


# ------------------------------------------------------------------ on a fork

@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    c = SimChain().start()
    yield Runner(c, SimOptions(workdir=tmp_path_factory.mktemp("sim")))
    c.stop()


def test_a_hedge_nobody_tops_up_is_liquidated_in_the_squeeze_and_the_default_is_not(runner: Runner) -> None:
    default = runner.run(Job("squeeze", 1, POL["default"]))
    once = runner.run(Job("squeeze", 1, POL["open-once"]))
    assert default.liquidations == 0 and once.liquidations >= 1
    assert min(s.position / s.target for s in default.tracking_steps()) > 0.5
    # the margin the liquidation took is its own figure, not a fill premium: open-once's execution
    # cost stays what its opening paid (it read as -$1,124 when the forfeit was folded into it)
    liquidated = [s for s in once.steps if s.d_liquidation]
    assert len(liquidated) == once.liquidations and all(s.d_liquidation < 0 for s in liquidated)
    assert once.liquidation_usd == -sum(s.d_liquidation for s in once.steps) > 0
    assert once.execution_usd > 0 and once.cost_usd > 0
    assert default.liquidation_usd == 0
    # the holder's outflow in the gas spike went through (its own move, not the hedger's)
    assert any(s.flow < 0 for s in default.steps)
    # both end unwound, the exit paid
    assert default.unwound and default.steps[-1].position == 0 and default.steps[-1].d_fees < 0


# ------------------------------------------------------------------ second part: holdings, capital, lag, matching

def _pol(risk: float, cost: float) -> dict[str, Any]:
    return {"residual_risk_usd": risk, "cost_usd": cost, "cost_usd_per_run": cost}


def test_match_risk_compares_only_measured_runs_within_5pct_and_says_when_none_is() -> None:
    pols = {"default": _pol(100.0, 50.0), "fixed-interval": _pol(80.0, 400.0),
            "fixed-interval-4h": _pol(103.0, 200.0), "fixed-interval-8h": _pol(130.0, 90.0)}
    m = simreport.match_risk(pols, "default")
    assert m["matched"] == ["fixed-interval-4h"] and m["cost_ratio"] == pytest.approx(0.25)
    # two within 5%: against the cheaper one (what fixed-interval needs for that risk)
    m = simreport.match_risk({**pols, "fixed-interval-2h": _pol(97.0, 100.0)}, "default")
    assert m["matched"] == ["fixed-interval-2h", "fixed-interval-4h"] and m["cost_ratio"] == pytest.approx(0.5)
    # 4h moved out of the 5% band: interpolating 80..130 would give a ratio; a measured match gives none
    pols["fixed-interval-4h"] = _pol(94.0, 200.0)
    m = simreport.match_risk(pols, "default")
    assert m["matched"] == [] and m["cost_ratio"] is None and "no fixed-interval run within 5%" in m["note"]
    doc = {"policies": {}, "comparison": simreport.compare_fixed_interval(pols), "matched_risk": m}
    text = simreport.table(doc)
    assert "no ratio" in text and "at equal residual risk (" not in text     # no interpolated headline


def test_frontier_says_who_dominates_whom_and_whether_the_default_is_on_it() -> None:
    pols = {"default": _pol(10.0, 5.0), "fixed-interval": _pol(9.0, 20.0), "open-once": _pol(50.0, 1.0),
            "band-only": _pol(12.0, 6.0), "ideal": _pol(0.0, 0.0)}
    d = simreport.dominance(pols)
    by = {p["policy"]: p["dominated_by"] for p in d["points"]}
    assert by == {"default": [], "fixed-interval": [], "open-once": [], "band-only": ["default"]}
    assert d["default_on_frontier"] is True
    assert "default dominates band-only" in simreport.dominance_text(d)
    pols["fixed-interval"] = _pol(9.0, 4.0)                 # cheaper and less risky than the default
    d = simreport.dominance(pols)
    assert d["default_on_frontier"] is False
    assert "default is NOT on the frontier (dominated by fixed-interval)" in simreport.dominance_text(d)


def test_the_keeper_runs_every_nth_step_and_within_it_on_the_policy_interval() -> None:
    def ran(policy: simulate.PolicySpec, every: int, dt: int = 300, n: int = 60) -> list[int]:
        out, last = [], None
        for i in range(n):
            if simulate.due(i, i * dt, last, policy, every):
                out.append(i)
                last = i * dt
        return out
    assert ran(POL["default"], 12) == [0, 12, 24, 36, 48]
    assert ran(POL["default"], 1) == list(range(60))
    assert ran(POL["fixed-interval"], 1) == [0, 12, 24, 36, 48]           # 1 h of 5-minute steps
    assert ran(replace(POL["fixed-interval"], interval_s=2 * 3600), 12) == [0, 24, 48]
    assert ran(POL["open-once"], 12) == [0]


def test_capital_is_a_multiple_of_the_opening_hedges_notional() -> None:
    # 100 units hedged at ratio 1 at $3,000: $300,000 notional; 0.75 of it in USDC (6 decimals)
    answer = 3000 * 10**scenarios.PRICE_DECIMALS
    assert simulate.capital_units(3 * UNIT // 4, 100 * UNIT, UNIT, answer, 10**6) == 225_000 * 10**6
    assert simulate.capital_units(3 * UNIT // 4, 100 * UNIT, UNIT // 2, answer, 10**6) == 112_500 * 10**6


def test_the_funding_shock_flips_the_others_lean_within_an_hour() -> None:
    sc = scenarios.make("funding-shock", 1)
    leans = [s.lean for s in sc.steps]
    assert set(leans[:24]) == {2_000 * UNIT} and set(leans[24:]) == {-2_000 * UNIT}
    assert sc.steps[24].dt <= 3600
    # the holding's flows keep the lean
    assert [s.lean for s in simulate.Holding().apply(sc).steps] == leans


def _cli(monkeypatch: pytest.MonkeyPatch, *argv: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def fake(jobs: list[Job], *, chain_kw: Any = None, options: Any = None, **_: Any) -> list[RunResult]:
        seen.update(jobs=jobs, chain_kw=chain_kw, options=options)
        return [_run(j.policy.name, [_step(100, 10, -10), _step(100, 10, -10)]) for j in jobs]
    monkeypatch.setattr(simulate, "run_jobs", fake)
    parser = argparse.ArgumentParser()
    simcli.add_parser(parser.add_subparsers())
    seen["rc"] = simcli.cmd_simulate(parser.parse_args(["simulate", "--no-progress", *argv]))
    return seen


def test_cli_holding_capital_cadence_and_match_sweep(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    seen = _cli(monkeypatch, "--scenario", "squeeze", "--policies", "default", "--holding", "lp-only",
                "--capital", "0.75", "--cycle-every", "12", "--match-risk", "default", "--frontier")
    o = seen["options"]
    assert o.holding == simulate.Holding(spot=0, lp=100 * UNIT, flows=False)
    assert o.capital == 3 * UNIT // 4 and o.cycle_every == 12
    names = [j.policy.name for j in seen["jobs"]]
    assert names[0] == "default" and {f"fixed-interval-{h}h" for h in (1, 2, 4, 8, 12, 24)} <= set(names)
    out = capsys.readouterr().out
    assert "matched risk:" in out and "default is on the frontier" in out
    # a fill lag in delayed mode: the market's order expiry covers it
    seen = _cli(monkeypatch, "--scenario", "gbm", "--policies", "default", "--order-mode", "delayed",
                "--fill-lag", "2")
    assert seen["options"].fill_lag == 2 and seen["chain_kw"]["market_params"].maxOrderDelay >= 3 * 3600
    assert _cli(monkeypatch, "--scenario", "gbm", "--policies", "default", "--substeps", "12")["options"].substeps == 12
    for bad in (["--fill-lag", "1"], ["--capital", "0"], ["--cycle-every", "0"], ["--match-risk", "nope"],
                ["--substeps", "0"], ["--substeps", "61"]):
        with pytest.raises(ConfigError):
            _cli(monkeypatch, "--scenario", "gbm", "--policies", "default", *bad)


def test_with_capital_for_075_of_the_hedge_and_an_hourly_keeper_the_default_deleverages_in_the_squeeze(
        runner: Runner) -> None:
    # 5-minute prices, the keeper every 12 steps; the account holds 0.75 x the opening notional in all
    capped = Runner(runner.chain, replace(runner.o, capital=3 * UNIT // 4, cycle_every=12))
    r = capped.run(Job("squeeze", 1, POL["default"], steps=84))      # through the end of the rise
    sc = replace(scenarios.make("squeeze", 1), steps=scenarios.make("squeeze", 1).steps[:84])
    notional = 100 * sc.steps[0].answer / 10**scenarios.PRICE_DECIMALS
    assert r.reserve_start_usd == pytest.approx(0.75 * notional, rel=1e-6)
    assert sum(v for k, v in r.outcomes.items() if not k.startswith("unwind")) == len(range(0, len(sc.steps), 12))
    # the capital binds: the wallet could not fund every top-up, and the policy reduced the hedge
    # instead of being liquidated, keeping more than half of it
    assert any(s.decision in simreport.COLLATERAL_SHORT for s in r.steps)
    assert r.liquidations == 0
    assert 0.5 < min(s.position / s.target for s in r.tracking_steps()) < 0.95


def test_a_fill_lag_leaves_two_step_orders_pending_for_k_price_updates_then_fills_and_unwinds(
        tmp_path: Path) -> None:
    from hedger.sim.deploy import MarketParams
    c = SimChain(order_mode="delayed", market_params=MarketParams(maxOrderDelay=4 * 3600)).start()
    try:
        lagged = Runner(c, SimOptions(workdir=tmp_path, fill_lag=2)).run(Job("gbm", 1, POL["default"], steps=6))
        prompt = Runner(c, SimOptions(workdir=tmp_path)).run(Job("gbm", 1, POL["default"], steps=6))
    finally:
        c.stop()
    assert [s.position for s in lagged.steps[:2]] == [0.0, 0.0]          # placed at step 0, still pending
    assert lagged.steps[2].position < -80         # filled at the 2nd update after (the opening is split at $250k)
    assert prompt.steps[0].position < -80                                # no lag: filled within its step
    assert lagged.unwound and lagged.steps[-1].position == 0


def test_substeps_are_a_bridge_between_the_scenarios_own_prices() -> None:
    """Each step after the first as K updates: the K-th is the step's own price, the ones between
    wander at the path's volatility scaled to their time (so an hourly path gets 5-minute noise it
    never had), an outage stays an outage, a flow comes with its step's first update, the lean
    holds through the step; seeded."""
    sc = scenarios.with_flows(scenarios.make("funding-shock", 1), {5: 7 * UNIT})
    sub = scenarios.with_substeps(sc, 4, 1)
    n = len(sc.steps)
    assert len(sub.steps) == 1 + 4 * (n - 1) and sum(x.dt for x in sub.steps) == sum(x.dt for x in sc.steps)
    assert [sub.steps[4 * i].answer for i in range(n)] == [x.answer for x in sc.steps]
    between = [sub.steps[4 * i + j].answer for i in range(n - 1) for j in (1, 2, 3)]
    assert len(set(between) - {x.answer for x in sc.steps}) > len(between) * 0.9     # new prices, not repeats
    assert [x.spot_change for x in sub.steps if x.spot_change] == [7 * UNIT] and sub.steps[4 * 4 + 1].spot_change
    assert all(sub.steps[4 * (i - 1) + 1 + j].lean == sc.steps[i].lean for i in range(1, n) for j in range(4))
    log_moves = lambda steps: [math.log(b.answer / a.answer) for a, b in zip(steps, steps[1:])]  # noqa: E731
    whole, parts = statistics.pstdev(log_moves(sc.steps)), statistics.pstdev(log_moves(sub.steps))
    assert 0.4 < parts / whole < 0.6                                 # sqrt(1/4) of the step's volatility
    assert scenarios.with_substeps(sc, 4, 1) == sub and scenarios.with_substeps(sc, 4, 2) != sub
    outage = scenarios.make("oracle-outage", 1)
    assert sum(x.answer is None for x in scenarios.with_substeps(outage, 3, 1).steps) == \
        3 * sum(x.answer is None for x in outage.steps)
    assert scenarios.with_substeps(sc, 1, 1) == sc


def test_with_substeps_the_keeper_meets_prices_only_at_the_steps_end(runner: Runner) -> None:
    """An hourly GBM path as 4 updates an hour, the keeper at the hour only: it runs at every 4th
    update and at no other, the hour's prices are the scenario's, and the run still ends unwound."""
    sub = Runner(runner.chain, replace(runner.o, substeps=4))
    r = sub.run(Job("gbm", 1, POL["default"], steps=5))
    assert len(r.steps) == 1 + 4 * 4 + 1                               # the updates, then the unwind
    ran = [i for i, x in enumerate(r.steps[:-1]) if x.decision != "skipped"]         # the keeper ran
    assert ran == [0, 4, 8, 12, 16], ran
    hourly = [x.answer for x in scenarios.make("gbm", 1).steps[:5]]
    assert [round(r.steps[4 * i].price * 10**8) for i in range(5)] == hourly
    assert r.unwound and r.steps[-1].position == 0
