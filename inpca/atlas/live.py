"""A run's atlas table, checkpoint by checkpoint: the live recorder's ``<run file>.atlas.tsv`` and
:meth:`inpca.atlas.Atlas.trace`.

:class:`LiveTable` owns what placing a run as it goes needs: the run's checkpoints so far (the history
the atlas follows at equal progress) and one row per checkpoint (:meth:`Atlas.checkpoint_row`). With a
path, the table is rewritten atomically after every checkpoint, so a killed training leaves a table
whose rows are a prefix of its checkpoints; :meth:`LiveTable.resume` then places every recorded
checkpoint that has no row yet, so the table and the run file always list the same steps.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from ..files import read_table, write_table

log = logging.getLogger("inpca.atlas")


class LiveTable:
    """The atlas table of one run, placed checkpoint by checkpoint.

    Parameters
    ----------
    atlas : inpca.atlas.Atlas
    path : str or Path, optional
        Where the table is written (TSV, atomically) after every checkpoint; None keeps it in memory.
    split : {"train", "test"}
        The split the run is followed and forecast on.
    k : int
        How many reference trajectories a forecast uses.

    Attributes
    ----------
    rows : list of dict
        One row per checkpoint, in step order (see :meth:`Atlas.checkpoint_row`).
    steps : list of int
        The steps placed so far.
    """

    def __init__(self, atlas, path=None, split: str = "train", k: int = 5, total_epochs: float | None = None):
        self.atlas, self.split, self.k, self.total_epochs = atlas, split, k, total_epochs
        self.path = Path(path) if path is not None else None
        self.rows: list[dict] = []
        self._probs: dict[str, list] = {s: [] for s in atlas.splits}
        self._train_error: list[float] = []
        self._test_error: list[float] = []
        self._epoch: list[float] = []
        self._progress: list[float] = []

    @property
    def steps(self) -> list[int]:
        return [int(row["step"]) for row in self.rows]

    def history(self) -> dict:
        """The run so far as :meth:`Atlas.checkpoint_row` takes it (copies of the lists: the caller may
        keep it)."""
        return {**{s: list(p) for s, p in self._probs.items()}, "train_error": list(self._train_error),
                "test_error": list(self._test_error),
                "epoch": list(self._epoch), f"progress_{self.split}": list(self._progress)}

    def _remember(self, probs: dict, train_error: float, test_error: float, epoch: float, progress: float) -> None:
        for s in self._probs:
            self._probs[s].append(np.asarray(probs[s], dtype=np.float32))
        self._train_error.append(float(train_error))
        self._test_error.append(test_error)
        self._epoch.append(float(epoch))
        self._progress.append(float(progress))

    def _test_error_of(self, probs: dict) -> float:
        if "test" not in probs:
            return float("nan")
        return self.atlas.test_error(probs["test"])

    def add(self, step: int, epoch: float, probs: dict, train_error: float, write: bool = True):
        """Place the checkpoint `step` (probs {split: (N, C)}, every split of the atlas) after those
        placed so far: follow the run up to it, forecast its end, append its row (and write the table).
        Returns (row, forecast)."""
        if self.rows and int(step) <= self.rows[-1]["step"]:
            raise ValueError(f"step {step}: the table already reaches step {self.rows[-1]['step']}; steps increase")
        started = time.perf_counter()
        history = self.history()
        for s in self._probs:
            history[s].append(probs[s])
        test_error = self._test_error_of(probs)
        history["train_error"].append(float(train_error))
        history["test_error"].append(test_error)
        history["epoch"].append(float(epoch))
        row, forecast = self.atlas.checkpoint_row({s: probs[s] for s in self._probs}, history, self.split, self.k,
                                                  step=step, epoch=epoch, total_epochs=self.total_epochs)
        self._remember(probs, train_error, test_error, epoch, row[f"{self.split}_progress"])
        if self.path is not None:
            row["place_seconds"] = time.perf_counter() - started
        self.rows.append(row)
        if write:
            self.write()
        return row, forecast

    def resume(self, checkpoints) -> int:
        """Take up a run recorded so far: `checkpoints` are its checkpoints in step order, each a dict
        (step, epoch, train_error, probs {split: (N, C)}). The table's rows of these steps are kept
        (rows of steps not among them are dropped: their checkpoint was never written), and every
        checkpoint without a row is placed now, with the run up to it. Returns how many were placed."""
        kept = {}
        if self.path is not None and self.path.exists():
            kept = {int(row["step"]): row for row in read_table(self.path).to_dict("records")}
        placed = 0
        for checkpoint in checkpoints:
            step = int(checkpoint["step"])
            if step in kept:
                row = kept.pop(step)
                progress = self.atlas.progress(checkpoint["probs"][self.split], self.split)
                self._remember(checkpoint["probs"], checkpoint["train_error"], self._test_error_of(checkpoint["probs"]),
                               checkpoint["epoch"], progress)
                self.rows.append(row)
            else:
                self.add(step, checkpoint["epoch"], checkpoint["probs"], checkpoint["train_error"], write=False)
                placed += 1
        if self.path is not None and (placed or kept):
            self.write()
        if placed:
            log.info("%s: placed %d recorded checkpoint(s) that had no row (a recording killed between writing a "
                     "checkpoint and its row)", self.path, placed)
        return placed

    def table(self):
        import pandas as pd

        return pd.DataFrame(self.rows)

    def write(self) -> None:
        write_table(self.table(), self.path)
