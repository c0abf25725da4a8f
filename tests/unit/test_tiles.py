"""Distance tiles from store blocks and their assembly (inpca.tiles), and the embedding step."""

import csv

import h5py
import numpy as np
import pytest

from inpca.data import load_study_dataset
from inpca.distances import pairwise
from inpca.embedding import InPCA
from inpca.embedding_file import embed, load_fitted
from inpca.store import build_block, write_index, write_reference
from inpca.tiles import TiledMatrix, assemble, compute_tile
from unit.test_block_eigen import bytes_of_one_pass
from unit.test_store import DIGITS, fake_run


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A reference block and two run blocks of fake runs, with index.tsv and tiles."""
    root = tmp_path_factory.mktemp("tiles")
    dataset = load_study_dataset(DIGITS)
    write_reference(root / "ref.h5", DIGITS, geodesic_points=3)
    blocks = {"ref": root / "ref.h5"}
    for b, seeds in (("b000", [0, 1]), ("b001", [2])):
        runs = [fake_run(root / f"run{s}.h5", dataset, f"fc-sgd-s{s}-0000000{s}", k=3 + s, seed=s) for s in seeds]
        build_block(root / f"{b}.h5", runs, root / "ref.h5")
        blocks[b] = root / f"{b}.h5"
    write_index(root / "index.tsv", blocks)
    names = list(blocks)
    tiles = {}
    for i, a in enumerate(names):
        for b in names[i:]:
            # a chunk that does not divide N, so streaming has a ragged last chunk
            compute_tile(blocks[a], blocks[b], "train", root / f"{a}-{b}.h5", device="cpu", chunk_samples=100)
            tiles[(a, b)] = root / f"{a}-{b}.h5"
    assemble(tiles, root / "index.tsv", root / "train.h5", "train")
    return root, blocks, tiles


def all_points(blocks, split="train"):
    parts = []
    for path in blocks.values():
        with h5py.File(path) as f:
            parts.append(f[f"{split}_probs"][()])
    return np.concatenate(parts)


def test_assembled_tiles_equal_one_single_tile_computation(study):
    root, blocks, _ = study
    with h5py.File(root / "train.h5") as f:
        D = f["D"][()]
        runs = [r.decode() for r in f["run"][()]]
    full = pairwise(all_points(blocks), device="cpu")
    # tiles stream samples in chunks, `pairwise` does not: the float32 running products round
    # differently (~1e-8), so equal to well within the 1e-6 accuracy contract, not bit for bit
    np.testing.assert_allclose(D, full, atol=1e-7, rtol=0)
    assert np.array_equal(D, D.T) and np.all(np.diag(D) == 0)
    rows = list(csv.DictReader(open(root / "index.tsv"), delimiter="\t"))
    assert runs == [r["run"] for r in rows]
    assert D[runs.index("P0"), runs.index("P*")] == pytest.approx(0.5 * np.log(10), abs=1e-6)


def test_a_tile_holds_every_pair_of_its_two_blocks(study):
    root, blocks, _ = study
    with h5py.File(root / "b000-b001.h5") as f:
        tile = f["D"][()]
        assert f.attrs["metric"] == "bhattacharyya" and f.attrs["split"] == "train"
    P = all_points({"b000": blocks["b000"]})
    Q = all_points({"b001": blocks["b001"]})
    np.testing.assert_allclose(tile, pairwise(P, Q, device="cpu"), atol=1e-7, rtol=0)  # chunked: see above


def test_assembly_refuses_a_missing_tile(study, tmp_path):
    root, _, _ = study
    with pytest.raises(ValueError, match="no tile for block pair"):
        assemble({("ref", "ref"): root / "ref-ref.h5"}, root / "index.tsv", tmp_path / "x.h5", "train")
    assert not (tmp_path / "x.h5").exists()


def test_embedding_step_writes_coordinates_progress_and_projects_a_second_split(study, tmp_path):
    root, _, _ = study
    out = tmp_path / "train_emb.h5"
    embed(root / "train.h5", root / "index.tsv", out, split="train", n_components=4)
    with h5py.File(root / "train.h5") as f:
        expected = InPCA(n_components=4).fit(f["D"][()])
    with h5py.File(out) as f:
        np.testing.assert_allclose(f["eigenvalues"][()], expected.eigenvalues_, rtol=1e-10)
        np.testing.assert_allclose(f["coords"][()], expected.coords_, atol=1e-10)
        assert f["progress"][0] == pytest.approx(0) and f["progress"][4] == pytest.approx(1)
        assert f.attrs["solver"] == "dense"
    # projecting the same matrix into its own embedding gives back the coordinates
    again = tmp_path / "again.h5"
    embed(root / "train.h5", root / "index.tsv", again, split="train", n_components=4, train_embedding=out)
    with h5py.File(again) as f:
        np.testing.assert_allclose(f["coords_in_train"][()], load_fitted(out).coords_, atol=1e-8)


def test_a_block_the_store_accepted_under_its_tolerance_is_accepted_by_the_tiles(tmp_path, study):
    """store.sum_tolerance reaches the distance step: rows summing to 1.005 pass a tolerance of 0.01
    in the store, and then in the tile (which once checked a hard-coded 1e-3 again)."""
    root, _, _ = study
    dataset = load_study_dataset(DIGITS)
    run = fake_run(tmp_path / "run.h5", dataset, "fc-sgd-s7-00000007", k=2, seed=7)
    with h5py.File(run, "a") as f:
        for split in ("train", "test"):
            f[f"{split}_probs"][...] = f[f"{split}_probs"][()] * np.float32(1.005)
    build_block(tmp_path / "b005.h5", [run], root / "ref.h5", sum_tolerance=0.01)
    compute_tile(tmp_path / "b005.h5", tmp_path / "b005.h5", "train", tmp_path / "tile.h5", device="cpu",
                 sum_tolerance=0.01)
    with h5py.File(tmp_path / "tile.h5") as f:
        assert f["D"].shape == (2, 2)
    with pytest.raises(ValueError, match="sum to"):
        compute_tile(tmp_path / "b005.h5", tmp_path / "b005.h5", "train", tmp_path / "tile2.h5", device="cpu",
                     sum_tolerance=1e-3)


def test_the_tiles_read_in_place_slice_like_the_assembled_matrix(study):
    root, _, tiles = study

    with h5py.File(root / "train.h5") as f:
        D = f["D"][()]
    with TiledMatrix(tiles, root / "index.tsv") as tiled:
        assert tiled.shape == D.shape and tiled.metric == "bhattacharyya"
        assert np.array_equal(tiled[()], D) and np.array_equal(tiled[:], D)
        m = D.shape[0]
        for rows, columns in ((slice(0, 3), slice(None)), (slice(4, m - 1), slice(2, m)), (slice(m - 2, m), slice(0, 5))):
            assert np.array_equal(tiled[rows, columns], D[rows, columns])


def test_embedding_from_the_tiles_equals_embedding_from_the_assembled_matrix(study, tmp_path):
    root, _, tiles = study
    embed(root / "train.h5", root / "index.tsv", tmp_path / "assembled.h5", split="train", n_components=4)
    embed(tiles, root / "index.tsv", tmp_path / "tiled.h5", split="train", n_components=4)
    with h5py.File(tmp_path / "assembled.h5") as a, h5py.File(tmp_path / "tiled.h5") as t:
        for name in ("coords", "eigenvalues", "explained_stress", "run", "kind"):
            assert np.array_equal(a[name][()], t[name][()]), name


def test_embedding_streamed_from_the_tiles_by_the_block_solver(study, tmp_path, monkeypatch):
    """Above IN_MEMORY_POINTS the tiles stay on disk and the block solver ("auto" above 2,000 points)
    reads each tile once per pass (IN_MEMORY_POINTS = 0 here, so that this small study is streamed)."""
    import inpca.embedding_file as embedding_file

    root, _, tiles = study
    embed(root / "train.h5", root / "index.tsv", tmp_path / "assembled.h5", split="train", n_components=4)
    monkeypatch.setattr(embedding_file, "IN_MEMORY_POINTS", 0)
    done = embed(tiles, root / "index.tsv", tmp_path / "streamed.h5", split="train", n_components=4, solver="block")
    assert done["solver"] == "block" and done["n_passes"] >= 1
    with h5py.File(tmp_path / "assembled.h5") as a, h5py.File(tmp_path / "streamed.h5") as t:
        assert t.attrs["solver"] == "block"
        np.testing.assert_allclose(t["eigenvalues"][()], a["eigenvalues"][()], rtol=1e-10)
        np.testing.assert_allclose(t["coords"][()], a["coords"][()], atol=1e-10)
        np.testing.assert_allclose(t["explained_stress"][()], a["explained_stress"][()], atol=1e-12)
        m = t["coords"].shape[0]
    # every tile once per pass (each in one slab here, so a diagonal tile is read whole)
    with TiledMatrix(tiles, root / "index.tsv") as tiled:
        sizes = [stop - start for start, stop in tiled.ranges.values()]
        assert done["bytes_read"] == done["n_passes"] * tiled.stored_bytes and sum(sizes) == m
    assert done["bytes_read"] == done["n_passes"] * bytes_of_one_pass(sizes, max(sizes), itemsize=8)


def test_float32_tiles_halve_the_size_and_round_at_6e_8(study, tmp_path):
    root, blocks, _ = study
    compute_tile(blocks["b000"], blocks["b001"], "train", tmp_path / "64.h5", device="cpu")
    compute_tile(blocks["b000"], blocks["b001"], "train", tmp_path / "32.h5", device="cpu", dtype="float32")
    with h5py.File(tmp_path / "64.h5") as a, h5py.File(tmp_path / "32.h5") as b:
        assert b["D"].dtype == np.float32 and a["D"].dtype == np.float64
        np.testing.assert_allclose(b["D"][()], a["D"][()], rtol=6e-8, atol=0)


def all_landmark_tiles(blocks, folder, **options):
    """The landmark tile of every pair of blocks, as the landmark_tile rule writes them."""
    from inpca.tiles import compute_landmark_tile

    names = list(blocks)
    tiles = {(a, b): folder / f"{a}-{b}.h5" for i, a in enumerate(names) for b in names[i:]}
    for (a, b), path in tiles.items():
        compute_landmark_tile(blocks[a], blocks[b], "train", path, device="cpu", **options)
    return tiles


def test_landmark_tiles_with_every_point_a_landmark_embed_exactly(study, tmp_path):
    from inpca.tiles import LandmarkColumns, TiledMatrix

    root, blocks, tiles = study
    landmark_tiles = all_landmark_tiles(blocks, tmp_path, every=1, chunk_samples=100)
    with LandmarkColumns(landmark_tiles, root / "index.tsv") as columns, TiledMatrix(tiles, root / "index.tsv") as D:
        assert columns.shape == D.shape and np.array_equal(columns.landmarks, np.arange(D.shape[0]))
        np.testing.assert_allclose(columns[()], D[()], atol=1e-7, rtol=0)
        np.testing.assert_allclose(columns[np.array([7, 2, 5])], D[()][[7, 2, 5]], atol=1e-7, rtol=0)
    embed(tiles, root / "index.tsv", tmp_path / "exact.h5", split="train", n_components=3)
    embed(landmark_tiles, root / "index.tsv", tmp_path / "landmarks.h5", split="train", n_components=3)
    with h5py.File(tmp_path / "exact.h5") as e, h5py.File(tmp_path / "landmarks.h5") as l:
        np.testing.assert_allclose(l["eigenvalues"][()], e["eigenvalues"][()], rtol=1e-6)
        np.testing.assert_allclose(np.abs(l["coords"][()]), np.abs(e["coords"][()]), atol=1e-6)
        assert l.attrs["method"] == "landmarks" and l.attrs["n_landmarks"] == e.attrs["n_points"]


def test_fewer_landmarks_place_every_point_and_keep_the_landmarks_own_rows(study, tmp_path):
    from inpca.tiles import LandmarkColumns, landmark_rows

    root, blocks, _ = study
    landmark_tiles = all_landmark_tiles(blocks, tmp_path, every=2)
    # reference points are all landmarks; of each run every 2nd checkpoint and its last
    rows, weights = landmark_rows(blocks["ref"], 2)
    assert list(rows) == list(range(5)) and list(weights) == [1.0] * 5
    with LandmarkColumns(landmark_tiles, root / "index.tsv") as columns:
        assert columns.shape[1] < columns.shape[0]
        L = columns[columns.landmarks]
        np.testing.assert_allclose(L, L.T, atol=1e-7)
        assert columns.weights.sum() == columns.shape[0]  # the landmarks stand for every point
    embed(landmark_tiles, root / "index.tsv", tmp_path / "landmarks.h5", split="train", n_components=3)
    with h5py.File(tmp_path / "landmarks.h5") as f:
        assert f["coords"].shape[0] == columns.shape[0] and np.isfinite(f["coords"][()]).all()
        assert f["landmarks"].shape == (columns.shape[1],)
