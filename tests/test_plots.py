"""PNG charts of a synthetic run and sweep: valid files of the promised size, gaps tolerated."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from hedger.sim.plots import DPI, FIGSIZE, plot_frontier, plot_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _synthetic_run(n: int = 48) -> dict[str, list[float | None]]:
    t = [i * 0.5 for i in range(n)]
    price = [3000.0 + 200.0 * math.sin(h / 4.0) for h in t]
    exposure = [10.0] * n
    target = [-10.0 if i >= 2 else 0.0 for i in range(n)]
    position = [-10.0 if i >= 4 else 0.0 for i in range(n)]
    leverage = [0.0 if p == 0.0 else 2.0 + 0.1 * math.sin(h) for p, h in zip(position, t)]
    liq = [None if p == 0.0 else 0.45 + 0.05 * math.cos(h) for p, h in zip(position, t)]
    spot = [10.0 * (p - price[0]) for p in price]
    perp = [pos * (p - price[0]) if i >= 4 else 0.0
            for i, (pos, p) in enumerate(zip(position, price))]
    funding = [0.3 * i for i in range(n)]
    fees = [-1.5 if i >= 4 else 0.0 for i in range(n)]
    execution = [-0.8 if i >= 4 else 0.0 for i in range(n)]
    gas = [-0.05 * i for i in range(n)]
    hedged = [sum(c) for c in zip(spot, perp, funding, fees, execution, gas)]
    run: dict[str, list[float | None]] = {
        "t_hours": list(t), "price": list(price), "target": list(target),
        "position": list(position), "exposure": list(exposure), "leverage": list(leverage),
        "liq_distance": liq, "cum_spot": list(spot), "cum_perp_price": list(perp),
        "cum_funding": list(funding), "cum_fees": list(fees), "cum_execution": list(execution),
        "cum_gas": list(gas), "cum_hedged": list(hedged), "cum_unhedged": list(spot),
    }
    # missing readings: gaps, not crashes
    for key, frac in (("price", 0.2), ("price", 0.25), ("leverage", 0.4),
                      ("cum_funding", 0.6), ("position", 0.5), ("cum_hedged", 0.8)):
        run[key][int(frac * n)] = None
    return run


def test_plot_run_writes_a_png_of_the_figure_size(tmp_path: Path) -> None:
    out = plot_run(_synthetic_run(), tmp_path / "run.png", title="synthetic run")
    assert out == tmp_path / "run.png"
    assert out.exists() and out.stat().st_size > 20_000
    assert _png_size(out) == (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI))


def test_plot_run_closes_its_figures(tmp_path: Path) -> None:
    before = len(plt.get_fignums())
    for i in range(2):
        plot_run(_synthetic_run(12), tmp_path / f"run{i}.png")
    assert len(plt.get_fignums()) == before


def test_plot_run_tolerates_an_all_missing_series(tmp_path: Path) -> None:
    run = _synthetic_run(8)
    run["liq_distance"] = [None] * 8
    out = plot_run(run, tmp_path / "flat.png")
    assert out.read_bytes().startswith(b"\x89PNG")


def test_plot_frontier_writes_a_png(tmp_path: Path) -> None:
    points = [
        {"risk": 120.0, "cost_usd": 5.0, "label": "band 5%", "frontier": True, "policy": "band"},
        {"risk": 80.0, "cost_usd": 12.0, "label": "band 2%", "frontier": True, "policy": "band"},
        {"risk": 95.0, "cost_usd": 20.0, "label": "band 3%", "frontier": False, "policy": "band"},
        {"risk": 60.0, "cost_usd": 30.0, "label": "every 1h", "frontier": True, "policy": "time"},
        {"risk": 70.0, "cost_usd": 45.0, "label": "every 4h", "frontier": False, "policy": "time"},
    ]
    before = len(plt.get_fignums())
    out = plot_frontier(points, tmp_path / "frontier.png")
    assert out == tmp_path / "frontier.png"
    assert out.read_bytes().startswith(b"\x89PNG")
    assert out.stat().st_size > 10_000
    width, height = _png_size(out)
    assert width > 500 and height > 400
    assert len(plt.get_fignums()) == before


def test_plot_frontier_without_policies(tmp_path: Path) -> None:
    points = [{"risk": 1.0, "cost_usd": 2.0, "label": "a", "frontier": True},
              {"risk": 2.0, "cost_usd": 1.0, "label": "b", "frontier": False}]
    assert plot_frontier(points, str(tmp_path / "f.png")).read_bytes()[:4] == b"\x89PNG"


def test_a_large_sweep_numbers_its_frontier_and_coinciding_points_share_a_number() -> None:
    import matplotlib.pyplot as plt

    from hedger.sim.plots import LABEL_ALL_MAX, _number_points
    pts = [{"risk": 40.0 + i, "cost_usd": 500.0 - 10 * i, "label": f"p{i}", "frontier": False}
           for i in range(LABEL_ALL_MAX)]
    pts += [{"risk": 10.0, "cost_usd": 900.0, "label": "cheap-to-name", "frontier": True},
            {"risk": 90.0, "cost_usd": 100.0, "label": "a", "frontier": True},
            {"risk": 90.1, "cost_usd": 100.5, "label": "b", "frontier": True}]   # the same point, near enough
    fig, ax = plt.subplots()
    try:
        assert _number_points(ax, pts) == ["1", "2,3"]           # only the frontier, the twins share
        texts = [t.get_text() for t in ax.texts]
        assert texts[-1] == "1: cheap-to-name\n2: a\n3: b"
        fig2, ax2 = plt.subplots()
        assert _number_points(ax2, pts[:3]) == ["1", "2", "3"]     # a small set: every point is named
        plt.close(fig2)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------- what a desk sees (issue 15, item 17)

@pytest.fixture
def saved(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """The figures plot_run saved, kept for inspection: their layout is the one savefig drew."""
    figs: list[Figure] = []
    savefig = Figure.savefig

    def spy(self: Figure, *args: Any, **kw: Any) -> None:
        savefig(self, *args, **kw)
        self._saved_renderer = self.canvas.get_renderer()  # type: ignore[attr-defined]  # gone at close
        figs.append(self)

    monkeypatch.setattr(Figure, "savefig", spy)
    return figs


def _labelled_lines(ax: Any) -> list[Line2D]:
    return [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]


def _legend_texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def _panel(fig: Figure, title: str) -> Any:
    return next(ax for ax in fig.axes if ax.get_title(loc="left").startswith(title))


def test_every_label_lies_inside_the_saved_figure(tmp_path: Path, saved: list[Figure]) -> None:
    """The PnL axis' label was cut off at the left edge by wide tick labels (150000)."""
    run = _synthetic_run()
    # the crash's PnL: six-digit tick labels (150000), short of matplotlib's switch to an offset (1e6)
    run["cum_spot"] = [None if v is None else v * 75 for v in run["cum_spot"]]
    run["cum_unhedged"] = list(run["cum_spot"])
    run["cum_perp_price"] = [None if v is None else -v for v in run["cum_spot"]]
    plot_run(run, tmp_path / "big.png", title="a long title of a run with large numbers")
    fig = saved[-1]
    renderer = fig._saved_renderer  # type: ignore[attr-defined]
    width, height = fig.bbox.width, fig.bbox.height
    checked = 0
    for ax in fig.axes:
        lo_y, hi_y = sorted(ax.get_ylim())
        lo_x, hi_x = sorted(ax.get_xlim())
        legend = ax.get_legend().get_texts() if ax.get_legend() else []
        texts = [ax.yaxis.label, ax.xaxis.label, ax.title, *legend,   # ticks outside the view are not drawn
                 *(t for t in ax.get_yticklabels() if lo_y <= t.get_position()[1] <= hi_y),
                 *(t for t in ax.get_xticklabels() if lo_x <= t.get_position()[0] <= hi_x)]
        for text in texts:
            if not text.get_text() or not text.get_visible():
                continue
            box = text.get_window_extent(renderer)
            assert box.x0 >= 0 and box.x1 <= width and box.y0 >= 0 and box.y1 <= height, \
                f"{text.get_text()!r} of {ax.get_title(loc='left')!r} is cut off: {box} in {width}x{height}"
            checked += 1
    assert checked > 20


