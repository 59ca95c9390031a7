"""Market scenarios for replaying price paths through the keeper (the simulator's inputs).

A scenario is a list of steps, one per feed update: the seconds since the previous step,
the feed's answer (an integer with ``PRICE_DECIMALS``; ``None`` when the feed does not
update, as in an outage), the next block's base fee in wei, and the change of the hedged
spot holding (integer, 18 decimals). Paths are generated with ``random.Random(seed)``, so
a seed reproduces a run exactly. Prices are modelled in floating point and become integer
feed answers once, here.

Names: gbm, crash, rally, chop, funding-long, funding-short, gap-up, oracle-outage, squeeze,
funding-shock,
csv:PATH (``timestamp,price`` rows, as in ``../shared/data``) and csv:PATH:FROM:TO, the rows
of a date window (UTC; ``YYYY-MM-DD`` or an ISO date-time; either end may be empty; a bare
date as TO takes that whole day), to cut a file of years of hours to one episode.
"""

from __future__ import annotations

import csv
import math
import random
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path

PRICE_DECIMALS = 8
GWEI = 10**9
UNIT = 10**18


class ScenarioError(ValueError):
    """A scenario that cannot be made as named; ``fix`` says what to give instead."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.fix = fix


@dataclass(frozen=True)
class Step:
    dt: int                      # seconds since the previous step
    answer: int | None           # feed answer (PRICE_DECIMALS), None: no update this step
    base_fee: int                # wei
    spot_change: int = 0         # E18 units of the spot asset added (+) or removed (-)
    lean: int | None = None      # E18: the others' lean from this step on (None: the scenario's skew_bias)


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: tuple[Step, ...]
    # E18 asset units: the net position other traders lean to, long (+) or short (-). Arbitrage
    # against funding pulls them back (hedger.sim.venues.TraderModel). ETH perps mostly lean
    # long (funding ~8-11%/yr over 2021-2024), so a neutral market leans 300 ETH long.
    skew_bias: int = 300 * UNIT
    lp_units_at_start: int = 0   # E18: an LP leg whose asset amount moves as 1/sqrt(price)
    description: str = ""
    meta: dict[str, str] = field(default_factory=dict)

    def prices(self) -> list[int]:
        """The feed answers, carrying the last one through outages."""
        out, last = [], None
        for s in self.steps:
            last = s.answer if s.answer is not None else last
            out.append(last)
        return out


def _answer(price: float) -> int:
    return max(1, int(round(price * 10**PRICE_DECIMALS)))


def _base_fees(rng: random.Random, n: int, calm_gwei: float = 15.0, spike_at: int | None = None,
               spike_x: float = 40.0) -> list[int]:
    """Calm base fees around ``calm_gwei``; with ``spike_at``, a spike of ``spike_x`` decaying after it."""
    out = []
    for i in range(n):
        fee = calm_gwei * math.exp(rng.gauss(0, 0.15))
        if spike_at is not None and i >= spike_at:
            fee *= 1 + (spike_x - 1) * math.exp(-(i - spike_at) / 3)
        out.append(int(fee * GWEI))
    return out


def gbm(seed: int, *, steps: int = 168, dt: int = 3600, start: float = 3000.0, drift: float = 0.0,
        vol: float = 0.8) -> Scenario:
    """Geometric Brownian motion; ``drift`` and ``vol`` annualised (0.8 is ETH-like)."""
    rng = random.Random(seed)
    years = dt / (365 * 86400)
    p, answers = start, []
    for _ in range(steps):
        p *= math.exp((drift - vol * vol / 2) * years + vol * math.sqrt(years) * rng.gauss(0, 1))
        answers.append(_answer(p))
    fees = _base_fees(rng, steps)
    return Scenario("gbm", tuple(Step(dt, a, f) for a, f in zip(answers, fees)),
                    description=f"GBM drift {drift:.0%}/yr vol {vol:.0%}/yr, {steps} x {dt}s")


def crash(seed: int, *, start: float = 3000.0) -> Scenario:
    """A day of calm, then -40% within one hour (12 five-minute updates), then a day of aftermath;
    gas spikes with the crash."""
    rng = random.Random(seed)
    steps: list[tuple[int, float]] = []
    p = start
    for _ in range(24):
        p *= math.exp(rng.gauss(0, 0.006))
        steps.append((3600, p))
    for i in range(12):
        p *= 0.6 ** (1 / 12)
        steps.append((300, p))
    for _ in range(24):
        p *= math.exp(rng.gauss(0, 0.012))
        steps.append((3600, p))
    fees = _base_fees(rng, len(steps), spike_at=24)
    return Scenario("crash", tuple(Step(dt, _answer(px), f) for (dt, px), f in zip(steps, fees)),
                    description="-40% within an hour, gas x40 at the crash")


def rally(seed: int, *, start: float = 3000.0) -> Scenario:
    """+60% over one day (hourly), between calm days."""
    rng = random.Random(seed)
    p, steps = start, []
    for i in range(72):
        if 24 <= i < 48:
            p *= 1.6 ** (1 / 24) * math.exp(rng.gauss(0, 0.004))
        else:
            p *= math.exp(rng.gauss(0, 0.006))
        steps.append(p)
    fees = _base_fees(rng, len(steps))
    return Scenario("rally", tuple(Step(3600, _answer(px), f) for px, f in zip(steps, fees)),
                    description="+60% over one day")


def chop(seed: int, *, start: float = 3000.0, steps: int = 168, kappa: float = 0.3, vol: float = 0.02) -> Scenario:
    """Choppy mean reversion (Ornstein-Uhlenbeck on the log price), hourly."""
    rng = random.Random(seed)
    x, mu, out = 0.0, 0.0, []
    for _ in range(steps):
        x += kappa * (mu - x) + vol * rng.gauss(0, 1)
        out.append(start * math.exp(x))
    fees = _base_fees(rng, steps)
    return Scenario("chop", tuple(Step(3600, _answer(px), f) for px, f in zip(out, fees)),
                    description="mean-reverting chop")


def funding(seed: int, *, direction: int) -> Scenario:
    """A persistently skewed market: other traders lean long (+1, shorts earn funding) or short
    (-1, shorts pay funding: where the funding-aware option matters)."""
    base = gbm(seed, steps=168, vol=0.5)
    name = "funding-long" if direction > 0 else "funding-short"
    lean = 2_000 if direction > 0 else 1_500
    return Scenario(name, base.steps, skew_bias=direction * lean * UNIT,
                    description=f"others lean {'long' if direction > 0 else 'short'} {lean:,} ETH")


def gap_up(seed: int, *, start: float = 3000.0) -> Scenario:
    """+25% in a single update, between calm stretches."""
    rng = random.Random(seed)
    p, out = start, []
    for i in range(48):
        p = p * 1.25 if i == 24 else p * math.exp(rng.gauss(0, 0.005))
        out.append(p)
    fees = _base_fees(rng, len(out))
    return Scenario("gap-up", tuple(Step(3600, _answer(px), f) for px, f in zip(out, fees)),
                    description="+25% in one update")


def squeeze(seed: int, *, start: float = 3000.0) -> Scenario:
    """A short squeeze: half a day of calm, then +60% within six hours in five-minute updates with
    the base fee x50 throughout, then half a day of aftermath. A 2x short that never tops up is
    liquidated (it can stand about +45%); hourly top-ups at a few cents of gas cannot be assumed."""
    rng = random.Random(seed)
    steps: list[tuple[int, float]] = []
    p = start
    for _ in range(12):
        p *= math.exp(rng.gauss(0, 0.005))
        steps.append((3600, p))
    for _ in range(72):
        p *= 1.6 ** (1 / 72) * math.exp(rng.gauss(0, 0.002))
        steps.append((300, p))
    for _ in range(12):
        p *= math.exp(rng.gauss(0, 0.008))
        steps.append((3600, p))
    fees = _base_fees(rng, len(steps))
    fees = [f * 50 if 12 <= i < 84 else f for i, f in enumerate(fees)]
    return Scenario("squeeze", tuple(Step(dt, _answer(px), f) for (dt, px), f in zip(steps, fees)),
                    description="+60% within six hours (5-minute updates), gas x50 during it")


def funding_shock(seed: int, *, lean: int = 2_000) -> Scenario:
    """A funding shock: a day with the others leaning ``lean`` ETH long (shorts earn funding), then
    within one hour (one step) they lean as far short, and funding swings against the short over the
    next hours (velocity funding: the rate follows the skew), for two more days. GBM, 50%/yr, hourly."""
    base = gbm(seed, steps=72, vol=0.5)
    steps = tuple(replace(s, lean=(lean if i < 24 else -lean) * UNIT) for i, s in enumerate(base.steps))
    return Scenario("funding-shock", steps, skew_bias=lean * UNIT,
                    description=f"others lean {lean:,} ETH long, then {lean:,} ETH short within an hour")


def oracle_outage(seed: int) -> Scenario:
    """The feed stops updating for six hours while time (and the market) moves on."""
    base = gbm(seed, steps=48, vol=0.6)
    steps = tuple(Step(s.dt, None if 20 <= i < 26 else s.answer, s.base_fee) for i, s in enumerate(base.steps))
    return Scenario("oracle-outage", steps, description="no feed update for 6 hours")


WINDOW_FORM = "csv:PATH:FROM:TO, e.g. csv:PATH:2020-03-11:2020-03-13"
DATE_FORM = "dates as YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] (UTC), either end may be empty"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ].+)?")


def _utc(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M")


def _when(text: str, *, end: bool) -> int | None:
    """Unix seconds of a window end: None for an empty end; a bare date as the end (TO) means
    through that day's last second. ValueError when ``text`` is no date."""
    text = text.strip()
    if not text:
        return None
    if not _DATE.fullmatch(text):
        raise ValueError(text)
    when = datetime.fromisoformat(text.replace(" ", "T", 1))       # ValueError: 2020-13-01
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    if end and len(text) == 10:
        return int((when + timedelta(days=1)).timestamp()) - 1
    return int(when.timestamp())


