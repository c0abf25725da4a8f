"""Distances between models in prediction space (Mao et al., PNAS 2024, section 2 of the method spec).

A model u is represented by its predicted class probabilities p_u[n, c] on N samples and C classes.
The distance between two models is the intensive Bhattacharyya distance

    d(u, v) = -(1/N) sum_n log BC_n(u, v),    BC_n(u, v) = sum_c sqrt(p_u[n, c] p_v[n, c]),

or, with metric="hellinger", the mean over samples of 1 - BC_n(u, v).

Numerics
--------
* Per-sample terms are clamped to [0, CAP], CAP = 100: a sample on which the two distributions do not
  overlap (BC_n == 0, e.g. two different one-hot predictions) contributes CAP instead of infinity, as
  in the authors' `dbhat` (which maps -log 0 = inf to 100). A tiny positive BC_n whose -log exceeds
  CAP is capped too (`dbhat` kept up to -log(float32 min) = 103.3 there), so every result is finite,
  >= 0 and <= CAP. BC_n > 1 from rounding is clamped to 1 (term 0). Hellinger terms lie in [0, 1].
* BCs are computed in float32 from float32 probabilities (float64 inputs are rounded to float32), on
  square roots scaled by 2**16 so that no product of two tiny probabilities becomes subnormal; sums
  over samples are float64. Against a float64 evaluation of the same formula the result agrees to
  ~1e-7 absolute (float32 rounding of each BC; a capped sample is CAP to within 6e-8).
* The fast kernels take no log per sample: they multiply the clamped BCs of many samples into a
  running product, splitting its binary exponent off every few samples so it never under- or
  overflows, and take one log per pair at the end. Details in `inpca.kernels`.

Kernels and devices
-------------------
device="cpu": a fused multi-threaded numba kernel (`inpca.kernels.cpu`), or a blocked pure-torch
kernel if numba is not installed. device="cuda": a fused Triton kernel, or the blocked torch kernel
on the GPU if Triton is not installed. device="auto" picks cuda when torch sees a GPU. For a
symmetric matrix (Q is None) only the upper triangle is computed, the diagonal is exactly 0 and the
result is exactly symmetric.

Memory
------
`pairwise_streamed` reads the samples in chunks (e.g. from an HDF5 dataset): peak memory is a few
times points x chunk x classes x 4 bytes plus the (M1, M2) float64 result, independent of N.
`pairwise` streams over its in-memory arrays the same way.

This module imports only numpy at import time; torch, numba and triton are imported on first use.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Callable

import numpy as np

from .kernels import CAP, METRICS, default_kernel_name, get_kernel
from .devices import resolve_device

__all__ = ["CAP", "METRICS", "ReferencePoints", "pairwise", "pairwise_streamed", "validate_probabilities",
           "resolve_device"]

# Validation looks at this many probabilities at a time (plus a bool mask of the same size), so it
# never holds more than ~100 MB of temporaries whatever the input size.
VALIDATION_CHUNK_ELEMENTS = 1 << 24
# In-memory `pairwise` streams chunks of about this many probabilities per operand.
PAIRWISE_CHUNK_ELEMENTS = {"cpu": 1 << 24, "cuda": 1 << 28}
# Largest per-sample value of each metric (results are clipped to [0, this] against rounding).
METRIC_MAX = {"bhattacharyya": CAP, "hellinger": 1.0}


def _is_torch(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def _as_array(x):
    """numpy arrays and torch tensors as they are; anything else through np.asarray."""
    if isinstance(x, np.ndarray) or _is_torch(x):
        return x
    return np.asarray(x)


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(map(repr, METRICS))}")


def _first_index(mask) -> tuple[int, ...]:
    """Index of the first True of a torch boolean tensor (C order)."""
    import torch

    flat = int(mask.reshape(-1).to(torch.uint8).argmax())  # argmax returns the first maximum
    return tuple(int(i) for i in np.unravel_index(flat, tuple(mask.shape)))


def _check_values(chunk, name: str, atol: float, sample_offset: int = 0) -> None:
    """ValueError naming `name` and the first bad index, for NaN/inf, negatives and bad row sums.

    chunk: (points, samples, classes), numpy or torch; sample indices are reported + sample_offset.
    The common, valid case costs two multi-threaded reductions (row sums, minimum); only a failing
    chunk is searched for the first offending entry.
    """
    if not _is_torch(chunk) and "torch" not in sys.modules:
        # numpy fast path (one thread), so a CPU job that has not loaded torch need not import it
        # (~1.5 s per distance-tile job) for valid data; torch's reductions are faster once loaded
        values = np.asarray(chunk)
        if values.dtype.kind == "f" and bool(np.all(np.abs(values.sum(-1) - 1.0) <= atol)) \
                and bool(values.min() >= 0):
            return
    import torch

    if not _is_torch(chunk):
        chunk = np.asarray(chunk)
        if not chunk.dtype.isnative:  # e.g. big-endian data from a file: torch needs native order
            chunk = chunk.astype(chunk.dtype.newbyteorder("="))
    values = chunk if _is_torch(chunk) else torch.from_numpy(chunk)
    if not values.is_floating_point():
        values = values.to(torch.float64)
    # Fast path: row sums in the input's precision (float32 rounding, ~1e-7 per row, is far below any
    # sensible atol) and the minimum; NaN and inf fail `<= atol`.
    if bool(((values.sum(-1) - 1.0).abs() <= atol).all()) and bool(values.amin(-1).min() >= 0):
        return
    sums = values.sum(-1, dtype=torch.float64)
    sums_ok = (sums - 1.0).abs() <= atol

    def where(index):
        m, n, *c = index
        return f"(point {m}, sample {n + sample_offset}" + (f", class {c[0]})" if c else ")")

    finite = torch.isfinite(values)
    if not bool(finite.all()):
        index = _first_index(~finite)
        value = float(values[index])
        raise ValueError(f"{name}: {'NaN' if value != value else value} at {where(index)}; "
                         "probabilities must be finite")
    negative = values < 0
    if bool(negative.any()):
        index = _first_index(negative)
        raise ValueError(f"{name}: negative probability {float(values[index]):.6g} at {where(index)}")
    index = _first_index(~sums_ok)
    raise ValueError(f"{name}: probabilities at {where(index)} sum to {float(sums[index]):.6g}, "
                     f"not 1 (tolerance atol={atol:g})")


def _check_shape(P, name: str) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in P.shape)
    if len(shape) != 3:
        raise ValueError(f"{name}: expected a 3-d array of probabilities shaped (points, samples, classes), "
                         f"got shape {shape}")
    if 0 in shape:
        raise ValueError(f"{name}: empty array of shape {shape}; need at least one point, sample and class")
    return shape


def validate_probabilities(P, name: str = "P", atol: float = 1e-3) -> None:
    """Raise ValueError (one line: `name`, what is wrong, first offending index) unless P is a valid
    (points, samples, classes) array of probabilities: 3-d, non-empty, finite, non-negative, every
    row P[m, n, :] summing to 1 within `atol`. Works chunk-wise (bounded memory) on numpy arrays and
    torch tensors, with torch's multi-threaded reductions (torch is imported on first use)."""
    P = _as_array(P)
    m, n, c = _check_shape(P, name)
    step = max(1, VALIDATION_CHUNK_ELEMENTS // (m * c))
    for start in range(0, n, step):
        _check_values(P[:, start:start + step], name, atol, sample_offset=start)


@contextlib.contextmanager
def thread_limit(threads: int | None, kernel_name: str):
    """Run with at most `threads` threads in torch (and numba), restoring the previous settings."""
    if threads is None:
        yield
        return
    if int(threads) != threads or threads < 1:
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    import sys

    torch = sys.modules.get("torch") if kernel_name == "numba" else __import__("torch")
    saved_torch = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(int(threads))
    saved_numba = None
    if kernel_name == "numba":
        import numba

        saved_numba = numba.get_num_threads()
        numba.set_num_threads(min(int(threads), numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        if torch:
            torch.set_num_threads(saved_torch)
        if saved_numba is not None:
            import numba

            numba.set_num_threads(saved_numba)


def _read_checked(read: Callable, start: int, stop: int, name: str, expect: tuple | None, validate: bool,
                  atol: float):
    chunk = _as_array(read(start, stop))
    shape = tuple(int(s) for s in chunk.shape)
    if len(shape) != 3 or shape[1] != stop - start or (expect is not None and (shape[0], shape[2]) != expect):
        want = f"({expect[0]}, {stop - start}, {expect[1]})" if expect else f"(points, {stop - start}, classes)"
        raise ValueError(f"{name}({start}, {stop}) returned shape {shape}; expected {want}")
    if 0 in shape:
        raise ValueError(f"{name}({start}, {stop}) returned an empty array of shape {shape}")
    if validate:
        _check_values(chunk, name.removeprefix("read_").upper(), atol=atol, sample_offset=start)
    return chunk


def _streamed(read_p: Callable, n_samples: int, read_q: Callable | None, metric: str, kernel,
              chunk_samples: int, validate: bool = True, atol: float = 1e-3, prepared_q=None) -> np.ndarray:
    """The distance matrix from chunks of samples, with an explicit kernel object (see inpca.kernels).
    `prepared_q`: (Q's shape (M2, N, C), [(start, stop, chunk prepared by the kernel), ...]) of column
    points prepared once (:class:`ReferencePoints`), in place of read_q; its chunks are used as they are."""
    _check_metric(metric)
    if int(n_samples) != n_samples or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    if int(chunk_samples) != chunk_samples or chunk_samples < 1:
        raise ValueError(f"chunk_samples must be a positive integer, got {chunk_samples!r}")
    symmetric = read_q is None and prepared_q is None
    p_shape = q_shape = None
    sums = None
    # Kernels that can write a chunk's prepared input over the previous chunk's get it back; others
    # drop it first, so that at most one chunk's prepared input is alive at a time.
    reuse = getattr(kernel, "reuses_buffers", False)
    left = right = None
    bounds = ([(start, stop) for start, stop, _ in prepared_q[1]] if prepared_q is not None else
              [(start, min(start + chunk_samples, n_samples)) for start in range(0, n_samples, chunk_samples)])
    for i, (start, stop) in enumerate(bounds):
        old_left = left if reuse else None
        old_right = right if reuse and prepared_q is None else None  # a prepared reference is never written over
        left = right = None
        p = _read_checked(read_p, start, stop, "read_p", p_shape, validate, atol)
        p_shape = (p.shape[0], p.shape[2])
        if prepared_q is not None and p_shape[1] != prepared_q[0][2]:
            raise ValueError(f"read_p({start}, {stop}) has {p_shape[1]} classes but the reference points have "
                             f"{prepared_q[0][2]}")
        left = kernel.prepare(p, reuse=old_left)
        del p, old_left
        if symmetric:
            right, q_shape = left, p_shape
        elif prepared_q is not None:
            right, q_shape = prepared_q[1][i][2], (prepared_q[0][0], prepared_q[0][2])
        else:
            q = _read_checked(read_q, start, stop, "read_q", q_shape, validate, atol)
            if q.shape[2] != p_shape[1]:
                raise ValueError(f"read_q({start}, {stop}) has {q.shape[2]} classes but read_p has {p_shape[1]}")
            q_shape = (q.shape[0], q.shape[2])
            right = kernel.prepare(q, reuse=old_right)
            del q
        del old_right
        if sums is None:
            sums = kernel.new_sums(p_shape[0], q_shape[0])
        kernel.accumulate(left, right, symmetric, metric, sums)
    del left, right
    D = np.array(kernel.to_numpy(sums, p_shape[0], q_shape[0]), dtype=np.float64) / n_samples
    if symmetric:  # only the upper triangle was computed: mirror it; the diagonal is exactly 0
        D = np.triu(D, 1)
        D += D.T
    np.clip(D, 0.0, METRIC_MAX[metric], out=D)
    return D


def pairwise_streamed(read_p: Callable, n_samples: int, read_q: Callable | None = None,
                      metric: str = "bhattacharyya", device: str = "auto", chunk_samples: int = 2048,
                      threads: int | None = None, sum_tolerance: float = 1e-3, validate: bool = True) -> np.ndarray:
    """Distance matrix (M1, M2) float64 from samples read in chunks.

    read_p(start, stop) returns the (M1, stop - start, C) float32 probabilities of samples [start, stop)
    of the row points (e.g. an h5py dataset slice); read_q likewise for the column points, or None for
    the symmetric matrix of the row points with themselves. Each chunk is validated, square-rooted
    once, and its per-pair sums of per-sample terms are added in float64; the sum is divided by
    n_samples at the end. Memory is bounded by points x chunk_samples x C, not by n_samples.
    sum_tolerance: how far a row may sum from 1 (the pipeline passes the store's own tolerance, so
    what the store accepted is accepted here too). validate=False skips the check, for points made
    from checked ones (the equal-progress tiles' interpolated models, renormalised by construction).
    """
    _check_metric(metric)
    device = resolve_device(device)
    name = default_kernel_name("cpu" if device == "cpu" else "cuda")
    with thread_limit(threads, name):
        return _streamed(read_p, n_samples, read_q, metric, get_kernel(name, device), chunk_samples,
                         validate=validate, atol=sum_tolerance)


class ReferencePoints:
    """Distances from new points to a fixed set of reference points, the reference side validated and
    prepared for the kernel once (an atlas places checkpoint after checkpoint against the same points).

    ``distances(P)`` equals ``pairwise_streamed(P-chunks, n, Q-chunks, ...)`` with the same chunk_samples
    to the last bit: the same chunks, kernel and arithmetic, without re-validating and re-preparing Q.
    Memory: the prepared reference, about the size of Q in float32.
    """

    def __init__(self, Q, metric: str = "bhattacharyya", device: str = "auto", chunk_samples: int = 2048,
                 sum_tolerance: float = 1e-3):
        _check_metric(metric)
        Q = _as_array(Q)
        m, n, c = _check_shape(Q, "Q")
        self.metric, self.n_samples, self.shape = metric, n, (m, n, c)
        self.chunk_samples, self.atol = int(chunk_samples), sum_tolerance
        self.device = resolve_device(device)
        self.kernel = get_kernel(default_kernel_name("cpu" if self.device == "cpu" else "cuda"), self.device)
        self.chunks = []
        for start in range(0, n, self.chunk_samples):
            stop = min(start + self.chunk_samples, n)
            q = _read_checked(lambda a, b: Q[:, a:b], start, stop, "read_q", None, True, sum_tolerance)
            self.chunks.append((start, stop, self.kernel.prepare(q)))

    def distances(self, P) -> np.ndarray:
        """(m, M) distances of the new points P (m, N, C) to the reference points."""
        P = _as_array(P)
        return _streamed(lambda start, stop: P[:, start:stop], self.n_samples, None, self.metric, self.kernel,
                         self.chunk_samples, atol=self.atol, prepared_q=(self.shape, self.chunks))


def pairwise(P, Q=None, metric: str = "bhattacharyya", device: str = "auto", threads: int | None = None) -> np.ndarray:
    """Distance matrix (M, M') float64 between the points of P (M, N, C) and of Q (M', N, C).

    P, Q: probabilities as numpy float32/float64 arrays or torch tensors (any device). Q None: the
    symmetric matrix of P with itself (upper triangle computed, exact zero diagonal, exactly symmetric).
    metric: "bhattacharyya" (intensive Bhattacharyya distance) or "hellinger" (mean of 1 - BC_n).
    device: "auto", "cpu" or "cuda". threads: CPU threads for the kernel (default: all).
    """
    _check_metric(metric)
    P = _as_array(P)
    validate_probabilities(P, "P")
    if Q is not None:
        Q = _as_array(Q)
        validate_probabilities(Q, "Q")
        if tuple(Q.shape[1:]) != tuple(P.shape[1:]):
            raise ValueError(f"Q: has {Q.shape[1]} samples x {Q.shape[2]} classes but P has "
                             f"{P.shape[1]} x {P.shape[2]}; both must be shaped (points, samples, classes) alike")
    device = resolve_device(device)
    kind = "cpu" if device == "cpu" else "cuda"
    name = default_kernel_name(kind)
    m, n, c = P.shape
    widest = max(m, Q.shape[0] if Q is not None else 0)
    chunk = int(min(n, max(256, PAIRWISE_CHUNK_ELEMENTS[kind] // (widest * c))))
    read_q = None if Q is None else (lambda start, stop: Q[:, start:stop])
    with thread_limit(threads, name):
        return _streamed(lambda start, stop: P[:, start:stop], n, read_q, metric, get_kernel(name, device),
                         chunk, validate=False)
