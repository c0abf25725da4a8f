"""InPCA: intensive principal component analysis of a matrix of Bhattacharyya distances.

Quinn et al., PNAS 116(28):13762 (2019), as used by Mao et al., PNAS 2024. The input D is the symmetric
(M, M) matrix of intensive Bhattacharyya distances d_B(P_i, P_j). InPCA treats d_B as a *squared*
distance, so the embedding is classical MDS on D:

    W = -1/2 J D J,    J = I - 1 1^T / M          (double centring; W 1 = 0)
    W = V diag(lambda) V^T,                       eigenvalues sorted by |lambda|, signs kept
    x_ik = V_ik sqrt(|lambda_k|)                  (coordinates)
    D_ij = sum_k sign(lambda_k) (x_ik - x_jk)^2   (exact with all non-zero eigenpairs)

d_B is not a squared Euclidean distance, so W has negative eigenvalues too: the embedding lives in a
Minkowski (pseudo-Euclidean) space with space-like (lambda > 0) and time-like (lambda < 0) axes.

Three eigen-solvers (their measured times: the README, ``benchmarks/embedding.py`` and
``benchmarks/scale.py``):

* ``"dense"``: ``scipy.linalg.eigh(driver="evd")`` on the explicit W, full spectrum; O(M^3) time and a
  few M x M float64 copies.
* ``"lanczos"``: ``scipy.sparse.linalg.eigsh(which="LM")`` on a LinearOperator that applies
  W v = -1/2 J D (J v) without forming W or copying D. "LM" returns the k eigenvalues of largest
  |lambda|, i.e. both ends of the spectrum at once; it agrees with the dense solver to machine
  precision. For k = 10 ARPACK makes a few tens of products, each a sweep over D.
* ``"block"``: block Lanczos (:mod:`inpca.block_eigen`): W times a block of k + 30 vectors per pass
  over D, with ARPACK's residual test at tol 1e-8. For k = 10 on trajectory distances it makes about
  ten passes, and each pass reads every stored part of D once (the tiles of a ``TiledMatrix`` once
  each) for both triangles. Its eigenvalues agree with Lanczos's to ~1e-14, its coordinates to ~1e-8
  or better.

``"auto"`` picks dense for M <= DENSE_MAX_POINTS = 2,000: there the dense solver is cheap, gives the
exact full spectrum and is immune to what can trip a Krylov solver (tiny M, k close to M, degenerate
eigenvalues such as the equidistant simplex). Beyond it the cubic cost takes over, so auto uses
Lanczos for a D in memory, where a product is one sweep of memory, and the block solver for a D read
from disk (a memmap, an h5py Dataset, the tiles), where every product is a pass over the files.

D may be an in-memory array, a ``numpy.memmap``, an ``h5py.Dataset`` or any object with
``.shape == (M, M)`` whose ``D[i0:i1, j0:]`` returns that block as an array (and which numpy cannot
convert, i.e. has no ``__array__``: ``inpca.tiles.TiledMatrix``, ``LandmarkColumns``). The Lanczos path never
copies D and reads only its upper triangle (D is symmetric): a contiguous float64 array (memmaps
included) goes to BLAS ``dsymv`` whole, anything else is read and cast to float64 in bounded row
blocks (DEFAULT_BLOCK_BYTES), so an on-disk matrix larger than memory works. Besides D, the Lanczos
path allocates O(M * ncv) memory. All arithmetic is float64 whatever D's dtype.

Each W-product reads half of D once and is bound by memory bandwidth.

Both estimators, ``InPCA`` and ``WeightedLandmarkInPCA``, pass scikit-learn's ``check_estimator`` and
declare what they take in its tags: pairwise input (a square matrix over the points; ``transform``
takes the (M_new, M) distances to the fitted points), non-negative, dense, no NaN. Array-likes
(ndarrays and memmaps, used in place; lists) go through scikit-learn's ``check_array``, which refuses
sparse, complex and empty input, and their entries are checked before anything else. An h5py Dataset
or streamed matrix-like is never read whole for validation: its entries are checked block by block as
the fit or ``transform`` reads them (the Lanczos fit reads, and so checks, only the upper triangle).
Negative entries within rounding of zero (down to -1e-6 x max(1, the largest distance): distances
computed in float64 from float32 probabilities hold values like -1.5e-8 for near-identical points) are
taken as 0: an in-memory D with such entries is fitted on a clipped copy (the input is not changed), a
streamed D's blocks are clipped as they are read. NaN/inf and negative
distances below that are refused with one line naming the first such entry, an asymmetric
in-memory D too (the Lanczos path samples a few rows for that; an on-disk D is not checked for it), and
so is a 1-D row (one point's distances are a (1, M) matrix). ``n_features_in_`` is M either way.
These checks are :mod:`inpca.distance_checks`.

Landmark InPCA (the M x L distances to L landmarks instead of M^2) is :mod:`inpca.landmarks`.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .block_eigen import BLOCK_TOL, double_centred_eigsh
from .distance_checks import (
    SYMMETRIC,
    check_block,
    check_array_entries,
    check_symmetric,
    check_symmetry_sample,
    is_streamed,
    validate_distances,
)
from .row_blocks import (
    DEFAULT_BLOCK_BYTES,
    MAX_NORM_CANCELLATION,
    row_blocks,
    sum_of_squares,
    symmetric_product,
    whole_blas_matrix,
)

__all__ = [
    "DENSE_MAX_POINTS",
    "InPCA",
    "embedded_distances",
    "explained_stress",
]

# "auto" uses the dense solver up to this many points (see the module docstring for why).
DENSE_MAX_POINTS = 2000

_SOLVERS = ("auto", "dense", "lanczos", "block")

# ARPACK tolerance. 0 means machine precision; 1e-12 saves one restart (34 instead of 40 W-products
# for k = 10 at M = 2,000-10,000 on synthetic trajectories) with eigenvalues still equal to the dense
# solver's to ~2e-15 and eigenvectors to |cos| = 1 - 1e-15: the eigenvalue error is quadratic in the
# residual and the eigenvector error is residual / gap.
LANCZOS_TOL = 1e-12



# --------------------------------------------------------------------------------------------
# Plain functions
# --------------------------------------------------------------------------------------------

def explained_stress(eigenvalues, frobenius_norm):
    """Explained stress S(j) = 1 - sqrt(1 - sum_{i<=j} lambda_i^2 / ||W||_F^2), j = 1..k.

    ``eigenvalues`` are taken in the given order (InPCA sorts them by |lambda| descending) and
    ``frobenius_norm`` is ||W||_F itself, not its square. With W_j = sum_{i<=j} lambda_i v_i v_i^T,
    1 - S(j) is the relative Frobenius error ||W - W_j||_F / ||W||_F, so S is non-decreasing and
    reaches 1 at full rank (to ~1e-8: the square root magnifies the ~1e-16 rounding of the ratio).
    Rounding can push the ratio a hair above 1; it is clipped to [0, 1].
    For W = 0 (all points identical) nothing is left unexplained and S = 1.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    norm_sq = float(frobenius_norm) ** 2
    if norm_sq == 0.0:
        return np.ones(lam.shape, dtype=np.float64)
    captured = np.clip(np.cumsum(lam**2) / norm_sq, 0.0, 1.0)
    return 1.0 - np.sqrt(1.0 - captured)


