"""Trajectories compared at equal progress: reindexing ("reparameterization") of training runs.

Runs are recorded at their own checkpoints (epochs or steps, different schedules, different speeds).
To compare whole trajectories, Mao et al. (PNAS 2024, the final analysis of the trajectories) put every
run on one common index instead of time: a run's index at a checkpoint is its progress lambda along
the P0 -> P* geodesic (`inpca.geodesic.progress`, the authors' ``compute_lambda``) or its training
accuracy. On the grid t_k = k / T (k = 1..T) each run is then represented by the model at index t_k,
interpolated between its checkpoints (the authors' ``reparameterize``), and runs are compared at each
t_k: distances between their models, and the error and cross-entropy recomputed from the interpolated
predictions. Two runs that pass through the same models at different speeds become the same
reindexed trajectory, so what remains is how their paths differ.

Rules of `reindex` (probs of one run's K checkpoints in order, index (K,) its index at each):

* For each t_k take the FIRST checkpoint j with index[j] > t_k (the index need not be monotone, e.g.
  accuracy can drop; what counts is when the run first got past t_k, later dips and returns are not
  used).
* j == 0 (the run starts past t_k): checkpoint 0.
* Otherwise the model between checkpoints j - 1 and j on the geodesic of the product of spheres (per
  sample, sqrt p on the unit sphere; `inpca.geodesic.geodesic`), at the one common fraction
  f = (t_k - index[j-1]) / (index[j] - index[j-1]) clipped to [0, 1] for all samples.
* No checkpoint exceeds t_k (the run never got past it): the last checkpoint is held. A run that
  stops at lambda = 0.8 thus stays at its final model for t_k > 0.8 instead of being extrapolated;
  likewise at t_k = 1 for the accuracy index (nothing exceeds 1).
* Equal indices: since j is the first checkpoint past t_k, index[j-1] <= t_k < index[j], so the two
  ends of an interpolation never have equal indices (f is always defined). A plateau of checkpoints
  with the same index v is entered at its earliest checkpoint (t_k -> v from below interpolates
  towards it) and left from its latest (t_k = v is that checkpoint, f = 0); checkpoints inside the
  plateau are never used.

A checkpoint used as it is (j == 0, held last) is returned as stored, in float64;
interpolated rows are renormalised to sum 1 (`geodesic` does that after squaring).

The rules depend on the index values alone, so they are computed once as a *plan*
(:func:`reindex_plan`: for each t_k the two checkpoints and the fraction) and applied wherever the
models at equal progress are needed (:func:`model_at`, :func:`interpolate_rows`): the pipeline stores the
plan, a few numbers per trajectory and t_k, and computes the models from the store when it compares
trajectories, instead of storing R x T x N x C probabilities.
"""

from __future__ import annotations

import math

import numpy as np

from .distances import pairwise
from .geodesic import MIN_ANGLE, geodesic, ignorance, truth

__all__ = [
    "INDICES",
    "distances_at_equal_progress",
    "first_crossing",
    "geodesic_trajectory",
    "index_grid",
    "index_values",
    "interpolate_rows",
    "model_at",
    "reindex",
    "reindex_metrics",
    "reindex_plan",
]

#: What a run can be reindexed by: its progress lambda along P0 -> P*, or its training accuracy.
INDICES = ("progress", "accuracy")

# Floor on the probability of the true class in the cross-entropy: the smallest float32 (subnormal,
# 1.4e-45) rounds to about this, so a prediction stored in float32 has no smaller nonzero value, and a
# zero probability costs -log(1e-45) = 103.6 instead of inf (like the distance kernels' cap of 100).
_MIN_PROBABILITY = 1e-45


def index_grid(points: int) -> np.ndarray:
    """The common index values t_k = k / T, k = 1..T (float64, shape (T,)), T = points >= 1."""
    points = int(points)
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    return np.arange(1, points + 1, dtype=np.float64) / points


