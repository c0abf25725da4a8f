"""Geodesic P0 -> P*, reference points, progress (both modes), distance to truth (research/paper.md sections 4, 9).

Distances are computed with a small float64 helper here, independent of inpca.distances.
"""

import numpy as np
import pytest
import scipy.optimize

from inpca.geodesic import (
    CAP,
    PROGRESS_MODES,
    distance_to_truth,
    geodesic,
    ignorance,
    progress,
    progress_many,
    reference_points,
    truth,
)

C = 10
THETA = 1.2490458  # arccos(1/sqrt(10))
THETA_EXACT = np.arccos(1 / np.sqrt(C))


pytestmark = pytest.mark.usefixtures("single_threaded_blas")


def bhattacharyya(P, Q):
    """d_B(P, Q) = -(1/N) sum_n log sum_c sqrt(p_nc q_nc), float64, BC = 0 capped at 100."""
    bc = np.sum(np.sqrt(np.asarray(P, np.float64) * np.asarray(Q, np.float64)), axis=-1)
    with np.errstate(divide="ignore"):
        terms = -np.log(np.clip(bc, 0.0, 1.0))
    return float(np.mean(np.minimum(terms, 100.0)))


@pytest.fixture
def labels():
    return np.array([3, 0, 9, 3, 5, 1, 7])


@pytest.fixture
def endpoints(labels):
    return ignorance(labels.size, C, np.float64), truth(labels, C, np.float64)


def test_ignorance_and_truth(labels):
    P0 = ignorance(4, C)
    assert P0.shape == (4, C) and P0.dtype == np.float32
    np.testing.assert_allclose(P0, 0.1)
    Pstar = truth(labels, C, dtype=np.float64)
    assert Pstar.shape == (labels.size, C) and Pstar.dtype == np.float64
    np.testing.assert_array_equal(Pstar.argmax(1), labels)
    np.testing.assert_array_equal(Pstar.sum(1), 1.0)
    with pytest.raises(ValueError):
        truth([0, 10], C)


def test_angle_and_endpoint_distance(endpoints):
    P0, Pstar = endpoints
    theta = np.arccos(np.sum(np.sqrt(P0 * Pstar), axis=1))
    np.testing.assert_allclose(theta, THETA, atol=1e-7)
    assert bhattacharyya(P0, Pstar) == pytest.approx(1.1512925, abs=1e-7)  # 1/2 ln 10


@pytest.mark.parametrize("t, expected", [(0.1, 0.0078209), (0.25, 0.0495671), (0.5, 0.2091886),
                                         (0.75, 0.5236039), (0.9, 0.8394426)])
def test_distance_along_geodesic(endpoints, t, expected):
    P0, Pstar = endpoints
    Pt = geodesic(P0, Pstar, [t])[0]
    assert bhattacharyya(P0, Pt) == pytest.approx(expected, abs=1e-7)
    assert bhattacharyya(P0, Pt) == pytest.approx(-np.log(np.cos(t * THETA)), abs=1e-7)
    # mirror image from the other end
    assert bhattacharyya(Pt, Pstar) == pytest.approx(-np.log(np.cos((1 - t) * THETA)), abs=1e-7)


def test_class_probabilities_on_geodesic(endpoints, labels):
    P0, Pstar = endpoints
    points = geodesic(P0, Pstar, [0.25, 0.5, 0.75])
    assert points.shape == (3, labels.size, C) and points.dtype == np.float64
    rows = np.arange(labels.size)
    for point, true_p, other_p in zip(points, [0.3509162, 0.6581139, 0.9056211],
                                      [0.0721204, 0.0379873, 0.0104865]):
        np.testing.assert_allclose(point[rows, labels], true_p, atol=1e-7)
        others = point[~Pstar.astype(bool)]
        np.testing.assert_allclose(others, other_p, atol=1e-7)
        np.testing.assert_allclose(point.sum(1), 1.0, atol=1e-15)
    # float32 inputs give float32 output with the same values to float32 precision
    p32 = geodesic(ignorance(labels.size, C), truth(labels, C), [0.5])
    assert p32.dtype == np.float32
    np.testing.assert_allclose(p32[0], points[1], atol=1e-7)


