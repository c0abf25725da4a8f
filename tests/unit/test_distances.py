"""Tests of inpca.distances and its kernels against closed forms and a float64 numpy reference."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from inpca import distances
from inpca.distances import CAP, pairwise, pairwise_streamed, validate_probabilities
from inpca.kernels import get_kernel, has_module

TOL = 1e-6
REPO = Path(__file__).resolve().parents[2]


def reference(P, Q=None, metric="bhattacharyya"):
    """float64 evaluation of the same formula (per-sample terms clamped to [0, CAP] / [0, 1])."""
    Q = P if Q is None else Q
    bc = np.einsum("unc,vnc->uvn", np.sqrt(P.astype(np.float64)), np.sqrt(Q.astype(np.float64)))
    if metric == "hellinger":
        return np.clip(1.0 - bc, 0.0, 1.0).mean(-1)
    with np.errstate(divide="ignore"):
        return np.clip(-np.log(bc), 0.0, CAP).mean(-1)


def softmax32(logits):
    """Softmax in float64, rounded to float32: large logit gaps give tiny, subnormal and exactly-0 values."""
    z = logits - logits.max(-1, keepdims=True)
    p = np.exp(z)
    return (p / p.sum(-1, keepdims=True)).astype(np.float32)


def mixture(m, n, c, seed=0):
    """Near-uniform, medium, confident and near-one-hot models (exact zeros, subnormals) plus two
    disjoint one-hot models, sharing per-sample logits like trained networks do."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(0, 1.5, (n, c))
    labels = rng.integers(0, c, n)
    temperatures = [(3, 20), (1, 2), (0.5, 1), (0.3, 1)]   # near-uniform, medium, confident, near-one-hot
    gaps = [(0.5, 2), (2, 5), (6, 15), (40, 140)]
    models = []
    for i in range(m - 2):
        kind = i % 4
        logits = shared + rng.normal(0, 1, (n, c))
        target = np.where(rng.random(n) < 0.2, rng.integers(0, c, n), labels)
        logits[np.arange(n), target] += rng.uniform(*gaps[kind], n)
        models.append(softmax32(logits / rng.uniform(*temperatures[kind])))
    for k in (0, 1):  # two one-hot models that never overlap: BC = 0 on every sample
        onehot = np.zeros((n, c), np.float32)
        onehot[:, k] = 1
        models.append(onehot)
    P = np.stack(models)
    P[3, :, 1 if c > 1 else 0] = np.where(P[3, :, 1] < 1e-38, np.float32(3e-42), P[3, :, 1])  # subnormals, for sure
    assert (P == 0).any() and ((P > 0) & (P < 1e-38)).any(), "the mixture must contain zeros and subnormals"
    return P


@pytest.fixture(scope="module")
def mix10():
    return mixture(37, 53, 10, seed=1)


@pytest.fixture(scope="module")
def mix10_other():
    return mixture(21, 53, 10, seed=2)


# ---------------------------------------------------------------------------------------- closed forms

@pytest.mark.parametrize("c, expected", [(10, 1.1512925), (100, 2.3025851)])
def test_uniform_to_one_hot_is_half_log_c(c, expected):
    uniform = np.full((1, 7, c), 1.0 / c, np.float32)
    one_hot = np.zeros((1, 7, c), np.float32)
    one_hot[..., 3] = 1
    d = pairwise(uniform, one_hot, device="cpu")
    assert d.shape == (1, 1) and d.dtype == np.float64
    assert abs(d[0, 0] - expected) < 1e-6
    assert abs(d[0, 0] - 0.5 * math.log(c)) < 1e-6


def test_two_class_values():
    p = np.array([[[0.5, 0.5]]], np.float32)
    q = np.array([[[0.9, 0.1]]], np.float32)
    assert abs(pairwise(p, q, device="cpu")[0, 0] - 0.1115718) < 1e-6
    assert abs(pairwise(p, q, metric="hellinger", device="cpu")[0, 0] - 0.1055728) < 1e-6
    both = np.concatenate([p, q])
    d = pairwise(both, device="cpu")
    assert d[0, 1] == d[1, 0] and abs(d[0, 1] - 0.1115718) < 1e-6


