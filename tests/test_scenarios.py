"""Scenario generators for the simulator: reproducible, and each shaped as named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hedger.sim.scenarios import PRICE_DECIMALS, UNIT, Scenario, ScenarioError, from_csv, lp_units, make, with_flows

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


# ------------------------------------------------------------ csv:PATH:FROM:TO (issue 15, item 18)

MAR_1_2020 = 1_583_020_800          # 2020-03-01T00:00:00Z


def _hourly(path: Path, hours: int = 72, start: int = MAR_1_2020, skip: range = range(0)) -> Path:
    """``hours`` hourly rows from ``start`` (the hours in ``skip`` left out, as an exchange outage)."""
    rows = [f"{start + h * 3600},{3000 + h}" for h in range(hours) if h not in skip]
    path.write_text("timestamp,price\n" + "\n".join(rows) + "\n")
    return path


def _first_ts(sc: Scenario) -> int:
    return int(sc.meta["first_ts"])


def test_a_csv_window_cuts_the_file_to_an_episode(tmp_path: Path) -> None:
    f = _hourly(tmp_path / "eth.csv")                     # 2020-03-01 00:00 .. 2020-03-03 23:00
    day = make(f"csv:{f}:2020-03-02:2020-03-02", 1)       # a bare date as TO: through that whole day
    assert len(day.steps) == 24 and _first_ts(day) == MAR_1_2020 + 86_400
    assert day.steps[0].answer == 3024 * ONE and day.steps[0].dt == 0
    assert all(s.dt == 3600 for s in day.steps[1:])
    assert "2020-03-02" in day.name
    tail = make(f"csv:{f}:2020-03-03T12:00:", 1)         # ISO date-time, open end
    assert len(tail.steps) == 12 and _first_ts(tail) == MAR_1_2020 + 60 * 3600
    head = make(f"csv:{f}::2020-03-01T05:00:00Z", 1)      # open start, an inclusive instant
    assert len(head.steps) == 6
    same = make(f"csv:{f}:2020-03-01T02:00:00+00:00:2020-03-01T04:00:00+00:00", 1)
    assert [s.answer for s in same.steps] == [3002 * ONE, 3003 * ONE, 3004 * ONE]
    assert len(make(f"csv:{f}::", 1).steps) == 72 == len(make(f"csv:{f}", 1).steps)


def test_a_csv_path_may_hold_a_colon(tmp_path: Path) -> None:
    f = _hourly(tmp_path / "eth:usd.csv", hours=30)
    assert len(make(f"csv:{f}", 1).steps) == 30
    assert len(make(f"csv:{f}:2020-03-01T10:00:", 1).steps) == 20


@pytest.mark.parametrize("window, problem, fix", [
    ("2020-13-01:", r"'2020-13-01' is not a date", r"YYYY-MM-DD"),
    ("yesterday:today", r"'yesterday' is not a date", r"YYYY-MM-DD"),
    ("2020-03-02", r"one end", r"csv:PATH:FROM:TO"),
    ("2020-03-02T05:00", r"one end", r"csv:PATH:2020-03-02T05:00:"),
    ("2020-03-03:2020-03-02", r"empty.*2020-03-03.*after.*2020-03-02", r"FROM before TO"),
    ("2021-01-01:2021-02-01", r"outside the file's range 2020-03-01 00:00 to 2020-03-03 23:00 UTC",
     r"between 2020-03-01 00:00 and 2020-03-03 23:00"),
    (":2019-12-31", r"outside the file's range", r"between 2020-03-01"),
    ("2020-03-02T10:30:2020-03-02T13:30", r"1 row", r"widen the window"),      # the outage's hours
])
def test_a_bad_csv_window_says_what_is_wrong_and_the_fix(tmp_path: Path, window: str, problem: str,
                                                        fix: str) -> None:
    f = _hourly(tmp_path / "eth.csv", skip=range(35, 37))           # 11:00 and 12:00 of 2 March missing
    with pytest.raises(ScenarioError) as e:
        make(f"csv:{f}:{window}", 1)
    assert re.search(problem, str(e.value)), str(e.value)
    assert re.search(fix, e.value.fix), e.value.fix


def test_a_missing_csv_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as e:
        make(f"csv:{tmp_path}/nope.csv:2020-03-01:", 1)
    assert "nope.csv" in str(e.value) and "not found" in str(e.value)


@pytest.mark.skipif(not SHARED.exists(), reason="the shared price data is not beside this checkout")
def test_a_window_on_the_shared_file_is_the_march_2020_crash() -> None:
    sc = make(f"csv:{SHARED}:2020-03-11:2020-03-13", 1)
    assert 60 <= len(sc.steps) <= 72 and _first_ts(sc) == 1_583_884_800    # 2020-03-11T00:00Z
    prices = sc.prices()
    assert min(prices) < 0.65 * max(prices)               # the worst 24 h of the March 2020 crash is in it
