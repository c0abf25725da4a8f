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

Progress lambda(P) in [0, 1] is the position of the point of the P0 -> P* geodesic gamma closest to
P, in one of two senses (``mode``):

* "angle" (default; the PNAS authors' ``compute_lambda``, mode 'prod'): the t minimising the summed
  per-sample angle between sqrt P and sqrt gamma(t), sum_n arccos <sqrt p_n, sqrt gamma_n(t)> (the
  great-circle distances on the N spheres, added up);
* "bhattacharyya": the t minimising d_B(gamma(t), P) (the objective of the ICML 2023 follow-up code,
  ``Geodesic.project``).

Both give lambda(P0) = 0, lambda(P*) = 1 and lambda(gamma(t)) = t; off the geodesic they differ.
"""

from __future__ import annotations

import numpy as np

# -log BC of a sample with zero overlap is capped as in the distance kernels (the authors' dbhat
# maps inf to 100).
from .kernels import CAP

__all__ = [
    "CAP",
    "PROGRESS_MODES",
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
MIN_ANGLE = 1e-8

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
    moving = theta >= MIN_ANGLE
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


class _BhattacharyyaObjective:
    """f(t) = d_B(gamma(t), P) = -(1/N) sum_n log BC_n(t) along the P0 -> P* geodesic gamma, with

        BC_n(t) = [sin((1 - t) theta) c1_n + sin(t theta) c2_n] / sin theta,  theta = arccos(1/sqrt C)

    (gamma's square roots are a fixed combination of sqrt P0 and sqrt P*, so BC is linear in the
    precomputed overlaps c1, c2 and each evaluation is O(N)). BC_n(t) = R_n cos(t theta - phi_n) is a
    positive sinusoid on [0, 1] and -log cos is convex, so f is convex: its minimiser is where f' changes
    sign, with

        f'(t) = -(1/N) sum_n BC_n'(t) / BC_n(t),  BC_n'(t) = theta [cos(t theta) c2_n - cos((1 - t) theta) c1_n] / sin theta.

    BC is clamped to [1e-300, 1] so that f and f' stay finite (a sample with p[y] = 0 sends f to
    +690.8 at t = 1 instead of +inf). f is smooth, so its slope is probed at the endpoints themselves.
    """

    edge = 0.0
    # |f'| below this at an endpoint counts as zero: rounding of the overlaps (~1e-16) must not move
    # lambda(P0) off 0 or lambda(P*) off 1.
    slope_tolerance = 1e-12

    def __init__(self, c1, c2, n_classes):
        self.c1 = c1
        self.c2 = c2
        self.theta = float(np.arccos(1.0 / np.sqrt(n_classes)))
        self.sin_theta = float(np.sin(self.theta))

    def coefficient(self, t):
        weight_start = np.sin((1.0 - t) * self.theta) / self.sin_theta
        weight_end = np.sin(t * self.theta) / self.sin_theta
        return np.clip(weight_start * self.c1 + weight_end * self.c2, _MIN_BC, 1.0)

    def slope(self, t):
        rate = self.theta / self.sin_theta
        derivative = rate * (np.cos(t * self.theta) * self.c2 - np.cos((1.0 - t) * self.theta) * self.c1)
        with np.errstate(over="ignore"):
            value = -float(np.mean(derivative / self.coefficient(t)))
        # +-inf (a zero-overlap sample at an endpoint) only matters through its sign.
        return float(np.clip(value, -1e300, 1e300))


class _AngleObjective:
    """f(t) = (1/N) sum_n arccos BC_n(t), the mean per-sample angle between sqrt P and sqrt gamma(t)
    (the authors' ``compute_lambda`` minimises the sum; the argmin is the same), with BC_n(t) as in
    _BhattacharyyaObjective and the overlaps c1, c2 clipped to [0, 1].

    In the orthonormal basis a = sqrt P0_n, b = (sqrt P*_n - cos theta a) / sin theta of the plane of
    sample n's great circle, sqrt gamma_n(t) = cos(t theta) a + sin(t theta) b and sqrt p_n projects to
    (u, v) = (c1, (c2 - cos theta c1) / sin theta), leaving h^2 = 1 - u^2 - v^2 off the plane. Then

        BC_n(t) = cos(t theta) u + sin(t theta) v,   A_n(t) = sin(t theta) u - cos(t theta) v,
        1 - BC_n^2 = A_n^2 + h_n^2,
        d/dt arccos BC_n(t) = theta A_n / sqrt(1 - BC_n^2) = theta A_n / sqrt(A_n^2 + h_n^2).

    The last form avoids 1 - BC_n^2, which cancels catastrophically near BC_n = 1. With (u, v) =
    R_n (cos phi_n, sin phi_n), A_n = R_n sin(t theta - phi_n), and c1, c2 >= 0 keep t theta - phi_n
    within [-pi/2, pi/2] on [0, 1]: A_n is increasing in t, so each slope term is nondecreasing and f
    is convex. A sample on the geodesic (h_n = 0) has a kink, arccos BC_n = theta |t - t_n|.

    Because of those kinks the slope exactly at an endpoint is the sign of rounding noise for P0 and
    P* (their t_n is 0 or 1 only to ~1e-16), so the endpoint slopes are probed 1e-12 inside [0, 1]:
    a minimiser within 1e-12 of an endpoint is returned as that endpoint.
    """

    edge = 1e-12
    slope_tolerance = 0.0

    def __init__(self, c1, c2, n_classes):
        cos_theta = 1.0 / np.sqrt(n_classes)
        sin_theta = np.sqrt(1.0 - 1.0 / n_classes)
        self.theta = float(np.arccos(cos_theta))
        self.u = np.clip(c1, 0.0, 1.0)
        self.v = (np.clip(c2, 0.0, 1.0) - cos_theta * self.u) / sin_theta
        self.off_plane_squared = np.clip(1.0 - self.u ** 2 - self.v ** 2, 0.0, None)

    def slope(self, t):
        across = np.sin(t * self.theta) * self.u - np.cos(t * self.theta) * self.v
        sine = np.sqrt(across ** 2 + self.off_plane_squared)
        # A sample exactly at its kink (A = h = 0) contributes 0, the middle of its one-sided slopes.
        ratio = np.divide(across, sine, out=np.zeros_like(across), where=sine > 0)
        return self.theta * float(np.mean(ratio))


_OBJECTIVES = {"angle": _AngleObjective, "bhattacharyya": _BhattacharyyaObjective}
#: The ``mode`` values of progress() and progress_many(); the first is the default.
PROGRESS_MODES = tuple(_OBJECTIVES)


def _objective_class(mode):
    if mode not in _OBJECTIVES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, PROGRESS_MODES))}, got {mode!r}")
    return _OBJECTIVES[mode]


def progress(P, labels, n_classes, mode="angle"):
    """Progress lambda = argmin_{t in [0, 1]} f(t) along the P0 -> P* geodesic gamma.

    P: (N, C) probabilities. mode "angle" (default, the authors' ``compute_lambda``): f(t) = sum_n
    arccos <sqrt p_n, sqrt gamma_n(t)>; mode "bhattacharyya": f(t) = d_B(gamma(t), P). Both objectives
    are convex (see _AngleObjective, _BhattacharyyaObjective), so the minimiser is 0 if f' >= 0 at the
    start, 1 if f' <= 0 at the end, and otherwise the sign change of f' in (0, 1), found by Brent's
    method to ~1e-15 (finer than a bounded golden-section search on f, which can only resolve t to
    ~sqrt(machine epsilon) where f is flat). lambda(P0) = 0 and lambda(P*) = 1 exactly, and
    lambda(gamma(t0)) = t0 to ~1e-15.
    """
    objective_class = _objective_class(mode)
    labels = _check_labels(labels, n_classes)
    c1, c2 = _overlaps_with_endpoints(P, labels, int(n_classes))
    return _minimise(objective_class(c1, c2, int(n_classes)))


def _minimise(objective):
    if objective.slope(objective.edge) >= -objective.slope_tolerance:
        return 0.0
    if objective.slope(1.0 - objective.edge) <= objective.slope_tolerance:
        return 1.0
    # scipy.optimize costs ~0.3 s to import, and every job imports this module through the store:
    # it loads when a progress is first minimised, not with the module
    import scipy.optimize

    return float(scipy.optimize.brentq(objective.slope, objective.edge, 1.0 - objective.edge, xtol=1e-15,
                                       rtol=4 * np.finfo(float).eps, maxiter=200))


def progress_many(P_stack, labels, n_classes, mode="angle"):
    """progress() of each of the M points of P_stack (M, N, C) in the given mode; returns (M,) float64."""
    objective_class = _objective_class(mode)
    labels = _check_labels(labels, n_classes)
    P_stack = np.asarray(P_stack)
    if P_stack.ndim != 3:
        raise ValueError(f"P_stack must be (M, N, C), got {P_stack.shape}")
    result = np.empty(P_stack.shape[0], dtype=np.float64)
    for m in range(P_stack.shape[0]):
        c1, c2 = _overlaps_with_endpoints(P_stack[m], labels, int(n_classes))
        result[m] = _minimise(objective_class(c1, c2, int(n_classes)))
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