def test_symmetric_exact_and_zero_diagonal(mix10):
    for metric in ("bhattacharyya", "hellinger"):
        d = pairwise(mix10, metric=metric, device="cpu")
        assert np.array_equal(d, d.T)
        assert np.all(np.diag(d) == 0.0)
        assert np.all(np.isfinite(d)) and d.min() >= 0


def test_zero_overlap_contributes_cap_per_sample():
    n, c = 9, 4
    a = np.zeros((1, n, c), np.float32)
    b = np.zeros((1, n, c), np.float32)
    a[0, :, 0] = 1
    b[0, :, 0] = 1
    b[0, :3, 0], b[0, :3, 1] = 0, 1  # 3 of 9 samples disjoint (BC = 0), the other 6 identical
    d = pairwise(a, b, device="cpu")[0, 0]
    assert np.isfinite(d) and abs(d - 3 * CAP / n) < 1e-6
    assert abs(pairwise(a, b, metric="hellinger", device="cpu")[0, 0] - 3 / n) < 1e-6
    disjoint = np.zeros((2, n, c), np.float32)
    disjoint[0, :, 0] = disjoint[1, :, 1] = 1
    assert abs(pairwise(disjoint, device="cpu")[0, 1] - CAP) < 1e-6


# ----------------------------------------------------------------------------- every kernel vs float64

def run_kernel(name, P, Q=None, metric="bhattacharyya", chunk=16):
    """pairwise_streamed's core with an explicit kernel, streaming chunks that do not divide N."""
    kernel = get_kernel(name, "cpu")
    read_q = None if Q is None else (lambda a, b: Q[:, a:b])
    return distances._streamed(lambda a, b: P[:, a:b], P.shape[1], read_q, metric, kernel, chunk)


@pytest.mark.parametrize("name", ["numba", "torch"])
@pytest.mark.parametrize("metric", ["bhattacharyya", "hellinger"])
def test_cpu_kernels_match_float64_reference(name, metric, mix10, mix10_other):
    if name == "numba" and not has_module("numba"):
        pytest.skip("numba is not installed")
    sym = run_kernel(name, mix10, metric=metric)
    expected = reference(mix10, metric=metric)
    np.fill_diagonal(expected, 0)
    assert np.abs(sym - expected).max() < TOL
    assert np.array_equal(sym, sym.T) and np.all(np.diag(sym) == 0)
    rect = run_kernel(name, mix10, mix10_other, metric=metric, chunk=53)
    assert rect.shape == (37, 21)
    assert np.abs(rect - reference(mix10, mix10_other, metric)).max() < TOL
    # Q given equal to P: the full matrix, whose off-diagonal part equals the symmetric computation
    full = run_kernel(name, mix10, mix10, metric=metric, chunk=20)
    off = ~np.eye(len(mix10), dtype=bool)
    assert np.abs(full - sym)[off].max() < TOL


@pytest.mark.parametrize("metric", ["bhattacharyya", "hellinger"])
def test_numba_kernel_over_many_tasks(metric):
    """More points than one task holds (rows and columns), sizes that are not multiples of the
    16-point blocks, C = 10 (the unrolled path) and C = 12 (the general one)."""
    if not has_module("numba"):
        pytest.skip("numba is not installed")
    from inpca.kernels import cpu

    for c in (10, 12):
        P = mixture(cpu.ROW_BLOCK + 2 * cpu.COL_TILE + 21, 19, c, seed=c)
        Q = P[: cpu.COL_TILE + 5]
        sym = run_kernel("numba", P, metric=metric, chunk=7)
        expected = reference(P, metric=metric)
        np.fill_diagonal(expected, 0)
        assert np.abs(sym - expected).max() < TOL, c
        rect = run_kernel("numba", P, Q, metric=metric, chunk=19)
        assert np.abs(rect - reference(P, Q, metric)).max() < TOL, c


