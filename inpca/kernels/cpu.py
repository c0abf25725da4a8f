"""Fused multi-threaded CPU kernel (numba): per-pair sums of the Bhattacharyya or Hellinger terms.

A GEMM-style register-tiled micro-kernel, written with the explicit 8-lane vectors of
`inpca.kernels.simd`: plain numba loops are vectorised only in the innermost loop, so they cannot
keep per-pair accumulators in registers across samples (the previous kernel of that kind stored and
reloaded them every sample and reached half the speed).

* Input S = sqrt(p * 2**32) in float32, in blocks of BLOCK = 16 points: (points / 16, samples,
  classes, 16). One block's record for one sample is C x 16 contiguous floats (640 B at C = 10) and
  consecutive samples' records are contiguous, so a tile streams through memory in order.
* Micro-kernel (`_tile_product`): 2 row points x 16 column points (two 8-lane vectors per row) walk
  the samples of a slab. Per sample and class: 2 column vectors loaded, 2 row values broadcast,
  4 multiply-adds. Then each of the 4 BC' vectors is clamped and multiplied into a float32 running
  product whose binary exponent is split off at once (`simd.peel`: shift, add, and, or; no log, no
  branch). The 4 products stay in registers for the whole slab; their exponent sums go through L1.
  4 accumulators + 4 products + 4 operands + 4 constants fill the 16 AVX2 registers, which is why
  the tile is 2 x 16 and the product float32 (a float64 one needs twice the registers).
* The class loop is fully unrolled for C = 10 (a literal count at the call site; 1.2x).
* Tasks: up to ROW_BLOCK rows x COL_TILE columns, scheduled dynamically over the threads; for a
  symmetric input only tasks reaching the diagonal, and tiles wholly below it are skipped. The tiles
  have no bounds checks, so every task bound is a multiple of BLOCK: the constructor and
  `make_tasks` refuse other sizes, and the reduction for small matrices keeps them multiples. Within a
  task, samples go in slabs of SLAB; per slab a 16-row block's data is reused across all column
  blocks and each column block's across the 8 row pairs of the block.
* One log per pair per call at the end: sum_n t_n = n LOG_BC_SCALE - (log(mantissa) + exponent ln 2).
  The float32 product rounds by 2**-24 relative per sample, 6e-8 absolute in that sample's term,
  unbiased, as in the GPU kernel (see `inpca.kernels`).
* Hellinger: the same tiles sum the clamped BC' in float32 over one slab; slab sums add in float64.

Tile shape, ROW_BLOCK, COL_TILE and SLAB were chosen by timing on the 2-core AMD EPYC (Zen 3, AVX2)
development machine at M = 512, N = 10,000: see `benchmarks/distances.py` and the README.

`cache=True`: the first call compiles for ~10 s; later processes load the machine code from
numba's cache (__pycache__ next to this file, or NUMBA_CACHE_DIR) in well under a second.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from . import BC_SCALE, FACTOR_MAX, FACTOR_MIN, LOG_BC_SCALE
from . import simd
from .layout import round_up

BLOCK = 16         # points per layout block = columns per register tile (2 vectors of 8)
ROW_BLOCK = 128    # rows per task
COL_TILE = 64      # columns per task: many tasks, so the triangle's uneven rows balance over threads
SLAB = 16          # samples per slab: a row block's and a column block's slab (2 x 10 KB at C = 10) fit L1
# Exponent fields (<= 127 + 33 per sample) are summed in int32 within one call.
MAX_SAMPLES_PER_CALL = (2**31 - 1) // 256

_F_MIN = np.float32(FACTOR_MIN)
_F_MAX = np.float32(FACTOR_MAX)
_LN2 = math.log(2.0)
_LOG_BC_SCALE = LOG_BC_SCALE
_INV_BC_SCALE = 1.0 / BC_SCALE
_BC_SCALE32 = np.float32(BC_SCALE)


@numba.njit(cache=True, fastmath={"contract"})
def _tile_bcs(Tf, Uf, t, u, n_classes):
    """BC' of rows (t, t+1) x columns (u .. u+15) for one sample: 4 vectors (row, column half)."""
    r0 = simd.broadcast(Tf, t)
    r1 = simd.broadcast(Tf, t + 1)
    c0 = simd.load(Uf, u)
    c1 = simd.load(Uf, u + 8)
    b00, b01, b10, b11 = simd.mul(r0, c0), simd.mul(r0, c1), simd.mul(r1, c0), simd.mul(r1, c1)
    # the task loops pass a literal C = 10 (CIFAR-10, digits), for which LLVM unrolls this loop fully
    for c in range(1, n_classes):
        r0 = simd.broadcast(Tf, t + c * BLOCK)
        r1 = simd.broadcast(Tf, t + c * BLOCK + 1)
        c0 = simd.load(Uf, u + c * BLOCK)
        c1 = simd.load(Uf, u + c * BLOCK + 8)
        b00 = simd.fma(r0, c0, b00)
        b01 = simd.fma(r0, c1, b01)
        b10 = simd.fma(r1, c0, b10)
        b11 = simd.fma(r1, c1, b11)
    return b00, b01, b10, b11


