"""Training one network of the grid and recording its predictions at the checkpoint steps.

The whole data set sits on the training device as tensors (uint8 for images), batches are drawn by
index, and augmentation (random crop with zero padding, horizontal flip) runs on the device: no
DataLoader, no worker processes, which is both the fast path on a GPU and bit-reproducible on a CPU.

Determinism: with the same run config on the CPU (same thread count) the run file is bit-identical.
Shuffling and augmentation draw from their own seeded generators, and both generators, the model,
the optimizer and the learning-rate schedule are saved in a resumable state (`torch.save` of tensors
and plain containers, loaded with `weights_only=True`), so a job killed at any moment resumes from its
last saved epoch and writes the same run file as an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .devices import resolve_device
from .h5io import atomic_path, write_h5
from .runfile import METRICS, write_run
from .schedule import checkpoint_steps

log = logging.getLogger("inpca.train")

STATE_FORMAT = 1


def subsample(dataset, keep_every: int):
    """Every k-th sample of each split: the samples whose predictions are recorded.

    Networks always train on the full training set; `dataset.keep_every` only thins what is
    recorded and compared (the paper's distance code used every 2nd sample). The fingerprint of
    the thinned set differs from the full set's, so the two are never mixed in one store.
    """
    if keep_every == 1:
        return dataset
    import dataclasses

    return dataclasses.replace(
        dataset,
        name=f"{dataset.name}/every{keep_every}",
        x_train=dataset.x_train[::keep_every], y_train=dataset.y_train[::keep_every],
        x_test=dataset.x_test[::keep_every], y_test=dataset.y_test[::keep_every],
    )


def load_study_dataset(dataset_spec: dict, data_dir_base=None, recorded: bool = True):
    """The study's data set; `recorded` thins it to the samples whose predictions are recorded.

    The loader gets the fields of its own data set only (the validated config carries every data
    set's defaults).
    """
    from .data import load_dataset
    from .study import dataset_identity

    spec = {k: v for k, v in dataset_identity(dataset_spec).items() if k != "keep_every"}
    if spec["name"] == "cifar10":
        spec.update(data_dir=dataset_spec["data_dir"], download=dataset_spec["download"])
    dataset = load_dataset(spec, data_dir_base)
    return subsample(dataset, dataset_spec.get("keep_every", 1)) if recorded else dataset


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
        import torch

        if self.is_image:
            return (x.float() / 255.0 - self.mean) / self.std
        return x.to(torch.float32)


def to_device(dataset, device: str, channels_last: bool) -> DeviceData:
    import torch

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    mean = torch.tensor(dataset.mean, dtype=torch.float32, device=device).view(1, -1, *([1] * (len(dataset.input_shape) - 1)))
    std = torch.tensor(dataset.std, dtype=torch.float32, device=device).view_as(mean)
    return DeviceData(t(dataset.x_train), t(dataset.y_train).long(), t(dataset.x_test), t(dataset.y_test).long(),
                      dataset.is_image, mean, std)


def evaluate(model, data: DeviceData, batch_size: int, channels_last: bool):
    """Softmax probabilities (float32, CPU numpy), mean cross-entropy and error on both splits."""
    import torch

    model.eval()
    out = {}
    with torch.no_grad():
        for split in ("train", "test"):
            x_all, y_all = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
            probs, loss_sum, wrong = [], 0.0, 0
            for start in range(0, x_all.shape[0], batch_size):
                x = data.prepare(x_all[start:start + batch_size])
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                logits = model(x).float()
                logp = torch.log_softmax(logits, dim=1)
                y = y_all[start:start + batch_size]
                loss_sum += float(-logp.gather(1, y[:, None]).double().sum())
                wrong += int((logits.argmax(1) != y).sum())
                probs.append(torch.softmax(logits, dim=1).cpu())
            n = x_all.shape[0]
            out[split] = (torch.cat(probs).numpy(), loss_sum / n, wrong / n)
    model.train()
    return out


# --------------------------------------------------------------------------------------------
# resumable state


class Recorder:
    """Checkpoint predictions recorded so far, kept on disk beside the state so a resumed job has them."""

    def __init__(self, path: Path):
        self.path = path

    @staticmethod
    def empty() -> dict:
        return {"train_probs": [], "test_probs": [], "step": [], "epoch": [], **{m: [] for m in METRICS}}

    def load(self) -> dict:
        from .h5io import open_h5

        if not self.path.exists():
            return self.empty()
        with open_h5(self.path) as f:
            return {k: list(f[k][()]) for k in f}

    def save(self, rec: dict) -> None:
        def fill(f):
            for key, values in rec.items():
                f.create_dataset(key, data=np.asarray(values), track_times=False)

        write_h5(self.path, fill)


def save_state(path: Path, model, optimizer, step: int, epoch: int, gens: dict) -> None:
    import torch

    state = {
        "format": STATE_FORMAT, "step": step, "epoch": epoch,
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "generators": {k: g.get_state() for k, g in gens.items()},
        "torch_rng": torch.get_rng_state(),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: Path):
    import torch

    # weights_only: never unpickle arbitrary objects from disk
    return torch.load(path, map_location="cpu", weights_only=True)


# --------------------------------------------------------------------------------------------
# the run


def train_run(run: dict, run_id: str, out_path, *, dataset_spec: dict, device: str = "auto", threads: int = 1,
              eval_batch_size: int = 2048, state_dir=None, state_every_epochs: int = 1,
              data_dir_base=None, stop_after_epochs: int | None = None) -> dict:
    """Train the network of `run` and write its run file to `out_path`.

    `dataset_spec` is the study's full `dataset` section (with data_dir); `run` the canonical run
    config. `state_dir` holds the resumable state; it is removed once the run file exists.
    `stop_after_epochs` (tests) stops after that many epochs as if the job had been killed.
    """
    import torch

    from .models import build_model, count_parameters

    device = resolve_device(device)
    if device == "cuda":
        from .devices import claim_gpu

        claim_gpu()
    torch.set_num_threads(threads)
    if device == "cpu":
        torch.use_deterministic_algorithms(True)
    torch.manual_seed(run["seed"])

    started = time.time()
    dataset = load_study_dataset(dataset_spec, data_dir_base, recorded=False)
    recorded = subsample(dataset, dataset_spec.get("keep_every", 1))
    n_train = len(dataset.y_train)
    bs = run["batch_size"]
    if bs > n_train:
        raise ValueError(f"run {run_id}: batch_size {bs} exceeds the {n_train} training samples")
    steps_per_epoch = n_train // bs  # drop the last partial batch: every step sees a full batch
    total_steps = steps_per_epoch * run["epochs"]
    steps = checkpoint_steps(run["checkpoints"], steps_per_epoch, run["epochs"])
    step_set = set(steps)

    is_conv = dataset.is_image and run["arch"]["name"] != "fc"
    channels_last = device == "cuda" and is_conv
    model = build_model(run["arch"], tuple(dataset.input_shape), dataset.num_classes).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model.parameters(), run["optimizer"], run["weight_decay"])
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    warmup_steps = int(round(run["warmup_epochs"] * steps_per_epoch))
    data = to_device(dataset, device, channels_last)
    eval_data = data if recorded is dataset else to_device(recorded, device, channels_last)
    gens = {"shuffle": torch.Generator().manual_seed(run["seed"]),
            "augment": torch.Generator(device=device).manual_seed(run["seed"] + 1)}
    pad = max(dataset.input_shape[-1] // 8, 1) if dataset.is_image else 0
    augment = bool(run["augment"]) and dataset.is_image
    use_bf16 = run["precision"] == "bf16" and (device == "cpu" or torch.cuda.is_bf16_supported())

    log.info("run %s: %s, %d parameters, %d train / %d test samples (%d / %d recorded), %d steps (%d per epoch), "
             "%d checkpoints, device %s", run_id, run["arch"]["name"], count_parameters(model), n_train,
             len(dataset.y_test), len(recorded.y_train), len(recorded.y_test), total_steps, steps_per_epoch,
             len(steps), device)

    state_dir = Path(state_dir) if state_dir else None
    recorder = Recorder(state_dir / "recorded.h5") if state_dir else None
    rec = recorder.load() if recorder else Recorder.empty()
    step, first_epoch = 0, 0
    if state_dir and (state_dir / "state.pt").exists():
        state = load_state(state_dir / "state.pt")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for key, g in gens.items():
            g.set_state(state["generators"][key])
        torch.set_rng_state(state["torch_rng"])
        step, first_epoch = int(state["step"]), int(state["epoch"])
        rec = {k: v[: len([s for s in rec["step"] if s <= step])] for k, v in rec.items()}
        log.info("resumed from %s at epoch %d, step %d (%d checkpoints recorded)", state_dir, first_epoch, step, len(rec["step"]))

    def record(current_step: int) -> bool:
        """Evaluate and append a checkpoint; False if the predictions are not finite (divergence)."""
        result = evaluate(model, eval_data, eval_batch_size, channels_last)
        finite = all(np.isfinite(result[s][0]).all() for s in ("train", "test"))
        if not finite:
            return False
        for split in ("train", "test"):
            probs, loss, err = result[split]
            rec[f"{split}_probs"].append(probs)
            rec[f"{split}_loss"].append(loss)
            rec[f"{split}_error"].append(err)
        rec["step"].append(current_step)
        rec["epoch"].append(current_step / steps_per_epoch)
        log.info("epoch %6.2f step %6d  train loss %.4f err %.4f  test loss %.4f err %.4f  (%.1f s)",
                 current_step / steps_per_epoch, current_step, rec["train_loss"][-1], rec["train_error"][-1],
                 rec["test_loss"][-1], rec["test_error"][-1], time.time() - started)
        return True

    diverged_at = -1
    if step == 0 and not rec["step"]:
        if not record(0):
            raise RuntimeError(f"run {run_id}: the untrained network already predicts NaN/Inf")

    progress = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        progress = tqdm(total=total_steps, initial=step, desc=run_id, unit="step", leave=False)
    model.train()
    loss_fn = torch.nn.CrossEntropyLoss()
    for epoch in range(first_epoch, run["epochs"]):
        if stop_after_epochs is not None and epoch >= stop_after_epochs:
            log.info("stopping after %d epochs as asked (stop_after_epochs)", epoch)
            return {"stopped": True, "step": step}
        order = torch.randperm(n_train, generator=gens["shuffle"]).to(device)
        for i in range(steps_per_epoch):
            idx = order[i * bs:(i + 1) * bs]
            x = data.x_train[idx]
            if augment:
                x = augment_batch(x, gens["augment"], pad)
            x = data.prepare(x)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            factor = lr_factor(step, total_steps, warmup_steps, run["lr_schedule"])
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base * factor
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=use_bf16):
                loss = loss_fn(model(x), data.y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if progress:
                progress.update(1)
            if not torch.isfinite(loss.detach()):
                diverged_at = step
                break
            if step in step_set and not record(step):
                diverged_at = step
                break
        if diverged_at >= 0:
            log.warning("run %s diverged (non-finite loss or predictions) at step %d; the run file keeps the "
                        "%d checkpoints before it", run_id, diverged_at, len(rec["step"]))
            break
        if state_dir and state_every_epochs and (epoch + 1) % state_every_epochs == 0 and epoch + 1 < run["epochs"]:
            state_dir.mkdir(parents=True, exist_ok=True)
            recorder.save(rec)
            save_state(state_dir / "state.pt", model, optimizer, step, epoch + 1, gens)
    if progress:
        progress.close()

    attrs = {
        "run_id": run_id, "config": json.dumps(run, sort_keys=True), "dataset": recorded.name,
        "fingerprint": recorded.fingerprint, "num_classes": dataset.num_classes,
        "n_train": len(recorded.y_train), "n_test": len(recorded.y_test), "steps_per_epoch": steps_per_epoch,
        "diverged_at_step": diverged_at, "inpca_version": __version__,
    }
    dtype = np.float16 if run["checkpoints"]["dtype"] == "float16" else np.float32
    probs = {s: np.stack(rec[f"{s}_probs"]).astype(dtype) for s in ("train", "test")}
    write_run(out_path, probs, rec["step"], rec["epoch"], {m: rec[m] for m in METRICS}, attrs)
    if state_dir and state_dir.exists():
        shutil.rmtree(state_dir)
    log.info("wrote %s: %d checkpoints in %.1f s", out_path, len(rec["step"]), time.time() - started)
    return {"stopped": False, "step": step, "checkpoints": len(rec["step"])}
