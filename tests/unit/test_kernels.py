"""Tests of inpca.kernels, each kernel driven directly through its protocol (prepare, new_sums, accumulate,
to_numpy) against a direct float64 numpy evaluation; the layouts, the SIMD intrinsics and the geodesic kernel.

(tests/unit/test_distances.py tests the same kernels through inpca.distances on harder inputs: exact
zeros, subnormals, disjoint supports.)
"""

import math

import numpy as np
import pytest

from inpca import kernels
from inpca.kernels import BC_SCALE, CAP, FACTOR_MAX, FACTOR_MIN, KERNELS, LOG_BC_SCALE, default_kernel_name, get_kernel, has_module
from inpca.kernels.layout import as_torch, round_up, scaled_sqrt

torch = pytest.importorskip("torch")
numba = pytest.importorskip("numba")

# float32 inputs and float32 BCs: each per-sample term is off by ~C 2**-24 relative at most
TOL = 1e-6


def random_probs(m, n, c, seed, alpha=0.5):
    """m models' probabilities over n samples and c classes, float32, strictly positive (no clamp is hit)."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(c, alpha), size=(m, n)) + 1e-6
    return (p / p.sum(-1, keepdims=True)).astype(np.float32)


def bhattacharyya(P, Q):
    """d(P, Q) = -(1/N) sum_n log sum_c sqrt(P Q), directly, in float64: (M1, M2)."""
    bc = np.einsum("unc,vnc->uvn", np.sqrt(P.astype(np.float64)), np.sqrt(Q.astype(np.float64)))
    return -np.log(bc).mean(-1)


def hellinger(P, Q):
    bc = np.einsum("unc,vnc->uvn", np.sqrt(P.astype(np.float64)), np.sqrt(Q.astype(np.float64)))
    return (1.0 - np.minimum(bc, 1.0)).mean(-1)


REFERENCE = {"bhattacharyya": bhattacharyya, "hellinger": hellinger}


def kernel_distances(kernel, P, Q=None, metric="bhattacharyya", chunk=None):
    """The kernel's mean per-sample term for every pair, streaming the samples in chunks of `chunk`.
    Q None: the symmetric call (upper triangle, mirrored here)."""
    n = P.shape[1]
    chunk = chunk or n
    symmetric = Q is None
    m2 = P.shape[0] if symmetric else Q.shape[0]
    sums = kernel.new_sums(P.shape[0], m2)
    for start in range(0, n, chunk):
        left = kernel.prepare(P[:, start:start + chunk])
        right = left if symmetric else kernel.prepare(Q[:, start:start + chunk])
        kernel.accumulate(left, right, symmetric, metric, sums)
    d = np.array(kernel.to_numpy(sums, P.shape[0], m2)) / n
    if symmetric:
        d = np.triu(d) + np.triu(d, 1).T
    return d


def cpu_kernels():
    """Every CPU kernel, by name, in the configurations worth covering (small tasks and slabs for numba)."""
    from inpca.kernels.cpu import NumbaKernel
    from inpca.kernels.torch_blocked import TorchBlockedKernel

    small_blocks = TorchBlockedKernel("cpu")
    small_blocks.rows, small_blocks.block_elements = 5, 40  # many row blocks, 8-sample steps
    return {
        "numba": NumbaKernel(),
        "numba-small-tasks": NumbaKernel(row_block=16, col_tile=16, slab=3),
        "numba-big-slab": NumbaKernel(row_block=32, col_tile=32, slab=1000),
        "torch": TorchBlockedKernel("cpu"),
        "torch-small-blocks": small_blocks,
    }


KERNEL_NAMES = ["numba", "numba-small-tasks", "numba-big-slab", "torch", "torch-small-blocks"]


@pytest.fixture(scope="module")
def cpu_kernel_objects():
    return cpu_kernels()


@pytest.fixture(scope="module")
def P10():
    return random_probs(37, 29, 10, seed=1)   # C = 10: numba's unrolled class loop; 37 points: padding


@pytest.fixture(scope="module")
def Q10():
    return random_probs(21, 29, 10, seed=2)


@pytest.fixture(scope="module")
def P3():
    return random_probs(19, 23, 3, seed=3)    # another class count: the generic class loop


# ----------------------------------------------------------------------------- constants and choice

def test_constants_are_consistent():
    assert BC_SCALE == 2.0**32
    assert LOG_BC_SCALE == pytest.approx(math.log(BC_SCALE), rel=1e-15)
    assert FACTOR_MAX == BC_SCALE
    assert FACTOR_MIN == pytest.approx(math.exp(-CAP) * BC_SCALE, rel=1e-15)
    assert np.isfinite(np.float32(FACTOR_MIN)) and np.float32(FACTOR_MIN) >= np.finfo(np.float32).tiny, \
        "the lower clamp must be a normal float32"


def test_get_kernel_returns_each_kernel_with_its_name():
    assert get_kernel("numba", "cpu").name == "numba"
    torch_kernel = get_kernel("torch", "cpu")
    assert torch_kernel.name == "torch" and torch_kernel.device.type == "cpu"


def test_get_kernel_refuses_unknown_names_and_numba_off_the_cpu():
    with pytest.raises(ValueError, match=r"^unknown kernel 'blas'; expected one of numba, torch, triton$"):
        get_kernel("blas", "cpu")
    with pytest.raises(ValueError, match=r"^kernel 'numba' runs on the CPU, not on 'cuda'$"):
        get_kernel("numba", "cuda")
    assert KERNELS == ("numba", "torch", "triton")


def test_default_kernel_follows_what_is_installed():
    assert default_kernel_name("cpu") == ("numba" if has_module("numba") else "torch")
    assert default_kernel_name("cuda") == ("triton" if has_module("triton") else "torch")


def test_has_module_does_not_import():
    assert has_module("numpy") and has_module("numpy.linalg")
    assert not has_module("no_such_module_inpca_test")
    assert not has_module("numpy.no_such_submodule")
    assert not has_module("")  # find_spec's ValueError: no module


# ----------------------------------------------------------------------------- every CPU kernel vs float64

@pytest.mark.parametrize("metric", ["bhattacharyya", "hellinger"])
@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_cpu_kernels_match_the_float64_formula(cpu_kernel_objects, name, metric, P10, Q10, P3):
    kernel = cpu_kernel_objects[name]
    reference = REFERENCE[metric]
    rect = kernel_distances(kernel, P10, Q10, metric)
    assert rect.shape == (37, 21)
    np.testing.assert_allclose(rect, reference(P10, Q10), rtol=0, atol=TOL)
    sym = kernel_distances(kernel, P10, metric=metric)
    np.testing.assert_allclose(sym, reference(P10, P10), rtol=0, atol=TOL)
    np.testing.assert_allclose(kernel_distances(kernel, P3, metric=metric), reference(P3, P3), rtol=0, atol=TOL)
    assert (rect > 0).all(), "distinct random models are at positive distance"


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_kernels_are_symmetric_and_zero_on_the_diagonal(cpu_kernel_objects, name, P10, Q10):
    kernel = cpu_kernel_objects[name]
    pq = kernel_distances(kernel, P10, Q10)
    qp = kernel_distances(kernel, Q10, P10)
    np.testing.assert_allclose(pq, qp.T, rtol=0, atol=1e-7)
    full = kernel_distances(kernel, P10, P10)  # P = Q through the rectangular path
    np.testing.assert_allclose(full, full.T, rtol=0, atol=1e-7)
    assert np.abs(np.diag(full)).max() < TOL
    sym = kernel_distances(kernel, P10)          # the symmetric path agrees with the rectangular one
    np.testing.assert_allclose(sym, full, rtol=0, atol=1e-7)
    assert np.abs(np.diag(sym)).max() < TOL
    assert (np.diag(sym) >= 0).all(), "the clamp at BC <= 1 keeps every term >= 0"


@pytest.mark.parametrize("name", KERNEL_NAMES)
@pytest.mark.parametrize("metric", ["bhattacharyya", "hellinger"])
def test_chunk_sizes_give_the_same_distances(cpu_kernel_objects, name, metric, P10, Q10):
    """Products restart at every chunk: Bhattacharyya agrees to ~1e-8 (inpca.kernels); Hellinger's float32
    slab sums of up to 16 BC' round by up to ~16 2**-24 relative, so chunkings agree to a few 1e-7."""
    tol = 5e-8 if metric == "bhattacharyya" else 5e-7
    kernel = cpu_kernel_objects[name]
    whole = kernel_distances(kernel, P10, Q10, metric)
    for chunk in (1, 4, 13, 28):
        np.testing.assert_allclose(kernel_distances(kernel, P10, Q10, metric, chunk=chunk), whole,
                                   rtol=0, atol=tol, err_msg=f"chunk {chunk}")
    np.testing.assert_allclose(kernel_distances(kernel, P10, metric=metric, chunk=5),
                               kernel_distances(kernel, P10, metric=metric), rtol=0, atol=tol)


