"""Virtual store blocks (inpca.store, layout="virtual"): the same points and tiles as copied blocks,
one copy of the probabilities on disk, and refusals when a run file is gone or changed."""

import shutil

import h5py
import numpy as np
import pytest

from inpca.data import load_study_dataset
from inpca.store import StoreError, build_block, check_sources, open_block, write_reference
from inpca.tiles import compute_tile
from unit.test_store import DIGITS, fake_run


@pytest.fixture(scope="module")
def dataset():
    return load_study_dataset(DIGITS)


def half_precision_run(path, dataset, run_id, k, seed):
    """A fake run stored as float16, as with checkpoints.dtype: float16."""
    fake_run(path, dataset, run_id, k=k, seed=seed)
    with h5py.File(path, "a") as f:
        for name in ("train_probs", "test_probs"):
            probs = f[name][()].astype(np.float16)
            del f[name]
            f.create_dataset(name, data=probs, chunks=(1, *probs.shape[1:]))
    return path


def make_study(root, dataset, monkeypatch, dtype="float32"):
    """results/{runs,store}/ under `root`, given by paths relative to it as Snakemake does (cwd = root):
    three runs in two blocks, each block built in both layouts."""
    monkeypatch.chdir(root)
    (root / "results" / "store").mkdir(parents=True)
    (root / "results" / "runs").mkdir()
    write_reference(root / "results/store/ref.h5", DIGITS, geodesic_points=3)
    write = fake_run if dtype == "float32" else half_precision_run
    runs = [write(root / f"results/runs/r{s}.h5", dataset, f"fc-sgd-s{s}", k=3 + s, seed=s) for s in range(3)]
    relative = [path.relative_to(root) for path in runs]
    blocks = {}
    for name, members in (("b000", relative[:2]), ("b001", relative[2:])):
        for layout in ("copy", "virtual"):
            blocks[name, layout] = root / f"results/store/{name}-{layout}.h5"
            build_block(blocks[name, layout].relative_to(root), members, "results/store/ref.h5", layout=layout)
    return blocks


def contents(path):
    """Every dataset of a block as an array, and its attributes but the virtual block's source list."""
    with h5py.File(path, "r") as f:
        data = {name: f[name][()] for name in f}
        attrs = {k: v for k, v in f.attrs.items() if k != "sources"}
    return data, attrs


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_a_virtual_block_reads_what_a_copied_block_holds(tmp_path, monkeypatch, dataset, dtype):
    blocks = make_study(tmp_path, dataset, monkeypatch, dtype)
    for name in ("b000", "b001"):
        copied, virtual = contents(blocks[name, "copy"]), contents(blocks[name, "virtual"])
        assert copied[1] == virtual[1] and copied[0].keys() == virtual[0].keys()
        for key, values in copied[0].items():
            assert np.array_equal(values, virtual[0][key], equal_nan=values.dtype.kind == "f"), key
        with h5py.File(blocks[name, "virtual"]) as f:
            assert f["train_probs"].is_virtual and f["train_probs"].dtype == np.float32
        check_sources(blocks[name, "virtual"])
    # one copy of the probabilities: the virtual block holds metadata and the mapping only
    assert blocks["b000", "virtual"].stat().st_size < blocks["b000", "copy"].stat().st_size / 5
    with h5py.File(blocks["b000", "virtual"]) as f:
        assert [s.file_name for s in f["train_probs"].virtual_sources()] == ["../runs/r0.h5", "../runs/r1.h5"]
    # the tiles' reader: chunk cache off, the same values either layout
    with open_block(blocks["b000", "virtual"]) as virtual, open_block(blocks["b000", "copy"]) as copied:
        assert np.array_equal(virtual["test_probs"][:, 100:300], copied["test_probs"][:, 100:300])


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_tiles_of_virtual_blocks_equal_tiles_of_copied_blocks(tmp_path, monkeypatch, dataset, dtype):
    blocks = make_study(tmp_path, dataset, monkeypatch, dtype)
    for a, b in (("b000", "b000"), ("b000", "b001")):
        tiles = {}
        for layout in ("copy", "virtual"):
            tiles[layout] = tmp_path / f"{a}-{b}-{layout}.h5"
            # a chunk that does not divide N, so reads straddle run files and end ragged
            compute_tile(blocks[a, layout], blocks[b, layout], "train", tiles[layout], device="cpu", chunk_samples=100)
        with h5py.File(tiles["copy"]) as copied, h5py.File(tiles["virtual"]) as virtual:
            assert np.array_equal(copied["D"][()], virtual["D"][()])


