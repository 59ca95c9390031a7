"""PNG charts of simulator runs and of parameter sweeps (reports only, so floats are fine).

`plot_run` draws one run as four stacked panels over hours since start: the oracle price,
the perp position against its target, leverage with the distance to liquidation, and the
cumulative PnL by component. `plot_frontier` draws a sweep as cost against residual risk,
with the efficient frontier joined by a line. A None in any series is a gap in its line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

FIGSIZE = (10.0, 11.0)
DPI = 110

# (key, legend label) of the cumulative PnL components, thin lines in panel 4
PNL_COMPONENTS = (
    ("cum_spot", "spot"),
    ("cum_perp_price", "perp price"),
    ("cum_funding", "funding"),
    ("cum_fees", "fees"),
    ("cum_execution", "execution"),
    ("cum_gas", "gas"),
)
PNL_TOTALS = (("cum_hedged", "hedged total"), ("cum_unhedged", "unhedged (spot alone)"))


def _series(run: dict[str, Any], key: str, scale: float = 1.0) -> np.ndarray | None:
    """The series as floats with NaN (drawn as a gap) for None; None when the key is absent."""
    values = run.get(key)
    if values is None:
        return None
    return np.array([np.nan if v is None else float(v) * scale for v in values], dtype=float)


def _plot(ax: Any, x: np.ndarray, run: dict[str, Any], key: str, scale: float = 1.0,
          **style: Any) -> list[Any]:
    y = _series(run, key, scale)
    return [] if y is None else ax.plot(x, y, **style)


def plot_run(run: dict[str, Sequence[float | None]], path: Path | str, title: str = "") -> Path:
    """Write one run as a four-panel PNG at `path` and return the path."""
    path = Path(path)
    x = _series(run, "t_hours")
    if x is None:
        raise KeyError("run has no 't_hours'")
    # fixed margins: an automatic layout engine would double the time of each chart
    fig, (ax_price, ax_pos, ax_lev, ax_pnl) = plt.subplots(
        4, 1, sharex=True, figsize=FIGSIZE, dpi=DPI,
        gridspec_kw=dict(left=0.09, right=0.91, bottom=0.05, top=0.94 if title else 0.97,
                         hspace=0.18))
    try:
        if title:
            fig.suptitle(title)

        _plot(ax_price, x, run, "price", color="black", lw=1.2, label="oracle price")
        ax_price.set_ylabel("price (USD)")
        ax_price.set_title("price", loc="left", fontsize=10)

        _plot(ax_pos, x, run, "target", color="tab:orange", lw=1.2, drawstyle="steps-post",
              label="target")
        _plot(ax_pos, x, run, "target_low", color="tab:orange", lw=1.0, ls=":", drawstyle="steps-post",
              label="funding-aware range edge")
        _plot(ax_pos, x, run, "position", color="tab:blue", lw=1.5, drawstyle="steps-post",
              label="position")
        _plot(ax_pos, x, run, "exposure", -1.0, color="grey", lw=1.0, ls="--",
              label="-exposure")
        ax_pos.set_ylabel("perp position (asset)")
        ax_pos.set_title("hedge against target", loc="left", fontsize=10)

        lines = _plot(ax_lev, x, run, "leverage", color="tab:purple", lw=1.2, label="leverage")
        ax_lev.set_ylabel("leverage (x)")
        ax_liq = ax_lev.twinx()
        lines += _plot(ax_liq, x, run, "liq_distance", 100.0, color="tab:red", lw=1.0,
                       label="distance to liquidation")
        ax_liq.set_ylabel("distance to liquidation (%)")
        ax_lev.set_title("leverage and liquidation distance", loc="left", fontsize=10)
        if lines:
            ax_lev.legend(lines, [ln.get_label() for ln in lines], loc="upper left", fontsize=8)

        for key, label in PNL_COMPONENTS:
            _plot(ax_pnl, x, run, key, lw=1.0, label=label)
        for (key, label), color in zip(PNL_TOTALS, ("black", "grey")):
            _plot(ax_pnl, x, run, key, lw=2.4, color=color, label=label)
        ax_pnl.axhline(0.0, color="black", lw=0.5)
        ax_pnl.set_ylabel("cumulative PnL (USD)")
        ax_pnl.set_title("cumulative PnL by component", loc="left", fontsize=10)
        ax_pnl.set_xlabel("hours since start")

        for ax in (ax_price, ax_pos, ax_pnl):
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="best", fontsize=8, ncol=2, framealpha=0.8)
        for ax in (ax_price, ax_pos, ax_lev, ax_pnl):
            ax.grid(True, alpha=0.3)
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