def test_all_cpu_kernels_agree(cpu_kernel_objects, P10, Q10):
    results = {name: kernel_distances(k, P10, Q10, chunk=11) for name, k in cpu_kernel_objects.items()}
    for name, d in results.items():
        np.testing.assert_allclose(d, results["numba"], rtol=0, atol=2e-7, err_msg=name)


@pytest.mark.parametrize("name", ["numba", "torch"])
def test_disjoint_supports_contribute_cap_per_sample(cpu_kernel_objects, name):
    """BC = 0 on every sample: the Bhattacharyya term is CAP (the lower clamp), Hellinger's 1."""
    P = np.zeros((2, 9, 4), np.float32)
    P[0, :, 0] = 1
    P[1, :, 2] = 1
    kernel = cpu_kernel_objects[name]
    d = kernel_distances(kernel, P[:1], P[1:])
    assert d[0, 0] == pytest.approx(CAP, abs=1e-5)
    assert kernel_distances(kernel, P[:1], P[1:], "hellinger")[0, 0] == pytest.approx(1.0, abs=1e-7)


def test_numba_symmetric_call_leaves_the_lower_triangle_alone(P10):
    from inpca.kernels.cpu import NumbaKernel

    kernel = NumbaKernel(row_block=16, col_tile=16)
    sums = kernel.new_sums(37, 37)
    assert sums.shape == (48, 48) and sums.dtype == np.float64   # padded to blocks of 16
    sums[:] = -7.0
    left = kernel.prepare(P10)
    kernel.accumulate(left, left, True, "bhattacharyya", sums)
    out = kernel.to_numpy(sums, 37, 37)
    lower = np.tril_indices(37, -1)
    assert (out[lower] == -7.0).all()
    upper = np.triu_indices(37)
    np.testing.assert_allclose(out[upper] + 7.0, 29 * bhattacharyya(P10, P10)[upper], rtol=0, atol=29 * TOL)


