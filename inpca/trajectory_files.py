"""The trajectory stage of the pipeline: store blocks -> reindexing plans -> distances at equal progress.

`results/trajectories/{block}.h5` (rule reindex, one per store block): how every run of the block is
reindexed at the T index values t_k = k/T (:func:`inpca.trajectories.reindex_plan`), and the loss and
error of the model there. No probabilities: the models at equal progress are computed from the store
where they are used (:class:`ReindexedBlock`), since storing them would take R x T x N x C floats
(about 230 GB per split at the paper's scale) to save an interpolation whose work grows with the
trajectories, not with their pairs (a fused kernel, :func:`inpca.trajectories.interpolate_rows`). The reference block `ref` plans the geodesic gamma(t_k) as one more trajectory,
named `geodesic`, computed from the labels. Layout:

  {split}_rows       (R, T, 2) int64    rows of the store block: the lower and upper checkpoint of each
                                        model (equal: that checkpoint as stored; -1: the geodesic)
  {split}_fraction   (R, T) float64     where between the two on the sphere geodesic
  {split}_loss, {split}_error   (R, T) float64   of the model at t_k (cross-entropy, 0/1 error)
  final_index_{split}           (R,) float64     the index value of each run's last checkpoint (past it
                                                 the trajectory holds still)
  run, kind   (R,) str   run id and "run", or "geodesic"
  t           (T,) float64
Attributes: index (progress | accuracy), points, fingerprint, num_classes, n_train, n_test, store_block.

`results/trajectories/index.tsv`: one row per trajectory in the order of every equal-progress matrix
(blocks in store order): point, block, row, run, kind, arch, optimizer, parameters,
diverged_at_step, final_train_error, final_test_error, final_index_train, final_index_test and every
config field of the run.

`results/analysis/{split}/tiles/{a}-{b}.h5` (:func:`equal_progress_tile`, straight from the store
blocks a and b and their plans): `D` (T, R_a, R_b) float64, the distance between trajectory i of block
a and trajectory j of block b at the same t_k, and `t`; assembled into
`results/analysis/{split}/equal_progress.h5` by :func:`inpca.tiles.assemble` (`D` (T, R, R), `mean`
over t, `t`, `run`, `kind`). A tile job holds, per t_k, each run's two checkpoints and its model
there (float32 rows of N x C), never a whole trajectory: its memory is
:func:`inpca.resources.trajectory_tile_mem_mb`.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import time
from pathlib import Path

import numpy as np

from .config import SPLITS
from .distances import pairwise_streamed, thread_limit
from .errors import ResultsError
from .files import atomic_path, create, open_h5, text, write_h5
from .kernels import default_kernel_name
from .store import open_block, read_reference
from .study import GEODESIC, POINT_FIELDS
from .tiles import job_device
from .trajectories import geodesic_trajectory, index_grid, index_values, interpolate_rows, reindex_metrics, reindex_plan

log = logging.getLogger("inpca.trajectories")

# Columns of the store's index that belong to a point, not to its run
_RUN_COLUMNS_SKIPPED = {"point", "block", "row", "run", "kind", *POINT_FIELDS}


# A planning job computes this many models of a run at once (float64, for their loss and error).
_MODELS_AT_ONCE = 8


def _run_rows(runs: list[str]) -> dict[str, slice]:
    """Each run's contiguous rows in a store block (the store writes a run's checkpoints in order)."""
    rows: dict[str, slice] = {}
    for i, run in enumerate(runs):
        start = rows[run].start if run in rows else i
        if run in rows and rows[run].stop != i:
            raise ResultsError(f"the checkpoints of run {run} are not contiguous in its store block")
        rows[run] = slice(start, i + 1)
    return rows


def plan_block(block_path, reference_path, out_path, *, index: str = "progress", points: int = 50,
               threads: int | None = None) -> None:
    """Plan the reindexing of every run of a store block (or, for the reference block, of the geodesic)
    and the loss and error of each model at equal progress (layout: module docstring). `threads`: at
    most this many for the interpolation kernel (None: numba's default, every core)."""
    with thread_limit(threads, default_kernel_name("cpu")):
        _plan_block(block_path, reference_path, out_path, index=index, points=points)


def _plan_block(block_path, reference_path, out_path, *, index: str, points: int) -> None:
    started = time.time()
    ts = index_grid(points)
    reference = read_reference(reference_path)
    attrs = reference["attrs"]
    n_classes = int(attrs["num_classes"])
    labels = {split: reference[f"{split}_labels"] for split in SPLITS}
    with open_block(block_path) as block:
        kinds = text(block["kind"][()])
        is_reference = all(kind == "reference" for kind in kinds)
        rows = {} if is_reference else _run_rows(text(block["run"][()]))
        runs = [GEODESIC] if is_reference else list(rows)
        r, t = len(runs), len(ts)
        plan = {}
        for split in SPLITS:
            plan_rows, fraction = np.full((r, t, 2), -1, np.int64), np.zeros((r, t))
            loss, error, final = np.empty((r, t)), np.empty((r, t)), np.empty(r)
            for i, run in enumerate(runs):
                if is_reference:
                    fraction[i], final[i] = ts, 1.0
                    loss[i], error[i] = reindex_metrics(geodesic_trajectory(labels[split], n_classes, ts), labels[split])
                    continue
                where = rows[run]
                values = index_values(block[f"progress_{split}"][where], block["train_error"][where], index)
                lower, upper, fraction[i] = reindex_plan(values, ts)
                plan_rows[i, :, 0], plan_rows[i, :, 1] = where.start + lower, where.start + upper
                final[i] = values[-1]
                probs = block[f"{split}_probs"][where]  # one run's checkpoints; its models a few t_k at a time
                for k in range(0, t, _MODELS_AT_ONCE):
                    ks = slice(k, k + _MODELS_AT_ONCE)
                    models = interpolate_rows(probs, lower[ks], upper[ks], fraction[i, ks], dtype=np.float64)
                    loss[i, ks], error[i, ks] = reindex_metrics(models, labels[split])
            plan[split] = {"rows": plan_rows, "fraction": fraction, "loss": loss, "error": error, "final": final}

    def fill(f):
        for split in SPLITS:
            create(f, f"{split}_rows", data=plan[split]["rows"])
            create(f, f"{split}_fraction", data=plan[split]["fraction"])
            create(f, f"{split}_loss", data=plan[split]["loss"])
            create(f, f"{split}_error", data=plan[split]["error"])
            create(f, f"final_index_{split}", data=plan[split]["final"])
        create(f, "run", data=np.array(runs, dtype="S"))
        kind = GEODESIC if is_reference else "run"
        create(f, "kind", data=np.array([kind] * len(runs), dtype="S"))
        create(f, "t", data=ts)
        f.attrs.update({"index": index, "points": int(points), "fingerprint": attrs["fingerprint"],
                        "num_classes": n_classes, "n_train": int(attrs["n_train"]),
                        "n_test": int(attrs["n_test"]), "store_block": Path(block_path).stem})

    write_h5(out_path, fill)
    log.info("planned %s: %d trajectories at %d values of %s in %.2f s", Path(block_path).stem, len(runs),
             len(ts), index, time.time() - started)


class ReindexedBlock:
    """The trajectories of one store block at equal progress, computed from the store and the block's
    plan (no reindexed copy on disk), on one split.

    ``at(k)`` gives every trajectory of the block at t_k, (R, N, C) float32, reading each checkpoint of
    the store once as k goes up (a plan's checkpoints never go back) and keeping only the two each run
    needs at t_k; ``trajectory(r)`` gives trajectory r at every t_k, (T, N, C) float32. The values are
    those the pipeline stored before (float64 interpolation, then float32). `device` "cuda" computes
    the interpolation on the GPU. A context manager; `close()` closes the store block.
    """

    def __init__(self, block_path, plan_path, reference_path, split: str, device: str = "cpu"):
        with open_h5(plan_path) as plan:
            self.rows = plan[f"{split}_rows"][()]
            self.fraction = plan[f"{split}_fraction"][()]
            self.run, self.kind = text(plan["run"][()]), text(plan["kind"][()])
            self.t = plan["t"][()]
        self.split, self.device = split, device
        self.is_geodesic = self.kind == [GEODESIC]
        if self.is_geodesic:
            reference = read_reference(reference_path)
            self.labels = reference[f"{split}_labels"]
            self.num_classes = int(reference["attrs"]["num_classes"])
            self._block = None
        else:
            self._block = open_block(block_path)
            self._probs = self._block[f"{split}_probs"]
            self._row_shape = tuple(self._probs.shape[1:])
        self._pool: np.ndarray | None = None  # the checkpoints the runs need at the current t_k
        self._in_pool: dict[int, int] = {}  # store row -> slot of the pool

    def __len__(self) -> int:
        return len(self.run)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self._block is not None:
            self._block.close()
            self._block = None
        self._pool, self._in_pool = None, {}

    def _slots(self, rows) -> dict[int, int]:
        """Where each of these store rows lies in the pool (row -> slot), reading the rows not there yet
        into slots that rows no longer needed give up: each row is read once while it is needed (a
        plan's rows only go up with k), and the pool holds at most two rows per run."""
        wanted = set(int(r) for r in rows)
        if self._pool is None:
            self._pool = np.empty((2 * len(self),) + self._row_shape, dtype=np.float32)
        kept = {row: slot for row, slot in self._in_pool.items() if row in wanted}
        free = sorted(set(range(len(self._pool))) - set(kept.values()))
        missing = sorted(wanted - set(kept))
        start = 0
        while start < len(missing):  # each run of consecutive rows in one slice (h5py's row lists are slow)
            stop = start + 1
            while stop < len(missing) and missing[stop] == missing[stop - 1] + 1:
                stop += 1
            for row, values in zip(missing[start:stop], self._probs[missing[start]:missing[stop - 1] + 1]):
                kept[row] = slot = free.pop(0)
                self._pool[slot] = values
            start = stop
        self._in_pool = kept
        return kept

    def at(self, k: int) -> np.ndarray:
        """Every trajectory of the block at t_k, (R, N, C) float32."""
        if self.is_geodesic:
            return geodesic_trajectory(self.labels, self.num_classes, self.t[k:k + 1]).astype(np.float32)

        lower, upper = self.rows[:, k, 0], self.rows[:, k, 1]
        slot = self._slots(np.concatenate([lower, upper]))
        return interpolate_rows(self._pool, [slot[r] for r in lower], [slot[r] for r in upper], self.fraction[:, k],
                                device=self.device)

    def trajectory(self, r: int) -> np.ndarray:
        """Trajectory r of the block at every t_k, (T, N, C) float32."""
        if self.is_geodesic:
            return geodesic_trajectory(self.labels, self.num_classes, self.t).astype(np.float32)

        start, stop = int(self.rows[r].min()), int(self.rows[r].max()) + 1
        probs = self._probs[start:stop]  # the run's checkpoints it uses, in one read
        return interpolate_rows(probs, self.rows[r, :, 0] - start, self.rows[r, :, 1] - start, self.fraction[r],
                                device=self.device)


def equal_progress_tile(block_a, plan_a, block_b, plan_b, reference_path, split: str, out_path, *,
                        metric: str = "bhattacharyya", device: str = "auto", chunk_samples: int = 4096,
                        threads: int | None = None, sum_tolerance: float = 1e-3, dtype: str = "float64") -> dict:
    """Distances between the trajectories of two store blocks at each t_k of their plans, `D` (T, R_a,
    R_b), computed from the store one t_k at a time with the kernels of the point tiles (layout: module
    docstring). A diagonal tile (a == b) is symmetric with a zero diagonal."""
    started = time.time()
    device = job_device(device)
    same = Path(plan_a) == Path(plan_b)
    with contextlib.ExitStack() as stack:
        if device == "cpu":  # the interpolation kernel within the job's threads too, not only the distances
            stack.enter_context(thread_limit(threads, default_kernel_name("cpu")))
        a = stack.enter_context(ReindexedBlock(block_a, plan_a, reference_path, split, device))
        b = a if same else stack.enter_context(ReindexedBlock(block_b, plan_b, reference_path, split, device))
        if len(a.t) != len(b.t) or not np.array_equal(a.t, b.t):
            raise ResultsError(f"{plan_a} and {plan_b}: planned at different index values ({len(a.t)} and {len(b.t)}); "
                               "rerun the trajectory stage")
        D = np.empty((len(a.t), len(a), len(b)))
        n = None
        for k in range(len(a.t)):
            pa = a.at(k)
            pb = None if same else b.at(k)
            n = pa.shape[1]
            D[k] = pairwise_streamed(lambda start, stop: pa[:, start:stop], n,
                                     read_q=None if same else (lambda start, stop: pb[:, start:stop]), metric=metric,
                                     device=device, chunk_samples=chunk_samples, threads=threads,
                                     sum_tolerance=sum_tolerance, validate=False)  # the store checked them
        t_values = a.t

    def fill(f):
        create(f, "D", data=D.astype(dtype))
        create(f, "t", data=t_values)
        f.attrs.update({"split": split, "metric": metric, "n_samples": n,
                        "block_a": Path(plan_a).stem, "block_b": Path(plan_b).stem})

    write_h5(out_path, fill)
    seconds = time.time() - started
    pairs = (len(a) * (len(a) + 1) // 2 if same else len(a) * len(b)) * len(t_values)
    rate = pairs * n / max(seconds, 1e-9)
    log.info("equal-progress tile %s x %s (%s, %d samples): %s in %.2f s, %.3g pair-samples/s", Path(plan_a).stem,
             Path(plan_b).stem, split, n, " x ".join(map(str, D.shape)), seconds, rate)
    return {"seconds": seconds, "pair_samples_per_s": rate}


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
