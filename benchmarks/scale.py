"""Scale benchmark: the distance and embedding steps exactly as the rules run them, exact and landmarks.

    .venv/bin/python benchmarks/scale.py                       # M = 20,000 points, N = 1,000 samples
    .venv/bin/python benchmarks/scale.py --points 50000 --samples 100   # the README's scale table
    .venv/bin/python benchmarks/scale.py --points 20000 --samples 100 --stream --no-landmarks

Writes a synthetic study straight in store format (no training): a reference block (P0, the geodesic,
P*) of a synthetic data set and B blocks of trajectories of 100 checkpoints that move from ignorance
towards the labels along curved, per-"architecture" paths, and an index.tsv. Then, each step in a fresh
Python process (so its peak memory is its own), as the rules run them:

  exact:      every distance tile (inpca.tiles.compute_tile), then the embedding read from the tiles
              in place (inpca.embedding_file.embed), once per eigensolver of --solvers (default:
              ARPACK's Lanczos, then the block solver), each in its own process
  landmarks:  every landmark tile (compute_landmark_tile, every --every-th checkpoint), then the
              landmark embedding (embed of the landmark tiles)

and prints wall time, the peak resident memory of the step's process (ru_maxrss) and the disk its
outputs take. For each exact embedding also: how often it read the tiles (the bytes TiledMatrix read,
over the bytes the tiles hold), the bytes its process read by system calls (/proc/self/io rchar: page
cache included, HDF5's own reading included), its passes (block solver) or W-products (Lanczos), and
its agreement with the first solver's (eigenvalues, top-3 coordinates, S(1..3)). Up to 30,000 points
the embedding reads the tiles into memory once; --stream streams them at any size, as above 30,000.
Last, the landmark embedding against the first exact one (S(1..3), top-3 coordinates).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHECKPOINTS = 100
ARCHITECTURES = 4


def write_study(root: Path, points: int, samples: int, blocks: int, seed: int = 0) -> dict:
    """Reference block, B run blocks and index.tsv in store format; returns {block: path}."""
    import h5py

    from inpca.store import write_reference

    spec = {"name": "synthetic", "n_train": samples, "n_test": 10, "num_classes": 10, "input_shape": [20],
            "seed": seed, "keep_every": 1}
    write_reference(root / "ref.h5", spec, geodesic_points=19)
    with h5py.File(root / "ref.h5") as f:
        labels = f["train_labels"][()]
        n_reference = f["run"].shape[0]
    rng = np.random.default_rng(seed)
    onehot = np.eye(10)[labels]
    detours = [rng.normal(size=(samples, 10)) for _ in range(ARCHITECTURES)]
    runs = -(-points // CHECKPOINTS)
    tau = np.linspace(0, 1, CHECKPOINTS)[:, None, None]
    paths = {f"b{b:03d}": root / f"b{b:03d}.h5" for b in range(blocks)}
    per_block = [list(range(r, runs, blocks)) for r in range(blocks)]
    rows = [("ref", i, "P0" if i == 0 else ("P*" if i == n_reference - 1 else "geodesic"), "reference")
            for i in range(n_reference)]
    for (block, path), members in zip(paths.items(), per_block):
        with h5py.File(path, "w") as f:
            probs = f.create_dataset("train_probs", shape=(len(members) * CHECKPOINTS, samples, 10), dtype=np.float32,
                                     chunks=(1, min(samples, 4096), 10))
            for i, run in enumerate(members):
                end = 6 * onehot + rng.normal(scale=1.0, size=(samples, 10))
                speed = rng.uniform(0.5, 2.0)
                logits = (1 - np.exp(-4 * speed * tau)) * end + np.sin(np.pi * tau) ** 2 * detours[run % ARCHITECTURES]
                p = np.exp(logits - logits.max(-1, keepdims=True))
                probs[i * CHECKPOINTS:(i + 1) * CHECKPOINTS] = p / p.sum(-1, keepdims=True)
            names = [f"run{run}" for run in members for _ in range(CHECKPOINTS)]
            f["run"] = np.array(names, dtype="S")
            f["kind"] = np.array([b"run"] * len(names))
            f["checkpoint"] = np.tile(np.arange(CHECKPOINTS), len(members))
        rows += [(block, i, name, "run") for i, name in enumerate(names)]
    with open(root / "index.tsv", "w") as f:
        f.write("point\tblock\trow\trun\tkind\tprogress_train\tdist_truth_train\n")
        for point, (block, row, run, kind) in enumerate(rows):
            f.write(f"{point}\t{block}\t{row}\t{run}\t{kind}\t0\t0\n")
    return {"ref": root / "ref.h5", **paths}


STEP = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
args = json.loads({args!r})
started = time.perf_counter()
blocks = {{k: Path(v) for k, v in args["blocks"].items()}}
names = list(blocks)
tiles = {{(a, b): Path(args["out"]) / f"{{a}}-{{b}}.h5" for i, a in enumerate(names) for b in names[i:]}}
if args["step"] in ("tiles", "landmark_tiles"):
    from inpca.tiles import compute_landmark_tile, compute_tile
    Path(args["out"]).mkdir(parents=True, exist_ok=True)
    for (a, b), path in tiles.items():
        if args["step"] == "tiles":
            compute_tile(blocks[a], blocks[b], "train", path, device="cpu", dtype=args["dtype"])
        else:
            compute_landmark_tile(blocks[a], blocks[b], "train", path, every=args["every"], device="cpu",
                                  dtype=args["dtype"])
else:
    import inpca.embedding_file as embedding_file
    if args["stream"]:
        embedding_file.IN_MEMORY_POINTS = 0
    done = embedding_file.embed(tiles, args["index"], args["embedding"], split="train", n_components=10,
                                solver=args["solver"])
    result = {{key: done.get(key) for key in ("solver", "n_passes", "n_matvec", "bytes_read")}}
with open("/proc/self/io") as io:
    counters = dict(line.split(": ") for line in io.read().splitlines())
print(json.dumps({{"seconds": time.perf_counter() - started, "read_syscall_bytes": int(counters["rchar"]),
                   "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                   **(result if args["step"] == "embed" else {{}})}}))
"""


