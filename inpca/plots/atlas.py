"""Runs placed in an atlas, drawn over its trajectories: PNG and interactive HTML, one colour per run."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..figures import GEODESIC_COLOR, pyplot, save_html, save_png
from ._common import (
    RunColours,
    check_rows,
    coords3,
    gapped,
    label_axes_png,
    place_legend,
    references_of,
    runs_of,
    scene_layout,
)

# --------------------------------------------------------------------------------------------------
# runs placed in an atlas

#: Colours of runs placed in an atlas, in the order the runs are given: dark or vivid, each at least
#: 25 (CIELAB ΔE) from every colour a reference family can have (the architectures' palette of
#: :func:`inpca.figures.arch_colors`, tab10 + Dark2, the grey of a missing value, the geodesic's black),
#: so a placed run is never read as a family of the atlas (the navy comes after the others: the first
#: architectures are tab10's blue and orange). Past the sixth run the colours come round again with the
#: next marker.
PLACED_COLORS = ("#ff00ff", "#004400", "#661144", "#0000bb", "#554400", "#770000")
PLACED_MARKERS = (("o", "circle"), ("s", "square"), ("D", "diamond"), ("P", "cross"))
PLACED_LABEL_SIZE = 9  # points; labels of placed runs are stacked at least 1.4 of this apart


class PlacedStyle(NamedTuple):
    color: str
    marker: str  # matplotlib's marker
    symbol: str  # plotly's marker symbol of the same shape


def placed_styles(names) -> dict[str, PlacedStyle]:
    """The colour and marker of each placed run (in the order given), the same in the atlas' PNG and
    HTML: colours from :data:`PLACED_COLORS`, none of a reference family's."""
    styles = {}
    for j, name in enumerate(names):
        marker, symbol = PLACED_MARKERS[(j // len(PLACED_COLORS)) % len(PLACED_MARKERS)]
        styles[name] = PlacedStyle(PLACED_COLORS[j % len(PLACED_COLORS)], marker, symbol)
    return styles


def _placed_xyz(rows, split: str) -> np.ndarray:
    return np.column_stack([rows.get(f"{split}_pc{i}", np.zeros(len(rows))) for i in (1, 2, 3)]).astype(float)


def _stacked(ys, gap: float) -> np.ndarray:
    """Heights as close to `ys` as a gap of at least `gap` between neighbours allows (the order kept,
    the stack centred on the points)."""
    ys = np.asarray(ys, dtype=float)
    if not len(ys):
        return ys
    order = np.argsort(ys, kind="stable")
    out = ys[order].copy()
    for i in range(1, len(out)):
        out[i] = max(out[i], out[i - 1] + gap)
    out -= np.mean(out - ys[order])
    result = np.empty_like(out)
    result[order] = out
    return result


def _label_placed_png(ax, fig, ends: dict, styles: dict) -> None:
    """Name each placed run beside its last checkpoint (to its left in the right part of the axes, away
    from the axis labels), the labels on each side stacked so none overlaps another (a thin line in the
    run's colour leads from a moved label to its point)."""
    from mpl_toolkits.mplot3d import proj3d

    if not ends:
        return
    fig.canvas.draw()  # the view and limits as they will be drawn
    points = {name: proj3d.proj_transform(*p, ax.get_proj())[:2] for name, p in ends.items()}
    pixels = {name: ax.transData.transform(xy) for name, xy in points.items()}
    box = ax.get_window_extent()
    to_points = 72.0 / fig.dpi
    for left in (False, True):
        names = [n for n in ends if (pixels[n][0] > box.x0 + 0.55 * box.width) == left]
        ys = np.array([pixels[n][1] * to_points for n in names])
        for name, y, target in zip(names, ys, _stacked(ys, 1.4 * PLACED_LABEL_SIZE)):
            color = styles[name].color
            moved = abs(target - y) > 0.5 * PLACED_LABEL_SIZE
            ax.annotate(name, xy=points[name], xycoords="data", xytext=(-14 if left else 14, target - y),
                        textcoords="offset points", color=color, fontsize=PLACED_LABEL_SIZE, fontweight="bold",
                        va="center", ha="right" if left else "left", zorder=9,
                        bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.75),
                        arrowprops=dict(arrowstyle="-", color=color, lw=0.8, shrinkA=0, shrinkB=3) if moved else None)


def plot_atlas_png(emb: dict, index, placed: dict, out_path, split: str = "train") -> None:
    """The atlas' trajectories (thin, coloured by architecture) with placed runs drawn over them (bold,
    one colour each, none of a reference family's; their last checkpoint marked and labelled, the labels
    stacked so none overlaps another). `placed`: {name: the run's atlas table}."""
    from matplotlib.lines import Line2D

    check_rows(emb, index)
    xyz = coords3(emb)
    runs = runs_of(index)
    colors = RunColours(index, runs, "arch")
    plt = pyplot()
    fig = plt.figure(figsize=(10, 7.5))
    ax = fig.add_subplot(projection="3d")
    for i, (_, rows) in enumerate(runs):
        p = xyz[rows]
        ax.plot(p[:, 0], p[:, 1], p[:, 2], color=colors.run_color[i], lw=0.7, alpha=0.45)
    refs, _, _ = references_of(index)
    if len(refs) > 1:
        g = xyz[refs]
        ax.plot(g[:, 0], g[:, 1], g[:, 2], color=GEODESIC_COLOR, lw=2.0)
    styles = placed_styles(placed)
    handles = [Line2D([], [], color=c, lw=1.5, alpha=0.6, label=f"atlas: {label}")
               for c, label in (colors.mpl_legend(ax, fig) or [])]
    ends = {}
    for name, rows in placed.items():
        p = _placed_xyz(rows, split)
        style = styles[name]
        ax.plot(p[:, 0], p[:, 1], p[:, 2], color=style.color, lw=2.4, marker=style.marker, ms=3, zorder=8)
        ax.plot(*p[-1:].T, color=style.color, marker=style.marker, ms=7, mec="white", mew=0.8, ls="none", zorder=9)
        ends[name] = p[-1]
        handles.append(Line2D([], [], color=style.color, lw=2.4, marker=style.marker, ms=3, label=name))
    label_axes_png(ax, emb["eigenvalues"])
    place_legend(ax, handles, [Line2D([], [], color=GEODESIC_COLOR, lw=2, label="geodesic P0→P*")], None)
    ax.set_box_aspect(None, zoom=0.88)
    ax.set_title(f"{split} split: runs placed in the atlas ({len(placed)} over {len(runs)} reference runs)",
                 fontsize=11)
    _label_placed_png(ax, fig, ends, styles)
    save_png(fig, out_path)


def plot_atlas_html(emb: dict, index, placed: dict, out_path, split: str = "train") -> None:
    """The atlas with placed runs as an interactive page, each placed run in the colour and marker it has
    in the PNG (:func:`placed_styles`), its last checkpoint larger; hovering a placed checkpoint shows its
    step, epoch, progress, nearest configuration and the forecast of the run's end."""
    import plotly.graph_objects as go

    check_rows(emb, index)
    xyz = coords3(emb)
    runs = runs_of(index)
    colors = RunColours(index, runs, "arch")
    fig = go.Figure()
    for category in colors.categories:
        xs, ys, zs, _ = gapped(xyz, [run for i, run in enumerate(runs) if colors.run_label[i] == category])
        fig.add_trace(go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", name=f"atlas: {category}", opacity=0.45,
                                   line=dict(color=colors.category_color[category], width=2), hoverinfo="skip"))
    refs, _, _ = references_of(index)
    if len(refs) > 1:
        g = xyz[refs]
        fig.add_trace(go.Scatter3d(x=g[:, 0], y=g[:, 1], z=g[:, 2], mode="lines", name="geodesic P0→P*",
                                   line=dict(color=GEODESIC_COLOR, width=5), hoverinfo="skip"))
    styles = placed_styles(placed)
    for name, rows in placed.items():
        p = _placed_xyz(rows, split)
        style = styles[name]
        hover = []
        for r in rows.to_dict("records"):
            forecast = (f"forecast final test error {r['forecast_final_test_error']:.3f} "
                        f"[{r['forecast_low']:.3f}, {r['forecast_high']:.3f}]"
                        if np.isfinite(r.get("forecast_final_test_error", np.nan)) else "no forecast yet")
            note = "" if r.get("forecast_trusted", True) in (True, "True") else " (untrusted)"
            hover.append(f"{name}<br>step {r['step']}, epoch {r['epoch']:.3g}<br>progress "
                         f"{r.get(f'{split}_progress', np.nan):.3f}<br>nearest: {r.get('nearest_configuration', '')}"
                         f"<br>{forecast}{note}")
        fig.add_trace(go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="lines+markers", name=name,
                                   line=dict(width=6, color=style.color),
                                   marker=dict(size=[3] * (len(p) - 1) + [6], color=style.color,
                                               symbol=style.symbol), text=hover,
                                   hoverinfo="text"))
    fig.update_layout(title=dict(text=f"{split} split: runs placed in the atlas"), scene=scene_layout(emb["eigenvalues"]),
                      margin=dict(l=0, r=0, t=50, b=0), template="plotly_white")
    save_html(fig, out_path, div_id="inpca-atlas")
