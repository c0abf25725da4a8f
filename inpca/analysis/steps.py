"""The analysis stage of the pipeline: each rule's files in, its table and figure out.

Every step (``write_<what it writes>``) reads the trajectory table (`results/trajectories/index.tsv`),
leaves out the runs that do not count (:func:`inpca.analysis.select_runs`) and writes under
`results/analysis/{split}/`; the comparisons of whole trajectories read the equal-progress distances
of the split (`results/analysis/{split}/equal_progress.h5`), the tube width reads the store and the
trajectory plans, the speed the store's index, the summary the other steps' tables:

  configurations.tsv, dendrogram.png          distances between configurations (all fields but the seed)
  factors.tsv, factors.png                    which factors move trajectories apart
  distance_to_geodesic.tsv, .png              d_B(trajectory at t_k, γ(t_k)) against t_k
  tube_width.tsv, .png                        d_B(seed, its configuration's seed-mean) against t_k
  speed_runs.tsv, speed_configurations.tsv, speed.png   epochs and steps to progress levels
  corners.tsv, corners.png                    only in a study with corners (grid key `init`): distance of
                                              corner-started runs from the same training at the default
                                              init, and between seeds, against t_k
  summary.md, summary.html                    one paragraph per claim, with the study's numbers (the
                                              HTML page is the same text, for the report)
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np

from ..folders import study_command
from ..configurations import configuration_archs, configuration_labels
from ..distances import pairwise
from ..errors import ResultsError
from ..files import atomic_path, create, open_h5, read_table, text, write_h5, write_table
from ..plots import plot_trajectory_map_html, plot_trajectory_map_png
from ..trajectory_files import ReindexedBlock
from .claims import (configuration_distances, corner_distances, distance_to_geodesic, factor_effects, run_pairs, speed,
                     trajectory_map, tube_widths)
from .plots import (plot_corner_distances, plot_dendrogram, plot_distance_to_geodesic, plot_factors, plot_speed,
                    plot_tube_widths)
from .selection import select_runs
from .summary import summary_html, summary_markdown

log = logging.getLogger("inpca.analysis")


def load_trajectories(trajectories_path):
    """The trajectory table with the columns the analyses use (diverged as a bool)."""
    table = read_table(trajectories_path)
    table["diverged"] = table["diverged_at_step"].fillna(-1).astype(int) >= 0
    return table


def load_equal_progress(equal_progress_path, trajectories_path):
    """(dists (T, R, R), ts (T,), trajectories), checked to be in the same order."""
    with open_h5(equal_progress_path) as f:
        dists, ts = f["D"][()], f["t"][()]
        runs = text(f["run"][()])
    trajectories = load_trajectories(trajectories_path)
    if runs != trajectories["run"].tolist():
        raise ResultsError(f"{equal_progress_path} and {trajectories_path} list different trajectories; rerun the "
                           f"trajectory stage ({study_command(equal_progress_path, 'trajectories')})")
    return dists, ts, trajectories


def _selected(trajectories, max_final_train_error):
    """The runs that count (keep) and those left out with the reason (excluded), logged."""
    keep, excluded = select_runs(trajectories, max_final_train_error)
    for run, reason in zip(excluded["run"], excluded["reason"]):
        log.info("left out %s: %s", run, reason)
    return keep, excluded


def write_configurations(equal_progress_path, trajectories_path, out_tsv, out_png, *, max_final_train_error: float):
    """configurations.tsv (the distance between every two configurations, over their seeds and t_k) and
    dendrogram.png (:func:`inpca.analysis.configuration_distances`)."""
    dists, _, trajectories = load_equal_progress(equal_progress_path, trajectories_path)
    keep, _ = _selected(trajectories, max_final_train_error)
    labels, D, pairs = configuration_distances(dists, trajectories, keep)
    write_table(pairs, out_tsv)
    plot_dendrogram(labels, D, configuration_archs(trajectories, labels), out_png)


def write_factors(equal_progress_path, trajectories_path, out_tsv, out_png, *, max_final_train_error: float):
    """factors.tsv and factors.png: how far apart trajectories are that differ in one factor alone
    (:func:`inpca.analysis.factor_effects`)."""
    dists, _, trajectories = load_equal_progress(equal_progress_path, trajectories_path)
    keep, _ = _selected(trajectories, max_final_train_error)
    pairs = run_pairs(dists, trajectories, keep)
    table = factor_effects(dists, trajectories, keep, pairs=pairs)
    write_table(table, out_tsv)
    plot_factors(table, pairs, out_png)


def write_distance_to_geodesic(equal_progress_path, trajectories_path, out_tsv, out_png, *,
                               max_final_train_error: float):
    """distance_to_geodesic.tsv and .png: each trajectory's distance to the geodesic at each t_k."""
    dists, ts, trajectories = load_equal_progress(equal_progress_path, trajectories_path)
    keep, _ = _selected(trajectories, max_final_train_error)
    table = distance_to_geodesic(dists, trajectories, ts=ts, keep=keep)
    write_table(table, out_tsv)
    plot_distance_to_geodesic(table, out_png)