def test_general_geodesic_between_random_models():
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(4), size=20)
    Q = rng.dirichlet(np.full(4, 0.3), size=20)
    Q[3] = P[3]  # a sample with theta = 0 is copied
    ts = np.array([0.0, 0.2, 0.7, 1.0])
    points = geodesic(P, Q, ts)
    np.testing.assert_allclose(points[0], P, atol=1e-14)
    np.testing.assert_allclose(points[-1], Q, atol=1e-14)
    np.testing.assert_allclose(points[:, 3], np.broadcast_to(P[3], (4, 4)), atol=1e-15)
    # constant speed in every sphere: BC_n(P_s, P_t) = cos(|t - s| theta_n)
    theta = np.arccos(np.clip(np.sum(np.sqrt(P * Q), 1), 0, 1))
    bc = np.sum(np.sqrt(points[1] * points[2]), 1)
    np.testing.assert_allclose(bc, np.cos(0.5 * theta), atol=1e-12)
    with pytest.raises(ValueError):
        geodesic(P, Q[:5], ts)


def test_reference_points(labels, endpoints):
    points, names, ts = reference_points(labels, C, n_geodesic=100)
    assert points.shape == (101, labels.size, C) and points.dtype == np.float32
    assert len(names) == 101 and names[0] == "P0" and names[-1] == "P*"
    assert set(names[1:-1]) == {"geodesic"}
    np.testing.assert_allclose(ts, np.linspace(0, 1, 101), atol=1e-15)
    np.testing.assert_array_equal(points[0], ignorance(labels.size, C))
    np.testing.assert_array_equal(points[-1], truth(labels, C))
    P0, Pstar = endpoints
    np.testing.assert_allclose(points[37], geodesic(P0, Pstar, [0.37])[0], atol=1e-7)
    small, small_names, small_ts = reference_points(labels, C, n_geodesic=4)
    assert small.shape[0] == 5 and small_names == ["P0", "geodesic", "geodesic", "geodesic", "P*"]
    np.testing.assert_allclose(small_ts, [0, 0.25, 0.5, 0.75, 1])


@pytest.mark.parametrize("mode", PROGRESS_MODES)
def test_progress_is_exact_on_the_geodesic(endpoints, labels, mode):
    P0, Pstar = endpoints
    for lam in [0.37, 0.01, 0.5, 0.99, 1e-9, 1 - 1e-9]:
        point = geodesic(P0, Pstar, [lam])[0]
        assert progress(point, labels, C, mode=mode) == pytest.approx(lam, abs=1e-12)
    # stored float32 predictions: limited by float32 rounding of the point only
    point32 = geodesic(ignorance(labels.size, C), truth(labels, C), [0.37])[0]
    assert progress(point32, labels, C, mode=mode) == pytest.approx(0.37, abs=1e-6)