@numba.njit(cache=True, fastmath={"contract"})
def _update(m, f, ex, i):
    """m * f with its binary exponent split off into ex[i : i + 8] (both in [1, 2) after)."""
    m, e = simd.peel(simd.mul(m, simd.clamp(f, _F_MIN, _F_MAX)), simd.load(ex, i))
    simd.store(ex, i, e)
    return m


@numba.njit(cache=True, fastmath={"contract"})
def _tile_product(Tf, Uf, t, u, record, k0, k1, n_classes, man, ex, s, width):
    """Multiply the factors of samples k0..k1 into the products of one 2 x 16 tile.

    t, u: indices of sample 0, class 0 of the tile's first row and first column in Tf, Uf; record:
    floats per sample. man/ex: mantissas and exponent sums of the task, row-major with `width`
    columns; the tile's first element is at s. Mantissas stay in registers over the samples;
    exponent sums go through L1 (there are not enough registers for both).
    """
    s1 = s + width
    m00, m01, m10, m11 = simd.load(man, s), simd.load(man, s + 8), simd.load(man, s1), simd.load(man, s1 + 8)
    for k in range(k0, k1):
        b00, b01, b10, b11 = _tile_bcs(Tf, Uf, t + k * record, u + k * record, n_classes)
        m00 = _update(m00, b00, ex, s)
        m01 = _update(m01, b01, ex, s + 8)
        m10 = _update(m10, b10, ex, s1)
        m11 = _update(m11, b11, ex, s1 + 8)
    simd.store(man, s, m00)
    simd.store(man, s + 8, m01)
    simd.store(man, s1, m10)
    simd.store(man, s1 + 8, m11)


@numba.njit(cache=True, fastmath={"contract"})
def _tile_sum(Tf, Uf, t, u, record, k0, k1, n_classes, part, s, width):
    """part[tile] = float32 sums of the clamped BC' of samples k0..k1 (Hellinger), one 2 x 16 tile."""
    b00, b01, b10, b11 = _tile_bcs(Tf, Uf, t + k0 * record, u + k0 * record, n_classes)
    a00 = simd.clamp(b00, _F_MIN, _F_MAX)
    a01 = simd.clamp(b01, _F_MIN, _F_MAX)
    a10 = simd.clamp(b10, _F_MIN, _F_MAX)
    a11 = simd.clamp(b11, _F_MIN, _F_MAX)
    for k in range(k0 + 1, k1):
        b00, b01, b10, b11 = _tile_bcs(Tf, Uf, t + k * record, u + k * record, n_classes)
        a00 = simd.add(a00, simd.clamp(b00, _F_MIN, _F_MAX))
        a01 = simd.add(a01, simd.clamp(b01, _F_MIN, _F_MAX))
        a10 = simd.add(a10, simd.clamp(b10, _F_MIN, _F_MAX))
        a11 = simd.add(a11, simd.clamp(b11, _F_MIN, _F_MAX))
    simd.store(part, s, a00)
    simd.store(part, s + 8, a01)
    simd.store(part, s + width, a10)
    simd.store(part, s + width + 8, a11)


