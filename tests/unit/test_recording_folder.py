"""A recording on disk (inpca.recording_folder): checkpoints written one file each, taken up again by a new
folder object on the same path (as after kill -9), refused when they are another recording's, assembled
into a run file; real HDF5 files, no network."""

import numpy as np
import pytest

from inpca.errors import RecorderError
from inpca.recording_folder import DIVERGED_FILE, PARTIAL_SUFFIX, RecordingFolder
from inpca.runfile import METRICS, read_run

IDENTITY = {"config": '{"arch": "toy"}', "steps": "[0, 5, 10]", "fingerprint": "abc", "num_classes": 3}
LABELS = {"train": np.array([0, 1, 2, 1]), "test": np.array([2, 0])}


def probs(seed):
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", 4), ("test", 2)):
        p = rng.random((n, 3)).astype(np.float32) + 0.1
        out[split] = p / p.sum(1, keepdims=True)
    return out


def metrics(seed):
    return {m: 0.1 * (seed + 1) for m in METRICS}


def attrs(folder):
    return {"run_id": "toy", "config": IDENTITY["config"], "dataset": "recorded", "fingerprint": "abc",
            "num_classes": 3, "n_train": 4, "n_test": 2, "steps_per_epoch": 5,
            "diverged_at_step": folder.diverged_at, "parameters": folder.parameters, "inpca_version": "test"}


def test_checkpoints_are_taken_up_by_the_next_folder_and_assembled_into_the_run_file(tmp_path):
    path = tmp_path / "toy.h5"
    first = RecordingFolder(path, IDENTITY)
    assert not first.finished and first.recorded == set() and first.parameters is None
    first.write_checkpoint(0, 0.0, probs(0), metrics(0), parameters=7)
    first.write_checkpoint(5, 1.0, probs(5), metrics(5), parameters=7)
    assert (tmp_path / f"toy.h5{PARTIAL_SUFFIX}" / f"{5:012d}.h5").exists()
    first.lock.release()  # as the system drops a killed process' lock

    resumed = RecordingFolder(path, IDENTITY)
    assert resumed.recorded == {0, 5} and resumed.parameters == 7 and resumed.diverged_at == -1
    assert [c["step"] for c in resumed.checkpoints()] == [0, 5]
    resumed.write_checkpoint(10, 2.0, probs(10), metrics(10), parameters=7)
    resumed.assemble(attrs(resumed), LABELS, np.float32, scheduled=3)

    assert resumed.finished and not resumed.folder.exists() and not (tmp_path / "toy.h5.lock").exists()
    run = read_run(path)
    assert list(run["step"]) == [0, 5, 10] and list(run["epoch"]) == [0.0, 1.0, 2.0]
    np.testing.assert_array_equal(run["train_probs"][1], probs(5)["train"])
    assert run["attrs"]["parameters"] == 7 and run["attrs"]["diverged_at_step"] == -1
    again = RecordingFolder(path, IDENTITY)  # the run file is there: finished, and the lock is not held
    assert again.finished and [c["step"] for c in again.checkpoints()] == [0, 5, 10]
    RecordingFolder(path, IDENTITY).assemble(attrs(again), LABELS, np.float32, scheduled=3)  # left as it is
    assert list(read_run(path)["step"]) == [0, 5, 10]


def test_a_divergence_is_kept_and_the_run_file_says_where(tmp_path):
    path = tmp_path / "toy.h5"
    folder = RecordingFolder(path, IDENTITY)
    folder.write_checkpoint(0, 0.0, probs(0), metrics(0), parameters=7)
    folder.write_divergence(5)
    assert (folder.folder / DIVERGED_FILE).exists()
    folder.lock.release()
    resumed = RecordingFolder(path, IDENTITY)
    assert resumed.diverged_at == 5 and resumed.recorded == {0}
    resumed.assemble(attrs(resumed), LABELS, np.float32, scheduled=3)
    assert read_run(path)["attrs"]["diverged_at_step"] == 5


@pytest.mark.parametrize("key, value", [("config", '{"arch": "other"}'), ("fingerprint", "xyz"),
                                        ("num_classes", 4), ("steps", "[0, 5]")])
def test_checkpoints_of_another_recording_are_refused_in_one_line_and_the_lock_is_released(tmp_path, key, value):
    path = tmp_path / "toy.h5"
    first = RecordingFolder(path, IDENTITY)
    first.write_checkpoint(0, 0.0, probs(0), metrics(0), parameters=7)
    first.lock.release()  # as the system drops a killed process' lock
    with pytest.raises(RecorderError, match=f"checkpoints of a recording with another {key}") as caught:
        RecordingFolder(path, {**IDENTITY, key: value})
    assert "\n" not in str(caught.value)
    RecordingFolder(path, IDENTITY).lock.release()  # the refusal released the lock it took


def test_a_finished_run_file_of_another_config_is_refused(tmp_path):
    path = tmp_path / "toy.h5"
    folder = RecordingFolder(path, IDENTITY)
    folder.write_checkpoint(0, 0.0, probs(0), metrics(0), parameters=7)
    folder.assemble(attrs(folder), LABELS, np.float32, scheduled=3)
    with pytest.raises(RecorderError, match="a finished recording with another config"):
        RecordingFolder(path, {**IDENTITY, "config": '{"arch": "other"}'})


def test_nothing_recorded_writes_no_run_file_and_a_second_folder_object_is_refused_while_one_holds_the_lock(tmp_path):
    path = tmp_path / "toy.h5"
    folder = RecordingFolder(path, IDENTITY)
    with pytest.raises(RecorderError, match="another Recorder of this process"):
        RecordingFolder(path, IDENTITY)
    folder.assemble(attrs(folder), LABELS, np.float32, scheduled=3)
    assert not path.exists() and not folder.finished
    RecordingFolder(path, IDENTITY).lock.release()  # released by the assembly
