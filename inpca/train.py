"""Training one network of the grid and recording its predictions at the checkpoint steps.

The whole data set sits on the training device as tensors (uint8 for images), batches are drawn by
index, and augmentation (random crop with zero padding, horizontal flip) runs on the device: no
DataLoader, no worker processes, which is both the fast path on a GPU and bit-reproducible on a CPU.

Determinism: with the same run config on the CPU (same thread count) the run file is bit-identical.
Shuffling and augmentation draw from their own seeded generators, and both generators, the model,
the optimizer and the learning-rate schedule are saved in a resumable state (`torch.save` of tensors
and plain containers, loaded with `weights_only=True`), so a job killed at any moment resumes from its
last saved epoch and writes the same run file as an uninterrupted run.

:func:`train_run` tells a run's story; each of its steps is a method of :class:`Training`: set up
torch, load the data and build the model (the constructor), resume from a saved state, record the
untrained network, train epoch by epoch (recording at the checkpoint steps), save the state, write
the run file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .config import SPLITS, complete_section
from .data import load_dataset, subsample
from .devices import claim_gpu, resolve_device
from .errors import ConfigError, InpcaError, RunFileError, first_line, rebuild_hint
from .files import atomic_path
from .runfile import CHECKPOINT_DATASETS, METRICS, read_checkpoints, write_run
from .schedule import checkpoint_steps
from .study import corner_config, corner_id

log = logging.getLogger("inpca.train")

STATE_FORMAT = 1
STATE_FILE = "state.pt"
RECORDED_FILE = "recorded.h5"


# --------------------------------------------------------------------------------------------
# pieces of the loop


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the base learning rate before optimizer step `step` (0-based)."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(total_steps - warmup_steps, 1)
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup_steps) / span))


def make_optimizer(params, opt: dict, weight_decay: float):
    import torch

    if opt["name"] == "sgd":
        return torch.optim.SGD(params, lr=opt["lr"], momentum=opt["momentum"], nesterov=opt["nesterov"],
                               weight_decay=weight_decay)
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[opt["name"]]
    return cls(params, lr=opt["lr"], betas=tuple(opt["betas"]), weight_decay=weight_decay)


def augment_batch(x, generator, pad: int):
    """Random crop (zero padding `pad`) and horizontal flip of a uint8 NCHW batch, on its device."""
    import torch

    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), device=x.device, generator=generator)
    ox = torch.randint(0, 2 * pad + 1, (b,), device=x.device, generator=generator)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (b, h, 1)
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (b, 1, w)
    batch = torch.arange(b, device=x.device)[:, None, None]
    cropped = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # (b, c, h, w)
    flip = torch.rand(b, device=x.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], cropped.flip(3), cropped).contiguous()


@dataclass
class DeviceData:
    x_train: object
    y_train: object
    x_test: object
    y_test: object
    is_image: bool
    mean: object
    std: object

    def prepare(self, x):
        """Model input from stored samples: uint8 images -> normalised float, vectors unchanged."""
        return prepare_inputs(x, self.is_image, self.mean, self.std)


def prepare_inputs(x, is_image: bool, mean, std):
    """Model input from stored samples: uint8 images -> (x/255 - mean)/std as float, vectors as float."""
    import torch

    if is_image:
        return (x.float() / 255.0 - mean) / std
    return x.to(torch.float32)


def normalisation(dataset, device) -> tuple:
    """The per-channel mean and std of `dataset` as float32 tensors on `device`, shaped to broadcast
    over a batch (channels are dim 1)."""
    import torch

    per_channel = (1, -1, *([1] * (len(dataset.input_shape) - 1)))
    mean = torch.tensor(dataset.mean, dtype=torch.float32, device=device).view(per_channel)
    std = torch.tensor(dataset.std, dtype=torch.float32, device=device).view_as(mean)
    return mean, std


def to_device(dataset, device: str) -> DeviceData:
    """The arrays of `dataset` as tensors on `device` (images stay uint8), labels as int64."""
    import torch

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    return DeviceData(t(dataset.x_train), t(dataset.y_train).long(), t(dataset.x_test), t(dataset.y_test).long(),
                      dataset.is_image, *normalisation(dataset, device))


def evaluate_batches(forward, batches, prepare, channels_last: bool = False):
    """Softmax probabilities (float32, CPU numpy), mean cross-entropy and 0/1 error of one split.

    `batches` yields (stored inputs, int64 labels) on the model's device in a fixed order, `prepare`
    turns stored inputs into model inputs and `forward` (the model) returns logits. The caller puts
    the model in eval mode under torch.no_grad(); :func:`evaluate` and :mod:`inpca.record` share this.
    """
    import torch

    probs, loss_sum, wrong, n = [], 0.0, 0, 0
    for x, y in batches:
        x = prepare(x)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = forward(x).float()
        logp = torch.log_softmax(logits, dim=1)
        loss_sum += float(-logp.gather(1, y[:, None]).double().sum())
        wrong += int((logits.argmax(1) != y).sum())
        probs.append(torch.softmax(logits, dim=1).cpu())
        n += y.shape[0]
    return torch.cat(probs).numpy(), loss_sum / n, wrong / n


def evaluate(model, data: DeviceData, batch_size: int, channels_last: bool):
    """Softmax probabilities (float32, CPU numpy), mean cross-entropy and error on both splits."""
    import torch

    model.eval()
    out = {}
    with torch.no_grad():
        for split in SPLITS:
            x_all, y_all = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
            batches = ((x_all[start:start + batch_size], y_all[start:start + batch_size])
                       for start in range(0, x_all.shape[0], batch_size))
            out[split] = evaluate_batches(model, batches, data.prepare, channels_last)
    model.train()
    return out


# --------------------------------------------------------------------------------------------
# the recorded checkpoints


class CheckpointCache:
    """The checkpoints a training has recorded so far, kept beside its resumable state so a resumed job
    has them; written as a run file is (:func:`inpca.runfile.write_run`), without its attributes."""

    def __init__(self, path: Path):
        self.path = path

    @staticmethod
    def empty() -> dict:
        return {name: [] for name in CHECKPOINT_DATASETS}

    def load(self) -> dict:
        if not self.path.exists():
            return self.empty()
        checkpoints = read_checkpoints(self.path)
        checkpoints.pop("attrs")
        return checkpoints

    def save(self, rec: dict) -> None:
        probs = {split: np.asarray(rec[f"{split}_probs"]) for split in SPLITS}
        write_run(self.path, probs, rec["step"], rec["epoch"], {m: rec[m] for m in METRICS}, attrs={})


# --------------------------------------------------------------------------------------------
# the run


def set_up_torch(device: str, threads: int, seed: int) -> str:
    """The process-wide torch state of a run: its device (claimed, if a GPU), thread count,
    deterministic kernels on a CPU, and the seed of the model's initialisation. Returns the device."""
    import torch

    device = resolve_device(device)
    if device == "cuda":
        claim_gpu()
    torch.set_num_threads(threads)
    if device == "cpu":
        torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    return device


