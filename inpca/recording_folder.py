"""A recording on disk, resumable after kill -9 (:class:`inpca.record.Recorder`'s state).

``<run file>.partial/`` holds one HDF5 file per checkpoint, written atomically and named by its step,
and ``diverged.h5`` once the run diverges. Each carries the recording's identity (config, steps, data
fingerprint, classes), so a new Recorder on the same path takes only the checkpoints of the same
recording and refuses, in one line, those of another. :meth:`RecordingFolder.assemble` writes the run
file atomically from the checkpoints and removes the folder. ``<run file>.lock`` (:class:`RunLock`)
keeps one Recorder per run file.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .config import SPLITS
from .errors import RecorderError
from .files import open_h5, write_h5
from .runfile import METRICS, read_checkpoints, write_run

log = logging.getLogger("inpca.record")

PARTIAL_SUFFIX = ".partial"
DIVERGED_FILE = "diverged.h5"


class RunLock:
    """An exclusive lock on ``<run file>.lock`` (flock: the system drops it when the process dies, so a
    killed recording never leaves a stale lock; on NFS it needs the server's locking). A second
    Recorder on the same run file, in this process or another, is refused in one line. Where the
    system has no flock (Windows), nothing is locked."""

    def __init__(self, path: Path):
        self.path = path.with_name(path.name + ".lock")
        self.handle = None
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            if holder == self._owner():
                raise RecorderError(f"{path}: another Recorder of this process is recording this run and is not "
                                    "closed; close it (rec.close(), or leave its with block) or record to another "
                                    "path") from None
            raise RecorderError(f"{path}: another Recorder is recording this run ({holder} holds {self.path}); "
                                "record to another path, or wait until that one is closed") from None
        handle.seek(0)
        handle.truncate()
        handle.write(self._owner() + "\n")
        handle.flush()
        self.handle = handle

    @staticmethod
    def _owner() -> str:
        return f"pid {os.getpid()} on {socket.gethostname()}"

    def release(self, remove: bool = False) -> None:
        if self.handle is None:
            return
        if remove:  # before the unlock: whoever locks the file next finds the run file finished
            self.path.unlink(missing_ok=True)
        self.handle.close()  # closing the file drops the flock
        self.handle = None


class RecordingFolder:
    """The checkpoints of one recording: the finished run file at `path`, or the folder beside it.

    Built on a path, it takes the lock, then finds the recording finished (the run file exists: it must
    be of the same config and data), resumed (the folder's checkpoints and divergence, checked against
    `identity`) or new. ``recorded``, ``diverged_at`` and ``parameters`` say what is on disk.
    """

    def __init__(self, path: Path, identity: dict):
        self.path = Path(path)
        self.folder = self.path.with_name(self.path.name + PARTIAL_SUFFIX)
        self.identity = identity
        self.recorded: set[int] = set()
        self.diverged_at = -1
        self.parameters: int | None = None
        # taken before looking at the file: a second Recorder would overwrite the first one's checkpoints
        self.lock = RunLock(self.path)
        self.finished = self.path.exists()
        try:
            if self.finished:
                self.lock.release()
                self._check_finished_file()
                log.warning("%s exists: the recording is finished and nothing will be recorded (delete it to record "
                            "again)", self.path)
            elif self.folder.exists():
                self._load()
        except BaseException:
            self.lock.release()
            raise

    def _check_finished_file(self) -> None:
        with open_h5(self.path) as f:
            attrs = dict(f.attrs)
        for key in ("config", "fingerprint"):
            if attrs.get(key) != self.identity[key]:
                raise RecorderError(f"{self.path}: a finished recording with another {key}; delete it to record "
                                    "again, or record to another path")

    def checkpoint_files(self) -> list[Path]:
        """The checkpoint files in the folder, by step."""
        if not self.folder.exists():
            return []
        return sorted((p for p in self.folder.glob("*.h5") if p.stem.isdigit()), key=lambda p: int(p.stem))

    def _load(self) -> None:
        """Take the checkpoints (and the divergence) a killed recording left in the folder."""
        for path in [*self.checkpoint_files(), self.folder / DIVERGED_FILE]:
            if not path.exists():
                continue
            with open_h5(path) as f:
                attrs = dict(f.attrs)
            for key, value in self.identity.items():
                if attrs.get(key) != value:
                    shown = "" if key in ("config", "steps") else f" ({attrs.get(key)} vs {value})"
                    raise RecorderError(f"{self.folder}: checkpoints of a recording with another {key}{shown}; "
                                        "delete the folder to record anew, or record with the same config, "
                                        "steps and data")
            if path.name == DIVERGED_FILE:
                self.diverged_at = int(attrs["diverged_at_step"])
            else:
                self.recorded.add(int(path.stem))  # the file of step s is named s
                self.parameters = int(attrs["parameters"])
        log.info("%s: resuming with %d checkpoints recorded%s", self.folder, len(self.recorded),
                 f", diverged at step {self.diverged_at}" if self.diverged_at >= 0 else "")

    def write_checkpoint(self, step: int, epoch: float, probs: dict, metrics: dict, parameters: int) -> None:
        """One checkpoint, written as a run file is (the same writer), with the recording's identity."""
        write_run(self.folder / f"{step:012d}.h5", {split: probs[split][None] for split in SPLITS}, [step], [epoch],
                  {m: [value] for m, value in metrics.items()}, {**self.identity, "parameters": parameters})
        self.recorded.add(step)
        self.parameters = parameters

    def write_divergence(self, step: int) -> None:
        """The run diverged at `step`: kept on disk, so that a resume records nothing more."""
        self.diverged_at = step
        write_h5(self.folder / DIVERGED_FILE, lambda f: f.attrs.update({**self.identity, "diverged_at_step": step}))

    def checkpoints(self) -> Iterator[dict]:
        """The checkpoints recorded so far (the finished run file's, or the folder's), in step order:
        {step, epoch, train_error, probs: {split: (N, C)}}."""
        if self.finished:
            run = read_checkpoints(self.path)
            for i, step in enumerate(run["step"]):
                yield {"step": int(step), "epoch": float(run["epoch"][i]), "train_error": float(run["train_error"][i]),
                       "probs": {split: run[f"{split}_probs"][i] for split in SPLITS}}
            return
        for path in self.checkpoint_files():
            checkpoint = read_checkpoints(path)
            yield {"step": int(checkpoint["step"][0]), "epoch": float(checkpoint["epoch"][0]),
                   "train_error": float(checkpoint["train_error"][0]),
                   "probs": {split: checkpoint[f"{split}_probs"][0] for split in SPLITS}}

    def assemble(self, attrs: dict, labels: dict, dtype, scheduled: int) -> None:
        """Write the run file from the checkpoints (atomically) with `attrs` and the `labels` of each split,
        probabilities as `dtype`; remove the folder; release the lock. `scheduled`: how many checkpoints
        the schedule has (fewer, and no divergence, is a warning).

        A finished recording is left as it is (a folder left beside it by a kill between the two is
        removed); with no checkpoint recorded nothing is written.
        """
        if self.finished:
            if self.folder.exists():
                shutil.rmtree(self.folder)
            return
        files = self.checkpoint_files()
        if not files:
            log.warning("%s: no checkpoint recorded; no run file written", self.path)
            self.lock.release()
            return
        checkpoints = [{key: values[0] for key, values in read_checkpoints(path).items() if key != "attrs"}
                       for path in files]
        if len(checkpoints) < scheduled and self.diverged_at < 0:
            log.warning("%s: %d of the %d scheduled checkpoints recorded", self.path, len(checkpoints), scheduled)
        probs = {split: np.stack([c[f"{split}_probs"] for c in checkpoints]).astype(dtype) for split in SPLITS}
        write_run(self.path, probs, [c["step"] for c in checkpoints], [c["epoch"] for c in checkpoints],
                  {m: [c[m] for c in checkpoints] for m in METRICS}, attrs, labels)
        shutil.rmtree(self.folder)
        self.finished = True
        self.lock.release(remove=True)  # the run file is whole: a later Recorder finds it finished
        log.info("wrote %s: %d checkpoints", self.path, len(checkpoints))
