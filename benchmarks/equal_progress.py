"""The trajectory stage before and after it stopped storing reindexed probabilities, in one run.

Writes two synthetic store blocks (R runs x K checkpoints x N samples x C classes, predictions that
sharpen from near-uniform towards each run's own answers, with the progress the store records) and
runs the trajectory stage on them twice, each step in its own process (wall time, peak RSS, disk):

* before (the pipeline until this version, reproduced here): every run reindexed at the T index
  values and written as (R, T, N, C) float32 (`reindex`), then the equal-progress tiles read from
  those files;
* after (the pipeline now): a plan per block (two checkpoints and a fraction per run and t_k, the
  models' loss and error; :func:`inpca.trajectory_files.plan_block`), then the tiles computed from
  the store blocks one t_k at a time (:func:`inpca.trajectory_files.equal_progress_tile`).

Both make the tiles a x a, a x b and b x b; their distances are compared (they must be equal). From
the rates it extrapolates the paper's scale (2,296 trajectories, T = 100, N = 25,000).

    python benchmarks/equal_progress.py [--runs 100] [--checkpoints 30] [--points 50] [--samples 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PAPER = {"trajectories": 2296, "points": 100, "samples": 25_000, "classes": 10}
TEST_SAMPLES = 200  # the test split exists (the stage plans both) but is kept small: the train split is timed


def write_store(folder: Path, runs: int, checkpoints: int, samples: int, classes: int) -> None:
    """ref.h5 and blocks a.h5, b.h5 in the store's layout (what plan_block and open_block read)."""
    from inpca.files import create, write_h5
    from inpca.geodesic import progress_many

    rng = np.random.default_rng(0)
    labels = {"train": rng.integers(0, classes, samples), "test": rng.integers(0, classes, TEST_SAMPLES)}
    attrs = {"fingerprint": "synthetic", "dataset": "synthetic", "num_classes": classes, "n_train": samples,
             "n_test": TEST_SAMPLES}

    def reference(f):
        for split, y in labels.items():
            create(f, f"{split}_labels", data=y)
        f.attrs.update(attrs)

    write_h5(folder / "ref.h5", reference)
    for b, name in enumerate("ab"):
        def block(f, seed=b):
            gen = np.random.default_rng(seed + 1)
            columns = {"run": [], "kind": [], "train_error": []}
            for split, y in labels.items():
                n = len(y)
                dset = create(f, f"{split}_probs", shape=(runs * checkpoints, n, classes), dtype=np.float32,
                              chunks=(1, min(n, 4096), classes))
                progress = []
                for r in range(runs):
                    logits = gen.normal(size=(n, classes)).astype(np.float32)
                    logits[np.arange(n), y] += gen.uniform(1.0, 3.0)  # runs that learn, at their own pace
                    for k, s in enumerate(np.linspace(0.0, 1.0, checkpoints) ** gen.uniform(0.5, 2.0)):
                        p = np.exp(4 * s * logits)
                        p /= p.sum(-1, keepdims=True)
                        dset[r * checkpoints + k] = p
                        progress.append(p)
                        if split == "train":
                            columns["run"].append(f"run{seed}-{r:03d}")
                            columns["kind"].append("run")
                            columns["train_error"].append(float(np.mean(p.argmax(-1) != y)))
                    if len(progress) >= 256 or r == runs - 1:  # progress in batches, as the store computes it
                        columns.setdefault(f"progress_{split}", []).extend(
                            progress_many(np.stack(progress), y, classes))
                        progress = []
            for key, values in columns.items():
                create(f, key, data=np.array(values, dtype="S" if key in ("run", "kind") else np.float64))
            f.attrs.update(attrs)

        write_h5(folder / f"{name}.h5", block)


# --- the two versions of the stage, each step run in its own process --------------------------------------------

def before_reindex(folder: Path, block: str, points: int) -> None:
    """The previous `reindex`: every run's models at the T index values, stored (R, T, N, C) float32."""
    from inpca.files import create, open_h5, text, write_h5
    from inpca.trajectories import index_grid, index_values, reindex
    from inpca.trajectory_files import _run_rows

    ts = index_grid(points)
    with open_h5(folder / f"{block}.h5") as f:
        rows = _run_rows(text(f["run"][()]))

        def fill(out):
            probs = create(out, "train_probs", shape=(len(rows), points, *f["train_probs"].shape[1:]),
                           dtype=np.float32, chunks=(1, 1, *f["train_probs"].shape[1:]))
            for i, where in enumerate(rows.values()):
                values = index_values(f["progress_train"][where], f["train_error"][where], "progress")
                probs[i] = reindex(f["train_probs"][where], values, ts).astype(np.float32)
            create(out, "t", data=ts)

        write_h5(folder / f"reindexed-{block}.h5", fill)