def test_numba_kernel_splits_calls_that_would_overflow_the_exponent_sums(monkeypatch, mix10):
    if not has_module("numba"):
        pytest.skip("numba is not installed")
    from inpca.kernels import cpu

    monkeypatch.setattr(cpu, "MAX_SAMPLES_PER_CALL", 10)  # 53 samples: 6 calls per chunk
    d = run_kernel("numba", mix10, chunk=53)
    expected = reference(mix10)
    np.fill_diagonal(expected, 0)
    assert np.abs(d - expected).max() < TOL


def test_simd_peel_and_clamp_are_exact():
    if not has_module("numba"):
        pytest.skip("numba is not installed")
    import numba

    from inpca.kernels import simd

    @numba.njit
    def peel_clamp(x, lo, hi):
        m = np.empty(8, np.float32)
        e = np.zeros(8, np.int32)
        c = np.empty(8, np.float32)
        mant, field = simd.peel(simd.load(x, 0), simd.load(e, 0))
        simd.store(m, 0, mant)
        simd.store(e, 0, field)
        simd.store(c, 0, simd.clamp(simd.load(x, 0), lo, hi))
        return m, e, c

    x = np.array([1.0, 1.5, 3.0, 2.0**-126, 2.0**33 * 1.75, 0.3, -0.0, 0.0], np.float32)
    m, e, c = peel_clamp(x[:8], np.float32(0.25), np.float32(2.0))
    for xi, mi, ei in zip(x[:6], m[:6], e[:6]):  # positive normal inputs: x = m 2**(e - 127) exactly
        assert 1.0 <= mi < 2.0 and float(mi) * 2.0 ** (int(ei) - 127) == float(xi)
    assert c.tolist() == np.float32([1.0, 1.5, 2.0, 0.25, 2.0, 0.3, 0.25, 0.25]).tolist()  # -0.0 and 0.0 go to the lower bound


def test_other_class_counts_and_disjoint_one_hots():
    for c in (2, 3, 7, 23):
        P = mixture(12, 31, c, seed=c)
        d = pairwise(P, device="cpu")
        expected = reference(P)
        np.fill_diagonal(expected, 0)
        assert np.abs(d - expected).max() < TOL, c
        assert abs(d[-1, -2] - CAP) < TOL  # the two disjoint one-hot models


def test_streamed_matches_pairwise(mix10, mix10_other):
    d = pairwise_streamed(lambda a, b: mix10[:, a:b], mix10.shape[1], chunk_samples=10, device="cpu")
    # not bit-identical: the float32 running product restarts at every chunk, so the roundings differ
    # (2**-24 relative per sample: ~1e-8 here, far below TOL)
    assert np.abs(d - pairwise(mix10, device="cpu")).max() < 1e-7
    r = pairwise_streamed(lambda a, b: mix10[:, a:b], 53, read_q=lambda a, b: mix10_other[:, a:b],
                          chunk_samples=7, device="cpu", threads=1)
    assert np.abs(r - reference(mix10, mix10_other)).max() < TOL


def test_torch_and_float64_inputs(mix10):
    import torch

    d32 = pairwise(mix10, device="cpu")
    assert np.array_equal(pairwise(torch.from_numpy(mix10), device="cpu"), d32)
    assert np.array_equal(pairwise(mix10.astype(np.float64), device="cpu"), d32)


def test_tiny_positive_bc_is_capped_not_infinite():
    p = np.array([[[1.0, 1e-45, 0.0]], [[0.0, 1e-45, 1.0]]], np.float32)  # BC = 1.4e-45 > 0: -log BC = 103.3
    d = pairwise(p, device="cpu")
    assert abs(d[0, 1] - CAP) < TOL


# ------------------------------------------------------------------------------------------ triton

