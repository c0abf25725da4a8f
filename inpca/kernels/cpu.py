"""Fused multi-threaded CPU kernel (numba): per-pair sums of the Bhattacharyya or Hellinger terms.

Design ("prod64r4" of perf.md section 7, adapted to any number of classes):

* Input S = sqrt(p * 2**32) in float32, laid out (samples, classes, points): for one sample and
  class, the values of all points are contiguous, so the innermost loop over column points v is a
  contiguous vector loop.
* Work is split into tasks of ROW_BLOCK = 32 row points x one tile of COL_TILE column points; for a
  symmetric input only tiles on or above the diagonal exist (upper triangle). Tasks are scheduled
  dynamically over the threads.
* Within a task, samples are walked in slabs small enough that the slab's column data stays in L2
  while the 8 groups of 4 rows reuse it.
* Register blocking: for one sample, the sqrt values of 4 row points for a block of CLASS_BLOCK = 5
  classes (20 scalars) are hoisted into locals before the v loop. The loop then loads S[n, c, v]
  once for 4 rows. (Indexing them inside the loop instead stops LLVM from vectorising it, because
  it cannot rule out aliasing with the stores.) Classes are zero-padded to a multiple of 5; the BC of
  more than 5 classes is accumulated over class blocks in a small float32 row buffer, so one
  compiled kernel serves every C (C = 10, the CIFAR case, is exactly two blocks).
* The clamped float32 factors are multiplied into a float64 running product per pair in a separate,
  all-float64 loop; keeping the float32 BC loop free of float64 lets LLVM use 8 float32 lanes
  there, where a mixed loop gets 4. Every PEEL_EVERY = 6 samples the binary exponent is split off
  the product into an int64 array (no log, no branch); one log per pair per call at the end. See
  `inpca.kernels` for the numerics.

`cache=True`: the first call compiles for ~5-10 s; later processes load the machine code from
numba's cache (__pycache__ next to this file, or NUMBA_CACHE_DIR) in well under a second.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from . import BC_SCALE, FACTOR_MAX, FACTOR_MIN, LOG_BC_SCALE
from .layout import round_up

CLASS_BLOCK = 5      # classes per hoisted block (4 rows x 5 classes = 20 scalars in registers)
ROWS = 4             # register blocking: rows sharing each load of S[n, c, v]
ROW_BLOCK = 32       # rows per task (8 groups of 4)
PEEL_EVERY = 6       # samples between exponent peels: 6 factors >= 2**-112.3 cannot underflow a float64
COL_TILE = 256       # columns per task: the product rows (4 x 256 x 8 B) and the slab rows stay in L1/L2
SLAB = 24            # samples per slab (a multiple of PEEL_EVERY): 24 x 10 x 256 x 4 B = 240 KB of S in L2

_F_MIN = np.float32(FACTOR_MIN)
_F_MAX = np.float32(FACTOR_MAX)
_LN2 = math.log(2.0)
_LOG_BC_SCALE = LOG_BC_SCALE
_INV_BC_SCALE = 1.0 / BC_SCALE
_BC_SCALE32 = np.float32(BC_SCALE)
_MANTISSA_BITS = 0x000FFFFFFFFFFFFF
_EXPONENT_OF_ONE = 0x3FF0000000000000


@numba.njit(cache=True, fastmath={"contract"})
def _load5(S, k, cb, i):
    """S[k, cb:cb+5, i] as a tuple of scalars (lives in registers)."""
    return S[k, cb, i], S[k, cb + 1, i], S[k, cb + 2, i], S[k, cb + 3, i], S[k, cb + 4, i]


@numba.njit(cache=True, fastmath={"contract"})
def _dot5(a, u):
    return a[0] * u[0] + a[1] * u[1] + a[2] * u[2] + a[3] * u[3] + a[4] * u[4]


@numba.njit(cache=True, fastmath={"contract"})
def _clamp(x):
    return min(max(x, _F_MIN), _F_MAX)


@numba.njit(cache=True, fastmath={"contract"})
def _sample_bcs(T, U, k, r0, c0, width, n_classes, buf):
    """buf[r, j] = BC' of row r0 + r and column c0 + j at sample k, for r < 4, j < width (unclamped)."""
    a0 = _load5(T, k, 0, r0)
    a1 = _load5(T, k, 0, r0 + 1)
    a2 = _load5(T, k, 0, r0 + 2)
    a3 = _load5(T, k, 0, r0 + 3)
    for j in range(width):
        u = _load5(U, k, 0, np.uint64(c0 + j))  # unsigned index: no negative-index wraparound code
        buf[0, j] = _dot5(a0, u)
        buf[1, j] = _dot5(a1, u)
        buf[2, j] = _dot5(a2, u)
        buf[3, j] = _dot5(a3, u)
    for cb in range(CLASS_BLOCK, n_classes, CLASS_BLOCK):
        a0 = _load5(T, k, cb, r0)
        a1 = _load5(T, k, cb, r0 + 1)
        a2 = _load5(T, k, cb, r0 + 2)
        a3 = _load5(T, k, cb, r0 + 3)
        for j in range(width):
            u = _load5(U, k, cb, np.uint64(c0 + j))
            buf[0, j] += _dot5(a0, u)
            buf[1, j] += _dot5(a1, u)
            buf[2, j] += _dot5(a2, u)
            buf[3, j] += _dot5(a3, u)


