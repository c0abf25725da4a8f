"""Recorded run files brought into a study (inpca.imports): ids from content, refusals in one line."""

import shutil

import h5py
import numpy as np
import pytest

from inpca.errors import ConfigError, RunFileError, StoreError
from inpca.imports import import_run
from inpca.recordings import RUN_ID_PATTERN, scan
from inpca.runfile import write_run
from inpca.store import write_reference
from inpca.study import load_study

LABELS = {"train": np.arange(40) % 4, "test": np.arange(12) % 4}


def recording(path, config, fingerprint="f" * 16, seed=0, k=3):
    rng = np.random.default_rng(seed)
    probs = {}
    for split, y in LABELS.items():
        p = rng.dirichlet(np.ones(4), size=(k, len(y))).astype(np.float32)
        probs[split] = p / p.sum(-1, keepdims=True)
    attrs = {"run_id": path.stem, "config": '{"arch": "%s", "seed": %d}' % (config, seed), "dataset": "recorded",
             "fingerprint": fingerprint, "num_classes": 4, "n_train": 40, "n_test": 12, "diverged_at_step": -1}
    metrics = {m: np.linspace(1, 0, k) for m in ("train_loss", "train_error", "test_loss", "test_error")}
    write_run(path, probs, np.arange(k) * 5, np.arange(k) / 2.0, metrics, attrs, LABELS)
    return path


def test_ids_come_from_content_so_a_moved_file_is_the_same_run(tmp_path):
    first = recording(tmp_path / "a.h5", "resnet18")
    (run_id, run), = scan([{"path": str(first)}]).items()
    import re

    assert re.fullmatch(RUN_ID_PATTERN, run_id) and run_id.startswith("rec-resnet18-")
    moved = tmp_path / "elsewhere" / "renamed.h5"
    moved.parent.mkdir()
    shutil.move(first, moved)
    assert list(scan([{"path": str(moved)}])) == [run_id]
    assert run.checkpoints == 3 and run.n_train == 40 and run.num_classes == 4


def test_the_same_recording_twice_and_recordings_on_other_data_are_refused_naming_both_files(tmp_path):
    recording(tmp_path / "a.h5", "mlp")
    shutil.copy(tmp_path / "a.h5", tmp_path / "b.h5")
    with pytest.raises(ConfigError, match=r"a\.h5 and .*b\.h5 hold the same recording"):
        scan([{"path": str(tmp_path / "*.h5")}])
    (tmp_path / "b.h5").unlink()
    recording(tmp_path / "c.h5", "mlp", fingerprint="0" * 16, seed=1)
    with pytest.raises(ConfigError, match=r"a\.h5 and .*c\.h5 were recorded on different data") as info:
        scan([{"path": str(tmp_path / "*.h5")}])
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="matches no file"):
        scan([{"path": str(tmp_path / "none-*.h5")}])


def test_a_study_of_recorded_runs_plans_them_and_trains_nothing(tmp_path):
    for seed in range(3):
        recording(tmp_path / f"r{seed}.h5", "mlp", seed=seed)
    study = load_study({"dataset": {"name": "recorded"}, "imports": [{"path": str(tmp_path / "*.h5")}]})
    assert len(study.runs) == 3 and study.imported_runs == list(study.runs) and not study.trained_runs
    assert study.config["dataset"]["n_train"] == 40 and study.config["dataset"]["fingerprint"] == "f" * 16
    with pytest.raises(ConfigError, match="trains none"):
        load_study({"dataset": {"name": "recorded"}, "imports": [{"path": str(tmp_path / "*.h5")}],
                    "grid": [{"arch": {"name": "fc"}, "optimizer": {"name": "sgd", "lr": 0.1}}]})
    with pytest.raises(ConfigError, match="no run"):
        load_study({})


