"""Benchmark: inpca.distances against a re-implementation of the authors' `dbhat`, same inputs, same process.

    .venv/bin/python benchmarks/distances.py                  # device: cuda if torch sees a GPU, else cpu
    .venv/bin/python benchmarks/distances.py --device cpu     # M = 512, N = 10,000, C = 10
    .venv/bin/python benchmarks/distances.py --device cuda    # also M = 4,096, N = 50,000
    .venv/bin/python benchmarks/distances.py --quick          # small sizes, 2 rounds: a smoke test

Inputs: a realistic mixture of float32 softmax predictions (perf.md section 2): near-uniform, medium,
confident and near-one-hot models (logit gaps 40-140 at temperature 0.3-1, so a few % of the
probabilities are exactly 0), sharing per-sample confusion logits, each with its own noise and 2-30 %
confidently wrong samples.

Reference ("dbhat"): the authors' approach, re-implemented: samples first, (N, M, C); in chunks of
samples, sqrt, one bmm (n, M1, C) x (n, C, M2) -> (n, M1, M2), -log, inf -> 100, negatives -> 0, a NaN
check, sum over the chunk, accumulated on the host in float64. Chunk: see below on the CPU; on a GPU
~2**31 elements of (n, M1, M2) intermediate (8 GiB plus masks: a few hundred large chunks at M = 4,096).

Methods are timed round-robin after one warm-up each (the reference warms up on a tenth of the
samples); min and median over the rounds. On the CPU the reference runs with 10 samples per chunk
(its best on the Intel machine of perf.md) and 2 (measured faster on a 2-core AMD EPYC); "x ref" is
relative to the faster of the two in this run. "inpca pairwise" is the public call, end to end (input
validation, square roots, layout, kernel, mirror); "kernel only" times the kernel on prepared input.
Pair-samples/s: pairs actually computed x N / t (the triangle for inpca, the full matrix for the
reference); "full equiv." is M^2 N / t, comparable across methods; "x ref" is the time ratio.
Errors: max abs difference from a float64 evaluation of the formula with per-sample terms clamped to
[0, 100], on every 8th row (64th for M > 1024) against all columns, off-diagonal.

Bounds, measured in the same run: FMA bound = (fp32 FMAs/s) / C, since a BC costs C multiply-adds,
with the FMA rate the higher of a large sgemm and (CPU) a register-only loop of independent FMAs;
CPU one-log bound = 1 / (1 / FMA bound + 1 / float32 log rate) for any method with a log per
pair-sample (the reference); CPU product bound = 1 / (1 / FMA bound + 1 / product-update rate) for
inpca's log-free numba kernel, which instead clamps, multiplies and splits off an exponent per
pair-sample (the update rate is measured in registers like the FMA rate: `cpu_vector_peaks`);
memory bound = copy bandwidth (bytes read + written) / 8 B for any method that writes and re-reads
each pair-sample once as float32 (the reference does ~5 passes over its intermediate).
Speed is never asserted; the machine may be shared, so the 1-minute load average is printed.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inpca import distances  # noqa: E402
from inpca.kernels import CAP, default_kernel_name, get_kernel  # noqa: E402

C = 10
# Triton variants timed besides the default (dot mode, tile, warps): see inpca/kernels/triton_gpu.py
TRITON_VARIANTS = [("ieee", 32, 4), ("none", 32, 4), ("tf32x3", 64, 8), ("tf32x3", 128, 8)]


# ---------------------------------------------------------------------------------------------- inputs

def realistic_probabilities(m: int, n: int, c: int, device: str, seed: int = 0, batch: int = 64) -> torch.Tensor:
    """(m, n, c) float32 softmax predictions of four kinds of models (see the module docstring)."""
    cpu = torch.Generator().manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed + 1)
    labels = torch.randint(0, c, (n,), generator=cpu).to(device)
    shared = (1.5 * torch.randn(n, c, generator=cpu, dtype=torch.float64)).to(device)
    #            temperature      logit gap of the target class
    kinds = [((3.0, 20.0), (0.5, 2.0)),      # near-uniform
             ((1.0, 2.0), (2.0, 5.0)),       # medium
             ((0.5, 1.0), (6.0, 15.0)),      # confident
             ((0.3, 1.0), (40.0, 140.0))]    # near one-hot: exact zeros in float32
    out = torch.empty((m, n, c), dtype=torch.float32, device=device)
    rows = torch.arange(n, device=device)
    for start in range(0, m, batch):
        for i in range(start, min(start + batch, m)):
            (t_lo, t_hi), (g_lo, g_hi) = kinds[i % 4]
            temperature = t_lo + (t_hi - t_lo) * float(torch.rand(1, generator=cpu))
            gap = g_lo + (g_hi - g_lo) * float(torch.rand(1, generator=cpu))
            wrong = 0.02 + 0.28 * float(torch.rand(1, generator=cpu))
            target = torch.where(torch.rand(n, generator=gen, device=device) < wrong,
                                 torch.randint(0, c, (n,), generator=gen, device=device), labels)
            logits = shared + torch.randn(n, c, generator=gen, device=device, dtype=torch.float64)
            logits[rows, target] += gap
            out[i] = torch.softmax(logits / temperature, dim=-1).to(torch.float32)
    return out


# ------------------------------------------------------------------------------------------- reference

def reference_dbhat(x1: torch.Tensor, x2: torch.Tensor, samples_per_chunk: int) -> np.ndarray:
    """The authors' chunked dbhat (reduction='mean'), re-implemented: see the module docstring."""
    n = x1.shape[1]
    x1, x2 = x1.transpose(0, 1), x2.transpose(0, 1)  # (N, M, C)
    w = np.zeros((x1.shape[1], x2.shape[1]))
    for index in torch.chunk(torch.arange(n), max(1, -(-n // samples_per_chunk))):
        a, b = x1[index].to(x1.device), x2[index].to(x2.device)
        w_ = -torch.log(torch.bmm(torch.sqrt(a), torch.sqrt(b).transpose(1, 2)))
        w_[w_ == torch.inf] = 100
        w_[w_ < 0] = 0
        if torch.isnan(w_).sum() > 0:
            raise FloatingPointError("NaN in dbhat")
        w += w_.sum(0).cpu().numpy()
    return w / n


def exact_subset(P: torch.Tensor, rows: torch.Tensor, chunk: int = 512) -> np.ndarray:
    """float64 distances of P[rows] to all of P, per-sample terms clamped to [0, CAP]."""
    total = torch.zeros((len(rows), P.shape[0]), dtype=torch.float64, device=P.device)
    for start in range(0, P.shape[1], chunk):
        S = P[:, start:start + chunk].to(torch.float64).sqrt()   # a chunk at a time: bounded memory
        bc = torch.einsum("unc,vnc->nuv", S[rows], S)
        total += (-torch.log(bc)).clamp_(0.0, CAP).sum(0)
    return (total / P.shape[1]).cpu().numpy()


def max_error(D: np.ndarray, exact: np.ndarray, rows: np.ndarray) -> float:
    err = np.abs(D[rows] - exact)
    err[np.arange(len(rows)), rows] = 0.0
    return float(err.max())


# ---------------------------------------------------------------------------------------------- bounds

def sync(device: str) -> None:
    if device != "cpu":
        torch.cuda.synchronize()


def best_time(fn, device: str, repeats: int = 5) -> float:
    fn()
    sync(device)
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t)
    return best


def cpu_vector_peaks(repeats: int = 5) -> dict:
    """Register-only peaks on all numba threads, with the kernel's own 8-lane vectors (inpca.kernels.simd):

    * FMA/s: 12 independent multiply-add chains per thread (no loads, no dependencies to wait on);
    * product updates/s: the log-free algorithm's per-pair-sample work besides the BC's multiply-adds
      (clamp to [exp(-CAP), 1], multiply into the running product, split off the exponent), on
      6 independent products per thread, one factor loaded from L1 per update.
    """
    import numba

    from inpca.kernels import simd
    from inpca.kernels.cpu import _F_MAX, _F_MIN

    @numba.njit(parallel=True, fastmath={"contract"})
    def fma_loop(x, iters):
        out = np.zeros(8 * numba.get_num_threads(), np.float32)
        for t in numba.prange(numba.get_num_threads()):
            a, b, c0 = simd.load(x, 0), simd.load(x, 8), simd.load(x, 16)
            c1 = c2 = c3 = c4 = c5 = c6 = c7 = c8 = c9 = c10 = c11 = c0
            for _ in range(iters):
                c0, c1, c2, c3 = simd.fma(a, b, c0), simd.fma(a, b, c1), simd.fma(a, b, c2), simd.fma(a, b, c3)
                c4, c5, c6, c7 = simd.fma(a, b, c4), simd.fma(a, b, c5), simd.fma(a, b, c6), simd.fma(a, b, c7)
                c8, c9, c10, c11 = simd.fma(a, b, c8), simd.fma(a, b, c9), simd.fma(a, b, c10), simd.fma(a, b, c11)
            s = simd.add(simd.add(simd.add(c0, c1), simd.add(c2, c3)), simd.add(simd.add(c4, c5), simd.add(c6, c7)))
            simd.store(out, 8 * t, simd.add(s, simd.add(simd.add(c8, c9), simd.add(c10, c11))))
        return out

    @numba.njit(parallel=True, fastmath={"contract"})
    def update_loop(x, iters):
        threads = numba.get_num_threads()
        out = np.zeros(8 * threads, np.float32)
        exps = np.zeros(48 * threads, np.int32)
        for t in numba.prange(threads):
            m0 = simd.load(x, 0)
            m1 = m2 = m3 = m4 = m5 = m0
            e0 = simd.load(exps, 0)
            e1 = e2 = e3 = e4 = e5 = e0
            for i in range(iters):
                k = (i & 7) * 8
                m0, e0 = simd.peel(simd.mul(m0, simd.clamp(simd.load(x, k), _F_MIN, _F_MAX)), e0)
                m1, e1 = simd.peel(simd.mul(m1, simd.clamp(simd.load(x, k + 64), _F_MIN, _F_MAX)), e1)
                m2, e2 = simd.peel(simd.mul(m2, simd.clamp(simd.load(x, k + 128), _F_MIN, _F_MAX)), e2)
                m3, e3 = simd.peel(simd.mul(m3, simd.clamp(simd.load(x, k + 192), _F_MIN, _F_MAX)), e3)
                m4, e4 = simd.peel(simd.mul(m4, simd.clamp(simd.load(x, k + 256), _F_MIN, _F_MAX)), e4)
                m5, e5 = simd.peel(simd.mul(m5, simd.clamp(simd.load(x, k + 320), _F_MIN, _F_MAX)), e5)
            s = simd.add(simd.add(simd.add(m0, m1), simd.add(m2, m3)), simd.add(m4, m5))
            simd.store(out, 8 * t, s)
            for j, e in enumerate((e0, e1, e2, e3, e4, e5)):
                simd.store(exps, 48 * t + 8 * j, e)
        return out, exps

    x = (np.random.default_rng(0).random(512) * 2.0**40).astype(np.float32)
    iters = 5_000_000
    rates = {}
    for name, fn, lanes_per_iter in (("register FMA/s", fma_loop, 12 * 8), ("product updates/s", update_loop, 6 * 8)):
        fn(x, 10)  # compile
        best = min(best_time(lambda: fn(x, iters), "cpu", 1) for _ in range(repeats))
        rates[name] = numba.get_num_threads() * iters * lanes_per_iter / best
    return rates


def measure_bounds(device: str, repeats: int = 7) -> dict:
    """Peak rates measured now (outputs preallocated, best of `repeats`)."""
    if device == "cpu":
        size = 2048
        a, b, c = torch.rand(size, size), torch.rand(size, size), torch.empty(size, size)
        fma_per_s = size**3 / best_time(lambda: torch.mm(a, b, out=c), device, repeats)
        x = torch.rand(1 << 22) + 0.5
        y = torch.empty_like(x)
        log_per_s = x.numel() / best_time(lambda: torch.log(x, out=y), device, repeats)
        big = torch.empty(1 << 26)  # 256 MB: far beyond the caches
        copy = torch.empty_like(big)
        bandwidth = 2 * 4 * big.numel() / best_time(lambda: copy.copy_(big), device, repeats)
        rates = {"sgemm FMA/s": fma_per_s, "float32 log/s": log_per_s, "memory B/s (copy)": bandwidth}
        if default_kernel_name("cpu") == "numba":
            rates.update(cpu_vector_peaks())
        return rates
    torch.backends.cuda.matmul.allow_tf32 = False
    size = 8192
    a, b, c = (torch.rand(size, size, device=device) for _ in range(3))
    fma_per_s = size**3 / best_time(lambda: torch.mm(a, b, out=c), device, repeats)
    x = torch.empty(1 << 28, device=device)
    y = torch.empty_like(x)
    bandwidth = 2 * 4 * x.numel() / best_time(lambda: y.copy_(x), device, repeats)
    return {"fp32 FMA/s (sgemm, no TF32)": fma_per_s, "memory B/s (copy)": bandwidth}


def derived_bounds(rates: dict) -> dict:
    """Pair-samples/s bounds from the measured peak rates.

    FMA bound: the higher of the sgemm and register FMA rates, / C (a BC costs C multiply-adds).
    One-log bound (methods with a log per pair-sample, like the reference): 1 / (1/FMA + 1/log rate).
    Product bound (inpca's log-free CPU algorithm, which must also clamp, multiply and split off an
    exponent per pair-sample): 1 / (1/FMA + 1/product-update rate), the same serial-sum model as the
    one-log bound, with the update rate measured in registers like the FMA rate.
    """
    fma = max(rates.get(key, 0.0) for key in ("sgemm FMA/s", "register FMA/s", "fp32 FMA/s (sgemm, no TF32)"))
    bounds = {"FMA bound": fma / C}
    if "float32 log/s" in rates:
        bounds["one-log bound"] = 1.0 / (1.0 / bounds["FMA bound"] + 1.0 / rates["float32 log/s"])
    if "product updates/s" in rates:
        bounds["product bound"] = 1.0 / (1.0 / bounds["FMA bound"] + 1.0 / rates["product updates/s"])
    if "memory B/s (copy)" in rates:
        bounds["memory bound"] = rates["memory B/s (copy)"] / 8
    return bounds


def best_rates(*measurements: dict) -> dict:
    """The highest of each rate over several measurements (a shared machine only ever slows them)."""
    return {key: max(m[key] for m in measurements) for key in measurements[0]}


# ----------------------------------------------------------------------------------------------- runs

def numba_compile_time() -> str:
    """First call of the numba kernel in this process (cache hit or compile), and a compile from scratch
    (a fresh process with an empty NUMBA_CACHE_DIR)."""
    import subprocess
    import tempfile

    from inpca.kernels import cpu

    tiny = np.random.default_rng(0).dirichlet(np.ones(C), size=(40, 3)).astype(np.float32)
    t = time.perf_counter()
    distances._streamed(lambda a, b: tiny[:, a:b], 3, None, "bhattacharyya", cpu.NumbaKernel(), 3)
    first = time.perf_counter() - t
    hits = sum(cpu.pair_sums.stats.cache_hits.values())
    probe = ("import time, numpy as np; from inpca.distances import pairwise; "
             "p = np.full((3, 2, 10), 0.1, np.float32); t = time.perf_counter(); pairwise(p, device='cpu'); "
             "print(time.perf_counter() - t)")
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[1])
    how = "loaded from numba's cache" if hits else "compiled (cache was empty)"
    if out.returncode:
        fresh = f"the fresh-process compile failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}"
    else:
        fresh = f"a first call with an empty cache (compiling) takes {float(out.stdout):.1f} s"
    return f"numba kernel: first call {first:.2f} s ({how}); {fresh}"


def run_size(m: int, n: int, device: str, rounds: int, ref_chunks: list[int] | None) -> tuple:
    """Time every method on one input; returns what print_table needs."""
    kind = "cpu" if device == "cpu" else "cuda"
    t = time.perf_counter()
    P = realistic_probabilities(m, n, C, device)
    sync(device)
    zeros = float((P == 0).sum()) / P.numel()
    print(f"\nM = {m}, N = {n:,}, C = {C} on {device}: inputs generated in {time.perf_counter() - t:.1f} s, "
          f"{100 * zeros:.1f} % of the probabilities are exactly 0")
    P_user = P.numpy() if device == "cpu" else P       # what a caller would pass
    ref_chunks = ref_chunks or ([10] if device == "cpu" else [max(1, (1 << 31) // (m * m))])
    kernel_name = default_kernel_name(kind)

    def kernel_only(kernel, prepared):
        def run():
            sums = kernel.new_sums(m, m)
            kernel.accumulate(prepared, prepared, True, "bhattacharyya", sums)
            return kernel.to_numpy(sums, m, m) / n
        return run

    reference_chunk = {f"reference dbhat ({chunk} samples/chunk)": chunk for chunk in ref_chunks}
    methods = {name: ((lambda chunk=chunk: reference_dbhat(P, P, chunk)), False) for name, chunk in reference_chunk.items()}
    methods[f"inpca pairwise, {kernel_name} (end to end)"] = (lambda: distances.pairwise(P_user, device=device), True)
    kernel = get_kernel(kernel_name, device)
    prepared = kernel.prepare(P)
    methods[f"inpca {kernel_name} kernel only"] = (kernel_only(kernel, prepared), True)
    if kernel_name == "triton":  # the other BC modes and tiles of the Triton kernel (see triton_gpu.py)
        from inpca.kernels.triton_gpu import TritonKernel

        for dot, block, warps in TRITON_VARIANTS:
            variant = TritonKernel(device, block=block, num_warps=warps, dot=dot)
            methods[f"inpca triton {dot} {block}x{block}/{warps}w kernel only"] = (kernel_only(variant, prepared), True)
    if kernel_name != "torch" and (kind == "cpu" or m <= 1024):
        fallback = get_kernel("torch", device)
        methods["inpca torch fallback kernel only"] = (kernel_only(fallback, fallback.prepare(P)), True)

    # warm-up (the reference on a tenth of the samples: it only needs its allocations warmed)
    outputs = {}
    for name, (fn, _) in methods.items():
        if name in reference_chunk:
            small = P[:, : max(1, n // 10)]
            reference_dbhat(small, small, reference_chunk[name])
        else:
            outputs[name] = fn()
        sync(device)
    times = {name: [] for name in methods}
    for _ in range(rounds):
        for name, (fn, _) in methods.items():
            sync(device)
            t = time.perf_counter()
            out = fn()
            sync(device)
            times[name].append(time.perf_counter() - t)
            outputs[name] = out

    if device != "cpu":
        torch.cuda.empty_cache()  # the reference's cached intermediates, before the float64 check
    stride = 8 if m <= 1024 else 64
    rows = np.arange(0, m, stride)
    exact = exact_subset(P, torch.from_numpy(rows).to(P.device))
    table = []
    for name, (_, is_triangle) in methods.items():
        D = outputs[name]
        D = np.triu(D, 1) + np.triu(D, 1).T if is_triangle else D
        table.append((name, is_triangle, times[name], max_error(D, exact, rows)))
    load = os.getloadavg()[0]
    print(f"timed; load average (1 min) {load:.2f}")
    return m, n, device, sorted(reference_chunk), table, load


def print_table(m: int, n: int, device: str, reference_names: list, table: list, load: float, bounds: dict) -> None:
    full = m * m * n
    triangle = m * (m + 1) // 2 * n
    ref_time = min(min(times) for name, _, times, _ in table if name in reference_names)
    print(f"\n## M = {m}, N = {n:,}, C = {C} on {device}  (load average at the end of the timing: {load:.2f})")
    product = "product bound" in bounds
    header = (f"{'method':<46} {'t min':>8} {'t med':>8} {'pair-samples/s':>15} {'full equiv.':>12} "
              f"{'x ref':>7} {'% FMA bd':>9}" + (f" {'% prod bd':>10}" if product else "") + f" {'max abs err':>12}")
    print(header)
    print("-" * len(header))
    for name, is_triangle, times, error in table:
        t_min, t_med = min(times), statistics.median(times)
        computed = (triangle if is_triangle else full) / t_min
        print(f"{name:<46} {t_min:8.3f} {t_med:8.3f} {computed:15.3g} {full / t_min:12.3g} "
              f"{ref_time / t_min:6.1f}x {100 * computed / bounds['FMA bound']:8.1f}%"
              + (f" {100 * computed / bounds['product bound']:9.1f}%" if product else "") + f" {error:12.2g}")
    ref_rate = full / ref_time
    if "one-log bound" in bounds:
        print(f"fastest reference: {100 * ref_rate / bounds['one-log bound']:.0f} % of the one-log bound (its own: "
              "a log per pair-sample). inpca's kernels take one log per pair per chunk.")
    if product:
        print("% prod bd: of the product bound, the one that applies to the numba kernel's algorithm (C "
              "multiply-adds + clamp, multiply, exponent split per pair-sample); % FMA bd: of the multiply-adds alone.")
    if "memory bound" in bounds:
        print(f"fastest reference: {100 * ref_rate / bounds['memory bound']:.0f} % of the memory bound.")


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None)
    parser.add_argument("--quick", action="store_true", help="small sizes and 2 rounds (a smoke test)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per method (default 3)")
    parser.add_argument("--ref-chunks", type=int, nargs="+", default=None,
                        help="samples per chunk of the reference, one row each (default: 10 and 2 on the CPU, "
                             "~2**31 / M^2 on a GPU); 'x ref' is relative to the fastest")
    args = parser.parse_args()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    distances.resolve_device(device)  # a clear error for --device cuda without a GPU
    rounds = args.rounds or (2 if args.quick else 3)
    if args.quick:
        sizes = [(256, 2000)] + ([(1024, 5000)] if device != "cpu" else [])
    else:
        sizes = [(512, 10_000)] + ([(4096, 50_000)] if device != "cpu" else [])

    print("# inpca.distances benchmark")
    print(f"python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"numpy {np.__version__}, {os.cpu_count()} CPUs: {cpu_name()}")
    if device != "cpu":
        print(f"GPU: {torch.cuda.get_device_name(device)}")
    try:
        import numba
        print(f"numba {numba.__version__} ({numba.get_num_threads()} threads)", end="; ")
    except ImportError:
        print("numba not installed", end="; ")
    try:
        import triton
        print(f"triton {triton.__version__}")
    except ImportError:
        print("triton not installed")
    if device == "cpu" and default_kernel_name("cpu") == "numba":
        print(numba_compile_time())
    rates = measure_bounds(device)
    bounds = derived_bounds(rates)
    print("peak rates measured now: " + ", ".join(f"{k} {v:.3g}" for k, v in rates.items()))
    print("bounds (pair-samples/s): " + ", ".join(f"{k} {v:.3g}" for k, v in bounds.items()))
    results = []
    for m, n in sizes:
        ref_chunks = args.ref_chunks or ([10, 2] if device == "cpu" else None)
        results.append(run_size(m, n, device, rounds, ref_chunks))
    rates = best_rates(rates, measure_bounds(device))  # again at the end: the best of both
    bounds = derived_bounds(rates)
    print("\npeak rates, best of start and end: " + ", ".join(f"{k} {v:.3g}" for k, v in rates.items()))
    print("bounds (pair-samples/s): " + ", ".join(f"{k} {v:.3g}" for k, v in bounds.items()))
    for table in results:
        print_table(*table, bounds)


if __name__ == "__main__":
    main()
