"""Recording one's own training (inpca.record): real training of tiny networks on digits."""

import hashlib

import numpy as np
import pytest
import torch

from inpca.data import load_dataset, load_study_dataset
from inpca.models import build_model
from inpca.record import Recorder, RecorderError, log_steps
from inpca.runfile import METRICS, check_probabilities, read_run
from inpca.schedule import checkpoint_steps
from inpca.store import POINT_FIELDS, build_block, read_points, write_reference
from inpca.train import lr_factor, make_optimizer, to_device, train_run

DIGITS = {"name": "digits", "test_fraction": 0.25, "split_seed": 0, "keep_every": 1}
RUN = {
    "arch": {"name": "fc", "width": 16, "depth": 1},
    "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
    "batch_size": 128, "weight_decay": 1e-4, "augment": False, "epochs": 2, "seed": 0,
    "lr_schedule": "cosine", "warmup_epochs": 0.5, "precision": "fp32", "dataset": DIGITS,
    "checkpoints": {"schedule": "log", "count": 6, "early_epochs": 5, "per_epoch": 4, "dtype": "float32"},
}
STEPS = log_steps(20, 6)  # 10 steps per epoch (1347 samples, batches of 128), 2 epochs
ARRAYS = ("train_probs", "test_probs", "step", "epoch", *METRICS)


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def one_line_error(match, call, *args, **kwargs):
    with pytest.raises(RecorderError, match=match) as caught:
        call(*args, **kwargs)
    assert "\n" not in str(caught.value)
    return str(caught.value)


# --------------------------------------------------------------------------------------------
# a plain training loop, as a researcher writes one