def test_accumulate_adds_to_the_sums_it_is_given(cpu_kernel_objects, P10, Q10):
    """Two calls on the same chunk give twice one call: the kernels add, never overwrite."""
    for name in ("numba", "torch"):
        kernel = cpu_kernel_objects[name]
        left, right = kernel.prepare(P10), kernel.prepare(Q10)
        sums = kernel.new_sums(37, 21)
        kernel.accumulate(left, right, False, "bhattacharyya", sums)
        once = np.array(kernel.to_numpy(sums, 37, 21))
        kernel.accumulate(left, right, False, "bhattacharyya", sums)
        np.testing.assert_allclose(np.array(kernel.to_numpy(sums, 37, 21)), 2 * once, rtol=1e-12, err_msg=name)


def test_kernels_take_torch_tensors_and_float64(cpu_kernel_objects, P10, Q10):
    """All kernels round their input to float32 first: float64 and torch inputs give the same distances."""
    for name in ("numba", "torch"):
        kernel = cpu_kernel_objects[name]
        base = kernel_distances(kernel, P10, Q10)
        np.testing.assert_array_equal(kernel_distances(kernel, P10.astype(np.float64), Q10.astype(np.float64)), base)
        np.testing.assert_array_equal(kernel_distances(kernel, torch.from_numpy(P10), torch.from_numpy(Q10)), base)


# ----------------------------------------------------------------------------- numba kernel parts

