"""Recording one's own PyTorch training into a run file, so the pipeline maps it beside its own runs.

::

    from inpca.record import Recorder, log_steps

    rec = Recorder("runs/my-run.h5", train=(x_train, y_train), test=(x_test, y_test),
                   config={"arch": "resnet18", "optimizer": {"name": "sgd", "lr": 0.1}, "seed": 0},
                   steps=log_steps(epochs * len(loader), 30), steps_per_epoch=len(loader))
    with rec:                                  # a clean exit writes the run file (Recorder.close)
        step = 0                               # optimizer steps taken; checkpoint 0 is the untrained net
        for epoch in range(epochs):
            for x, y in loader:
                if rec.due(step):
                    rec.record(model, step=step)   # eval mode, no grad; the model's modes restored
                train_step(model, optimizer, x, y)
                step += 1
        if rec.due(step):
            rec.record(model, step=step)

`record` evaluates exactly as :mod:`inpca.train` does (the same code): softmax of the float32
logits in eval mode under no_grad, mean cross-entropy and 0/1 error of the argmax, on the
evaluation samples in their fixed order. The file is a run file (:mod:`inpca.runfile`).

Crash safety: each checkpoint is written atomically to its own file in ``<path>.partial/``, and
:meth:`Recorder.close` (a ``with`` block that ends without an exception) assembles the run file
atomically and removes the folder. A killed training loses at most the checkpoint being written; a
new Recorder on the same path takes the checkpoints in the folder (if they were recorded with the
same config, steps and data) and ``due`` is False for them, so the resumed training appends. A
``with`` block left by an exception keeps the folder for that resume. With an atlas, the resumed
recording first places every recorded checkpoint that has no row in ``<path>.atlas.tsv`` yet (one
killed between writing a checkpoint and its row), so the table and the run file list the same steps.
The folder, its checks and the assembly of the run file are :mod:`inpca.recording_folder`.

One Recorder per run file: a Recorder holds a lock on ``<path>.lock`` from its construction until
:meth:`Recorder.close` (or the end of its ``with`` block); a second one on the same path, in any
process, is refused in one line instead of overwriting the first one's checkpoints. The system drops
the lock of a killed process, so a resume after kill -9 is never refused.

A run file that already exists is a finished recording: ``due`` is always False and ``close``
leaves the file as it is. To record it again, delete the file.

Importing this module imports numpy and the package's light modules only; torch is imported when a
checkpoint is recorded.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import numbers
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from . import __version__
from .config import SPLITS
from .data import fingerprint_of
from .errors import RecorderError
from .recording_folder import RecordingFolder
from .schedule import log_steps, paper_steps
from .train import evaluate_batches, normalisation, prepare_inputs

__all__ = ["Recorder", "RecorderError", "log_steps", "paper_steps"]

log = logging.getLogger("inpca.record")

DTYPES = {"float32": np.float32, "float16": np.float16}
FORECAST_ATTR = "inpca_forecast"  # the trial's user attribute with the latest forecast (AtlasPruner's)


def forecast_attr(forecast, *, step, epoch=math.nan) -> dict:
    """A :class:`inpca.atlas.Forecast` (or a (value, low, high) triple) as the JSON an Optuna trial keeps
    (``trial.user_attrs["inpca_forecast"]``, read by :class:`inpca.atlas.AtlasPruner`): {step, epoch,
    value, low, high, trusted, reason}; NaN becomes None (JSON has no NaN)."""
    if isinstance(forecast, (tuple, list)):
        (value, low, high), trusted, reason = forecast, True, ""
    else:
        value, low, high = forecast.estimates["final_test_error"]
        trusted, reason = bool(forecast.trusted), str(forecast.reason or "")

    def number(x):
        x = float(x)
        return x if math.isfinite(x) else None

    return {"step": int(step), "epoch": number(epoch), "value": number(value), "low": number(low),
            "high": number(high), "trusted": bool(trusted), "reason": reason}


# --------------------------------------------------------------------------------------------
# evaluation samples


def _host_array(values) -> np.ndarray:
    """A torch tensor (on any device) or array-like as a numpy array."""
    if hasattr(values, "detach"):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _labels(split: str, labels, n_inputs: int) -> np.ndarray:
    y = _host_array(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise RecorderError(f"{split} labels: expected integers of shape (N,), got {y.dtype} of shape {y.shape}")
    if len(y) != n_inputs:
        raise RecorderError(f"{split}: {len(y)} labels for {n_inputs} inputs")
    return y.astype(np.int64)


class _SampleArrays:
    """Samples given as a pair (inputs, labels): put on the model's device once, sliced into batches."""

    def __init__(self, split: str, inputs, labels, batch_size: int):
        self.inputs, self.batch_size = inputs, batch_size
        self.labels = _labels(split, labels, len(inputs))
        self.on_device = None  # (device, inputs, labels) as tensors

    def host_inputs(self) -> np.ndarray:
        return _host_array(self.inputs)

    def batches(self, device):
        import torch

        if self.on_device is None or self.on_device[0] != device:
            inputs = self.inputs.detach() if hasattr(self.inputs, "detach") else torch.from_numpy(
                np.ascontiguousarray(self.inputs))
            self.on_device = (device, inputs.to(device), torch.from_numpy(self.labels).to(device))
        _, x, y = self.on_device
        for start in range(0, len(self.labels), self.batch_size):
            yield x[start:start + self.batch_size], y[start:start + self.batch_size]


