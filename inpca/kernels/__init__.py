"""Kernels behind `inpca.distances`: per-pair sums, over one chunk of samples, of the per-sample terms.

Every kernel computes, for each pair (u, v) of row point u and column point v and each sample n of a
chunk, the Bhattacharyya coefficient BC_n(u, v) = sum_c sqrt(p_u[n, c]) sqrt(p_v[n, c]) and returns
the float64 sum over the chunk of the per-sample term

    bhattacharyya:  t_n = -log(clamp(BC_n, exp(-CAP), 1))   in [0, CAP]
    hellinger:      t_n = 1 - min(BC_n, 1)                  in [0, 1]

`inpca.distances` adds the chunk sums in float64 and divides by the number of samples at the end.

Shared numerics (all kernels use them, so that all agree to rounding):

* Scaled square roots. The kernels receive S = sqrt(p * 2**32) = 2**16 sqrt(p) in float32 instead of
  sqrt(p), so that every kernel's BC is BC' = 2**32 BC. Why: p is float32 and can be as small as
  the smallest subnormal (1.4e-45). Unscaled, sqrt(p_u) sqrt(p_v) of two tiny probabilities is
  a float32 subnormal and loses most of its digits. The per-sample term of such a pair is -log of
  that product, up to ~100, so one sample can be wrong by 1e-2. Scaled, the smallest nonzero
  product is (2**16 * 3.7e-23)**2 = 5.9e-36, a normal float32, so every nonzero BC keeps 24 bits.
  The scale is a power of two: multiplying by it is exact, and it leaves the result as a term
  LOG_BC_SCALE = 32 ln 2 per sample, added back in float64.
* Clamps, applied to the float32 BC' of every sample: BC' > 2**32 (BC > 1 from rounding) becomes
  2**32 (term 0); BC' < exp(-CAP) 2**32 (including BC == 0, two samples with disjoint support)
  becomes exp(-CAP) 2**32 (term CAP). The lower bound is a normal float32 (1.6e-34). It is rounded
  to float32, so a capped sample contributes CAP to within 6e-8, not exactly CAP.
* Log-free product (CPU numba and GPU Triton kernels). A log per pair-sample costs more than the C
  multiply-adds of the BC itself. So these kernels multiply the clamped factors BC' into a running
  product per pair instead, and take one log per pair per chunk. The factors span 2**-112 to 2**32,
  so a float32 product could leave the float32 range after two samples. After every sample the
  kernels therefore split the binary exponent off the product (bit operations, exact, no log, no
  branch) into an integer accumulator, leaving a mantissa in [1, 2) (112 + 33 < 126 binades: one
  factor cannot leave the range). At the end, sum_n t_n = n LOG_BC_SCALE - (log(mantissa) +
  exponent ln 2). Both kernels keep the product in float32: each multiply rounds by 2**-24
  relative, an absolute error of 6e-8 in that sample's term, unbiased, so the error of the mean
  over N samples is ~6e-8 / sqrt(N). (The product restarts at every chunk of samples, so results
  for different chunkings agree to ~1e-8, not bit for bit.)
* The pure-torch fallback multiplies the float64 factors of 8 samples at a time (no peel needed:
  8 * 112 < 1022) and takes a float64 log per group. (A float32 log per sample would cost ~1e-6
  absolute per sample: its result, up to 100, has a float32 ulp of up to 7.6e-6.)

Kernels, chosen by `inpca.distances` from the device and what is installed:

* "numba" (cpu.py): fused multi-threaded CPU kernel, a register-tiled micro-kernel written with the
  explicit SIMD vectors of simd.py; upper triangle only for symmetric inputs.
* "torch" (torch_blocked.py): blocked torch bmm, CPU or CUDA, used when numba (CPU) or Triton
  (GPU) is missing.
* "triton" (triton_gpu.py): fused GPU kernel; also runs under the Triton interpreter
  (TRITON_INTERPRET=1) on CPU, which is how it is tested without a GPU.

This package imports no numba, torch or triton at import time.
"""

from __future__ import annotations

import importlib.util
import math

#: Per-sample Bhattacharyya term when a sample's two distributions do not overlap (BC_n == 0); also
#: the upper clamp of every per-sample term (the authors' `dbhat` maps -log(0) = inf to 100).
CAP = 100.0

#: The kernels get S = sqrt(p * BC_SCALE) = sqrt(p) * 2**16, so their BC is BC * BC_SCALE.
BC_SCALE = 2.0**32
#: log(BC_SCALE): added per sample to turn -log(BC') back into -log(BC).
LOG_BC_SCALE = 32 * math.log(2.0)
#: Clamp bounds of the scaled BC', as float64 values; kernels round them to float32.
FACTOR_MIN = math.exp(-CAP) * BC_SCALE
FACTOR_MAX = BC_SCALE

METRICS = ("bhattacharyya", "hellinger")

KERNELS = ("numba", "torch", "triton")


def has_module(name: str) -> bool:
    """Whether `name` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def get_kernel(name: str, device: str):
    """The kernel object `name` ("numba", "torch", "triton") for `device` ("cpu" or "cuda").

    Every kernel object has `prepare(probs, reuse=None) -> layout`, `new_sums(m1, m2)`,
    `accumulate(left, right, symmetric, metric, sums)` and `to_numpy(sums, m1, m2)`; see cpu.py.
    """
    if name == "numba":
        if device != "cpu":
            raise ValueError(f"kernel 'numba' runs on the CPU, not on {device!r}")
        from .cpu import NumbaKernel
        return NumbaKernel()
    if name == "torch":
        from .torch_blocked import TorchBlockedKernel
        return TorchBlockedKernel(device)
    if name == "triton":
        from .triton_gpu import TritonKernel
        return TritonKernel(device)
    raise ValueError(f"unknown kernel {name!r}; expected one of {', '.join(KERNELS)}")


def default_kernel_name(device: str) -> str:
    """The fastest kernel installed for `device`: numba on the CPU, Triton on CUDA, else torch."""
    if device == "cpu":
        return "numba" if has_module("numba") else "torch"
    return "triton" if has_module("triton") else "torch"
