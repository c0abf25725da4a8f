"""Figures of an embedding: `results/plots/{split}/{trajectories.png,trajectories.html,spectrum.png,progress.png}`.

Inputs: an embedding file `results/embedding/{split}.h5` (coords, signed eigenvalues, explained stress,
progress, distance to truth) and `results/store/index.tsv`, whose rows are the embedding's rows in the
same order. The figures follow Mao et al. (PNAS 2024): trajectories of the runs in the top three InPCA
components coloured by a column of the index, the P0→P* geodesic in black with ignorance P0 and truth
P* in red, time-like axes (λ < 0) marked in red; the eigenvalue spectrum (black λ > 0, red λ < 0) with
the explained stress S(k); progress λ and distance to P* against epochs.

Studies with corners (runs that start far from ignorance: pre-trained on random labels, on a subset, or
perturbed) add to the index, as `kind` = reference rows, the geodesics P0→corner (`run` = "P0->{corner}")
and corner→P* (`run` = "{corner}->P*") with the columns `corner` (the corner id) and `init` (the init
name). The trajectory figures draw them dashed, thinner than the main geodesic (P0→corner black,
corner→P* dark grey), and mark each corner with a black diamond. An index without such rows (or without
the `corner`/`init` columns) gives the same figures as before.

Only the plotting jobs import this module. Matplotlib runs with the Agg backend (no display); the
interactive HTML embeds plotly.js, so it opens offline.
"""

from __future__ import annotations

# The figures by what they show, in modules of their own; everything is importable from inpca.plots.
from ._common import (  # noqa: F401  (the private helpers: for the tests and the figures' own use)
    MAX_CATEGORIES_NUMERIC,
    CORNER_IN_COLOR,
    CORNER_OUT_COLOR,
    CORNER_MARKER_COLOR,
    MAIN_REFERENCE_RUNS,
    CORNER_IN,
    CORNER_OUT,
    CORNER_LABELS,
    REFERENCE_COLOR,
    TIMELIKE_COLOR,
    MINUS,
    HOVER_COLUMNS,
    load,
    CornerCurve,
    check_rows,
    split_of,
    format_lambda,
    axis_labels,
    coords3,
    stress_at,
    figure_title,
    colour_column,
    corner_direction,
    gapped,
    runs_mask,
    runs_of,
    grouped,
    references_of,
    label_value,
    corner_curves,
    corner_points,
    format_value,
    RunColours,
    legend_handles,
    place_legend,
    label_axes_png,
    scene_layout,
)
from .trajectories import (  # noqa: F401
    plot_trajectories_png,
    plot_trajectories_html,
    TRAJECTORIES_DIV_ID,
)
from .spectrum import (  # noqa: F401
    plot_spectrum,
    plot_progress,
)
from .trajectory_map import (  # noqa: F401
    plot_trajectory_map_png,
    plot_trajectory_map_html,
    MAP_HOVER_COLUMNS,
)
from .atlas import (  # noqa: F401
    PlacedStyle,
    placed_styles,
    plot_atlas_png,
    plot_atlas_html,
    PLACED_COLORS,
    PLACED_MARKERS,
    PLACED_LABEL_SIZE,
)
