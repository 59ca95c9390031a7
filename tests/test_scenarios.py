"""Scenario generators for the simulator: reproducible, and each shaped as named."""

from __future__ import annotations

from pathlib import Path

import pytest

from hedger.scenarios import PRICE_DECIMALS, UNIT, from_csv, lp_units, make, with_flows

ONE = 10**PRICE_DECIMALS
SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "eth_usdt_binance_spot_1h_2017-08_2025-12.csv"


@pytest.mark.parametrize("name", ["gbm", "crash", "rally", "chop", "funding-long", "funding-short", "gap-up",
                                  "oracle-outage"])
def test_same_seed_same_path_other_seed_other_path(name: str) -> None:
    assert make(name, 7) == make(name, 7)
    assert make(name, 7).steps != make(name, 8).steps
    sc = make(name, 7)
    assert all(s.dt > 0 and s.base_fee > 0 for s in sc.steps)
    assert all(p is not None and p > 0 for p in sc.prices())


def test_crash_is_minus_40_percent_within_an_hour_with_a_gas_spike() -> None:
    sc = make("crash", 1)
    p, t = sc.prices(), [0]
    for s in sc.steps:
        t.append(t[-1] + s.dt)
    t = t[1:]
    worst = min(p[j] * 10**6 // p[i] for i in range(len(p)) for j in range(i, len(p)) if t[j] - t[i] <= 3600)
    assert 590_000 <= worst <= 610_000                  # -40% (+/- 1 point) within one hour
    fees = [s.base_fee for s in sc.steps]
    assert max(fees[24:30]) > 10 * max(fees[:24])       # gas spikes with the crash


def test_rally_gap_up_and_outage_shapes() -> None:
    r = make("rally", 3).prices()
    assert 1.5 < r[47] / r[23] < 1.7                    # about +60% over the day
    g = make("gap-up", 3).prices()
    assert abs(g[24] * 10**6 // g[23] - 1_250_000) <= 1  # +25% in one update (to rounding of the answers)
    o = make("oracle-outage", 3)
    assert [s.answer is None for s in o.steps[18:28]] == [False, False] + [True] * 6 + [False, False]


def test_funding_scenarios_lean_opposite_ways() -> None:
    assert make("funding-long", 1).skew_bias > 0 > make("funding-short", 1).skew_bias


def test_lp_leg_moves_as_one_over_sqrt_price() -> None:
    x0 = 10 * UNIT
    assert lp_units(x0, 3000 * ONE, 3000 * ONE) == x0
    assert lp_units(x0, 3000 * ONE, 12_000 * ONE) == 5 * UNIT      # 4x the price: half the ETH
    assert lp_units(x0, 3000 * ONE, 750 * ONE) == 20 * UNIT        # a quarter: twice


def test_flows_are_scheduled_exposure_changes() -> None:
    sc = with_flows(make("gbm", 1), {3: 5 * UNIT, 10: -2 * UNIT})
    assert sc.steps[3].spot_change == 5 * UNIT and sc.steps[10].spot_change == -2 * UNIT
    assert sum(s.spot_change for s in sc.steps) == 3 * UNIT


def test_csv_scenario_exact_and_validated(tmp_path: Path) -> None:
    f = tmp_path / "p.csv"
    f.write_text("timestamp,price\n1000,3000.12345678\n4600,2999.5\n8200,3001\n")
    sc = from_csv(f)
    assert [s.answer for s in sc.steps] == [300012345678, 299950000000, 300100000000]
    assert [s.dt for s in sc.steps] == [0, 3600, 3600]
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,price\n1000,3000\n900,3001\n")
    with pytest.raises(ValueError, match="timestamps must increase"):
        from_csv(bad)
    bad.write_text("time,close\n1,2\n")
    with pytest.raises(ValueError, match="first line"):
        from_csv(bad)
    for price in ("inf", "nan", "abc", ""):
        bad.write_text(f"timestamp,price\n1000,3000\n4600,{price}\n")
        with pytest.raises(ValueError, match=r"bad.csv:3: expected 'timestamp,price'"):
            from_csv(bad)
    with pytest.raises(ValueError, match="unknown scenario"):
        make("moon", 1)


@pytest.mark.skipif(not SHARED.exists(), reason="the shared price data is not beside this checkout")
def test_csv_reads_the_shared_hourly_eth_prices() -> None:
    sc = from_csv(SHARED, limit=500)
    assert len(sc.steps) == 500 and sc.steps[1].dt == 3600
    assert sc.steps[0].answer == 30079000000            # 2017-08-17 close: 300.79
