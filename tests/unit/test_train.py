"""Training loop and run files (inpca.train, inpca.runfile): real training of tiny networks."""

import copy
import hashlib

import h5py
import numpy as np
import pytest
import torch

from inpca.errors import ConfigError, InpcaError
from inpca.runfile import read_run
from inpca.schedule import checkpoint_steps
from inpca.train import RECORDED_FILE, CheckpointCache, Training, augment_batch, lr_factor, train_run

DATASET = {"name": "synthetic", "n_train": 256, "n_test": 64, "num_classes": 4, "input_shape": [12], "seed": 0,
           "keep_every": 1}
RUN = {
    "arch": {"name": "fc", "width": 16, "depth": 1},
    "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
    "batch_size": 32, "weight_decay": 1e-4, "augment": False, "epochs": 3, "seed": 0,
    "lr_schedule": "cosine", "warmup_epochs": 0.5, "precision": "fp32",
    "dataset": DATASET,
    "checkpoints": {"schedule": "paper", "early_epochs": 1, "per_epoch": 2, "count": 10, "dtype": "float32"},
}


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def train(tmp_path, name, run=RUN, dataset=DATASET):
    out = tmp_path / f"{name}.h5"
    train_run(run, name, out, dataset_spec=dataset, device="cpu", threads=1, state_dir=tmp_path / f"state-{name}")
    return out


def first_epochs(name, epochs, run=RUN, dataset=DATASET):
    """The steps of train_run for the first `epochs` epochs, as a job does before it is killed."""
    training = Training(run, name, dataset_spec=dataset, device="cpu", threads=1)
    training.record_untrained()
    for _ in range(epochs):
        assert training.train_epoch()
    return training


def test_run_file_holds_probabilities_metrics_and_attributes_at_every_checkpoint(tmp_path):
    out = train(tmp_path, "a")
    run = read_run(out)
    steps = checkpoint_steps(RUN["checkpoints"], 256 // 32, 3)
    assert list(run["step"]) == steps and steps[0] == 0
    k = len(steps)
    assert run["train_probs"].shape == (k, 256, 4) and run["test_probs"].shape == (k, 64, 4)
    assert run["train_probs"].dtype == np.float32
    np.testing.assert_allclose(run["train_probs"].sum(-1), 1, atol=1e-5)
    assert run["train_loss"][0] == pytest.approx(np.log(4), abs=0.3)  # untrained ≈ ignorance
    assert run["train_loss"][-1] < run["train_loss"][0]
    np.testing.assert_allclose(run["epoch"], np.array(steps) / 8)
    attrs = run["attrs"]
    assert attrs["run_id"] == "a" and attrs["n_train"] == 256 and attrs["num_classes"] == 4
    assert len(attrs["fingerprint"]) == 16 and attrs["dataset"] == "synthetic"
    assert run["config"] == RUN
    assert not (tmp_path / "state-a").exists()  # the resumable state is removed once the file exists


def test_same_config_and_seed_on_cpu_give_bit_identical_files(tmp_path):
    a = train(tmp_path, "same")
    b_dir = tmp_path / "again"
    b_dir.mkdir()
    b = train(b_dir, "same")
    assert sha(a) == sha(b)


def test_another_seed_gives_other_predictions(tmp_path):
    a = train(tmp_path, "s0")
    b = train(tmp_path, "s1", run={**RUN, "seed": 1})
    assert not np.array_equal(read_run(a)["train_probs"][-1], read_run(b)["train_probs"][-1])


def test_a_killed_run_resumes_and_writes_the_same_file(tmp_path):
    whole = train(tmp_path, "r")
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    first_epochs("r", 2).save_state(resumed_dir / "state-r")  # killed during epoch 3 of 3
    out = train(resumed_dir, "r")
    assert sha(out) == sha(whole)
    assert not (resumed_dir / "state-r").exists()


def test_a_run_killed_between_saving_checkpoints_and_state_resumes_from_the_older_state(tmp_path):
    whole = train(tmp_path, "k")
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    state_dir = resumed_dir / "state-k"
    training = first_epochs("k", 1)
    training.save_state(state_dir)
    assert training.train_epoch()
    CheckpointCache(state_dir / RECORDED_FILE).save(training.record)  # epoch 2's checkpoints, but epoch 1's state
    out = train(resumed_dir, "k")
    assert sha(out) == sha(whole)


def test_a_batch_larger_than_the_training_set_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="batch_size 512 exceeds the 256 training samples"):
        train(tmp_path, "big", run={**RUN, "batch_size": 512})


