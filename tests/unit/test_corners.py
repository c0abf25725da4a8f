"""Corners (inpca.corners, the `init` grid key): what a corner is, that it is real and deterministic,
that runs start from it, and that bad inits are refused at parse time in one line."""

import json
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from inpca.corners import balanced_subset, pretrain_corner, random_labels, read_corner
from inpca.errors import ConfigError, DatasetError, RunFileError, StoreError
from inpca.geodesic import ignorance
from inpca.study import CORNER_PATTERN, GRID_RUN_PATTERN, load_study
from inpca.distances import pairwise

SGDN = {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True}
RANDOM_LABELS = {"name": "random_labels", "epochs": 40, "optimizer": SGDN}
SUBSAMPLE = {"name": "subsample", "samples": 50, "epochs": 40, "optimizer": SGDN}


def study(init, optimizer=SGDN, seeds=(0, 1), arch=None):
    return load_study({"dataset": {"name": "digits"},
                       "grid": [{"arch": arch or {"name": "fc", "width": 64, "depth": 2}, "optimizer": optimizer,
                                 "seed": list(seeds), "epochs": 2, "init": init}],
                       "checkpoints": {"schedule": "log", "count": 4}})


def build(corner_study, tmp_path, name="c"):
    (cid, corner), = corner_study.corners.items()
    weights, predictions = tmp_path / f"{name}.pt", tmp_path / f"{name}.h5"
    pretrain_corner(corner, cid, weights, predictions, dataset_spec=corner_study.config["dataset"], device="cpu")
    return cid, weights, predictions


def distance_to_ignorance(probs):
    return float(pairwise(probs[None], ignorance(*probs.shape)[None], device="cpu")[0, 0])


# ------------------------------------------------------------------------------------------------
# identity


def test_runs_from_one_corner_share_it_and_its_id_names_what_it_is():
    s = study([{"name": "default"}, RANDOM_LABELS, SUBSAMPLE])
    assert len(s.runs) == 6 and len(s.corners) == 2
    for cid in s.corners:
        assert re.fullmatch(CORNER_PATTERN, cid)
    assert sorted(c.split("-")[1] for c in s.corners) == ["randlabels", "subsample50"]
    for rid in s.runs:
        assert re.fullmatch(GRID_RUN_PATTERN, rid)
    corner_runs = [rid for rid in s.runs if s.corner_of(rid)]
    assert len(corner_runs) == 4
    assert {s.corner_of(r) for r in corner_runs if "randlabels" in r} == {c for c in s.corners if "randlabels" in c}
    # the two seeds of one corner differ in their ids, not in their corner
    assert len({r for r in corner_runs if "subsample" in r}) == 2
    assert s.point_blocks[:2] == ["ref", "corners"] and "corners" not in s.trajectory_blocks


def test_default_init_runs_keep_the_ids_they_had_before_corners_existed():
    # ids of the default study's networks before the `init` key existed (same config, same hash)
    s = study({"name": "default"}, optimizer={"name": "adam", "lr": 0.001}, seeds=(0,),
              arch={"name": "allcnn", "width": 0.125})
    assert not s.corners and "init" not in next(iter(s.runs.values()))
    old = load_study({"dataset": {"name": "digits"},
                      "grid": [{"arch": {"name": "allcnn", "width": 0.125}, "optimizer": {"name": "adam", "lr": 0.001},
                                "seed": [0], "epochs": 2}],
                      "checkpoints": {"schedule": "log", "count": 4}})
    assert list(s.runs) == list(old.runs)


def test_a_corner_with_its_own_optimizer_survives_a_change_of_the_runs_learning_rate():
    a = study(RANDOM_LABELS, optimizer={"name": "adam", "lr": 0.001})
    b = study(RANDOM_LABELS, optimizer={"name": "adam", "lr": 0.004})
    assert list(a.corners) == list(b.corners)
    assert set(a.runs).isdisjoint(b.runs)