def write_corners(equal_progress_path, trajectories_path, out_tsv, out_png, *, max_final_train_error: float,
            store_index_path=None, split: str = "train", index: str = "progress"):
    """Corner-started runs against their default-init partners (:func:`inpca.analysis.corner_distances`).
    Writes an empty table (header only) and a figure that says so when no corner run has a partner.
    `store_index_path` (optional) gives each run's index value at its first checkpoint (progress on
    `split`, or with `index` accuracy 1 - train error), where its reindexed trajectory starts."""

    dists, ts, trajectories = load_equal_progress(equal_progress_path, trajectories_path)
    keep, _ = _selected(trajectories, max_final_train_error)
    start = None
    if store_index_path is not None:
        points = read_table(store_index_path)
        first = points[(points["kind"] == "run") & (points["checkpoint"] == 0)].set_index("run")
        values = first[f"progress_{split}"] if index == "progress" else 1 - first["train_error"]
        start = trajectories["run"].map(values).to_numpy(dtype=float)
    table = corner_distances(dists, trajectories, keep, ts=ts, start=start)
    write_table(table, out_tsv)
    plot_corner_distances(table, out_png)


def write_tube_width(store_blocks: dict, plans: dict, reference, trajectories_path, split: str, out_tsv, out_png, *,
               max_final_train_error: float, metric: str = "bhattacharyya", threads: int | None = None):
    """Tube width: each configuration's seeds at equal progress, computed from the store and the plans
    one configuration at a time. A CPU job on any machine: each seed is compared with one mean
    trajectory, T distances per seed. `store_blocks`, `plans`: {block: path} of the trajectory blocks."""
    trajectories = load_trajectories(trajectories_path)
    keep, _ = _selected(trajectories, max_final_train_error)
    with contextlib.ExitStack() as stack:
        blocks = {block: stack.enter_context(ReindexedBlock(store_blocks[block], plans[block], reference, split))
                  for block in plans}
        ts = next(iter(blocks.values())).t

        def read_probs(rows):
            return np.stack([blocks[trajectories["block"].iloc[r]].trajectory(int(trajectories["row"].iloc[r]))
                             for r in rows])

        def distance(P, Q):
            return pairwise(P, Q, metric=metric, device="cpu", threads=threads)

        table = tube_widths(trajectories, keep, ts, read_probs, distance)
    write_table(table, out_tsv)
    plot_tube_widths(table, ts, out_png)


