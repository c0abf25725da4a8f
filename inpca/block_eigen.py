"""The exact embedding in a few passes over D: a block eigensolver for W = -1/2 J D J.

Why
---
ARPACK's Lanczos (``InPCA(solver="lanczos")``) multiplies W by one vector at a time: the top 10
eigenpairs of trajectory distances take 34-76 products, and when D is streamed from disk (the
distance tiles of a large split) every product is a pass over the files. Such a pass is bound by
reading and converting D, its M^2 / 2 stored numbers, more than by the M^2 multiply-adds per vector,
so a pass that multiplies a block of b vectors costs far less than b single products, at BLAS-3
speed, and advances b directions at once. The solver here needs several times fewer passes than
ARPACK needs products, and each pass reads every stored part of D once and applies it to both
triangles: a part D_IJ off the diagonal gives rows I the product D_IJ X_J and rows J the product
D_IJ^T X_I (:func:`stored_parts`).

Algorithm: block Lanczos, full reorthogonalisation, thick restart
-----------------------------------------------------------------
After every pass the solver holds an orthonormal basis Q (M, n) of a block Krylov space
span{X, W X, W^2 X, ...} of a random start block X, the projection H = Q^T W Q, and the next block
P (M, b), orthonormal and orthogonal to Q, such that

    W Q = Q H + P E                       (E, (b, n): the part of W Q outside the span of Q)

A pass computes Y = W P. Q grows by P, H by the column Q^T Y and the block P^T Y, and the part of Y
outside the new Q, orthogonalised twice (classical Gram-Schmidt twice is enough for double
precision), factors as Y - Q Q^T Y = P' B: P' is the next block. Rayleigh-Ritz on the small H gives
Ritz pairs (theta_i, Q s_i) with their signs, and their residuals cost no pass,
||W Q s_i - theta_i Q s_i|| = ||B s_i'|| (s_i' the rows of s_i on the newest block). The k pairs of
largest |theta| are accepted once every residual is <= tol |theta_i|, ARPACK's test: the error of an
eigenvalue is then about (tol |theta|)^2 / gap, that of its eigenvector about tol |theta| / gap
(gap: to the rest of the spectrum), which is why the default tol (BLOCK_TOL) can be looser than
ARPACK's for the same eigenvalues.

Largest |lambda| of either sign converge together: Ritz values approximate the spectrum from both
ends, and the Krylov space of degree q holds the Chebyshev-like polynomial p_q(W) X that is small on
the unwanted middle of the spectrum [-|lambda_(k+1)|, |lambda_(k+1)|] and large outside it. Keeping
the whole Krylov space rather than only its last block, as subspace (power) iteration and the
randomized range finder do (Halko, Martinsson & Tropp, SIAM Review 2011), needs about the square root
of their number of passes for a given accuracy (Musco & Musco, NeurIPS 2015), so the basis is kept
(memory M x max_basis); a block of b = k + oversampling columns keeps a gap to lambda_(b+1) even where
lambda_k and lambda_(k+1) are close. When the basis is full, a thick restart (Wu & Simon, SIAM J.
Matrix Anal. Appl. 2000) keeps the Ritz vectors of largest |theta| and their residual coupling,
Q <- Q S, H <- diag(theta), E <- B S', and goes on from P' without a pass.

The constant vector is an exact null vector of W (W 1 = 0): the start block and every new block are
kept orthogonal to it, so the Krylov space lives in the (M - 1)-dimensional range of J. A direction
of P' whose coefficient in B is at rounding level (the Krylov space has become invariant, e.g. W of
rank < b) is replaced by a random one, orthogonalised like the others, with a zero row in B.

The start block comes from ``numpy.random.default_rng(seed)`` and every operation is in a fixed
order, so repeated fits are bit-for-bit identical.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.linalg
from threadpoolctl import ThreadpoolController

from .row_blocks import MAX_NORM_CANCELLATION, row_blocks, sum_of_squares, upper_parts

# Block size b = k + BLOCK_OVERSAMPLING: the convergence of the k-th pair is governed by its gap to
# lambda_(b+1), not to lambda_(k+1), so extra vectors keep it fast where |lambda_k| and
# |lambda_(k+1)| are close. More columns cost more arithmetic per pass (M^2 b multiply-adds) but no
# more reading. Measured for k = 10 on the scale benchmark's trajectories (M = 20,021, where
# |lambda_9| / |lambda_10| = 1.008): 13, 11, 9 and 8 passes with 10, 20, 30 and 40 extra vectors at
# tol 1e-8 (16, 13, 11, 10 at 1e-12); on benchmarks/embedding.py's matrix (M = 20,000) 7, 6, 5 (8, 7, 7).
BLOCK_OVERSAMPLING = 30

# Thick restart once the basis holds this many blocks (memory M x b x MAX_BLOCKS float64: 3.8 kB
# per point for k = 10). Runs that converge in at most this many passes never restart.
MAX_BLOCKS = 12

# Default residual tolerance (InPCA(tol=None)): every accepted pair has ||W v - theta v|| <= 1e-8 |theta|.
# The eigenvalue error is about the square of that and the eigenvector error about it over the
# relative gap: against the converged pairs at M = 50,021 (the scale benchmark, |lambda_7..10| within
# 11 %), the last pass at 1e-8 had eigenvalues within 1.6e-14, the top 3 axes' coordinates within
# 2.4e-15 and every axis within 1.2e-9 (relative RMS); ARPACK's 1e-12 took three more passes for no
# difference above 1e-14 in eigenvalues. Float32 tiles round D itself at 6e-8.
BLOCK_TOL = 1e-8

# The solver gives up (LinAlgError) after this many passes over D.
MAX_PASSES = 200

# Coefficients of a new block below this fraction of ||W|| are rounding noise: that direction of the
# Krylov space is invariant, and a random direction takes its place.
_NOISE = 1e-12


class BlockEigenResult(NamedTuple):
    eigenvalues: np.ndarray  # (k,) signed, by |lambda| descending
    eigenvectors: np.ndarray  # (n, k) orthonormal
    n_passes: int  # products with a block, i.e. passes over D
    n_vectors: int  # vectors multiplied in all (sum of the block sizes)


def block_eigsh(multiply, n, k, *, block_size, tol, max_basis, max_passes=MAX_PASSES, seed=0,
                constraint=None, monitor=None):
    """The k eigenpairs of largest |lambda| of a symmetric operator, by block Lanczos.

    multiply : callable, P (n, b) -> W P (n, b); called once per pass
    n : dimension; k : eigenpairs wanted (k <= n minus the columns of ``constraint``)
    block_size : b, columns multiplied per pass; max_basis : basis columns before a thick restart
    tol : a Ritz pair (theta, v) is accepted once ||W v - theta v|| <= tol |theta| (tol = 0: machine
        precision, as in ARPACK)
    constraint : (n, c) orthonormal columns spanning an invariant null space of W, or None: every
        basis vector is kept orthogonal to them (for InPCA, the constant vector)
    monitor : None or callable(passes, theta, residual_norms, vectors), called after every pass with
        the k wanted Ritz values, their residual norms and a function that returns their Ritz vectors
        (progress, diagnostics)
    Raises numpy.linalg.LinAlgError if the pairs have not converged after ``max_passes`` passes.
    """
    rng = np.random.default_rng(seed)
    tol = max(float(tol), np.finfo(np.float64).eps)
    fixed = np.zeros((n, 0)) if constraint is None else np.asarray(constraint, dtype=np.float64)
    c = fixed.shape[1]
    room = n - c  # dimension of the space W acts on
    if not 1 <= k <= room:
        raise ValueError(f"block_eigsh: k must lie in [1, {room}], got {k}")
    b = max(1, min(int(block_size), room))
    max_basis = max(int(max_basis), k + 2 * b)
    # [fixed | Q] in one Fortran array: column blocks are contiguous and appended in place
    basis = np.empty((n, c + min(max_basis, room)), order="F")
    basis[:, :c] = fixed
    used = 0  # columns of Q
    H = np.zeros((0, 0))
    single_thread = ThreadpoolController()
    with single_thread.limit(limits=1, user_api="blas"):
        block = _orthonormal_complement(rng.standard_normal((n, b)), basis[:, :c])
    norm_estimate = 0.0
    passes = vectors = 0
    while True:
        if passes >= max_passes:
            raise np.linalg.LinAlgError(
                f"block eigensolver: the top {k} eigenpairs did not converge in {max_passes} passes "
                f"(tol {tol:g}); use solver='lanczos' or a larger tol")
        Y = np.asarray(multiply(block), dtype=np.float64)
        passes += 1
        width = block.shape[1]
        vectors += width
        # The rest is O(n b^2 + n b max_basis) against the pass's O(n^2 b): on one BLAS thread,
        # because multithreaded LAPACK calls on small matrices stall when cores are shared
        # (0.16 s per QR or eigh instead of a few ms on the loaded 2-core machine).
        with single_thread.limit(limits=1, user_api="blas"):
            basis[:, c + used:c + used + width] = block
            Q = basis[:, :c + used + width]
            coefficients = Q.T @ Y  # rows: fixed, old Q, the block itself
            residual = Y - Q @ coefficients
            residual -= Q @ (Q.T @ residual)  # twice is enough
            H = _grown(H, coefficients[c:], width)
            used += width
            theta, S = scipy.linalg.eigh(H, check_finite=False)
            norm_estimate = max(norm_estimate, float(np.max(np.abs(theta))), float(np.linalg.norm(Y, 2)))
            block, B = _next_block(residual, basis[:, :c + used], rng, min(b, room - used),
                                   _NOISE * norm_estimate)
            order = np.argsort(-np.abs(theta), kind="stable")
            wanted = order[:k]
            if used >= k:
                residual_norms = np.linalg.norm(B @ S[used - width:, wanted], axis=0)
                if monitor is not None:
                    monitor(passes, theta[wanted], residual_norms, lambda: basis[:, c:c + used] @ S[:, wanted])
                if np.all(residual_norms <= tol * np.abs(theta[wanted])) or block.shape[1] == 0:
                    return BlockEigenResult(theta[wanted], basis[:, c:c + used] @ S[:, wanted], passes, vectors)
            if used + block.shape[1] > max_basis:  # thick restart: keep the best Ritz vectors
                # W (Q S) = (Q S) diag(theta) + P' (B S'): the coupling B S' reappears as the rows
                # of Q^T W P' that the next pass computes, so only Q S and theta are kept
                keep = order[:min(used, max(k + b, max_basis // 2), max_basis - b)]
                basis[:, c:c + keep.size] = basis[:, c:c + used] @ S[:, keep]
                H = np.diag(theta[keep])
                used = keep.size


def _grown(H, column, width):
    """H extended by the new block's column of Q^T W Q (its rows for the old basis and itself),
    exactly symmetric."""
    old = H.shape[0]
    grown = np.zeros((old + width, old + width))
    grown[:old, :old] = H
    grown[:, old:] = column
    grown[old:, :old] = column[:old].T
    corner = grown[old:, old:]
    grown[old:, old:] = 0.5 * (corner + corner.T)
    return grown


def _orthonormal_complement(X, basis):
    """Orthonormal columns spanning X's part orthogonal to ``basis`` (two Gram-Schmidt sweeps)."""
    X = X - basis @ (basis.T @ X)
    X -= basis @ (basis.T @ X)
    Q, _ = np.linalg.qr(X)
    return np.asfortranarray(Q)


