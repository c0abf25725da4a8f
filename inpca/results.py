"""A finished study, loaded for one's own analysis in one line::

    import inpca.results
    study = inpca.results.load("results")
    study.index                       # one row per point (pandas): run, config fields, epoch, errors, progress
    study.runs                        # one row per run of the grid
    study.trajectories                # one row per reindexed trajectory, in equal-progress matrix order
    study.embedding("train")          # dict of arrays: coords, eigenvalues, explained_stress, ...
    study.distances("train")          # the (M, M) point distances, lazily (from the tiles, or h5py)
    study.equal_progress("train")     # the (T, R, R) distances at equal progress, lazily (h5py)
    study.reindexed("train")[i]       # trajectory i at the T index values, (T, N, C) probabilities
    study.analysis("train", "factors")  # a table of results/analysis/train/
    study.atlas_placement(run)        # a run placed in the study's atlas, checkpoint by checkpoint

Tables are read when first asked for; HDF5 datasets stay on disk until sliced. `load` keeps the HDF5
files it opened until `close()` (or the end of a `with` block). Nothing here runs a stage: what a
study has not made yet is a one-line error naming the file and the target that makes it.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .errors import ResultsError
from .files import open_h5, read_table, text
from .folders import command_for_folder, study_command, study_config_files
from .tiles import TiledMatrix, study_tile_paths
from .trajectory_files import ReindexedBlock

__all__ = ["Results", "load"]


def load(path="results") -> "Results":
    """A finished (or partly finished) study, for one's own analysis.

    Parameters
    ----------
    path : str or Path
        The study's results folder (``results`` for ``config.yaml``, ``results-<config stem>`` for a
        ``--configfile``, or its ``results:`` key).

    Returns
    -------
    Results
        Tables as pandas DataFrames (``index``, ``runs``, ``trajectories``), matrices left on disk until
        sliced (``distances``, ``equal_progress``, ``embedding``), the reindexed trajectories computed
        from the store (``reindexed``), any analysis table (``analysis``) and a run's atlas placement
        (``atlas_placement``). A context manager: ``close()`` closes the files it opened.

    Raises
    ------
    ResultsError
        One line: the folder does not exist, or a product asked for is not made yet (naming the
        command that makes it).

    Examples
    --------
    >>> import inpca.results
    >>> study = inpca.results.load("results")                  # doctest: +SKIP
    >>> study.embedding("train")["coords"].shape               # doctest: +SKIP
    (1077, 10)
    >>> study.equal_progress("test").shape                     # doctest: +SKIP
    (50, 33, 33)
    """
    return Results(path)


class Reindexed:
    """The trajectories of one split at equal progress across every trajectory block, in matrix order:
    `len()` trajectories, `[i]` gives trajectory i as (T, N, C) float32 probabilities, computed from the
    store and the trajectory stage's plans (:class:`inpca.trajectory_files.ReindexedBlock`, the values
    the equal-progress distances are computed from), `.t` the index values, `.run` the ids."""

    def __init__(self, results: "Results", split: str):
        table = results.trajectories
        self._rows = list(zip(table["block"], table["row"]))
        self._results, self._split = results, split
        self.run = table["run"].tolist()
        self.t = self._block(self._rows[0][0]).t

    def _block(self, block: str):
        key = ("reindexed", self._split, block)
        if key not in self._results._open:
            path = self._results.path
            for needed, target in ((path / "store" / f"{block}.h5", "store"),
                                   (path / "trajectories" / f"{block}.h5", "trajectories")):
                if not needed.exists():
                    raise ResultsError(f"{needed}: not made yet; make it with: {study_command(path, target)}")
            self._results._open[key] = ReindexedBlock(path / "store" / f"{block}.h5", path / "trajectories" / f"{block}.h5",
                                                      path / "store" / "ref.h5", self._split)
        return self._results._open[key]

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> np.ndarray:
        block, row = self._rows[i]
        return self._block(block).trajectory(int(row))


class Results:
    """See the module docstring."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise ResultsError(f"{self.path}: no such folder; run its study first: {command_for_folder(self.path)}")
        self._open: dict[Path, object] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        for f in self._open.values():
            f.close()
        self._open.clear()

    def _h5(self, path: Path):
        if path not in self._open:
            self._open[path] = open_h5(path)
        return self._open[path]

    def _table(self, relative: str, target: str):
        path = self.path / relative
        if not path.exists():
            raise ResultsError(f"{path}: not made yet; make it with: {study_command(self.path, target)}")
        return read_table(path)

    @functools.cached_property
    def index(self):
        return self._table("store/index.tsv", "store")

    @functools.cached_property
    def runs(self):
        return self._table("runs.tsv", "store")

    @functools.cached_property
    def trajectories(self):
        return self._table("trajectories/index.tsv", "trajectories")

    def embedding(self, split: str) -> dict:
        f = self._h5(self.path / "embedding" / f"{split}.h5")
        out = {name: f[name][()] for name in f}
        for name in ("run", "kind"):
            out[name] = np.array(text(out[name]))
        return {**out, "attrs": dict(f.attrs)}

    def distances(self, split: str):
        """The (M, M) point distances: the assembled file if the `distances` target made one, else
        read from the tiles in place (both slice like an array)."""
        assembled = self.path / "distances" / f"{split}.h5"
        if assembled.exists():
            return self._h5(assembled)["D"]

        key = self.path / "distances" / split / "tiles"
        if key not in self._open:
            index = self.path / "store" / "index.tsv"
            if not index.exists():
                raise ResultsError(f"{index}: not made yet; make it with: {study_command(self.path, 'store')}")
            tiles = study_tile_paths(key, index)  # the study's own tiles: a stale one beside them is not read
            missing = [path for path in tiles.values() if not path.exists()]
            if missing:
                raise ResultsError(f"{missing[0]}: not made yet ({len(missing)} of the study's {len(tiles)} tiles "
                                   f"missing); make them with: {study_command(self.path, 'distances')}")
            self._open[key] = TiledMatrix(tiles, index)
        return self._open[key]

    def equal_progress(self, split: str):
        return self._h5(self.path / "analysis" / split / "equal_progress.h5")["D"]

    def reindexed(self, split: str) -> Reindexed:
        return Reindexed(self, split)

    def atlas_placement(self, run: str):
        """The placement of one of the study's runs in its atlas (config `atlas`), one row per checkpoint:
        step, epoch, coordinates in the atlas' map, progress, nearest configuration, the forecast of the
        run's final test error with its range (the table :meth:`inpca.atlas.Atlas.trace` writes)."""
        runs = self.runs["run"].tolist()
        if str(run) not in runs:
            shown = ", ".join(runs[:5]) + (f", ... ({len(runs)} in all)" if len(runs) > 5 else "")
            raise ResultsError(f"{self.path}: no run {run!r} in this study (runs: {shown}; {self.path / 'runs.tsv'})")
        if not self._has_atlas():
            raise ResultsError(f"{self.path}: this study has no atlas; add `atlas: {{path: <the results folder of a "
                               f"finished study>}}` to its config file, then make it with: "
                               f"{study_command(self.path, 'atlas')}")
        return self._table(f"atlas/{run}.atlas.tsv", "atlas")

    def _has_atlas(self) -> bool:
        """Whether the study's config files (named by its results folder's marker) have an `atlas` key;
        True when that cannot be told (no marker, a config file gone), so the remedy stays the target."""
        import yaml

        config_files = study_config_files(self.path)
        if (self.path / "atlas").is_dir() or config_files is None:
            return True
        for config_file in config_files:
            try:
                config = yaml.safe_load(config_file.read_text())
            except (OSError, yaml.YAMLError):
                return True
            if isinstance(config, dict) and config.get("atlas"):
                return True
        return False

    def analysis(self, split: str, name: str):
        return self._table(f"analysis/{split}/{name}.tsv", "analysis")
