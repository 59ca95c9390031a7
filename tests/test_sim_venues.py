"""``hedger simulate --protocol gmx-v2 | aave-v3``: the simulator on the other venues, each on a
real fork (an upstream anvil with the venue deployed, forked through ape-foundry): the GMX v2
stand-in with its keeper executing after a delay, and the real Aave v3 and Uniswap v3 from their
npm artifacts with the pool arbitraged to the feed. One chain a venue for the module; short runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterator

import pytest

from hedger.core.errors import ConfigError
from hedger.core.types import PolicyParams
from hedger.sim.simulate import Job, RunResult, Runner, SimChain, SimOptions, policies

POL = policies(PolicyParams())
STEPS = 7


@pytest.fixture(scope="module")
def gmx() -> Iterator[SimChain]:
    c = SimChain(protocol="gmx-v2", order_mode="delayed", keeper_delay_s=30).start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def aave() -> Iterator[SimChain]:
    c = SimChain(protocol="aave-v3", order_mode="direct").start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def gmx_run(gmx: SimChain, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return Runner(gmx, SimOptions(workdir=tmp_path_factory.mktemp("gmx"))).run(Job("gbm", 1, POL["default"],
                                                                                    steps=STEPS))


@pytest.fixture(scope="module")
def aave_run(aave: SimChain, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return Runner(aave, SimOptions(workdir=tmp_path_factory.mktemp("aave"))).run(Job("gbm", 1, POL["default"],
                                                                                     steps=STEPS))


def _clean(res: RunResult) -> None:
    assert res.failed_cycles == 0, res.errors
    assert res.unwound and res.liquidations == 0, res.errors
    last = res.steps[-1]
    assert last.decision == "unwind" and last.position == 0


def _tracks(res: RunResult) -> None:
    # after the opening (split at the $250k order cap), the short follows the holding into the band
    for s in res.tracking_steps()[2:]:
        assert s.position < 0 and abs(s.position - s.target) <= 0.05 * abs(s.target) + 1e-9, s


def test_gmx_v2_run_hedges_through_orders_executed_after_the_keepers_delay(gmx_run: RunResult) -> None:
    _clean(gmx_run)
    _tracks(gmx_run)
    # every size change is an order the stand-in's keeper executed; each of ours created one
    assert gmx_run.outcomes.get("acted", 0) >= 3


def test_gmx_v2_execution_fees_in_the_native_token_are_a_cost(gmx_run: RunResult) -> None:
    # position fees (0.04-0.06% of each order) alone are below what the run paid: the execution
    # fee (ETH sent with each order, its excess refunded at execution) is counted as a fee
    traded = sum(abs(b.position - a.position) * b.price for a, b in zip(gmx_run.steps, gmx_run.steps[1:]))
    traded += abs(gmx_run.steps[0].position) * gmx_run.steps[0].price
    assert gmx_run.fees_usd > 0.0006 * traded
    # ... and never by charging equity twice: the fill premium (price impact, the close's fees
    # booked in the margin ahead) stays small beside the fees over the whole run
    assert abs(gmx_run.execution_usd) < gmx_run.fees_usd


def test_gmx_v2_carry_is_measured_on_chain_and_matches_the_models_rate(gmx_run: RunResult) -> None:
    """Borrowing (both sides pay) and funding (the others lean long: shorts earn it, claimable)
    accrue on the stand-in; the carry the run measured on chain over the hours it held matches
    the rate the venue's model reads from Reader.getMarketInfo (the record's funding rate), to 20%.
    (Without the stand-in's wide funding arithmetic, the Reader reverted once more than $115 of
    funding had accrued in the market since its last update.)"""
    held = gmx_run.tracking_steps()[1:]
    measured = sum(s.d_funding for s in held) + gmx_run.steps[-1].d_funding
    expected = sum(a.position * a.price * (b.funding_rate_yr / 365) / 24 * (b.t_hours - a.t_hours) * -1
                   for a, b in zip(gmx_run.tracking_steps(), held))
    assert expected < 0 and measured < 0
    assert abs(measured - expected) <= 0.2 * abs(expected), (measured, expected)


def test_aave_v3_run_borrows_sells_and_pays_the_reserves_rate(aave_run: RunResult, aave: SimChain) -> None:
    _clean(aave_run)
    _tracks(aave_run)
    # interest on the WETH debt at the reserve's utilisation (70% by the background borrower: about
    # 2.1%/yr on Aave's live WETH curve), from Aave's indices, less nothing earned on USDC (unborrowed)
    held = aave_run.tracking_steps()
    paid = -sum(s.d_funding for s in held[1:])
    notional_hours = sum(-a.position * b.price * (b.t_hours - a.t_hours) for a, b in zip(held, held[1:]))
    rate = paid / notional_hours * 24 * 365
    assert 0.015 < rate < 0.03, rate
    # the swaps pay the pool's fee (0.05%) and their price impact against the oracle's price
    assert aave_run.fees_usd > 0 and aave_run.execution_usd > 0


def test_aave_v3_pool_is_arbitraged_to_the_feed_and_the_lp_leg_is_a_real_position(
        aave: SimChain, aave_run: RunResult) -> None:
    from hedger.sim.aave_uniswap import pool_answer
    from hedger.sim.scenarios import PRICE_DECIMALS
    d = aave.venue.d
    # the closing unwind bought WETH back in the pool after the last update: the next one arbitrages it
    answer = 2_950 * 10**PRICE_DECIMALS
    assert abs(pool_answer(aave.w3, d) - answer) > answer // 100
    aave.venue.publish(aave, answer)
    assert abs(pool_answer(aave.w3, d) - answer) <= answer // 10_000
    # the holder's LP leg was minted as a Uniswap v3 position and its asset counted as exposure: the
    # hedge covered spot (60) and LP (40) both at the opening
    first = aave_run.steps[0]
    assert first.exposure == pytest.approx(100.0, abs=0.01)


def _args(*argv: str) -> argparse.Namespace:
    from hedger.sim.simcli import add_parser
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers())
    return p.parse_args(["simulate", "--no-progress", *argv])


@pytest.mark.parametrize("argv, flag", [
    (["--protocol", "aave-v3", "--order-mode", "delayed"], "--order-mode"),
    (["--protocol", "gmx-v2", "--order-mode", "direct"], "--order-mode"),
    (["--keeper-delay", "5"], "--keeper-delay"),
    (["--protocol", "gmx-v2", "--keeper-delay", "300"], "--keeper-delay"),
    (["--protocol", "gmx-v2", "--fill-lag", "1"], "--fill-lag"),
    (["--token0"], "--token0"),
    (["--protocol", "aave-v3", "--fork-url", "http://127.0.0.1:1"], "--fork-url"),
    (["--protocol", "gmx-v2", "--fork-url", "http://127.0.0.1:1"], "--fork-url"),
    (["--protocol", "gmx-v2", "--gmx-market", "0x70d95587d40A2caf56bd97485aB3Eec10Bee6336"], "--gmx-market"),
    (["--protocol", "gmx-v2", "--fork-url", "http://127.0.0.1:1", "--gmx-deployment", "arbitrum",
      "--gmx-market", "0x70d95587d40A2caf56bd97485aB3Eec10Bee6337"], "--gmx-market"),
])
def test_venue_flags_refused_by_name_before_any_chain(argv: list[str], flag: str) -> None:
    from hedger.sim.simcli import cmd_simulate
    with pytest.raises(ConfigError) as err:
        cmd_simulate(_args("--scenario", "gbm", "--steps", "3", *argv))
    assert err.value.variable == flag and err.value.fix


def test_a_venues_order_mode_defaults_to_its_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from hedger.sim import simcli, simulate
    seen: dict[str, object] = {}

    def fake(jobs: list[Job], *, chain_kw: dict[str, object], **kw: object) -> list[RunResult]:
        seen.update(chain_kw)
        raise SystemExit(0)
    monkeypatch.setattr(simulate, "run_jobs", fake)
    with pytest.raises(SystemExit):
        simcli.cmd_simulate(_args("--scenario", "gbm", "--steps", "3", "--protocol", "gmx-v2",
                                  "--keeper-delay", "12"))
    assert seen["order_mode"] == "delayed" and seen["protocol"] == "gmx-v2" and seen["keeper_delay_s"] == 12
    assert "gmx_deployment" not in seen
    seen.clear()
    monkeypatch.setattr(simcli, "pin_fork_block", lambda url, chain_id=None: 123)    # no node behind the URL here
    with pytest.raises(SystemExit):
        simcli.cmd_simulate(_args("--scenario", "gbm", "--steps", "3", "--protocol", "gmx-v2", "--fork-url",
                                  "http://127.0.0.1:1/secret-key", "--gmx-deployment", "Arbitrum"))
    assert seen["gmx_deployment"] == "arbitrum" and seen["fork_url"] == "http://127.0.0.1:1/secret-key"
    assert seen["fork_block"] == 123
