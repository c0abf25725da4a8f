"""Input preparation shared by the kernels: scaled square roots in a sample-major layout.

Done in torch because it is multi-threaded (numpy's sqrt and transpose are single-threaded and
were 2-10x slower at N = 50,000 on a 2-core CPU), and because the same code then runs on the GPU.
"""

from __future__ import annotations

from . import BC_SCALE


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

    probs: (points, samples, classes) numpy array or torch tensor (any float dtype, any device). Classes and points
    are zero-padded up to multiples of `class_multiple` and `point_multiple` (sqrt(0) = 0 adds nothing
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
    # the destination seen in the input's (points, samples, classes) order: written in one pass each
    target = out[:, :c, :m].permute(2, 0, 1) if points_last else out[:, :m, :c].permute(1, 0, 2)
    # p * 2**32 is exact (a power of two; no overflow for p <= 1 + tolerance, no subnormal result),
    # then one correctly rounded float32 sqrt: 2**16 sqrt(p) to half an ulp, subnormal p included.
    torch.mul(probs, BC_SCALE, out=target)
    target.sqrt_()
    return out