def _next_block(residual, basis, rng, width, noise):
    """P', B with residual = P' B (to rounding), P' orthonormal and orthogonal to ``basis``, at most
    ``width`` columns (those of largest singular value: beyond the room left the residual has no more
    rank). Directions at rounding level are replaced by random ones with a zero row in B."""
    if width <= 0:
        return np.zeros((residual.shape[0], 0), order="F"), np.zeros((0, residual.shape[1]))
    Qr, Rr = np.linalg.qr(residual)
    U, sigma, Vt = np.linalg.svd(Rr)
    block = Qr @ U[:, :width]
    B = sigma[:width, None] * Vt[:width]
    noisy = sigma[:width] <= noise
    if np.any(noisy):
        block[:, noisy] = rng.standard_normal((block.shape[0], int(noisy.sum())))
        B[noisy] = 0.0
    # one more sweep: directions with small sigma lost orthogonality to the basis in the QR above
    block -= basis @ (basis.T @ block)
    block -= basis @ (basis.T @ block)
    block, T = np.linalg.qr(block)
    return np.asfortranarray(block), T @ B


# --------------------------------------------------------------------------------------------
# Passes over D
# --------------------------------------------------------------------------------------------

def stored_parts(D, block_bytes):
    """Every stored number of a symmetric D once, as (rows, columns, part, mirrored) with
    part = D[rows, columns] in float64 (at most ~block_bytes); a ``mirrored`` part also stands for
    its transpose D[columns, rows], which is not yielded.

    D's own ``tiles(block_bytes)`` if it has one (inpca.tiles.TiledMatrix: each tile file read once),
    else the upper row blocks D[i0:i1, i0:] (in-memory arrays, memmaps, h5py datasets).
    """
    tiles = getattr(D, "tiles", None)
    if callable(tiles):
        yield from tiles(block_bytes)
        return
    M = D.shape[0]
    for i0, i1, rows in row_blocks(D, block_bytes, upper=True):
        yield from upper_parts(i0, i1, M, rows)


