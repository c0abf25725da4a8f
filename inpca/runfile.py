"""HDF5 run files: one per trained network, `results/runs/{run}.h5`.

Layout (flat names: HDF5 groups carry timestamps, and CPU runs must give bit-identical files):
  train_probs   (K, N_train, C)  float32 (or float16)  softmax in eval mode on the full train set, fixed order
  test_probs    (K, N_test, C)   likewise on the test set
  step          (K,) int64       optimizer steps at each checkpoint (0 = before training)
  epoch         (K,) float64     step / steps per epoch
  train_loss, train_error, test_loss, test_error   (K,) float64   mean cross-entropy and 0/1 error
  train_labels, test_labels   (N_split,) int64   the labels of the recorded samples
Attributes: run_id, config (canonical JSON of the run), dataset, fingerprint (sample order and
labels), num_classes, n_train, n_test, steps_per_epoch, diverged_at_step (-1 if never), parameters
(of the network), inpca_version, format_version; runs of the grid also init (JSON: where training
started, {"name": "default"} or the resolved corner init) and, when it started from a corner, corner
(its id: the run's checkpoint 0 is the corner's predictions).

Written through inpca.files.write_h5, so a file at the final path is always complete.

The same writer, :func:`write_run`, keeps the checkpoints of a training that is not finished: the
grid's training state (:class:`inpca.train.CheckpointCache`, all checkpoints so far in one file) and a
recording's folder of checkpoints (:class:`inpca.record.Recorder`, one file per checkpoint). Those are
read back by :func:`read_checkpoints`, which needs none of a run file's attributes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import RunFileError, rebuild_hint
from .files import create, h5_reason, open_h5, write_h5
from .config import SPLITS
from .study import METRICS

FORMAT_VERSION = 1
PROBS = {split: f"{split}_probs" for split in SPLITS}
# Every per-checkpoint dataset of a run file.
CHECKPOINT_DATASETS = (*PROBS.values(), "step", "epoch", *METRICS)


def write_run(path, probs: dict, steps, epochs, metrics: dict, attrs: dict, labels: dict | None = None) -> None:
    """Write a run file (layout above). `labels` ({"train": (N_train,), "test": (N_test,)} int64): the
    labels of the recorded samples, so a study of imported runs can build its reference points."""

    def fill(f):
        for split, name in PROBS.items():
            arr = probs[split]
            create(f, name, arr, chunks=(1, *arr.shape[1:]) if arr.shape[0] else None)
        create(f, "step", np.asarray(steps, dtype=np.int64))
        create(f, "epoch", np.asarray(epochs, dtype=np.float64))
        for key in METRICS:
            create(f, key, np.asarray(metrics[key], dtype=np.float64))
        for split, values in (labels or {}).items():
            create(f, f"{split}_labels", np.asarray(values, dtype=np.int64))
        for key, value in {**attrs, "format_version": FORMAT_VERSION}.items():
            f.attrs[key] = value

    write_h5(path, fill)


def read_checkpoints(path) -> dict:
    """The checkpoints of a file written by :func:`write_run` as lists, one entry per checkpoint:
    ``{split}_probs`` (N, C) arrays, ``step``, ``epoch`` and the metrics; and ``attrs``. For the files
    of unfinished trainings, which carry only the attributes their writer needs."""
    with open_h5(path) as f:
        out = {name: list(f[name][()]) for name in CHECKPOINT_DATASETS}
        out["attrs"] = dict(f.attrs)
    return out


def read_run(path: str | Path) -> dict:
    """Read a whole run file into memory with structural checks (shapes, names, attributes); ``path``
    in the result names the file (for messages about its content)."""
    path = Path(path)
    f = open_h5(path)
    try:
        with f:
            missing = [n for n in CHECKPOINT_DATASETS if n not in f]
            if missing:
                raise RunFileError(f"{path}: missing dataset(s) {', '.join(missing)}; not a complete run file; "
                                   + rebuild_hint(path))
            attrs = dict(f.attrs)
            for key in ("run_id", "config", "fingerprint", "num_classes", "n_train", "n_test"):
                if key not in attrs:
                    raise RunFileError(f"{path}: missing attribute {key!r}; not a complete run file; "
                                   + rebuild_hint(path))
            out = {"attrs": attrs, "config": json.loads(attrs["config"]), "path": str(path)}
            k = f["step"].shape[0]
            C = int(attrs["num_classes"])
            for split, name in PROBS.items():
                n = int(attrs[f"n_{split}"])
                if f[name].shape != (k, n, C):
                    raise RunFileError(f"{path}: {name} has shape {f[name].shape}, expected {(k, n, C)} "
                                       f"(checkpoints, samples, classes)")
                try:
                    out[name] = f[name][()]
                except OSError as exc:
                    raise RunFileError(f"{path}: cannot read {name} ({h5_reason(exc)}); truncated or corrupted? "
                                           + rebuild_hint(path)) from None
            for split in PROBS:
                if f"{split}_labels" in f:
                    out[f"{split}_labels"] = f[f"{split}_labels"][()]
            for key in ("step", "epoch", *METRICS):
                out[key] = f[key][()]
                if out[key].shape != (k,):
                    raise RunFileError(f"{path}: {key} has shape {out[key].shape}, expected ({k},)")
    except RunFileError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise RunFileError(f"{path}: cannot read ({exc}); truncated or corrupted? "
                                           + rebuild_hint(path)) from None
    return out


def check_probabilities(path, name: str, probs: np.ndarray, tolerance: float) -> None:
    """Refuse NaN/Inf, negative values and rows that do not sum to 1 within `tolerance`.

    Works in slices of checkpoints so memory stays bounded; the message names the first offender.
    """
    for k in range(probs.shape[0]):
        p = np.asarray(probs[k], dtype=np.float64)
        bad = ~np.isfinite(p)
        if bad.any():
            n = int(np.argwhere(bad)[0][0])
            raise RunFileError(f"{path}: {name} has NaN or Inf at checkpoint {k}, sample {n}")
        if (p < 0).any():
            n = int(np.argwhere(p < 0)[0][0])
            raise RunFileError(f"{path}: {name} has a negative probability at checkpoint {k}, sample {n}")
        sums = p.sum(axis=-1)
        off = np.abs(sums - 1.0) > tolerance
        if off.any():
            n = int(np.argmax(off))
            raise RunFileError(f"{path}: {name} row sums to {sums[n]:.6g} at checkpoint {k}, sample {n}; "
                               f"expected 1 within {tolerance:g}")