def test_no_line_hides_under_another(tmp_path: Path, saved: list[Figure]) -> None:
    """Two lines with the same data: the one beneath must be wider, or it cannot be seen
    ("spot" was drawn thin under the thick "unhedged (spot alone)", the same series)."""
    run = _synthetic_run()
    run["target"] = [-e for e in run["exposure"]]                         # hedge ratio 1: target = -exposure
    plot_run(run, tmp_path / "run.png")
    fig = saved[-1]
    pairs = 0
    for ax in fig.axes:
        lines = sorted(_labelled_lines(ax), key=lambda ln: ln.get_zorder())
        for i, under in enumerate(lines):
            for over in lines[i + 1:]:
                a, b = np.asarray(under.get_ydata(), float), np.asarray(over.get_ydata(), float)
                if a.shape == b.shape and np.allclose(a, b, equal_nan=True):
                    pairs += 1
                    assert under.get_linewidth() >= over.get_linewidth() + 2, \
                        f"{under.get_label()!r} hides under {over.get_label()!r}"
    assert pairs >= 1                       # target and -exposure coincide here: both must show


def test_the_range_edge_is_listed_only_for_a_policy_that_has_it(tmp_path: Path, saved: list[Figure]) -> None:
    run = _synthetic_run()
    run["target_low"] = [None] * len(run["t_hours"])                      # default policy: no range
    plot_run(run, tmp_path / "default.png")
    assert not any("range edge" in t for t in _legend_texts(saved[-1]))
    run["target_low"] = [None] * 20 + [-8.0] * (len(run["t_hours"]) - 20)  # funding-aware, while it applies
    plot_run(run, tmp_path / "funding-aware.png")
    assert any("range edge" in t for t in _legend_texts(saved[-1]))


