"""The trajectory figures: the runs in the top three InPCA components, PNG and interactive HTML."""

from __future__ import annotations

import math

import numpy as np

from ..figures import GEODESIC_COLOR, pyplot, save_html, save_png
from ._common import (
    CORNER_IN,
    CORNER_IN_COLOR,
    CORNER_LABELS,
    CORNER_MARKER_COLOR,
    CORNER_OUT,
    CORNER_OUT_COLOR,
    HOVER_COLUMNS,
    REFERENCE_COLOR,
    RunColours,
    check_rows,
    coords3,
    corner_curves,
    corner_points,
    format_value,
    gapped,
    label_axes_png,
    label_value,
    legend_handles,
    place_legend,
    references_of,
    colour_column,
    runs_of,
    scene_layout,
    figure_title,
)

# --------------------------------------------------------------------------------------------------
# trajectories


def plot_trajectories_png(emb: dict, index, out_path, color_by: str = "arch", title=None) -> None:
    """3-D plot of the top three components: runs coloured by `color_by`, geodesic, P0 and P*."""
    column = colour_column(index, color_by)
    check_rows(emb, index)
    plt = pyplot()
    from matplotlib.lines import Line2D

    xyz = coords3(emb)
    runs = runs_of(index)
    colors = RunColours(index, runs, column)
    many = len(runs) > 50
    fig = plt.figure(figsize=(10, 7.5))
    ax = fig.add_subplot(projection="3d")
    for i, (rid, rows) in enumerate(runs):
        p = xyz[rows]
        ax.plot(p[:, 0], p[:, 1], p[:, 2], color=colors.run_color[i], lw=0.8 if many else 1.3, alpha=0.85,
                marker=None if many else "o", ms=2.0)
        ax.scatter(*p[-1], color=colors.run_color[i], s=8 if many else 14, depthshade=False)  # final checkpoint
    refs, p0, pstar = references_of(index)
    extra = []
    if len(refs) > 1:
        g = xyz[refs]
        ax.plot(g[:, 0], g[:, 1], g[:, 2], color=GEODESIC_COLOR, lw=2.2, zorder=5)
        extra.append(Line2D([], [], color=GEODESIC_COLOR, lw=2.2, label="geodesic P0→P*"))
    extra.extend(_draw_corners_png(ax, xyz, index))
    for row, name in ((p0, "P0 (ignorance)"), (pstar, "P* (truth)")):
        if row is None:
            continue
        ax.scatter(*xyz[row], color=REFERENCE_COLOR, s=70, marker="o", edgecolor="black", depthshade=False, zorder=6)
        ax.text(*xyz[row], "  " + name.split()[0], color=REFERENCE_COLOR, fontsize=11, fontweight="bold", zorder=7)
    if p0 is not None or pstar is not None:
        extra.append(Line2D([], [], color=REFERENCE_COLOR, marker="o", lw=0, markeredgecolor="black",
                            label="P0 ignorance, P* truth"))
    label_axes_png(ax, emb["eigenvalues"])
    pairs = colors.mpl_legend(ax, fig)
    place_legend(ax, legend_handles(pairs or []), extra, column if pairs else None)
    ax.set_box_aspect(None, zoom=0.88)
    ax.set_title(figure_title(emb, title, "InPCA trajectories", column), fontsize=11)
    save_png(fig, out_path)


