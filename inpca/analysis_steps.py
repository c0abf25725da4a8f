"""The analysis stage of the pipeline: each rule's files in, its table and figure out.

Every step reads the equal-progress distances of one split (`results/analysis/{split}/equal_progress.h5`)
and the trajectory table (`results/trajectories/index.tsv`), leaves out the runs that do not count
(:func:`inpca.analysis.select_runs`), and writes under `results/analysis/{split}/`:

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

import logging

import numpy as np

from .errors import ResultsError
from .h5io import atomic_path, open_h5
from .results import read_table

log = logging.getLogger("inpca.analysis")

def _write_table(table, path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")


def load_trajectories(trajectories_path):
    """The trajectory table with the columns the analyses use (diverged as a bool)."""
    table = read_table(trajectories_path)
    table["diverged"] = table["diverged_at_step"].fillna(-1).astype(int) >= 0
    return table


def load_equal_progress(equal_progress_path, trajectories_path):
    """(dists (T, R, R), ts (T,), trajectories), checked to be in the same order."""
    with open_h5(equal_progress_path) as f:
        dists, ts = f["D"][()], f["t"][()]
        runs = [r.decode() for r in f["run"][()]]
    trajectories = load_trajectories(trajectories_path)
    if runs != trajectories["run"].tolist():
        raise ResultsError(f"{equal_progress_path} and {trajectories_path} list different trajectories; rerun the "
                           "trajectory stage (snakemake --cores all trajectories)")
    return dists, ts, trajectories


def _selected(trajectories, max_final_train_error):
    from .analysis import select_runs

    keep, excluded = select_runs(trajectories, max_final_train_error)
    for run, reason in zip(excluded["run"], excluded["reason"]):
        log.info("left out %s: %s", run, reason)
    return keep, excluded


def configurations(equal_progress_path, trajectories_path, out_tsv, out_png, *, max_final_train_error: float):
    from .analysis import configuration_archs, configuration_distances
    from .analysis_plots import plot_dendrogram

    dists, _, trajectories = load_equal_progress(equal_progress_path, trajectories_path)
    keep, _ = _selected(trajectories, max_final_train_error)
    labels, D, pairs = configuration_distances(dists, trajectories, keep)
    _write_table(pairs, out_tsv)
    plot_dendrogram(labels, D, configuration_archs(trajectories, labels), out_png)


def factors(equal_progress_path, trajectories_path, out_tsv, out_png, *, max_final_train_error: float):
    from .analysis import factor_effects, run_pairs
    from .analysis_plots import plot_factors

    dists, _, trajectories = load_equal_progress(equal_progress_path, trajectories_path)
    keep, _ = _selected(trajectories, max_final_train_error)
    pairs = run_pairs(dists, trajectories, keep)
    table = factor_effects(dists, trajectories, keep, pairs=pairs)
    _write_table(table, out_tsv)
    plot_factors(table, pairs, out_png)


def distance_to_geodesic(equal_progress_path, trajectories_path, out_tsv, out_png, *, max_final_train_error: float):
    from .analysis import distance_to_geodesic as table_of
    from .analysis_plots import plot_distance_to_geodesic

    dists, ts, trajectories = load_equal_progress(equal_progress_path, trajectories_path)
    keep, _ = _selected(trajectories, max_final_train_error)
    table = table_of(dists, trajectories, ts=ts, keep=keep)
    _write_table(table, out_tsv)
    plot_distance_to_geodesic(table, out_png)


def corners(equal_progress_path, trajectories_path, out_tsv, out_png, *, max_final_train_error: float,
            store_index_path=None, split: str = "train", index: str = "progress"):
    """Corner-started runs against their default-init partners (:func:`inpca.analysis.corner_distances`).
    Writes an empty table (header only) and a figure that says so when no corner run has a partner.
    `store_index_path` (optional) gives each run's index value at its first checkpoint (progress on
    `split`, or with `index` accuracy 1 - train error), where its reindexed trajectory starts."""
    from .analysis import corner_distances
    from .analysis_plots import plot_corner_distances

    dists, ts, trajectories = load_equal_progress(equal_progress_path, trajectories_path)
    keep, _ = _selected(trajectories, max_final_train_error)
    start = None
    if store_index_path is not None:
        points = read_table(store_index_path)
        first = points[(points["kind"] == "run") & (points["checkpoint"] == 0)].set_index("run")
        values = first[f"progress_{split}"] if index == "progress" else 1 - first["train_error"]
        start = trajectories["run"].map(values).to_numpy(dtype=float)
    table = corner_distances(dists, trajectories, keep, ts=ts, start=start)
    _write_table(table, out_tsv)
    plot_corner_distances(table, out_png)


def tube_width(trajectory_blocks: dict, trajectories_path, split: str, out_tsv, out_png, *,
               max_final_train_error: float, metric: str = "bhattacharyya", threads: int | None = None):
    """Tube width: reads the reindexed probabilities of one configuration at a time. A CPU job on
    any machine: each seed is compared with one mean trajectory, T distances per seed."""
    from .analysis import tube_widths
    from .analysis_plots import plot_tube_widths
    from .distances import pairwise

    trajectories = load_trajectories(trajectories_path)
    keep, _ = _selected(trajectories, max_final_train_error)
    files = {block: open_h5(path) for block, path in trajectory_blocks.items()}
    try:
        ts = next(iter(files.values()))["t"][()]

        def read_probs(rows):
            return np.stack([files[trajectories["block"].iloc[r]][f"{split}_probs"][int(trajectories["row"].iloc[r])]
                             for r in rows])

        def distance(P, Q):
            return pairwise(P, Q, metric=metric, device="cpu", threads=threads)

        table = tube_widths(trajectories, keep, ts, read_probs, distance)
    finally:
        for f in files.values():
            f.close()
    _write_table(table, out_tsv)
    plot_tube_widths(table, ts, out_png)


def speed(store_index_path, trajectories_path, split: str, out_runs_tsv, out_configurations_tsv, out_png, *,
          max_final_train_error: float, levels=(0.5, 0.8, 0.9)):
    from .analysis import speed as speed_tables
    from .analysis_plots import plot_speed

    points = read_table(store_index_path)
    trajectories = load_trajectories(trajectories_path)
    keep, _ = _selected(trajectories, max_final_train_error)
    per_run, per_configuration = speed_tables(points, trajectories, keep, split, levels=tuple(levels))
    _write_table(per_run, out_runs_tsv)
    _write_table(per_configuration, out_configurations_tsv)
    plot_speed(points, per_run, split, out_png)


def summary(split: str, trajectories_path, configurations_tsv, factors_tsv, tube_tsv, speed_configurations_tsv,
            embedding_path, out_md, *, max_final_train_error: float, corners_tsv=None, out_html=None):
    """summary.md, and with ``out_html`` the same text as an HTML page (:func:`inpca.analysis.summary_html`);
    ``corners_tsv`` (the table of :func:`corners`) only in a study with corners adds its section."""
    from .analysis import summary_html, summary_markdown

    trajectories = load_trajectories(trajectories_path)
    keep, excluded = _selected(trajectories, max_final_train_error)
    with open_h5(embedding_path) as f:
        explained_stress = f["explained_stress"][:3].tolist()
    text = summary_markdown(
        split, excluded=excluded, configuration_pairs=read_table(configurations_tsv),
        factors=read_table(factors_tsv), tube=read_table(tube_tsv),
        speed_per_configuration=read_table(speed_configurations_tsv), explained_stress=explained_stress,
        n_runs=int((trajectories["kind"] == "run").sum()),
        corners=read_table(corners_tsv) if corners_tsv is not None else None)
    with atomic_path(out_md) as tmp:
        tmp.write_text(text)
    if out_html is not None:
        with atomic_path(out_html) as tmp:
            tmp.write_text(summary_html(text, f"inpca: analysis of the {split} split"), encoding="utf-8")
