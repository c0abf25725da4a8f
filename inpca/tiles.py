"""Distance tiles between blocks (store blocks, or reindexed trajectory blocks), and their assembly
into one matrix per split.

A tile `results/distances/{split}/tiles/{a}-{b}.h5` holds `D` (M_a, M_b) float64: the distance of
every point of block a to every point of block b, computed by streaming the samples of both blocks
from disk (memory ~ (M_a + M_b) x chunk x C). A diagonal tile (a == b) is computed as a symmetric
matrix (upper triangle only, exact zero diagonal).

The assembled `results/distances/{split}.h5` holds `D` (M, M) float64 with rows and columns in
index.tsv order, chunked in 1024 x 1024 blocks so an embedding can stream row blocks, plus `run`
and `kind` (M,) to label the rows; attributes: split, metric, n_samples.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import time
from pathlib import Path

import numpy as np

from .devices import claim_gpu, resolve_device
from .distances import pairwise_streamed
from .errors import ResultsError
from .files import open_h5, write_h5
from .row_blocks import upper_parts
from .store import open_block

log = logging.getLogger("inpca.tiles")


def job_device(device: str) -> str:
    """The tile job's device; on a machine with several GPUs, one that no other job holds."""
    device = resolve_device(device)
    if device == "cuda":
        claim_gpu()
    return device


@contextlib.contextmanager
def _block_pair(block_a, block_b, split: str):
    """(probabilities of a, of b, samples, a is b) of two store blocks on one split, checked to match:
    what every tile of the pair reads."""
    with open_block(block_a) as fa, open_block(block_b) as fb:
        pa, pb = fa[f"{split}_probs"], fb[f"{split}_probs"]
        if pa.shape[1:] != pb.shape[1:]:
            raise ResultsError(f"{block_a} and {block_b}: {split}_probs have shapes {pa.shape} and {pb.shape}; "
                               "blocks of one study must match but for their first axis")
        yield pa, pb, pa.shape[1], Path(block_a) == Path(block_b)


def _reader(dset, rows=None):
    """A tile's sample reader: (start, stop) -> the points' (or `rows`') float32 probabilities."""
    if rows is None:
        return lambda start, stop: dset[:, start:stop].astype(np.float32, copy=False)
    return lambda start, stop: dset[rows, start:stop].astype(np.float32, copy=False)


def compute_tile(block_a, block_b, split: str, out_path, *, metric: str = "bhattacharyya", device: str = "auto",
                 chunk_samples: int = 4096, threads: int | None = None, sum_tolerance: float = 1e-3,
                 dtype: str = "float64") -> dict:
    """Distances between the points of two store blocks on one split -> `out_path`, stored as `dtype`.

    Store blocks hold points, `{split}_probs` (M, N, C): the tile is `D` (M_a, M_b). `sum_tolerance` is
    the store's own (store.sum_tolerance): a block the store accepted passes the same check here.
    (Distances at equal progress: :func:`inpca.trajectory_files.equal_progress_tile`.)
    """
    started = time.time()
    device = job_device(device)
    with _block_pair(block_a, block_b, split) as (pa, pb, n, same):
        D = pairwise_streamed(_reader(pa), n, read_q=None if same else _reader(pb), metric=metric, device=device,
                              chunk_samples=chunk_samples, threads=threads, sum_tolerance=sum_tolerance)

    def fill(f):
        f.create_dataset("D", data=D.astype(dtype), track_times=False)
        f.attrs.update({"split": split, "metric": metric, "n_samples": n,
                        "block_a": Path(block_a).stem, "block_b": Path(block_b).stem})

    write_h5(out_path, fill)
    seconds = time.time() - started
    ma, mb = D.shape
    pairs = ma * (ma + 1) // 2 if same else ma * mb
    rate = pairs * n / max(seconds, 1e-9)
    log.info("tile %s x %s (%s, %d samples): %s in %.2f s, %.3g pair-samples/s", Path(block_a).stem,
             Path(block_b).stem, split, n, " x ".join(map(str, D.shape)), seconds, rate)
    return {"seconds": seconds, "pair_samples_per_s": rate}