def _window(text: str) -> tuple[int | None, int | None]:
    """FROM:TO (each may hold colons, as ISO times do) as inclusive unix seconds."""
    bad = text
    for i in [i for i, c in enumerate(text) if c == ":"]:
        left, right = text[:i], text[i + 1:]
        try:
            start = _when(left, end=False)
        except ValueError:
            bad = left
            continue
        try:
            return start, _when(right, end=True)
        except ValueError:
            bad = right
    try:                                    # one date (an ISO time's colons are no separator)
        _when(text, end=False)
    except ValueError:
        pass
    else:
        raise ScenarioError(f"csv window {text!r} has one end", f"give both ends: {WINDOW_FORM} "
                            f"({DATE_FORM}: csv:PATH:{text}: from it on)")
    raise ScenarioError(f"csv window {text!r}: {bad.strip()!r} is not a date", f"{DATE_FORM}: {WINDOW_FORM}")


def csv_spec(spec: str) -> tuple[Path, int | None, int | None, str]:
    """``PATH`` or ``PATH:FROM:TO`` (after ``csv:``) as (path, start, end, window text). The path
    is the shortest prefix naming a file, so a path may hold colons."""
    if Path(spec).is_file():
        return Path(spec), None, None, ""
    for i in [i for i, c in enumerate(spec) if c == ":"]:
        if Path(spec[:i]).is_file():
            window = spec[i + 1:]
            start, end = _window(window)
            if start is not None and end is not None and start > end:
                raise ScenarioError(f"csv window {window!r} is empty: FROM ({_utc(start)}) is after TO "
                                    f"({_utc(end)} UTC)", f"give FROM before TO: {WINDOW_FORM}")
            return Path(spec[:i]), start, end, window
    match = re.match(r"(.*?\.csv)(?::|$)", spec)
    path = match.group(1) if match else spec
    raise ScenarioError(f"csv file {path} not found", f"give an existing file: csv:PATH or {WINDOW_FORM}")


