"""InPCA embedding: analytic cases, reference numbers for the P0 -> P* geodesic (C = 10 classes),
dense/Lanczos agreement, streaming from HDF5, out-of-sample projection and the scikit-learn estimator
conventions.

Distance matrices are built with a small float64 helper here, independent of inpca.distances.
"""

import tracemalloc

import h5py
import numpy as np
import pytest
import scipy.sparse
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from inpca.embedding import DENSE_MAX_POINTS, InPCA, embedded_distances, explained_stress
from inpca.geodesic import geodesic, ignorance, truth

C = 10


pytestmark = pytest.mark.usefixtures("single_threaded_blas")


def bhattacharyya_matrix(P):
    """D_ij = -(1/N) sum_n log sum_c sqrt(p_inc p_jnc) for a stack P (M, N, C), float64."""
    S = np.sqrt(np.asarray(P, dtype=np.float64))
    bc = np.einsum("inc,jnc->ijn", S, S)
    D = -np.log(np.clip(bc, 1e-300, 1.0)).mean(axis=-1)
    np.fill_diagonal(D, 0.0)
    return 0.5 * (D + D.T)


def geodesic_distances(ts, labels=(3,)):
    labels = np.asarray(labels)
    points = geodesic(ignorance(labels.size, C, np.float64), truth(labels, C, np.float64), ts)
    return bhattacharyya_matrix(points)


def fan_of_geodesics(seed: int, curves: int, points_per_curve: int):
    """A non-Euclidean D with both signs among its top eigenvalues: `curves` geodesics from ignorance
    to random models (N = 6 samples, C = 5), `points_per_curve` points each, in random order;
    Bhattacharyya distances computed here in float64, independently of inpca.distances."""
    rng = np.random.default_rng(seed)
    n_samples, n_classes = 6, 5
    start = ignorance(n_samples, n_classes, np.float64)
    points = np.concatenate([
        geodesic(start, rng.dirichlet(np.full(n_classes, 0.2), size=n_samples), np.linspace(0, 1, points_per_curve))
        for _ in range(curves)])
    return bhattacharyya_matrix(points[rng.permutation(len(points))])


@pytest.fixture(scope="module")
def trajectory_distances():
    """600 points on six geodesics (fan_of_geodesics)."""
    return fan_of_geodesics(1, 6, 100)


# -- the P0 -> P* geodesic -----------------------------------------------------------------------

@pytest.mark.parametrize("labels", [(3,), (3, 0, 7, 7, 1)])
def test_geodesic_101_points(labels):
    D = geodesic_distances(np.linspace(0, 1, 101), labels)
    model = InPCA(n_components=None).fit(D)
    assert model.solver_ == "dense"
    lam = model.eigenvalues_
    np.testing.assert_allclose(lam[:4], [8.2381, -0.65037, 0.064718, -0.0071202], rtol=6e-5)
    np.testing.assert_allclose(model.explained_stress_[:4], [0.920907, 0.992121, 0.999133, 0.999899],
                               atol=6e-7)
    assert int(np.sum(lam < -1e-12)) == 7
    # first axis alone: endpoint squared distance 1.1295 instead of the true 1.1513
    first = embedded_distances(model.coords_[:, :1], lam[:1])
    assert first[0, -1] == pytest.approx(1.1295, abs=1e-4)


def test_geodesic_100_points():
    model = InPCA(n_components=4).fit(geodesic_distances(np.linspace(0, 1, 100)))
    np.testing.assert_allclose(model.eigenvalues_[:2], [8.1586, -0.64429], rtol=6e-5)
    assert model.explained_stress_[0] == pytest.approx(0.920883, abs=6e-7)


def test_geodesic_lanczos_matches_dense():
    D = geodesic_distances(np.linspace(0, 1, 101))
    dense = InPCA(n_components=4, solver="dense").fit(D)
    lanczos = InPCA(n_components=4, solver="lanczos").fit(D)
    assert lanczos.solver_ == "lanczos"
    np.testing.assert_allclose(lanczos.eigenvalues_, dense.eigenvalues_, rtol=1e-10)
    np.testing.assert_allclose(lanczos.explained_stress_, dense.explained_stress_, atol=1e-12)


# -- analytic cases ------------------------------------------------------------------------------