@numba.njit(cache=True, fastmath={"contract"})
def _task_products(Tf, Uf, rb, height, c0, width, n, n_classes, slab, symmetric, man, ex):
    """Multiply all samples' factors into the products of rows rb .. rb + height x columns c0 .. c0 + width.

    symmetric: skip the tiles wholly below the diagonal (their pairs are mirrored at the end).
    """
    record = n_classes * BLOCK          # floats per (block, sample)
    for s0 in range(0, n, slab):
        s1 = min(s0 + slab, n)
        for r_block in range(0, height, BLOCK):
            for j in range(0, width, BLOCK):
                u = (c0 + j) // BLOCK * n * record
                for r in range(r_block, r_block + BLOCK, 2):
                    if symmetric and c0 + j + BLOCK <= rb + r:
                        continue
                    t = (rb + r) // BLOCK * n * record + (rb + r) % BLOCK
                    if n_classes == 10:  # a literal class count lets LLVM unroll the class loop: 1.2x
                        _tile_product(Tf, Uf, t, u, 10 * BLOCK, s0, s1, 10, man, ex, r * width + j, width)
                    else:
                        _tile_product(Tf, Uf, t, u, record, s0, s1, n_classes, man, ex, r * width + j, width)


# _task_sums repeats _task_products' loops on purpose: one shared loop with a metric branch around
# the two tile calls made LLVM compile the product tile worse (11 % slower, measured A/B).
@numba.njit(cache=True, fastmath={"contract"})
def _task_sums(Tf, Uf, rb, height, c0, width, n, n_classes, slab, symmetric, part, total):
    """total += the clamped BC' of the task's pairs summed over all samples (float32 per slab)."""
    record = n_classes * BLOCK
    for s0 in range(0, n, slab):
        s1 = min(s0 + slab, n)
        for r_block in range(0, height, BLOCK):
            for j in range(0, width, BLOCK):
                u = (c0 + j) // BLOCK * n * record
                for r in range(r_block, r_block + BLOCK, 2):
                    if symmetric and c0 + j + BLOCK <= rb + r:
                        continue
                    t = (rb + r) // BLOCK * n * record + (rb + r) % BLOCK
                    if n_classes == 10:
                        _tile_sum(Tf, Uf, t, u, 10 * BLOCK, s0, s1, 10, part, r * width + j, width)
                    else:
                        _tile_sum(Tf, Uf, t, u, record, s0, s1, n_classes, part, r * width + j, width)
        for i in range(total.shape[0]):
            total[i] += part[i]


@numba.njit(parallel=True, cache=True, fastmath={"contract"})
def pair_sums(T, U, tasks, slab, symmetric, hellinger, sums):
    """sums[u, v] += sum over the samples of T, U of the per-sample term, for the pairs of each task.

    T, U: (points / BLOCK, n, C, BLOCK) float32 scaled square roots (`NumbaKernel.prepare`). tasks:
    (n_tasks, 4) int64 rows of (first row, row end, first column, column end), all multiples of
    BLOCK (`make_tasks`). symmetric: T is U and only pairs on or above the diagonal are wanted
    (those below are left as they are). sums: float64 (rows, columns); each task adds into its block.
    """
    _, n, n_classes, _ = T.shape
    Tf = T.reshape(-1)
    Uf = U.reshape(-1)
    for t in numba.prange(tasks.shape[0]):
        rb, height = tasks[t, 0], tasks[t, 1] - tasks[t, 0]
        c0, width = tasks[t, 2], tasks[t, 3] - tasks[t, 2]
        man = np.ones(height * width, np.float32)    # products (Bhattacharyya) or slab sums (Hellinger)
        ex = np.zeros(height * width, np.int32)
        total = np.zeros(height * width if hellinger else 0)
        if hellinger:
            _task_sums(Tf, Uf, rb, height, c0, width, n, n_classes, slab, symmetric, man, total)
        else:
            _task_products(Tf, Uf, rb, height, c0, width, n, n_classes, slab, symmetric, man, ex)
        for r in range(height):
            out = sums[rb + r]
            # symmetric: tiles below the diagonal were skipped (or computed in passing): not written
            for j in range(max(0, rb + r - c0) if symmetric else 0, width):
                i = r * width + j
                if hellinger:
                    out[c0 + j] += n - total[i] * _INV_BC_SCALE
                else:
                    exponent = np.int64(ex[i]) - 127 * n
                    out[c0 + j] += n * _LOG_BC_SCALE - (math.log(np.float64(man[i])) + exponent * _LN2)


