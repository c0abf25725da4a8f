"""The map of whole trajectories: one point per trajectory, PNG and interactive HTML."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..figures import GEODESIC_COLOR, pyplot, save_html, save_png
from ._common import (
    RunColours,
    coords3,
    format_value,
    label_axes_png,
    legend_handles,
    place_legend,
    colour_column,
    runs_mask,
    runs_of,
    scene_layout,
    figure_title,
)

# --------------------------------------------------------------------------------------------------
# the map of whole trajectories

MAP_HOVER_COLUMNS = ("run", "configuration", "arch", "optimizer", "final_train_error", "final_test_error")


def _map_colour_column(table, color_by: str) -> str:
    """plots.color_by if the trajectory table has it (a run's config field), else arch: a point of the
    map is a whole trajectory, so a checkpoint's column (epoch, errors) does not colour it."""
    try:
        return colour_column(table, color_by)
    except ConfigError:
        return "arch"


def _map_points(table):
    """(runs, geodesic rows) of the map's table, one row per trajectory."""
    return runs_of(table), np.flatnonzero(~runs_mask(table))


def plot_trajectory_map_png(trajectory_map: dict, table, out_path, color_by: str = "arch") -> None:
    """The map of whole trajectories in its top three components: one point per kept trajectory,
    coloured by `color_by` (a config field; else arch), the geodesic a black star.
    `trajectory_map`: coords, eigenvalues, explained_stress, split; `table`: the kept trajectories' rows."""
    from matplotlib.lines import Line2D

    column = _map_colour_column(table, color_by)
    xyz = coords3(trajectory_map)
    runs, geodesic = _map_points(table)
    plt = pyplot()
    fig = plt.figure(figsize=(9, 7))
    ax = fig.add_subplot(projection="3d")
    colors = RunColours(table, runs, column) if runs else None
    if runs:  # one point per trajectory, all in one scatter (thousands of runs at the paper's scale)
        first = xyz[[rows[0] for _, rows in runs]]
        ax.scatter(first[:, 0], first[:, 1], first[:, 2], c=colors.run_color, s=40, edgecolor="black",
                   linewidths=0.3, depthshade=False)
    extra = []
    for row in geodesic:
        ax.scatter(*xyz[row], color=GEODESIC_COLOR, s=160, marker="*", depthshade=False, zorder=6)
        extra.append(Line2D([], [], color=GEODESIC_COLOR, marker="*", lw=0, ms=12, label="geodesic P0→P*"))
    label_axes_png(ax, trajectory_map["eigenvalues"])
    pairs = colors.mpl_legend(ax, fig) if colors else None
    place_legend(ax, legend_handles(pairs or [], marker="o"), extra, column if pairs else None)
    ax.set_box_aspect(None, zoom=0.88)
    ax.set_title(figure_title(trajectory_map, None, "InPCA of whole trajectories (mean distance at equal progress)",
                        column), fontsize=10)
    save_png(fig, out_path)


def plot_trajectory_map_html(trajectory_map: dict, table, out_path, color_by: str = "arch") -> None:
    """The map of whole trajectories as a self-contained interactive plotly page; hover shows the run,
    its configuration and final errors."""
    import plotly.graph_objects as go

    column = _map_colour_column(table, color_by)
    xyz = coords3(trajectory_map)
    runs, geodesic = _map_points(table)

    def hover(row):
        return "<br>".join(f"{c}: {format_value(table[c].iloc[row])}" for c in MAP_HOVER_COLUMNS if c in table.columns)

    fig = go.Figure()
    if runs:
        colors = RunColours(table, runs, column)
        groups = [(category, [i for i, label in enumerate(colors.run_label) if label == category])
                  for category in colors.categories] if not colors.continuous else [(column, list(range(len(runs))))]
        for name, members in groups:
            rows = [runs[i][1][0] for i in members]
            fig.add_trace(go.Scatter3d(
                x=xyz[rows, 0], y=xyz[rows, 1], z=xyz[rows, 2], mode="markers", name=name,
                marker=dict(size=5, color=[colors.run_color[i] for i in members], line=dict(color="black", width=0.5)),
                text=[hover(r) for r in rows], hoverinfo="text"))
    for row in geodesic:
        fig.add_trace(go.Scatter3d(
            x=[xyz[row, 0]], y=[xyz[row, 1]], z=[xyz[row, 2]], mode="markers", name="geodesic P0→P*",
            marker=dict(size=9, color=GEODESIC_COLOR, symbol="diamond"), text=["geodesic P0→P*"], hoverinfo="text"))
    fig.update_layout(title=dict(text=figure_title(trajectory_map, None, "InPCA of whole trajectories", column)),
                      scene=scene_layout(trajectory_map["eigenvalues"]),
                      legend=dict(title=dict(text=column), itemsizing="constant"),
                      margin=dict(l=0, r=0, t=50, b=0), template="plotly_white")
    save_html(fig, out_path, div_id="inpca-trajectory-map")