def from_csv(path: Path, *, limit: int | None = None, calm_gwei: float = 15.0, start: int | None = None,
             end: int | None = None, window: str = "") -> Scenario:
    """User-supplied ``timestamp,price`` rows (unix seconds, ascending), e.g. ``../shared/data``;
    only those from ``start`` to ``end`` (unix seconds, inclusive) when given."""
    rows: list[tuple[int, int]] = []   # (timestamp, feed answer): exact, through Decimal
    first_ts = last_ts = None
    with Path(path).open() as fh:
        reader = csv.reader(fh)
        header = next(reader)
        if [h.strip().lower() for h in header[:2]] != ["timestamp", "price"]:
            raise ValueError(f"{path}: the first line must be 'timestamp,price'")
        for n, row in enumerate(reader, start=2):
            try:
                ts = int(row[0])
                answer = int((Decimal(row[1].strip()) * 10**PRICE_DECIMALS).to_integral_value())
            except (ValueError, IndexError, InvalidOperation, OverflowError):   # inf: OverflowError
                raise ValueError(f"{path}:{n}: expected 'timestamp,price', got {row!r}") from None
            if last_ts is not None and ts <= last_ts:
                raise ValueError(f"{path}:{n}: timestamps must increase ({ts} after {last_ts})")
            if answer <= 0:
                raise ValueError(f"{path}:{n}: price must be positive")
            first_ts = ts if first_ts is None else first_ts
            last_ts = ts
            if (start is None or ts >= start) and (end is None or ts <= end) and \
                    (limit is None or len(rows) < limit):
                rows.append((ts, answer))
    if first_ts is None or last_ts is None:
        raise ValueError(f"{path}: no rows")
    if window:
        span = f"{_utc(first_ts)} and {_utc(last_ts)}"
        if (start is not None and start > last_ts) or (end is not None and end < first_ts):
            raise ScenarioError(f"csv window {window!r} is outside the file's range {_utc(first_ts)} to "
                                f"{_utc(last_ts)} UTC", f"give dates between {span}: {WINDOW_FORM}")
        if len(rows) < 2:
            raise ScenarioError(f"csv window {window!r} holds {len(rows)} row{'' if len(rows) == 1 else 's'} "
                                f"of {path} (a run needs at least 2)",
                                f"widen the window (the file has rows between {span} UTC)")
    fees = _base_fees(random.Random(0), len(rows), calm_gwei=calm_gwei)
    steps = tuple(Step(0 if i == 0 else ts - rows[i - 1][0], answer, f)
                  for i, ((ts, answer), f) in enumerate(zip(rows, fees)))
    name = f"csv:{Path(path).name}" + (f":{window}" if window else "")
    return Scenario(name, steps, description=f"{len(rows)} rows from {path}, {_utc(rows[0][0])} to "
                    f"{_utc(rows[-1][0])} UTC", meta={"first_ts": str(rows[0][0]), "last_ts": str(rows[-1][0])})