def embedded_distances(X, eigenvalues, Y=None):
    """Minkowski squared distances D_hat_ij = sum_k sign(lambda_k) (x_ik - y_jk)^2.

    X: (M, k) coordinates, eigenvalues: (k,) signed. Y defaults to X, giving the (M, M) matrix that
    reproduces the input D when all non-zero eigenpairs are used. Computed as
    |x_i|_s^2 + |y_j|_s^2 - 2 <x_i, y_j>_s with the signed inner product <a, b>_s = sum_k s_k a_k b_k.
    """
    X = np.asarray(X, dtype=np.float64)
    signs = np.sign(np.asarray(eigenvalues, dtype=np.float64))
    Y = X if Y is None else np.asarray(Y, dtype=np.float64)
    x_norms = (X * X) @ signs
    y_norms = x_norms if Y is X else (Y * Y) @ signs
    D_hat = x_norms[:, None] + y_norms[None, :] - 2.0 * ((X * signs) @ Y.T)
    if Y is X:
        np.fill_diagonal(D_hat, 0.0)  # exact zeros instead of rounding residue
    return D_hat


# --------------------------------------------------------------------------------------------
# W from D: one pass for its statistics, products without forming it
# --------------------------------------------------------------------------------------------

def _streamed_statistics(D, block_bytes, check_entries=False):
    """One pass over D: row means r, grand mean g and ||W||_F.

    D is symmetric, so the row means are also the column means D_bar_j used by the out-of-sample
    projection. ||W||_F^2 uses the expansion described at MAX_NORM_CANCELLATION (derivation:
    sum_ij (D_ij - r_i - r_j + g)^2 with sum_j D_ij = M r_i and sum_i r_i = M g); if too many digits
    cancel, a second pass sums the exactly centred entries (-1/2 (D_ij - r_i - r_j + g))^2.
    In memory: D 1 by dsymv and sum D^2 by one ddot over D. Otherwise both come from the upper
    row blocks, sum D^2 = sum (diagonal blocks)^2 + 2 sum (blocks right of the diagonal)^2.
    ``check_entries``: refuse NaN/inf and negative entries in the blocks as they are read (a
    streamed matrix-like, whose entries nothing else reads; D is read only above the diagonal).
    """
    M = D.shape[0]
    ones = np.ones((M, 1), dtype=np.float64)
    if whole_blas_matrix(D) is not None:
        row_sums = symmetric_product(D, ones, block_bytes)[:, 0]
        sum_sq = sum_of_squares(D)
    else:
        row_sums = np.zeros(M, dtype=np.float64)
        sum_sq = 0.0
        for i0, i1, rows in row_blocks(D, block_bytes, upper=True):
            if check_entries:
                check_block(rows, "InPCA.fit", "D", (i0, i0))
            row_sums[i0:i1] += rows.sum(axis=1)
            row_sums[i1:] += rows[:, i1 - i0:].sum(axis=0)
            sum_sq += sum_of_squares(rows[:, : i1 - i0]) + 2.0 * sum_of_squares(rows[:, i1 - i0:])
    row_means = row_sums / M
    grand_mean = float(row_means.mean())
    four_norm_sq = sum_sq - 2.0 * M * float(row_means @ row_means) + M * M * grand_mean**2
    if four_norm_sq <= 0.0 or sum_sq > MAX_NORM_CANCELLATION * four_norm_sq:
        four_norm_sq = _centred_sum_of_squares(D, row_means, grand_mean, block_bytes)
    return row_means, grand_mean, 0.5 * np.sqrt(max(four_norm_sq, 0.0))