TRITON_CHECK = textwrap.dedent("""
    import json, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_distances import mixture, reference
    from inpca import distances
    from inpca.kernels.triton_gpu import TritonKernel
    P, Q = mixture(19, 13, 10, seed=3), mixture(6, 13, 10, seed=4)
    errors = {{}}
    for dot in ("ieee", "none", "tf32x3"):  # the default first; tf32x3 is plain fp32 in the interpreter
        kernel = TritonKernel("cpu", block=16, dot=dot)
        kernel.n_programs_wanted = 6  # more programs than tiles: also exercises splitting the samples
        for metric in ("bhattacharyya", "hellinger") if dot == "ieee" else ("bhattacharyya",):
            sym = distances._streamed(lambda a, b: P[:, a:b], 13, None, metric, kernel, 5)
            expected = reference(P, metric=metric)
            np.fill_diagonal(expected, 0)
            errors[f"{{dot}}/{{metric}}/symmetric"] = float(np.abs(sym - expected).max())
            if dot == "ieee":
                rect = distances._streamed(lambda a, b: P[:, a:b], 13, lambda a, b: Q[:, a:b], metric, kernel, 13)
                errors[f"{{dot}}/{{metric}}/rectangular"] = float(np.abs(rect - reference(P, Q, metric)).max())
    print(json.dumps(errors))
""")


@pytest.mark.skipif(not has_module("triton"), reason="triton is not installed: the GPU kernel cannot be tested")
def test_triton_kernel_under_interpreter():
    """The Triton kernel in Triton's interpreter, on CPU tensors. TRITON_INTERPRET must be set before
    triton is imported, hence a fresh process."""
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    script = TRITON_CHECK.format(tests=str(Path(__file__).parent))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    errors = json.loads(done.stdout.strip().splitlines()[-1])
    assert max(errors.values()) < TOL, errors


