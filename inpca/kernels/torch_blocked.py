"""Pure-torch blocked kernel: the fallback when numba (CPU) or Triton (GPU) is not installed.

It follows the reference approach (one batched matmul gives the BCs of all pairs for a batch of
samples) but keeps the (samples, rows, columns) intermediate small enough to stay in cache on the
CPU (32 samples x 128 rows was fastest on a 2-core CPU) and bounded on the GPU, and computes only the tiles on or above
the diagonal of a symmetric input (~11x the reference approach on a 2-core CPU).

Per sample the scaled BC' is clamped to [exp(-CAP) 2**32, 2**32] in float32 and converted to float64.
A float32 log would cost ~1e-6 absolute per sample (see `inpca.kernels`), and a float64 log per
pair-sample is slow, so the factors of GROUP = 8 consecutive samples are multiplied in float64 first
(8 factors in [2**-112.3, 2**32] cannot leave the float64 range) and one float64 log is taken per
group: 3x faster than a log per sample here, and exact to ~1e-13.
"""

from __future__ import annotations

from . import BC_SCALE, FACTOR_MAX, FACTOR_MIN, LOG_BC_SCALE
from .layout import as_torch, scaled_sqrt

# Elements of one (samples, rows, columns) intermediate block: 4 Mi float32 = 16 MB (+ 32 MB in float64)
# on the CPU, which measured fastest; 64 Mi on a GPU (768 MB with the float64 copy).
BLOCK_ELEMENTS = {"cpu": 1 << 20, "cuda": 1 << 26}
ROWS = {"cpu": 128, "cuda": 1024}
GROUP = 8  # samples whose float64 factors are multiplied before one log


class TorchBlockedKernel:
    name = "torch"

    def __init__(self, device: str = "cpu"):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        kind = "cuda" if self.device.type == "cuda" else "cpu"
        self.block_elements, self.rows = BLOCK_ELEMENTS[kind], ROWS[kind]
        # float32 constants, as the other kernels round them, so that all kernels clamp identically
        self.factor_min = float(torch.tensor(FACTOR_MIN, dtype=torch.float32))
        self.factor_max = float(torch.tensor(FACTOR_MAX, dtype=torch.float32))

    def prepare(self, probs, reuse=None):  # reuse: see cpu.py; torch's caching allocator does this
        """(samples, classes, points) float32 scaled square roots on this kernel's device."""
        return scaled_sqrt(as_torch(probs).to(self.device), points_last=True)

    def new_sums(self, m1: int, m2: int):
        return self.torch.zeros((m1, m2), dtype=self.torch.float64, device=self.device)

    def accumulate(self, left, right, symmetric: bool, metric: str, sums) -> None:
        torch = self.torch
        n, _, m1 = left.shape
        m2 = right.shape[2]
        hellinger = metric == "hellinger"
        for r0 in range(0, m1, self.rows):
            r1 = min(r0 + self.rows, m1)
            c0 = r0 if symmetric else 0  # upper triangle: columns from the block's first row on
            width = m2 - c0
            rows = left[:, :, r0:r1].transpose(1, 2)  # (n, rows, C), a strided view bmm accepts
            cols = right[:, :, c0:]
            step = max(GROUP, self.block_elements // ((r1 - r0) * width) // GROUP * GROUP)
            block_sum = torch.zeros((r1 - r0, width), dtype=torch.float64, device=left.device)
            for s0 in range(0, n, step):
                s1 = min(s0 + step, n)
                bc = torch.bmm(rows[s0:s1], cols[s0:s1])  # (s1 - s0, rows, width), BC * 2**32
                bc.clamp_(self.factor_min, self.factor_max)
                bc64 = bc.to(torch.float64)
                if hellinger:
                    block_sum += bc64.sum(0)
                elif (s1 - s0) % GROUP == 0:
                    grouped = bc64.view((s1 - s0) // GROUP, GROUP, *bc64.shape[1:])
                    block_sum += grouped.prod(1).log_().sum(0)
                else:  # the last, partial block of samples
                    block_sum += bc64.log_().sum(0)
            if hellinger:  # sum_n (1 - BC_n) = n - sum_n BC'_n / 2**32
                sums[r0:r1, c0:] += n - block_sum / BC_SCALE
            else:  # sum_n -log BC_n = n log 2**32 - sum_n log BC'_n
                sums[r0:r1, c0:] += n * LOG_BC_SCALE - block_sum

    def to_numpy(self, sums, m1: int, m2: int):
        return sums[:m1, :m2].cpu().numpy()
