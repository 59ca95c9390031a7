"""Simulator figures that can fail (issue 13): baselines in the same run (open-once on chain, the
ideal hedge computed), tracking on one yardstick, every run ending with a paid exit, a squeeze
that liquidates a hedge nobody tops up, and runs whose cycles mostly fail made loud."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import pytest

from hedger.core.types import UNIT, PolicyParams
from hedger.sim import scenarios, simcli, simreport, simulate
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
    # the holder's outflow in the gas spike went through (its own move, not the hedger's)
    assert any(s.flow < 0 for s in default.steps)
    # both end unwound, the exit paid
    assert default.unwound and default.steps[-1].position == 0 and default.steps[-1].d_fees < 0