def test_without_its_own_optimizer_a_corner_pretrains_with_the_runs_optimizer():
    init = {"name": "random_labels", "epochs": 3}
    a = study(init, optimizer={"name": "adam", "lr": 0.001})
    b = study(init, optimizer={"name": "adam", "lr": 0.004})
    (corner_a,), (corner_b,) = a.corners.values(), b.corners.values()
    assert corner_a["init"]["optimizer"]["lr"] == 0.001 and corner_b["init"]["optimizer"]["lr"] == 0.004
    assert corner_a["init"]["batch_size"] == 64 and corner_a["init"]["weight_decay"] == 0.0
    # a subset corner's batch is at most its subset
    (corner,) = study({"name": "subsample", "samples": 20, "epochs": 2}).corners.values()
    assert corner["init"]["batch_size"] == 20


@pytest.mark.parametrize("init, message", [
    ({"name": "warm"}, "grid[0].init.name: 'warm' is not one of ['default', 'random_labels', 'subsample', 'perturbed']"),
    ({"name": "subsample", "samples": 5000, "epochs": 2}, "grid[0].init.samples: 5000 exceeds the 1347 training samples of digits"),
    ({"name": "subsample", "samples": 105, "epochs": 2}, "grid[0].init.samples: 105 is not divisible into the 10 classes of digits"),
    ({"name": "random_labels", "epochs": -1}, "grid[0].init.epochs: -1 is less than the minimum of 1"),
    ([{"name": "default"}, {"name": "subsample", "samples": 100, "epochs": 0}], "grid[0].init[1].epochs: 0 is less than the minimum of 1"),
    ({"name": "random_labels"}, "grid[0].init: 'epochs' is a required property"),
    ({"name": "perturbed", "scale": -0.1}, "grid[0].init.scale: -0.1 is less than or equal to the minimum of 0"),
    ({"name": "subsample", "samples": 100, "epochs": 2, "batch_size": 200}, "grid[0].init.batch_size: 200 exceeds the subset's 100 samples"),
    ({"name": "random_labels", "epochs": 2, "samples": 10}, "unknown key 'samples' in grid[0].init; allowed: batch_size, epochs, name, optimizer, seed, weight_decay"),
])
def test_a_bad_init_is_refused_at_parse_time_in_one_line(init, message):
    with pytest.raises(ConfigError) as error:
        study(init)
    assert message in str(error.value) and "\n" not in str(error.value)


# ------------------------------------------------------------------------------------------------
# the data a corner pre-trains on


def test_random_labels_and_balanced_subsets_are_deterministic_in_their_seed():
    a, b, c = random_labels(1000, 10, 3), random_labels(1000, 10, 3), random_labels(1000, 10, 4)
    assert a.dtype == np.int64 and np.array_equal(a, b) and not np.array_equal(a, c)
    assert set(np.unique(a)) == set(range(10))
    labels = np.repeat(np.arange(3), [10, 7, 5])
    rows = balanced_subset(labels, 12, 3, seed=1)
    assert np.array_equal(rows, balanced_subset(labels, 12, 3, seed=1))
    assert np.array_equal(np.bincount(labels[rows]), [4, 4, 4]) and np.all(np.diff(rows) > 0)
    with pytest.raises(DatasetError, match="class 2 of .* has 5"):
        balanced_subset(labels, 18, 3, seed=1)
    with pytest.raises(DatasetError, match="not divisible into the 3 classes"):
        balanced_subset(labels, 10, 3, seed=1)


# ------------------------------------------------------------------------------------------------
# real corners on digits


@pytest.fixture(scope="module")
def corners(tmp_path_factory):
    root = tmp_path_factory.mktemp("corners")
    return {name: (study(init), *build(study(init), root, name))
            for name, init in (("random_labels", RANDOM_LABELS), ("subsample", SUBSAMPLE))}


