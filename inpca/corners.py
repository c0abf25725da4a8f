"""Corners: networks driven far from ignorance before they train (Mao et al., PNAS 2024, App. E.1).

The paper's third claim is that networks started in very different parts of prediction space still
reach the truth along a similar manifold. A *corner* is such a start: the network of an architecture,
initialised from the corner's own seed, then

- ``random_labels``: pre-trained on the training set with every label replaced by one drawn uniformly
  from the classes: it memorises noise, so its predictions are confident (far from ignorance P0) yet
  at chance on the true labels;
- ``subsample``: pre-trained on a class-balanced subset of ``samples`` training images with their
  true labels: it fits the subset and generalises a little;
- ``perturbed``: not trained; Gaussian noise of standard deviation ``scale`` added to every parameter.

Pre-training uses the init's optimizer, batch size and weight decay (resolved by the study: by default
the run's own), a cosine learning rate and no augmentation. Labels, subset and noise are drawn from
numpy/torch generators seeded by the corner's seed, so a corner is deterministic on the CPU.

Each corner is one job with two outputs:

- ``results/corners/{corner}.pt``: the network's state dict (``torch.save`` of tensors only; every
  reader loads it with ``weights_only=True``). Every run from the corner loads it over its fresh
  initialisation, so the run's first checkpoint is the corner's predictions.
- ``results/corners/{corner}.h5``: the corner's predictions on the study's recorded samples,
  ``train_probs``/``test_probs`` (N, C) float32 and ``train_labels``/``test_labels`` (the true ones);
  attributes ``corner``, ``config`` (JSON), ``fingerprint``, ``dataset``, ``num_classes``, ``n_train``,
  ``n_test``, ``parameters``, ``train_loss``/``train_error``/``test_loss``/``test_error`` (on the true
  labels), ``pretrain_loss``/``pretrain_error`` (on the data it was pre-trained on: the random labels,
  the subset; NaN for perturbed), ``pretrain_samples``, ``steps``, ``inpca_version``. The store turns
  it into the corner's reference curves (:func:`inpca.store.write_corner_curves`).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import __version__
from .config import SPLITS
from .errors import DatasetError, InpcaError, RunFileError
from .files import atomic_path, create, open_h5, write_h5
from .train import Training, evaluate, train_epochs

log = logging.getLogger("inpca.corners")

KINDS = ("random_labels", "subsample", "perturbed")
# A perturbed corner trains no step; Training still builds an optimizer, which this one stands in for.
_UNUSED_OPTIMIZER = {"name": "sgd", "lr": 0.1, "momentum": 0.0, "nesterov": False}


def random_labels(n: int, num_classes: int, seed: int) -> np.ndarray:
    """n labels drawn uniformly from the classes (int64), deterministic in `seed`."""
    return np.random.default_rng(seed).integers(0, num_classes, size=n, dtype=np.int64)


def balanced_subset(labels, samples: int, num_classes: int, seed: int, name: str = "the data set") -> np.ndarray:
    """Sorted indices of `samples` items, samples / num_classes of each class, drawn by `seed`."""
    labels = np.asarray(labels)
    if samples < num_classes or samples % num_classes:
        raise DatasetError(f"init.samples: {samples} is not divisible into the {num_classes} classes of {name}")
    per_class = samples // num_classes
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise DatasetError(f"init.samples: {samples} needs {per_class} training samples of each class; class {c} "
                               f"of {name} has {len(members)}")
        chosen.append(rng.choice(members, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def training_set(init: dict):
    """The function that maps a data set to the one a corner pre-trains on (None: no pre-training)."""
    name = init["name"]

    def relabelled(dataset):
        labels = random_labels(dataset.n_train, dataset.num_classes, init["seed"])
        return replace(dataset, name=f"{dataset.name}/random-labels-s{init['seed']}", y_train=labels)

    def subset(dataset):
        rows = balanced_subset(dataset.y_train, init["samples"], dataset.num_classes, init["seed"],
                               f"{dataset.name} (training split)")
        return replace(dataset, name=f"{dataset.name}/subset{init['samples']}-s{init['seed']}",
                       x_train=dataset.x_train[rows], y_train=dataset.y_train[rows])

    return {"random_labels": relabelled, "subsample": subset}.get(name)


def perturb(model, scale: float, seed: int) -> None:
    """Add N(0, scale^2) noise to every parameter, drawn on the CPU from `seed` (the same noise on any device)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float32) * scale
            parameter.add_(noise.to(device=parameter.device, dtype=parameter.dtype))