def _draw_corners_png(ax, xyz, index) -> list:
    """Draw the corner curves (dashed, thinner than the main geodesic) and the corner points (black
    diamonds, labelled with their init); legend handles, one per kind of item present."""
    from matplotlib.lines import Line2D

    curves = corner_curves(index)
    if not curves:
        return []
    colors = {CORNER_IN: CORNER_IN_COLOR, CORNER_OUT: CORNER_OUT_COLOR}
    handles = {}
    for curve in curves:
        if len(curve.rows) < 2:
            continue
        g = xyz[curve.rows]
        ax.plot(g[:, 0], g[:, 1], g[:, 2], color=colors[curve.direction], lw=1.3, ls="--", zorder=4)
        handles[curve.direction] = Line2D([], [], color=colors[curve.direction], lw=1.3, ls="--",
                                          label=CORNER_LABELS[curve.direction])
    out = [handles[d] for d in (CORNER_IN, CORNER_OUT) if d in handles]
    points = corner_points(index, curves)
    for row, _, init in points:
        ax.scatter(*xyz[row], color=CORNER_MARKER_COLOR, s=45, marker="D", edgecolor="white", linewidths=0.6,
                   depthshade=False, zorder=6)
        if init:
            ax.text(*xyz[row], "  " + init, color=CORNER_MARKER_COLOR, fontsize=8, zorder=7)
    if points:
        out.append(Line2D([], [], color=CORNER_MARKER_COLOR, marker="D", lw=0, markeredgecolor="white",
                          label="corner"))
    return out


def _hover(index, rows, progress) -> list[str]:
    import pandas as pd

    out = []
    for r in rows:
        parts = []
        for col in HOVER_COLUMNS:
            if col in index.columns:
                v = index[col].iloc[r]
                if pd.isna(v):
                    continue
                if col in ("train_error", "test_error") and isinstance(v, (float, np.floating)):
                    parts.append(f"{col}: {float(v):.4f}")
                elif col == "epoch" and isinstance(v, (float, np.floating)):
                    parts.append(f"{col}: {float(v):.3g}")
                else:
                    parts.append(f"{col}: {format_value(v)}")
        corner = label_value(index, "corner", r)
        if corner:  # a run that starts from a corner
            parts.append(f"corner: {corner}")
            init = label_value(index, "init", r)
            if init:
                parts.append(f"init: {init}")
        if progress is not None and np.isfinite(progress[r]):
            parts.append(f"progress λ: {progress[r]:.4f}")
        out.append("<br>".join(parts))
    return out


def _draw_corners_html(fig, go, xyz, index) -> None:
    """The corner curves as one dashed trace per direction (one legend entry each, curves separated by
    None gaps) and the corners as one trace of black diamonds with the corner id and init on hover."""
    curves = corner_curves(index)
    if not curves:
        return
    has_t = "t" in index.columns
    colors = {CORNER_IN: CORNER_IN_COLOR, CORNER_OUT: CORNER_OUT_COLOR}
    for direction in (CORNER_IN, CORNER_OUT):
        xs, ys, zs, text = [], [], [], []
        for curve in curves:
            if curve.direction != direction or len(curve.rows) < 2:
                continue
            if xs:
                for seq in (xs, ys, zs, text):
                    seq.append(None)
            g = xyz[curve.rows]
            xs.extend(g[:, 0].tolist())
            ys.extend(g[:, 1].tolist())
            zs.extend(g[:, 2].tolist())
            name = f"geodesic P0→{curve.corner}" if direction == CORNER_IN else f"geodesic {curve.corner}→P*"
            init = f" ({curve.init})" if curve.init else ""
            for r in curve.rows:
                t = index["t"].iloc[r] if has_t else float("nan")
                text.append(f"{name}{init}" + (f"<br>t={float(t):.3g}" if not _isnan(t) else ""))
        if not xs:
            continue
        fig.add_trace(go.Scatter3d(
            x=xs, y=ys, z=zs, mode="lines", name=CORNER_LABELS[direction], legendgroup=direction,
            line=dict(color=colors[direction], width=3, dash="dash"), text=text, hoverinfo="text",
            connectgaps=False))
    points = corner_points(index, curves)
    if points:
        fig.add_trace(go.Scatter3d(
            x=[xyz[r, 0] for r, _, _ in points], y=[xyz[r, 1] for r, _, _ in points],
            z=[xyz[r, 2] for r, _, _ in points], mode="markers", name="corner", legendgroup="corner",
            marker=dict(size=6, symbol="diamond", color=CORNER_MARKER_COLOR, line=dict(color="white", width=1)),
            hovertext=[f"corner: {c}" + (f"<br>init: {i}" if i else "") for _, c, i in points], hoverinfo="text"))


def _isnan(v) -> bool:
    try:
        return math.isnan(float(v))
    except (TypeError, ValueError):
        return True


