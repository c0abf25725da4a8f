"""Tests of inpca.runfile: write_run / read_run / read_checkpoints on real HDF5 files, and check_probabilities."""

import json

import h5py
import numpy as np
import pytest

from inpca.errors import RunFileError
from inpca.runfile import CHECKPOINT_DATASETS, FORMAT_VERSION, PROBS, check_probabilities, read_checkpoints, read_run, write_run
from inpca.study import METRICS

K, N_TRAIN, N_TEST, C = 3, 5, 4, 3


def probabilities(rng, *shape, dtype=np.float32):
    p = rng.random(shape) + 0.01
    return (p / p.sum(-1, keepdims=True)).astype(dtype)


def example(k=K, dtype=np.float32, seed=0):
    """The arguments of write_run for a small run of k checkpoints."""
    rng = np.random.default_rng(seed)
    config = {"arch": {"name": "fc", "width": 8}, "seed": 1}
    return dict(
        probs={"train": probabilities(rng, k, N_TRAIN, C, dtype=dtype), "test": probabilities(rng, k, N_TEST, C, dtype=dtype)},
        steps=np.arange(k) * 10,
        epochs=np.arange(k) * 0.5,
        metrics={key: rng.random(k) for key in METRICS},
        attrs={"run_id": "abc123", "config": json.dumps(config, sort_keys=True), "dataset": "digits",
               "fingerprint": "f00d", "num_classes": C, "n_train": N_TRAIN, "n_test": N_TEST,
               "steps_per_epoch": 20, "diverged_at_step": -1},
        labels={"train": rng.integers(0, C, N_TRAIN), "test": rng.integers(0, C, N_TEST)},
    )


@pytest.fixture
def run_file(tmp_path):
    args = example()
    path = tmp_path / "runs" / "abc123.h5"
    write_run(path, **args)
    return path, args


def test_write_run_and_read_run_round_trip(run_file):
    path, args = run_file
    run = read_run(path)
    assert run["path"] == str(path)
    assert run["config"] == {"arch": {"name": "fc", "width": 8}, "seed": 1}
    for split, name in PROBS.items():
        assert run[name].dtype == np.float32
        np.testing.assert_array_equal(run[name], args["probs"][split])
        np.testing.assert_array_equal(run[f"{split}_labels"], args["labels"][split])
        assert run[f"{split}_labels"].dtype == np.int64
    np.testing.assert_array_equal(run["step"], [0, 10, 20])
    assert run["step"].dtype == np.int64
    np.testing.assert_array_equal(run["epoch"], [0.0, 0.5, 1.0])
    for key in METRICS:
        np.testing.assert_array_equal(run[key], args["metrics"][key])
    attrs = run["attrs"]
    assert attrs["format_version"] == FORMAT_VERSION
    assert attrs["run_id"] == "abc123" and attrs["dataset"] == "digits"
    assert int(attrs["n_train"]) == N_TRAIN and int(attrs["diverged_at_step"]) == -1


def test_write_run_stores_one_checkpoint_per_chunk_and_no_temporary_file(run_file):
    path, _ = run_file
    assert sorted(p.name for p in path.parent.iterdir()) == ["abc123.h5"]
    with h5py.File(path, "r") as f:
        assert f["train_probs"].chunks == (1, N_TRAIN, C)
        assert f["test_probs"].chunks == (1, N_TEST, C)


def test_float16_probabilities_stay_float16(tmp_path):
    args = example(dtype=np.float16)
    write_run(tmp_path / "r.h5", **args)
    run = read_run(tmp_path / "r.h5")
    assert run["train_probs"].dtype == np.float16
    np.testing.assert_array_equal(run["train_probs"], args["probs"]["train"])


def test_a_run_without_labels_reads_without_them(tmp_path):
    args = example()
    args["labels"] = None
    write_run(tmp_path / "r.h5", **args)
    run = read_run(tmp_path / "r.h5")
    assert "train_labels" not in run and "test_labels" not in run


def test_a_run_of_zero_checkpoints_round_trips(tmp_path):
    """A training state before its first checkpoint: no chunks for empty datasets."""
    args = example(k=0)
    write_run(tmp_path / "r.h5", **args)
    run = read_run(tmp_path / "r.h5")
    assert run["train_probs"].shape == (0, N_TRAIN, C)
    assert run["step"].shape == (0,)
    assert read_checkpoints(tmp_path / "r.h5")["step"] == []


def test_identical_runs_give_bit_identical_files(tmp_path):
    write_run(tmp_path / "a.h5", **example())
    write_run(tmp_path / "b.h5", **example())
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def test_read_checkpoints_gives_one_entry_per_checkpoint(tmp_path):
    """The files of unfinished trainings carry only their writer's attributes: read_checkpoints needs none."""
    args = example()
    args["attrs"] = {"steps_per_epoch": 20}
    path = tmp_path / "state.h5"
    write_run(path, **args)
    out = read_checkpoints(path)
    assert set(out) == {*CHECKPOINT_DATASETS, "attrs"}
    assert len(out["train_probs"]) == K and out["train_probs"][2].shape == (N_TRAIN, C)
    np.testing.assert_array_equal(out["test_probs"][1], args["probs"]["test"][1])
    assert [int(s) for s in out["step"]] == [0, 10, 20]
    assert out["attrs"]["steps_per_epoch"] == 20 and out["attrs"]["format_version"] == FORMAT_VERSION
    with pytest.raises(RunFileError, match="missing attribute 'run_id'"):
        read_run(path)  # but it is no run file


