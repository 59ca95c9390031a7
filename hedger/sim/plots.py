"""PNG charts of simulator runs and of parameter sweeps (reports only, so floats are fine).

`plot_run` draws one run as five stacked panels over hours since start: the oracle price, the
perp position against its target, leverage with the distance to liquidation, the cumulative
PnL of the holding alone against the hedged book, and the cumulative costs and funding (small
beside the price moves, so on their own scale). Inflows and outflows of the hedged asset are
marked on every panel. A stretch of steps much shorter than the others (the crash's 5-minute
updates among hourly ones) is a vertical scribble on the hours axis, so a sixth row zooms on it
in minutes. `plot_frontier` draws a sweep as cost against residual risk, with the efficient
frontier joined by a line. A None in any series is a gap in its line; a series that is all
None (the funding-aware range for a policy without one) is neither drawn nor listed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import StrMethodFormatter  # noqa: E402

FIGSIZE = (12.0, 13.0)
ZOOM_HEIGHT = 2.8      # inches added for the zoom row when a run has a fast stretch
DPI = 110

# (key, legend label): the holding alone, the hedge's price PnL and the book (panel 4); the
# holding's own PnL is the unhedged line, drawn once
PNL_LINES = (
    ("cum_unhedged", "unhedged (the holding alone)", dict(color="grey", lw=2.4)),
    ("cum_perp_price", "perp price PnL", dict(color="tab:orange", lw=1.0)),
    ("cum_hedged", "hedged total", dict(color="black", lw=2.0)),
)
# costs and carry, thin lines in panel 5 (their sum is the hedged total less the two above)
COST_LINES = (
    ("cum_funding", "funding", dict(color="tab:green")),
    ("cum_fees", "fees", dict(color="tab:red")),
    ("cum_execution", "execution", dict(color="tab:purple")),
    ("cum_gas", "gas", dict(color="tab:brown")),
    ("cum_liquidation", "liquidation", dict(color="black", linestyle=":")),
)
USD = StrMethodFormatter("{x:,.0f}")
FAST = 1 / 3           # a step shorter than this fraction of the median step is "fast"
FAST_MIN_STEPS = 3     # fast steps in a row worth a zoom
FAST_MAX_SPAN = 0.15   # ... when they cover at most this fraction of the run
INFLOW, OUTFLOW = "tab:cyan", "tab:pink"    # apart from the cost lines' colours
LEVERAGE, LIQUIDATION = "tab:purple", "tab:red"


def _series(run: dict[str, Any], key: str, scale: float = 1.0) -> np.ndarray | None:
    """The series as floats with NaN (drawn as a gap) for None; None when the key is absent."""
    values = run.get(key)
    if values is None:
        return None
    return np.array([np.nan if v is None else float(v) * scale for v in values], dtype=float)


def _plot(ax: Any, x: np.ndarray, run: dict[str, Any], key: str, scale: float = 1.0,
          sel: slice = slice(None), **style: Any) -> list[Any]:
    """Draw one series; nothing (and no legend entry) when it is absent or has no value."""
    y = _series(run, key, scale)
    if y is None or np.all(np.isnan(y[sel])):
        return []
    return ax.plot(x, y[sel], **style)


def fast_stretch(t: np.ndarray) -> tuple[int, int] | None:
    """(first, last) indices of the longest run of steps much shorter than the median step, when
    it is short beside the whole run (else the hours axis shows it well); None otherwise."""
    if len(t) < FAST_MIN_STEPS + 2:
        return None
    dt = np.diff(t)
    typical = float(np.median(dt))
    if typical <= 0:
        return None
    fast = (dt > 0) & (dt < FAST * typical)
    best: tuple[int, int] | None = None
    i = 0
    while i < len(fast):
        if not fast[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(fast) and fast[j + 1]:
            j += 1
        if j - i + 1 >= FAST_MIN_STEPS and (best is None or j - i > best[1] - best[0]):
            best = (i, j + 1)                       # intervals i..j join points i..j+1
        i = j + 1
    if best is None or t[best[1]] - t[best[0]] > FAST_MAX_SPAN * (t[-1] - t[0]):
        return None
    return best


def _fmt_amount(v: float) -> str:
    return f"{v:+,.1f}".replace("-", "\u2212")


def _mark_flows(axes: Sequence[Any], ax_pos: Any, x: np.ndarray, run: dict[str, Any]) -> None:
    """Inflows and outflows of the hedged asset: a vertical line on every panel, a labelled
    triangle on the exposure line where the position has to follow."""
    flow = _series(run, "flow")
    if flow is None:
        return
    exposure = _series(run, "exposure", -1.0)
    for i in np.flatnonzero(np.nan_to_num(flow) != 0):
        inflow = flow[i] > 0
        color = INFLOW if inflow else OUTFLOW
        label = f"{'inflow' if inflow else 'outflow'} {_fmt_amount(flow[i])} at {x[i]:.1f} h"
        for ax in axes:
            ax.axvline(x[i], color=color, lw=1.0, ls="-.", alpha=0.8, zorder=1,
                       label=label if ax is ax_pos else "_nolegend_")
        if exposure is not None and not np.isnan(exposure[i]):
            ax_pos.plot([x[i]], [exposure[i]], marker="v" if inflow else "^", ms=9, color=color,
                        ls="none", zorder=4, label="_nolegend_")


def _hedge_panel(ax: Any, x: np.ndarray, run: dict[str, Any], sel: slice = slice(None)) -> None:
    # -exposure wide and pale beneath: with a hedge ratio of 1 the target lies on it
    _plot(ax, x, run, "exposure", -1.0, sel, color="0.75", lw=4.5, drawstyle="steps-post",
          label="-exposure", zorder=1.5)
    _plot(ax, x, run, "target", 1.0, sel, color="tab:orange", lw=1.2, drawstyle="steps-post", label="target")
    _plot(ax, x, run, "target_low", 1.0, sel, color="tab:orange", lw=1.0, ls=":", drawstyle="steps-post",
          label="funding-aware range edge")
    _plot(ax, x, run, "position", 1.0, sel, color="tab:blue", lw=1.5, drawstyle="steps-post", label="position")
    ax.set_ylabel("perp position (asset)")


def _leverage_panel(ax: Any, x: np.ndarray, run: dict[str, Any], sel: slice = slice(None),
                    **style: Any) -> Any:
    """Leverage on the left axis, distance to liquidation on the right; each axis in its line's
    colour, so no legend covers the lines. Returns the right-hand axis."""
    _plot(ax, x, run, "leverage", 1.0, sel, color=LEVERAGE, lw=1.2, label="leverage", **style)
    ax.set_ylabel("leverage (x)", color=LEVERAGE)
    ax.tick_params(axis="y", colors=LEVERAGE)
    ax_liq = ax.twinx()
    _plot(ax_liq, x, run, "liq_distance", 100.0, sel, color=LIQUIDATION, lw=1.0,
          label="distance to liquidation", **style)
    ax_liq.set_ylabel("distance to\nliquidation (%)", color=LIQUIDATION)
    ax_liq.tick_params(axis="y", colors=LIQUIDATION)
    return ax_liq


def figure_run(run: dict[str, Sequence[float | None]], title: str = "") -> Any:
    """One run as a matplotlib figure (the caller saves and closes it)."""
    x = _series(run, "t_hours")
    if x is None:
        raise KeyError("run has no 't_hours'")
    fast = fast_stretch(x)
    height = FIGSIZE[1] + (ZOOM_HEIGHT if fast else 0.0)
    # constrained layout: wide tick labels (six-digit PnL) push the panels in, never a label out
    fig = plt.figure(figsize=(FIGSIZE[0], height), dpi=DPI, layout="constrained")
    try:
        rows = [1.0] * 5 + ([ZOOM_HEIGHT / (FIGSIZE[1] / 5)] if fast else [])
        grid = fig.add_gridspec(len(rows), 2, height_ratios=rows)
        ax_price = fig.add_subplot(grid[0, :])
        ax_pos, ax_lev, ax_pnl, ax_cost = (fig.add_subplot(grid[i, :], sharex=ax_price) for i in range(1, 5))
        main = (ax_price, ax_pos, ax_lev, ax_pnl, ax_cost)
        if title:
            fig.suptitle(title)

        _plot(ax_price, x, run, "price", color="black", lw=1.2, label="oracle price")
        ax_price.set_ylabel("price (USD)")
        ax_price.yaxis.set_major_formatter(USD)
        ax_price.set_title("price", loc="left", fontsize=10)

        _hedge_panel(ax_pos, x, run)
        ax_pos.set_title("hedge against target", loc="left", fontsize=10)

        _leverage_panel(ax_lev, x, run)
        ax_lev.set_title("leverage (left) and distance to liquidation (right)", loc="left", fontsize=10)

        for key, label, style in PNL_LINES:
            _plot(ax_pnl, x, run, key, label=label, **style)
        ax_pnl.set_ylabel("cumulative PnL (USD)")
        ax_pnl.set_title("cumulative PnL: the holding alone against the hedged book", loc="left", fontsize=10)

        for key, label, style in COST_LINES:
            _plot(ax_cost, x, run, key, lw=1.2, label=label, **style)
        ax_cost.set_ylabel("cumulative (USD)")
        ax_cost.set_title("cumulative costs and funding (in the hedged total above)", loc="left", fontsize=10)
        ax_cost.set_xlabel("hours since start")
        for ax in (ax_pnl, ax_cost):
            ax.axhline(0.0, color="black", lw=0.5)
            ax.yaxis.set_major_formatter(USD)
        for ax in main[:-1]:
            ax.tick_params(labelbottom=False)

        _mark_flows(main, ax_pos, x, run)
        if fast:
            _zoom(fig, grid, main, x, run, fast)
        for ax in (ax_price, ax_pos, ax_pnl, ax_cost):
            if ax.get_legend_handles_labels()[0]:       # beside the panel: a legend inside hides data
                ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
        for ax in main:
            ax.grid(True, alpha=0.3)
    except BaseException:
        plt.close(fig)
        raise
    return fig


def _zoom(fig: Any, grid: Any, main: Sequence[Any], x: np.ndarray, run: dict[str, Any],
          fast: tuple[int, int]) -> None:
    """The fast stretch (with one step either side) in minutes: the hedge and the leverage."""
    first, last = fast
    lo, hi = max(first - 1, 0), min(last + 1, len(x) - 1)
    sel = slice(lo, hi + 1)
    t0 = x[first]
    minutes = (x[sel] - t0) * 60
    step_min = float(np.median(np.diff(x[first:last + 1]))) * 60
    span = f"{x[first]:.2f}\u2013{x[last]:.2f} h"
    for ax in main:
        ax.axvspan(x[first], x[last], color="gold", alpha=0.25, lw=0, zorder=0)
    ax_zpos = fig.add_subplot(grid[5, 0])
    ax_zlev = fig.add_subplot(grid[5, 1])
    _hedge_panel(ax_zpos, minutes, run, sel)
    ax_zpos.set_title(f"zoom on {span} ({step_min:.0f}-minute steps, shaded above): hedge", loc="left",
                      fontsize=9)
    _leverage_panel(ax_zlev, minutes, run, sel, marker=".")
    ax_zlev.set_title("zoom: leverage and distance to liquidation", loc="left", fontsize=9)
    for ax in (ax_zpos, ax_zlev):
        ax.set_xlabel(f"minutes from {t0:.2f} h (colours as above)")
        ax.grid(True, alpha=0.3)


def plot_run(run: dict[str, Sequence[float | None]], path: Path | str, title: str = "") -> Path:
    """Write one run as a PNG at `path` and return the path."""
    path = Path(path)
    fig = figure_run(run, title)
    try:
        fig.savefig(path, dpi=DPI, format="png")
    finally:
        plt.close(fig)
    return path


LABEL_ALL_MAX = 12     # a frontier plot with more points than this names only its frontier
NEAR = 0.025           # points closer than this fraction of both axis spans share one number


def _number_points(ax: Any, points: list[dict[str, Any]]) -> list[str]:
    """Number the named points on the plot and list the names in a key: sweep labels are long and
    a sweep's points often coincide (a parameter that changed nothing), so names written beside
    the points would cover each other. A large sweep names only its frontier (every point is in
    the table and the JSON); coinciding points share one number. Returns the tags drawn."""
    named = [p for p in points if p.get("label") and (len(points) <= LABEL_ALL_MAX or p.get("frontier"))]
    if not named:
        return []
    named.sort(key=lambda p: (p["risk"], p["cost_usd"]))
    xs, ys = [p["risk"] for p in points], [p["cost_usd"] for p in points]
    dx, dy = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    groups: list[list[int]] = []           # indices into named; a group is drawn once
    for i, p in enumerate(named):
        for g in groups:
            q = named[g[0]]
            if abs(p["risk"] - q["risk"]) <= NEAR * dx and abs(p["cost_usd"] - q["cost_usd"]) <= NEAR * dy:
                g.append(i)
                break
        else:
            groups.append([i])
    tags = []
    for k, g in enumerate(groups):
        q = named[g[0]]
        tag = ",".join(str(i + 1) for i in g)
        tags.append(tag)
        ax.annotate(tag, (q["risk"], q["cost_usd"]), fontsize=8, fontweight="bold",
                    xytext=(6, 6 if k % 2 == 0 else -12), textcoords="offset points")
    key = "\n".join(f"{i + 1}: {p['label']}" for i, p in enumerate(named))
    ax.text(0.98, 0.5, key, transform=ax.transAxes, fontsize=7, family="monospace", ha="right", va="center",
            multialignment="left",
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85, "edgecolor": "0.7"})
    return tags


def plot_frontier(points: list[dict[str, Any]], path: Path | str, title: str = "") -> Path:
    """Write a sweep as cost against residual risk, frontier joined by a line; return the path.

    Each point: "risk" (x), "cost_usd" (y), "label" (annotation), "frontier" (bool) and
    optionally "policy" (points of one policy share a colour).
    """
    path = Path(path)
    fig, ax = plt.subplots(figsize=(9.0, 6.5), dpi=DPI, layout="constrained")
    try:
        policies = list(dict.fromkeys(str(p.get("policy", "")) for p in points))
        colors = {name: f"C{i % 10}" for i, name in enumerate(policies)}
        for name in policies:
            group = [p for p in points if str(p.get("policy", "")) == name]
            for on_frontier, marker, size in ((False, "o", 30), (True, "*", 140)):
                pts = [p for p in group if bool(p.get("frontier")) == on_frontier]
                if not pts:
                    continue
                label = name or None
                if on_frontier:
                    label = f"{name} (frontier)" if name else "frontier"
                ax.scatter([p["risk"] for p in pts], [p["cost_usd"] for p in pts],
                           marker=marker, s=size, color=colors[name], label=label,
                           edgecolors="black" if on_frontier else "none", zorder=3)
        front = sorted((p for p in points if p.get("frontier")), key=lambda p: p["risk"])
        if front:
            ax.plot([p["risk"] for p in front], [p["cost_usd"] for p in front],
                    color="black", lw=1.0, zorder=2)
        _number_points(ax, points)
        ax.margins(0.08)  # room for the annotations of the outermost points
        ax.set_xlabel("residual risk (std of hedged step PnL, USD)")
        ax.set_ylabel("hedging cost (USD)")
        ax.set_title(title or "cost against residual risk")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        fig.savefig(path, dpi=DPI, format="png")
    finally:
        plt.close(fig)
    return path
