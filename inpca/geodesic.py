"""Reference points and the geodesic from ignorance to truth on the product of spheres.

A model is its prediction tensor P (N samples, C classes; rows on the simplex). Per sample,
sqrt(p_n) lies on the positive orthant of the unit sphere S^{C-1}, so a model is a point of the
product of N spheres. The Bhattacharyya coefficient of sample n is BC_n = <sqrt p_n, sqrt q_n> = cos theta_n
and the intensive Bhattacharyya distance is d_B(P, Q) = -(1/N) sum_n log BC_n.

Reference points (Mao et al., PNAS 2024, and the authors' code):

* ignorance P0: p_n = 1/C for every sample;
* truth P*: the one-hot vector of the true label y_n;
* the geodesic P0 -> P*: per sample the great circle with the same t for all samples. Here every
  theta_n = arccos(1/sqrt C) (1.2490458 rad for C = 10), d_B(P_s, P_t) = -log cos(|t - s| theta),
  and d_B(P0, P*) = 1/2 log C.

Progress lambda(P) is the position of the point of the P0 -> P* geodesic closest to P in d_B (the
objective of the ICML 2023 follow-up code, ``Geodesic.project``), in [0, 1]: lambda(P0) = 0,
lambda(P*) = 1 and lambda(gamma(t)) = t.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize

# -log BC of a sample with zero overlap is capped as in the distance kernels (the authors' dbhat
# maps inf to 100).
from .kernels import CAP

__all__ = [
    "CAP",
    "distance_to_truth",
    "geodesic",
    "ignorance",
    "progress",
    "progress_many",
    "reference_points",
    "truth",
]

# Samples whose endpoints are closer than this angle (rad) are copied instead of interpolated:
# sin(theta) in the denominator would amplify rounding (the authors' code uses the same threshold).
_MIN_ANGLE = 1e-8

# Floor on BC inside the progress objective so that -log BC stays finite (-log 1e-300 = 690.8).
_MIN_BC = 1e-300


def ignorance(n_samples, n_classes, dtype=np.float32):
    """P0: the uniform prediction 1/C for each of the N samples, shape (N, C)."""
    return np.full((int(n_samples), int(n_classes)), 1.0 / n_classes, dtype=dtype)


def truth(labels, n_classes, dtype=np.float32):
    """P*: one-hot rows of the true labels, shape (N, C)."""
    labels = _check_labels(labels, n_classes)
    points = np.zeros((labels.size, int(n_classes)), dtype=dtype)
    points[np.arange(labels.size), labels] = 1
    return points


def geodesic(P, Q, ts, dtype=None):
    """Points of the product-of-spheres geodesic from P to Q at the parameters ts.

    Per sample n, with theta_n = arccos <sqrt p_n, sqrt q_n> (inner product clipped to [0, 1]):

        sqrt P_t,n = [sin((1 - t) theta_n) sqrt p_n + sin(t theta_n) sqrt q_n] / sin theta_n

    (P_t,n = p_n where theta_n < 1e-8). Returns the probabilities (sqrt P_t)^2 with shape
    (len(ts), N, C); each row is renormalised to sum 1 in float64 (removes rounding drift from the
    sphere), then cast to ``dtype`` (default: the common floating dtype of P and Q).
    """
    P = np.asarray(P)
    Q = np.asarray(Q)
    if P.shape != Q.shape or P.ndim != 2:
        raise ValueError(f"P and Q must both be (N, C), got {P.shape} and {Q.shape}")
    if dtype is None:
        dtype = np.result_type(P.dtype, Q.dtype, np.float32)
    ts = np.atleast_1d(np.asarray(ts, dtype=np.float64))
    sqrt_p = np.sqrt(np.clip(P.astype(np.float64), 0.0, None))
    sqrt_q = np.sqrt(np.clip(Q.astype(np.float64), 0.0, None))
    theta = np.arccos(np.clip(np.einsum("nc,nc->n", sqrt_p, sqrt_q), 0.0, 1.0))
    moving = theta >= _MIN_ANGLE
    sin_theta = np.where(moving, np.sin(theta), 1.0)
    out = np.empty((ts.size,) + P.shape, dtype=dtype)
    for i, t in enumerate(ts):
        weight_p = np.where(moving, np.sin((1.0 - t) * theta) / sin_theta, 1.0)
        weight_q = np.where(moving, np.sin(t * theta) / sin_theta, 0.0)
        point = (weight_p[:, None] * sqrt_p + weight_q[:, None] * sqrt_q) ** 2
        row_sums = point.sum(axis=1, keepdims=True)
        np.divide(point, row_sums, out=point, where=row_sums > 0)
        out[i] = point
    return out


def reference_points(labels, n_classes, n_geodesic=100):
    """P0, the interior of the P0 -> P* geodesic, and P*, stacked for embedding.

    Returns (points, names, ts): points (n_geodesic + 1, N, C) float32 at t = k / n_geodesic,
    k = 0..n_geodesic, i.e. P0 (t = 0, exactly uniform), the geodesic at t = 1/n .. (n-1)/n, and
    P* (t = 1, exactly one-hot); names = ["P0", "geodesic", ..., "geodesic", "P*"]; ts (float64).
    """
    n_geodesic = int(n_geodesic)
    if n_geodesic < 1:
        raise ValueError("n_geodesic must be >= 1")
    labels = _check_labels(labels, n_classes)
    start = ignorance(labels.size, n_classes, dtype=np.float64)
    end = truth(labels, n_classes, dtype=np.float64)
    ts = np.arange(n_geodesic + 1, dtype=np.float64) / n_geodesic
    points = np.empty((ts.size, labels.size, int(n_classes)), dtype=np.float32)
    points[0] = start
    points[-1] = end
    if n_geodesic > 1:
        points[1:-1] = geodesic(start, end, ts[1:-1], dtype=np.float32)
    names = ["P0"] + ["geodesic"] * (n_geodesic - 1) + ["P*"]
    return points, names, ts


# --------------------------------------------------------------------------------------------
# Progress along the P0 -> P* geodesic
# --------------------------------------------------------------------------------------------

def _check_labels(labels, n_classes):
    labels = np.asarray(labels).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes})")
    return labels.astype(np.intp, copy=False)


def _overlaps_with_endpoints(P, labels, n_classes):
    """Per-sample overlaps of P with P0 and P*: c1_n = <sqrt p_n, sqrt P0_n> = sum_c sqrt(p_nc / C)
    and c2_n = <sqrt p_n, sqrt P*_n> = sqrt(p_n[y_n]).

    Rows are renormalised to sum 1 in float64 first: stored float32 rows sum to 1 +- 1e-7, which
    would let BC exceed 1 and make the clamped objective flat near the endpoints.
    """
    p = np.clip(np.asarray(P, dtype=np.float64), 0.0, None)
    if p.shape != (labels.size, n_classes):
        raise ValueError(f"P must be (N, C) = ({labels.size}, {n_classes}), got {p.shape}")
    row_sums = p.sum(axis=1, keepdims=True)
    np.divide(p, row_sums, out=p, where=row_sums > 0)
    sqrt_p = np.sqrt(p)
    c1 = sqrt_p.sum(axis=1) / np.sqrt(n_classes)
    c2 = sqrt_p[np.arange(labels.size), labels]
    return c1, c2


class _GeodesicObjective:
    """f(t) = d_B(gamma(t), P) = -(1/N) sum_n log BC_n(t) along the P0 -> P* geodesic gamma, with

        BC_n(t) = [sin((1 - t) theta) c1_n + sin(t theta) c2_n] / sin theta,  theta = arccos(1/sqrt C)

    (gamma's square roots are a fixed combination of sqrt P0 and sqrt P*, so BC is linear in the
    precomputed overlaps c1, c2 and each evaluation is O(N)). BC_n(t) = R_n cos(t theta - phi_n) is a
    positive sinusoid on [0, 1] and -log cos is convex, so f is convex: its minimiser is where f' changes
    sign, with

        f'(t) = -(1/N) sum_n BC_n'(t) / BC_n(t),  BC_n'(t) = theta [cos(t theta) c2_n - cos((1 - t) theta) c1_n] / sin theta.

    BC is clamped to [1e-300, 1] so that f and f' stay finite (a sample with p[y] = 0 sends f to
    +690.8 at t = 1 instead of +inf).
    """

    def __init__(self, c1, c2, n_classes):
        self.c1 = c1
        self.c2 = c2
        self.theta = float(np.arccos(1.0 / np.sqrt(n_classes)))
        self.sin_theta = float(np.sin(self.theta))

    def coefficient(self, t):
        weight_start = np.sin((1.0 - t) * self.theta) / self.sin_theta
        weight_end = np.sin(t * self.theta) / self.sin_theta
        return np.clip(weight_start * self.c1 + weight_end * self.c2, _MIN_BC, 1.0)

    def value(self, t):
        return float(-np.mean(np.log(self.coefficient(t))))

    def slope(self, t):
        rate = self.theta / self.sin_theta
        derivative = rate * (np.cos(t * self.theta) * self.c2 - np.cos((1.0 - t) * self.theta) * self.c1)
        with np.errstate(over="ignore"):
            value = -float(np.mean(derivative / self.coefficient(t)))
        # +-inf (a zero-overlap sample at an endpoint) only matters through its sign.
        return float(np.clip(value, -1e300, 1e300))


# |f'| below this at an endpoint counts as zero: rounding of the overlaps (~1e-16) must not move
# lambda(P0) off 0 or lambda(P*) off 1.
_SLOPE_TOLERANCE = 1e-12


def progress(P, labels, n_classes):
    """Progress lambda = argmin_{t in [0, 1]} d_B(gamma(t), P) along the P0 -> P* geodesic gamma.

    P: (N, C) probabilities. The objective f(t) is convex (see _GeodesicObjective), so the
    minimiser is 0 if f'(0) >= 0, 1 if f'(1) <= 0, and otherwise the root of f' in (0, 1), found by
    Brent's method to ~1e-14 (finer than a bounded golden-section search on f, which can only
    resolve t to ~sqrt(machine epsilon) where f is flat). lambda(P0) = 0 and lambda(P*) = 1 exactly,
    and lambda(gamma(t0)) = t0.
    """
    labels = _check_labels(labels, n_classes)
    c1, c2 = _overlaps_with_endpoints(P, labels, int(n_classes))
    return _minimise(_GeodesicObjective(c1, c2, int(n_classes)))


def _minimise(objective):
    if objective.slope(0.0) >= -_SLOPE_TOLERANCE:
        return 0.0
    if objective.slope(1.0) <= _SLOPE_TOLERANCE:
        return 1.0
    return float(scipy.optimize.brentq(objective.slope, 0.0, 1.0, xtol=1e-15, rtol=4 * np.finfo(float).eps,
                                       maxiter=200))


def progress_many(P_stack, labels, n_classes):
    """progress() of each of the M points of P_stack (M, N, C); returns (M,) float64."""
    labels = _check_labels(labels, n_classes)
    P_stack = np.asarray(P_stack)
    if P_stack.ndim != 3:
        raise ValueError(f"P_stack must be (M, N, C), got {P_stack.shape}")
    result = np.empty(P_stack.shape[0], dtype=np.float64)
    for m in range(P_stack.shape[0]):
        c1, c2 = _overlaps_with_endpoints(P_stack[m], labels, int(n_classes))
        result[m] = _minimise(_GeodesicObjective(c1, c2, int(n_classes)))
    return result


def distance_to_truth(P_stack, labels):
    """d_B(P, P*) for each point of P_stack (M, N, C) (or one (N, C) point -> shape (1,)).

    d_B(P, P*) = -(1/N) sum_n log sqrt(p_n[y_n]) = 1/2 mean cross-entropy, with each sample's term
    capped at CAP = 100 (p_n[y_n] = 0, zero overlap with the one-hot truth) like the distance
    kernels. Computed in float64, without renormalising rows (as the kernels do).
    """
    P_stack = np.asarray(P_stack)
    if P_stack.ndim == 2:
        P_stack = P_stack[None]
    if P_stack.ndim != 3:
        raise ValueError(f"P_stack must be (M, N, C), got {P_stack.shape}")
    labels = _check_labels(labels, P_stack.shape[2])
    if labels.size != P_stack.shape[1]:
        raise ValueError(f"{labels.size} labels for {P_stack.shape[1]} samples")
    true_class = P_stack[:, np.arange(labels.size), labels].astype(np.float64)
    with np.errstate(divide="ignore"):
        terms = -0.5 * np.log(np.clip(true_class, 0.0, 1.0))
    return np.minimum(terms, CAP).mean(axis=1)
