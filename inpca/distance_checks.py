"""Validation of the distance matrices that InPCA and WeightedLandmarkInPCA take, with the errors they give.

The estimators take a matrix of distances in place of scikit-learn's feature matrix, and refuse what
is not one before any solver sees it:

* the input as scikit-learn validates one (``validate_distances``): through ``check_array`` for an
  array-like (dense, numeric, not complex, at least one row and one column; an ndarray or memmap is used
  in place), 2-D (one point's distances are a (1, M) matrix), and ``n_features_in_`` set at fit or
  compared with the fit's;
* its entries (``check_array_entries``, ``check_block``): finite, and non-negative down to rounding.
  Distances computed in float64 from float32 probabilities hold values like -1.5e-8 for near-identical
  points, so negatives down to -ROUNDING x max(1, the largest distance) (:mod:`inpca.row_blocks`) are
  taken as 0 (an array holding them is replaced by a clipped copy, the input is not changed); anything
  below, and NaN/inf, is refused with one line naming the first such entry;
* its symmetry (``check_symmetric``, ``check_symmetry_sample``): D[i, j] = D[j, i] to 1e-6 of the
  largest distance. The Lanczos and block solvers read only the upper triangle, so an asymmetric D would
  otherwise be silently replaced by the mirror of one triangle.

A matrix read from disk or streamed (``is_streamed``: an h5py Dataset, a ``TiledMatrix``, a
``LandmarkColumns``) is never read whole for validation: only its shape is checked here, and its entries
block by block (``check_block``) where the fit or ``transform`` reads them; its symmetry only where a
solver reads it whole (dense), since sampling its columns would cost a pass over the files.

The estimators' parameters are checked in :mod:`inpca.embedding` (``validate_parameters``), beside the
estimators they describe. This module reads D through :mod:`inpca.row_blocks` and imports nothing else
of the package, so both estimator modules can use it without a cycle.
"""

from __future__ import annotations

import sys

import numpy as np
import scipy.sparse
from sklearn.utils.validation import check_array, validate_data

from .row_blocks import rounding_floor, row_blocks, rows_per_block

__all__ = [
    "SYMMETRIC",
    "check_block",
    "check_array_entries",
    "check_symmetric",
    "check_symmetry_sample",
    "is_streamed",
    "validate_distances",
]

# In-memory arrays are checked for NaN/inf and negative entries in row blocks this small, so the
# block is still in cache when its max is taken after its min: about one pass over memory for both.
_CHECK_BLOCK_BYTES = 2**20


def is_streamed(D):
    """True for a matrix-like that is read in row blocks rather than validated as an array: an
    h5py Dataset, or an object with ``.shape`` and slicing that numpy cannot convert (no
    ``__array__``; TiledMatrix, LandmarkColumns). Validating these as arrays would read them whole.
    Everything else (ndarrays and memmaps, used in place; lists; sparse matrices, refused) goes
    through scikit-learn's check_array."""
    if isinstance(D, np.ndarray) or scipy.sparse.issparse(D):
        return False
    h5py = sys.modules.get("h5py")  # a Dataset exists only once h5py is imported: no import here
    if h5py is not None and isinstance(D, h5py.Dataset):
        return True
    return hasattr(D, "shape") and hasattr(D, "__getitem__") and not hasattr(D, "__array__")


def check_block(block, caller, name, offset=(0, 0), count=None) -> bool:
    """Refuse a 2-D ``block`` (at ``offset`` in ``name``) unless every entry is finite and above the
    rounding floor (rounding_floor): one ValueError line naming its first bad entry in row-major
    order (NaN/inf before negative) and, if ``count`` is given, ``count(kind)``: how many such
    entries ``name`` holds. Returns True when the block holds rounding-level negatives (taken as 0)."""
    if block.size == 0:
        return False
    lowest, highest = np.min(block), np.max(block)
    if lowest >= 0 and highest < np.inf:  # NaN propagates through min and fails the comparison
        return False
    floor = rounding_floor(highest) if np.isfinite(highest) else 0.0
    if lowest >= floor and highest < np.inf:
        return True
    non_finite = ~np.isfinite(block)
    kind = "NaN/inf" if non_finite.any() else "negative"
    bad = non_finite if kind == "NaN/inf" else block < floor
    i, j = np.unravel_index(np.argmax(bad), bad.shape)
    where = f"{name}[{offset[0] + i}, {offset[1] + j}] = {block[i, j]:.6g}"
    how_many = "" if count is None else f"{count(kind, floor)} entries, "
    if kind == "NaN/inf":
        raise ValueError(f"{caller}: NaN/inf values in {name}: {how_many}first {where}; distances must be finite")
    # scikit-learn's wording for refused negative input ("Negative values in data")
    raise ValueError(f"{caller}: Negative values in data {name}: {how_many}first {where}; distances must be >= 0 "
                     f"(negatives down to {floor:.3g} are rounding, taken as 0)")