def train_with_recorder(path, kill_after=None):
    """train_run's steps in a plain loop (the same seeds, order of operations and data), recording
    with a Recorder on the study's data set. `kill_after`: stop, without closing, once that many
    checkpoints are recorded, as a killed job does."""
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.manual_seed(RUN["seed"])
    dataset = load_dataset(DIGITS)
    data = to_device(dataset, "cpu")
    model = build_model(RUN["arch"], dataset.input_shape, dataset.num_classes)
    optimizer = make_optimizer(model.parameters(), RUN["optimizer"], RUN["weight_decay"])
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    shuffle = torch.Generator().manual_seed(RUN["seed"])
    loss_fn = torch.nn.CrossEntropyLoss()
    steps_per_epoch = dataset.n_train // RUN["batch_size"]
    total_steps = steps_per_epoch * RUN["epochs"]
    warmup_steps = int(round(RUN["warmup_epochs"] * steps_per_epoch))
    steps = checkpoint_steps(RUN["checkpoints"], steps_per_epoch, RUN["epochs"])
    rec = Recorder.for_dataset(path, load_study_dataset(DIGITS), config=RUN, steps=steps,
                               steps_per_epoch=steps_per_epoch, total_steps=total_steps)

    def checkpoint(step):
        if rec.due(step):
            rec.record(model, step=step)
        if kill_after is not None and len(rec.recorded_steps) >= kill_after:
            rec.recording.lock.release()  # as the system drops the lock of a killed process
            return True
        return False

    step = 0
    if checkpoint(step):
        return rec
    for _ in range(RUN["epochs"]):
        model.train()
        order = torch.randperm(dataset.n_train, generator=shuffle)
        for i in range(steps_per_epoch):
            idx = order[i * RUN["batch_size"]:(i + 1) * RUN["batch_size"]]
            factor = lr_factor(step, total_steps, warmup_steps, RUN["lr_schedule"])
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base * factor
            loss = loss_fn(model(data.prepare(data.x_train[idx])), data.y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if checkpoint(step):
                return rec
    rec.close()
    return rec


def test_a_plain_loop_with_the_recorder_writes_what_train_run_writes_and_the_store_takes_both(tmp_path):
    grid = tmp_path / "grid.h5"
    train_run(RUN, "grid", grid, dataset_spec=DIGITS, device="cpu", threads=1)
    recorded = tmp_path / "own.h5"
    train_with_recorder(recorded)
    ours, theirs = read_run(grid), read_run(recorded)
    assert list(theirs["step"]) == STEPS
    for name in ARRAYS:
        assert np.array_equal(ours[name], theirs[name]), name
    for key in ("fingerprint", "dataset", "num_classes", "n_train", "n_test", "steps_per_epoch", "parameters",
                "diverged_at_step"):
        assert ours["attrs"][key] == theirs["attrs"][key], key
    assert theirs["config"] == RUN and theirs["attrs"]["run_id"] == "own"
    assert not (tmp_path / "own.h5.partial").exists()

    reference, block = tmp_path / "ref.h5", tmp_path / "block.h5"
    write_reference(reference, DIGITS, geodesic_points=2)
    build_block(block, [grid, recorded], reference)
    points, configs, run_info = read_points(block)
    own_points, grid_points = ([p for p in points if p["run"] == run] for run in ("own", "grid"))
    assert len(own_points) == len(grid_points) == len(STEPS)
    for field in POINT_FIELDS:  # progress, distance to the truth, ...: the same for both runs
        np.testing.assert_array_equal([p[field] for p in own_points], [p[field] for p in grid_points],
                                      err_msg=field)
    assert configs["own"] == configs["grid"] and run_info["own"] == run_info["grid"]


def test_a_killed_recording_resumes_and_a_finished_one_records_nothing(tmp_path):
    whole = tmp_path / "whole" / "run.h5"
    train_with_recorder(whole)
    resumed = tmp_path / "resumed" / "run.h5"
    killed = train_with_recorder(resumed, kill_after=2)  # dropped without close, as a killed job
    assert not resumed.exists() and len(list((tmp_path / "resumed" / "run.h5.partial").glob("*.h5"))) == 2
    again = train_with_recorder(resumed, kill_after=0)  # a new Recorder on the same path, nothing trained
    assert [again.due(s) for s in STEPS] == [False, False] + [True] * (len(STEPS) - 2)
    assert again.recorded_steps == killed.recorded_steps == STEPS[:2]
    train_with_recorder(resumed)
    assert sha(resumed) == sha(whole)

    finished = train_with_recorder(resumed, kill_after=0)
    assert finished.finished and not any(finished.due(s) for s in STEPS)
    finished.close()
    assert sha(resumed) == sha(whole)


# --------------------------------------------------------------------------------------------
# one's own data and model


@pytest.fixture(scope="module")
def digits():
    """Digits as a researcher's float tensors (already normalised) and a tiny model for them."""
    dataset = load_study_dataset(DIGITS)

    def tensors(x, y):
        return torch.from_numpy(x.reshape(len(x), -1) / 255.0).float(), torch.from_numpy(y)

    return tensors(dataset.x_train, dataset.y_train), tensors(dataset.x_test, dataset.y_test)


def small_model(seed=0, classes=10):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.BatchNorm1d(16),
                               torch.nn.Linear(16, classes))


def record_three_steps(path, train, test, train_tensors, **kwargs):
    """Checkpoints 0, 1, 2 of a model that takes a full-batch SGD step on `train_tensors` after each."""
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    with Recorder(path, train=train, test=test, config={"arch": "mlp", "lr": 0.5}, steps=[0, 1, 2],
                  **kwargs) as rec:
        for step in (0, 1, 2):
            rec.record(model, step=step, epoch=step / 4)
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(train_tensors[0]), train_tensors[1]).backward()
            optimizer.step()
    return rec


def test_a_data_loader_gives_the_same_file_as_the_tensor_pair(tmp_path, digits):
    from torch.utils.data import DataLoader, TensorDataset

    train, test = digits
    pair = record_three_steps(tmp_path / "pair" / "run.h5", train, test, train, eval_batch_size=100)
    loaders = {split: DataLoader(TensorDataset(*tensors), batch_size=100, shuffle=False)
               for split, tensors in (("train", train), ("test", test))}
    loader = record_three_steps(tmp_path / "loader" / "run.h5", loaders["train"], loaders["test"], train)
    assert loader.fingerprint == pair.fingerprint
    assert sha(tmp_path / "loader" / "run.h5") == sha(tmp_path / "pair" / "run.h5")
    run = read_run(tmp_path / "pair" / "run.h5")
    assert run["train_probs"].shape == (3, 1347, 10) and run["attrs"]["num_classes"] == 10
    assert run["attrs"]["steps_per_epoch"] == 0 and run["attrs"]["dataset"] == "recorded"
    assert list(run["epoch"]) == [0, 0.25, 0.5]