def run_step(**args) -> dict:
    proc = subprocess.run([sys.executable, "-c", STEP.format(repo=str(REPO), args=json.dumps(args))],
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"step {args['step']} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def disk(paths) -> int:
    return sum(p.stat().st_size for p in paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=1_000)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--every", type=int, default=4)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="tile storage")
    parser.add_argument("--solvers", default="lanczos,block",
                        help="eigensolvers of the exact embedding, compared with the first (default lanczos,block)")
    parser.add_argument("--stream", action="store_true", help="stream the tiles at any M (else above 30,000 points)")
    parser.add_argument("--no-landmarks", action="store_true", help="the exact path only")
    parser.add_argument("--keep", default=None, help="write the study here and keep it (else a temporary folder); "
                        "benchmarks/atlas.py --scale-study places checkpoints in its landmark embedding")
    args = parser.parse_args()
    import h5py

    with (contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory()) as tmp:
        root = Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        blocks = write_study(root, args.points, args.samples, args.blocks)
        m = sum(1 for _ in open(root / "index.tsv")) - 1
        print(f"M = {m} points ({args.blocks} blocks + ref), N = {args.samples}, C = 10, {args.dtype} tiles; store "
              f"{disk(blocks.values()) / 2**20:.0f} MiB written in {time.perf_counter() - started:.0f} s; "
              f"load {os.getloadavg()[0]:.1f}")
        common = {"blocks": {k: str(v) for k, v in blocks.items()}, "index": str(root / "index.tsv"),
                  "every": args.every, "dtype": args.dtype, "stream": args.stream}
        solvers = args.solvers.split(",")
        out = root / "tiles"
        tiles = run_step(step="tiles", out=str(out), method="exact", embedding="", solver="", **common)
        tile_bytes = disk(out.glob("*.h5"))
        print(f"exact     tiles: {tiles['seconds']:7.1f} s, peak RSS {tiles['peak_rss'] / 2**20:6.0f} MiB, "
              f"disk {tile_bytes / 2**20:7.0f} MiB   [load {os.getloadavg()[0]:.1f}]")
        held = 0  # bytes of the tiles' matrices (what one read of all tiles reads)
        for path in out.glob("*.h5"):
            with h5py.File(path) as f:
                held += f["D"].size * f["D"].dtype.itemsize
        embeddings, seconds = {}, {}
        print(f"exact embedding ({'streamed from the tiles' if args.stream or m > 30_000 else 'tiles read into memory'}):")
        print(f"  {'solver':8s} {'passes':>6s} {'products':>8s} {'tile reads':>10s} {'read() GB':>9s} {'wall s':>7s} "
              f"{'peak RSS':>9s} | vs {solvers[0]}: {'time':>5s} {'max rel d(lambda)':>17s} {'top-3 coords':>12s}  S(1..3)")
        for solver in solvers:
            path = root / f"exact-{solver}.h5"
            step = run_step(step="embed", out=str(out), method="exact", embedding=str(path), solver=solver, **common)
            with h5py.File(path) as f:
                embeddings[solver] = (f["eigenvalues"][()], f["coords"][:, :3], f["explained_stress"][:3])
            lam, coords, stress = embeddings[solver]
            lam0, coords0, _ = embeddings[solvers[0]]
            seconds.setdefault(solvers[0], step["seconds"])
            reads = step["bytes_read"] / held if step.get("bytes_read") is not None else float("nan")
            print(f"  {step['solver']:8s} {step['n_passes'] or '-':>6} {step['n_matvec']:8d} {reads:10.1f} "
                  f"{step['read_syscall_bytes'] / 1e9:9.1f} {step['seconds']:7.1f} {step['peak_rss'] / 2**30:5.2f} GiB | "
                  f"{' ' * (len(solvers[0]) + 4)}{step['seconds'] / seconds[solvers[0]]:5.2f} {np.max(np.abs(lam - lam0) / np.abs(lam0)):17.1e} {relative_rms(coords, coords0):12.1e}  "
                  f"{np.array2string(stress, precision=4)}   [load {os.getloadavg()[0]:.1f}]")
        if args.no_landmarks:
            return
        out = root / "landmark_tiles"
        tiles = run_step(step="landmark_tiles", out=str(out), method="landmarks", embedding="", solver="auto",
                         **common)
        embedding = run_step(step="embed", out=str(out), method="landmarks", embedding=str(root / "landmarks.h5"),
                             solver="auto", **common)
        print(f"landmarks tiles: {tiles['seconds']:7.1f} s, peak RSS {tiles['peak_rss'] / 2**20:6.0f} MiB, "
              f"disk {disk(out.glob('*.h5')) / 2**20:7.0f} MiB | embed: {embedding['seconds']:6.1f} s, peak RSS "
              f"{embedding['peak_rss'] / 2**20:6.0f} MiB   [load {os.getloadavg()[0]:.1f}]")
        with h5py.File(root / "landmarks.h5") as l:
            _, exact, exact_stress = embeddings[solvers[0]]
            print(f"exact S(1..3) {np.round(exact_stress, 4)}; landmarks ({l.attrs['n_landmarks']} of {m}) S(1..3) "
                  f"{np.round(l['explained_stress'][:3], 4)}; top-3 coordinates "
                  f"{relative_rms(l['coords'][:, :3], exact):.2%} off (relative RMS)")


def relative_rms(coords, reference):
    """RMS of coords - reference over the RMS of reference, each axis's sign aligned first."""
    signs = np.sign(np.sum(coords * reference, axis=0))
    signs[signs == 0] = 1.0
    return float(np.sqrt(np.mean((coords * signs - reference) ** 2)) / np.sqrt(np.mean(reference**2)))


if __name__ == "__main__":
    main()
