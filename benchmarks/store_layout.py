"""Benchmark: store blocks that copy the probabilities (layout "copy") against virtual datasets over
the run files (layout "virtual"): disk, build time, and distance-tile throughput, in one process.

    .venv/bin/python benchmarks/store_layout.py                   # 32 runs x 34 checkpoints, N = 10,000, C = 10
    .venv/bin/python benchmarks/store_layout.py --dtype float16   # run files as with checkpoints.dtype: float16
    .venv/bin/python benchmarks/store_layout.py --n-train 50000   # paper-scale N (run-file chunks > HDF5's 1 MiB cache)
    .venv/bin/python benchmarks/store_layout.py --quick           # small sizes, 1 round: a smoke test

Study: a synthetic data set (`dataset` below) through `write_reference`; `--runs` fake run files
written by `inpca.runfile.write_run` (chunked (1, N, C) as the trainer writes them), each a trajectory
of `--checkpoints` softmax predictions from near-uniform to confident (final logit gaps 5-60, so the
most confident runs have exact float32 zeros), 2-30 % of the samples confidently wrong; two blocks of
half the runs each, built in both layouts from the same run files.

Measured: disk (allocated blocks, `du`-like) of the run files and of each layout's block files; the
build time of each block (both layouts read and check every run file in full; the copy also writes);
a read pass (every sample chunk of a block's train_probs through h5py, as the tile reader reads it:
the I/O path without the kernel); and `inpca.tiles.compute_tile(..., "train", device="cpu")` for the
diagonal tile (a x a, upper triangle) and the off-diagonal tile (a x b), end to end (reads, checks,
kernel, tile write), pair-samples/s = pairs computed x N / median wall seconds.
Two readers: "open_h5", how tiles opens blocks today (HDF5's default 1 MiB chunk cache), and
"open_block", inpca.store.open_block (check_sources, chunk cache off): compute_tile runs with the
`open_h5` it looks up swapped for it, as tiles would read once it calls open_block (after that is
wired, both rows measure open_block). "x today" is a case's median time over that of copy blocks
read with open_h5, the same tile.
Cases alternate within each round (the order flips every round), after one untimed warm-up round
(numba kernel load, page cache). Warm: every file in the page cache. Cold: before each timing the
benchmark's own files (blocks and run files) are dropped from the page cache with
posix_fadvise(DONTNEED) after fsync; this leaves the rest of a shared machine's cache alone (a guest
VM's host may still cache the disk). Speed is never asserted; the 1-minute load average is printed
beside every section, and layouts are compared as ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inpca.runfile import METRICS, write_run  # noqa: E402
from inpca import tiles  # noqa: E402
from inpca.files import open_h5  # noqa: E402
from inpca.store import LAYOUTS, build_block, open_block, read_reference, write_reference  # noqa: E402

READERS = {"open_h5": open_h5, "open_block": open_block}

GIB = 1 << 30


def load() -> float:
    return os.getloadavg()[0]


def dataset(n_train: int, n_test: int, classes: int) -> dict:
    return {"name": "synthetic", "n_train": n_train, "n_test": n_test, "num_classes": classes, "input_shape": [20],
            "seed": 0, "keep_every": 1}


def trajectory(labels: np.ndarray, checkpoints: int, classes: int, rng) -> np.ndarray:
    """(checkpoints, N, C) float64 softmax predictions of one run, near-uniform at checkpoint 0."""
    n = len(labels)
    wrong = rng.random(n) < rng.uniform(0.02, 0.3)
    target = np.where(wrong, (labels + rng.integers(1, classes, n)) % classes, labels)
    gap = rng.uniform(5.0, 60.0)
    base = 1.5 * rng.standard_normal((n, classes))
    base[np.arange(n), target] += gap
    out = np.empty((checkpoints, n, classes))
    for k, scale in enumerate(np.linspace(0.0, 1.0, checkpoints) ** 1.5):
        logits = scale * base + 0.3 * rng.standard_normal((n, classes))
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        out[k] = p / p.sum(axis=1, keepdims=True)
    return out


def write_runs(folder: Path, reference: Path, runs: int, checkpoints: int, dtype: str) -> list[Path]:
    ref = read_reference(reference)
    attrs = ref["attrs"]
    classes = int(attrs["num_classes"])
    rng = np.random.default_rng(0)
    paths = []
    for r in range(runs):
        probs = {split: trajectory(ref[f"{split}_labels"], checkpoints, classes, rng).astype(dtype)
                 for split in ("train", "test")}
        run_id = f"fake-{r:03d}"
        run_attrs = {"run_id": run_id, "config": json.dumps({"seed": r}), "dataset": attrs["dataset"],
                     "fingerprint": attrs["fingerprint"], "num_classes": classes, "n_train": int(attrs["n_train"]),
                     "n_test": int(attrs["n_test"])}
        metrics = {m: np.linspace(1.0, 0.0, checkpoints) for m in METRICS}
        paths.append(folder / f"{run_id}.h5")
        write_run(paths[-1], probs, np.arange(checkpoints) * 100, np.arange(checkpoints) / 4.0, metrics, run_attrs)
    return paths


def allocated(paths) -> int:
    return sum(os.stat(p).st_blocks * 512 for p in paths)


def evict(paths) -> None:
    """Drop these files from the page cache (written pages first reach the disk)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def read_pass(block: Path, reader: str, chunk_samples: int) -> None:
    """Read train_probs of `block` in sample chunks, as the tile reader does."""
    with READERS[reader](block) as f:
        dset = f["train_probs"]
        for start in range(0, dset.shape[1], chunk_samples):
            dset[:, start:start + chunk_samples].astype(np.float32, copy=False)


