"""Benchmark: landmark InPCA against exact InPCA on synthetic trajectories.

    .venv/bin/python benchmarks/landmarks.py                          # M = 20,000, every = 2 ... 64
    .venv/bin/python benchmarks/landmarks.py --points 5000 --every 4 16

D is benchmarks/embedding.py's matrix: Bhattacharyya distances of M / 100 synthetic trajectories of
100 checkpoints each, in random order, with a two-signed spectrum like that of real runs. The exact
embedding is InPCA(10) with the Lanczos solver on all of D. Each landmark embedding takes the
landmarks the pipeline would (landmark_rows_every: checkpoints 0, every, 2 every, ... and the last,
99, of each trajectory), fits InPCA(10, solver="auto") on their L x L distances and places all M
points from the (M, L) columns D[:, landmarks]; rows marked "w" weight each landmark by the number
of checkpoints it stands for (landmark_weights, what the pipeline uses), whose eigenvalues are on
the scale of all M points already.

Compared with the exact embedding:
* eigenvalues: the landmark fit's are those of the L x L problem, about L / M times the full
  problem's (the eigenvalues of W grow with the number of points), so lambda_landmark * M / L is
  compared: relative error |lambda_l M / L - lambda_e| / |lambda_e|, the max over the top 3 and
  over the top 10 exact axes. Space-like (+) and time-like (-) eigenvalues are matched separately,
  by rank within their sign: two of opposite sign and nearly equal |lambda| (here lambda_5 = 83.5
  and lambda_6 = -83.3 at M = 20,000) may come out in either order, and comparing them across
  signs would report a 200 % error. The sign patterns in |lambda| order are printed;
* explained stress S(1), S(2), S(3) of the landmark fit (scale-free) against the exact fit's;
* coordinates of all M points on the top 3 axes, each landmark axis flipped to the sign that best
  matches the exact axis: sqrt(mean((x_l - x_e)^2)) / sqrt(mean(x_e^2)) over the M x 3 entries
  (landmark coordinates are on the exact scale already: x = V sqrt|lambda| with V normalised over L).

Times: "fit+place" is landmark_inpca as a whole (the L x L fit plus the pass over the M x L
columns); "place" is that pass alone (model.transform, timed again). Extracting D[:, landmarks]
stands in for computing the M x L distances and is not timed. The machine is shared: the 1-minute
load average is printed with the timings. At most D and one (M, L) copy (<= D / 2) are held.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.embedding import (  # noqa: E402
    CHECKPOINTS_PER_TRAJECTORY, bhattacharyya_matrix, synthetic_sqrt_probabilities)
from inpca.embedding import InPCA  # noqa: E402
from inpca.landmarks import landmark_inpca, landmark_rows_every, landmark_weights  # noqa: E402

N_COMPONENTS = 10
COMPARED_AXES = 3


class _PermutationRecorder(np.random.Generator):
    """A Generator that keeps the last permutation it drew. synthetic_sqrt_probabilities shuffles
    its points with rng.permutation and returns only the shuffled array; np.random.default_rng hands
    a Generator passed as the seed back unchanged, so this one, on the same bit generator as
    default_rng(seed), yields the same points and reveals which trajectory and checkpoint each is."""

    def permutation(self, x, axis=0):
        self.last_permutation = super().permutation(x, axis)
        return self.last_permutation


def trajectory_points(n_points, seed):
    """sqrt-probabilities (as synthetic_sqrt_probabilities(n_points, seed)) and, per point in matrix
    order, its trajectory and checkpoint index."""
    recorder = _PermutationRecorder(np.random.PCG64(seed))
    sqrt_probs = synthetic_sqrt_probabilities(n_points, seed=recorder)
    generated_position = recorder.last_permutation
    return (sqrt_probs, generated_position // CHECKPOINTS_PER_TRAJECTORY,
            generated_position % CHECKPOINTS_PER_TRAJECTORY)


def load():
    return os.getloadavg()[0]


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def matched_relative_errors(scaled_eigenvalues, exact_eigenvalues):
    """|lambda_l - lambda_e| / |lambda_e| for each exact axis, the landmark eigenvalue taken of the
    same sign and the same rank among that sign (NaN where the landmark fit has fewer of that sign)."""
    errors = np.full(exact_eigenvalues.shape, np.nan)
    for positive in (True, False):
        exact_axes = np.flatnonzero((exact_eigenvalues > 0) == positive)
        landmark_axes = np.flatnonzero((scaled_eigenvalues > 0) == positive)
        n = min(exact_axes.size, landmark_axes.size)
        exact_values = exact_eigenvalues[exact_axes[:n]]
        errors[exact_axes[:n]] = np.abs(scaled_eigenvalues[landmark_axes[:n]] - exact_values) / np.abs(exact_values)
    return errors


def sign_pattern(eigenvalues):
    return "".join("+" if value > 0 else "-" for value in eigenvalues)


def coordinate_error(coords, exact_coords):
    """Relative RMS error over the top COMPARED_AXES axes, each axis's sign aligned to the exact."""
    landmark_axes = coords[:, :COMPARED_AXES]
    exact_axes = exact_coords[:, :COMPARED_AXES]
    signs = np.where(np.einsum("ia,ia->a", landmark_axes, exact_axes) < 0, -1.0, 1.0)
    return np.sqrt(np.mean((landmark_axes * signs - exact_axes) ** 2) / np.mean(exact_axes**2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20000, help="number of points M (default 20000)")
    parser.add_argument("--every", type=int, nargs="+", default=[2, 4, 8, 16, 32, 64],
                        help="landmark spacing along each trajectory (default 2 4 8 16 32 64)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    M = args.points

    start = time.perf_counter()
    sqrt_probs, trajectory, checkpoint = trajectory_points(M, args.seed)
    D = bhattacharyya_matrix(sqrt_probs)
    print(f"{os.cpu_count()} CPUs; M = {M} points ({-(-M // CHECKPOINTS_PER_TRAJECTORY)} trajectories of "
          f"{CHECKPOINTS_PER_TRAJECTORY} checkpoints), D {D.nbytes / 2**30:.2f} GiB float64 built in "
          f"{time.perf_counter() - start:.1f} s   [load {load():.1f}]")

    t_exact, exact = timed(InPCA(n_components=N_COMPONENTS, solver="lanczos").fit, D)
    exact_stress = exact.explained_stress_
    print(f"exact InPCA({N_COMPONENTS}), lanczos: {t_exact:.2f} s ({exact.n_matvec_} mat-vecs)   "
          f"[load {load():.1f}]")
    print(f"  eigenvalues: {np.array2string(exact.eigenvalues_, precision=4, max_line_width=200)}")
    print()

    signs_width = max(len("signs"), N_COMPONENTS)
    header = (f"{'every':>5} {'L':>6} {'solver':>7} {'fit+place s':>11} {'place s':>7} {'load':>4} | "
              f"{'dlam 1-3':>8} {'dlam 1-10':>9} {'signs':>{signs_width}} | {'S(1)':>6} {'S(2)':>6} "
              f"{'S(3)':>6} {'dS(3)':>7} | {'coord err':>9}")
    print(header)
    print("-" * len(header))
    print(f"{'exact':>5} {M:6d} {'lanczos':>7} {t_exact:11.2f} {'':>7} {load():4.1f} | {'':>8} {'':>9} "
          f"{sign_pattern(exact.eigenvalues_):>{signs_width}} | {exact_stress[0]:6.4f} {exact_stress[1]:6.4f} "
          f"{exact_stress[2]:6.4f} {'':>7} | {'':>9}")
    per_axis_errors = {}
    kinds = np.full(M, "run")
    for every, weighted in ((every, weighted) for every in args.every for weighted in (False, True)):
        landmark_rows = landmark_rows_every(trajectory, checkpoint, kinds, every)
        L = landmark_rows.size
        D_to_landmarks = D[:, landmark_rows]
        weights = landmark_weights(trajectory, checkpoint, kinds, landmark_rows) if weighted else None
        t_total, (model, coords) = timed(landmark_inpca, D_to_landmarks, landmark_rows,
                                         n_components=N_COMPONENTS, weights=weights)
        load_after_fit = load()
        t_place, _ = timed(model.transform, D_to_landmarks)
        del D_to_landmarks
        # a weighted fit is on the scale of all M points; a plain one on that of its L landmarks
        relative = matched_relative_errors(model.eigenvalues_ * (1 if weighted else M / L), exact.eigenvalues_)
        per_axis_errors[f"{every}{'w' if weighted else ''}"] = (L, relative)
        stress = model.explained_stress_
        label = f"{every}{'w' if weighted else ''}"
        print(f"{label:>5} {L:6d} {model.solver_:>7} {t_total:11.2f} {t_place:7.2f} {load_after_fit:4.1f} | "
              f"{np.nanmax(relative[:COMPARED_AXES]):8.2%} {np.nanmax(relative):9.2%} "
              f"{sign_pattern(model.eigenvalues_):>{signs_width}} | {stress[0]:6.4f} {stress[1]:6.4f} "
              f"{stress[2]:6.4f} {stress[2] - exact_stress[2]:+7.4f} | {coordinate_error(coords, exact.coords_):9.2%}")

    print()
    print("relative error of each scaled eigenvalue lambda_l * M / L against the exact one "
          "(matched by sign and rank; nan: unmatched):")
    print(f"{'every':>5} {'L':>6}  " + " ".join(f"{f'lam{k + 1}':>6}" for k in range(N_COMPONENTS)))
    for every, (L, relative) in per_axis_errors.items():
        print(f"{every:>5} {L:6d}  " + " ".join(f"{value:6.2%}" for value in relative))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"\nprocess peak memory {peak / 2**30:.2f} GiB ({peak / D.nbytes:.2f} x D)   [load {load():.1f}]")


if __name__ == "__main__":
    main()
