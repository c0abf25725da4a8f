"""Reindexing runs by progress or accuracy and comparing them at equal progress (inpca.trajectories).

Reference distances are computed with a small float64 helper; `distances_at_equal_progress` uses the
float32 kernels of inpca.distances, which resolve a distance to ~1e-7.
"""

import math
import sys

import numpy as np
import pytest

from inpca.distances import pairwise
from inpca.geodesic import geodesic, ignorance, progress_many, truth
from inpca.trajectories import (
    INDICES,
    distances_at_equal_progress,
    first_crossing,
    geodesic_trajectory,
    index_grid,
    index_values,
    interpolate_rows,
    model_at,
    reindex,
    reindex_metrics,
)

C = 10
N = 200
# Resolution of the float32 distance kernels (inpca.distances: ~1e-7 absolute).
KERNEL_RESOLUTION = 3e-7

pytestmark = pytest.mark.usefixtures("single_threaded_blas")


def bhattacharyya(P, Q):
    """d_B between matching points of P and Q (..., N, C), float64."""
    bc = np.sum(np.sqrt(np.asarray(P, np.float64) * np.asarray(Q, np.float64)), axis=-1)
    return -np.mean(np.log(np.clip(bc, 1e-300, 1.0)), axis=-1)


@pytest.fixture(scope="module")
def labels():
    return np.random.default_rng(0).integers(0, C, N)


@pytest.fixture(scope="module")
def endpoints(labels):
    return ignorance(N, C, np.float64), truth(labels, C, np.float64)


def random_checkpoints(count, seed, dtype=np.float64):
    return np.random.default_rng(seed).dirichlet(np.full(C, 0.7), size=(count, N)).astype(dtype)


# --------------------------------------------------------------------------------------------
# Index grid and index values
# --------------------------------------------------------------------------------------------