def rounds(work, cases: list, repeats: int, before=None) -> dict:
    """{case: [(wall s, CPU s) per round]}, cases alternating, their order flipped every round.

    CPU seconds (all threads of this process, user + system) count the work done, not the time
    spent waiting for a CPU that others hold: on a loaded machine they vary less than wall seconds.
    """
    results = {case: [] for case in cases}
    for r in range(repeats):
        for case in cases if r % 2 == 0 else cases[::-1]:
            if before is not None:
                before()
            wall, cpu = time.perf_counter(), time.process_time()
            work(*case)
            results[case].append((time.perf_counter() - wall, time.process_time() - cpu))
    return results


def print_table(title: str, results: dict, rate=None) -> None:
    """Wall seconds (median, min) and CPU seconds (median) per case; "x today": against copy blocks
    read with open_h5 (same tile), by median wall and by median CPU seconds."""
    print(f"\n{title} (load {load():.2f})")
    print(f"  {'case':<32}{'wall s':>8}{'min':>8}{'CPU s':>8}{'rounds':>7}{'x today':>9}{'(CPU)':>7}"
          + ("  pair-samples/s" if rate else ""))
    for case, values in results.items():
        wall, cpu = (statistics.median(v) for v in zip(*values))
        today_wall, today_cpu = (statistics.median(v) for v in zip(*results[(*case[:-2], "copy", "open_h5")]))
        line = (f"  {' '.join(case):<32}{wall:>8.3f}{min(w for w, _ in values):>8.3f}{cpu:>8.3f}{len(values):>7}"
                f"{wall / today_wall:>9.3f}{cpu / today_cpu:>7.3f}")
        if rate:
            line += f"  {rate(case) / wall:.3g}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=32)
    parser.add_argument("--checkpoints", type=int, default=34)
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--n-test", type=int, default=2_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="of the run files")
    parser.add_argument("--repeats", type=int, default=6, help="timed rounds, warm")
    parser.add_argument("--cold-repeats", type=int, default=2, help="timed rounds, cold (0: none)")
    parser.add_argument("--chunk-samples", type=int, default=4096, help="compute_tile's default")
    parser.add_argument("--workdir", type=Path, help="default: a new folder under $TMPDIR, deleted at the end")
    parser.add_argument("--quick", action="store_true", help="4 runs x 5 checkpoints, N = 2,000, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.checkpoints, args.n_train, args.n_test = 4, 5, 2_000, 500
        args.repeats, args.cold_repeats = 1, 1
    root = args.workdir or Path(tempfile.mkdtemp(prefix="store_layout-"))
    runs_dir, store = root / "results" / "runs", root / "results" / "store"
    runs_dir.mkdir(parents=True, exist_ok=True)
    print(f"{args.runs} runs x {args.checkpoints} checkpoints, N = {args.n_train:,} (train) / {args.n_test:,} (test), "
          f"C = {args.classes}, run files {args.dtype}, in {root}; {os.cpu_count()} CPUs, load {load():.2f}")
    try:
        reference = store / "ref.h5"
        write_reference(reference, dataset(args.n_train, args.n_test, args.classes), geodesic_points=1)
        started = time.perf_counter()
        run_paths = write_runs(runs_dir, reference, args.runs, args.checkpoints, args.dtype)
        print(f"wrote the run files in {time.perf_counter() - started:.1f} s")
        half = args.runs // 2
        members = {"a": run_paths[:half], "b": run_paths[half:]}
        blocks = {(name, layout): store / f"{name}-{layout}.h5" for name in members for layout in LAYOUTS}

        def build(name, layout):
            build_block(blocks[name, layout], members[name], reference, layout=layout)

        builds = rounds(build, list(blocks), 1)
        print(f"\nbuild_block, reads and checks every run file, warm cache (load {load():.2f})")
        for (name, layout), [(wall, cpu)] in builds.items():
            print(f"  block {name} {layout:<8} {wall:.2f} s wall, {cpu:.2f} s CPU")

        run_bytes = allocated(run_paths)
        print(f"\ndisk (allocated): run files {run_bytes / GIB:.3f} GiB")
        for layout in LAYOUTS:
            size = allocated(blocks[name, layout] for name in members)
            print(f"  {layout:<8} blocks {size / GIB:.4f} GiB = {size / run_bytes:.4f} x the run files; "
                  f"study total {(size + run_bytes) / GIB:.3f} GiB")

        points = {name: len(paths) * args.checkpoints for name, paths in members.items()}
        pairs_of = {"diagonal": ("a", "a"), "off-diagonal": ("a", "b")}
        pairs = {"diagonal": points["a"] * (points["a"] + 1) // 2, "off-diagonal": points["a"] * points["b"]}

        def tile(which, layout, reader):
            a, b = pairs_of[which]
            tiles.open_h5 = READERS[reader]  # what compute_tile opens its blocks with
            try:
                tiles.compute_tile(blocks[a, layout], blocks[b, layout], "train", root / "tile.h5", device="cpu",
                                   chunk_samples=args.chunk_samples)
            finally:
                tiles.open_h5 = open_h5

        def read(name, layout, reader):
            read_pass(blocks[name, layout], reader, args.chunk_samples)

        def rate(case):
            return pairs[case[0]] * args.n_train

        cases = [(which, layout, reader) for which in pairs_of for reader in READERS for layout in LAYOUTS]
        reads = [("a", layout, reader) for reader in READERS for layout in LAYOUTS]
        block_bytes = points["a"] * args.n_train * args.classes * 4
        rounds(tile, cases, 1)  # warm-up: numba kernel, page cache
        print_table(f"read pass, warm: block a train_probs, {block_bytes / 1e6:.0f} MB as float32",
                    rounds(read, reads, args.repeats))
        print_table("compute_tile, warm", rounds(tile, cases, args.repeats), rate)
        if args.cold_repeats:
            files = [*run_paths, *blocks.values()]
            print_table("read pass, cold", rounds(read, reads, args.cold_repeats, lambda: evict(files)))
            print_table("compute_tile, cold", rounds(tile, cases, args.cold_repeats, lambda: evict(files)), rate)
    finally:
        if args.workdir is None:
            shutil.rmtree(root)


if __name__ == "__main__":
    main()