def test_numba_kernel_refuses_bad_sizes_in_one_line():
    from inpca.kernels.cpu import NumbaKernel

    with pytest.raises(ValueError, match=r"^row_block must be a positive multiple of 16, got 24$"):
        NumbaKernel(row_block=24)
    with pytest.raises(ValueError, match=r"^col_tile must be a positive multiple of 16, got 0$"):
        NumbaKernel(col_tile=0)
    with pytest.raises(ValueError, match=r"^slab must be a positive integer \(samples per slab\), got 0$"):
        NumbaKernel(slab=0)
    # every kind of bad value, for each parameter: one line that names the parameter and the value
    bad = {"row_block": [8, 40, -16, 0, 32.0, True, "64"], "col_tile": [8, 48 + 1, -32, 16.5, None],
           "slab": [0, -1, 2.0, True, None]}
    for name, values in bad.items():
        expected = "a positive integer (samples per slab)" if name == "slab" else "a positive multiple of 16"
        for value in values:
            with pytest.raises(ValueError) as error:
                NumbaKernel(**{name: value})
            assert str(error.value) == f"{name} must be {expected}, got {value!r}"
    for row_block, col_tile, slab in [(16, 16, 1), (48, 80, 7), (np.int64(32), 96, np.int32(5))]:
        kernel = NumbaKernel(row_block=row_block, col_tile=col_tile, slab=slab)  # any positive slab works
        assert (kernel.row_block, kernel.col_tile, kernel.slab) == (row_block, col_tile, slab)
        assert all(type(v) is int for v in (kernel.row_block, kernel.col_tile, kernel.slab))


def test_make_tasks_refuses_sizes_that_are_no_multiple_of_the_block():
    from inpca.kernels.cpu import make_tasks

    with pytest.raises(ValueError, match=r"^row_block must be a positive multiple of 16, got 24$"):
        make_tasks(64, 64, False, 24, 16)
    with pytest.raises(ValueError, match=r"^col_tile must be a positive multiple of 16, got 40$"):
        make_tasks(64, 64, True, 16, 40)
    with pytest.raises(ValueError, match=r"^m2p must be a non-negative multiple of 16 \(padded points\), got 37$"):
        make_tasks(48, 37, False)


@pytest.mark.parametrize("threads", [1, 2, 3, 8, 64])
@pytest.mark.parametrize("row_block, col_tile", [(128, 64), (48, 64), (128, 48), (80, 80), (144, 16), (16, 208)])
def test_numba_task_reduction_keeps_whole_blocks(monkeypatch, threads, row_block, col_tile):
    """_tasks shrinks the tasks of small matrices (fewer than 2 per thread), by halving rounded down to
    a multiple of 16, never below 16: every task bound stays a multiple of 16 and the tasks still cover
    each wanted pair once. (Tiles of sizes that are no multiple of 16 read and write out of bounds.)"""
    from inpca.kernels import cpu

    assert [cpu.halved_tile_size(s) for s in (16, 32, 48, 64, 80, 96, 128, 144)] == [16, 16, 16, 32, 32, 48, 64, 64]
    monkeypatch.setattr(cpu.numba, "get_num_threads", lambda: threads)
    kernel = cpu.NumbaKernel(row_block=row_block, col_tile=col_tile)
    for m1p, m2p, symmetric in [(16, 16, True), (48, 48, True), (112, 112, True), (48, 80, False), (256, 32, False)]:
        tasks = kernel._tasks(m1p, m2p, symmetric)
        assert (tasks % cpu.BLOCK == 0).all(), (m1p, m2p, tasks)
        assert ((tasks[:, 1] > tasks[:, 0]) & (tasks[:, 3] > tasks[:, 2])).all()
        cover = np.zeros((m1p, m2p), int)
        for r0, r1, c0, c1 in tasks:
            cover[r0:r1, c0:c1] += 1
        if symmetric:
            assert (cover[np.triu_indices(m1p)] == 1).all() and (cover <= 1).all()
        else:
            assert (cover == 1).all()
        # reduced until there are 2 tasks per thread or the tasks are single blocks
        assert len(tasks) >= 2 * threads or len(tasks) == len(cpu.make_tasks(m1p, m2p, symmetric, 16, 16))