@pytest.mark.parametrize("mode", PROGRESS_MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_progress_of_endpoints_is_exact(labels, dtype, mode):
    assert progress(ignorance(labels.size, C, dtype), labels, C, mode=mode) == 0.0
    assert progress(truth(labels, C, dtype), labels, C, mode=mode) == 1.0


def test_progress_default_mode_is_angle(labels):
    assert PROGRESS_MODES[0] == "angle"
    noise = np.random.default_rng(8).dirichlet(np.ones(C), size=labels.size)
    P = 0.5 * truth(labels, C, np.float64) + 0.5 * noise
    assert progress(P, labels, C) == progress(P, labels, C, mode="angle")


def test_progress_rejects_unknown_mode(labels):
    P = ignorance(labels.size, C)
    with pytest.raises(ValueError, match="mode"):
        progress(P, labels, C, mode="prod")
    with pytest.raises(ValueError, match="mode"):
        progress_many(P[None], labels, C, mode="euclidean")


@pytest.mark.parametrize("mode", PROGRESS_MODES)
def test_progress_is_monotone_along_geodesic(labels, mode):
    points, _, ts = reference_points(labels, C, n_geodesic=100)
    lam = progress_many(points, labels, C, mode=mode)
    assert lam.shape == (101,)
    assert lam[0] == 0.0 and lam[-1] == 1.0
    assert np.all(np.diff(lam) > 0)
    np.testing.assert_allclose(lam, ts, atol=1e-6)


def grid_objectives(P, labels, ts):
    """Both progress objectives on the grid ts, built from the closed-form geodesic of P0 -> P*:
    per sample sqrt gamma_n(t) = w0(t) sqrt P0_n + w1(t) sqrt P*_n, so <sqrt gamma_n(t), sqrt p_n> =
    w0(t) cos1_n + w1(t) cos2_n with cos1_n = <sqrt P0_n, sqrt p_n>, cos2_n = <sqrt P*_n, sqrt p_n>.
    Returns (summed angle, d_B), each of shape (len(ts),)."""
    sqrt_p = np.sqrt(P)
    cos1 = np.clip(sqrt_p.sum(1) / np.sqrt(C), 0, 1)
    cos2 = np.clip(sqrt_p[np.arange(labels.size), labels], 0, 1)
    ts = np.asarray(ts, dtype=np.float64)[:, None]
    bc = (np.sin((1 - ts) * THETA_EXACT) * cos1 + np.sin(ts * THETA_EXACT) * cos2) / np.sin(THETA_EXACT)
    bc = np.clip(bc, 0, 1)
    angle = np.arccos(bc).sum(1)
    with np.errstate(divide="ignore"):
        bhattacharyya_distance = np.mean(np.minimum(-np.log(bc), 100.0), axis=1)
    return angle, bhattacharyya_distance


def off_geodesic_models(labels, seed):
    """Random Dirichlet models, some pulled towards the truth so that the minimiser is interior."""
    rng = np.random.default_rng(seed)
    Pstar = truth(labels, C, np.float64)
    models = [rng.dirichlet(np.full(C, a), size=labels.size) for a in (0.3, 1.0, 5.0)]
    for weight in (0.2, 0.5, 0.8, 0.95):
        models.append(weight * Pstar + (1 - weight) * rng.dirichlet(np.ones(C), size=labels.size))
    return models


@pytest.mark.parametrize("mode", PROGRESS_MODES)
def test_progress_matches_grid_search(labels, mode):
    """lambda against brute force on 20,001 values of t: within one grid step of the grid's argmin,
    and its objective no larger than the grid minimum (the grid cannot beat the exact minimiser)."""
    grid = np.linspace(0, 1, 20001)
    spacing = grid[1] - grid[0]
    interior = 0
    for P in off_geodesic_models(labels, seed=3):
        lam = progress(P, labels, C, mode=mode)
        on_grid = grid_objectives(P, labels, grid)[PROGRESS_MODES.index(mode)]
        at_lam = grid_objectives(P, labels, [lam])[PROGRESS_MODES.index(mode)][0]
        assert abs(lam - grid[np.argmin(on_grid)]) <= spacing
        assert at_lam <= on_grid.min() + 1e-12
        interior += 0.0 < lam < 1.0
    assert interior >= 4  # the tilted models are not all clamped to an endpoint


def test_bhattacharyya_progress_matches_bounded_minimisation(labels):
    """Off the geodesic, lambda = argmin_t d_B(gamma(t), P) with the objective built from scratch."""
    P0, Pstar = ignorance(labels.size, C, np.float64), truth(labels, C, np.float64)

    def objective(t, P):
        return bhattacharyya(geodesic(P0, Pstar, [t])[0], P)

    for P in off_geodesic_models(labels, seed=4):
        lam = progress(P, labels, C, mode="bhattacharyya")
        reference = scipy.optimize.minimize_scalar(objective, bounds=(0, 1), args=(P,), method="bounded",
                                                   options={"xatol": 1e-10})
        assert objective(lam, P) <= reference.fun + 1e-12
        assert lam == pytest.approx(reference.x, abs=1e-5)


def test_progress_modes_differ_off_the_geodesic(labels):
    # both solvers are exact to ~1e-15, so differences of 1e-4 are the objectives', not rounding
    differences = [abs(progress(P, labels, C, mode="angle") - progress(P, labels, C, mode="bhattacharyya"))
                   for P in off_geodesic_models(labels, seed=5)[3:]]
    assert min(differences) > 1e-4
    # Four samples at P*, three at P0: each angle term is theta |t - t_n|, so the four pull harder and
    # lambda = 1; d_B = -log cos is flat at each sample's own end, so the minimum is interior.
    split = truth(labels, C, np.float64)
    split[4:] = 1.0 / C
    assert progress(split, labels, C, mode="angle") == 1.0
    assert 0.5 < progress(split, labels, C, mode="bhattacharyya") < 0.7


def test_progress_handles_zero_overlap(labels):
    P = truth((labels + 1) % C, C, np.float64)  # every sample confidently wrong: p[y] = 0
    for mode in PROGRESS_MODES:
        lam = progress(P, labels, C, mode=mode)
        assert np.isfinite(lam) and 0.0 <= lam < 1.0
    mixed = truth(labels, C, np.float64)
    mixed[0] = np.roll(mixed[0], 1)  # one wrong one-hot sample among correct ones
    # d_B: the wrong sample's -log BC grows without bound towards t = 1, so lambda stays inside.
    lam_mixed = progress(mixed, labels, C, mode="bhattacharyya")
    assert np.isfinite(lam_mixed) and 0.0 < lam_mixed < 1.0
    # angle: each term is at most pi/2; six correct samples pull with slope -theta each, the wrong
    # one pushes back with theta / tan(theta) = 0.42 at t = 1, so the minimum is at P*.
    assert progress(mixed, labels, C, mode="angle") == 1.0


@pytest.mark.parametrize("mode", PROGRESS_MODES)
def test_progress_many_matches_progress(labels, mode):
    rng = np.random.default_rng(5)
    stack = rng.dirichlet(np.full(C, 0.5), size=(6, labels.size)).astype(np.float32)
    expected = [progress(P, labels, C, mode=mode) for P in stack]
    np.testing.assert_array_equal(progress_many(stack, labels, C, mode=mode), expected)


def test_distance_to_truth(labels, endpoints):
    P0, Pstar = endpoints
    rng = np.random.default_rng(2)
    P = rng.dirichlet(np.ones(C), size=labels.size)
    stack = np.stack([P0, P, Pstar])
    d = distance_to_truth(stack, labels)
    assert d.shape == (3,)
    assert d[0] == pytest.approx(1.1512925, abs=1e-7)
    assert d[2] == 0.0
    half_cross_entropy = 0.5 * np.mean(-np.log(P[np.arange(labels.size), labels]))
    assert d[1] == pytest.approx(half_cross_entropy, rel=1e-12)
    assert d[1] == pytest.approx(bhattacharyya(P, Pstar), rel=1e-12)
    assert distance_to_truth(P.astype(np.float32), labels)[0] == pytest.approx(d[1], rel=1e-6)


def test_distance_to_truth_caps_zero_overlap(labels):
    wrong = truth((labels + 1) % C, C)
    np.testing.assert_allclose(distance_to_truth(wrong[None], labels), [CAP])
    half = truth(labels, C)
    half[0] = np.roll(half[0], 1)
    expected = CAP / labels.size
    np.testing.assert_allclose(distance_to_truth(half[None], labels), [expected])
