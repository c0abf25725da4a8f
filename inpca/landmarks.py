"""Landmark InPCA: the embedding from M x L distances to L landmarks instead of all M^2.

Landmark InPCA (``landmark_inpca``) avoids the M^2 distances altogether: InPCA is fitted on the L x L
distances among L landmark points and every point is placed by ``transform`` from its L distances to
the landmarks, so only M x L distances are needed. ``landmark_rows_every`` picks the landmarks the
pipeline uses (every reference point, every k-th and the last checkpoint of each run), and
``landmark_weights`` how many points each stands for (``WeightedLandmarkInPCA``): unweighted, sparse
landmarks over-state how much the first axes explain (measured in ``benchmarks/landmarks.py``, README).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
from sklearn.utils.validation import check_array, check_is_fitted

from .distance_checks import SYMMETRIC, check_block, check_symmetric, is_streamed, validate_distances
from .embedding import (
    DENSE_MAX_POINTS,
    LANCZOS_TOL,
    DistanceTransformer,
    InPCA,
    explained_stress,
    is_int,
    sorted_by_magnitude,
    validate_parameters,
)
from .row_blocks import DEFAULT_BLOCK_BYTES, row_blocks, rows_per_block

__all__ = ["LandmarkEmbedding", "WeightedLandmarkInPCA", "landmark_inpca", "landmark_rows_every", "landmark_weights"]


# --------------------------------------------------------------------------------------------
# Landmark InPCA
# --------------------------------------------------------------------------------------------

class LandmarkEmbedding(NamedTuple):
    """What ``landmark_inpca`` returns; unpacks as ``model, coords = landmark_inpca(...)``.

    model : InPCA fitted on the L x L landmark distances. Its eigenvalues_ are those of the L x L
        problem: for landmarks that sample the points evenly they approximate the full problem's
        eigenvalues times L / M (the eigenvalues of W grow with the number of points), so
        ``model.eigenvalues_ * M / L`` estimates the exact ones. explained_stress_ is scale-free and
        directly comparable with an exact fit's. ``model.transform`` places further points.
    coords : (M, k) coordinates of every row of D_to_landmarks, on the same scale as an exact
        embedding's coords_ (no M / L correction: x = V sqrt|lambda| with V normalised over L rows).
        coords[landmark_rows] is model.coords_.
    """

    model: InPCA
    coords: np.ndarray


def landmark_inpca(D_to_landmarks, landmark_rows, n_components=10, solver="auto",
                   block_bytes=DEFAULT_BLOCK_BYTES, weights=None):
    """Landmark InPCA: InPCA of the landmarks' own distances, every point placed by ``transform``.

        model = InPCA(n_components, solver).fit(D_to_landmarks[landmark_rows])   # L x L
        coords = model.transform(D_to_landmarks)                                 # M x L, row blocks

    Parameters
    ----------
    D_to_landmarks : (M, L) matrix-like
        D_to_landmarks[i, j] = d_B(point i, landmark j). An ndarray (memmaps included), an
        h5py.Dataset or any object with ``.shape`` whose ``X[i0:i1]`` returns rows i0..i1-1 as an array.
    landmark_rows : (L,) distinct ints in [0, M)
        The rows that are the landmarks themselves: column j holds the distances to the point of row
        landmark_rows[j], so D_to_landmarks[landmark_rows] is the symmetric L x L matrix.
    n_components, solver, block_bytes
        As for InPCA (block_bytes also bounds the row blocks read here).

    weights : (L,) or None
        How many points each landmark stands for (:func:`landmark_weights`): the fit is then the
        weighted InPCA of :class:`WeightedLandmarkInPCA`, which corrects the bias of landmarks that
        sample some parts of the trajectories more sparsely than others.

    Returns a LandmarkEmbedding (model, coords). With every point a landmark this is exact InPCA.

    Memory: the L x L matrix, the (M, k) coordinates and one row block of at most block_bytes; an
    ndarray input is used in place. A non-ndarray input is read at most twice: the spans of rows that
    hold landmarks (each within one row block) for the fit, then all rows for the placement.
    """
    if not hasattr(D_to_landmarks, "shape"):
        D_to_landmarks = np.asarray(D_to_landmarks, dtype=np.float64)
    shape = tuple(D_to_landmarks.shape)
    if len(shape) != 2:
        raise ValueError(f"D_to_landmarks must be an (M, L) matrix, got shape {shape}")
    landmark_rows = _check_landmark_rows(landmark_rows, *shape)
    D_landmarks = _rows_of(D_to_landmarks, landmark_rows, block_bytes)
    _check_landmark_symmetry(D_landmarks, block_bytes)
    if weights is None:
        model = InPCA(n_components=n_components, solver=solver, block_bytes=block_bytes).fit(D_landmarks)
    else:  # each landmark stands for `weights[j]` points (landmark_weights)
        model = WeightedLandmarkInPCA(n_components=n_components).fit(D_landmarks, sample_weight=weights,
                                                                     overwrite=True)
    del D_landmarks  # the L x L copy is not needed for the pass over all M rows
    if isinstance(D_to_landmarks, np.ndarray):
        coords = model.transform(D_to_landmarks)
    else:
        coords = np.vstack([model.transform(rows) for _, _, rows in row_blocks(D_to_landmarks, block_bytes)])
    # transform reproduces the landmarks' own coordinates only to rounding (and to the Lanczos
    # residual); the fit's are exact and keep the landmarks identical to model.coords_.
    coords[landmark_rows] = model.coords_
    return LandmarkEmbedding(model, coords)


def _check_landmark_rows(landmark_rows, n_rows, n_landmarks):
    rows = np.asarray(landmark_rows)
    if rows.ndim != 1 or rows.size != n_landmarks or (rows.size and rows.dtype.kind not in "iu"):
        raise ValueError(f"landmark_rows must be {n_landmarks} integers (one per column of "
                         f"D_to_landmarks), got {rows.dtype} array of shape {rows.shape}")
    rows = rows.astype(np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= n_rows):
        raise ValueError(f"landmark_rows must lie in [0, {n_rows}), got [{rows.min()}, {rows.max()}]")
    if np.unique(rows).size != rows.size:
        raise ValueError("landmark_rows must be distinct (a repeated row would weigh its point twice)")
    return rows


def _check_landmark_symmetry(D_landmarks, block_bytes):
    """InPCA's Lanczos path only spot-checks a few rows, and an asymmetric landmark matrix almost
    always means landmark_rows is not in the order of the columns, which deserves an error that says so."""
    check_symmetric(D_landmarks, block_bytes, "D_to_landmarks[landmark_rows]",
                    "column j must hold the distances to the point of row landmark_rows[j]")


def _rows_of(D, rows, block_bytes):
    """D[rows] as a float64 array, for any matrix-like D that supports row slices.

    An ndarray is indexed directly. Otherwise the wanted rows, in increasing order, are read as
    contiguous spans D[first:last + 1] of at most one row block each, then put in the requested
    order: row slices are all the interface promises, and spans read sparse landmarks one row at
    a time while dense ones cost at most one pass over D.
    """
    if isinstance(D, np.ndarray):
        return np.asarray(D[rows], dtype=np.float64)
    chunks = getattr(D, "chunks", None)
    per_block = rows_per_block(D.shape[1], block_bytes, chunks[0] if chunks else None)
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    out = np.empty((rows.size, D.shape[1]), dtype=np.float64)
    start = 0
    while start < rows.size:
        first = sorted_rows[start]
        stop = int(np.searchsorted(sorted_rows, first + per_block))
        span = np.asarray(D[first:sorted_rows[stop - 1] + 1], dtype=np.float64)
        out[order[start:stop]] = span[sorted_rows[start:stop] - first]
        start = stop
    return out


def landmark_rows_every(run_ids, checkpoint_index, kinds, every):
    """Positions of the landmark points among points listed in matrix order.

    run_ids, checkpoint_index, kinds : (M,) per point: its run, its checkpoint's index within the run
        and its kind, "run" or "reference" (str or bytes, as stored).
    every : int >= 1

    Landmarks are every reference point, and of each run the checkpoints whose index is a multiple of
    ``every`` plus the run's last (highest-index) checkpoint, so the training's end state is always a
    landmark. The choice depends on each point's own run only, so adding a run adds landmarks of
    that run without moving any other. Returns the positions as an increasing int64 array.
    """
    if not (is_int(every) and every >= 1):
        raise ValueError(f"every must be an int >= 1, got {every!r}")
    kinds = np.asarray(kinds)
    if kinds.dtype.kind == "S":
        kinds = kinds.astype(str)
    run_ids = np.asarray(run_ids)
    checkpoint_index = np.asarray(checkpoint_index, dtype=np.int64)
    if not (kinds.shape == run_ids.shape == checkpoint_index.shape and kinds.ndim == 1):
        raise ValueError(f"run_ids, checkpoint_index and kinds must be (M,) arrays of one length, got "
                         f"shapes {run_ids.shape}, {checkpoint_index.shape} and {kinds.shape}")
    unknown = sorted(set(np.unique(kinds).tolist()) - {"run", "reference"})
    if unknown:
        raise ValueError(f"kinds must be 'run' or 'reference', got {', '.join(map(repr, unknown))}")
    is_reference = kinds == "reference"
    is_checkpoint = ~is_reference
    _, run_of_checkpoint = np.unique(run_ids[is_checkpoint], return_inverse=True)
    checkpoints = checkpoint_index[is_checkpoint]
    last_of_run = np.full(run_of_checkpoint.max(initial=-1) + 1, np.iinfo(np.int64).min)
    np.maximum.at(last_of_run, run_of_checkpoint, checkpoints)
    is_landmark = is_reference.copy()
    is_landmark[is_checkpoint] = (checkpoints % every == 0) | (checkpoints == last_of_run[run_of_checkpoint])
    return np.flatnonzero(is_landmark).astype(np.int64)


def landmark_weights(run_ids, checkpoint_index, kinds, landmark_rows):
    """How many points each landmark stands for: within a run, the trapezoid rule over its landmarks'
    checkpoint indices (half the gap to each neighbouring landmark, plus one half at each end); a
    reference point stands for itself. The weights of all landmarks sum to the number of points.

    Why: every k-th checkpoint under-samples the part of a run that moves fast (the first epochs),
    and plain landmark InPCA then over-weights the slow end (measured at M = 20,000, every 4th
    checkpoint: top-3 coordinates 8.3 % off, 1.3 % with these weights).
    """
    kinds = np.asarray(kinds)
    if kinds.dtype.kind == "S":
        kinds = kinds.astype(str)
    run_ids = np.asarray(run_ids)
    checkpoint_index = np.asarray(checkpoint_index, dtype=np.int64)
    rows = np.asarray(landmark_rows, dtype=np.int64)
    weights = np.ones(len(rows))
    landmark_runs = run_ids[rows]
    for run in np.unique(landmark_runs[kinds[rows] == "run"]):
        mine = np.flatnonzero((landmark_runs == run) & (kinds[rows] == "run"))
        order = mine[np.argsort(checkpoint_index[rows[mine]], kind="stable")]
        gaps = np.diff(checkpoint_index[rows[order]]).astype(np.float64)
        w = np.zeros(len(order))
        w[:-1] += gaps / 2
        w[1:] += gaps / 2
        w[[0, -1]] += 0.5  # the end landmarks stand for themselves too
        weights[order] = w
    return weights


class WeightedLandmarkInPCA(DistanceTransformer):
    """InPCA of landmarks that each stand for `weights[j]` points (weighted classical scaling).

    With weights w (sum W), the double centring uses weighted means, r_j = sum_i w_i D_ij / W and
    g = sum_j w_j r_j / W, B = -1/2 (D - r_i - r_j + g), and the eigenproblem is that of
    A = diag(sqrt w) B diag(sqrt w): the weighted points' InPCA, as if each landmark were repeated
    w_j times. Eigenvalues are on the scale of all points (no M/L correction), explained stress is
    A's. `transform` places any point from its distances to the landmarks, weighting them alike.
    With all weights 1 this is InPCA.

    A scikit-learn transformer with the same input conventions as InPCA. The weights are fit's
    ``sample_weight`` (None: 1 each), scikit-learn's name for weights that count a sample that many
    times. The fit works on the whole L x L matrix in memory (the dense solver up to
    DENSE_MAX_POINTS landmarks, Lanczos on the explicit matrix above).
    """

    def __init__(self, n_components=10, random_state=0, tol=LANCZOS_TOL):
        self.n_components = n_components
        self.random_state = random_state
        self.tol = tol

    def fit(self, D, y=None, sample_weight=None, overwrite=False):
        """Fit on the (L, L) landmark distances D, landmark j standing for sample_weight[j] > 0
        points (None: 1 each); returns self. ``y`` is ignored (scikit-learn API). ``overwrite``: D may
        be used as workspace (when it is a float64 array)."""
        validate_parameters(self)
        if is_streamed(D):
            D = D[:]  # the fit works on the whole matrix in memory
        D = validate_distances(self, D, reset=True, caller="WeightedLandmarkInPCA.fit", name="D", dtype=np.float64)
        if D.shape[0] != D.shape[1]:
            raise ValueError(f"WeightedLandmarkInPCA.fit: D must be a square (L, L) matrix of distances, got "
                             f"shape {D.shape}")
        w = self._weights(sample_weight, D.shape[0])
        check_symmetric(D, DEFAULT_BLOCK_BYTES, "WeightedLandmarkInPCA.fit: D", SYMMETRIC)
        L = D.shape[0]
        k = L if self.n_components is None else min(self.n_components, L)
        total = w.sum()
        r = D @ w / total
        g = float(r @ w / total)
        root = np.sqrt(w)
        # A = -1/2 (D - r_i - r_j + g) sqrt(w_i w_j), in place: at L ~ 10^4 every copy is GBs. D is
        # symmetric, so A is too (to rounding; eigh reads one triangle, eigsh only multiplies).
        A = D if overwrite else D.copy()
        A -= r[:, None]
        A -= r[None, :]
        A += g
        A *= -0.5 * root[:, None]
        A *= root[None, :]
        if L <= DENSE_MAX_POINTS or k >= L - 1:
            lam, U = scipy.linalg.eigh(A, driver="evd", check_finite=False)
            solver = "dense"
        else:
            v0 = np.random.default_rng(self.random_state).standard_normal(L)
            lam, U = scipy.sparse.linalg.eigsh(A, k=k, which="LM", v0=v0, tol=self.tol)
            solver = "lanczos"
        lam, U = sorted_by_magnitude(lam, U, k)
        self.eigenvalues_, self.components_ = lam, U / root[:, None]
        self.column_means_, self.grand_mean_, self.weights_ = r, g, w
        self.frobenius_norm_ = float(np.linalg.norm(A))
        self.explained_stress_ = explained_stress(lam, self.frobenius_norm_)
        self.solver_, self.n_matvec_ = solver, 0
        # the landmarks' own coordinates, as transform would give them (B S U = S^-1 U lambda)
        self.coords_ = self.components_ * np.sqrt(np.abs(lam))
        return self

    @staticmethod
    def _weights(sample_weight, L):
        if sample_weight is None:
            return np.ones(L)
        w = check_array(sample_weight, ensure_2d=False, dtype=np.float64, input_name="sample_weight")
        if w.shape != (L,):
            raise ValueError(f"WeightedLandmarkInPCA.fit: sample_weight must have shape ({L},), one weight per "
                             f"landmark, got shape {w.shape}")
        if not np.all(w > 0):
            first = int(np.argmax(~(w > 0)))
            raise ValueError(f"WeightedLandmarkInPCA.fit: sample_weight must be > 0 (the number of points a "
                             f"landmark stands for), got {np.count_nonzero(~(w > 0))} zero or negative weights, "
                             f"first sample_weight[{first}] = {w[first]:.6g}")
        return w

    def transform(self, D_new):
        """Place points from their (M_new, L) distances to the landmarks, weighted like the fit. A
        streamed matrix-like is read in row blocks, its entries checked as they are read."""
        check_is_fitted(self)
        caller = "WeightedLandmarkInPCA.transform"
        D_new = validate_distances(self, D_new, reset=False, caller=caller, name="D_new", dtype=np.float64)
        if is_streamed(D_new):
            coords = []
            for i0, _, rows in row_blocks(D_new, DEFAULT_BLOCK_BYTES):
                check_block(rows, caller, "D_new", (i0, 0))  # checked here once, placed without re-validation
                coords.append(self._place(rows))
            return np.vstack(coords)
        return self._place(D_new)

    def _place(self, D_new):
        """The coordinates of validated (m, L) distances to the landmarks."""
        w = self.weights_
        b = -0.5 * (D_new - (D_new @ w / w.sum())[:, None] - (self.column_means_ - self.grand_mean_)[None, :])
        scale = np.where(self.eigenvalues_ < 0, -1.0, 1.0) * np.sqrt(np.abs(self.eigenvalues_))
        with np.errstate(divide="ignore", invalid="ignore"):
            coords = np.where(scale != 0, ((b * w) @ self.components_) / np.where(scale != 0, scale, 1.0), 0.0)
        return coords