def test_import_validates_like_the_store_and_refuses_other_data_naming_both_files(tmp_path):
    source = recording(tmp_path / "r.h5", "mlp")
    import_run(source, tmp_path / "out.h5", "rec-mlp-12345678")
    with h5py.File(tmp_path / "out.h5") as f:
        assert f.attrs["run_id"] == "rec-mlp-12345678" and f.attrs["imported_from"] == str(source)
        np.testing.assert_array_equal(f["test_labels"][()], LABELS["test"])
    reference = tmp_path / "ref.h5"
    write_reference(reference, {"name": "digits", "test_fraction": 0.25, "split_seed": 0, "keep_every": 1}, 2)
    with pytest.raises(StoreError, match=r"r\.h5 was recorded on other data than the study's digits .*ref\.h5"):
        import_run(source, tmp_path / "out2.h5", "rec-mlp-12345678", reference=reference)
    with h5py.File(source, "a") as f:
        f["train_probs"][0, 0, 0] = np.nan
    with pytest.raises(RunFileError, match="NaN"):
        import_run(source, tmp_path / "out3.h5", "rec-mlp-12345678")
    assert not (tmp_path / "out3.h5").exists()


def test_a_recording_cut_short_with_matching_attributes_is_refused_at_import_naming_it_and_leaving_nothing(tmp_path):
    """The drill's file: the study's fingerprint, n_test edited to match arrays cut short. It once passed
    import and was refused by the store naming the copy under results/runs/, which stayed."""
    from inpca.store import read_reference

    reference = tmp_path / "ref.h5"
    write_reference(reference, {"name": "digits", "test_fraction": 0.25, "split_seed": 0, "keep_every": 4}, 2)
    ref = read_reference(reference)
    labels = {split: ref[f"{split}_labels"] for split in ("train", "test")}

    def digits_recording(path, cut=0, shuffle=False):
        rng = np.random.default_rng(0)
        y = {"train": labels["train"], "test": labels["test"][cut:]}
        if shuffle:
            y["test"] = y["test"][::-1]
        probs = {split: rng.dirichlet(np.ones(10), size=(2, len(v))).astype(np.float32) for split, v in y.items()}
        attrs = {"run_id": path.stem, "config": '{"arch": "mlp"}', "dataset": "digits/every4",
                 "fingerprint": ref["attrs"]["fingerprint"], "num_classes": 10, "n_train": len(y["train"]),
                 "n_test": len(y["test"])}
        metrics = {m: np.zeros(2) for m in ("train_loss", "train_error", "test_loss", "test_error")}
        write_run(path, probs, [0, 1], [0.0, 1.0], metrics, attrs, y)
        return path

    import_run(digits_recording(tmp_path / "whole.h5"), tmp_path / "whole-out.h5", "rec-mlp-0", reference=reference)
    source = digits_recording(tmp_path / "short.h5", cut=10)
    with pytest.raises(StoreError) as info:
        import_run(source, tmp_path / "out.h5", "rec-mlp-1", reference=reference)
    assert str(info.value) == (f"{source}: test_probs has (samples, classes) (103, 10), expected (113, 10) "
                               "(digits/every4)")
    assert not (tmp_path / "out.h5").exists() and not (tmp_path / "out.h5.tmp").exists()
    source = digits_recording(tmp_path / "reordered.h5", shuffle=True)
    with pytest.raises(StoreError, match=r"reordered\.h5: its test labels differ from the study's \(digits/every4\) "
                                         r"at \d+ samples, the first at sample 0; recorded on other samples or in "
                                         "another order"):
        import_run(source, tmp_path / "out.h5", "rec-mlp-2", reference=reference)


def test_recordings_of_one_fingerprint_but_other_sample_counts_are_refused_at_parse(tmp_path):
    recording(tmp_path / "a.h5", "mlp")
    short = recording(tmp_path / "b.h5", "mlp", seed=1)
    with h5py.File(short, "a") as f:
        f.attrs["n_test"] = 10
    with pytest.raises(ConfigError, match=r"a\.h5 and .*b\.h5 hold different samples \(train, test, classes: "
                                          r"\(40, 12, 4\) and \(40, 10, 4\)\)"):
        scan([{"path": str(tmp_path / "*.h5")}])