class _SampleBatches:
    """Samples given as a re-iterable of (inputs, labels) batches in a fixed order (e.g. a DataLoader
    with shuffle=False): read once here for the labels, streamed to the device at each checkpoint."""

    def __init__(self, split: str, source):
        if iter(source) is source:
            raise RecorderError(f"{split}: {type(source).__name__} is an iterator, read only once; pass a "
                                "re-iterable of batches (a list, a DataLoader with shuffle=False)")
        self.split, self.source = split, source
        labels = [_labels(f"{split} batch {i}", y, len(x)) for i, (x, y) in self._pairs()]
        self.labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)

    def _pairs(self):
        for i, batch in enumerate(self.source):
            if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                raise RecorderError(f"{self.split}: batch {i} is a {type(batch).__name__}, not a pair "
                                    "(inputs, labels)")
            yield i, batch

    def host_inputs(self) -> np.ndarray:
        """All inputs in one array (another pass over the batches: they are not kept in memory)."""
        return np.concatenate([_host_array(x) for _, (x, _) in self._pairs()])

    def batches(self, device):
        import torch

        seen = []
        for _, (x, y) in self._pairs():
            y = torch.as_tensor(y).to(device).long()
            seen.append(y)
            yield torch.as_tensor(x).to(device), y
        # the labels were read at construction; other labels now mean the order is not fixed
        if not (seen and np.array_equal(torch.cat(seen).cpu().numpy(), self.labels)):
            raise RecorderError(f"{self.split}: the batches hold other labels, or in another order, than when the "
                                "Recorder was built; evaluation samples need a fixed order (shuffle=False)")


def _samples(split: str, source, batch_size: int):
    # a list of two batches is a list of pairs; a pair's inputs are one array
    if isinstance(source, (tuple, list)) and len(source) == 2 and hasattr(source[0], "shape"):
        samples = _SampleArrays(split, *source, batch_size)
    elif isinstance(source, Iterable):
        samples = _SampleBatches(split, source)
    else:
        raise RecorderError(f"{split}: a {type(source).__name__}; expected a pair (inputs, labels) or a "
                            "re-iterable of (inputs, labels) batches")
    if not len(samples.labels):
        raise RecorderError(f"{split}: no samples")
    return samples


class _DatasetPreparation:
    """What our training feeds its models from a data set's stored samples (uint8 images ->
    normalised float), with the normalisation constants on each batch's device."""

    def __init__(self, dataset):
        self.dataset, self.constants = dataset, {}

    def __call__(self, x):
        if x.device not in self.constants:
            self.constants[x.device] = normalisation(self.dataset, x.device)
        return prepare_inputs(x, self.dataset.is_image, *self.constants[x.device])


def _unchanged(x):
    return x


# --------------------------------------------------------------------------------------------
# checking the arguments


def _schedule(steps, total_steps) -> tuple[int, ...]:
    steps = list(steps)
    if not steps:
        raise RecorderError("steps: the schedule is empty")
    for step in steps:
        if not isinstance(step, numbers.Integral):
            raise RecorderError(f"steps: {step!r} is not an integer step")
    steps = [int(s) for s in steps]
    if steps[0] < 0:
        raise RecorderError(f"steps: {steps[0]} is negative")
    for before, after in zip(steps, steps[1:]):
        if after <= before:
            raise RecorderError(f"steps: {after} follows {before}; the steps must increase (sorted, no duplicates)")
    if total_steps is not None and steps[-1] > total_steps:
        raise RecorderError(f"steps: {steps[-1]} is beyond total_steps {total_steps}")
    return tuple(steps)


