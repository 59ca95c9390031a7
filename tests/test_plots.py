"""PNG charts of a synthetic run and sweep: valid files of the promised size, gaps tolerated."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import matplotlib.pyplot as plt

from hedger.plots import DPI, FIGSIZE, plot_frontier, plot_run

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

    from hedger.plots import LABEL_ALL_MAX, _number_points
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