@pytest.mark.skipif(not has_module("triton"), reason="triton is not installed: the GPU kernel cannot be tested")
def test_triton_kernel_compiles_for_h100_without_a_gpu():
    """Lower the default GPU kernel to PTX for sm_90 (H100/H200): catches what the interpreter does not
    check (types, layouts, shared memory), no GPU needed."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from inpca.kernels import triton_gpu

    pointers = {"rows_ptr": "*fp32", "cols_ptr": "*fp32", "sum_ptr": "*fp64", "mant_ptr": "*fp32",
                "expo_ptr": "*i32", "tile_r_ptr": "*i32", "tile_c_ptr": "*i32"}
    ints = ["n_samples", "samples_per_split", "m1", "m2", "rows_stride_n", "rows_stride_c", "cols_stride_n",
            "cols_stride_c", "out_stride_split", "out_stride_row"]
    constants = {"N_CLASSES": 10, "BLOCK": triton_gpu.DEFAULT_BLOCK, "USE_DOT": True,
                 "DOT_PRECISION": triton_gpu.DEFAULT_DOT, "CLASSES_P2": 16, "CLASS_CHUNK": 16}
    signature = pointers | {name: "i32" for name in ints} | {"factor_min": "fp32", "factor_max": "fp32"}
    for hellinger in (False, True):
        consts = constants | {"HELLINGER": hellinger}
        source = ASTSource(fn=triton_gpu.pair_sums_kernel, signature=signature | {k: "constexpr" for k in consts},
                           constexprs=consts)
        compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32),
                                  options={"num_warps": triton_gpu.DEFAULT_WARPS})
        assert "fma.rn.f32" in compiled.asm["ptx"]


# -------------------------------------------------------------------------------------------- GPU

@pytest.mark.gpu
def test_cpu_and_cuda_agree(mix10, mix10_other):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    for metric in ("bhattacharyya", "hellinger"):
        assert np.abs(pairwise(mix10, metric=metric, device="cuda") - pairwise(mix10, metric=metric, device="cpu")).max() < TOL
        gpu = pairwise(torch.from_numpy(mix10).cuda(), mix10_other, metric=metric, device="cuda")
        assert np.abs(gpu - reference(mix10, mix10_other, metric)).max() < TOL
        streamed = pairwise_streamed(lambda a, b: mix10[:, a:b], 53, chunk_samples=11, metric=metric, device="cuda")
        assert np.abs(streamed - pairwise(mix10, metric=metric, device="cpu")).max() < TOL
    if has_module("triton"):
        assert np.abs(run_kernel_cuda("torch", mix10) - run_kernel_cuda("triton", mix10)).max() < TOL


def run_kernel_cuda(name, P):
    return distances._streamed(lambda a, b: P[:, a:b], P.shape[1], None, "bhattacharyya", get_kernel(name, "cuda"), 16)


def test_cuda_without_gpu_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match=r"^device='cuda' but no CUDA GPU") as info:
        pairwise(np.full((1, 2, 2), 0.5, np.float32), device="cuda")
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------------------- validation

def one_line_error(match, fn, *args, **kwargs):
    with pytest.raises(ValueError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_invalid_inputs_raise_one_line_value_errors():
    good = np.full((3, 4, 5), 0.2, np.float32)
    bad = good.copy()
    bad[1, 2, 3] = np.nan
    assert "point 1, sample 2, class 3" in one_line_error(r"^P: NaN", pairwise, bad)
    bad = good.copy()
    bad[2, 1, 0] = np.inf
    one_line_error(r"^P: inf at \(point 2, sample 1, class 0\)", validate_probabilities, bad)
    bad = good.copy()
    bad[0, 3, 1], bad[0, 3, 2] = -0.1, 0.5
    assert "point 0, sample 3, class 1" in one_line_error(r"^P: negative probability -0.1", pairwise, bad)
    bad = good.copy()
    bad[2, 0, :] = 0.3
    assert "sum to 1.5" in one_line_error(r"^P: probabilities at \(point 2, sample 0\)", pairwise, bad)
    one_line_error(r"^P: expected a 3-d array", pairwise, good[0])
    one_line_error(r"^Q: expected a 3-d array", pairwise, good, good[0])
    one_line_error(r"^Q: has 3 samples", pairwise, good, good[:, :3])
    one_line_error(r"^P: empty array", pairwise, good[:, :0])
    one_line_error(r"^probs: NaN", validate_probabilities, np.full((1, 1, 2), np.nan), name="probs")
    one_line_error(r"unknown metric 'kl'", pairwise, good, metric="kl")
    one_line_error(r"device must be", pairwise, good, device="tpu")
    nearly = good.copy()
    nearly[..., 0] += 5e-4
    validate_probabilities(nearly)  # sums 1.0005: within the default atol
    one_line_error(r"sum to 1.0005", validate_probabilities, nearly, atol=1e-4)


def test_streamed_validates_every_chunk():
    good = np.full((3, 10, 2), 0.5, np.float32)
    bad = good.copy()
    bad[1, 7, :] = [0.9, 0.9]
    message = one_line_error(r"^P: probabilities at \(point 1, sample 7\)", pairwise_streamed,
                             lambda a, b: bad[:, a:b], 10, chunk_samples=4, device="cpu")
    assert "sum to 1.8" in message
    one_line_error(r"^read_p\(0, 4\) returned shape \(3, 10, 2\); expected \(points, 4, classes\)",
                   pairwise_streamed, lambda a, b: good, 10, chunk_samples=4, device="cpu")
    one_line_error(r"^read_q\(0, 4\) has 3 classes", pairwise_streamed, lambda a, b: good[:, a:b], 10,
                   read_q=lambda a, b: np.full((2, b - a, 3), 1 / 3, np.float32), chunk_samples=4, device="cpu")


def test_reference_points_give_the_streamed_distances_to_the_last_bit():
    from inpca.distances import ReferencePoints, pairwise_streamed

    rng = np.random.default_rng(7)
    Q = rng.dirichlet(np.full(10, 0.5), size=(9, 700)).astype(np.float32)
    P = rng.dirichlet(np.full(10, 0.5), size=(3, 700)).astype(np.float32)
    references = ReferencePoints(Q, device="cpu", chunk_samples=256)
    expected = pairwise_streamed(lambda a, b: P[:, a:b], 700, lambda a, b: Q[:, a:b], device="cpu", chunk_samples=256)
    for _ in range(2):  # the prepared reference is reused, never written over
        assert np.array_equal(references.distances(P), expected)
    with pytest.raises(ValueError, match="classes"):
        references.distances(P[:, :, :5] / P[:, :, :5].sum(-1, keepdims=True))