def test_an_untrained_network_that_predicts_nan_is_refused():
    training = Training(RUN, "nan", dataset_spec=DATASET, device="cpu", threads=1)
    with torch.no_grad():
        for parameter in training.model.parameters():
            parameter.fill_(float("nan"))
    with pytest.raises(InpcaError, match="untrained network already predicts NaN"):
        training.record_untrained()


def test_image_training_with_augmentation_on_digits_and_an_allcnn(tmp_path):
    run = copy.deepcopy(RUN)
    run.update(arch={"name": "allcnn", "width": 0.125}, augment=True, epochs=1, batch_size=128,
               optimizer={"name": "adam", "lr": 0.01, "betas": [0.9, 0.999]})
    digits = {"name": "digits", "test_fraction": 0.25, "split_seed": 0, "keep_every": 3}
    run["dataset"] = digits
    out = train(tmp_path, "img", run=run, dataset=digits)
    data = read_run(out)
    assert data["train_probs"].shape[1:] == (449, 10) and data["test_probs"].shape[1:] == (150, 10)


def test_float16_storage(tmp_path):
    run = copy.deepcopy(RUN)
    run["checkpoints"]["dtype"] = "float16"
    out = train(tmp_path, "f16", run=run)
    with h5py.File(out) as f:
        assert f["train_probs"].dtype == np.float16


def test_augmentation_crops_and_flips_on_the_device_deterministically():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).reshape(2, 3, 8, 8)
    a = augment_batch(x, torch.Generator().manual_seed(0), pad=1)
    b = augment_batch(x, torch.Generator().manual_seed(0), pad=1)
    assert a.shape == x.shape and a.dtype == torch.uint8 and torch.equal(a, b)
    # a crop with offset (pad, pad) and no flip is the identity: some of many draws must be
    many = augment_batch(x.repeat(64, 1, 1, 1), torch.Generator().manual_seed(1), pad=1)
    assert any(torch.equal(m, x[i % 2]) for i, m in enumerate(many))


def test_learning_rate_schedule_warms_up_then_follows_a_cosine_to_zero():
    assert lr_factor(0, 100, 10, "cosine") == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(10, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, "cosine") == pytest.approx(0.5)
    assert lr_factor(99, 100, 0, "cosine") < 1e-3
    assert lr_factor(50, 100, 0, "constant") == 1.0


def test_cifar10_training_from_a_tiny_directory_in_cifar_format(tmp_path):
    """The CIFAR-10 path end to end on CPU: loader, 32x32 augmentation, every 2nd sample recorded."""
    from inpca.testing import write_tiny_cifar10

    write_tiny_cifar10(tmp_path / "cifar", n_train=64, n_test=20)
    dataset = {"name": "cifar10", "data_dir": str(tmp_path / "cifar"), "download": False, "keep_every": 2}
    run = copy.deepcopy(RUN)
    run.update(arch={"name": "allcnn", "width": 0.125}, augment=True, epochs=2, batch_size=16, precision="bf16",
               dataset={"name": "cifar10", "keep_every": 2})
    out = train(tmp_path, "cifar", run=run, dataset=dataset)
    data = read_run(out)
    assert data["train_probs"].shape[1:] == (32, 10) and data["test_probs"].shape[1:] == (10, 10)
    assert data["attrs"]["dataset"] == "cifar10/every2"
    np.testing.assert_allclose(data["test_probs"].sum(-1), 1, atol=1e-5)