def check_array_entries(D, caller, name) -> bool:
    """Refuse an in-memory array with NaN/inf or negative entries below rounding (check_block),
    counting them. Returns True when D holds rounding-level negatives."""
    def count(kind, floor):
        def is_bad(b):
            return ~np.isfinite(b) if kind == "NaN/inf" else b < floor
        return sum(int(np.count_nonzero(is_bad(b))) for _, _, b in row_blocks(D, _CHECK_BLOCK_BYTES))

    rounded = False
    for i0, _, rows in row_blocks(D, _CHECK_BLOCK_BYTES):
        rounded |= check_block(rows, caller, name, (i0, 0), count)
    return rounded


def validate_distances(estimator, D, *, reset, caller, name, dtype="numeric"):
    """D as scikit-learn validates an input, with n_features_in_ set (``reset``) or compared with
    the fit's. Returns D: an array, or a streamed matrix-like (is_streamed) unchanged.

    An array-like goes through check_array (dense, numeric, not complex, at least one row and one
    column; an ndarray or memmap of a numeric dtype is returned as is, not copied) and its entries
    are checked here (check_array_entries). A streamed matrix-like keeps its type and only its shape is
    checked here: its entries are checked block by block where they are read. Both must be 2-D:
    a single row is D[None, :], not D (scikit-learn's convention).
    """
    streamed = is_streamed(D)
    if not streamed and getattr(getattr(D, "dtype", None), "kind", None) == "c":
        # check_array refuses it too, but prints the whole array after its line
        raise ValueError(f"{caller}: Complex data not supported: {name} has dtype {D.dtype}; distances are real")
    if not streamed:
        D = check_array(D, accept_sparse=False, dtype=dtype, ensure_2d=False, ensure_all_finite=False,
                        estimator=estimator, input_name=name)
    shape = tuple(D.shape)
    if len(shape) != 2:
        raise ValueError(f"{caller}: {name} must be a 2-D matrix of distances, got shape {shape}; Reshape your "
                         f"data: one point's distances are {name}.reshape(1, -1)")
    if not streamed:
        if check_array_entries(D, caller, name):
            D = np.maximum(D, 0.0, dtype=np.float64)  # rounding-level negatives as 0: a copy, the input unchanged
    elif 0 in shape:
        raise ValueError(f"{caller}: {name} has shape {shape}; at least one row and one column are required")
    validate_data(estimator, D, skip_check_array=True, reset=reset)  # sets or checks n_features_in_
    return D


SYMMETRIC = "distances must satisfy D[i, j] = D[j, i]"


def check_symmetric(D, block_bytes, what, expected):
    """All of the in-memory (L, L) matrix D, in row blocks, with InPCA's tolerance; the error says
    ``what`` is not symmetric and what was ``expected``."""
    scale = max(float(D.max()), -float(D.min())) if D.size else 0.0
    per_block = rows_per_block(D.shape[1], block_bytes)
    for i0 in range(0, D.shape[0], per_block):
        i1 = i0 + per_block
        asymmetry = np.max(np.abs(D[i0:i1] - D[:, i0:i1].T))
        if asymmetry > 1e-6 * max(scale, 1e-300):
            raise ValueError(f"{what} is not symmetric (max |D - D^T| = {asymmetry:.3g}): {expected}")


def check_symmetry_sample(D, n_rows=8, seed=0):
    """Spot-check symmetry on a few rows of an in-memory D (the Lanczos path reads only one triangle,
    so an asymmetric D would silently be replaced by its upper triangle's mirror). Reading columns of
    an on-disk matrix costs a pass over the file, so that case is not checked."""
    if not isinstance(D, np.ndarray) or D.shape[0] == 0:
        return
    index = np.sort(np.random.default_rng(seed).choice(D.shape[0], min(n_rows, D.shape[0]), replace=False))
    rows = np.asarray(D[index, :], dtype=np.float64)
    columns = np.asarray(D[:, index], dtype=np.float64).T
    asymmetry = np.max(np.abs(rows - columns))
    if asymmetry > 1e-6 * max(np.max(np.abs(rows)), 1e-300):
        raise ValueError(f"InPCA.fit: D is not symmetric (max |D - D^T| = {asymmetry:.3g} on sampled rows): "
                         f"{SYMMETRIC}")
