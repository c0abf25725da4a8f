"""Benchmark: InPCA(n_components=10).fit(D) on a realistic non-Euclidean distance matrix.

    .venv/bin/python benchmarks/embedding.py                 # M = 20,000 (Lanczos, block) + dense at 2,000
    .venv/bin/python benchmarks/embedding.py --sizes 5000 20000 --dense-size 2000 --tiles 8

D is the intensive Bhattacharyya distance matrix of synthetic training trajectories: M / 100
trajectories of 100 checkpoints each over a small prediction tensor (N = 4 samples, C = 10 classes),
in random order. Each trajectory starts at ignorance (uniform predictions) and its logits grow, along
a curved path, towards its own mostly-correct, partly-confused end point; runs come in six
"architectures" that share confusions and detours. That gives a two-signed spectrum like that of real
runs (time-like axes among the top 10) while the matrix costs seconds, not minutes, to build. Four
samples are enough for a fair test of the solver: with this generator the Lanczos mat-vec count for
k = 10 (34-40 at M = 2,000 and 5,000) does not change between N = 2 and N = 128.

The machine is shared: a fit is bound by memory bandwidth, so concurrent jobs slow it down. The
1-minute load average is printed next to each timing; compare timings only within one run.

Reported, for each solver of --solvers (default: ARPACK's Lanczos, then the block solver) on D in
memory: fit time, passes over D (Lanczos: one per mat-vec) and W-products, agreement with the first
solver (eigenvalues, top-3 coordinates, S(1..3)), and the peak resident memory (getrusage ru_maxrss)
relative to D's size, during fit() alone where the kernel allows resetting the high-water mark
(/proc/self/clear_refs); the dense solver's time at --dense-size. With --tiles B, D is also written as
the pipeline's float32 tiles of B blocks and each solver fits it streamed from them
(inpca.tiles.TiledMatrix): passes, how often it read the tiles (bytes read over the tiles' size),
the bytes read by system calls (/proc/self/io rchar), time and peak memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from inpca.embedding import InPCA

N_SAMPLES = 4
N_CLASSES = 10
N_ARCHITECTURES = 6
CHECKPOINTS_PER_TRAJECTORY = 100


def synthetic_sqrt_probabilities(n_points, seed=0):
    """sqrt of the (n_points, N, C) predictions of ceil(n_points / 100) synthetic trajectories.

    Each trajectory belongs to one of N_ARCHITECTURES groups. A group fixes the per-sample confusions
    (including a few confidently wrong samples) and an early-training detour; a run adds its own noise
    and speed. Logits grow from 0 (ignorance) to the run's end point along
    scale(tau) * end + sin^2(pi tau) * detour, tau = checkpoint / 99.
    """
    rng = np.random.default_rng(seed)
    n_traj = -(-n_points // CHECKPOINTS_PER_TRAJECTORY)
    labels = rng.integers(0, N_CLASSES, N_SAMPLES)
    onehot = np.eye(N_CLASSES)[labels]
    groups = []
    for _ in range(N_ARCHITECTURES):
        confusion = rng.standard_normal((N_SAMPLES, N_CLASSES))
        wrong = rng.random(N_SAMPLES) < 0.15
        confusion[wrong, rng.integers(0, N_CLASSES, wrong.sum())] += rng.uniform(4.0, 8.0)
        groups.append((confusion, 2.0 * rng.standard_normal((N_SAMPLES, N_CLASSES))))
    tau = np.linspace(0.0, 1.0, CHECKPOINTS_PER_TRAJECTORY)
    bump = np.sin(np.pi * tau) ** 2
    sqrt_probs = np.empty((n_traj, CHECKPOINTS_PER_TRAJECTORY, N_SAMPLES, N_CLASSES))
    for k in range(n_traj):
        confusion, detour = groups[k % N_ARCHITECTURES]
        end = rng.uniform(5.0, 9.0) * onehot + confusion + 0.3 * rng.standard_normal((N_SAMPLES, N_CLASSES))
        run_detour = detour + 0.3 * rng.standard_normal((N_SAMPLES, N_CLASSES))
        speed = rng.uniform(3.0, 6.0)
        scale = (1.0 - np.exp(-speed * tau)) / (1.0 - np.exp(-speed))
        logits = scale[:, None, None] * end + bump[:, None, None] * run_detour
        logits -= logits.max(axis=2, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=2, keepdims=True)
        sqrt_probs[k] = np.sqrt(probs)
    sqrt_probs = sqrt_probs.reshape(-1, N_SAMPLES, N_CLASSES)[:n_points]
    return sqrt_probs[rng.permutation(n_points)]  # models in random order, as in the real matrix


def bhattacharyya_matrix(sqrt_probs, rows_per_block=512):
    """D_ij = -(1/N) log prod_n <sqrt p_in, sqrt p_jn>, float64, built by row blocks.

    The product of two samples' coefficients is one inner product of tensor products,
    <a, b> <c, d> = <a (x) c, b (x) d>, so samples are paired into C^2 = 100-dimensional features and
    the N = 4 coefficients take two GEMMs, one multiply and one log per entry.
    """
    M, N, C = sqrt_probs.shape
    assert N % 2 == 0
    pairs = np.einsum("mnc,mnd->nmcd", sqrt_probs[:, 0::2], sqrt_probs[:, 1::2]).reshape(N // 2, M, C * C)
    D = np.empty((M, M), dtype=np.float64)
    factor = np.empty((rows_per_block, M))
    for i0 in range(0, M, rows_per_block):
        i1 = min(M, i0 + rows_per_block)
        product = D[i0:i1]
        np.dot(pairs[0, i0:i1], pairs[0].T, out=product)
        for pair in pairs[1:]:
            np.dot(pair[i0:i1], pair.T, out=factor[: i1 - i0])
            product *= factor[: i1 - i0]
        np.clip(product, 1e-300, 1.0, out=product)
        np.log(product, out=product)
        product *= -1.0 / N
    np.fill_diagonal(D, 0.0)
    return D


def load():
    return os.getloadavg()[0]


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss():
    """Reset the kernel's RSS high-water mark (Linux >= 4.0); True if it worked."""
    try:
        with open(f"/proc/{os.getpid()}/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def current_rss_bytes():
    with open(f"/proc/{os.getpid()}/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def time_fit(D, solver, repeats=1):
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        model = InPCA(n_components=10, solver=solver).fit(D)
        best = min(best, time.perf_counter() - start)
    return best, model


def read_syscall_bytes():
    with open(f"/proc/{os.getpid()}/io") as handle:
        return int(dict(line.split(": ") for line in handle.read().splitlines())["rchar"])


def write_tiles(D, blocks, folder):
    """D as the tile step writes it: float32 tiles of the upper block-triangle of `blocks` blocks of
    consecutive points, and an index.tsv; returns the {(a, b): path} a TiledMatrix takes."""
    from inpca.files import write_h5

    bounds = np.linspace(0, len(D), blocks + 1).astype(int)
    names = [f"b{i:03d}" for i in range(blocks)]
    tiles = {}
    for i, a in enumerate(names):
        for j in range(i, blocks):
            tile = D[bounds[i]:bounds[i + 1], bounds[j]:bounds[j + 1]].astype(np.float32)

            def fill(f, tile=tile):
                f.create_dataset("D", data=tile, track_times=False)
                f.attrs.update({"metric": "bhattacharyya", "n_samples": N_SAMPLES})

            tiles[(a, names[j])] = folder / f"{a}-{names[j]}.h5"
            write_h5(tiles[(a, names[j])], fill)
    with open(folder / "index.tsv", "w") as handle:
        handle.write("point\tblock\trow\trun\tkind\n")
        for i, name in enumerate(names):
            for row in range(bounds[i + 1] - bounds[i]):
                handle.write(f"{bounds[i] + row}\t{name}\t{row}\trun{i}\trun\n")
    return tiles, folder / "index.tsv"


def relative_rms(coords, reference):
    return float(np.sqrt(np.mean((coords - reference) ** 2)) / np.sqrt(np.mean(reference**2)))


def compare(name, model, reference, seconds, reference_seconds, peak, extra=""):
    """One line per fit: passes, products, time, memory, agreement with the reference fit."""
    passes = model.n_passes_ if model.n_passes_ is not None else model.n_matvec_
    lam, lam0 = model.eigenvalues_, reference.eigenvalues_
    print(f"  {name:16s} {model.solver_:8s} {passes:6d} {model.n_matvec_:8d} {extra}{seconds:8.2f} "
          f"{seconds / reference_seconds:5.2f} {peak:>9s} | {np.max(np.abs(lam - lam0) / np.abs(lam0)):8.1e} "
          f"{relative_rms(model.coords_[:, :3], reference.coords_[:, :3]):8.1e} "
          f"{np.array2string(model.explained_stress_[:3], precision=4)}   [load {load():.1f}]")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000],
                        help="numbers of points M for the Lanczos fit (default 20000)")
    parser.add_argument("--dense-size", type=int, default=2000,
                        help="M for the dense-solver comparison (0 to skip)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--solvers", default="lanczos,block",
                        help="solvers compared on each size, against the first (default lanczos,block)")
    parser.add_argument("--tiles", type=int, default=0,
                        help="also fit D streamed from float32 tiles of this many blocks (0: not)")
    args = parser.parse_args()

    print(f"{os.cpu_count()} CPUs; D = Bhattacharyya distances of synthetic trajectories "
          f"(N={N_SAMPLES}, C={N_CLASSES}, {CHECKPOINTS_PER_TRAJECTORY} checkpoints each); "
          f"best of {args.repeats} fit(s) unless stated")
    if args.dense_size:
        M = args.dense_size
        D = bhattacharyya_matrix(synthetic_sqrt_probabilities(M))
        t_dense, dense = time_fit(D, "dense", max(args.repeats, 2))
        t_lanczos, lanczos = time_fit(D, "lanczos", max(args.repeats, 2))
        agreement = np.max(np.abs(dense.eigenvalues_ - lanczos.eigenvalues_) / np.abs(dense.eigenvalues_))
        print(f"M={M:6d} dense   fit {t_dense:7.3f} s   | lanczos fit {t_lanczos:6.3f} s "
              f"({lanczos.n_matvec_} mat-vecs; best of {max(args.repeats, 2)}), "
              f"max rel. diff of eigenvalues {agreement:.1e}   [load {load():.1f}]")
        del D, dense, lanczos

    solvers = args.solvers.split(",")
    for M in args.sizes:
        start = time.perf_counter()
        D = bhattacharyya_matrix(synthetic_sqrt_probabilities(M))
        print(f"M={M:6d} D: {D.nbytes / 2**30:.2f} GiB float64, built in {time.perf_counter() - start:.1f} s; "
              f"top 10 eigenpairs by |lambda| with each solver, in memory:")
        print(f"  {'':16s} {'solver':8s} {'passes':>6s} {'products':>8s} {'fit s':>8s} {'x ' + solvers[0][:3]:>5s} "
              f"{'peak/D':>9s} | {'d(lambda)':>8s} {'coords3':>8s} S(1..3)")
        fits = {}
        for solver in solvers:
            rss_before = current_rss_bytes()
            resettable = reset_peak_rss()
            seconds, model = time_fit(D, solver, args.repeats)
            peak = (peak_rss_bytes() - rss_before if resettable else peak_rss_bytes()) / D.nbytes
            fits[solver] = (seconds, model)
            compare("in memory", model, fits[solvers[0]][1], seconds, fits[solvers[0]][0],
                    f"{peak:+.3f}" if resettable else f"{peak:.3f}")
        lam = fits[solvers[0]][1].eigenvalues_
        print(f"         eigenvalues: {np.array2string(lam, precision=4, max_line_width=200)}")
        if args.tiles:
            from inpca.tiles import TiledMatrix

            with tempfile.TemporaryDirectory() as folder:
                tiles, index = write_tiles(D, args.tiles, Path(folder))
                del D, fits
                print(f"  streamed from {args.tiles} x {args.tiles + 1} / 2 float32 tiles "
                      f"({sum(p.stat().st_size for p in tiles.values()) / 2**30:.2f} GiB on disk):")
                print(f"  {'':16s} {'solver':8s} {'passes':>6s} {'products':>8s} {'tile reads':>10s} "
                      f"{'read() GB':>9s} {'fit s':>8s} {'x ' + solvers[0][:3]:>5s} {'peak MiB':>9s} | "
                      f"{'d(lambda)':>8s} {'coords3':>8s} S(1..3)")
                streamed = {}
                for solver in solvers:
                    with TiledMatrix(tiles, index) as tiled:
                        rss_before, read_before = current_rss_bytes(), read_syscall_bytes()
                        resettable = reset_peak_rss()
                        seconds, model = time_fit(tiled, solver)
                        peak = peak_rss_bytes() - rss_before if resettable else peak_rss_bytes()
                        streamed[solver] = (seconds, model)
                        compare("from the tiles", model, streamed[solvers[0]][1], seconds, streamed[solvers[0]][0],
                                f"{peak / 2**20:+.0f}" if resettable else f"{peak / 2**20:.0f}",
                                f"{tiled.bytes_read / tiled.stored_bytes:10.1f} "
                                f"{(read_syscall_bytes() - read_before) / 1e9:9.1f} ")
        else:
            del D, fits


if __name__ == "__main__":
    main()