class DoubleCentredPasses:
    """W P = -1/2 J D J P for blocks P, each call one pass over D (``n_passes`` counts them).

    The first call also sums D 1 (the row means r, grand mean g) and D^2, from which ||W||_F follows
    (the expansion described at inpca.row_blocks.MAX_NORM_CANCELLATION); if that loses too many digits,
    the next pass also sums the exactly centred entries. ``finish()`` makes that pass on its own if the
    solver stopped before it. ``check_part(part, i0, j0)``, if given, sees every part the first pass
    reads (part = D[i0:i0 + rows, j0:j0 + columns]), e.g. to refuse bad entries as they stream past.
    D is read part by part (:func:`stored_parts`), an array in memory too: dgemm on its upper row
    blocks reads half of D and ran 2-3x faster than BLAS dsymm on all of it.
    """

    def __init__(self, D, block_bytes, check_part=None):
        self._D, self._block_bytes, self._check_part = D, block_bytes, check_part
        self.M = D.shape[0]
        self.n_passes = 0
        self.row_means = self.grand_mean = self.frobenius_norm = None
        self._centred_pending = False

    def __call__(self, P):
        X = P - P.mean(axis=0, keepdims=True)  # J P (P is orthogonal to 1 already, up to rounding)
        first = self.row_means is None
        if first:
            X = np.column_stack([X, np.ones(self.M)])
        product, total = self._pass(X, squares=first, centred=self._centred_pending)
        if first:
            self._statistics(product[:, -1], total)
            product = product[:, :-1]
        elif total is not None:
            self._set_norm(total)
        product -= product.mean(axis=0, keepdims=True)
        product *= -0.5
        return product

    def finish(self):
        """The exactly centred pass for ||W||_F if it is still owed."""
        if self._centred_pending:
            _, total = self._pass(np.zeros((self.M, 0)), squares=False, centred=True)
            self._set_norm(total)

    def _statistics(self, row_sums, sum_sq):
        M = self.M
        self.row_means = row_sums / M
        self.grand_mean = float(self.row_means.mean())
        four_norm_sq = sum_sq - 2.0 * M * float(self.row_means @ self.row_means) + M * M * self.grand_mean**2
        if four_norm_sq <= 0.0 or sum_sq > MAX_NORM_CANCELLATION * four_norm_sq:
            self._centred_pending = True
        else:
            self.frobenius_norm = 0.5 * np.sqrt(four_norm_sq)

    def _set_norm(self, four_norm_sq):
        self.frobenius_norm = 0.5 * np.sqrt(max(four_norm_sq, 0.0))
        self._centred_pending = False

    def _pass(self, X, squares, centred):
        """(D X, then the sum of D^2 if ``squares``, of the centred entries if ``centred``, else None)."""
        self.n_passes += 1
        M, width = X.shape
        X = np.ascontiguousarray(X)
        product = np.zeros((M, width))
        total = 0.0
        shift = None if not centred else self.row_means - self.grand_mean
        for rows, columns, part, mirrored in stored_parts(self._D, self._block_bytes):
            if squares and self._check_part is not None:
                self._check_part(part, rows.start, columns.start)
            if width:
                product[rows] += part @ X[columns]
                if mirrored:
                    product[columns] += part.T @ X[rows]
            if squares or centred:
                if centred:  # D_ij - r_i - r_j + g
                    part = part - self.row_means[rows, None]
                    part -= shift[None, columns]
                total += (2.0 if mirrored else 1.0) * _squares(part)
        return product, (total if squares or centred else None)