def with_flows(sc: Scenario, flows: dict[int, int]) -> Scenario:
    """Scheduled inflows (+) and outflows (-) of the spot asset, E18 units by step index."""
    steps = tuple(Step(s.dt, s.answer, s.base_fee, s.spot_change + flows.get(i, 0), s.lean)
                  for i, s in enumerate(sc.steps))
    return Scenario(sc.name, steps, sc.skew_bias, sc.lp_units_at_start, sc.description, dict(sc.meta))


def with_substeps(sc: Scenario, k: int, seed: int) -> Scenario:
    """Every step after the first as ``k`` price updates ``dt / k`` apart: a Brownian bridge in log
    price from the previous answer to the step's own, which the last update publishes exactly, with
    the path's own volatility per unit of time (its log returns' standard deviation over their
    durations). An outage stays an outage for its whole span; a flow comes with the first update
    of its step; the others' lean and the base fee hold through the step. So the keeper, run at every
    ``k``-th update (`--substeps`), meets the prices between its cycles, and a gap or an outage can
    fall between two cycles. Seeded: the same ``seed`` gives the same path."""
    if k <= 1 or len(sc.steps) < 2:
        return sc
    rng = random.Random(f"substeps-{sc.name}-{seed}-{k}")
    answers = sc.prices()
    rets = [(math.log(b / a), st.dt) for a, b, st in zip(answers, answers[1:], sc.steps[1:])
            if a and b and st.dt > 0]
    # variance per second of the path's log price (as its steps sample it)
    var_s = sum(r * r for r, _ in rets) / sum(dt for _, dt in rets) if rets else 0.0
    out = [sc.steps[0]]
    for i, st in enumerate(sc.steps[1:], start=1):
        dts = [st.dt // k] * (k - 1) + [st.dt - (st.dt // k) * (k - 1)]
        prev, end = answers[i - 1], st.answer
        if end is None or prev is None:
            path: list[int | None] = [None] * (k - 1) + [end]
        else:
            x, x_end, path = math.log(prev), math.log(end), []
            for j in range(1, k):
                left = k - j + 1              # updates left to the step's end, this one included
                x += (x_end - x) / left + math.sqrt(var_s * st.dt / k * (left - 1) / left) * rng.gauss(0, 1)
                path.append(_answer(math.exp(x) / 10**PRICE_DECIMALS))
            path.append(end)
        for j, (dt, answer) in enumerate(zip(dts, path)):
            out.append(Step(dt, answer, st.base_fee, st.spot_change if j == 0 else 0, st.lean))
    return Scenario(sc.name, tuple(out), sc.skew_bias, sc.lp_units_at_start,
                    f"{sc.description}; {k} price updates a step", dict(sc.meta))


def lp_units(units_at_start: int, start_answer: int, answer: int) -> int:
    """A constant-product LP's asset amount: x = x0 * sqrt(P0 / P), in integers (E18)."""
    return units_at_start * math.isqrt(start_answer * 10**36 // answer) // 10**18


SCENARIOS = {"gbm": gbm, "crash": crash, "rally": rally, "chop": chop,
             "funding-long": lambda seed: funding(seed, direction=+1),
             "funding-short": lambda seed: funding(seed, direction=-1),
             "gap-up": gap_up, "oracle-outage": oracle_outage, "squeeze": squeeze, "funding-shock": funding_shock}


def make(name: str, seed: int) -> Scenario:
    """A scenario by name (``csv:PATH`` reads a file, ``csv:PATH:FROM:TO`` a window of it)."""
    if name.startswith("csv:"):
        path, start, end, window = csv_spec(name[4:])
        return from_csv(path, start=start, end=end, window=window)
    if name not in SCENARIOS:
        raise ScenarioError(f"unknown scenario {name!r}",
                            f"use one of {', '.join(SCENARIOS)}, csv:PATH or {WINDOW_FORM}")
    return SCENARIOS[name](seed)