NON_POWER_OF_TWO_CHECK = """
import sys
sys.path.insert(0, {tests!r})
import numpy as np
from test_kernels import bhattacharyya, kernel_distances, random_probs
from inpca.kernels.cpu import NumbaKernel
P, Q = random_probs(37, 29, 10, seed=1), random_probs(21, 29, 10, seed=2)
kernel = NumbaKernel(row_block={row_block}, col_tile={col_tile})
error = np.abs(kernel_distances(kernel, P, Q) - bhattacharyya(P, Q)).max()
print(f"max error {{error:.3g}}")
sys.exit(0 if error < 1e-6 else 1)
"""


def check_task_sizes(row_block, col_tile):
    """Run NON_POWER_OF_TWO_CHECK in a subprocess: a kernel that writes out of bounds can abort the interpreter."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = NON_POWER_OF_TWO_CHECK.format(tests=str(Path(__file__).parent), row_block=row_block, col_tile=col_tile)
    # how far _tasks halves depends on the thread count (it wants 2 tasks per thread): fix it
    env = dict(os.environ, NUMBA_NUM_THREADS="2")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    last = (result.stdout + result.stderr).strip().splitlines()[-1:]
    assert result.returncode == 0, f"NumbaKernel(row_block={row_block}, col_tile={col_tile}): exit {result.returncode}, {last}"
    assert last and last[0].startswith("max error"), last


def test_numba_kernel_with_small_power_of_two_task_sizes():
    """The control of the next test: the same check passes for sizes whose halves stay multiples of 16."""
    check_task_sizes(64, 32)


@pytest.mark.parametrize("row_block, col_tile", [(128, 48), (48, 64), (80, 80)])
def test_numba_kernel_with_task_sizes_that_are_no_power_of_two(row_block, col_tile):
    """_tasks used to halve 48 or 80 to 24 or 40 for small matrices (fewer than 2 tasks per thread): no
    multiple of BLOCK = 16, so the 16-wide tiles read and wrote past the task's buffers (wrong distances,
    off by ~10, or 'double free or corruption'). Sizes are now reduced to multiples of 16."""
    check_task_sizes(row_block, col_tile)


@pytest.mark.parametrize("m1p, m2p, row_block, col_tile, symmetric", [
    (48, 80, 16, 32, False), (144, 64, 128, 64, False), (16, 16, 128, 64, False),
    (128, 128, 32, 16, True), (144, 144, 128, 64, True), (16, 16, 128, 64, True),
])
def test_make_tasks_cover_every_wanted_pair_once(m1p, m2p, row_block, col_tile, symmetric):
    from inpca.kernels.cpu import BLOCK, make_tasks

    tasks = make_tasks(m1p, m2p, symmetric, row_block, col_tile)
    assert tasks.dtype == np.int64 and tasks.shape[1] == 4
    assert (tasks % BLOCK == 0).all()
    assert ((tasks[:, 1] - tasks[:, 0]) <= row_block).all() and ((tasks[:, 3] - tasks[:, 2]) <= col_tile).all()
    cover = np.zeros((m1p, m2p), int)
    for r0, r1, c0, c1 in tasks:
        cover[r0:r1, c0:c1] += 1
    if symmetric:
        assert (cover[np.triu_indices(m1p)] == 1).all(), "every pair on or above the diagonal exactly once"
        assert (cover <= 1).all()
    else:
        assert (cover == 1).all()


def test_numba_prepare_lays_out_scaled_square_roots_in_blocks_of_16(P3):
    from inpca.kernels.cpu import BLOCK, NumbaKernel, padded_points

    kernel = NumbaKernel()
    out = kernel.prepare(P3)                     # (19, 23, 3): 2 blocks, the second 3/16 used
    assert out.shape == (2, 23, 3, BLOCK) and out.dtype == np.float32
    assert padded_points(out) == 32
    expected = np.sqrt(P3 * np.float32(BC_SCALE))  # float32: exact scaling, one correctly rounded sqrt
    for m in range(19):
        np.testing.assert_array_equal(out[m // BLOCK, :, :, m % BLOCK], expected[m])
    assert (out[1, :, :, 3:] == 0).all(), "padded points are zero"


def test_numba_prepare_reuses_a_buffer_of_the_right_shape_only(P3):
    from inpca.kernels.cpu import NumbaKernel

    kernel = NumbaKernel()
    first = kernel.prepare(P3)
    again = kernel.prepare(P3[::-1], reuse=first)
    assert again is first
    np.testing.assert_array_equal(again[0, :, :, 0], np.sqrt(P3[18] * np.float32(BC_SCALE)))
    other = kernel.prepare(P3[:, :10], reuse=first)  # another shape: a new buffer, the old one kept
    assert other is not first and other.shape == (2, 10, 3, 16)


def test_numba_prepare_reads_strided_and_byte_swapped_input(P3):
    from inpca.kernels.cpu import NumbaKernel

    kernel = NumbaKernel()
    base = kernel.prepare(P3)
    strided = np.ascontiguousarray(P3.transpose(1, 0, 2)).transpose(1, 0, 2)   # same values, other strides
    np.testing.assert_array_equal(kernel.prepare(strided), base)
    np.testing.assert_array_equal(kernel.prepare(P3.astype(">f4")), base)


def test_simd_intrinsics_compute_lane_by_lane():
    from inpca.kernels import simd

    @numba.njit
    def combine(a, b, c, out, ints, exponents):
        x = simd.load(a, 0)
        y = simd.load(b, 8)                    # an offset load
        z = simd.fma(x, y, simd.broadcast(c, 1))
        w = simd.add(simd.mul(x, y), z)
        simd.store(out, 0, z)
        simd.store(out, 8, w)
        simd.store(out, 16, simd.clamp(x, np.float32(2.0), np.float32(5.0)))
        m, e = simd.peel(simd.load(c, 2), simd.load(ints, 0))
        simd.store(out, 24, m)
        simd.store(exponents, 0, e)

    a = np.array([-0.0, 1, 2, 3, 4, 5, 6, 7], np.float32)
    b = np.arange(16, dtype=np.float32)
    c = np.array([0, 0.5, 12, 0.375, 1, 3e-30, 2.0**100, 1.5, 7, 2.0**-100], np.float32)  # peel: positive normals
    out = np.zeros(32, np.float32)
    ints = np.arange(8, dtype=np.int32)
    exponents = np.zeros(8, np.int32)
    combine(a, b, c, out, ints, exponents)
    z = a * b[8:] + np.float32(0.5)                # small integers and halves: exact in float32
    np.testing.assert_array_equal(out[:8], z)
    np.testing.assert_array_equal(out[8:16], a * b[8:] + z)
    np.testing.assert_array_equal(out[16:24], [2, 2, 2, 3, 4, 5, 5, 5])   # -0.0 reads as negative: lo
    mantissa, field = np.frexp(c[2:10].astype(np.float64))   # c = mantissa' 2**field', mantissa' in [0.5, 1)
    np.testing.assert_array_equal(out[24:32], (2 * mantissa).astype(np.float32))
    np.testing.assert_array_equal(exponents, ints + (field - 1 + 127))


# ----------------------------------------------------------------------------- layout

def test_round_up():
    assert [round_up(x, 16) for x in (0, 1, 16, 17, 32)] == [0, 16, 16, 32, 32]
    assert round_up(7, 1) == 7


def test_as_torch_shares_float32_memory_and_converts_the_rest():
    a = np.ones((2, 3), np.float32)
    t = as_torch(a)
    a[0, 0] = 5.0
    assert t[0, 0].item() == 5.0, "a float32 array is not copied"
    t64 = as_torch(np.ones((2, 3)))
    assert t64.dtype == torch.float32
    tensor = torch.zeros(3, dtype=torch.float64)
    assert as_torch(tensor) is tensor


def ulps(a, b):
    """Distance in float32 units in the last place (a, b non-negative float32 arrays)."""
    return np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))


@pytest.mark.parametrize("points_last", [True, False])
def test_scaled_sqrt_layouts_and_padding(P3, points_last):
    out = scaled_sqrt(P3, class_multiple=4, point_multiple=16, points_last=points_last)
    assert out.dtype == torch.float32
    out = out.numpy()
    exact = np.sqrt(P3.astype(np.float64) * BC_SCALE).astype(np.float32)   # (points, samples, classes)
    if points_last:
        assert out.shape == (23, 4, 32)
        got = out[:, :3, :19].transpose(2, 0, 1)
        assert (out[:, 3, :] == 0).all() and (out[:, :, 19:] == 0).all()
    else:
        assert out.shape == (23, 32, 4)
        got = out[:, :19, :3].transpose(1, 0, 2)
        assert (out[:, :, 3] == 0).all() and (out[:, 19:, :] == 0).all()
    assert ulps(np.ascontiguousarray(got), exact).max() == 0, "2**16 sqrt(p) correctly rounded to float32"


def test_scaled_sqrt_is_correctly_rounded(P3):
    """2**16 sqrt(p) correctly rounded to float32. (torch's vectorised AVX-512 float32 sqrt is 1 ulp off for
    ~17 % of values; scaled_sqrt takes a float64 sqrt and rounds it once.)"""
    got = scaled_sqrt(P3, points_last=False).numpy().transpose(1, 0, 2)
    exact = np.sqrt(P3.astype(np.float64) * BC_SCALE).astype(np.float32)
    assert ulps(np.ascontiguousarray(got), exact).max() == 0, \
        f"{(ulps(np.ascontiguousarray(got), exact) > 0).mean():.0%} of scaled square roots are not correctly rounded"


def test_scaled_sqrt_is_correctly_rounded_for_every_float32_significand():
    """Every float32 x in [1, 4) (all significands, both exponent parities: the rounding of sqrt(x 4**k)
    is that of sqrt(x)) and every subnormal p, as p = x 2**-32, against numpy's IEEE float32 sqrt."""
    x = np.arange(np.float32(1).view(np.int32), np.float32(4).view(np.int32), dtype=np.int32).view(np.float32)
    subnormal = np.arange(1, 1 << 23, dtype=np.int32).view(np.float32)
    for values in (x * np.float32(2.0**-32), subnormal):
        got = scaled_sqrt(values.reshape(1, -1, 1)).numpy().reshape(-1)
        expected = np.sqrt(values * np.float32(2.0**32))  # float32, exact product, IEEE sqrt
        bad = np.flatnonzero(got != expected)
        assert bad.size == 0, \
            f"{bad.size} of {values.size} wrong, e.g. p = {values[bad[:3]]}: {got[bad[:3]]} != {expected[bad[:3]]}"


