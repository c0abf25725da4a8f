"""The trajectory stage of the pipeline: store blocks -> reindexed trajectories -> equal-progress tiles.

`results/trajectories/{block}.h5`: every run of one store block resampled at the T index values
t_k = k/T (:mod:`inpca.trajectories`); the reference block `ref` holds the geodesic γ(t_k) as one
more trajectory, named `geodesic`. Layout:

  train_probs, test_probs   (R, T, N_split, C) float32   probabilities of the reindexed trajectories,
                                                         chunked (1, 1, N, C): one point per read
  train_loss, train_error, test_loss, test_error   (R, T) float64   of the interpolated predictions
  final_index_train, final_index_test              (R,) float64     the index value of each run's last
                                                         checkpoint (past it the trajectory holds still)
  run, kind   (R,) str   run id and "run", or "geodesic"
  t           (T,) float64
Attributes: index (progress | accuracy), points, fingerprint, num_classes, n_train, n_test.

`results/trajectories/index.tsv`: one row per trajectory in the order of every equal-progress matrix
(blocks in store order): point, block, row, run, kind, arch, optimizer, parameters,
diverged_at_step, final_train_error, final_test_error, final_index_train, final_index_test and every
config field of the run.

`results/analysis/{split}/tiles/{a}-{b}.h5` (by :func:`inpca.tiles.compute_tile`): `D` (T, R_a, R_b)
float64, the distance between trajectory i of block a and trajectory j of block b at the same t_k,
and `t`; assembled into
`results/analysis/{split}/equal_progress.h5` by :func:`inpca.tiles.assemble` (`D` (T, R, R), `mean`
over t, `t`, `run`, `kind`).
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

import numpy as np

from .config import SPLITS
from .errors import ResultsError
from .files import create, open_h5, text, write_h5
from .study import GEODESIC, POINT_FIELDS

log = logging.getLogger("inpca.trajectories")

# Columns of the store's index that belong to a point, not to its run
_RUN_COLUMNS_SKIPPED = {"point", "block", "row", "run", "kind", *POINT_FIELDS}


def _run_rows(runs: list[str]) -> dict[str, slice]:
    """Each run's contiguous rows in a store block (the store writes a run's checkpoints in order)."""
    rows: dict[str, slice] = {}
    for i, run in enumerate(runs):
        start = rows[run].start if run in rows else i
        if run in rows and rows[run].stop != i:
            raise ResultsError(f"the checkpoints of run {run} are not contiguous in its store block")
        rows[run] = slice(start, i + 1)
    return rows


def reindex_block(block_path, reference_path, out_path, *, index: str = "progress", points: int = 50) -> None:
    """Reindex every run of a store block (or, for the reference block, write the geodesic)."""
    from .store import open_block, read_reference
    from .trajectories import geodesic_trajectory, index_grid, index_values, reindex, reindex_metrics

    started = time.time()
    ts = index_grid(points)
    reference = read_reference(reference_path)
    attrs = reference["attrs"]
    n_classes = int(attrs["num_classes"])
    labels = {split: reference[f"{split}_labels"] for split in SPLITS}
    with open_block(block_path) as block:
        kinds = text(block["kind"][()])
        is_reference = all(kind == "reference" for kind in kinds)
        runs = [GEODESIC] if is_reference else list(_run_rows(text(block["run"][()])))
        rows = {} if is_reference else _run_rows(text(block["run"][()]))

        def fill(f):
            r, t = len(runs), len(ts)
            for split in SPLITS:
                n = len(labels[split])
                probs = create(f, f"{split}_probs", shape=(r, t, n, n_classes), dtype=np.float32,
                                         chunks=(1, 1, n, n_classes))
                loss, error, final = np.empty((r, t)), np.empty((r, t)), np.empty(r)
                for i, run in enumerate(runs):
                    if is_reference:
                        trajectory, final[i] = geodesic_trajectory(labels[split], n_classes, ts), 1.0
                    else:
                        where = rows[run]
                        values = index_values(block[f"progress_{split}"][where], block["train_error"][where], index)
                        trajectory = reindex(block[f"{split}_probs"][where], values, ts)
                        final[i] = values[-1]
                    probs[i] = trajectory.astype(np.float32)
                    loss[i], error[i] = reindex_metrics(trajectory, labels[split])
                create(f, f"{split}_loss", data=loss)
                create(f, f"{split}_error", data=error)
                create(f, f"final_index_{split}", data=final)
            create(f, "run", data=np.array(runs, dtype="S"))
            kind = GEODESIC if is_reference else "run"
            create(f, "kind", data=np.array([kind] * len(runs), dtype="S"))
            create(f, "t", data=ts)
            f.attrs.update({"index": index, "points": int(points), "fingerprint": attrs["fingerprint"],
                            "num_classes": n_classes, "n_train": int(attrs["n_train"]),
                            "n_test": int(attrs["n_test"])})

        write_h5(out_path, fill)
    log.info("reindexed %s: %d trajectories at %d values of %s in %.2f s", Path(block_path).stem, len(runs),
             len(ts), index, time.time() - started)


def _last_checkpoints(store_index_path) -> dict[str, dict]:
    """Per run: its row of the store index at its last checkpoint (config fields, final errors)."""
    last: dict[str, dict] = {}
    with open(store_index_path, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["kind"] == "run":
                last[row["run"]] = row
    return last


def write_trajectory_index(out_path, trajectory_blocks: dict, store_index_path) -> None:
    """index.tsv of the trajectories, in equal-progress matrix order (blocks in the given order)."""
    from .files import atomic_path

    last = _last_checkpoints(store_index_path)
    config_columns = list(dict.fromkeys(k for row in last.values() for k in row if k not in _RUN_COLUMNS_SKIPPED))
    rows = []
    for block, path in trajectory_blocks.items():
        with open_h5(path) as f:
            runs, kinds = text(f["run"][()]), text(f["kind"][()])
            finals = {split: f[f"final_index_{split}"][()] for split in SPLITS}
        for i, (run, kind) in enumerate(zip(runs, kinds)):
            info = last.get(run, {})
            if kind == "run" and not info:
                raise ResultsError(f"{path}: run {run} is not in {store_index_path}; rerun the store")
            rows.append({**{k: info.get(k, "") for k in config_columns}, "point": len(rows), "block": block,
                         "row": i, "run": run, "kind": kind, "arch": info.get("arch", kind),
                         "optimizer": info.get("optimizer", kind),
                         "final_train_error": info.get("train_error", ""), "final_test_error": info.get("test_error", ""),
                         **{f"final_index_{split}": repr(float(finals[split][i])) for split in SPLITS}})
    leading = ["point", "block", "row", "run", "kind", "arch", "optimizer", "parameters", "diverged_at_step",
               "final_train_error", "final_test_error", "final_index_train", "final_index_test"]
    fields = leading + [c for c in config_columns if c not in leading]
    with atomic_path(out_path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, delimiter="\t", extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    log.info("wrote %s: %d trajectories in %d blocks", out_path, len(rows), len(trajectory_blocks))
