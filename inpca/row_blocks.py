"""Reading a distance matrix in bounded row blocks, and the sums InPCA takes over it.

A leaf module: :mod:`inpca.embedding`, :mod:`inpca.block_eigen`, :mod:`inpca.landmarks`,
:mod:`inpca.distance_checks` and :mod:`inpca.tiles` read D through these helpers (an in-memory
float64 array as views, anything else, an h5py Dataset or a streamed matrix-like, one bounded block
at a time, cast to float64, with rounding-level negatives taken as 0).
"""

from __future__ import annotations

import numpy as np

# Row blocks are sized by bytes so that memory stays bounded for any M: a block of float64 rows
# at most this large is read (or cast) at a time. 64 MB keeps the overhead of the Python loop
# negligible (a block is >= 400 rows at M = 20,000) while being small next to D itself.
DEFAULT_BLOCK_BYTES = 64 * 2**20

# Distances computed independently in float64 from float32 probabilities (an einsum of sqrt(P)sqrt(Q),
# then -log, as the authors' code does) hold values like -1.5e-8 for near-identical points: the
# Bhattacharyya coefficient (<= 1) is rounded at ~1e-7. Negatives down to ROUNDING * max(1, the
# block's largest distance) are that rounding, taken as 0; anything below is refused.
ROUNDING = 1e-6


def rounding_floor(highest) -> float:
    """The most negative entry still taken as a rounded 0, for a block whose largest entry is `highest`."""
    return -ROUNDING * max(1.0, float(highest))


# ||W||_F^2 is first computed in the same single pass as the row sums, from the expansion
#   4 ||W||_F^2 = sum D_ij^2 - 2 M sum_i r_i^2 + M^2 g^2      (r = row means, g = grand mean),
# which loses about log10(kappa) digits with kappa = sum D^2 / (4 ||W||_F^2) (kappa ~ 5 for
# trajectory distances, where the expansion matches the exact sum to 6e-15 at M = 10,000; large when
# all distances share a big common offset). The sums themselves carry ~1e-12 relative rounding at
# M^2 = 1e8 terms, so above kappa = 1e4 (>= ~8 digits left) a second, exactly centred pass is made.
MAX_NORM_CANCELLATION = 1e4


# --------------------------------------------------------------------------------------------
# Row-block access to D
# --------------------------------------------------------------------------------------------

def rows_per_block(n_columns, block_bytes, chunk_rows=None):
    """Number of rows whose float64 copy fits in ``block_bytes`` (at least 1), rounded to a
    multiple of the storage chunk height when D is a chunked HDF5 dataset (whole chunks per read)."""
    rows = max(1, int(block_bytes) // (8 * max(1, n_columns)))
    if chunk_rows and rows > chunk_rows:
        rows -= rows % chunk_rows
    return rows


def row_blocks(D, block_bytes=DEFAULT_BLOCK_BYTES, upper=False):
    """Yield (i0, i1, rows) with rows = D[i0:i1] as a float64 array, or with upper=True only the
    block's part on and to the right of the diagonal, rows = D[i0:i1, i0:] (for a symmetric D that
    is all the information, read once).

    For an in-memory float64 ndarray the rows are views (no copy). Anything else (float32, memmap
    of another dtype, h5py Dataset) is read and cast one bounded block at a time.
    """
    n_rows, n_columns = D.shape
    chunks = getattr(D, "chunks", None)
    rows = rows_per_block(n_columns, block_bytes, chunks[0] if chunks else None)
    is_float64_array = isinstance(D, np.ndarray) and D.dtype == np.float64
    for i0 in range(0, n_rows, rows):
        i1 = min(n_rows, i0 + rows)
        block = D[i0:i1, i0:] if upper else D[i0:i1]
        if not is_float64_array:
            block = np.asarray(block, dtype=np.float64)
        if not isinstance(D, np.ndarray) and block.size and 0 > block.min() >= rounding_floor(block.max()):
            # a streamed D's rounding-level negatives as 0 (larger ones stay, refused where D is checked)
            block = np.maximum(block, 0.0)
        yield i0, i1, block


def whole_blas_matrix(D):
    """D as an F-contiguous float64 array that BLAS takes in one call without a copy, or None.

    A C-contiguous D is passed as its transpose (the same matrix, D being symmetric). One call over
    all of D beats a Python loop over row blocks: a matrix-vector product is bound by memory
    bandwidth either way, but each multithreaded BLAS call synchronises its threads, and on a shared
    2-core VM a call whose partner thread has been descheduled can stall for milliseconds (48 row-block
    gemv calls per product: 0.1 s when idle, up to 0.29 s under load).
    """
    if isinstance(D, np.ndarray) and D.dtype == np.float64:
        if D.flags.f_contiguous:
            return D
        if D.flags.c_contiguous:
            return D.T
    return None


def upper_parts(i0, i1, j1, rows):
    """The two parts of an upper row block rows = D[i0:i1, i0:j1] of a symmetric D: its diagonal
    square (both triangles, used as it is) and the rest, which also stands for its transpose."""
    yield slice(i0, i1), slice(i0, i1), rows[:, :i1 - i0], False
    if i1 < j1:
        yield slice(i0, i1), slice(i1, j1), rows[:, i1 - i0:], True


def symmetric_product(D, X, block_bytes):
    """D X for a symmetric D (M, M) and X (M, n), reading only D's upper triangle.

    In memory (see whole_blas_matrix): BLAS dsymv, one call per column, reading half of D: 2x faster
    than dgemv (0.08-0.13 s against 0.2-0.34 s at M = 20,000 under load). Otherwise the upper part of
    each row block, R = D[i0:i1, i0:], serves twice: (D X)[i0:i1] += R X[i0:] and, by symmetry,
    (D X)[i1:] += R[:, i1 - i0:]^T X[i0:i1], so an on-disk D is also read only half.
    """
    whole = whole_blas_matrix(D)
    if whole is not None:
        # scipy.linalg costs ~0.2 s to import, and the distance jobs read their tiles' parts through
        # this module (upper_parts): it loads with the first product, not with the module
        import scipy.linalg.blas

        product = np.empty_like(X)
        for column in range(X.shape[1]):
            product[:, column] = scipy.linalg.blas.dsymv(1.0, whole, X[:, column], lower=0)
        return product
    M = D.shape[0]
    product = np.zeros_like(X)
    for i0, i1, rows in row_blocks(D, block_bytes, upper=True):
        product[i0:i1] += rows @ X[i0:]
        if i1 < M:
            product[i1:] += rows[:, i1 - i0:].T @ X[i0:i1]
    return product


def sum_of_squares(array):
    """The sum of the squared entries of a float64 array, as one dot product (no copy when contiguous)."""
    flat = array.ravel(order="K") if (array.flags.c_contiguous or array.flags.f_contiguous) \
        else np.ravel(array)
    return float(np.dot(flat, flat))