@pytest.mark.parametrize("points_last", [True, False])
@pytest.mark.parametrize("padded", [False, True])
def test_scaled_sqrt_is_the_same_in_slabs_of_samples(monkeypatch, P3, points_last, padded):
    """The float64 temporary goes in slabs of samples (a partial last one here, and one sample per slab
    when one sample alone is over the limit); the result does not depend on it."""
    from inpca.kernels import layout

    multiples = dict(class_multiple=4, point_multiple=16) if padded else {}
    whole = scaled_sqrt(P3, points_last=points_last, **multiples).numpy()
    for limit in (19 * 3 * 5, 19 * 3 * 5 + 1, 1):            # 5 samples of 23 per slab; one sample per slab
        monkeypatch.setitem(layout.SLAB_ELEMENTS, "cpu", limit)
        np.testing.assert_array_equal(scaled_sqrt(P3, points_last=points_last, **multiples).numpy(), whole)
    assert scaled_sqrt(np.zeros((3, 0, 2), np.float32)).shape == (0, 2, 3)


def test_scaled_sqrt_keeps_the_digits_of_subnormal_probabilities():
    tiny = np.array([[[np.float32(1.4e-45), np.float32(3e-42), np.float32(1e-39), np.float32(1.0)]]], np.float32)
    assert (tiny[..., :3] < np.finfo(np.float32).tiny).all()
    got = scaled_sqrt(tiny).numpy()[0, :, 0]
    exact = np.sqrt(tiny[0, 0].astype(np.float64) * 2.0**32).astype(np.float32)
    np.testing.assert_array_equal(got, exact)
    assert (got[:3] >= np.finfo(np.float32).tiny).all(), "scaled, every square root is a normal float32"
    assert got[3] == 2.0**16