def write_trajectory_map(equal_progress_path, trajectories_path, split: str, out_h5, out_png, out_html, *,
                   max_final_train_error: float, color_by: str = "arch", geodesic_weight=1.0,
                   n_components: int = 10):
    """The map of whole trajectories (:func:`inpca.analysis.trajectory_map`) -> `trajectory_map.h5`:
    coords (P, k), eigenvalues (k,), explained_stress (k,), run, kind (P,) and the trajectories' rows of
    index.tsv (`row`); attributes split, geodesic_weight, nn_same_arch, nn_chance, silhouette; and its
    figures, PNG and interactive HTML."""
    dists, _, trajectories = load_equal_progress(equal_progress_path, trajectories_path)
    keep, _ = _selected(trajectories, max_final_train_error)
    result = trajectory_map(dists, trajectories, keep, n_components=n_components, geodesic_weight=geodesic_weight)
    table = trajectories.iloc[result["rows"]].reset_index(drop=True)
    table["configuration"] = configuration_labels(trajectories).to_numpy()[result["rows"]]

    def fill(f):
        for name in ("coords", "eigenvalues", "explained_stress"):
            create(f, name, data=result[name])
        create(f, "row", data=result["rows"].astype(np.int64))
        create(f, "run", data=np.array(table["run"].astype(str), dtype="S"))
        create(f, "kind", data=np.array(table["kind"].astype(str), dtype="S"))
        f.attrs.update({"split": split, "geodesic_weight": result["geodesic_weight"],
                        **{k: result[k] for k in ("nn_same_arch", "nn_chance", "silhouette")}})

    write_h5(out_h5, fill)
    figure = {**result, "attrs": {"split": split}}
    plot_trajectory_map_png(figure, table, out_png, color_by=color_by)
    plot_trajectory_map_html(figure, table, out_html, color_by=color_by)
    log.info("map of %d trajectories (%s): S(1..3) = %s; nearest run of the same architecture for %.0f %% (chance "
             "%.0f %%)", len(table), split, np.round(result["explained_stress"][:3], 3), 100 * result["nn_same_arch"],
             100 * result["nn_chance"])


def write_speed(store_index_path, trajectories_path, split: str, out_runs_tsv, out_configurations_tsv, out_png, *,
                max_final_train_error: float, levels=(0.5, 0.8, 0.9)):
    """speed_runs.tsv, speed_configurations.tsv and speed.png: epochs and steps each run (and each
    configuration, over its seeds) took to reach the progress `levels` (:func:`inpca.analysis.speed`)."""
    points = read_table(store_index_path)
    trajectories = load_trajectories(trajectories_path)
    keep, _ = _selected(trajectories, max_final_train_error)
    per_run, per_configuration = speed(points, trajectories, keep, split, levels=tuple(levels))
    write_table(per_run, out_runs_tsv)
    write_table(per_configuration, out_configurations_tsv)
    plot_speed(points, per_run, split, out_png)


def write_summary(split: str, trajectories_path, configurations_tsv, factors_tsv, tube_tsv, speed_configurations_tsv,
                  embedding_path, out_md, *, max_final_train_error: float, corners_tsv=None, out_html=None,
                  trajectory_map_path=None):
    """summary.md, and with ``out_html`` the same text as an HTML page (:func:`inpca.analysis.summary_html`);
    ``corners_tsv`` (the table of :func:`write_corners`) only in a study with corners adds its section."""

    trajectories = load_trajectories(trajectories_path)
    keep, excluded = _selected(trajectories, max_final_train_error)
    with open_h5(embedding_path) as f:
        explained_stress = f["explained_stress"][:3].tolist()
    the_map = None
    if trajectory_map_path is not None:
        with open_h5(trajectory_map_path) as f:
            the_map = {"explained_stress": f["explained_stress"][:3],
                              **{k: float(f.attrs[k]) for k in ("nn_same_arch", "nn_chance", "silhouette")}}
    markdown = summary_markdown(
        split, excluded=excluded, configuration_pairs=read_table(configurations_tsv),
        factors=read_table(factors_tsv), tube=read_table(tube_tsv),
        speed_per_configuration=read_table(speed_configurations_tsv), explained_stress=explained_stress,
        n_runs=int((trajectories["kind"] == "run").sum()),
        corners=read_table(corners_tsv) if corners_tsv is not None else None, trajectory_map=the_map)
    with atomic_path(out_md) as tmp:
        tmp.write_text(markdown)
    if out_html is not None:
        with atomic_path(out_html) as tmp:
            tmp.write_text(summary_html(markdown, f"inpca: analysis of the {split} split"), encoding="utf-8")