def _positive(name: str, value, optional: bool = False):
    if optional and value is None:
        return None
    if not isinstance(value, numbers.Integral) or value < 1:
        raise RecorderError(f"{name}: {value!r}; expected an integer >= 1")
    return int(value)


def _config_json(config) -> str:
    def refuse(value):
        text = " ".join(repr(value).split())
        raise RecorderError(f"config: {text[:80]} (a {type(value).__name__}) is not JSON-serialisable")

    try:
        return json.dumps(config, sort_keys=True, default=refuse)
    except RecorderError:
        raise
    except (TypeError, ValueError) as exc:  # e.g. keys that are not strings, a circular reference
        raise RecorderError(f"config is not JSON-serialisable ({exc})") from None


def _as_atlas(atlas):
    """An Atlas, loaded when given as the path of a study's results folder."""
    if isinstance(atlas, (str, os.PathLike)):
        from .atlas import Atlas

        return Atlas.load(atlas)
    if not all(hasattr(atlas, name) for name in ("fingerprint", "dataset", "checkpoint_row")):
        raise RecorderError(f"atlas: expected an inpca.atlas.Atlas or the path of a finished study's results folder, "
                            f"got {' '.join(repr(atlas).split())[:60]} ({type(atlas).__name__})")
    return atlas


def _device_of(model):
    import torch

    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


# --------------------------------------------------------------------------------------------
# the recorder