def test_a_moved_study_still_reads_its_virtual_blocks(tmp_path, monkeypatch, dataset):
    (tmp_path / "before").mkdir()
    make_study(tmp_path / "before", dataset, monkeypatch)
    shutil.move(tmp_path / "before", tmp_path / "after")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    store = tmp_path / "after/results/store"
    assert not (tmp_path / "before").exists()
    for name in ("b000", "b001"):
        check_sources(store / f"{name}-virtual.h5")
        virtual, copied = contents(store / f"{name}-virtual.h5")[0], contents(store / f"{name}-copy.h5")[0]
        assert all(np.array_equal(virtual[f"{split}_probs"], copied[f"{split}_probs"]) for split in ("train", "test"))


def test_a_deleted_run_file_is_refused_not_read_as_fill(tmp_path, monkeypatch, dataset):
    blocks = make_study(tmp_path, dataset, monkeypatch)
    (tmp_path / "results/runs/r1.h5").unlink()
    with pytest.raises(StoreError, match=r"b000-virtual\.h5: run file .*results/runs/r1\.h5 does not exist") as info:
        check_sources(blocks["b000", "virtual"])
    assert "\n" not in str(info.value)
    with pytest.raises(StoreError, match=r"run file .*results/runs/r1\.h5 does not exist"):
        open_block(blocks["b000", "virtual"])
    # why the reader must check: HDF5 itself reads the rows of a missing source as the fill value
    with h5py.File(blocks["b000", "virtual"]) as f:
        assert np.isnan(f["train_probs"][3:]).all() and not np.isnan(f["train_probs"][:3]).any()
    check_sources(blocks["b001", "virtual"])


def test_a_file_of_the_same_relative_name_under_the_working_directory_is_not_taken(tmp_path, monkeypatch, dataset):
    (tmp_path / "study").mkdir()
    blocks = make_study(tmp_path / "study", dataset, monkeypatch)
    # HDF5 falls back to the source's relative name under the working directory: ../runs/r0.h5 from here
    (tmp_path / "cwd").mkdir()
    (tmp_path / "runs").mkdir()
    shutil.move(tmp_path / "study/results/runs/r0.h5", tmp_path / "runs/r0.h5")
    monkeypatch.chdir(tmp_path / "cwd")
    with pytest.raises(StoreError, match=r"run file .*study/results/runs/r0\.h5 does not exist"):
        check_sources(blocks["b000", "virtual"])


def test_a_vds_prefix_that_would_redirect_the_sources_is_refused(tmp_path, monkeypatch, dataset):
    blocks = make_study(tmp_path, dataset, monkeypatch)
    monkeypatch.setenv("HDF5_VDS_PREFIX", str(tmp_path / "elsewhere"))
    with pytest.raises(StoreError, match="HDF5_VDS_PREFIX is set"):
        check_sources(blocks["b000", "virtual"])
    check_sources(blocks["b000", "copy"])


def test_a_run_file_changed_after_the_block_is_refused(tmp_path, monkeypatch, dataset):
    blocks = make_study(tmp_path, dataset, monkeypatch)
    fake_run(tmp_path / "results/runs/r2.h5", dataset, "fc-sgd-s2", k=4, seed=2)
    with pytest.raises(StoreError, match=r"run file .*r2\.h5 has train_probs of shape \(4, \d+, 10\), the block "
                                         r"maps \(5, \d+, 10\); it changed"):
        check_sources(blocks["b001", "virtual"])


def bad_run(path, dataset, fault):
    if fault == "fingerprint":
        return fake_run(path, dataset, "x", fingerprint="0123456789abcdef")
    fake_run(path, dataset, "x")
    if fault == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return path
    with h5py.File(path, "a") as f:
        if fault == "shape":
            del f["train_probs"]
            f["train_probs"] = np.full((3, len(dataset.y_train), 9), 1 / 9, np.float32)
        else:
            probs = f["test_probs"][()]
            probs[1, 7, 3] = {"nan": np.nan, "negative": -0.01, "sum": probs[1, 7, 3] + 0.5}[fault]
            f["test_probs"][...] = probs
    return path


@pytest.mark.parametrize("fault", ["fingerprint", "shape", "nan", "negative", "sum", "truncated"])
def test_a_bad_run_file_is_refused_at_store_time_as_with_the_copy_layout(tmp_path, dataset, fault):
    write_reference(tmp_path / "ref.h5", DIGITS, geodesic_points=3)
    run = bad_run(tmp_path / "x.h5", dataset, fault)
    messages = {}
    for layout in ("copy", "virtual"):
        with pytest.raises(StoreError) as info:
            build_block(tmp_path / "b.h5", [run], tmp_path / "ref.h5", layout=layout)
        messages[layout] = str(info.value)
        assert not (tmp_path / "b.h5").exists() and not (tmp_path / "b.h5.tmp").exists()
    assert messages["copy"] == messages["virtual"] and str(run) in messages["virtual"]


def test_an_unknown_layout_is_refused(tmp_path):
    with pytest.raises(StoreError, match="layout 'linked' is not one of copy, virtual"):
        build_block(tmp_path / "b.h5", [], tmp_path / "ref.h5", layout="linked")
