"""Benchmark: the cost of correctly rounded scaled square roots (`inpca.kernels.layout.scaled_sqrt`).

    .venv/bin/python benchmarks/kernels_sqrt.py              # cpu; cuda too if torch sees a GPU
    .venv/bin/python benchmarks/kernels_sqrt.py --quick      # small sizes, 2 rounds: a smoke test
    .venv/bin/python benchmarks/kernels_sqrt.py --points 1024 --rounds 3   # part 2 at another size

1. scaled_sqrt alone on one realistic chunk (64 points, 50,000 samples, 10 classes, float32 softmax
   outputs), points-last layout as the torch and Triton kernels use it: "before" is the previous
   implementation (p * 2**32 and torch's float32 sqrt in place, one pass each; not correctly rounded
   with torch's AVX-512 CPU sqrt), "after" the float64 sqrt rounded once to float32 in slabs. Also the
   share of values each one gets wrong (not the correctly rounded float32).
2. Whole pairwise calls on 256 points x 5,000 samples x 10 classes (--points, --samples), symmetric:
   TorchBlockedKernel (prepare = scaled_sqrt, then accumulate) and NumbaKernel (its prepare is its own
   numba layout, `cpu.scaled_sqrt_layout`, an IEEE float32 sqrt: untouched by the change; shown for
   scale). The share of the square roots in the total is printed: it falls as 1 / points (square
   roots ~ points x samples, pairs ~ points**2 x samples / 2).

Methods are timed round-robin after one warm-up each; min and median over the rounds; ratios are of
minima within this run. The machine may be shared: the 1-minute load average is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inpca.kernels import BC_SCALE  # noqa: E402
from inpca.kernels.layout import as_torch, scaled_sqrt  # noqa: E402


def scaled_sqrt_before(probs):
    """The previous scaled_sqrt, unpadded points-last case: one float32 multiply pass, one float32 sqrt."""
    probs = as_torch(probs)
    m, n, c = probs.shape
    out = torch.empty((n, c, m), dtype=torch.float32, device=probs.device)
    target = out.permute(2, 0, 1)
    torch.mul(probs, BC_SCALE, out=target)
    target.sqrt_()
    return out


def softmax_probs(m, n, c, device, seed=0):
    """float32 softmax outputs of m models on n samples: a spread of confident and unsure predictions."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(m, n, c, generator=g) * torch.linspace(0.5, 8.0, m).view(m, 1, 1)
    return torch.softmax(logits, -1).to(device)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(methods, rounds, device):
    """{name: [seconds per round]}: round-robin after one warm-up of each."""
    for f in methods.values():
        f()
    sync(device)
    times = {name: [] for name in methods}
    for _ in range(rounds):
        for name, f in methods.items():
            sync(device)
            t0 = time.perf_counter()
            f()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return times


def show(times):
    for name, ts in times.items():
        print(f"  {name:34s} min {min(ts) * 1e3:9.1f} ms   median {statistics.median(ts) * 1e3:9.1f} ms")


def wrong_share(out, probs):
    """Share of values that are not sqrt(p * 2**32) correctly rounded to float32 (points-last layout)."""
    p = probs.cpu().numpy()
    exact = np.sqrt(p.astype(np.float64) * BC_SCALE).astype(np.float32).transpose(1, 2, 0)
    return float((out.cpu().numpy() != exact).mean())


def sqrt_alone(device, m, n, c, rounds):
    probs = softmax_probs(m, n, c, device)
    print(f"\n1. scaled_sqrt on ({m}, {n:,}, {c}) float32 ({probs.numel() * 4 / 2**20:.0f} MiB), {device}")
    times = timed({"before (float32 sqrt)": lambda: scaled_sqrt_before(probs),
                   "after (float64 sqrt, rounded once)": lambda: scaled_sqrt(probs)}, rounds, device)
    show(times)
    before, after = (min(ts) for ts in times.values())
    per = 1e9 / probs.numel()
    print(f"  after / before: {after / before:.2f}x  ({before * per:.2f} -> {after * per:.2f} ns per value)")
    print(f"  not correctly rounded: before {wrong_share(scaled_sqrt_before(probs), probs):.1%}, "
          f"after {wrong_share(scaled_sqrt(probs), probs):.1%}")


def pairwise(device, m, n, c, rounds):
    from inpca.kernels.torch_blocked import TorchBlockedKernel

    probs = softmax_probs(m, n, c, device, seed=1)
    print(f"\n2. pairwise, symmetric, {m} points x {n:,} samples x {c} classes, {device}")
    kernels = {"torch": TorchBlockedKernel(device.type)}
    if device.type == "cpu":
        from inpca.kernels.cpu import NumbaKernel
        kernels["numba"] = NumbaKernel()
        host = probs.numpy()
    for name, kernel in kernels.items():
        source = host if name == "numba" else probs

        def prepare(kernel=kernel, source=source):
            return kernel.prepare(source)

        def whole(kernel=kernel, source=source):
            layout = kernel.prepare(source)
            sums = kernel.new_sums(m, m)
            kernel.accumulate(layout, layout, True, "bhattacharyya", sums)
            return kernel.to_numpy(sums, m, m)

        what = "scaled_sqrt" if name == "torch" else "scaled_sqrt_layout (numba, unchanged)"
        times = timed({f"{name}: prepare = {what}": prepare, f"{name}: whole call": whole}, rounds, device)
        show(times)
        t_prepare, t_whole = (min(ts) for ts in times.values())
        print(f"  {name}: square roots are {t_prepare / t_whole:.1%} of the whole call")
        if name == "torch":
            t_before = min(timed({"": lambda: scaled_sqrt_before(probs)}, rounds, device)[""])
            print(f"  torch: the previous float32 sqrt took {t_before * 1e3:.1f} ms: the change adds "
                  f"{(t_prepare - t_before) / t_whole:+.1%} of the whole call")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cpu, and cuda if available)")
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 rounds")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--points", type=int, default=256, help="points of the pairwise calls (part 2)")
    parser.add_argument("--samples", type=int, default=5_000, help="samples of the pairwise calls (part 2)")
    args = parser.parse_args()
    devices = [args.device] if args.device else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rounds = 2 if args.quick else args.rounds
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cap = torch.backends.cpu.get_cpu_capability()
    print(f"torch {torch.__version__} ({cap}), {torch.get_num_threads()} threads, load average {load:.2f}")
    for name in devices:
        device = torch.device(name)
        if args.quick:
            sqrt_alone(device, 8, 5_000, 10, rounds)
            pairwise(device, 32, 1_000, 10, rounds)
        else:
            sqrt_alone(device, 64, 50_000, 10, rounds)
            pairwise(device, args.points, args.samples, 10, rounds)


if __name__ == "__main__":
    main()