class Recorder:
    """Record a network's predictions at the checkpoint steps of one's own training into a run file.

    The run file is the pipeline's own format (:mod:`inpca.runfile`), so a study imports it beside its
    grid's runs (config key ``imports``). Each checkpoint is evaluated exactly as the pipeline's
    training evaluates (eval mode, no grad, softmax of float32 logits, the samples in a fixed order)
    and written at once to ``<path>.partial/``; :meth:`close` (or the end of a ``with`` block without
    an exception) assembles the run file atomically. See the module docstring for crash safety and
    resume.

    Parameters
    ----------
    path : str or Path
        The run file to write. If it exists, the recording is finished: nothing is due and
        :meth:`close` leaves it as it is (delete it to record again).
    train, test : (inputs, labels) or re-iterable of (inputs, labels) batches
        The evaluation samples of each split, in a fixed order: a pair of torch tensors or numpy arrays
        (put on the model's device once, evaluated in batches of `eval_batch_size`), or e.g. a
        DataLoader with ``shuffle=False`` (streamed in its own batches at each checkpoint).
    config : dict
        Free-form and JSON-serialisable: what the map colours and groups runs by (e.g. ``{"arch":
        "resnet18", "optimizer": {"name": "sgd", "lr": 0.1}, "seed": 0}``).
    steps : sequence of int
        The checkpoint steps, strictly increasing (:func:`paper_steps`, :func:`log_steps`).
    steps_per_epoch : int, optional
        Gives each checkpoint's epoch when :meth:`record` is called without one (else NaN).
    total_steps : int, optional
        If given, no step of `steps` may exceed it.
    num_classes : int, optional
        The logits' width; default the largest label + 1.
    prepare : callable, optional
        Applied to each input batch on the device before the model.
    eval_batch_size : int, default 2048
    dtype : {"float32", "float16"}, default "float32"
        Probabilities on disk.
    fingerprint : str, optional
        The data's identity (:attr:`inpca.data.Dataset.fingerprint`); by default computed from
        `dataset_name`, the inputs, labels and `num_classes` as :func:`inpca.data.fingerprint_of` does
        (for a re-iterable, one more pass over its batches, all inputs in memory for a moment).
    dataset_name : str, default "recorded"
    run_id : str, optional
        Default: the file's stem.
    atlas : inpca.atlas.Atlas, or str or Path, optional
        A finished study (or its results folder) to place every checkpoint in as it is recorded:
        one row per checkpoint in ``<path>.atlas.tsv`` and one log line (see :meth:`for_atlas`, which
        also records on the atlas' samples, as placing requires).
    atlas_split : {"train", "test"}, default "train"
        The split the run is followed and forecast on.
    atlas_k : int, default 5
        How many reference trajectories a forecast uses.
    trial : optuna.trial.Trial, optional
        An Optuna trial to give each checkpoint's forecast to (with `atlas`): the latest is kept in
        ``trial.user_attrs["inpca_forecast"]`` (step, epoch, value, low, high, trusted, reason), where
        :class:`inpca.atlas.AtlasPruner` reads it. With a trial, an atlas of other data than the
        recording is one warning and the run is recorded without it (the study goes on).

    Attributes
    ----------
    finished : bool
        True once the run file exists.
    recorded_steps : list of int
        The steps recorded so far (resumed ones included).
    diverged_at_step : int
        The step whose predictions were not finite, or -1.
    fingerprint : str
        The identity of the data the checkpoints are recorded on.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np, torch
    >>> from inpca.record import Recorder
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.standard_normal((60, 5)).astype(np.float32), rng.integers(0, 3, 60)
    >>> model = torch.nn.Linear(5, 3)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    >>> path = os.path.join(tempfile.mkdtemp(), "linear.h5")
    >>> with Recorder(path, train=(x[:40], y[:40]), test=(x[40:], y[40:]), config={"arch": "linear"},
    ...               steps=[0, 1, 3, 10], steps_per_epoch=1) as rec:
    ...     for step in range(11):
    ...         if rec.due(step):
    ...             rec.record(model, step=step)
    ...         loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x[:40])), torch.from_numpy(y[:40]))
    ...         optimizer.zero_grad(); loss.backward(); optimizer.step()
    >>> rec.finished, rec.recorded_steps
    (True, [0, 1, 3, 10])
    """

    def __init__(self, path, *, train, test, config, steps, steps_per_epoch=None, total_steps=None,
                 num_classes=None, prepare=None, eval_batch_size: int = 2048, dtype: str = "float32",
                 fingerprint: str | None = None, dataset_name: str = "recorded", run_id: str | None = None,
                 atlas=None, atlas_split: str = "train", atlas_k: int = 5, trial=None):
        self.path = Path(path)
        self.run_id = run_id if run_id is not None else self.path.stem
        self.dataset_name = dataset_name
        self.config_json = _config_json(config)
        self.steps = _schedule(steps, total_steps)
        self.scheduled = frozenset(self.steps)
        self.steps_per_epoch = _positive("steps_per_epoch", steps_per_epoch, optional=True)
        if dtype not in DTYPES:
            raise RecorderError(f"dtype: {dtype!r}; expected one of {', '.join(DTYPES)}")
        self.dtype = DTYPES[dtype]
        if prepare is not None and not callable(prepare):
            raise RecorderError(f"prepare: a {type(prepare).__name__}, not a callable")
        self.prepare = prepare or _unchanged
        batch_size = _positive("eval_batch_size", eval_batch_size)
        self.samples = {split: _samples(split, source, batch_size)
                        for split, source in (("train", train), ("test", test))}
        self.num_classes = self._num_classes(num_classes)
        self.fingerprint = fingerprint if fingerprint is not None else fingerprint_of(
            dataset_name, self.samples["train"].host_inputs(), self.samples["train"].labels,
            self.samples["test"].host_inputs(), self.samples["test"].labels, self.num_classes)
        # what the checkpoints on disk must share with this recording to be part of it
        self.identity = {"config": self.config_json, "steps": json.dumps(self.steps),
                         "fingerprint": self.fingerprint, "num_classes": self.num_classes}
        # the checkpoints on disk: the lock taken (one Recorder per run file, held until close), then a
        # finished run file checked, or a killed recording's folder taken up
        self.recording = RecordingFolder(self.path, self.identity)
        self.folder = self.recording.folder
        try:
            self.atlas = self.live = None
            self.trial, self._latest_forecast = trial, None
            if atlas is not None:
                try:
                    self._use_atlas(atlas, atlas_split, atlas_k)
                except RecorderError as error:
                    if trial is None or "other data" not in str(error):
                        raise
                    # in a study, one trial's unusable atlas stops no search: recorded without it
                    log.warning("trial %s: %s; recording without the atlas (no forecast for the pruner)",
                                getattr(trial, "number", "?"), error)
            elif trial is not None:
                log.warning("trial %s: a Recorder given a trial but no atlas forecasts nothing; record with "
                            "Recorder.for_atlas(path, atlas, ..., trial=trial)", getattr(trial, "number", "?"))
        except BaseException:
            self.recording.lock.release()
            raise

    @classmethod
    def for_dataset(cls, path, dataset, *, config, steps, **kwargs) -> Recorder:
        """A Recorder on an :class:`inpca.data.Dataset` (e.g. :func:`inpca.data.load_study_dataset`):
        its samples, prepared as our training prepares them, and its fingerprint, name and class
        count, so the recorded run shares a study with the runs the pipeline trains on it."""
        return cls(path, train=(dataset.x_train, dataset.y_train), test=(dataset.x_test, dataset.y_test),
                   config=config, steps=steps, prepare=_DatasetPreparation(dataset), fingerprint=dataset.fingerprint,
                   dataset_name=dataset.name, num_classes=dataset.num_classes, **kwargs)

    def _num_classes(self, num_classes) -> int:
        largest = max(int(s.labels.max()) for s in self.samples.values())
        num_classes = largest + 1 if num_classes is None else _positive("num_classes", num_classes)
        for split, samples in self.samples.items():
            outside = samples.labels[(samples.labels < 0) | (samples.labels >= num_classes)]
            if len(outside):
                raise RecorderError(f"{split} labels: {outside[0]} is outside [0, {num_classes}) "
                                    f"(num_classes {num_classes})")
        return num_classes

    # ---- state

    @property
    def finished(self) -> bool:
        """True once the run file exists (written by close, or found at construction)."""
        return self.recording.finished

    @property
    def diverged_at_step(self) -> int:
        """The step whose predictions were not finite, or -1."""
        return self.recording.diverged_at

    @property
    def parameters(self) -> int | None:
        """The network's parameter count, once a checkpoint is recorded (or resumed)."""
        return self.recording.parameters

    @property
    def latest_forecast(self) -> dict | None:
        """The forecast of the final test error at the latest checkpoint placed in the atlas this session
        ({step, epoch, value, low, high, trusted, reason}; None before any, or without an atlas)."""
        return self._latest_forecast

    @property
    def recorded_steps(self) -> list[int]:
        """The steps recorded so far (in the folder), resumed ones included."""
        return sorted(self.recording.recorded)

    def due(self, step) -> bool:
        """Whether `step` is a checkpoint still to record (False once finished or diverged)."""
        return (not self.recording.finished and self.recording.diverged_at < 0 and step in self.scheduled
                and int(step) not in self.recording.recorded)

    # ---- recording

    def record(self, model, *, step, epoch=None) -> None:
        """Evaluate `model` at `step` (a due checkpoint) and write the checkpoint to the folder.

        Non-finite predictions mean the run diverged: nothing is written, and nothing more is due.
        `epoch` defaults to step / steps_per_epoch.
        """
        import torch

        step = self._due_step(step)
        device = _device_of(model)

        def logits_of(x):
            logits = model(x)
            shape = tuple(getattr(logits, "shape", ()))
            if len(shape) != 2 or shape[1] != self.num_classes:
                raise RecorderError(f"the model's output has shape {shape} ({type(logits).__name__}); "
                                    f"expected logits (batch, {self.num_classes}) for num_classes {self.num_classes}")
            return logits

        modes = [(module, module.training) for module in model.modules()]
        model.eval()
        try:
            with torch.no_grad():
                result = {split: evaluate_batches(logits_of, samples.batches(device), self.prepare)
                          for split, samples in self.samples.items()}
        finally:
            for module, training in modes:  # each module's own mode: a model may mix them
                module.training = training
        parameters = self.recording.parameters
        if parameters is None:
            from .models import count_parameters

            parameters = count_parameters(model)
        if not all(np.isfinite(result[split][0]).all() for split in SPLITS):
            self._diverge(step)
            return
        epoch = float(epoch) if epoch is not None else (step / self.steps_per_epoch if self.steps_per_epoch
                                                        else math.nan)
        metrics = {}
        for split in SPLITS:
            _, metrics[f"{split}_loss"], metrics[f"{split}_error"] = result[split]

        self.recording.write_checkpoint(step, epoch, {split: result[split][0] for split in SPLITS}, metrics, parameters)
        log.info("epoch %6.2f step %6d  train loss %.4f err %.4f  test loss %.4f err %.4f", epoch, step,
                 metrics["train_loss"], metrics["train_error"], metrics["test_loss"], metrics["test_error"])
        if self.atlas is not None:
            self._place_in_atlas(step, epoch, {split: result[split][0] for split in SPLITS}, metrics["train_error"])

    def _due_step(self, step) -> int:
        """`step` as an int if it is due; else a RecorderError that says why not."""
        if not isinstance(step, numbers.Integral) or step not in self.scheduled:
            raise RecorderError(f"step {step!r} is not in the schedule ({len(self.steps)} steps from "
                                f"{self.steps[0]} to {self.steps[-1]})")
        step = int(step)
        if self.recording.finished:
            raise RecorderError(f"step {step}: {self.path} exists, the recording is finished; delete it to record "
                                "again")
        if self.recording.diverged_at >= 0:
            raise RecorderError(f"step {step}: the run diverged at step {self.recording.diverged_at}; nothing more "
                                "is recorded")
        if step in self.recording.recorded:
            raise RecorderError(f"step {step} is already recorded (in {self.folder}); ask due(step) first")
        return step

    def _diverge(self, step: int) -> None:
        if not self.recording.recorded:  # as our training refuses it: a run without a checkpoint has nothing to map
            raise RecorderError(f"step {step}: the network predicts NaN/Inf at its first checkpoint; nothing to "
                                "record")
        self.recording.write_divergence(step)
        log.warning("%s: the run diverged (non-finite predictions) at step %d; the run file keeps the %d "
                    "checkpoints before it", self.run_id, step, len(self.recording.recorded))

    # ---- the atlas: every checkpoint placed as it is recorded

    @classmethod
    def for_atlas(cls, path, atlas, *, config, steps, **kwargs) -> Recorder:
        """A Recorder on the samples of an atlas (:meth:`inpca.atlas.Atlas.dataset`: its data set and order,
        ``keep_every`` included) that places every checkpoint in the atlas as it is recorded."""
        atlas = _as_atlas(atlas)
        return cls.for_dataset(path, atlas.dataset(), config=config, steps=steps, atlas=atlas, **kwargs)

    @property
    def atlas_table(self) -> Path:
        """``<run file>.atlas.tsv``: one row per checkpoint placed in the atlas (see :meth:`_place_in_atlas`)."""
        return self.path.with_name(self.path.name + ".atlas.tsv")

    def _use_atlas(self, atlas, split: str, k: int) -> None:
        from .atlas.live import LiveTable

        atlas = _as_atlas(atlas)
        if self.fingerprint != atlas.fingerprint:
            raise RecorderError(f"{self.path}: records on other data than the atlas {atlas.path} (fingerprints "
                                f"{self.fingerprint} and {atlas.fingerprint}, {atlas.dataset_name}); record on the "
                                "atlas' samples: Recorder.for_atlas(path, atlas, ...)")
        if split not in atlas.splits:
            raise RecorderError(f"atlas_split: {split!r}; the atlas {atlas.path} embedded {', '.join(atlas.splits)}")
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
            raise RecorderError(f"atlas_k: {k!r}; expected an integer >= 1")
        self.atlas = atlas
        # the table takes up what is recorded so far: every checkpoint without a row (a recording killed
        # between writing a checkpoint and its row) is placed now, so the table lists the run's steps
        total_epochs = self.steps[-1] / self.steps_per_epoch if self.steps_per_epoch else None
        self.live = LiveTable(atlas, self.atlas_table, split, int(k), total_epochs)
        self.live.resume(self.recording.checkpoints())

    def _place_in_atlas(self, step: int, epoch: float, probs: dict, train_error: float) -> None:
        """Place the checkpoint just recorded (both splits), follow the run so far at equal progress,
        forecast its end; append a row to `atlas_table` (rewritten atomically) and log one line."""
        row, forecast = self.live.add(step, epoch, probs, train_error)
        self._latest_forecast = forecast_attr(forecast, step=step, epoch=epoch)
        if self.trial is not None:
            self.trial.set_user_attr(FORECAST_ATTR, self._latest_forecast)
        log.info("atlas: step %d, progress %.3f, nearest %s; %s", step, row[f"{self.live.split}_progress"],
                 forecast.nearest_configuration or "-", forecast.line())

    # ---- the run file, assembled when the recording ends

    def close(self) -> None:
        """Assemble the run file from the recorded checkpoints (atomically) and remove the folder.

        A finished recording is left as it is; with no checkpoint recorded nothing is written.
        """
        attrs = {
            "run_id": self.run_id, "config": self.config_json, "dataset": self.dataset_name,
            "fingerprint": self.fingerprint, "num_classes": self.num_classes,
            "n_train": len(self.samples["train"].labels), "n_test": len(self.samples["test"].labels),
            "steps_per_epoch": self.steps_per_epoch or 0, "diverged_at_step": self.recording.diverged_at,
            "parameters": self.recording.parameters, "inpca_version": __version__,
        }
        self.recording.assemble(attrs, {split: self.samples[split].labels for split in SPLITS}, self.dtype,
                                len(self.steps))

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        # an exception is a training that did not finish: the folder stays for a resume
        if exc_type is None:
            self.close()
        else:
            self.recording.lock.release()