def index_values(progress, train_error, index: str) -> np.ndarray:
    """A run's index at each checkpoint: "progress" -> progress (float64); "accuracy" -> the training
    accuracy clip(1 - train_error, 0, 1) (float64)."""
    if index == "progress":
        return np.asarray(progress, dtype=np.float64)
    if index == "accuracy":
        return np.clip(1.0 - np.asarray(train_error, dtype=np.float64), 0.0, 1.0)
    raise ValueError(f"index must be one of {', '.join(map(repr, INDICES))}, got {index!r}")


def reindex_plan(index, ts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How a run with these index values is reindexed at ts (the rules of the module docstring).

    index: (K,) the run's index at each checkpoint, finite; ts: (T,) index values. Returns
    (lower, upper, fraction), each (T,): the model at t_k is checkpoint ``lower[k]`` as stored when
    ``lower[k] == upper[k]`` (the run starts past t_k, or never reaches it), else the point of the
    sphere geodesic from checkpoint ``lower[k]`` to ``upper[k] = lower[k] + 1`` at ``fraction[k]``.
    """
    index = np.asarray(index, dtype=np.float64)
    ts = np.asarray(ts, dtype=np.float64).reshape(-1)
    if index.ndim != 1 or index.size == 0 or not np.all(np.isfinite(index)):
        raise ValueError(f"index must hold one finite value per checkpoint (K >= 1), got shape {index.shape}")
    lower = np.empty(ts.size, dtype=np.int64)
    upper = np.empty(ts.size, dtype=np.int64)
    fraction = np.zeros(ts.size, dtype=np.float64)
    for k, t in enumerate(ts):
        exceeding = np.flatnonzero(index > t)
        if exceeding.size == 0:  # never past t_k: the last checkpoint, held
            lower[k] = upper[k] = index.size - 1
            continue
        j = int(exceeding[0])
        if j == 0:  # starts past t_k: checkpoint 0
            lower[k] = upper[k] = 0
            continue
        lower[k], upper[k] = j - 1, j
        fraction[k] = float(np.clip((t - index[j - 1]) / (index[j] - index[j - 1]), 0.0, 1.0))
    return lower, upper, fraction


def model_at(p_lower, p_upper, same: bool, fraction: float) -> np.ndarray:
    """One model of a plan (:func:`reindex_plan`), (N, C) float64: checkpoint `p_lower` as stored when
    `same`, else the sphere-geodesic point from `p_lower` to `p_upper` at `fraction`."""
    if same:
        return np.asarray(p_lower, dtype=np.float64)
    return geodesic(p_lower, p_upper, [fraction], dtype=np.float64)[0]


def interpolate_rows(pool, lower, upper, fraction, *, dtype=np.float32, device: str = "cpu") -> np.ndarray:
    """The models of a batch of plans from one array of checkpoints: row r of the result is
    ``model_at(pool[lower[r]], pool[upper[r]], lower[r] == upper[r], fraction[r])`` cast to `dtype`.

    pool (P, N, C) float32 or float64; lower, upper (R,) indices into pool; fraction (R,). Returns
    (R, N, C) numpy. On "cpu" a fused numba kernel (:mod:`inpca.kernels.geodesic_cpu`; numpy's
    :func:`inpca.geodesic.geodesic` where numba is missing), on "cuda" the same arithmetic in torch
    float64 on the GPU, so a tile job on a GPU does not wait for the CPU.
    """
    pool = np.asarray(pool)
    lower = np.asarray(lower, dtype=np.int64).reshape(-1)
    upper = np.asarray(upper, dtype=np.int64).reshape(-1)
    fraction = np.asarray(fraction, dtype=np.float64).reshape(-1)
    if pool.ndim != 3 or not lower.size == upper.size == fraction.size:
        raise ValueError(f"pool must be (P, N, C) and lower, upper, fraction of one length; got {pool.shape}, "
                         f"{lower.size}, {upper.size}, {fraction.size}")
    if lower.size and (min(lower.min(), upper.min()) < 0 or max(lower.max(), upper.max()) >= len(pool)):
        raise ValueError(f"lower and upper must index the {len(pool)} rows of pool")
    if device != "cpu":
        same = lower == upper
        return _models_at_torch(pool[lower], pool[upper], same, fraction, device).astype(dtype, copy=False)
    out = np.empty((lower.size,) + pool.shape[1:], dtype=dtype)
    if pool.dtype not in (np.float32, np.float64):
        pool = pool.astype(np.float32)
    try:
        from .kernels.geodesic_cpu import interpolate
    except ImportError:  # numba is missing: numpy, one model at a time
        for r, (lo, up, f) in enumerate(zip(lower, upper, fraction)):
            out[r] = model_at(pool[lo], pool[up], bool(lo == up), float(f))
        return out
    interpolate(pool, lower, upper, fraction, out)
    return out


def _models_at_torch(p_lower, p_upper, same, fraction, device: str):
    """inpca.geodesic.geodesic's formula, batched over runs, in torch float64 on `device`."""
    import torch

    a = torch.as_tensor(np.asarray(p_lower), device=device).to(torch.float64)
    b = torch.as_tensor(np.asarray(p_upper), device=device).to(torch.float64)
    t = torch.as_tensor(np.asarray(fraction, dtype=np.float64), device=device)[:, None]
    sqrt_a, sqrt_b = a.clamp_min(0).sqrt(), b.clamp_min(0).sqrt()
    theta = torch.arccos((sqrt_a * sqrt_b).sum(-1).clamp(0.0, 1.0))  # (R, N)
    moving = theta >= MIN_ANGLE
    sin_theta = torch.where(moving, torch.sin(theta), torch.ones_like(theta))
    weight_a = torch.where(moving, torch.sin((1.0 - t) * theta) / sin_theta, torch.ones_like(theta))
    weight_b = torch.where(moving, torch.sin(t * theta) / sin_theta, torch.zeros_like(theta))
    point = (weight_a[..., None] * sqrt_a + weight_b[..., None] * sqrt_b) ** 2
    sums = point.sum(-1, keepdim=True)
    point = torch.where(sums > 0, point / torch.where(sums > 0, sums, torch.ones_like(sums)), point)
    keep = torch.as_tensor(np.asarray(same, dtype=bool), device=device)[:, None, None]
    return torch.where(keep, a, point).cpu().numpy()


def reindex(probs, index, ts) -> np.ndarray:
    """One run's predictions at the index values ts, interpolated between its checkpoints.

    probs: (K, N, C) the run's checkpoints in order (float32 or float64); index: (K,) the run's index
    at each checkpoint, finite, not necessarily monotone; ts: (T,) index values. Returns (T, N, C)
    float64 probabilities following the rules in the module docstring (:func:`reindex_plan`, then
    :func:`model_at` at each t_k). Works on one t_k at a time, so beyond the result it holds only a
    few (N, C) float64 arrays.
    """
    probs = np.asarray(probs)
    index = np.asarray(index, dtype=np.float64)
    if probs.ndim != 3 or probs.shape[0] == 0:
        raise ValueError(f"probs must be (K, N, C) with K >= 1, got {probs.shape}")
    if index.shape != (probs.shape[0],) or not np.all(np.isfinite(index)):
        raise ValueError(f"index must hold {probs.shape[0]} finite values, one per checkpoint, got {index.shape}")
    lower, upper, fraction = reindex_plan(index, ts)
    out = np.empty((lower.size,) + probs.shape[1:], dtype=np.float64)
    for k in range(lower.size):
        out[k] = model_at(probs[lower[k]], probs[upper[k]], lower[k] == upper[k], fraction[k])
    return out


def reindex_metrics(probs_reindexed, labels) -> tuple[np.ndarray, np.ndarray]:
    """Cross-entropy and 0/1 error of each reindexed model (the paper recomputes both for the
    interpolated models instead of interpolating the recorded ones).

    probs_reindexed: (T, N, C); labels: (N,). Returns (loss, error), float64 (T,) each:
    loss[k] = -mean_n log max(p[k, n, y_n], 1e-45) (a zero probability costs 103.6, not inf);
    error[k] = mean_n (argmax_c p[k, n, c] != y_n), where argmax takes the first class of a tie, so
    the uniform P0 predicts class 0 everywhere.
    """
    probs_reindexed = np.asarray(probs_reindexed)
    labels = np.asarray(labels).reshape(-1)
    if probs_reindexed.ndim != 3 or probs_reindexed.shape[1] != labels.size:
        raise ValueError(f"probs_reindexed must be (T, N, C) with N = {labels.size}, got {probs_reindexed.shape}")
    samples = np.arange(labels.size)
    loss = np.empty(probs_reindexed.shape[0], dtype=np.float64)
    error = np.empty(probs_reindexed.shape[0], dtype=np.float64)
    for k, point in enumerate(probs_reindexed):
        true_class = np.maximum(point[samples, labels].astype(np.float64), _MIN_PROBABILITY)
        loss[k] = -np.mean(np.log(true_class))
        error[k] = np.mean(point.argmax(axis=1) != labels)
    return loss, error


def geodesic_trajectory(labels, n_classes, ts) -> np.ndarray:
    """The P0 -> P* geodesic as a trajectory: gamma(t_k) for each t_k of ts, (T, N, C) float64
    (exactly uniform at t = 0 and exactly one-hot at t = 1)."""
    start = ignorance(np.asarray(labels).size, n_classes, dtype=np.float64)
    end = truth(labels, n_classes, dtype=np.float64)
    return geodesic(start, end, ts, dtype=np.float64)


def distances_at_equal_progress(A, B=None, metric: str = "bhattacharyya", device: str = "cpu") -> np.ndarray:
    """Distances between reindexed trajectories at each common index value.

    A: (Ra, T, N, C) reindexed runs; B: (Rb, T, N, C), or None for B = A (then each matrix is
    symmetric with a zero diagonal). Returns (T, Ra, Rb) float64 with dists[k, i, j] =
    d(A[i, k], B[j, k]), from `inpca.distances.pairwise` with this metric and device (float32
    arithmetic: ~1e-7 absolute).
    """
    A = np.asarray(A)
    if A.ndim != 4:
        raise ValueError(f"A must be (runs, T, N, C), got {A.shape}")
    if B is not None:
        B = np.asarray(B)
        if B.ndim != 4 or B.shape[1:] != A.shape[1:]:
            raise ValueError(f"B must be (runs, T, N, C) with T, N, C = {A.shape[1:]}, got {B.shape}")
    rows = A.shape[0]
    columns = rows if B is None else B.shape[0]
    dists = np.empty((A.shape[1], rows, columns), dtype=np.float64)
    for k in range(A.shape[1]):
        other = None if B is None else np.ascontiguousarray(B[:, k])
        dists[k] = pairwise(np.ascontiguousarray(A[:, k]), other, metric=metric, device=device)
    return dists


def first_crossing(values, times, level) -> float:
    """The time at which a run's per-checkpoint values (e.g. progress) first reach level.

    values, times: (K,), times increasing (epochs or steps). Linear interpolation between the
    checkpoint before and the first checkpoint with values >= level; times[0] if values[0] >= level;
    math.nan if no checkpoint reaches level.
    """
    values = np.asarray(values, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if values.ndim != 1 or values.shape != times.shape:
        raise ValueError(f"values and times must be (K,) alike, got {values.shape} and {times.shape}")
    reached = np.flatnonzero(values >= level)
    if reached.size == 0:
        return math.nan
    i = int(reached[0])
    if i == 0:
        return float(times[0])
    fraction = (level - values[i - 1]) / (values[i] - values[i - 1])
    return float(times[i - 1] + fraction * (times[i] - times[i - 1]))
