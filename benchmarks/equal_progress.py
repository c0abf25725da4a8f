"""Throughput of the equal-progress distances, as the `equal_progress_tile` rule computes them.

Writes two synthetic reindexed-trajectory blocks (R trajectories x T index values x N samples x C
classes, realistic predictions between ignorance and truth) in the layout of
`results/trajectories/{block}.h5`, then times `inpca.tiles.compute_tile` on a diagonal tile (a x a)
and an off-diagonal one (a x b), exactly as the rule runs, and prints pair-samples per second
(pairs computed: the upper triangle of each of the T matrices of a diagonal tile). From the
off-diagonal rate it extrapolates the paper's scale: 2,296 trajectories, T = 100, N = 25,000.

    python benchmarks/equal_progress.py [--trajectories 64] [--points 50] [--samples 10000] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inpca.files import write_h5  # noqa: E402
from inpca.tiles import compute_tile  # noqa: E402

PAPER = {"trajectories": 2296, "points": 100, "samples": 25_000}


def write_block(path: Path, trajectories: int, points: int, samples: int, classes: int, seed: int) -> None:
    """Trajectories that sharpen from near-uniform towards their own random predictions as t grows."""
    rng = np.random.default_rng(seed)
    ts = np.arange(1, points + 1) / points

    def fill(f):
        probs = f.create_dataset("train_probs", shape=(trajectories, points, samples, classes), dtype=np.float32,
                                 chunks=(1, 1, samples, classes), track_times=False)
        for r in range(trajectories):
            logits = rng.normal(size=(samples, classes)).astype(np.float32)
            for k, t in enumerate(ts):
                p = np.exp(4 * t * logits)
                probs[r, k] = p / p.sum(-1, keepdims=True)
        f.create_dataset("t", data=ts, track_times=False)

    write_h5(path, fill)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", type=int, default=64, help="trajectories per block")
    parser.add_argument("--points", type=int, default=50, help="index values T")
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    r, t, n = args.trajectories, args.points, args.samples
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a.h5", Path(tmp) / "b.h5"
        write_block(a, r, t, n, args.classes, 0)
        write_block(b, r, t, n, args.classes, 1)
        compute_tile(a, a, "train", Path(tmp) / "warm.h5", device=args.device, threads=args.threads)  # compile
        print(f"equal-progress tiles: {r} trajectories per block, T = {t}, N = {n}, C = {args.classes}, "
              f"device {args.device}")
        rates = {}
        for name, other in (("diagonal a x a", a), ("off-diagonal a x b", b)):
            started = time.perf_counter()
            compute_tile(a, other, "train", Path(tmp) / "tile.h5", device=args.device, threads=args.threads)
            seconds = time.perf_counter() - started
            pairs = t * (r * (r + 1) // 2 if other == a else r * r)
            rates[name] = pairs * n / seconds
            print(f"  {name:20s} {seconds:7.2f} s  {rates[name]:.3g} pair-samples/s")
    rate = rates["off-diagonal a x b"]
    R, T, N = PAPER["trajectories"], PAPER["points"], PAPER["samples"]
    total = T * R * (R + 1) // 2 * N
    print(f"paper scale ({R} trajectories, T = {T}, N = {N:,}): {total:.3g} pair-samples per split, "
          f"{total / rate / 60:.1f} min at the off-diagonal rate measured here")


if __name__ == "__main__":
    main()