@numba.njit("void(float32[:, :, :], float32[:, :, :, ::1])", parallel=True, cache=True)
def scaled_sqrt_layout(P, out):
    """out[m // 16, n, c, m % 16] = sqrt(P[m, n, c] * 2**32) for P (points, samples, classes), any strides.

    One pass over `out` (written in order, padded points set to 0); each task writes one block's
    records for 64 samples.
    """
    m_points, n, n_classes = P.shape
    n_blocks = out.shape[0]
    chunks = (n + 63) // 64
    for task in numba.prange(n_blocks * chunks):
        b = task // chunks
        k0 = task % chunks * 64
        lanes = max(0, min(BLOCK, m_points - b * BLOCK))
        for k in range(k0, min(k0 + 64, n)):
            for c in range(n_classes):
                for i in range(lanes):
                    out[b, k, c, i] = np.sqrt(P[b * BLOCK + i, k, c] * _BC_SCALE32)
                for i in range(lanes, BLOCK):
                    out[b, k, c, i] = 0.0


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_tile_size(name: str, value) -> None:
    """Refuse (one-line ValueError) a task size that is not a positive multiple of BLOCK."""
    if not _is_int(value) or value < BLOCK or value % BLOCK:
        raise ValueError(f"{name} must be a positive multiple of {BLOCK}, got {value!r}")