def pretraining_run(corner: dict) -> dict:
    """The corner's pre-training as a run config for :class:`inpca.train.Training`."""
    init = corner["init"]
    trains = init["name"] != "perturbed"
    return {
        "arch": corner["arch"], "dataset": corner["dataset"], "seed": init["seed"],
        "optimizer": init["optimizer"] if trains else _UNUSED_OPTIMIZER,
        "batch_size": init["batch_size"] if trains else 1, "weight_decay": init.get("weight_decay", 0.0),
        "epochs": init["epochs"] if trains else 1, "augment": False, "lr_schedule": "cosine",
        "warmup_epochs": 0.0, "precision": "fp32",
        # recorded at the last step only: a non-finite prediction there stops a diverged pre-training
        "checkpoints": {"schedule": "log", "count": 2, "dtype": "float32"},
    }


def pretrain_corner(corner: dict, corner_id: str, weights_path, predictions_path, *, dataset_spec: dict,
                    device: str = "auto", threads: int = 1, eval_batch_size: int = 2048, state_dir=None,
                    state_every_epochs: int = 1, data_dir_base=None) -> None:
    """Drive the corner's network to its corner and write its weights and predictions.

    `corner` is the corner's config ({dataset, arch, init}, from :func:`inpca.study.corner_config`);
    `state_dir` holds a resumable state of the pre-training, as for a run. Refuses (one line) a
    pre-training that diverges, and a corner whose predictions are not finite.
    """
    import torch

    init = corner["init"]
    if init["name"] not in KINDS:
        raise InpcaError(f"corner {corner_id}: init {init['name']!r} is not one of {', '.join(KINDS)}")
    training = Training(pretraining_run(corner), corner_id, dataset_spec=dataset_spec, device=device,
                        threads=threads, eval_batch_size=eval_batch_size, data_dir_base=data_dir_base,
                        training_set=training_set(init))
    state_dir = Path(state_dir) if state_dir else None
    if init["name"] == "perturbed":
        perturb(training.model, init["scale"], init["seed"])
    else:
        if state_dir:
            training.resume(state_dir)
        train_epochs(training, state_dir, state_every_epochs)
        if training.diverged_at >= 0:
            raise InpcaError(f"corner {corner_id}: pre-training diverged at step {training.diverged_at} (non-finite "
                             f"loss or predictions); lower init.optimizer.lr ({init['optimizer']['lr']:g})")
    recorded = evaluate(training.model, training.eval_data, eval_batch_size, training.channels_last)
    if not all(np.isfinite(recorded[split][0]).all() for split in SPLITS):
        raise InpcaError(f"corner {corner_id}: the network predicts NaN/Inf at its corner; lower init.scale or "
                         "init.optimizer.lr")
    pretrain_loss = pretrain_error = math.nan
    if init["name"] != "perturbed":
        _, pretrain_loss, pretrain_error = evaluate(training.model, training.data, eval_batch_size,
                                                    training.channels_last)["train"]
    with atomic_path(weights_path) as tmp:
        torch.save({k: v.detach().cpu().contiguous() for k, v in training.model.state_dict().items()}, tmp)
    data = training.recorded
    attrs = {
        "corner": corner_id, "config": json.dumps(corner, sort_keys=True), "fingerprint": data.fingerprint,
        "dataset": data.name, "num_classes": data.num_classes, "n_train": data.n_train, "n_test": data.n_test,
        "parameters": training.parameters, "pretrain_loss": pretrain_loss, "pretrain_error": pretrain_error,
        "pretrain_samples": training.dataset.n_train if init["name"] != "perturbed" else 0,
        "steps": training.step, "inpca_version": __version__,
        **{f"{split}_{metric}": value for split in SPLITS
           for metric, value in zip(("loss", "error"), recorded[split][1:])},
    }

    def fill(f):
        for split in SPLITS:
            create(f, f"{split}_probs", data=recorded[split][0].astype(np.float32))
            create(f, f"{split}_labels", data=getattr(data, f"y_{split}"))
        f.attrs.update(attrs)

    write_h5(predictions_path, fill)
    if state_dir and state_dir.exists():
        shutil.rmtree(state_dir)
    log.info("corner %s (%s): pre-training error %.4f on %d samples; on the true labels train error %.4f, test "
             "error %.4f; %d steps in %.1f s", corner_id, init["name"], pretrain_error, attrs["pretrain_samples"],
             attrs["train_error"], attrs["test_error"], training.step, time.time() - training.started)


def read_corner(path) -> dict:
    """A corner's predictions file: {'train_probs', 'test_probs', 'train_labels', 'test_labels', 'attrs'}."""
    with open_h5(path) as f:
        missing = [k for k in ("train_probs", "test_probs", "train_labels", "test_labels") if k not in f]
        if missing or "corner" not in f.attrs:
            raise RunFileError(f"{path}: not a corner's predictions (missing {', '.join(missing) or 'attribute corner'})")
        out = {k: f[k][()] for k in ("train_probs", "test_probs", "train_labels", "test_labels")}
        out["attrs"] = dict(f.attrs)
    return out