def test_scaled_sqrt_rounds_float64_input_to_float32_first():
    p = np.array([[[1 / 3, 2 / 3]]])
    np.testing.assert_array_equal(scaled_sqrt(p).numpy(), scaled_sqrt(p.astype(np.float32)).numpy())


# ----------------------------------------------------------------------------- geodesic kernel

def geodesic_pool(dtype):
    rng = np.random.default_rng(5)
    pool = random_probs(4, 300, 5, seed=6).astype(dtype)  # 300 samples: two chunks of 256
    pool[2] = pool[1]                                    # identical endpoints: theta < MIN_ANGLE
    pool[3, :7] = 0
    pool[3, :7, 1] = 1                                   # one-hot rows
    return pool, rng


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_geodesic_kernel_matches_numpy_geodesic(dtype):
    from inpca.geodesic import geodesic
    from inpca.kernels.geodesic_cpu import interpolate

    pool, _ = geodesic_pool(dtype)
    lower = np.array([0, 0, 1, 3, 2, 0, 3], np.int64)
    upper = np.array([1, 3, 2, 0, 2, 1, 1], np.int64)
    fraction = np.array([0.25, 0.5, 0.7, 0.1, 0.4, 0.0, 1.0])
    out = np.full((len(lower), *pool.shape[1:]), np.nan, dtype)
    interpolate(pool, lower, upper, fraction, out)
    for r, (a, b, t) in enumerate(zip(lower, upper, fraction)):
        expected = pool[a] if a == b else geodesic(pool[a], pool[b], [t], dtype=dtype)[0]
        if dtype == np.float32:
            np.testing.assert_array_equal(out[r], expected, err_msg=f"row {r}")
        else:
            np.testing.assert_allclose(out[r], expected, rtol=1e-13, atol=1e-16, err_msg=f"row {r}")
    np.testing.assert_array_equal(out[4], pool[2])                      # lower == upper: held as stored
    np.testing.assert_allclose(out[2], pool[1], rtol=1e-6)              # identical endpoints stay put
    np.testing.assert_allclose(out[6], pool[1], atol=1e-6)              # t = 1: the upper end
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-6)


