"""Fused GPU kernel (Triton): per-pair sums of the Bhattacharyya or Hellinger terms, no (n, M1, M2) tensor.

One program owns a BLOCK x BLOCK tile of pairs (only tiles on or above the diagonal for a symmetric
input) and a contiguous range of samples, which it loops over. Per sample it loads the tile's row
and column square roots for all classes (coalesced: the input is laid out (samples, classes, points)),
computes the tile's BCs in fp32, clamps them, and multiplies them into a float32 running product
whose binary exponent is split off into an int32 every sample (factors span 2**-112..2**32, so the
mantissa times one factor never leaves the normal float32 range). Per pair, registers hold the BC,
the mantissa and the exponent; nothing per sample goes to memory. When there are too few tiles to
fill the GPU (small M), the samples are split over several programs per tile (`n_splits`); their
partial results are summed by torch in float64 in a fixed order (deterministic, no atomics).

The program writes the float32 mantissa and the summed biased exponents (int32) per pair; torch then
forms n log 2**32 - log(mantissa) - (exponents - 127 n) ln 2 in float64. Keeping the float64 log out
of the kernel halved its register count, and no float64 constant has to pass through Triton's fp32
scalar arguments. Hellinger accumulates sum_n BC'_n in float64 instead.

How the BCs of a tile are computed (`dot`):
* "ieee" (default): tl.dot in fp32 FMAs (no tensor cores, exact fp32), classes zero-padded to 16 by
  the load masks. 1.6x the FMAs of C = 10, but Triton's dot layout gives each thread a 2-D sub-tile
  fed from shared memory. BLOCK 64 / 8 warps: 128 registers, no spills (ptxas, sm_90).
* "none": C explicit outer products. Exact work, but Triton's layout for it gives each thread one
  column and 32 rows, so every FMA needs a load and BLOCK 64 spills (255 registers); 32 / 4 warps:
  133 registers, no spills.
* "tf32x3": tl.dot on tensor cores (wgmma) with three TF32 products per product: ~2**-21 relative
  error per BC, i.e. ~5e-7 per sample term, unbiased. BLOCK 64 / 8 warps: 128 registers.
The register counts come from compiling for sm_90 without a GPU. Which mode and tile are fastest on
an H100/H200 has not been measured yet: `benchmarks/distances.py --device cuda` times them all.

Under the Triton interpreter (TRITON_INTERPRET=1 set before triton is imported; the setting is read
when `@triton.jit` runs, for this kernel and for triton's own library functions) the same kernel runs
on CPU tensors with numpy semantics; the tests use that, in a subprocess, on small inputs.
"""

from __future__ import annotations

import math

from . import BC_SCALE, FACTOR_MAX, FACTOR_MIN, LOG_BC_SCALE
from .layout import as_torch, scaled_sqrt

import triton
import triton.language as tl

DEFAULT_BLOCK = 64
DEFAULT_WARPS = 8
# How a tile's BCs are computed (see the module docstring).
DOT_MODES = ("none", "ieee", "tf32x3")
DEFAULT_DOT = "ieee"
PROGRAMS_PER_SM = 4          # aim for at least this many programs per SM when splitting samples
MAX_SPLIT_BYTES = 1 << 30    # bound on the (splits, M1, M2) partial-result buffers