def before_tile(folder: Path, a: str, b: str, threads) -> None:
    """The previous `equal_progress_tile`: the T matrices from the stored (R, T, N, C) blocks."""
    from inpca.distances import pairwise_streamed
    from inpca.files import open_h5

    with open_h5(folder / f"reindexed-{a}.h5") as fa, open_h5(folder / f"reindexed-{b}.h5") as fb:
        pa, pb = fa["train_probs"], fb["train_probs"]
        n = pa.shape[2]

        def reader(dset, k):
            return lambda start, stop: dset[:, k, start:stop]

        D = np.stack([pairwise_streamed(reader(pa, k), n, read_q=None if a == b else reader(pb, k), device="cpu",
                                        chunk_samples=4096, threads=threads) for k in range(pa.shape[1])])
    np.save(folder / f"before-{a}-{b}.npy", D)


def after_plan(folder: Path, block: str, points: int) -> None:
    from inpca.trajectory_files import plan_block

    plan_block(folder / f"{block}.h5", folder / "ref.h5", folder / f"plan-{block}.h5", index="progress", points=points)


def after_tile(folder: Path, a: str, b: str, threads) -> None:
    import h5py

    from inpca.trajectory_files import equal_progress_tile

    out = folder / f"after-{a}-{b}.h5"
    equal_progress_tile(folder / f"{a}.h5", folder / f"plan-{a}.h5", folder / f"{b}.h5", folder / f"plan-{b}.h5",
                        folder / "ref.h5", "train", out, device="cpu", threads=threads)
    with h5py.File(out, "r", locking=False) as f:
        np.save(folder / f"after-{a}-{b}.npy", f["D"][()])


STEPS = {"before_reindex": before_reindex, "before_tile": before_tile, "after_plan": after_plan,
         "after_tile": after_tile}


def run_step(folder: Path, step: str, *args) -> tuple[float, float]:
    """(seconds, peak RSS in GiB) of one step in a fresh process."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--step", step, str(folder), *map(json.dumps, args)])
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"step {step} failed ({status})")
    return time.perf_counter() - started, usage.ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="runs (trajectories) per block; two blocks")
    parser.add_argument("--checkpoints", type=int, default=30)
    parser.add_argument("--points", type=int, default=50, help="index values T")
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--step", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        STEPS[args.step[0]](Path(args.step[1]), *map(json.loads, args.step[2:]))
        return
    r, t, n, c = args.runs, args.points, args.samples, args.classes
    pairs = [("a", "a"), ("a", "b"), ("b", "b")]
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as tmp:
        folder = Path(tmp)
        print(f"2 store blocks of {r} runs x {args.checkpoints} checkpoints, N = {n}, C = {c}, T = {t}; "
              f"{os.cpu_count()} CPUs")
        write_store(folder, r, args.checkpoints, n, c)
        store_mb = sum((folder / f"{b}.h5").stat().st_size for b in "ab") / 2**20
        rows = []
        for version, reindex_step, tile_step, prefix in (("before", "before_reindex", "before_tile", "reindexed-"),
                                                          ("after", "after_plan", "after_tile", "plan-")):
            stage = [run_step(folder, reindex_step, b, t) for b in "ab"]
            tiles = [run_step(folder, tile_step, a, b, args.threads) for a, b in pairs]
            disk = sum((folder / f"{prefix}{b}.h5").stat().st_size for b in "ab") / 2**20
            rows.append((version, sum(s for s, _ in stage), max(m for _, m in stage), disk,
                         sum(s for s, _ in tiles), max(m for _, m in tiles)))
        worst = max(float(np.max(np.abs(np.load(folder / f"before-{a}-{b}.npy") - np.load(folder / f"after-{a}-{b}.npy"))))
                    for a, b in pairs)
    print(f"store blocks: {store_mb:,.0f} MiB (both versions read them)")
    print("| version | reindex (2 jobs) | its peak RSS | trajectory-stage disk | 3 equal-progress tiles | tile peak RSS |")
    print("| --- | --- | --- | --- | --- | --- |")
    for version, s1, m1, disk, s2, m2 in rows:
        print(f"| {version} | {s1:.1f} s | {m1:.2f} GiB | {disk:,.1f} MiB | {s2:.1f} s | {m2:.2f} GiB |")
    (_, s1b, _, disk_b, s2b, _), (_, s1a, _, disk_a, s2a, _) = rows
    print(f"after / before: stage disk {disk_a / disk_b:.2e}, reindex time {s1a / s1b:.2f}, tile time {s2a / s2b:.2f}; "
          f"largest difference of the distances: {worst:.3g}")
    pair_samples = t * (r * (r + 1) + r * r) * n  # two diagonal tiles (upper triangles) and one full
    rate = pair_samples / s2a
    paper = PAPER["points"] * PAPER["trajectories"] ** 2 / 2 * PAPER["samples"]
    print(f"after: {rate:.3g} pair-samples/s for the tiles (reads and interpolation included); at the paper's scale "
          f"({paper:.2g} pair-samples per split) {paper / rate / 3600:.1f} h per split on these CPUs; the reindexed "
          f"probabilities it no longer stores would take "
          f"{PAPER['trajectories'] * PAPER['points'] * PAPER['samples'] * PAPER['classes'] * 4 / 1e9:.0f} GB per split")


if __name__ == "__main__":
    main()