def test_float16_storage(tmp_path, digits):
    path = tmp_path / "run.h5"
    record_three_steps(path, *digits, digits[0], dtype="float16")
    run = read_run(path)
    assert run["train_probs"].dtype == np.float16 and run["test_probs"].shape == (3, 450, 10)
    check_probabilities(path, "test_probs", run["test_probs"], 1e-3)


def test_record_restores_the_mode_of_every_module(tmp_path, digits):
    model = small_model()
    model.train()
    model[2].eval()
    rec = Recorder(tmp_path / "run.h5", train=digits[0], test=digits[1], config={}, steps=[0])
    rec.record(model, step=0)
    assert model.training and model[0].training and not model[2].training


def test_a_diverged_run_keeps_the_checkpoints_before_it(tmp_path, digits, caplog):
    model = small_model()
    path = tmp_path / "run.h5"
    rec = Recorder(path, train=digits[0], test=digits[1], config={"arch": "mlp"}, steps=[0, 5, 10],
                   steps_per_epoch=5)
    rec.record(model, step=0)
    with torch.no_grad():
        model[0].weight.fill_(float("nan"))
    rec.record(model, step=5)
    assert rec.diverged_at_step == 5 and not rec.due(10) and "diverged" in caplog.text
    rec.recording.lock.release()  # killed here, as the system drops a killed process' lock
    resumed = Recorder(path, train=digits[0], test=digits[1], config={"arch": "mlp"}, steps=[0, 5, 10])
    assert resumed.diverged_at_step == 5  # a resumed recording knows it too
    resumed.close()
    run = read_run(path)
    assert list(run["step"]) == [0] and run["attrs"]["diverged_at_step"] == 5
    check_probabilities(path, "train_probs", run["train_probs"], 1e-5)


def test_an_untrained_network_that_predicts_nan_is_refused(tmp_path, digits):
    model = small_model()
    with torch.no_grad():
        model[0].weight.fill_(float("nan"))
    rec = Recorder(tmp_path / "run.h5", train=digits[0], test=digits[1], config={}, steps=[0, 1])
    one_line_error("step 0: the network predicts NaN/Inf at its first checkpoint", rec.record, model, step=0)


def test_a_with_block_left_by_an_exception_keeps_the_checkpoints_for_a_resume(tmp_path, digits):
    path = tmp_path / "run.h5"
    with pytest.raises(KeyboardInterrupt):
        with Recorder(path, train=digits[0], test=digits[1], config={}, steps=[0, 1]) as rec:
            rec.record(small_model(), step=0)
            raise KeyboardInterrupt
    assert not path.exists()
    assert Recorder(path, train=digits[0], test=digits[1], config={}, steps=[0, 1]).recorded_steps == [0]


# --------------------------------------------------------------------------------------------
# refusals