@triton.jit
def pair_sums_kernel(rows_ptr, cols_ptr, sum_ptr, mant_ptr, expo_ptr, tile_r_ptr, tile_c_ptr,
                      n_samples, samples_per_split, m1, m2,
                      rows_stride_n, rows_stride_c, cols_stride_n, cols_stride_c,
                      out_stride_split, out_stride_row,
                      factor_min, factor_max,
                      N_CLASSES: tl.constexpr, BLOCK: tl.constexpr, HELLINGER: tl.constexpr,
                      USE_DOT: tl.constexpr, DOT_PRECISION: tl.constexpr, CLASSES_P2: tl.constexpr,
                      CLASS_CHUNK: tl.constexpr):
    tile = tl.program_id(0)
    split = tl.program_id(1)
    tile_r = tl.load(tile_r_ptr + tile)
    tile_c = tl.load(tile_c_ptr + tile)
    rows = tile_r * BLOCK + tl.arange(0, BLOCK)
    cols = tile_c * BLOCK + tl.arange(0, BLOCK)
    row_ok = rows < m1
    col_ok = cols < m2
    k_start = split * samples_per_split
    k_stop = tl.minimum(k_start + samples_per_split, n_samples)

    mantissa = tl.full((BLOCK, BLOCK), 1.0, tl.float32)
    exponents = tl.full((BLOCK, BLOCK), 0, tl.int32)
    bc_sum = tl.full((BLOCK, BLOCK), 0.0, tl.float64)
    # The host keeps samples x classes x points of one call below 2**31, so int32 offsets suffice here;
    # the pointers then advance by one sample per iteration (64-bit pointer arithmetic).
    row_base = rows_ptr + k_start * rows_stride_n
    col_base = cols_ptr + k_start * cols_stride_n
    for _ in range(k_start, k_stop):
        if USE_DOT:
            # (classes, points) tiles, classes zero-padded to a power of two >= 16 by the masks, in
            # chunks of at most 64 classes so that the operands fit in shared memory for any C
            bc = tl.full((BLOCK, BLOCK), 0.0, tl.float32)
            for c0 in range(0, CLASSES_P2, CLASS_CHUNK):
                classes = c0 + tl.arange(0, CLASS_CHUNK)
                class_ok = classes < N_CLASSES
                a = tl.load(row_base + classes[:, None] * rows_stride_c + rows[None, :],
                            mask=class_ok[:, None] & row_ok[None, :], other=0.0)
                b = tl.load(col_base + classes[:, None] * cols_stride_c + cols[None, :],
                            mask=class_ok[:, None] & col_ok[None, :], other=0.0)
                bc = tl.dot(tl.trans(a), b, bc, input_precision=DOT_PRECISION, out_dtype=tl.float32)
        else:
            bc = tl.full((BLOCK, BLOCK), 0.0, tl.float32)
            for c in tl.static_range(N_CLASSES):
                a = tl.load(row_base + c * rows_stride_c + rows, mask=row_ok, other=0.0)
                b = tl.load(col_base + c * cols_stride_c + cols, mask=col_ok, other=0.0)
                bc += a[:, None] * b[None, :]
        factor = tl.minimum(tl.maximum(bc, factor_min), factor_max)
        if HELLINGER:
            bc_sum += factor.to(tl.float64)
        else:
            # mantissa in [1, 2) times factor in [1.6e-34, 2**32]: normal float32, positive
            mantissa = mantissa * factor
            bits = mantissa.to(tl.int32, bitcast=True)
            exponents += bits >> 23                               # biased exponent (sign bit is 0)
            mantissa = ((bits & 0x7FFFFF) | 0x3F800000).to(tl.float32, bitcast=True)  # back to [1, 2)
        row_base += rows_stride_n
        col_base += cols_stride_n

    offsets = split.to(tl.int64) * out_stride_split + rows.to(tl.int64)[:, None] * out_stride_row + cols[None, :]
    mask = row_ok[:, None] & col_ok[None, :]
    if HELLINGER:
        tl.store(sum_ptr + offsets, bc_sum, mask=mask)
    else:  # the float64 log is taken by torch: inlined here it doubled the kernel's register count
        tl.store(mant_ptr + offsets, mantissa, mask=mask)
        tl.store(expo_ptr + offsets, exponents, mask=mask)


def interpreter_enabled() -> bool:
    """Whether this kernel runs in Triton's interpreter (TRITON_INTERPRET=1 when it was decorated)."""
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(pair_sums_kernel, InterpretedFunction)