def test_a_random_label_corner_is_confident_yet_at_chance_on_the_true_labels(corners):
    _, _, _, predictions = corners["random_labels"]
    corner = read_corner(predictions)
    attrs = corner["attrs"]
    assert attrs["pretrain_error"] < 0.2  # it memorised the noise it was shown ...
    assert attrs["test_error"] > 0.8  # ... which says nothing about the true labels (chance: 0.9) ...
    # ... yet its predictions are confident: far from ignorance P0 (a third of the way to truth P*, at
    # d(P0, P*) = ln(10) / 2 = 1.15), where an untrained network sits next to P0
    assert distance_to_ignorance(corner["train_probs"]) > 0.3
    assert json.loads(attrs["config"])["init"]["name"] == "random_labels"


def test_a_subsample_corner_fits_its_subset_and_learns_a_little(corners):
    _, _, _, predictions = corners["subsample"]
    attrs = read_corner(predictions)["attrs"]
    assert attrs["pretrain_samples"] == 50
    assert attrs["pretrain_error"] == 0.0
    assert attrs["test_error"] < 0.5


def test_the_same_corner_twice_on_cpu_gives_identical_weights_and_predictions(corners, tmp_path):
    s, _, weights, predictions = corners["subsample"]
    _, weights2, predictions2 = build(s, tmp_path, "again")
    first, second = (torch.load(w, weights_only=True) for w in (weights, weights2))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    for split in ("train", "test"):
        assert np.array_equal(read_corner(predictions)[f"{split}_probs"], read_corner(predictions2)[f"{split}_probs"])


def test_a_perturbed_corner_is_the_default_init_plus_noise_of_its_scale(tmp_path):
    from inpca.models import build_model

    s = study({"name": "perturbed", "scale": 0.3, "seed": 5})
    _, weights, _ = build(s, tmp_path)
    torch.manual_seed(5)
    default = build_model({"name": "fc", "widths": [64, 64]}, (64,), 10).state_dict()
    noise = np.concatenate([(torch.load(weights, weights_only=True)[k] - v).numpy().ravel()
                            for k, v in default.items() if k in dict(build_model(
                                {"name": "fc", "widths": [64, 64]}, (64,), 10).named_parameters())])
    assert abs(noise.std() - 0.3) < 0.01 and abs(noise.mean()) < 0.01


def test_a_run_from_a_corner_starts_at_its_predictions_and_records_where_it_started(corners, tmp_path):
    from inpca.train import train_run

    s, cid, weights, predictions = corners["random_labels"]
    rid = next(r for r in s.runs if s.corner_of(r) == cid)
    out = tmp_path / f"{rid}.h5"
    train_run(s.runs[rid], rid, out, dataset_spec=s.config["dataset"], device="cpu", start_weights=weights)
    with h5py.File(out) as f:
        assert np.array_equal(f["train_probs"][0], read_corner(predictions)["train_probs"])
        assert f.attrs["corner"] == cid and json.loads(f.attrs["init"])["name"] == "random_labels"
        assert f["train_error"][-1] < f["train_error"][0]
    with pytest.raises(ConfigError, match="needs the weights of its corner"):
        train_run(s.runs[rid], rid, tmp_path / "x.h5", dataset_spec=s.config["dataset"], device="cpu")


def test_weights_of_another_network_are_refused_in_one_line_with_the_remedy(corners, tmp_path):
    from inpca.train import train_run

    from inpca.folders import STUDY_MARKER

    s, cid, corner_weights, _ = corners["random_labels"]
    # the weights where a study keeps them, so that the remedy is to rebuild them
    (tmp_path / "results" / "corners").mkdir(parents=True)
    (tmp_path / "results" / STUDY_MARKER).write_text("config.yaml\n")
    weights = tmp_path / "results" / "corners" / Path(corner_weights).name
    shutil.copyfile(corner_weights, weights)
    wide = study(RANDOM_LABELS, arch={"name": "fc", "width": 32, "depth": 2})
    rid = next(iter(wide.runs))
    with pytest.raises(RunFileError) as error:
        train_run(wide.runs[rid], rid, tmp_path / "x.h5", dataset_spec=s.config["dataset"], device="cpu",
                  start_weights=weights)
    assert f"{weights}: not the weights of run {rid}'s network" in str(error.value)
    assert f"rm {weights} && " in str(error.value) and "\n" not in str(error.value)