def halved_tile_size(size: int) -> int:
    """About half of a task size, still a multiple of BLOCK and at least BLOCK: 128 -> 64, 48 -> 16, 80 -> 32."""
    return max(BLOCK, size // 2 // BLOCK * BLOCK)


def make_tasks(m1p: int, m2p: int, symmetric: bool, row_block: int = ROW_BLOCK, col_tile: int = COL_TILE):
    """(n_tasks, 4) int64: (first row, row end, first column, column end) of each task.

    Tasks of row_block rows x col_tile columns (smaller at the ends); for a symmetric input only
    those that reach the diagonal or above it. All four bounds of every task are multiples of BLOCK,
    as `pair_sums` needs: m1p, m2p (padded point counts), row_block and col_tile must be.
    """
    check_tile_size("row_block", row_block)
    check_tile_size("col_tile", col_tile)
    for name, value in (("m1p", m1p), ("m2p", m2p)):
        if not _is_int(value) or value < 0 or value % BLOCK:
            raise ValueError(f"{name} must be a non-negative multiple of {BLOCK} (padded points), got {value!r}")
    tasks = []
    for rb in range(0, m1p, row_block):
        re = min(rb + row_block, m1p)
        for c0 in range(rb if symmetric else 0, m2p, col_tile):
            tasks.append((rb, re, c0, min(c0 + col_tile, m2p)))
    return np.asarray(tasks, dtype=np.int64).reshape(-1, 4)


def padded_points(layout: np.ndarray) -> int:
    """Number of points (padded to a multiple of BLOCK) in a prepared layout."""
    return layout.shape[0] * BLOCK


class NumbaKernel:
    """The CPU kernel; `prepare` takes numpy arrays or torch tensors (points, samples, classes)."""

    name = "numba"
    device = "cpu"
    reuses_buffers = True  # prepare(probs, reuse=...) writes over an earlier result of the same shape

    def __init__(self, row_block: int = ROW_BLOCK, col_tile: int = COL_TILE, slab: int = SLAB):
        # The 2 x 16 register tiles tile a task exactly (no bounds checks in the loops), so a task's
        # rows and columns must be whole layout blocks; a slab is any positive number of samples
        # (its last one may be shorter: `_task_products` and `_task_sums` clip it).
        check_tile_size("row_block", row_block)
        check_tile_size("col_tile", col_tile)
        if not _is_int(slab) or slab < 1:
            raise ValueError(f"slab must be a positive integer (samples per slab), got {slab!r}")
        self.row_block, self.col_tile, self.slab = int(row_block), int(col_tile), int(slab)

    def prepare(self, probs, reuse=None):
        """(points / 16, samples, classes, 16) float32 scaled square roots (points padded with zeros).

        reuse: an earlier result no longer needed; written over if it has the right shape (saves
        allocating and first-touching a new buffer per chunk: ~40 % of this step at N = 10,000).
        """
        if not isinstance(probs, np.ndarray):  # a torch tensor, possibly on a GPU
            probs = probs.detach().cpu().numpy()
        if probs.dtype != np.float32 or not probs.dtype.isnative:
            probs = probs.astype(np.float32)  # all kernels round inputs to float32 first
        m, n, c = probs.shape
        shape = (round_up(m, BLOCK) // BLOCK, n, c, BLOCK)
        reusable = isinstance(reuse, np.ndarray) and reuse.shape == shape and reuse.flags.c_contiguous
        out = reuse if reusable else np.empty(shape, np.float32)
        scaled_sqrt_layout(probs, out)
        return out

    def new_sums(self, m1: int, m2: int):
        return np.zeros((round_up(m1, BLOCK), round_up(m2, BLOCK)))

    def accumulate(self, left, right, symmetric: bool, metric: str, sums) -> None:
        """Add the per-pair sums of this chunk (left, right from `prepare`) into `sums`."""
        n = left.shape[1]
        if n > MAX_SAMPLES_PER_CALL:  # keep the int32 exponent sums exact
            for start in range(0, n, MAX_SAMPLES_PER_CALL):
                stop = min(start + MAX_SAMPLES_PER_CALL, n)
                self.accumulate(left[:, start:stop].copy(), right[:, start:stop].copy(), symmetric, metric, sums)
            return
        tasks = self._tasks(padded_points(left), padded_points(right), symmetric)
        # Tasks differ in width (the last tile of each row) and there are many of them: hand them out
        # one at a time instead of in equal contiguous ranges per thread.
        with numba.parallel_chunksize(1):
            pair_sums(left, right, tasks, self.slab, symmetric, metric == "hellinger", sums)

    def _tasks(self, m1p: int, m2p: int, symmetric: bool):
        """Tasks of the configured size, reduced while there are fewer than two per thread: small
        matrices (the R x R matrices at equal progress, R ~ 10-100) would otherwise be one task on one
        core. Each step halves the larger of row_block and col_tile, rounded down to a multiple of
        BLOCK and never below BLOCK (a plain halving of 48 or 80 gave 24 or 40, and the 16-wide tiles
        then read and wrote past the task's buffers)."""
        row_block, col_tile = self.row_block, self.col_tile
        tasks = make_tasks(m1p, m2p, symmetric, row_block, col_tile)
        while len(tasks) < 2 * numba.get_num_threads() and (row_block > BLOCK or col_tile > BLOCK):
            if row_block >= col_tile and row_block > BLOCK:
                row_block = halved_tile_size(row_block)
            else:
                col_tile = halved_tile_size(col_tile)
            tasks = make_tasks(m1p, m2p, symmetric, row_block, col_tile)
        return tasks

    def to_numpy(self, sums, m1: int, m2: int) -> np.ndarray:
        return sums[:m1, :m2]