# the id of the plotly div in trajectories.html (one figure per page, so it need not be unique)
TRAJECTORIES_DIV_ID = "inpca-trajectories"


def plot_trajectories_html(emb: dict, index, out_path, color_by: str = "arch", title=None) -> None:
    """The trajectories as a self-contained interactive plotly page (plotly.js embedded, opens offline)."""
    column = colour_column(index, color_by)
    check_rows(emb, index)
    import plotly.graph_objects as go

    xyz = coords3(emb)
    runs = runs_of(index)
    colors = RunColours(index, runs, column)
    progress = np.asarray(emb["progress"], dtype=float) if "progress" in emb else None
    hover_all = _hover(index, range(len(index)), progress)
    fig = go.Figure()

    if colors.continuous:
        # one trace per run keeps None gaps out of the colour array; one shared colorbar
        cvals = np.log10(colors.values) if colors.log else colors.values
        finite = cvals[np.isfinite(cvals)]
        cmin, cmax = float(finite.min()), float(finite.max())
        for i, (rid, rows) in enumerate(runs):
            p = xyz[rows]
            fig.add_trace(go.Scatter3d(
                x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="lines+markers", name=rid, legendgroup="runs",
                showlegend=False, line=dict(color=colors.run_color[i], width=3),
                marker=dict(size=2.5, color=colors.run_color[i]),
                text=[hover_all[r] for r in rows], hoverinfo="text"))
        fig.add_trace(go.Scatter3d(
            x=[None], y=[None], z=[None], mode="markers", name=column, showlegend=False, hoverinfo="skip",
            marker=dict(size=0.1, color=[cmin], cmin=cmin, cmax=cmax, colorscale="Viridis", showscale=True,
                        colorbar=dict(title=f"log10 {column}" if colors.log else column, len=0.6))))
    else:
        for category in colors.categories:
            members = [run for i, run in enumerate(runs) if colors.run_label[i] == category]
            xs, ys, zs, text = gapped(xyz, members, hover_all)
            fig.add_trace(go.Scatter3d(
                x=xs, y=ys, z=zs, mode="lines+markers", name=category, legendgroup=category,
                line=dict(color=colors.category_color[category], width=3),
                marker=dict(size=2.5, color=colors.category_color[category]),
                text=text, hoverinfo="text", connectgaps=False))
    refs, p0, pstar = references_of(index)
    if len(refs) > 1:
        g = xyz[refs]
        fig.add_trace(go.Scatter3d(
            x=g[:, 0], y=g[:, 1], z=g[:, 2], mode="lines", name="geodesic P0→P*", legendgroup="geodesic",
            line=dict(color=GEODESIC_COLOR, width=6),
            text=[f"geodesic t={index['t'].iloc[r]:.3g}" if "t" in index.columns else "geodesic" for r in refs],
            hoverinfo="text"))
    _draw_corners_html(fig, go, xyz, index)
    ends = [(r, n) for r, n in ((p0, "P0"), (pstar, "P*")) if r is not None]
    if ends:
        fig.add_trace(go.Scatter3d(
            x=[xyz[r, 0] for r, _ in ends], y=[xyz[r, 1] for r, _ in ends], z=[xyz[r, 2] for r, _ in ends],
            mode="markers+text", name="P0 ignorance, P* truth", text=[n for _, n in ends],
            textposition="top center", textfont=dict(color=REFERENCE_COLOR, size=14),
            marker=dict(size=7, color=REFERENCE_COLOR, line=dict(color="black", width=1)),
            hovertext=["P0: ignorance (uniform predictions)" if n == "P0" else "P*: truth (one-hot labels)"
                       for _, n in ends], hoverinfo="text"))
    fig.update_layout(title=dict(text=figure_title(emb, title, "InPCA trajectories", column)),
                      scene=scene_layout(emb["eigenvalues"]), legend=dict(title=dict(text=column), itemsizing="constant"),
                      margin=dict(l=0, r=0, t=50, b=0), template="plotly_white")
    save_html(fig, out_path, div_id=TRAJECTORIES_DIV_ID)