def _squares(part):
    """The sum of squares of a part, without copying a strided view of an array in memory."""
    if part.flags.c_contiguous:
        return sum_of_squares(part)
    return float(np.einsum("ij,ij->", part, part))


class DoubleCentredEigen(NamedTuple):
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    row_means: np.ndarray
    grand_mean: float
    frobenius_norm: float
    n_passes: int
    n_vectors: int


def double_centred_eigsh(D, k, *, block_bytes, tol, seed=0, block_size=None, max_basis=None,
                         max_passes=MAX_PASSES, check_part=None):
    """Top k eigenpairs by |lambda| of W = -1/2 J D J, plus D's row means and ||W||_F, from passes
    over D (:class:`DoubleCentredPasses`); block size k + BLOCK_OVERSAMPLING and a basis of
    MAX_BLOCKS blocks unless given."""
    M = D.shape[0]
    b = block_size if block_size is not None else k + BLOCK_OVERSAMPLING
    passes = DoubleCentredPasses(D, block_bytes, check_part)
    result = block_eigsh(passes, M, k, block_size=b, tol=tol,
                         max_basis=max_basis if max_basis is not None else MAX_BLOCKS * b,
                         max_passes=max_passes, seed=seed, constraint=np.full((M, 1), 1.0 / np.sqrt(M)))
    passes.finish()
    return DoubleCentredEigen(result.eigenvalues, result.eigenvectors, passes.row_means, passes.grand_mean,
                              float(passes.frobenius_norm), passes.n_passes, result.n_vectors)