def test_index_grid():
    ts = index_grid(4)
    assert ts.dtype == np.float64 and ts.shape == (4,)
    np.testing.assert_array_equal(ts, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(index_grid(1), [1.0])
    assert index_grid(100)[-1] == 1.0 and index_grid(100)[12] == 0.13
    with pytest.raises(ValueError, match="points"):
        index_grid(0)


def test_index_values():
    progress = np.array([0.0, 0.2, 0.9], dtype=np.float32)
    values = index_values(progress, None, "progress")
    assert values.dtype == np.float64
    np.testing.assert_array_equal(values, progress.astype(np.float64))
    accuracy = index_values(None, [1.2, 1.0, 0.25, 0.0, -0.1], "accuracy")
    assert accuracy.dtype == np.float64
    np.testing.assert_allclose(accuracy, [0.0, 0.0, 0.75, 1.0, 1.0], atol=1e-15)
    assert INDICES == ("progress", "accuracy")
    with pytest.raises(ValueError, match="index"):
        index_values([0.1], [0.9], "loss")


# --------------------------------------------------------------------------------------------
# Reindexing
# --------------------------------------------------------------------------------------------

def test_geodesic_trajectory(labels, endpoints):
    P0, Pstar = endpoints
    trajectory = geodesic_trajectory(labels, C, [0.0, 0.4, 1.0])
    assert trajectory.shape == (3, N, C) and trajectory.dtype == np.float64
    np.testing.assert_array_equal(trajectory[0], P0)
    np.testing.assert_array_equal(trajectory[2], Pstar)
    np.testing.assert_allclose(trajectory[1], geodesic(P0, Pstar, [0.4])[0], atol=1e-15)


@pytest.mark.parametrize("checkpoint_ts", [[0.0, 0.13, 0.4, 0.77, 1.0],
                                           [0.0, 0.05, 0.31, 0.5, 0.62, 0.9, 0.97, 1.0]])
def test_run_on_the_geodesic_reindexes_onto_it(labels, endpoints, checkpoint_ts):
    """Checkpoints on the geodesic indexed by their t: each interpolation runs along the same great
    circles at constant speed, so the reindexed run is gamma(t_k) itself, whatever the schedule."""
    P0, Pstar = endpoints
    checkpoints = geodesic(P0, Pstar, checkpoint_ts)
    ts = index_grid(100)  # includes 0.13, 0.4, 0.77, 0.5, 0.62, 0.9 and 1 exactly
    reindexed = reindex(checkpoints, checkpoint_ts, ts)
    assert reindexed.shape == (100, N, C) and reindexed.dtype == np.float64
    expected = geodesic_trajectory(labels, C, ts)
    np.testing.assert_allclose(reindexed, expected, rtol=0, atol=1e-12)
    assert bhattacharyya(reindexed, expected).max() < 1e-9
    dists = distances_at_equal_progress(reindexed[None], expected[None])
    assert dists.shape == (100, 1, 1)
    assert np.abs(dists).max() < KERNEL_RESOLUTION


class DetourCurve:
    """A smooth curve from P0 to P* that is not the geodesic: per sample
    sqrt p(s) proportional to sqrt gamma(s) + bulge sin(pi s) sqrt d, with d a fixed random model.
    The added vector is >= 0 and vanishes at both ends, so p(s) is a probability, p(0) = P0, p(1) = P*."""

    def __init__(self, labels, bulge, seed):
        self.start = ignorance(N, C, np.float64)
        self.end = truth(labels, C, np.float64)
        self.sqrt_detour = np.sqrt(np.random.default_rng(seed).dirichlet(np.ones(C), size=N))
        self.bulge = bulge

    def __call__(self, s):
        s = np.asarray(s, dtype=np.float64)
        root = np.sqrt(geodesic(self.start, self.end, s, dtype=np.float64))
        root += self.bulge * np.sin(np.pi * s)[:, None, None] * self.sqrt_detour
        points = root ** 2
        return points / points.sum(axis=-1, keepdims=True)


def reindexed_run(curve, labels, schedule, ts):
    """The curve recorded at the parameters `schedule`, reindexed by its own (default, angle) progress."""
    checkpoints = curve(schedule)
    return reindex(checkpoints, progress_many(checkpoints, labels, C), ts)


def test_same_curve_at_different_schedules_coincides_at_equal_progress(labels):
    """The same path recorded at 30 evenly spaced vs 47 unevenly spaced checkpoints.

    Bound: between checkpoints h apart in s, the slerp deviates from the curve by an angle O(h^2)
    per sample (chord vs arc of a curved path), and its progress differs from the curve's by O(h^2),
    so each reindexed point is O(h^2) in angle from the curve's point at equal progress and
    d_B ~ angle^2 / 2 = O(h^4) between the two runs. With h <= 0.035 here, h^4 = 1.5e-6: the float64
    distance must be below 1e-6, fall ~16x when both schedules get twice as dense, and be far below
    the distance to a different curve (a larger bulge) at equal progress.
    """
    curve = DetourCurve(labels, bulge=0.3, seed=1)
    fine = np.linspace(0, 1, 2001)
    assert np.all(np.diff(progress_many(curve(fine), labels, C)) > 0)  # premise: progress is monotone
    ts = index_grid(50)
    schedule_a, schedule_b = np.linspace(0, 1, 30), np.linspace(0, 1, 47) ** 1.5
    run_a = reindexed_run(curve, labels, schedule_a, ts)
    run_b = reindexed_run(curve, labels, schedule_b, ts)
    same_curve = bhattacharyya(run_a, run_b)
    assert same_curve.max() < 1e-6

    denser_a = reindexed_run(curve, labels, np.linspace(0, 1, 59), ts)
    denser_b = reindexed_run(curve, labels, np.linspace(0, 1, 93) ** 1.5, ts)
    assert bhattacharyya(denser_a, denser_b).max() < same_curve.max() / 8

    kernel = distances_at_equal_progress(np.stack([run_a]), np.stack([run_b]))[:, 0, 0]
    assert kernel.max() < 1e-6
    np.testing.assert_allclose(kernel, same_curve, atol=KERNEL_RESOLUTION)

    other_curve = reindexed_run(DetourCurve(labels, bulge=0.6, seed=1), labels, schedule_b, ts)
    different = distances_at_equal_progress(run_a[None], other_curve[None])[:, 0, 0]
    assert different.max() > 1e-3
    assert same_curve.max() < 1e-3 * different.max()


def test_reindex_interpolates_between_the_bracketing_checkpoints():
    checkpoints = random_checkpoints(4, seed=2, dtype=np.float32)
    index = [0.0, 0.2, 0.6, 0.9]
    reindexed = reindex(checkpoints, index, [0.5, 0.2, 0.0])
    assert reindexed.dtype == np.float64
    np.testing.assert_allclose(reindexed[0], geodesic(checkpoints[1], checkpoints[2], [0.75], dtype=np.float64)[0],
                               rtol=0, atol=1e-15)
    np.testing.assert_allclose(reindexed.sum(axis=-1), 1.0, atol=1e-14)
    # t equal to a checkpoint's index is that checkpoint (fraction 0 of the next interval)
    np.testing.assert_allclose(reindexed[1], checkpoints[1], atol=1e-7)
    np.testing.assert_allclose(reindexed[2], checkpoints[0], atol=1e-7)


def test_reindex_before_the_first_and_past_the_last_checkpoint():
    checkpoints = random_checkpoints(3, seed=3, dtype=np.float32)
    reindexed = reindex(checkpoints, [0.2, 0.3, 0.6], [0.1, 0.2 - 1e-12, 0.6, 0.7, 1.0])
    # the run starts past t: its first checkpoint, as stored
    np.testing.assert_array_equal(reindexed[0], checkpoints[0].astype(np.float64))
    np.testing.assert_array_equal(reindexed[1], checkpoints[0].astype(np.float64))
    # nothing exceeds t: the last checkpoint is held (not extrapolated), as stored
    for k in (2, 3, 4):
        np.testing.assert_array_equal(reindexed[k], checkpoints[2].astype(np.float64))


def test_reindex_plateau_of_equal_indices():
    """Checkpoints 1, 2, 3 share the index 0.5. With the first checkpoint past t as the end of the
    interval, an interval never has equal ends: below 0.5 the run moves towards the earliest plateau
    checkpoint (1), at t = 0.5 it is the latest (3, fraction 0 towards checkpoint 4), and the inner
    checkpoint 2 is never used."""
    checkpoints = random_checkpoints(5, seed=4)
    index = [0.0, 0.5, 0.5, 0.5, 1.0]
    reindexed = reindex(checkpoints, index, [0.5 - 1e-9, 0.5, 0.75])
    assert np.all(np.isfinite(reindexed))
    np.testing.assert_allclose(reindexed[0], checkpoints[1], atol=1e-7)
    np.testing.assert_allclose(reindexed[1], checkpoints[3], atol=1e-14)
    np.testing.assert_allclose(reindexed[2], geodesic(checkpoints[3], checkpoints[4], [0.5])[0], atol=1e-15)


def test_reindex_non_monotone_index_uses_the_first_checkpoint_past_t():
    """Index 0, 0.6, 0.3, 0.8, 1 (e.g. accuracy that drops after checkpoint 1): t = 0.5 is first
    exceeded at checkpoint 1, so the later pass through 0.5 (checkpoints 2 -> 3) is not used; t = 0.7
    is first exceeded at checkpoint 3, interpolated from checkpoint 2 at (0.7 - 0.3) / (0.8 - 0.3)."""
    checkpoints = random_checkpoints(5, seed=5)
    index = np.array([0.0, 0.6, 0.3, 0.8, 1.0])
    reindexed = reindex(checkpoints, index, [0.5, 0.7])
    np.testing.assert_allclose(reindexed[0], geodesic(checkpoints[0], checkpoints[1], [0.5 / 0.6])[0], atol=1e-15)
    np.testing.assert_allclose(reindexed[1], geodesic(checkpoints[2], checkpoints[3], [0.8])[0], atol=1e-15)


def test_reindex_by_accuracy(labels):
    checkpoints = random_checkpoints(3, seed=6)
    train_error = np.array([0.9, 0.5, 0.1])
    index = index_values(None, train_error, "accuracy")
    reindexed = reindex(checkpoints, index, [0.3, 0.9, 1.0])
    np.testing.assert_allclose(reindexed[0], geodesic(checkpoints[0], checkpoints[1], [0.5])[0], atol=1e-15)
    # nothing exceeds accuracy 0.9 (the last value) or 1: the last checkpoint is held
    np.testing.assert_array_equal(reindexed[1], checkpoints[2])
    np.testing.assert_array_equal(reindexed[2], checkpoints[2])


def test_reindex_rejects_bad_arguments():
    checkpoints = random_checkpoints(3, seed=7)
    with pytest.raises(ValueError, match="index"):
        reindex(checkpoints, [0.0, 0.5], [0.5])
    with pytest.raises(ValueError, match="index"):
        reindex(checkpoints, [0.0, np.nan, 1.0], [0.5])
    with pytest.raises(ValueError, match="probs"):
        reindex(checkpoints[0], [0.0], [0.5])


# --------------------------------------------------------------------------------------------
# Metrics of the reindexed models
# --------------------------------------------------------------------------------------------

def test_reindex_metrics_of_reference_points():
    labels = np.arange(N) % C  # balanced: each class N / C times
    P0, Pstar = ignorance(N, C, np.float64), truth(labels, C, np.float64)
    wrong = truth((labels + 1) % C, C, np.float64)
    one_wrong = Pstar.copy()
    one_wrong[0] = wrong[0]
    loss, error = reindex_metrics(np.stack([Pstar, P0, wrong, one_wrong]), labels)
    assert loss.dtype == error.dtype == np.float64 and loss.shape == error.shape == (4,)
    assert loss[0] == 0.0 and error[0] == 0.0
    assert loss[1] == pytest.approx(math.log(C), abs=1e-14)
    # ties: argmax takes the first class, so the uniform P0 predicts class 0 everywhere
    assert error[1] == np.mean(labels != 0) == pytest.approx((C - 1) / C, abs=1e-15)
    # p[y] = 0 is floored at 1e-45: -log(1e-45) = 103.6 per sample instead of inf
    assert loss[2] == pytest.approx(-math.log(1e-45), rel=1e-12) and error[2] == 1.0
    assert loss[3] == pytest.approx(-math.log(1e-45) / N, rel=1e-12) and error[3] == 1 / N


def test_reindex_metrics_match_direct_computation(labels):
    checkpoints = random_checkpoints(3, seed=8, dtype=np.float32)
    reindexed = reindex(checkpoints, [0.0, 0.4, 0.8], index_grid(5))
    loss, error = reindex_metrics(reindexed, labels)
    for k, point in enumerate(reindexed):
        assert loss[k] == pytest.approx(-np.mean(np.log(point[np.arange(N), labels])), rel=1e-14)
        assert error[k] == np.mean(point.argmax(1) != labels)
    with pytest.raises(ValueError, match="probs_reindexed"):
        reindex_metrics(reindexed, labels[:-1])


# --------------------------------------------------------------------------------------------
# Distances at equal progress
# --------------------------------------------------------------------------------------------

def test_distances_at_equal_progress_shapes_and_values():
    rng = np.random.default_rng(9)
    A = rng.dirichlet(np.ones(C), size=(2, 3, 50)).astype(np.float32)  # 2 runs, T = 3
    B = rng.dirichlet(np.ones(C), size=(4, 3, 50))
    within = distances_at_equal_progress(A)
    assert within.shape == (3, 2, 2) and within.dtype == np.float64
    np.testing.assert_array_equal(within, np.transpose(within, (0, 2, 1)))
    np.testing.assert_array_equal(within[:, [0, 1], [0, 1]], 0.0)
    across = distances_at_equal_progress(A, B, metric="hellinger")
    assert across.shape == (3, 2, 4)
    for k in range(3):
        np.testing.assert_array_equal(within[k], pairwise(A[:, k], device="cpu"))
        np.testing.assert_array_equal(across[k], pairwise(A[:, k], B[:, k], metric="hellinger", device="cpu"))
        np.testing.assert_allclose(within[k, 0, 1], bhattacharyya(A[0, k], A[1, k]), atol=KERNEL_RESOLUTION)
    with pytest.raises(ValueError, match="B"):
        distances_at_equal_progress(A, B[:, :2])
    with pytest.raises(ValueError, match="A"):
        distances_at_equal_progress(A[0])


# --------------------------------------------------------------------------------------------
# First crossing
# --------------------------------------------------------------------------------------------

def test_first_crossing():
    values = [0.0, 0.2, 0.6, 0.9, 0.5]
    times = [0.0, 10.0, 20.0, 30.0, 40.0]
    assert first_crossing(values, times, 0.4) == pytest.approx(15.0, abs=1e-12)
    assert first_crossing(values, times, 0.6) == 20.0  # reached exactly at a checkpoint
    assert first_crossing(values, times, 0.9) == 30.0
    assert math.isnan(first_crossing(values, times, 0.95))  # never reached
    assert first_crossing(values, times, 0.0) == 0.0  # already there at the start
    assert first_crossing([0.3, 0.5], [5.0, 7.0], 0.1) == 5.0
    # non-monotone values: the first time counts
    assert first_crossing([0.0, 0.5, 0.3, 0.7], [0, 1, 2, 3], 0.4) == pytest.approx(0.8, abs=1e-12)
    with pytest.raises(ValueError, match="values"):
        first_crossing([0.1, 0.2], [0.0], 0.1)


@pytest.mark.parametrize("kernel", ["numba", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_interpolate_rows_is_model_at_for_every_row(dtype, kernel, monkeypatch):
    if kernel == "numpy":  # what runs where numba is not installed
        monkeypatch.setitem(sys.modules, "inpca.kernels.geodesic_cpu", None)
    rng = np.random.default_rng(3)
    pool = rng.dirichlet(np.full(10, 0.3), size=(6, 700)).astype(np.float32)
    pool[1, :5] = np.eye(10, dtype=np.float32)[:5]  # one-hot samples: disjoint supports, theta = pi / 2
    pool[2] = pool[3]  # checkpoints that do not move: theta = 0 on every sample
    lower = np.array([0, 1, 2, 4, 5, 0])
    upper = np.array([1, 0, 3, 4, 4, 5])  # row 3 is held (lower == upper)
    fraction = np.array([0.3, 0.999, 0.5, 0.7, 0.0, 1.0])
    got = interpolate_rows(pool, lower, upper, fraction, dtype=dtype)
    assert got.dtype == dtype and got.shape == (6, 700, 10)
    for r, (lo, up, f) in enumerate(zip(lower, upper, fraction)):
        expected = model_at(pool[lo], pool[up], lo == up, f).astype(dtype)
        np.testing.assert_allclose(got[r], expected, rtol=1e-12 if dtype == np.float64 else 0, atol=1e-15)
    assert np.array_equal(got[3], pool[4].astype(dtype))  # held exactly as stored


def test_interpolate_rows_refuses_rows_outside_the_pool():
    pool = np.full((2, 3, 4), 0.25, dtype=np.float32)
    with pytest.raises(ValueError, match="index the 2 rows"):
        interpolate_rows(pool, [0], [2], [0.5])
    with pytest.raises(ValueError, match="one length"):
        interpolate_rows(pool, [0, 1], [1], [0.5])