# ------------------------------------------------------------------------------------------------
# the corners' reference curves in the store


def test_corner_curves_run_from_ignorance_through_the_corner_to_truth(corners, tmp_path):
    from inpca.store import read_points, write_corner_curves, write_reference

    s, cid, _, predictions = corners["random_labels"]
    ref = tmp_path / "ref.h5"
    write_reference(ref, s.config["dataset"], geodesic_points=3)
    out = tmp_path / "corners.h5"
    write_corner_curves(out, {cid: predictions}, ref, geodesic_points=3)
    rows, _, _ = read_points(out)
    assert [r["run"] for r in rows] == [f"P0->{cid}"] * 5 + [f"{cid}->P*"] * 5
    assert {r["corner"] for r in rows} == {cid} and {r["init"] for r in rows} == {"random_labels"}
    assert [r["t"] for r in rows[:5]] == [0, 0.25, 0.5, 0.75, 1]
    corner = read_corner(predictions)["train_probs"]
    with h5py.File(out) as f:
        probs = f["train_probs"][()]
        progress = f["progress_train"][()]
    np.testing.assert_allclose(probs[0], 0.1, atol=1e-7)
    np.testing.assert_allclose(probs[4], corner, atol=1e-6)
    np.testing.assert_allclose(probs[5], corner, atol=1e-6)
    assert np.allclose(probs[-1].max(axis=1), 1) and progress[0] == pytest.approx(0, abs=1e-6)
    assert progress[-1] == pytest.approx(1, abs=1e-6)  # progress is still measured on P0 -> P*
    # distances along P0 -> corner grow evenly (a geodesic at constant speed)
    d = pairwise(probs[:5], probs[:1], device="cpu")[:, 0]
    assert np.all(np.diff(d) > 0)


def test_a_corner_of_other_data_is_refused_by_the_store(corners, tmp_path):
    from inpca.store import write_corner_curves, write_reference

    s, cid, _, predictions = corners["random_labels"]
    ref = tmp_path / "ref.h5"
    write_reference(ref, {**s.config["dataset"], "split_seed": 1}, geodesic_points=3)
    with pytest.raises(StoreError, match="fingerprint .* differs from the study's"):
        write_corner_curves(tmp_path / "corners.h5", {cid: predictions}, ref, geodesic_points=3)
    assert not (tmp_path / "corners.h5").exists()


def test_a_killed_pretraining_resumes_from_its_state_and_reaches_the_same_corner(corners, tmp_path, caplog):
    import logging

    from inpca.corners import pretraining_run, training_set
    from inpca.train import Training

    s, cid, weights, predictions = corners["subsample"]
    corner = s.corners[cid]
    killed = Training(pretraining_run(corner), cid, dataset_spec=s.config["dataset"], device="cpu",
                      training_set=training_set(corner["init"]))
    for _ in range(15):  # killed after 15 of its 40 epochs, its state saved
        assert killed.train_epoch()
    killed.save_state(tmp_path / "state")
    caplog.set_level(logging.INFO, logger="inpca.train")
    pretrain_corner(corner, cid, tmp_path / "c.pt", tmp_path / "c.h5", dataset_spec=s.config["dataset"], device="cpu",
                    state_dir=tmp_path / "state")
    assert "at epoch 15" in caplog.text  # it went on from the saved state, not from the start
    first, resumed = (torch.load(w, weights_only=True) for w in (weights, tmp_path / "c.pt"))
    assert all(torch.equal(first[k], resumed[k]) for k in first)
    assert np.array_equal(read_corner(predictions)["train_probs"], read_corner(tmp_path / "c.h5")["train_probs"])
    assert not (tmp_path / "state").exists()