def _centred_sum_of_squares(D, row_means, grand_mean, block_bytes):
    """sum_ij (D_ij - r_i - r_j + g)^2 = 4 ||W||_F^2, entry by entry (no cancellation), from the
    upper row blocks (entries right of the diagonal count twice)."""
    column_shift = row_means - grand_mean
    total = 0.0
    for i0, i1, rows in row_blocks(D, block_bytes, upper=True):
        centred = rows - row_means[i0:i1, None]
        centred -= column_shift[None, i0:]
        total += sum_of_squares(centred[:, : i1 - i0]) + 2.0 * sum_of_squares(centred[:, i1 - i0:])
    return total


class _DoubleCentredOperator(scipy.sparse.linalg.LinearOperator):
    """W = -1/2 J D J applied without forming W: W v = -1/2 J (D (J v)).

    J v = v - mean(v) removes the constant part, D u is computed from D's upper triangle (see
    symmetric_product), and the mean of the result is removed again. One application reads half of
    D once and allocates O(M) memory (plus one bounded block for non-float64 or on-disk D);
    ``n_matvec`` counts the applications.
    """

    def __init__(self, D, block_bytes):
        M = D.shape[0]
        super().__init__(dtype=np.float64, shape=(M, M))
        self._D = D
        self._block_bytes = block_bytes
        self.n_matvec = 0

    def _matmat(self, X):
        X = np.asarray(X, dtype=np.float64)
        self.n_matvec += X.shape[1]
        centred = X - X.mean(axis=0, keepdims=True)
        product = symmetric_product(self._D, centred, self._block_bytes)
        product -= product.mean(axis=0, keepdims=True)
        product *= -0.5
        return product

    def _matvec(self, x):
        return self._matmat(np.asarray(x).reshape(-1, 1)).ravel()

    def _adjoint(self):
        return self  # W is symmetric