def refusal(path) -> str:
    with pytest.raises(RunFileError) as exc_info:
        read_run(path)
    message = str(exc_info.value)
    assert "\n" not in message, message
    assert message.startswith(f"{path}: "), message
    return message


@pytest.mark.parametrize("name", CHECKPOINT_DATASETS)
def test_read_run_refuses_a_missing_dataset(run_file, name):
    path, _ = run_file
    with h5py.File(path, "a") as f:
        del f[name]
    message = refusal(path)
    assert f"missing dataset(s) {name};" in message
    assert "not a complete run file" in message and "nothing rebuilds it" in message


def test_read_run_names_every_missing_dataset(run_file):
    path, _ = run_file
    with h5py.File(path, "a") as f:
        del f["step"], f["test_error"]
    assert "missing dataset(s) step, test_error;" in refusal(path)


@pytest.mark.parametrize("key", ["run_id", "config", "fingerprint", "num_classes", "n_train", "n_test"])
def test_read_run_refuses_a_missing_attribute(run_file, key):
    path, _ = run_file
    with h5py.File(path, "a") as f:
        del f.attrs[key]
    assert f"missing attribute {key!r}; not a complete run file" in refusal(path)


def test_read_run_refuses_probabilities_of_the_wrong_shape(run_file):
    path, _ = run_file
    with h5py.File(path, "a") as f:
        f.attrs["n_test"] = N_TEST + 1
    assert refusal(path) == (f"{path}: test_probs has shape {(K, N_TEST, C)}, expected {(K, N_TEST + 1, C)} "
                             "(checkpoints, samples, classes)")


def test_read_run_refuses_a_metric_of_the_wrong_length(run_file):
    path, _ = run_file
    with h5py.File(path, "a") as f:
        del f["train_loss"]
        f.create_dataset("train_loss", data=np.zeros(K + 1))
    assert refusal(path) == f"{path}: train_loss has shape ({K + 1},), expected ({K},)"


def test_read_run_refuses_a_config_that_is_not_json(run_file):
    path, _ = run_file
    with h5py.File(path, "a") as f:
        f.attrs["config"] = "{not json"
    message = refusal(path)
    assert "cannot read (" in message and "truncated or corrupted?" in message


def test_read_run_refuses_a_file_that_is_not_hdf5(tmp_path):
    path = tmp_path / "r.h5"
    path.write_bytes(b"\0" * 4096)
    assert "not a readable HDF5 file" in refusal(path)


def test_read_run_refuses_a_missing_file(tmp_path):
    assert refusal(tmp_path / "nope.h5") == f"{tmp_path / 'nope.h5'}: file does not exist"


def test_read_run_refuses_a_file_whose_data_are_cut_off(tmp_path):
    """A run file whose end is lost: HDF5 may open it, but reading the probabilities fails."""
    args = example()
    rng = np.random.default_rng(1)
    args["probs"]["train"] = probabilities(rng, K, 2000, C)
    args["attrs"]["n_train"] = 2000
    path = tmp_path / "r.h5"
    write_run(path, **args)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    message = refusal(path)
    assert "truncated" in message


# ----------------------------------------------------------------------------- check_probabilities

def test_check_probabilities_accepts_rows_that_sum_to_one():
    p = probabilities(np.random.default_rng(0), 2, 4, 3)
    check_probabilities("r.h5", "train_probs", p, tolerance=1e-5)  # no exception


@pytest.mark.parametrize("bad, expected", [
    (np.nan, "r.h5: train_probs has NaN or Inf at checkpoint 1, sample 2"),
    (np.inf, "r.h5: train_probs has NaN or Inf at checkpoint 1, sample 2"),
    (-0.25, "r.h5: train_probs has a negative probability at checkpoint 1, sample 2"),
])
def test_check_probabilities_names_the_first_offender(bad, expected):
    p = probabilities(np.random.default_rng(0), 2, 4, 3).astype(np.float64)
    p[1, 2, 1] = bad
    p[1, 3, 0] = bad  # a later offender is not named
    with pytest.raises(RunFileError) as exc_info:
        check_probabilities("r.h5", "train_probs", p, tolerance=1e-5)
    assert str(exc_info.value) == expected


def test_check_probabilities_refuses_a_row_that_does_not_sum_to_one():
    p = probabilities(np.random.default_rng(0), 2, 4, 3).astype(np.float64)
    p[0, 3] *= 1.01
    with pytest.raises(RunFileError) as exc_info:
        check_probabilities("r.h5", "test_probs", p, tolerance=1e-3)
    assert str(exc_info.value) == ("r.h5: test_probs row sums to 1.01 at checkpoint 0, sample 3; "
                                   "expected 1 within 0.001")
    check_probabilities("r.h5", "test_probs", p, tolerance=0.02)  # within a looser tolerance


def test_check_probabilities_reads_an_hdf5_dataset_checkpoint_by_checkpoint(run_file):
    path, _ = run_file
    with h5py.File(path, "a") as f:
        f["test_probs"][2, 1, 0] = -1.0
    with h5py.File(path, "r") as f:
        check_probabilities(path, "train_probs", f["train_probs"], tolerance=1e-5)
        with pytest.raises(RunFileError, match=r"test_probs has a negative probability at checkpoint 2, sample 1$"):
            check_probabilities(path, "test_probs", f["test_probs"], tolerance=1e-5)
