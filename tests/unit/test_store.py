"""The probability store (inpca.store): reference block, blocks, index.tsv, and each refusal."""

import csv

import h5py
import numpy as np
import pytest

from inpca.data import load_study_dataset
from inpca.runfile import write_run
from inpca.store import StoreError, build_block, read_points, write_index, write_reference

DIGITS = {"name": "digits", "test_fraction": 0.25, "split_seed": 0, "keep_every": 5}


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "ref.h5"
    write_reference(path, DIGITS, geodesic_points=3)
    return path


@pytest.fixture(scope="module")
def dataset():
    return load_study_dataset(DIGITS)


def fake_run(path, dataset, run_id, k=3, seed=0, **override):
    rng = np.random.default_rng(seed)
    probs = {}
    for split, y in (("train", dataset.y_train), ("test", dataset.y_test)):
        logits = rng.normal(size=(k, len(y), 10)) + 3 * np.eye(10)[y] * np.linspace(0, 1, k)[:, None, None]
        p = np.exp(logits)
        probs[split] = (p / p.sum(-1, keepdims=True)).astype(np.float32)
    probs.update(override.pop("probs", {}))
    attrs = {"run_id": run_id, "config": '{"seed": %d}' % seed, "dataset": dataset.name,
             "fingerprint": dataset.fingerprint, "num_classes": 10, "n_train": len(dataset.y_train),
             "n_test": len(dataset.y_test), **override}
    metrics = {m: np.linspace(1, 0, k) for m in ("train_loss", "train_error", "test_loss", "test_error")}
    write_run(path, probs, np.arange(k) * 10, np.arange(k) / 2.0, metrics, attrs)
    return path


def test_reference_block_holds_ignorance_geodesic_truth_and_labels(ref, dataset):
    points, configs, _ = read_points(ref)
    assert [p["run"] for p in points] == ["P0", "geodesic", "geodesic", "geodesic", "P*"]
    assert [p["t"] for p in points] == pytest.approx([0, 0.25, 0.5, 0.75, 1])
    assert points[0]["progress_train"] == pytest.approx(0, abs=1e-6)
    assert points[-1]["progress_test"] == pytest.approx(1, abs=1e-6)
    assert points[0]["dist_truth_train"] == pytest.approx(0.5 * np.log(10), abs=1e-6)
    with h5py.File(ref) as f:
        np.testing.assert_array_equal(f["train_labels"][()], dataset.y_train)
        np.testing.assert_allclose(f["train_probs"][0], 0.1)
        np.testing.assert_array_equal(f["test_probs"][-1], np.eye(10, dtype=np.float32)[dataset.y_test])


def test_block_gathers_runs_and_index_lists_every_point_in_matrix_order(tmp_path, ref, dataset):
    runs = [fake_run(tmp_path / f"r{i}.h5", dataset, f"fc-sgd-s{i}-0000000{i}", k=3 + i, seed=i) for i in range(2)]
    build_block(tmp_path / "b000.h5", runs, ref)
    with h5py.File(tmp_path / "b000.h5") as f:
        assert f["train_probs"].shape == (7, len(dataset.y_train), 10)
        assert f["train_probs"].chunks[0] == 1  # streaming reads by sample slices
        assert list(f["checkpoint"][()]) == [0, 1, 2, 0, 1, 2, 3]
        assert np.all((f["progress_train"][()] >= 0) & (f["progress_train"][()] <= 1))
    write_index(tmp_path / "index.tsv", {"ref": ref, "b000": tmp_path / "b000.h5"})
    rows = list(csv.DictReader(open(tmp_path / "index.tsv"), delimiter="\t"))
    assert [int(r["point"]) for r in rows] == list(range(12))
    assert rows[0]["run"] == "P0" and rows[4]["run"] == "P*" and rows[5]["run"] == "fc-sgd-s0-00000000"
    assert rows[5]["seed"] == "0" and rows[-1]["seed"] == "1"
    assert rows[5]["block"] == "b000" and rows[5]["row"] == "0"


def refused(tmp_path, ref, run_path, message):
    out = tmp_path / "b001.h5"
    with pytest.raises(StoreError, match=message) as info:
        build_block(out, [run_path], ref)
    assert str(run_path) in str(info.value) and "\n" not in str(info.value)
    assert not out.exists() and not (tmp_path / "b001.h5.tmp").exists()


def test_refuses_a_run_trained_on_other_data(tmp_path, ref, dataset):
    refused(tmp_path, ref, fake_run(tmp_path / "x.h5", dataset, "x", fingerprint="0123456789abcdef"),
            "fingerprint 0123456789abcdef differs")


@pytest.mark.parametrize("value, message", [(np.nan, "NaN or Inf"), (np.inf, "NaN or Inf"),
                                            (-0.01, "negative probability"), (0.5, "row sums to")])
def test_refuses_invalid_probabilities(tmp_path, ref, dataset, value, message):
    path = fake_run(tmp_path / "x.h5", dataset, "x")
    with h5py.File(path, "a") as f:
        p = f["test_probs"][()]
        p[1, 7, 3] = value if value != 0.5 else p[1, 7, 3] + value
        f["test_probs"][...] = p
    refused(tmp_path, ref, path, message + r".*checkpoint 1, sample 7")


def test_rows_within_the_documented_tolerance_are_accepted(tmp_path, ref, dataset):
    path = fake_run(tmp_path / "x.h5", dataset, "x")
    with h5py.File(path, "a") as f:
        f["train_probs"][0, 0, 0] += 5e-4
    build_block(tmp_path / "b002.h5", [path], ref, sum_tolerance=1e-3)


def test_refuses_wrong_shapes(tmp_path, ref, dataset):
    path = fake_run(tmp_path / "x.h5", dataset, "x")
    with h5py.File(path, "a") as f:
        del f["train_probs"]
        f["train_probs"] = np.full((3, len(dataset.y_train), 9), 1 / 9, np.float32)
    refused(tmp_path, ref, path, r"train_probs has \(samples, classes\) \(\d+, 9\), expected \(\d+, 10\)")


def test_refuses_truncated_and_corrupted_files(tmp_path, ref, dataset):
    path = fake_run(tmp_path / "x.h5", dataset, "x")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    refused(tmp_path, ref, path, "truncated or corrupted")
    path.write_bytes(b"not an hdf5 file" * 100)
    refused(tmp_path, ref, path, "not a readable HDF5 file")


def test_refuses_a_file_that_is_not_a_run_file(tmp_path, ref):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = 1
    refused(tmp_path, ref, path, "not a run file")