def test_full_embedding_reproduces_distances(trajectory_distances):
    D = trajectory_distances
    model = InPCA(n_components=None).fit(D)
    lam = model.eigenvalues_
    keep = np.abs(lam) > 1e-12 * np.abs(lam[0])
    assert (lam[keep] < 0).any() and (lam[keep] > 0).any()
    D_hat = embedded_distances(model.coords_[:, keep], lam[keep])
    np.testing.assert_allclose(D_hat, D, atol=1e-12)
    # 1 - sqrt(rounding of 1 - sum lambda^2 / ||W||^2 ~ 1e-16) = 1 - 1e-8
    assert model.explained_stress_[-1] == pytest.approx(1.0, abs=1e-7)
    # W 1 = 0: eigenvectors of eigenvalues well away from 0 are orthogonal to the constant vector
    # (an eigenvector mixes with it at the level eps ||W|| / |lambda|)
    large = np.abs(lam) > 1e-3 * np.abs(lam[0])
    np.testing.assert_allclose(model.components_[:, large].sum(0), 0.0, atol=1e-10)

    small = InPCA(n_components=None).fit(geodesic_distances(np.linspace(0, 1, 101)))
    keep = np.abs(small.eigenvalues_) > 1e-14
    np.testing.assert_allclose(embedded_distances(small.coords_[:, keep], small.eigenvalues_[keep]),
                               geodesic_distances(np.linspace(0, 1, 101)), atol=1e-12)


def test_squared_euclidean_is_pca():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 3)) * [3.0, 2.0, 1.0]
    D = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    model = InPCA(n_components=6).fit(D)
    lam = model.eigenvalues_
    assert np.all(lam[:3] > 0.1)
    np.testing.assert_allclose(lam[3:], 0.0, atol=1e-10)
    assert model.explained_stress_[2] == pytest.approx(1.0, abs=1e-7)
    # the first three coordinates are the centred points up to a rotation
    Xc = X - X.mean(0)
    np.testing.assert_allclose(np.sort(lam[:3]), np.sort(np.linalg.eigvalsh(Xc.T @ Xc)), rtol=1e-10)


def test_equidistant_simplex():
    D = np.ones((3, 3)) - np.eye(3)
    model = InPCA(n_components=3).fit(D)
    np.testing.assert_allclose(model.eigenvalues_, [0.5, 0.5, 0.0], atol=1e-14)
    assert model.frobenius_norm_ == pytest.approx(np.sqrt(0.5), rel=1e-14)  # W = J / 2
    assert model.explained_stress_[0] == pytest.approx(0.2928932, abs=1e-7)
    np.testing.assert_allclose(model.explained_stress_, [1 - np.sqrt(0.5), 1.0, 1.0], atol=1e-7)


@pytest.mark.parametrize("d", [0.3, 1.1512925])
def test_two_points(d):
    model = InPCA(n_components=1).fit(np.array([[0.0, d], [d, 0.0]]))
    assert model.eigenvalues_[0] == pytest.approx(d / 2)
    np.testing.assert_allclose(np.sort(model.coords_[:, 0]), [-np.sqrt(d) / 2, np.sqrt(d) / 2], rtol=1e-14)


def test_explained_stress_function():
    lam = np.array([3.0, -2.0, 1.0])
    norm = np.sqrt(14.0 + 2.0)
    S = explained_stress(lam, norm)
    np.testing.assert_allclose(S, 1 - np.sqrt(1 - np.cumsum(lam**2) / 16.0))
    assert np.all(np.diff(S) >= 0)
    np.testing.assert_allclose(explained_stress(lam, np.sqrt(14.0))[-1], 1.0)
    np.testing.assert_array_equal(explained_stress([0.0], 0.0), [1.0])


def test_stress_non_decreasing_and_norm_direct(trajectory_distances):
    model = InPCA(n_components=30, solver="lanczos").fit(trajectory_distances)
    assert np.all(np.diff(model.explained_stress_) >= 0)
    assert np.all(np.diff(np.abs(model.eigenvalues_)) <= 0)
    full = InPCA(n_components=None).fit(trajectory_distances)
    # ||W||_F from D equals the norm implied by the full spectrum
    assert model.frobenius_norm_ == pytest.approx(np.sqrt(np.sum(full.eigenvalues_**2)), rel=1e-12)
    assert full.frobenius_norm_ == pytest.approx(model.frobenius_norm_, rel=1e-12)