def sorted_by_magnitude(eigenvalues, eigenvectors, n_keep):
    """Keep the n_keep eigenpairs of largest |lambda| (descending) and fix each vector's sign so its
    largest-|entry| component is positive (first such entry on ties), which makes results
    reproducible across solvers and runs."""
    order = np.argsort(-np.abs(eigenvalues), kind="stable")[:n_keep]
    eigenvalues = np.asarray(eigenvalues[order], dtype=np.float64) + 0.0  # no -0.0 from W = -0.5 * 0
    eigenvectors = np.array(eigenvectors[:, order], dtype=np.float64)
    if eigenvectors.size:
        pivots = np.argmax(np.abs(eigenvectors), axis=0)
        signs = np.sign(eigenvectors[pivots, np.arange(eigenvectors.shape[1])])
        signs[signs == 0] = 1.0
        eigenvectors *= signs
    return eigenvalues, eigenvectors


# --------------------------------------------------------------------------------------------
# The estimator
# --------------------------------------------------------------------------------------------

def is_int(value):
    """An integer (numpy's included) and not a bool, which Python counts as one."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# What each parameter of the estimators accepts: (test, what the error says is expected).
_PARAMETERS = {
    "n_components": (lambda v: v is None or (is_int(v) and v >= 1), "an int >= 1 or None"),
    "solver": (lambda v: isinstance(v, str) and v in _SOLVERS, f"one of {', '.join(map(repr, _SOLVERS))}"),
    "random_state": (lambda v: is_int(v) and v >= 0, "an int >= 0"),
    "ncv": (lambda v: v is None or (is_int(v) and v >= 1), "an int >= 1 or None"),
    "tol": (lambda v: v is None or (isinstance(v, numbers.Real) and not isinstance(v, bool) and 0.0 <= v < np.inf),
            "a finite float >= 0 or None"),
    "block_bytes": (lambda v: is_int(v) and v >= 1, "an int >= 1"),
}


def validate_parameters(estimator):
    """Checked at fit, not at construction: scikit-learn's convention, so that set_params and clone
    can store any value and the error comes when the value is used."""
    for name, value in estimator.get_params().items():
        valid, expected = _PARAMETERS[name]
        if not valid(value):
            raise ValueError(f"{type(estimator).__name__}: {name} must be {expected}, got {value!r}")


class DistanceTransformer(TransformerMixin, BaseEstimator):
    """The scikit-learn tags of InPCA and WeightedLandmarkInPCA, which take distance matrices: the input is
    pairwise (a square matrix over the points, which cross-validation and meta-estimators slice by
    rows and columns alike; ``transform`` takes the (M_new, M) distances to the fitted points),
    dense, without NaN and non-negative; ``transform`` returns float64 whatever the input dtype."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = True
        tags.input_tags.positive_only = True
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags


class InPCA(DistanceTransformer):
    """InPCA embedding of a symmetric matrix D of intensive Bhattacharyya distances.

    A scikit-learn transformer: ``__init__`` only stores the parameters, ``fit`` validates them
    (ValueError naming the parameter), and ``get_params``/``set_params``/``sklearn.base.clone`` work.
    ``fit`` and ``fit_transform`` take the (M, M) distance matrix in place of a feature matrix, and
    ``transform`` the (M_new, M) distances of new points to the fitted ones.

    Negative distances within rounding of zero (at least -1e-6 x max(1, the largest distance), e.g.
    -1.5e-8 between near-identical points in distances computed independently in float64) are taken
    as 0; an in-memory D holding any is fitted on a clipped copy. Larger negatives are refused.

    Parameters
    ----------
    n_components : int >= 1 or None
        Number k of eigenpairs kept (largest |lambda|), at most M. None keeps all M (dense solver).
    solver : {"auto", "dense", "lanczos", "block"}
        See the module docstring. "lanczos" or "block" with k >= M - 1 (where ARPACK cannot run)
        falls back to dense; ``solver_`` records the solver actually used.
    random_state : int >= 0
        Seeds the Lanczos start vector v0 (the block solver's start block) so that repeated fits are
        bit-for-bit identical.
    ncv : int >= 1 or None
        Lanczos basis size; default max(2k + 1, 20) (ARPACK's own default), kept within [k + 2, M].
    tol : float >= 0 or None
        Stopping tolerance of both iterative solvers: a Ritz pair is accepted once
        ||W v - lambda v|| <= tol |lambda| (0: machine precision). None: each solver's default,
        LANCZOS_TOL = 1e-12 for Lanczos and inpca.block_eigen.BLOCK_TOL = 1e-8 for block (each
        extra 100x costs the block solver about one more pass over D; see there).
    block_bytes : int >= 1
        Size of a float64 row block of D read at a time by the Lanczos path and by ``transform``.

    Attributes (after ``fit``)
    --------------------------
    eigenvalues_ : (k,) signed eigenvalues of W, sorted by |lambda| descending (negative = time-like)
    components_ : (M, k) orthonormal eigenvectors V; the largest-|entry| of each column is positive
    coords_ : (M, k) coordinates x = V sqrt(|lambda|)
    frobenius_norm_ : ||W||_F, computed from D (not from the eigenvalues)
    explained_stress_ : (k,) S(j) = 1 - sqrt(1 - sum_{i<=j} lambda_i^2 / ||W||_F^2)
    column_means_ : (M,) D_bar_j = mean_i D_ij;  grand_mean_ : mean_j D_bar_j
    solver_ : "dense", "lanczos" or "block";  n_matvec_ : number of W-products (vectors; 0 for dense)
    n_passes_ : passes over D of the block solver (its first also gives the row means and ||W||_F);
        None for the others
    n_features_in_ : M, the number of fitted points (= columns ``transform`` expects)

    Examples
    --------
    Points on the geodesic from ignorance to truth lie on one curve; InPCA puts most of the stress in
    its first component, and a point of the curve placed again lands on its own coordinates:

    >>> import numpy as np
    >>> from inpca.distances import pairwise
    >>> from inpca.embedding import InPCA
    >>> from inpca.geodesic import geodesic, ignorance, truth
    >>> labels = np.arange(50) % 10
    >>> P = geodesic(ignorance(50, 10), truth(labels, 10), np.linspace(0, 0.9, 30))   # (30, 50, 10)
    >>> D = pairwise(P, device="cpu")
    >>> inpca = InPCA(n_components=3).fit(D)
    >>> inpca.coords_.shape, inpca.solver_
    ((30, 3), 'dense')
    >>> bool(inpca.explained_stress_[0] > 0.9)
    True
    >>> np.allclose(inpca.transform(D[[7]]), inpca.coords_[[7]], atol=1e-6)
    True
    """

    def __init__(self, n_components=10, solver="auto", random_state=0, ncv=None, tol=None,
                 block_bytes=DEFAULT_BLOCK_BYTES):
        self.n_components = n_components
        self.solver = solver
        self.random_state = random_state
        self.ncv = ncv
        self.tol = tol
        self.block_bytes = block_bytes

    # -- fitting ------------------------------------------------------------------------------

    def _choose_solver(self, M, k, D=None):
        lanczos_possible = k < M - 1  # ARPACK needs k < M and a basis ncv > k with ncv <= M
        if self.solver == "dense" or not lanczos_possible:
            return "dense"
        if self.solver in ("lanczos", "block"):
            return self.solver
        if M <= DENSE_MAX_POINTS:
            return "dense"
        # In memory a Lanczos product is one sweep of D at memory speed (dsymv), cheaper than the
        # block solver's BLAS-3 arithmetic; read from disk every product is a pass over the file,
        # and the block solver makes several times fewer (see the module docstring).
        in_memory = isinstance(D, np.ndarray) and not isinstance(D, np.memmap)
        return "lanczos" if in_memory else "block"

    def fit(self, D, y=None):
        """Embed D (see the class docstring); returns self. ``y`` is ignored (scikit-learn API)."""
        validate_parameters(self)
        D = validate_distances(self, D, reset=True, caller="InPCA.fit", name="D")
        M, columns = D.shape
        if M != columns:
            raise ValueError(f"InPCA.fit: D must be a square (M, M) matrix of distances, got shape {D.shape}")
        k = M if self.n_components is None else min(self.n_components, M)
        solver = self._choose_solver(M, k, D)
        streamed = is_streamed(D)  # an array's entries are checked already; a streamed one's as read
        self.n_passes_ = None  # counted by the block solver only
        if solver == "dense":
            eigenvalues, eigenvectors = self._fit_dense(D, check_entries=streamed)
        elif solver == "block":
            eigenvalues, eigenvectors = self._fit_block(D, k, check_entries=streamed)
        else:
            eigenvalues, eigenvectors = self._fit_lanczos(D, k, check_entries=streamed)
        eigenvalues, eigenvectors = sorted_by_magnitude(eigenvalues, eigenvectors, k)
        self.solver_ = solver
        self.eigenvalues_ = eigenvalues
        self.components_ = eigenvectors
        self.coords_ = eigenvectors * np.sqrt(np.abs(eigenvalues))
        self.explained_stress_ = explained_stress(eigenvalues, self.frobenius_norm_)
        return self

    def _fit_dense(self, D, check_entries=False):
        W = np.array(D[:] if not isinstance(D, np.ndarray) else D, dtype=np.float64)
        if check_entries and check_array_entries(W, "InPCA.fit", "D"):
            np.maximum(W, 0.0, out=W)  # rounding-level negatives as 0 (W is a copy here)
        check_symmetric(W, self.block_bytes, "InPCA.fit: D", SYMMETRIC)
        column_means = W.mean(axis=0)
        row_means = W.mean(axis=1)
        grand_mean = float(column_means.mean())
        W -= row_means[:, None]
        W -= (column_means - grand_mean)[None, :]
        W *= -0.5
        W = 0.5 * (W + W.T)  # exactly symmetric; eigh reads one triangle only
        self.column_means_ = column_means
        self.grand_mean_ = grand_mean
        self.frobenius_norm_ = float(np.linalg.norm(W))
        self.n_matvec_ = 0
        return scipy.linalg.eigh(W, driver="evd", overwrite_a=True, check_finite=False)

    def _fit_lanczos(self, D, k, check_entries=False):
        M = D.shape[0]
        check_symmetry_sample(D)
        row_means, grand_mean, frobenius_norm = _streamed_statistics(D, self.block_bytes, check_entries)
        self.column_means_ = row_means  # D symmetric: row means are the column means
        self.grand_mean_ = grand_mean
        self.frobenius_norm_ = float(frobenius_norm)
        operator = _DoubleCentredOperator(D, self.block_bytes)
        # Start in the range of J: the constant vector is an exact null vector of W and
        # contributes nothing but would cost iterations to purge.
        v0 = np.random.default_rng(self.random_state).standard_normal(M)
        v0 -= v0.mean()
        ncv = self.ncv if self.ncv is not None else max(2 * k + 1, 20)
        ncv = int(min(max(ncv, k + 2), M))
        eigenvalues, eigenvectors = scipy.sparse.linalg.eigsh(
            operator, k=k, which="LM", v0=v0, ncv=ncv, tol=LANCZOS_TOL if self.tol is None else self.tol)
        self.n_matvec_ = operator.n_matvec
        return eigenvalues, eigenvectors

    def _fit_block(self, D, k, check_entries=False):
        """Block Lanczos in a few passes over D (inpca.block_eigen); a streamed D's entries are checked
        as the first pass reads them."""
        check_symmetry_sample(D)

        def check_part(part, i0, j0):
            check_block(part, "InPCA.fit", "D", (i0, j0))

        fitted = double_centred_eigsh(D, k, block_bytes=self.block_bytes, seed=self.random_state,
                                      tol=BLOCK_TOL if self.tol is None else self.tol,
                                      check_part=check_part if check_entries else None)
        self.column_means_ = fitted.row_means  # D symmetric: row means are the column means
        self.grand_mean_ = fitted.grand_mean
        self.frobenius_norm_ = fitted.frobenius_norm
        self.n_matvec_ = fitted.n_vectors
        self.n_passes_ = fitted.n_passes
        return fitted.eigenvalues, fitted.eigenvectors

    # -- out-of-sample projection -------------------------------------------------------------

    def transform(self, D_new):
        """Project new points given their distances to the M fitted points (lazy embedding).

        D_new: (M_new, M) with D_new[q, j] = d_B(q, p_j); one point's distances are a (1, M) matrix
        (a 1-D row is refused, scikit-learn's convention). Classical-MDS / Nystroem formula, exact for
        in-sample rows (x_q = coords_ of that point):

            b_qj = -1/2 (delta_qj - mean_j delta_qj - D_bar_j + D_bar_bar)
            x_qk = sum_j V_jk b_qj / (sign(lambda_k) sqrt|lambda_k|)

        Time-like axes therefore divide by -sqrt|lambda|. Axes with lambda = 0 give coordinate 0.
        Rows are processed in blocks, so D_new may be an h5py Dataset or another streamed matrix-like
        (see the module docstring), whose entries are checked as they are read.
        Raises ``sklearn.exceptions.NotFittedError`` before ``fit``.
        """
        check_is_fitted(self)
        D_new = validate_distances(self, D_new, reset=False, caller="InPCA.transform", name="D_new")
        streamed = is_streamed(D_new)
        magnitude = np.sqrt(np.abs(self.eigenvalues_))
        scale = np.where(self.eigenvalues_ < 0, -magnitude, magnitude)
        inverse_scale = np.divide(1.0, scale, out=np.zeros_like(scale), where=scale != 0)
        centred_column_means = self.column_means_ - self.grand_mean_
        coords = np.empty((D_new.shape[0], self.components_.shape[1]), dtype=np.float64)
        for i0, i1, rows in row_blocks(D_new, self.block_bytes):
            if streamed:
                check_block(rows, "InPCA.transform", "D_new", (i0, 0))
            b = rows - rows.mean(axis=1, keepdims=True)
            b -= centred_column_means[None, :]
            b *= -0.5
            coords[i0:i1] = (b @ self.components_) * inverse_scale
        return coords

    def fit_transform(self, D, y=None):
        """Fit D and return ``coords_``: the in-sample coordinates from the eigenpairs themselves
        (``transform(D)`` would give the same up to rounding, at the cost of another pass over D)."""
        return self.fit(D).coords_