@numba.njit(parallel=True, cache=True, fastmath={"contract"})
def pair_sums(T, U, task_rows, task_cols, task_ends, slab, hellinger, sums):
    """sums[u, v] += sum over the samples of T, U of the per-sample term, for the pairs of each task.

    T: (n, Cp, M1p) and U: (n, Cp, M2p) float32 scaled square roots, Cp a multiple of CLASS_BLOCK,
    M1p a multiple of ROW_BLOCK. Task t covers rows task_rows[t] .. +ROW_BLOCK and columns
    task_cols[t] .. task_ends[t]. sums: (M1p, M2p) float64; each task adds into its own block only.
    """
    n, n_classes, _ = T.shape
    for t in numba.prange(task_rows.shape[0]):
        rb = task_rows[t]
        c0 = task_cols[t]
        width = task_ends[t] - c0
        # Bhattacharyya: running product (mantissa) and exponent; Hellinger: running sum of BC'.
        prod = np.full((ROW_BLOCK, width), 0.0 if hellinger else 1.0)
        expo = np.zeros((ROW_BLOCK, width), np.int64)
        bits = prod.view(np.int64)
        buf = np.empty((ROWS, width), np.float32)
        for s0 in range(0, n, slab):
            s1 = min(s0 + slab, n)
            for g in range(0, ROW_BLOCK, ROWS):
                for q0 in range(s0, s1, PEEL_EVERY):
                    for k in range(q0, min(q0 + PEEL_EVERY, s1)):
                        _sample_bcs(T, U, k, rb + g, c0, width, n_classes, buf)
                        for r in range(ROWS):
                            acc = prod[g + r]
                            bcs = buf[r]
                            if hellinger:
                                for j in range(width):
                                    acc[j] += np.float64(_clamp(bcs[j]))
                            else:
                                for j in range(width):
                                    acc[j] *= np.float64(_clamp(bcs[j]))
                    if not hellinger:
                        for r in range(ROWS):
                            row_bits = bits[g + r]
                            row_expo = expo[g + r]
                            for j in range(width):
                                x = row_bits[j]
                                row_expo[j] += ((x >> 52) & 0x7FF) - 1023
                                row_bits[j] = (x & _MANTISSA_BITS) | _EXPONENT_OF_ONE
        for r in range(ROW_BLOCK):
            out = sums[rb + r]
            for j in range(width):
                if hellinger:
                    out[c0 + j] += n - prod[r, j] * _INV_BC_SCALE
                else:
                    out[c0 + j] += n * _LOG_BC_SCALE - (math.log(prod[r, j]) + expo[r, j] * _LN2)


@numba.njit("void(float32[:, :, :], float32[:, :, ::1])", parallel=True, cache=True)
def scaled_sqrt_layout(P, out):
    """out[n, c, m] = sqrt(P[m, n, c] * 2**32) for P (points, samples, classes), any strides.

    One pass, blocks of 8 samples per task so that the block's output rows (8 x C x M floats) stay in
    cache while all points are written into them; ~10x faster here than torch's permuted copy.
    Padded entries of `out` are left as they are (zero).
    """
    m_points, n, n_classes = P.shape
    for block in numba.prange((n + 7) // 8):
        for m in range(m_points):
            for k in range(block * 8, min(block * 8 + 8, n)):
                for c in range(n_classes):
                    out[k, c, m] = np.sqrt(P[m, k, c] * _BC_SCALE32)


def make_tasks(m1p: int, m2p: int, symmetric: bool, col_tile: int = COL_TILE):
    """(rows, cols, ends) int64 arrays: one task per ROW_BLOCK rows x col_tile columns."""
    rows, cols, ends = [], [], []
    for rb in range(0, m1p, ROW_BLOCK):
        start = rb if symmetric else 0
        for c0 in range(start, m2p, col_tile):
            rows.append(rb)
            cols.append(c0)
            ends.append(min(c0 + col_tile, m2p))
    as_array = lambda x: np.asarray(x, dtype=np.int64)  # noqa: E731
    return as_array(rows), as_array(cols), as_array(ends)


class NumbaKernel:
    """The CPU kernel; `prepare` takes numpy arrays or torch tensors (points, samples, classes)."""

    name = "numba"
    device = "cpu"

    def __init__(self, col_tile: int = COL_TILE, slab: int = SLAB):
        if slab % PEEL_EVERY:
            raise ValueError(f"slab must be a multiple of {PEEL_EVERY}, got {slab}")
        self.col_tile, self.slab = col_tile, slab

    def prepare(self, probs):
        """(samples, classes padded to 5k, points padded to 32k) float32 scaled square roots."""
        if not isinstance(probs, np.ndarray):  # a torch tensor, possibly on a GPU
            probs = probs.detach().cpu().numpy()
        if probs.dtype != np.float32 or not probs.dtype.isnative:
            probs = probs.astype(np.float32)  # all kernels round inputs to float32 first
        m, n, c = probs.shape
        out = np.zeros((n, round_up(c, CLASS_BLOCK), round_up(m, ROW_BLOCK)), np.float32)
        scaled_sqrt_layout(probs, out)
        return out

    def new_sums(self, m1: int, m2: int):
        return np.zeros((round_up(m1, ROW_BLOCK), round_up(m2, ROW_BLOCK)))

    def accumulate(self, left, right, symmetric: bool, metric: str, sums) -> None:
        """Add the per-pair sums of this chunk (left, right from `prepare`) into `sums`."""
        tasks = make_tasks(left.shape[2], right.shape[2], symmetric, self.col_tile)
        # Tasks differ in width (the last tile of each row) and there are many of them: hand them out
        # one at a time instead of in equal contiguous ranges per thread.
        with numba.parallel_chunksize(1):
            pair_sums(left, right, *tasks, self.slab, metric == "hellinger", sums)

    def to_numpy(self, sums, m1: int, m2: int) -> np.ndarray:
        return sums[:m1, :m2]