class Training:
    """One network of the grid, trained step by step (:func:`train_run` runs the steps in order).

    Building one sets up torch, puts the data on the device and builds the model and optimizer.
    `step` and `epoch` count the optimizer steps and epochs done; `record` holds the checkpoints
    recorded so far; `diverged_at` is the step at which training diverged, or -1.

    `training_set` (optional) maps the data set to the one trained on (a corner's random labels or
    subset); the recorded samples and their labels stay the data set's own. `start_weights` (optional)
    is a state dict file (a corner's weights) loaded over the fresh initialisation.
    """

    def __init__(self, run: dict, run_id: str, *, dataset_spec: dict, device: str = "auto", threads: int = 1,
                 eval_batch_size: int = 2048, data_dir_base=None, training_set=None, start_weights=None):
        from .models import count_parameters

        self.run, self.run_id, self.eval_batch_size = run, run_id, eval_batch_size
        self.device = set_up_torch(device, threads, run["seed"])
        self.started = time.time()
        self._load_data(dataset_spec, data_dir_base, training_set)
        self._build_model()
        if start_weights is not None:
            self._load_start_weights(start_weights)
        self.step, self.epoch, self.diverged_at = 0, 0, -1
        self.record = CheckpointCache.empty()
        self.parameters = count_parameters(self.model)
        log.info("run %s: %s, %d parameters, %d train / %d test samples (%d / %d recorded), %d steps (%d per epoch), "
                 "%d checkpoints, device %s", run_id, run["arch"]["name"], self.parameters,
                 self.dataset.n_train, self.dataset.n_test, self.recorded.n_train, self.recorded.n_test,
                 self.total_steps, self.steps_per_epoch, len(self.checkpoint_steps), self.device)

    def _load_data(self, dataset_spec: dict, data_dir_base, training_set=None) -> None:
        """The full data set to train on and its recorded samples to evaluate, both on the device,
        and the step counts that follow from the batch size."""
        spec = complete_section("dataset", dataset_spec)
        self.dataset = load_dataset(spec, data_dir_base)
        self.recorded = subsample(self.dataset, spec["keep_every"])
        if training_set is not None:
            self.dataset = training_set(self.dataset)
        n_train, batch_size = self.dataset.n_train, self.run["batch_size"]
        if batch_size > n_train:
            raise ConfigError(f"run {self.run_id}: batch_size {batch_size} exceeds the {n_train} training samples")
        self.steps_per_epoch = n_train // batch_size  # drop the last partial batch: every step sees a full batch
        self.total_steps = self.steps_per_epoch * self.run["epochs"]
        self.checkpoint_steps = set(checkpoint_steps(self.run["checkpoints"], self.steps_per_epoch, self.run["epochs"]))
        self.data = to_device(self.dataset, self.device)
        self.eval_data = self.data if self.recorded is self.dataset else to_device(self.recorded, self.device)
        self.augment = bool(self.run["augment"]) and self.dataset.is_image
        self.pad = max(self.dataset.input_shape[-1] // 8, 1) if self.dataset.is_image else 0

    def _build_model(self) -> None:
        """The network, its optimizer and the seeded generators of shuffling and augmentation."""
        import torch

        from .models import build_model

        run, device = self.run, self.device
        # channels_last is the fast memory layout of convolutions on a GPU
        self.channels_last = device == "cuda" and self.dataset.is_image and run["arch"]["name"] != "fc"
        self.model = build_model(run["arch"], self.dataset.input_shape, self.dataset.num_classes).to(device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = make_optimizer(self.model.parameters(), run["optimizer"], run["weight_decay"])
        self.base_lrs = [g["lr"] for g in self.optimizer.param_groups]
        self.warmup_steps = int(round(run["warmup_epochs"] * self.steps_per_epoch))
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.use_bf16 = run["precision"] == "bf16" and (device == "cpu" or torch.cuda.is_bf16_supported())
        self.generators = {"shuffle": torch.Generator().manual_seed(run["seed"]),
                           "augment": torch.Generator(device=device).manual_seed(run["seed"] + 1)}

    def _load_start_weights(self, path) -> None:
        import torch

        try:
            # weights_only: never unpickle arbitrary objects from disk
            state = torch.load(path, map_location=self.device, weights_only=True)
            self.model.load_state_dict(state)
        except Exception as exc:  # a truncated file, another network's weights: one line, with the remedy
            raise RunFileError(f"{path}: not the weights of run {self.run_id}'s network ({first_line(exc)[:200]}); "
                               + rebuild_hint(path)) from None
        log.info("started from the weights in %s", path)

    def resume(self, state_dir: Path) -> bool:
        """Go on from the state saved in `state_dir`; False if there is none."""
        import torch

        path = state_dir / STATE_FILE
        if not path.exists():
            return False
        # weights_only: never unpickle arbitrary objects from disk
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for key, generator in self.generators.items():
            generator.set_state(state["generators"][key])
        torch.set_rng_state(state["torch_rng"])
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        # a job killed between writing the checkpoints and the state recorded some after the state
        recorded = CheckpointCache(state_dir / RECORDED_FILE).load()
        kept = sum(1 for s in recorded["step"] if s <= self.step)
        self.record = {key: values[:kept] for key, values in recorded.items()}
        log.info("resumed from %s at epoch %d, step %d (%d checkpoints recorded)", state_dir, self.epoch, self.step,
                 kept)
        return True

    def record_checkpoint(self) -> bool:
        """Evaluate the network at the current step and append its predictions and metrics; False,
        with nothing appended, if the predictions are not finite (the network diverged)."""
        result = evaluate(self.model, self.eval_data, self.eval_batch_size, self.channels_last)
        if not all(np.isfinite(result[split][0]).all() for split in SPLITS):
            return False
        for split in SPLITS:
            probs, loss, err = result[split]
            self.record[f"{split}_probs"].append(probs)
            self.record[f"{split}_loss"].append(loss)
            self.record[f"{split}_error"].append(err)
        epoch = self.step / self.steps_per_epoch
        self.record["step"].append(self.step)
        self.record["epoch"].append(epoch)
        log.info("epoch %6.2f step %6d  train loss %.4f err %.4f  test loss %.4f err %.4f  (%.1f s)",
                 epoch, self.step, self.record["train_loss"][-1], self.record["train_error"][-1],
                 self.record["test_loss"][-1], self.record["test_error"][-1], time.time() - self.started)
        return True

    def record_untrained(self) -> None:
        """The first checkpoint (step 0). An untrained network that already predicts NaN or Inf has
        nothing to record, so the run is refused."""
        if not self.record_checkpoint():
            raise InpcaError(f"run {self.run_id}: the untrained network already predicts NaN/Inf")

    def train_epoch(self, progress=None) -> bool:
        """One pass over the shuffled training set, recording at the checkpoint steps it reaches.

        False if the network diverged (a non-finite loss or non-finite predictions): training
        stops there and the run file keeps the checkpoints before it. `progress` (a tqdm bar, or
        None) counts the steps.
        """
        import torch

        batch_size = self.run["batch_size"]
        self.model.train()
        order = torch.randperm(self.dataset.n_train, generator=self.generators["shuffle"]).to(self.device)
        for i in range(self.steps_per_epoch):
            loss = self._optimizer_step(order[i * batch_size:(i + 1) * batch_size])
            self.step += 1
            if progress:
                progress.update(1)
            loss_finite = bool(torch.isfinite(loss.detach()))
            if not loss_finite or (self.step in self.checkpoint_steps and not self.record_checkpoint()):
                self.diverged_at = self.step
                log.warning("run %s diverged (non-finite loss or predictions) at step %d; the run file keeps the "
                            "%d checkpoints before it", self.run_id, self.step, len(self.record["step"]))
                return False
        self.epoch += 1
        return True

    def _optimizer_step(self, idx):
        """One optimizer step on the training samples `idx` (augmented if the run asks); the batch loss."""
        import torch

        x = self.data.x_train[idx]
        if self.augment:
            x = augment_batch(x, self.generators["augment"], self.pad)
        x = self.data.prepare(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        factor = lr_factor(self.step, self.total_steps, self.warmup_steps, self.run["lr_schedule"])
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor
        with torch.autocast(device_type=self.device, dtype=torch.bfloat16, enabled=self.use_bf16):
            loss = self.loss_fn(self.model(x), self.data.y_train[idx])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss

    def save_state(self, state_dir: Path) -> None:
        """What a killed job needs to go on from here: the checkpoints recorded so far, then the
        model, optimizer, step, epoch and random generators."""
        import torch

        state_dir.mkdir(parents=True, exist_ok=True)
        # checkpoints first: a job killed between the two writes resumes from the older state and
        # drops the checkpoints after it (see resume), never the other way round
        CheckpointCache(state_dir / RECORDED_FILE).save(self.record)
        state = {
            "format": STATE_FORMAT, "step": self.step, "epoch": self.epoch,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "generators": {key: g.get_state() for key, g in self.generators.items()},
            "torch_rng": torch.get_rng_state(),
        }
        with atomic_path(state_dir / STATE_FILE) as tmp:
            torch.save(state, tmp)

    def write_run_file(self, out_path) -> None:
        """The recorded checkpoints, with the run's config and the data set's identity, as the run file."""
        recorded, record = self.recorded, self.record
        attrs = {
            "run_id": self.run_id, "config": json.dumps(self.run, sort_keys=True), "dataset": recorded.name,
            "fingerprint": recorded.fingerprint, "num_classes": self.dataset.num_classes,
            "n_train": recorded.n_train, "n_test": recorded.n_test, "steps_per_epoch": self.steps_per_epoch,
            "diverged_at_step": self.diverged_at, "parameters": self.parameters, "inpca_version": __version__,
            "init": json.dumps(self.run.get("init", {"name": "default"}), sort_keys=True),
        }
        corner = corner_config(self.run)
        if corner:
            attrs["corner"] = corner_id(corner)
        dtype = np.float16 if self.run["checkpoints"]["dtype"] == "float16" else np.float32
        probs = {split: np.stack(record[f"{split}_probs"]).astype(dtype) for split in SPLITS}
        labels = {"train": recorded.y_train, "test": recorded.y_test}
        write_run(out_path, probs, record["step"], record["epoch"], {m: record[m] for m in METRICS}, attrs, labels)
        log.info("wrote %s: %d checkpoints in %.1f s", out_path, len(record["step"]), time.time() - self.started)


@contextlib.contextmanager
def progress_bar(training: Training):
    """A bar of the optimizer steps on an interactive terminal; None when stderr is a job's log."""
    if not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=training.total_steps, initial=training.step, desc=training.run_id, unit="step",
              leave=False) as bar:
        yield bar


def train_epochs(training: Training, state_dir: Path | None, state_every_epochs: int) -> None:
    """Train to the run's last epoch (or until it diverges), saving the state every
    `state_every_epochs` epochs (0: never) into `state_dir` (None: nowhere)."""
    epochs = training.run["epochs"]
    with progress_bar(training) as progress:
        while training.epoch < epochs and training.train_epoch(progress):
            # after the last epoch the output follows at once: no state to save
            due = state_every_epochs and training.epoch % state_every_epochs == 0 and training.epoch < epochs
            if state_dir and due:
                training.save_state(state_dir)


def train_run(run: dict, run_id: str, out_path, *, dataset_spec: dict, device: str = "auto", threads: int = 1,
              eval_batch_size: int = 2048, state_dir=None, state_every_epochs: int = 1,
              data_dir_base=None, start_weights=None) -> None:
    """Train the network of `run` and write its run file to `out_path`.

    `dataset_spec` is the study's `dataset` section (with data_dir); `run` the canonical run config.
    `state_dir` holds the resumable state, saved every `state_every_epochs` epochs (0: never); a
    run whose state is there goes on from it, and the state is removed once the run file exists.
    `start_weights`: the weights of the corner the run starts from (a run with an `init`), whose
    predictions are then the run's first checkpoint.
    """
    if ("init" in run) != (start_weights is not None):
        raise ConfigError(f"run {run_id}: " + ("its init needs the weights of its corner (start_weights)"
                                               if "init" in run else "a default-init run takes no start_weights"))
    training = Training(run, run_id, dataset_spec=dataset_spec, device=device, threads=threads,
                        eval_batch_size=eval_batch_size, data_dir_base=data_dir_base, start_weights=start_weights)
    state_dir = Path(state_dir) if state_dir else None
    if not (state_dir and training.resume(state_dir)):
        training.record_untrained()
    train_epochs(training, state_dir, state_every_epochs)
    training.write_run_file(out_path)
    if state_dir and state_dir.exists():
        shutil.rmtree(state_dir)