class TritonKernel:
    name = "triton"

    def __init__(self, device: str = "cuda", block: int = DEFAULT_BLOCK, num_warps: int = DEFAULT_WARPS,
                 dot: str = DEFAULT_DOT):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.interpret = interpreter_enabled()
        if self.device.type != "cuda" and not self.interpret:
            raise ValueError("the Triton kernel runs on CPU tensors only under the Triton interpreter: set "
                             "TRITON_INTERPRET=1 in the environment before triton is imported")
        if dot not in DOT_MODES:
            raise ValueError(f"dot must be one of {DOT_MODES}, got {dot!r}")
        self.block, self.num_warps, self.dot = block, num_warps, dot
        self.factor_min = float(torch.tensor(FACTOR_MIN, dtype=torch.float32))
        self.factor_max = float(torch.tensor(FACTOR_MAX, dtype=torch.float32))
        if self.interpret:
            self.n_programs_wanted = 1
        else:
            sms = torch.cuda.get_device_properties(self.device).multi_processor_count
            self.n_programs_wanted = PROGRAMS_PER_SM * sms

    def prepare(self, probs, reuse=None):  # reuse: see cpu.py; torch's caching allocator does this
        return scaled_sqrt(as_torch(probs).to(self.device), points_last=True)

    def new_sums(self, m1: int, m2: int):
        return self.torch.zeros((m1, m2), dtype=self.torch.float64, device=self.device)

    def tiles(self, m1: int, m2: int, symmetric: bool):
        torch, block = self.torch, self.block
        t1, t2 = -(-m1 // block), -(-m2 // block)
        r, c = torch.meshgrid(torch.arange(t1), torch.arange(t2), indexing="ij")
        if symmetric:
            keep = c >= r
            r, c = r[keep], c[keep]
        return (r.reshape(-1).to(torch.int32).to(self.device), c.reshape(-1).to(torch.int32).to(self.device))

    def accumulate(self, left, right, symmetric: bool, metric: str, sums) -> None:
        n, n_classes, m1 = left.shape
        # the kernel computes sample offsets in int32: keep samples x classes x points of a call < 2**31
        step = max(1, (2**31 - 1) // (n_classes * max(m1, right.shape[2])))
        for start in range(0, n, step):
            self._accumulate(left[start:start + step], right[start:start + step], symmetric, metric, sums)

    def _accumulate(self, left, right, symmetric: bool, metric: str, sums) -> None:
        torch = self.torch
        n, n_classes, m1 = left.shape
        m2 = right.shape[2]
        tile_r, tile_c = self.tiles(m1, m2, symmetric)
        n_tiles = tile_r.numel()
        n_splits = max(1, min(-(-self.n_programs_wanted // n_tiles), n,
                              MAX_SPLIT_BYTES // (12 * m1 * m2)))
        per_split = -(-n // n_splits)
        n_splits = -(-n // per_split)
        hellinger = metric == "hellinger"
        shape = (n_splits, m1, m2)
        dummy = torch.empty((1,), device=self.device)
        bc_sum = torch.zeros(shape, dtype=torch.float64, device=self.device) if hellinger else dummy.double()
        mant = dummy if hellinger else torch.ones(shape, dtype=torch.float32, device=self.device)
        expo = dummy.int() if hellinger else torch.zeros(shape, dtype=torch.int32, device=self.device)
        launch = dict(N_CLASSES=n_classes, BLOCK=self.block, HELLINGER=hellinger, USE_DOT=self.dot != "none",
                      DOT_PRECISION=self.dot if self.dot != "none" else "ieee",
                      CLASSES_P2=max(16, triton.next_power_of_2(n_classes)),
                      CLASS_CHUNK=min(64, max(16, triton.next_power_of_2(n_classes))))
        if not self.interpret:
            launch["num_warps"] = self.num_warps
        pair_sums_kernel[(n_tiles, n_splits)](
            left, right, bc_sum, mant, expo, tile_r, tile_c,
            n, per_split, m1, m2,
            left.stride(0), left.stride(1), right.stride(0), right.stride(1),
            m1 * m2, m2,
            self.factor_min, self.factor_max, **launch)
        if hellinger:  # sum_n (1 - BC_n) = n - sum_n BC'_n / 2**32
            sums += n - bc_sum.sum(0) / BC_SCALE
        else:  # sum_n -log BC_n = n log 2**32 - log(mantissa) - (sum of exponents - 127 n) ln 2
            log_mantissa = torch.log(mant.to(torch.float64)).sum(0)
            exponent_sum = expo.sum(0, dtype=torch.int64) - 127 * n
            sums += n * LOG_BC_SCALE - log_mantissa - exponent_sum.to(torch.float64) * math.log(2.0)

    def to_numpy(self, sums, m1: int, m2: int):
        return sums[:m1, :m2].cpu().numpy()