def test_frobenius_norm_with_large_common_offset(trajectory_distances, monkeypatch):
    """J (c 1 1^T) J = 0, so adding a constant c to every entry leaves W unchanged but makes the
    one-pass expansion of ||W||_F cancel ~log10(c^2 M^2 / 4||W||^2) digits; the exact centred pass
    must take over and give the unchanged norm."""
    import inpca.embedding as embedding

    calls = []
    exact_pass = embedding._centred_sum_of_squares
    monkeypatch.setattr(embedding, "_centred_sum_of_squares",
                        lambda *args: calls.append(1) or exact_pass(*args))
    reference = InPCA(n_components=5, solver="lanczos").fit(trajectory_distances)
    assert not calls  # ordinary distances: one pass suffices
    shifted = InPCA(n_components=5, solver="lanczos").fit(trajectory_distances + 1e4)
    assert calls
    assert shifted.frobenius_norm_ == pytest.approx(reference.frobenius_norm_, rel=1e-12)
    np.testing.assert_allclose(shifted.eigenvalues_, reference.eigenvalues_, rtol=1e-9)
    np.testing.assert_allclose(shifted.explained_stress_, reference.explained_stress_, atol=1e-12)


# -- solvers ------------------------------------------------------------------------------------

def test_dense_and_lanczos_agree(trajectory_distances):
    D = trajectory_distances
    dense = InPCA(n_components=10, solver="dense").fit(D)
    lanczos = InPCA(n_components=10, solver="lanczos").fit(D)
    assert (dense.solver_, lanczos.solver_) == ("dense", "lanczos")
    assert lanczos.n_matvec_ > 0
    assert (dense.eigenvalues_ < 0).any()
    np.testing.assert_allclose(lanczos.eigenvalues_, dense.eigenvalues_, rtol=1e-8)
    cosines = np.abs(np.sum(lanczos.components_ * dense.components_, axis=0))
    assert np.all(cosines >= 1 - 1e-8)
    # deterministic signs make the vectors themselves agree, not just up to sign
    np.testing.assert_allclose(lanczos.components_, dense.components_, atol=1e-7)
    np.testing.assert_allclose(lanczos.coords_, dense.coords_, atol=1e-7)
    np.testing.assert_allclose(lanczos.explained_stress_, dense.explained_stress_, atol=1e-12)
    np.testing.assert_allclose(lanczos.column_means_, dense.column_means_, rtol=1e-13)
    assert lanczos.grand_mean_ == pytest.approx(dense.grand_mean_, rel=1e-13)


def test_attributes_and_sign_convention(trajectory_distances):
    model = InPCA(n_components=7).fit(trajectory_distances)
    M = len(trajectory_distances)
    assert model.eigenvalues_.shape == (7,)
    assert model.components_.shape == model.coords_.shape == (M, 7)
    assert model.explained_stress_.shape == (7,)
    np.testing.assert_allclose(model.components_.T @ model.components_, np.eye(7), atol=1e-12)
    np.testing.assert_allclose(model.coords_, model.components_ * np.sqrt(np.abs(model.eigenvalues_)))
    pivots = np.argmax(np.abs(model.components_), axis=0)
    assert np.all(model.components_[pivots, np.arange(7)] > 0)
    np.testing.assert_allclose(model.column_means_, trajectory_distances.mean(0))


def test_lanczos_is_reproducible(trajectory_distances):
    first = InPCA(n_components=5, solver="lanczos", random_state=3).fit(trajectory_distances)
    second = InPCA(n_components=5, solver="lanczos", random_state=3).fit(trajectory_distances)
    np.testing.assert_array_equal(first.eigenvalues_, second.eigenvalues_)
    np.testing.assert_array_equal(first.components_, second.components_)


def test_solver_selection():
    D = geodesic_distances(np.linspace(0, 1, 30))
    assert InPCA(n_components=3).fit(D).solver_ == "dense"  # M <= DENSE_MAX_POINTS
    assert DENSE_MAX_POINTS >= 1000
    assert InPCA(n_components=3, solver="lanczos").fit(D).solver_ == "lanczos"
    # ARPACK cannot return k >= M - 1 eigenpairs: falls back to the dense solver
    assert InPCA(n_components=29, solver="lanczos").fit(D).solver_ == "dense"
    assert InPCA(n_components=100).fit(D).eigenvalues_.shape == (30,)
    with pytest.raises(ValueError):
        InPCA().fit(np.zeros((3, 4)))
    with pytest.raises(ValueError):
        InPCA(solver="dense").fit(np.triu(np.ones((4, 4)), 1))
    with pytest.raises(ValueError, match="symmetric"):
        InPCA(n_components=2, solver="lanczos").fit(np.triu(np.ones((40, 40)), 1))