# ----------------------------------------------------------------------------- the GPU kernels

@pytest.mark.gpu
@pytest.mark.skipif(not has_module("triton"), reason="triton is not installed")
@pytest.mark.parametrize("dot", ["ieee", "none", "tf32x3"])
def test_triton_kernel_matches_the_float64_formula_on_cuda(dot, P10, Q10):
    from inpca.kernels.triton_gpu import TritonKernel

    kernel = TritonKernel("cuda", dot=dot)
    tol = TOL if dot != "tf32x3" else 5e-6   # tf32x3: ~5e-7 per sample term
    for metric, reference in REFERENCE.items():
        np.testing.assert_allclose(kernel_distances(kernel, P10, Q10, metric), reference(P10, Q10), rtol=0, atol=tol)
        sym = kernel_distances(kernel, P10, metric=metric, chunk=7)
        np.testing.assert_allclose(sym, reference(P10, P10), rtol=0, atol=tol)
    assert np.abs(np.diag(kernel_distances(kernel, P10))).max() < tol


@pytest.mark.gpu
def test_torch_kernel_on_cuda_matches_the_float64_formula(P10, Q10):
    from inpca.kernels.torch_blocked import TorchBlockedKernel

    kernel = TorchBlockedKernel("cuda")
    np.testing.assert_allclose(kernel_distances(kernel, P10, Q10, chunk=9), bhattacharyya(P10, Q10), rtol=0, atol=TOL)
    np.testing.assert_allclose(kernel_distances(kernel, P10, metric="hellinger"), hellinger(P10, P10), rtol=0, atol=TOL)


def test_kernels_package_imports_no_compiler():
    """inpca.kernels itself imports no numba, torch or triton (checked in a fresh interpreter)."""
    import subprocess
    import sys

    code = ("import sys, inpca.kernels; "
            "print(','.join(m for m in ('numba', 'torch', 'triton') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"inpca.kernels imported {result.stdout.strip()}"
    assert kernels.__name__ == "inpca.kernels"