def test_bad_input_is_refused_in_one_line_naming_the_value(tmp_path, digits):
    (x, y), test = digits
    path = tmp_path / "run.h5"

    def recorder(**kwargs):
        return Recorder(path, **{"train": (x, y), "test": test, "config": {}, "steps": [0, 5, 10], **kwargs})

    one_line_error("steps: 30 is beyond total_steps 20", recorder, steps=[0, 5, 30], total_steps=20)
    one_line_error("steps: -1 is negative", recorder, steps=[-1, 0, 5])
    one_line_error("steps: 3 follows 5", recorder, steps=[0, 5, 3])
    one_line_error("steps: 5 follows 5", recorder, steps=[0, 5, 5])
    one_line_error("train: 1346 labels for 1347 inputs", recorder, train=(x, y[:-1]))
    one_line_error(r"train labels: 10 is outside \[0, 10\)", recorder, train=(x, torch.where(y == 3, 10, y)),
                   num_classes=10)
    one_line_error(r"train labels: -1 is outside \[0, 10\)", recorder, train=(x, torch.where(y == 3, -1, y)))
    one_line_error(r"config: \{1, 2\} \(a set\) is not JSON-serialisable", recorder, config={"widths": {1, 2}})
    one_line_error("test: list_iterator is an iterator", recorder, test=iter([test]))
    rec = recorder()
    one_line_error(r"output has shape \(1347, 3\).*expected logits \(batch, 10\)", rec.record, small_model(classes=3),
                   step=0)
    one_line_error("step 7 is not in the schedule", rec.record, small_model(), step=7)
    rec.record(small_model(), step=0)
    one_line_error("step 0 is already recorded", rec.record, small_model(), step=0)
    one_line_error("another Recorder of this process is recording this run", recorder)
    rec.recording.lock.release()  # as if killed: the system drops the lock, the checkpoints stay
    # the checkpoints on disk belong to the config above: another config is another recording
    one_line_error(r"run\.h5\.partial: checkpoints of a recording with another config", recorder,
                   config={"lr": 1})
    one_line_error(r"run\.h5\.partial: checkpoints of a recording with another fingerprint", recorder,
                   fingerprint="0123456789abcdef")
    rec.close()
    one_line_error(r"run\.h5: a finished recording with another config", recorder, config={"lr": 1})


def test_a_shuffled_loader_is_refused_at_the_checkpoint(tmp_path, digits):
    from torch.utils.data import DataLoader, TensorDataset

    train, test = digits
    shuffled = DataLoader(TensorDataset(*train), batch_size=256, shuffle=True)
    rec = Recorder(tmp_path / "run.h5", train=shuffled, test=[test], config={}, steps=[0])
    one_line_error("train: the batches hold other labels", rec.record, small_model(), step=0)


# --------------------------------------------------------------------------------------------
# one Recorder per run file (issue 29: a second one overwrote the first one's complete run)

HOLD_A_RECORDER = """
import sys, numpy as np
from inpca.record import Recorder
x = np.zeros((4, 3), np.float32); y = np.array([0, 1, 0, 1])
rec = Recorder(sys.argv[1], train=(x, y), test=(x, y), config={"arch": "x"}, steps=[0, 1])
print("recording", flush=True)
sys.stdin.read()
"""


def tiny_recorder(path, **kwargs):
    x, y = np.zeros((4, 3), np.float32), np.array([0, 1, 0, 1])
    return Recorder(path, train=(x, y), test=(x, y), config={"arch": "x"}, steps=[0, 1], **kwargs)


def test_a_second_recorder_on_the_same_run_file_is_refused_in_one_line_and_the_first_loses_nothing(tmp_path):
    import signal
    import subprocess
    import sys

    path = tmp_path / "run.h5"
    first = tiny_recorder(path)
    with pytest.raises(RecorderError) as refused:
        tiny_recorder(path)
    assert str(refused.value) == (f"{path}: another Recorder of this process is recording this run and is not "
                                  "closed; close it (rec.close(), or leave its with block) or record to another path")
    first.record(torch.nn.Linear(3, 2), step=0)
    first.close()
    assert first.finished and not path.with_name("run.h5.lock").exists()
    assert tiny_recorder(path).finished  # the finished file: nothing to lock, nothing due

    # another process recording: refused, naming it; once that process is killed (-9), a resume is not
    other = tmp_path / "other.h5"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_A_RECORDER, str(other)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "recording"
        with pytest.raises(RecorderError) as refused:
            tiny_recorder(other)
        assert str(refused.value).startswith(f"{other}: another Recorder is recording this run (pid {holder.pid} on ")
        assert str(refused.value).endswith(f" holds {other}.lock); record to another path, or wait until that one "
                                           "is closed")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    resumed = tiny_recorder(other)
    assert resumed.due(0)
    resumed.close()