# -- streaming and out-of-sample ---------------------------------------------------------------

def test_streaming_from_hdf5_equals_in_memory(tmp_path, trajectory_distances):
    D = trajectory_distances
    path = tmp_path / "distances.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("d", data=D, chunks=(64, D.shape[1]))
        handle.create_dataset("d32", data=D.astype(np.float32))
    in_memory = InPCA(n_components=8, solver="lanczos").fit(D)
    with h5py.File(path, "r") as handle:
        # small blocks: many row-block reads per mat-vec
        streamed = InPCA(n_components=8, solver="lanczos", block_bytes=100 * 8 * D.shape[1]).fit(handle["d"])
        dense_from_file = InPCA(n_components=8, solver="dense").fit(handle["d"])
        streamed32 = InPCA(n_components=8, solver="lanczos", block_bytes=2**16).fit(handle["d32"])
        coords_from_file = streamed.transform(handle["d"])
    np.testing.assert_allclose(streamed.eigenvalues_, in_memory.eigenvalues_, rtol=1e-12)
    np.testing.assert_allclose(streamed.coords_, in_memory.coords_, atol=1e-10)
    assert streamed.frobenius_norm_ == pytest.approx(in_memory.frobenius_norm_, rel=1e-13)
    np.testing.assert_allclose(streamed.column_means_, in_memory.column_means_, rtol=1e-13)
    np.testing.assert_allclose(dense_from_file.eigenvalues_, in_memory.eigenvalues_, rtol=1e-10)
    np.testing.assert_allclose(coords_from_file, in_memory.coords_, atol=1e-10)
    # a float32 file is computed in float64: same as fitting the float32-rounded matrix in memory
    rounded = InPCA(n_components=8, solver="dense").fit(D.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(streamed32.eigenvalues_, rounded.eigenvalues_, rtol=1e-10)


def test_float32_and_strided_inputs(trajectory_distances):
    """Inputs BLAS cannot take whole go through the row-block path (upper-triangle blocks cast to
    float64 one at a time)."""
    D32 = trajectory_distances.astype(np.float32)
    lanczos = InPCA(n_components=6, solver="lanczos", block_bytes=2**18).fit(D32)
    dense = InPCA(n_components=6, solver="dense").fit(D32)
    np.testing.assert_allclose(lanczos.eigenvalues_, dense.eigenvalues_, rtol=1e-10)
    M = len(trajectory_distances)
    padded = np.zeros((M, M + 3))
    padded[:, :M] = trajectory_distances
    strided = padded[:, :M]
    assert not strided.flags.c_contiguous and not strided.flags.f_contiguous
    from_strided = InPCA(n_components=6, solver="lanczos", block_bytes=2**18).fit(strided)
    from_array = InPCA(n_components=6, solver="lanczos").fit(trajectory_distances)
    np.testing.assert_allclose(from_strided.eigenvalues_, from_array.eigenvalues_, rtol=1e-12)
    assert from_strided.frobenius_norm_ == pytest.approx(from_array.frobenius_norm_, rel=1e-13)
    # Fortran order is taken whole, like C order
    from_fortran = InPCA(n_components=6, solver="lanczos").fit(np.asfortranarray(trajectory_distances))
    np.testing.assert_allclose(from_fortran.eigenvalues_, from_array.eigenvalues_, rtol=1e-12)


@pytest.mark.parametrize("solver", ["dense", "lanczos"])
def test_transform_in_sample_returns_coords(trajectory_distances, solver):
    D = trajectory_distances
    model = InPCA(n_components=10, solver=solver).fit(D)
    assert (model.eigenvalues_ < 0).any()  # time-like axes divide by -sqrt|lambda|
    np.testing.assert_allclose(model.transform(D), model.coords_, atol=1e-10)
    # one point is a (1, M) matrix; a bare (M,) row is refused (scikit-learn's convention)
    np.testing.assert_allclose(model.transform(D[17:18])[0], model.coords_[17], atol=1e-10)
    np.testing.assert_allclose(model.transform(D[5:9].tolist()), model.coords_[5:9], atol=1e-10)
    with pytest.raises(ValueError):
        model.transform(D[:, :10])


def test_transform_places_new_geodesic_points():
    """Lazy embedding of geodesic points between the fitted ones: with all non-zero axes, the
    projection of a point equals its own in-sample coordinates if it were fitted."""
    ts_fit = np.linspace(0, 1, 51)
    ts_all = np.concatenate([ts_fit, [0.37, 0.81]])
    D_all = geodesic_distances(ts_all)
    model = InPCA(n_components=2).fit(D_all[:51, :51])
    x_new = model.transform(D_all[51:, :51])
    # the first coordinate is monotone in t along the geodesic, so the new points fall in order
    first_axis = model.coords_[:, 0] * np.sign(model.coords_[-1, 0] - model.coords_[0, 0])
    new_first = x_new[:, 0] * np.sign(model.coords_[-1, 0] - model.coords_[0, 0])
    assert np.all(np.diff(first_axis) > 0)
    for t, x in zip([0.37, 0.81], new_first):
        i = np.searchsorted(ts_fit, t)
        assert first_axis[i - 1] < x < first_axis[i]


# -- scikit-learn estimator conventions ----------------------------------------------------------

def test_transform_before_fit_raises_not_fitted():
    with pytest.raises(NotFittedError):
        InPCA().transform(np.zeros((2, 3)))


@pytest.mark.parametrize("parameters, name", [
    ({"n_components": 0}, "n_components"),
    ({"n_components": 2.5}, "n_components"),
    ({"n_components": True}, "n_components"),
    ({"solver": "arpack"}, "solver"),
    ({"random_state": -1}, "random_state"),
    ({"ncv": 0}, "ncv"),
    ({"tol": -1e-3}, "tol"),
    ({"tol": float("nan")}, "tol"),
    ({"block_bytes": 0}, "block_bytes"),
])
def test_invalid_parameters_raise_at_fit_not_at_construction(parameters, name):
    model = InPCA(**parameters)  # sklearn convention: __init__ stores, fit validates
    assert model.get_params()[name] is parameters[name]
    D = geodesic_distances(np.linspace(0, 1, 10))
    with pytest.raises(ValueError, match=rf"\b{name}\b") as raised:
        model.fit(D)
    assert "\n" not in str(raised.value)
    assert not hasattr(model, "coords_")
    # the same error through set_params on a valid model
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        InPCA().set_params(**parameters).fit(D)


def test_get_params_set_params_and_clone_round_trip():
    parameters = {"n_components": 3, "solver": "lanczos", "random_state": 7, "ncv": 12, "tol": 1e-10,
                  "block_bytes": 4096}
    model = InPCA(**parameters)
    assert model.get_params() == parameters
    fitted = model.fit(geodesic_distances(np.linspace(0, 1, 30)))
    copy = clone(fitted)
    assert copy.get_params() == parameters
    assert not hasattr(copy, "coords_")  # clone copies parameters, not the fit
    with pytest.raises(NotFittedError):
        copy.transform(np.zeros((1, 30)))
    assert InPCA().set_params(**parameters).get_params() == parameters


@pytest.mark.parametrize("solver", ["dense", "lanczos"])
def test_fit_transform_returns_in_sample_coords(trajectory_distances, solver):
    model = InPCA(n_components=5, solver=solver)
    coords = model.fit_transform(trajectory_distances)
    assert coords is model.coords_
    assert model.n_features_in_ == len(trajectory_distances)
    reference = InPCA(n_components=5, solver=solver).fit(trajectory_distances)
    np.testing.assert_array_equal(coords, reference.coords_)


# -- input validation ----------------------------------------------------------------------------

class BlockReader:
    """A matrix-like numpy cannot convert (no ``__array__``), like inpca.tiles.TiledMatrix: ``.shape``
    and slices. Records how many entries every read returns."""

    def __init__(self, array):
        self._array = array
        self.shape = array.shape
        self.entries_read = []

    def __getitem__(self, key):
        block = np.array(self._array[key])
        self.entries_read.append(block.size)
        return block


def refusal(call):
    """The message of the ValueError that ``call`` raises, checked to be one line."""
    with pytest.raises(ValueError) as raised:
        call()
    message = str(raised.value)
    assert "\n" not in message
    return message


def with_entry(D, i, j, value):
    D = D.copy()
    D[i, j] = D[j, i] = value
    return D


@pytest.mark.parametrize("solver", ["dense", "lanczos"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_distances_are_refused(trajectory_distances, solver, value):
    D = with_entry(trajectory_distances, 4, 0, value)
    D[7, 9] = value  # asymmetric on purpose: the entries are refused before symmetry is looked at
    message = refusal(lambda: InPCA(n_components=3, solver=solver).fit(D))
    assert message == (f"InPCA.fit: NaN/inf values in D: 3 entries, first D[0, 4] = {value}; "
                       "distances must be finite")


@pytest.mark.parametrize("solver", ["dense", "lanczos"])
def test_negative_distances_are_refused(trajectory_distances, solver):
    D = with_entry(trajectory_distances, 3, 7, -0.25)
    message = refusal(lambda: InPCA(n_components=3, solver=solver).fit(D))
    assert message.startswith("InPCA.fit: Negative values in data D: 2 entries, first D[3, 7] = -0.25; "
                              "distances must be >= 0 (negatives down to -")


def float64_distances_of_float32_probabilities(M=40, N=300, C=10, seed=0):
    """Distances as the authors' code computes them: float32 probabilities, an einsum of sqrt(P)
    sqrt(Q) in float64, then -log. Near-identical points give rounding-level negatives."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(C), size=(M, N)).astype(np.float32)
    P[1] = P[0]
    P[2] = P[0] * (1 + 1e-7)
    root = np.sqrt(P.astype(np.float64))
    return -np.log(np.einsum("anc,bnc->abn", root, root)).mean(axis=-1)


@pytest.mark.parametrize("solver", ["dense", "lanczos"])
def test_rounding_level_negatives_are_taken_as_zero(solver):
    """Issue 29: float64 distances of float32 probabilities hold values like -1.5e-8; they are zero
    within rounding, fitted as 0 (on a copy: the caller's D is unchanged), not refused."""
    D = float64_distances_of_float32_probabilities()
    assert (D < 0).any() and D.min() > -1e-6
    given = D.copy()
    model = InPCA(n_components=5, solver=solver).fit(D)
    np.testing.assert_array_equal(D, given)
    clipped = InPCA(n_components=5, solver=solver).fit(np.maximum(D, 0.0))
    np.testing.assert_array_equal(model.eigenvalues_, clipped.eigenvalues_)
    np.testing.assert_array_equal(model.coords_, clipped.coords_)
    np.testing.assert_array_equal(model.transform(D[:4]), clipped.transform(np.maximum(D[:4], 0.0)))
    # streamed, read block by block: clipped as read
    streamed = InPCA(n_components=5, solver=solver).fit(BlockReader(D))
    np.testing.assert_allclose(streamed.eigenvalues_, model.eigenvalues_, rtol=1e-12)
    # beyond rounding: refused as before
    message = refusal(lambda: InPCA(n_components=5, solver=solver).fit(with_entry(D, 5, 6, -1e-4)))
    assert message.startswith("InPCA.fit: Negative values in data D: 2 entries, first D[5, 6] = -0.0001")


def test_transform_refuses_a_1d_row_a_wrong_column_count_and_bad_entries(trajectory_distances):
    D = trajectory_distances
    model = InPCA(n_components=3).fit(D)
    assert "D_new must be a 2-D matrix of distances, got shape (600,); Reshape your data" in \
        refusal(lambda: model.transform(D[17]))
    assert refusal(lambda: model.transform(D[:5, :10])) == \
        "X has 10 features, but InPCA is expecting 600 features as input."
    assert refusal(lambda: model.transform(with_entry(D, 2, 30, np.nan)[:5])) == \
        "InPCA.transform: NaN/inf values in D_new: 1 entries, first D_new[2, 30] = nan; distances must be finite"
    assert refusal(lambda: model.transform(-D[:5])).startswith("InPCA.transform: Negative values in data D_new")


def test_square_complex_sparse_and_empty_input_are_refused(trajectory_distances):
    D = trajectory_distances
    assert refusal(lambda: InPCA().fit(D[:, :50])) == \
        "InPCA.fit: D must be a square (M, M) matrix of distances, got shape (600, 50)"
    assert refusal(lambda: InPCA().fit(D.astype(complex))) == \
        "InPCA.fit: Complex data not supported: D has dtype complex128; distances are real"
    assert "0 sample(s)" in refusal(lambda: InPCA().fit(np.zeros((0, 0))))
    with pytest.raises(TypeError, match="Sparse data was passed for D, but dense data is required"):
        InPCA().fit(scipy.sparse.csr_array(D))


def test_lists_are_fitted_and_transformed_like_arrays(trajectory_distances):
    D = trajectory_distances[:200, :200]
    from_array = InPCA(n_components=4).fit(D)
    from_list = InPCA(n_components=4).fit(D.tolist())
    for name in ("eigenvalues_", "coords_", "explained_stress_"):
        np.testing.assert_array_equal(getattr(from_list, name), getattr(from_array, name))
    assert from_list.n_features_in_ == 200
    np.testing.assert_array_equal(from_list.transform(D[:5].tolist()), from_array.transform(D[:5]))


def test_a_memmap_is_fitted_in_place(tmp_path, trajectory_distances):
    """Validation takes the memmap as it is: no copy of D in memory (traced allocations stay far
    below D's size) and the same numbers as the in-memory fit."""
    D = trajectory_distances
    np.save(tmp_path / "d.npy", D)
    mapped = np.load(tmp_path / "d.npy", mmap_mode="r")
    in_memory = InPCA(n_components=4, solver="lanczos").fit(D)
    tracemalloc.start()
    try:
        from_disk = InPCA(n_components=4, solver="lanczos").fit(mapped)
        coords = from_disk.transform(mapped[:100])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < D.nbytes / 4
    np.testing.assert_array_equal(from_disk.eigenvalues_, in_memory.eigenvalues_)
    np.testing.assert_array_equal(from_disk.coords_, in_memory.coords_)
    np.testing.assert_array_equal(coords, in_memory.transform(D[:100]))


def test_matrix_likes_are_streamed_and_their_entries_checked_as_read(trajectory_distances):
    D = trajectory_distances
    block_bytes = 50 * 8 * D.shape[1]  # 50 rows per block
    reader = BlockReader(D)
    model = InPCA(n_components=4, solver="lanczos", block_bytes=block_bytes).fit(reader)
    assert model.n_features_in_ == 600
    assert max(reader.entries_read) <= 50 * 600  # never read whole
    np.testing.assert_allclose(model.eigenvalues_, InPCA(n_components=4, solver="lanczos").fit(D).eigenvalues_,
                               rtol=1e-12)
    reader = BlockReader(D[:120])
    np.testing.assert_allclose(model.transform(reader), model.transform(D[:120]), rtol=0, atol=1e-12)
    assert max(reader.entries_read) <= 50 * 600
    # the upper triangle is what the Lanczos fit reads, and checks (the first bad entry of the block)
    bad = BlockReader(with_entry(D, 520, 450, np.nan))
    assert refusal(lambda: InPCA(n_components=4, solver="lanczos", block_bytes=block_bytes).fit(bad)) == \
        "InPCA.fit: NaN/inf values in D: first D[450, 520] = nan; distances must be finite"
    bad = BlockReader(with_entry(D, 110, 3, -1.0)[:120])
    assert refusal(lambda: model.transform(bad)) == \
        "InPCA.transform: Negative values in data D_new: first D_new[3, 110] = -1; distances must be >= 0 " \
        "(negatives down to -1.87e-06 are rounding, taken as 0)"
    assert refusal(lambda: model.transform(BlockReader(D[:5, :10]))) == \
        "X has 10 features, but InPCA is expecting 600 features as input."


@pytest.mark.parametrize("solver", ["dense", "lanczos"])
def test_an_hdf5_matrix_with_a_nan_block_is_refused(tmp_path, trajectory_distances, solver):
    D = trajectory_distances.copy()
    D[400:410, 500:520] = D[500:520, 400:410] = np.nan
    with h5py.File(tmp_path / "d.h5", "w") as handle:
        handle.create_dataset("d", data=D, chunks=(64, D.shape[1]))
    with h5py.File(tmp_path / "d.h5", "r") as handle:
        message = refusal(lambda: InPCA(n_components=4, solver=solver, block_bytes=2**18).fit(handle["d"]))
        # dense reads the file whole and counts; Lanczos stops at the first row block holding one
        count = "400 entries, " if solver == "dense" else ""
        assert message == f"InPCA.fit: NaN/inf values in D: {count}first D[400, 500] = nan; distances must be finite"
        model = InPCA(n_components=4).fit(trajectory_distances)
        assert refusal(lambda: model.transform(handle["d"])) == \
            "InPCA.transform: NaN/inf values in D_new: first D_new[400, 500] = nan; distances must be finite"
