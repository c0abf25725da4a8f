"""Input preparation shared by the torch and Triton kernels: scaled square roots in a sample-major layout.

Done in torch because it is multi-threaded (numpy's sqrt and transpose are single-threaded and
were 2-10x slower at N = 50,000 on a 2-core CPU), and because the same code then runs on the GPU.

Rounding: every scaled square root is sqrt(p * 2**32) correctly rounded to float32, as the numba
kernel's layout (`cpu.scaled_sqrt_layout`, an IEEE float32 sqrt) has it, so that all kernels see the
same inputs. torch's own float32 sqrt does not guarantee that: its vectorised AVX-512 CPU path is
1 ulp off for ~17 % of values (torch 2.14, AMD EPYC). So the square root is taken in float64 and
rounded once to float32. That is correctly rounded even if the float64 sqrt were a few float64 ulps
off: for a float32 x (24 significant bits, scaled into [1, 4)) and a float32 rounding midpoint mu
(25 bits, in [1, 2)), x - mu**2 is a nonzero multiple of 2**-48, so |sqrt(x) - mu| >= 2**-48 / 4 =
4 float64 ulps of [1, 2); a float64 result within 3 ulps rounds to the float32 on the correct side.
x = p * 2**32 is a float32 (exact: a power of two, no overflow for p <= 1 + tolerance, and every
float32 subnormal p becomes a normal number), so subnormal probabilities keep their digits.

Steps: p * 2**32 written into the float32 output in its layout (one transposing pass, exact), then
per slab of samples: to float64, sqrt, back into the output (round to nearest). The float64
temporary holds at most SLAB_ELEMENTS values (2 MiB on the CPU, where a cache-sized slab measured
fastest; 64 MiB on a GPU, fewer launches), or one sample's if that is more.

Cost (benchmarks/kernels_sqrt.py, 2-core AMD EPYC, AVX-512): 1.5-1.6x the previous float32-only
version (~60 -> ~95 ms for a (64, 50,000, 10) chunk; the float64 sqrt is most of it). In a whole
torch-kernel pairwise call the square roots are ~18 % of the time at 256 points x 5,000 samples
(+6 % from the float64 sqrt) and ~7 % at 1,024 points (+2.6 %): they grow as points, the pairs as
points squared.
"""

from __future__ import annotations

from . import BC_SCALE

#: float64 values per slab of `scaled_sqrt`, by device type ("cpu"; anything else: a GPU).
SLAB_ELEMENTS = {"cpu": 1 << 18, "gpu": 1 << 23}


def as_torch(chunk):
    """A chunk (numpy array or torch tensor) as a torch tensor; numpy float32 without a copy."""
    import numpy as np
    import torch

    if isinstance(chunk, torch.Tensor):
        return chunk
    chunk = np.asarray(chunk)
    if chunk.dtype != np.float32:  # float64, other dtypes, non-native byte order
        chunk = chunk.astype(np.float32)
    return torch.from_numpy(chunk)


def round_up(x: int, multiple: int) -> int:
    return -(-x // multiple) * multiple


def scaled_sqrt(probs, *, class_multiple: int = 1, point_multiple: int = 1, points_last: bool = True):
    """sqrt(probs * BC_SCALE) as float32, laid out (samples, classes, points) or (samples, points, classes).

    probs: (points, samples, classes) numpy array or torch tensor (any float dtype, any device; the
    result is on the same device). Inputs are rounded to float32 first, as in all kernels; then each
    value is 2**16 sqrt(p) correctly rounded to float32 (module docstring). Classes and points are
    zero-padded up to multiples of `class_multiple` and `point_multiple` (sqrt(0) = 0 adds nothing
    to any BC; padded points are computed and thrown away).
    """
    import torch

    probs = as_torch(probs)
    if probs.dtype != torch.float32:  # all kernels round inputs to float32 first, then scale exactly
        probs = probs.to(torch.float32)
    m, n, c = probs.shape
    cp, mp = round_up(c, class_multiple), round_up(m, point_multiple)
    shape = (n, cp, mp) if points_last else (n, mp, cp)
    padded = (cp, mp) != (c, m)
    out = (torch.zeros if padded else torch.empty)(shape, dtype=torch.float32, device=probs.device)
    real = out[:, :c, :m] if points_last else out[:, :m, :c]  # the unpadded part, (samples, ...)
    # p * 2**32 (exact: module docstring) into `real` seen in the input's (points, samples, classes)
    # order: one pass; then in slabs of samples: to float64, sqrt, rounded once to float32, in place
    torch.mul(probs, BC_SCALE, out=real.permute(2, 0, 1) if points_last else real.permute(1, 0, 2))
    limit = SLAB_ELEMENTS["cpu" if probs.device.type == "cpu" else "gpu"]
    step = max(1, min(n, limit // max(1, m * c)))  # samples per slab
    wide = torch.empty((step, *real.shape[1:]), dtype=torch.float64, device=probs.device)
    for s0 in range(0, n, step):
        s1 = min(s0 + step, n)
        slab = wide[:s1 - s0]
        slab.copy_(real[s0:s1])
        slab.sqrt_()
        real[s0:s1].copy_(slab)
    return out