def _index_blocks(index_path) -> tuple[list[str], dict[str, tuple[int, int]], list[str], list[str]]:
    """Block order, (start, stop) of each block in matrix order, and run/kind of every point."""
    ranges, order, runs, kinds = {}, [], [], []
    with open(index_path, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            point, block = int(row["point"]), row["block"]
            if block not in ranges:
                order.append(block)
                ranges[block] = (point, point)
            start, stop = ranges[block]
            if point != stop:
                raise ResultsError(f"{index_path}: points of block {block} are not contiguous at point {point}")
            ranges[block] = (start, point + 1)
            runs.append(row["run"])
            kinds.append(row["kind"])
    return order, ranges, runs, kinds


def index_blocks(index_path) -> list[str]:
    """The blocks of a study in matrix order, as its index.tsv lists them."""
    return _index_blocks(index_path)[0]


def _block_pairs(order) -> list[tuple[str, str]]:
    """Every pair of blocks (a, b) with a at or before b in matrix order: the tiles of a matrix."""
    return [(a, b) for i, a in enumerate(order) for b in order[i:]]


def _check_tile_pairs(order, tile_paths: dict, index_path, kind: str) -> None:
    """A tile for every pair of the index's blocks and none for another (a stale file), or one line."""
    needed = set(_block_pairs(order))
    missing = needed - set(tile_paths)
    if missing:
        raise ResultsError(f"{index_path}: no {kind} for block pair(s) {sorted(missing)[:3]}")
    foreign = sorted(set(tile_paths) - needed)
    if foreign:
        raise ResultsError(f"{tile_paths[foreign[0]]}: a {kind} of blocks {foreign[0][0]} x {foreign[0][1]}, but "
                           f"{index_path} lists the blocks {', '.join(order)}; a stale file of an earlier study?")


def study_tile_paths(folder, index_path) -> dict:
    """{(a, b): path} of the tiles a study has in `folder`, for every pair of the blocks its index lists
    (a at or before b): what the study says it has, not what a glob finds (a tile of a block that a
    smaller `store.blocks` no longer has may still lie there, and is not the study's)."""
    order = index_blocks(index_path)
    return {(a, b): Path(folder) / f"{a}-{b}.h5" for a, b in _block_pairs(order)}


def assemble(tile_paths: dict, index_path, out_path, split: str) -> None:
    """Place every tile (keyed by (block_a, block_b)) and its transpose into one (M, M) matrix.

    Tiles may carry leading axes, (..., M_a, M_b): equal-progress tiles are (T, R_a, R_b). Then the
    result is (..., M, M), plus `mean` over the first axis and the tiles' `t`.
    """
    order, ranges, runs, kinds = _index_blocks(index_path)
    m = len(runs)
    _check_tile_pairs(order, tile_paths, index_path, "tile")
    metric, n_samples = None, None

    def fill(f):
        nonlocal metric, n_samples
        D = t_values = None
        for (a, b), path in tile_paths.items():
            with open_h5(path) as t:
                tile = t["D"][()]
                metric, n_samples = t.attrs["metric"], int(t.attrs["n_samples"])
                if "t" in t:
                    t_values = t["t"][()]
            lead = tile.shape[:-2]
            if D is None:
                chunk = (*[1] * len(lead), min(m, 1024), min(m, 1024))
                D = f.create_dataset("D", shape=(*lead, m, m), dtype=np.float64, chunks=chunk, track_times=False)
            (a0, a1), (b0, b1) = ranges[a], ranges[b]
            if tile.shape != (*D.shape[:-2], a1 - a0, b1 - b0):
                raise ResultsError(f"{path}: tile is {tile.shape}, but {index_path} has {a1 - a0} x {b1 - b0} points "
                                   f"for blocks {a} x {b}; rerun the stage that wrote it")
            D[..., a0:a1, b0:b1] = tile
            if a != b:
                D[..., b0:b1, a0:a1] = np.swapaxes(tile, -1, -2)
        if D.ndim == 3:
            f.create_dataset("mean", data=np.mean([D[k] for k in range(D.shape[0])], axis=0), track_times=False)
        if t_values is not None:
            f.create_dataset("t", data=t_values, track_times=False)
        f.create_dataset("run", data=np.array(runs, dtype="S"), track_times=False)
        f.create_dataset("kind", data=np.array(kinds, dtype="S"), track_times=False)
        f.attrs.update({"split": split, "metric": metric, "n_samples": n_samples})

    write_h5(out_path, fill)
    log.info("wrote %s: %d points from %d tiles", out_path, m, len(tile_paths))


class _TileFiles:
    """The tiles of one split, {(a, b): path} with a at or before b in index order, opened lazily and
    kept open until `close()` (or the end of a `with` block); the blocks' order and sizes come from
    `index_path` (index.tsv). Base of the readers that slice a matrix out of tiles in place."""

    dtype = np.dtype(np.float64)
    chunks = None

    def __init__(self, tile_paths: dict, index_path, kind: str):
        order, ranges, runs, kinds = _index_blocks(index_path)
        _check_tile_pairs(order, tile_paths, index_path, kind)
        self.order, self.ranges, self.run, self.kind = order, ranges, runs, kinds
        self._position = {block: n for n, block in enumerate(order)}
        self._paths = {pair: Path(path) for pair, path in tile_paths.items()}
        self._open: dict = {}
        attrs = self._file(*next(iter(self._paths))).attrs
        self.metric, self.n_samples = str(attrs["metric"]), int(attrs["n_samples"])

    def _file(self, a: str, b: str):
        if (a, b) not in self._open:
            self._open[(a, b)] = open_h5(self._paths[(a, b)])
        return self._open[(a, b)]

    def close(self) -> None:
        for f in self._open.values():
            f.close()
        self._open.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class TiledMatrix(_TileFiles):
    """The symmetric (M, M) matrix of a split, read straight from its tiles: no assembled copy.

    Slicing `D[i0:i1]`, `D[i0:i1, j0:j1]` or `D[()]` returns that block as float64, reading only
    the tiles it touches (a tile below the diagonal is the transpose of the one above it). `InPCA`
    and the out-of-sample projection take it like any matrix; `tiles()` reads every tile once (what a
    pass of the block eigensolver needs), and `bytes_read` / `stored_bytes` counts the reads.
    """

    def __init__(self, tile_paths: dict, index_path):
        super().__init__(tile_paths, index_path, "tile")
        self.shape = (len(self.run), len(self.run))
        self.bytes_read = 0  # bytes read from the tile files (as stored), by slices and by tiles()
        for (a, b) in self._paths:
            expected = (self.ranges[a][1] - self.ranges[a][0], self.ranges[b][1] - self.ranges[b][0])
            if self._tile(a, b).shape != expected:
                raise ResultsError(f"{self._paths[(a, b)]}: tile is {self._tile(a, b).shape}, but {index_path} has "
                                   f"{expected[0]} x {expected[1]} points for blocks {a} x {b}; rerun the stage "
                                   "that wrote it")

    def _tile(self, a: str, b: str):
        return self._file(a, b)["D"]

    @property
    def stored_bytes(self) -> int:
        """Bytes of the stored tiles (as stored, e.g. float32): one read of the tiles."""
        return sum(self._tile(a, b).size * self._tile(a, b).dtype.itemsize for a, b in self._paths)

    def tiles(self, block_bytes: int = 64 << 20):
        """Every stored number once, for a pass over the matrix: yield (rows, columns, part, mirrored)
        with part = self[rows, columns] as float64 (at most ~block_bytes) and ``mirrored`` when the part
        also stands for its transpose self[columns, rows] (inpca.block_eigen.stored_parts).

        A tile off the diagonal is read whole, in row slabs, once; a diagonal tile only on and right of
        its diagonal (it is stored whole, but symmetric). HDF5 converts straight into one reused
        float64 buffer, so ``part`` is valid only until the next one is yielded.
        """
        widest = max(stop - start for start, stop in self.ranges.values())
        rows_per_slab = max(1, int(block_bytes) // (8 * widest))
        buffer = np.empty(rows_per_slab * widest)
        for i, a in enumerate(self.order):
            a0, a1 = self.ranges[a]
            for b in self.order[i:]:
                b0, b1 = self.ranges[b]
                dset = self._tile(a, b)
                for r0 in range(0, a1 - a0, rows_per_slab):
                    r1 = min(a1 - a0, r0 + rows_per_slab)
                    c0 = r0 if a == b else 0  # a diagonal tile from its diagonal on
                    slab = buffer[:(r1 - r0) * (b1 - b0 - c0)].reshape(r1 - r0, b1 - b0 - c0)
                    dset.read_direct(slab, np.s_[r0:r1, c0:b1 - b0])
                    self.bytes_read += slab.size * dset.dtype.itemsize
                    if a == b:
                        yield from upper_parts(a0 + r0, a0 + r1, a1, slab)
                    else:
                        yield slice(a0 + r0, a0 + r1), slice(b0, b1), slab, True

    def __getitem__(self, key) -> np.ndarray:
        rows, columns = (key if isinstance(key, tuple) and len(key) == 2 else (key, slice(None)))
        if rows == () or key == ():
            rows, columns = slice(None), slice(None)
        i0, i1, step_i = rows.indices(self.shape[0])
        j0, j1, step_j = columns.indices(self.shape[1])
        if step_i != 1 or step_j != 1:
            raise ResultsError("TiledMatrix takes contiguous slices only")
        out = np.zeros((max(i1 - i0, 0), max(j1 - j0, 0)))
        for a in self.order:
            a0, a1 = self.ranges[a]
            r0, r1 = max(a0, i0), min(a1, i1)
            if r0 >= r1:
                continue
            for b in self.order:
                b0, b1 = self.ranges[b]
                c0, c1 = max(b0, j0), min(b1, j1)
                if c0 >= c1:
                    continue
                if self._position[a] <= self._position[b]:
                    block = self._tile(a, b)[r0 - a0:r1 - a0, c0 - b0:c1 - b0]
                else:
                    block = self._tile(b, a)[c0 - b0:c1 - b0, r0 - a0:r1 - a0].T
                self.bytes_read += block.nbytes
                out[r0 - i0:r1 - i0, c0 - j0:c1 - j0] = block
        return out


def open_tiles(tile_paths: dict, index_path):
    """The matrix a split's tiles hold, read in place: :class:`TiledMatrix` for distance tiles,
    :class:`LandmarkColumns` for landmark tiles (their files say which: `D`, or `D_ab` and the
    landmarks). Everything downstream (the embedding) decides by the reader's type."""
    first = next(iter(tile_paths.values()))
    with open_h5(first) as f:
        landmark = "D_ab" in f
    return (LandmarkColumns if landmark else TiledMatrix)(tile_paths, index_path)


def named_tiles(inputs) -> dict:
    """{(a, b): path} from a rule's named inputs, whose tiles are named "a-b" (rules/common.smk)."""
    return {tuple(name.split("-")): path for name, path in inputs.items()
            if len(name.split("-")) == 2 and name not in ("index", "train_embedding")}


def landmark_rows(block_path, every: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions in a block of its landmark points: every reference point, and of each run every
    `every`-th checkpoint and its last (a function of the block alone, so adding a run changes only
    the landmarks of its own block); and how many points each stands for (`landmark_weights`)."""
    from .landmarks import landmark_rows_every, landmark_weights

    with open_h5(block_path) as f:
        runs = [r.decode() for r in f["run"][()]]
        kinds = [k.decode() for k in f["kind"][()]]
        checkpoints = f["checkpoint"][()]
    rows = np.asarray(landmark_rows_every(runs, checkpoints, kinds, every), dtype=np.int64)
    return rows, landmark_weights(runs, checkpoints, kinds, rows)


def compute_landmark_tile(block_a, block_b, split: str, out_path, *, every: int, metric: str = "bhattacharyya",
                          device: str = "auto", chunk_samples: int = 4096, threads: int | None = None,
                          sum_tolerance: float = 1e-3, dtype: str = "float64") -> dict:
    """The landmark columns of two blocks: `D_ab` (M_a, L_b), every point of a to the landmarks of b,
    and `D_ba` (M_b, L_a) (absent when a == b), with the landmark positions `landmarks_a`,
    `landmarks_b`. What landmark InPCA needs of the pair, instead of the M_a x M_b tile."""
    started = time.time()
    device = job_device(device)
    (la, weights_a), (lb, weights_b) = landmark_rows(block_a, every), landmark_rows(block_b, every)
    with _block_pair(block_a, block_b, split) as (pa, pb, n, same):

        def columns(points, landmarks_of, landmarks):
            return pairwise_streamed(_reader(points), n, read_q=_reader(landmarks_of, landmarks), metric=metric,
                                     device=device, chunk_samples=chunk_samples, threads=threads,
                                     sum_tolerance=sum_tolerance)

        D_ab = columns(pa, pb, lb)
        D_ba = None if same else columns(pb, pa, la)

    def fill(f):
        f.create_dataset("D_ab", data=D_ab.astype(dtype), track_times=False)
        if D_ba is not None:
            f.create_dataset("D_ba", data=D_ba.astype(dtype), track_times=False)
        f.create_dataset("landmarks_a", data=la, track_times=False)
        f.create_dataset("landmarks_b", data=lb, track_times=False)
        f.create_dataset("weights_a", data=weights_a, track_times=False)
        f.create_dataset("weights_b", data=weights_b, track_times=False)
        f.attrs.update({"split": split, "metric": metric, "n_samples": n, "landmark_every": every,
                        "block_a": Path(block_a).stem, "block_b": Path(block_b).stem})

    write_h5(out_path, fill)
    seconds = time.time() - started
    pairs = D_ab.size + (0 if D_ba is None else D_ba.size)
    log.info("landmark tile %s x %s (%s, %d samples): %d points x %d landmarks%s in %.2f s, %.3g pair-samples/s",
             Path(block_a).stem, Path(block_b).stem, split, n, *D_ab.shape,
             "" if D_ba is None else f" and {D_ba.shape[0]} x {D_ba.shape[1]}", seconds, pairs * n / max(seconds, 1e-9))
    return {"seconds": seconds, "pair_samples_per_s": pairs * n / max(seconds, 1e-9)}


class LandmarkColumns(_TileFiles):
    """The (M, L) distances of every point to the study's landmarks, read from landmark tiles in
    place, rows and landmarks in index order; `landmarks` gives the landmarks' own rows (so that
    `self[landmarks]` is the L x L matrix) and `weights` how many points each stands for. Slicing
    `X[i0:i1]` returns float64 rows."""

    def __init__(self, tile_paths: dict, index_path):
        super().__init__(tile_paths, index_path, "landmark tile")
        own = {a: self._file(a, a)["landmarks_a"][()] for a in self.order}
        # how many points each landmark stands for, in landmark order
        self.weights = np.concatenate([self._file(a, a)["weights_a"][()] for a in self.order])
        offsets, start = {}, 0
        for a in self.order:
            offsets[a] = start
            start += len(own[a])
        self._landmark_offsets, self._landmarks_of = offsets, own
        self.landmarks = np.concatenate([self.ranges[a][0] + own[a] for a in self.order]).astype(np.int64)
        self.shape = (len(self.run), len(self.landmarks))
        self.every = int(self._file(self.order[0], self.order[0]).attrs["landmark_every"])

    def __getitem__(self, key) -> np.ndarray:
        """Rows `key` (a contiguous slice, `()`, or an array of row positions) of the (M, L) matrix."""
        if isinstance(key, tuple) and key:
            return self[key[0]][:, key[1]]
        if isinstance(key, (np.ndarray, list)):
            rows = np.asarray(key, dtype=np.int64)
        else:
            i0, i1, step = (slice(None) if key == () else key).indices(self.shape[0])
            if step != 1:
                raise ResultsError("LandmarkColumns takes contiguous row slices or arrays of rows only")
            rows = np.arange(i0, i1)
        out = np.zeros((len(rows), self.shape[1]))
        for a in self.order:
            a0, a1 = self.ranges[a]
            mine = np.flatnonzero((rows >= a0) & (rows < a1))
            if not len(mine):
                continue
            local = rows[mine] - a0
            contiguous = bool(np.all(np.diff(local) == 1))
            # h5py reads increasing row lists; a run of rows is one slice
            selection = slice(int(local[0]), int(local[-1]) + 1) if contiguous else np.sort(np.unique(local))
            for b in self.order:
                c0 = self._landmark_offsets[b]
                c1 = c0 + len(self._landmarks_of[b])
                above = self._position[a] <= self._position[b]
                dset = self._file(a, b)["D_ab"] if above else self._file(b, a)["D_ba"]
                block = dset[selection]
                if not contiguous:
                    block = block[np.searchsorted(selection, local)]
                out[mine, c0:c1] = block
        return out