def _crash_run() -> dict[str, list[float | None]]:
    """Hourly steps, then twelve 5-minute steps, then hourly again (the crash scenario's clock)."""
    t = [float(h) for h in range(24)] + [23 + k / 12 for k in range(1, 13)] + [24.0 + h for h in range(1, 13)]
    n = len(t)
    run = _synthetic_run(n)
    run["t_hours"] = t
    run["leverage"] = [2.0 + (0.4 if 24 <= i < 36 and i % 2 else 0.0) for i in range(n)]
    return run


def test_x_data_are_hours_since_start(tmp_path: Path, saved: list[Figure]) -> None:
    run = _crash_run()
    plot_run(run, tmp_path / "crash.png")
    fig = saved[-1]
    t = np.asarray(run["t_hours"], float)
    series = [ln for ax in fig.axes for ln in _labelled_lines(ax) if len(ln.get_xdata()) == len(t)]
    assert len(series) >= 8
    for ln in series:
        assert np.array_equal(np.asarray(ln.get_xdata(), float), t), ln.get_label()


def test_a_fast_stretch_inside_slower_steps_gets_a_zoom_in_minutes(tmp_path: Path, saved: list[Figure]) -> None:
    """On the 36-hour axis the crash's twelve 5-minute steps are a vertical scribble: a zoom shows them."""
    plot_run(_crash_run(), tmp_path / "crash.png")
    fig = saved[-1]
    zooms = [ax for ax in fig.axes if "zoom" in ax.get_title(loc="left")]
    assert zooms
    lev = next(ln for ax in zooms for ln in _labelled_lines(ax) if ln.get_label() == "leverage")
    x = np.asarray(lev.get_xdata(), float)
    assert np.isclose(np.diff(x), 5.0).sum() >= 11                       # one point per 5-minute step
    assert "min" in lev.axes.get_xlabel()
    plot_run(_synthetic_run(), tmp_path / "even.png")                     # even steps: nothing to zoom
    assert not [ax for ax in saved[-1].axes if "zoom" in ax.get_title(loc="left")]


def test_inflows_and_outflows_are_marked(tmp_path: Path, saved: list[Figure]) -> None:
    run = _synthetic_run()
    n = len(run["t_hours"])
    run["flow"] = [0.0] * n
    run["flow"][16], run["flow"][32] = 2.0, -3.0
    plot_run(run, tmp_path / "flows.png")
    fig = saved[-1]
    texts = _legend_texts(fig)
    assert any("inflow" in t and "+2" in t for t in texts), texts
    assert any("outflow" in t and "3" in t for t in texts), texts
    when = {run["t_hours"][16], run["t_hours"][32]}
    for ax in fig.axes:
        if "zoom" in ax.get_title(loc="left") or not ax.get_title(loc="left"):
            continue                                                      # a twin axis has no title
        marked = {float(ln.get_xdata()[0]) for ln in ax.get_lines()
                  if len(ln.get_xdata()) == 2 and ln.get_xdata()[0] == ln.get_xdata()[1]}
        assert when <= marked, ax.get_title(loc="left")
    run["flow"] = [0.0] * n
    plot_run(run, tmp_path / "none.png")
    assert not any("flow" in t for t in _legend_texts(saved[-1]))


def test_run_series_carries_the_flows() -> None:
    from hedger.sim.simreport import run_series
    from hedger.sim.simulate import RunResult, StepRecord

    def rec(t: float, flow: float) -> StepRecord:
        return StepRecord(t_hours=t, price=3000.0, exposure=100.0, target=-100.0, position=-100.0, leverage=2.0,
                          margin_ratio=0.5, liq_distance=0.4, d_spot=0.0, d_perp_price=0.0, d_funding=0.0,
                          d_fees=0.0, d_execution=0.0, d_gas=0.0, funding_rate_yr=0.0, base_fee_gwei=15.0,
                          flow=flow)
    r = RunResult("gbm", 1, "default", [rec(0, 0.0), rec(1, 12.0), rec(2, -18.0)], 0, 0, 0, 0,
                  0.0, 0.0, 0.0, 0.0, 0.0, 0.0, {})
    assert run_series(r)["flow"] == [0.0, 12.0, -18.0]


def test_the_plots_the_readme_names_are_the_files_the_command_writes(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    import hedger.sim.plots
    from hedger.sim.scenarios import SCENARIOS
    from hedger.sim.simcli import DEFAULT_POLICIES
    from hedger.sim.simreport import write_plots
    from hedger.sim.simulate import RunResult

    root = Path(__file__).resolve().parent.parent
    named = set(re.findall(r"docs/sim/([\w.-]+\.png)", (root / "README.md").read_text()))
    assert named
    monkeypatch.setattr(hedger.sim.plots, "plot_run", lambda run, path, title="": Path(path))   # names only
    runs = [RunResult(sc, 1, pol, [], 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, {})
            for sc in SCENARIOS for pol in DEFAULT_POLICIES]
    written = {p.name for p in write_plots(runs, tmp_path)}
    assert named <= written, f"the README names {sorted(named - written)}, which the command never writes"
    for name in named:
        assert (root / "docs" / "sim" / name).is_file(), name
