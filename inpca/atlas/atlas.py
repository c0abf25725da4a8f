"""The atlas itself (see :mod:`inpca.atlas`): loading a finished study, placing checkpoints in it,
following a run at equal progress against its reference trajectories, forecasting the run's end."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..config import SPLITS, atlas_files, cached_schema, complete_section
from ..configurations import configuration_labels
from ..data import load_study_dataset
from ..distances import ReferencePoints, validate_probabilities
from ..errors import ResultsError
from ..files import open_h5, read_table, text, write_table
from ..folders import STUDY_MARKER, command_for_folder, study_command, study_config_files
from ..geodesic import distance_to_truth, progress_many
from ..runfile import read_run
from ..store import open_block
from ..trajectories import index_values, model_at, reindex_plan
from ..trajectory_files import ReindexedBlock
from .forecast import (FEATURES, FORECAST_VERSION, ForecastModel, TRAINING_CUTS, analogue_features, curve_features,
                       feature_row, out_of_fold_residuals)
from .live import LiveTable

log = logging.getLogger("inpca.atlas")

# Below this a distance is float32 rounding of identical predictions (a point's distance to itself is
# ~3e-8 in the kernels' float32 arithmetic): it is 0, as on the diagonal of the tiles.
SAME_POINT = 1e-6
# Distances of models at t_k already computed (follow), kept up to this many (a few KB each).
FOLLOW_MEMO = 20_000
# Reference probabilities and reference models at equal progress are kept in memory up to this size.
DEFAULT_MEMORY_GB = 2.0


def _digest(array: np.ndarray) -> bytes:
    """A short fingerprint of a checkpoint's probabilities (a key of the follow memo)."""
    return hashlib.blake2b(np.ascontiguousarray(array).tobytes(), digest_size=16).digest()


def _chunk_samples(folder: Path) -> int:
    """The study's distance.chunk_samples, read from its config files (the last that sets it), so the
    atlas computes distances in the chunks of its tiles (distances computed in the study's own chunks are
    its tiles' to the last bit, so an atlas point lands on its own coordinates); the schema's default
    when they cannot be read."""
    chunk = cached_schema()["properties"]["distance"]["properties"]["chunk_samples"]["default"]
    for config_file in study_config_files(folder) or []:
        try:
            config = yaml.safe_load(config_file.read_text())
        except (OSError, yaml.YAMLError):
            continue
        distance = config.get("distance") if isinstance(config, dict) else None
        if isinstance(distance, dict) and isinstance(distance.get("chunk_samples"), int):
            chunk = distance["chunk_samples"]
    return chunk


class AtlasError(ResultsError):
    """An atlas (a study folder) that cannot be used, or input an atlas refuses: one line."""


@dataclass
class Placement:
    """One checkpoint placed in the atlas (one split).

    coords : (k,) its coordinates in the atlas' axes (the map's out-of-sample projection)
    progress : its progress lambda along P0 -> P* (the atlas' progress mode)
    dist_truth : its distance to truth P*
    nearest : the nearest reference points (DataFrame: run, checkpoint, epoch, distance)
    """

    split: str
    coords: np.ndarray
    progress: float
    dist_truth: float
    nearest: pd.DataFrame


@dataclass
class Following:
    """A run so far against every reference trajectory of the atlas, at equal progress (one split).

    t : (K,) the grid values t_k the run has reached (empty below the first one)
    distances : (K, R) its distance at each reached t_k to each reference trajectory
    references : the reference trajectories (DataFrame: run, configuration, arch, ... and, after
        ranking, distance: the mean over the reached t_k), nearest first
    index_reached : the highest index value (progress or accuracy) the run has reached
    seed_spread : the atlas' seed-to-seed spread over the same t_k (the largest mean distance between
        two seeds of one configuration), the scale a forecast is trusted within
    distance_to_geodesic : its mean distance to the geodesic over the reached t_k
    epochs, test_error, train_error : (K,) the run's own curve so far (NaN where unknown)
    excluded : the reference runs left out (`follow`'s exclude); the forecast is fitted without them
    """

    split: str
    t: np.ndarray
    distances: np.ndarray
    references: pd.DataFrame
    index_reached: float
    seed_spread: float
    distance_to_geodesic: float = math.nan
    epochs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    test_error: np.ndarray = field(default_factory=lambda: np.zeros(0))
    train_error: np.ndarray = field(default_factory=lambda: np.zeros(0))
    excluded: frozenset = frozenset()

    def nearest_runs(self, n: int = 5) -> pd.DataFrame:
        return self.references.head(n)

    def nearest_configurations(self, n: int = 5) -> pd.DataFrame:
        """The configurations by the mean distance of their runs (seeds), nearest first."""
        table = self.references.groupby(["configuration", "arch"], sort=False, as_index=False)["distance"].mean()
        return table.sort_values("distance", kind="stable").head(n).reset_index(drop=True)


@dataclass
class Forecast:
    """Where a run will end.

    estimates : {target: (value, low, high)}. ``final_test_error``: the forecast from everything known
        at the cut (:mod:`inpca.atlas.forecast`: the run's own curve, where its trajectory is, and how
        its nearest reference trajectories went on from the same progress) with its 80 % range
        (split-conformal). ``final_test_error_neighbours`` and every other target (final train error
        and losses, final progress, epochs and steps to the atlas' speed levels): the distance-weighted
        mean of the k nearest reference trajectories' outcomes and their range (min, max); NaN where
        no neighbour got there
    neighbours : the k reference runs used, with their distance, weight and outcomes
    trusted : False when there is no forecast of the final test error; `reason` says why
    reason : why not trusted, or a note on the neighbours (below the atlas' first grid point, or
        farther than its seed-to-seed spread: the forecast then rests on the run's own curve)
    """

    split: str
    k: int
    t_reached: float
    estimates: dict
    neighbours: pd.DataFrame
    trusted: bool
    reason: str = ""
    nearest_configuration: str = ""
    levels: list = field(default_factory=list)

    def line(self) -> str:
        """The forecast in a few words, for a log line or a table cell."""
        value, low, high = self.estimates["final_test_error"]
        if not math.isfinite(value):
            return f"no forecast ({self.reason})"
        text_ = f"final test error {value:.3f} [{low:.3f}, {high:.3f}] (80 %)"
        if len(self.neighbours):
            text_ += f", {self.k} nearest like {self.nearest_configuration}"
        return f"{text_} ({self.reason})" if self.reason else text_


class Atlas:
    """A finished study as a reference map. Use :meth:`Atlas.load`; see :mod:`inpca.atlas`.

    Attributes
    ----------
    path : Path
        The study's folder.
    splits : list of str
        The splits the study embedded (placing takes probabilities on these).
    num_classes : int
    n_samples : dict
        Samples per split (after ``keep_every``).
    fingerprint, dataset_name : str
        The identity of the samples a network must be evaluated on.
    progress_mode, index : str
        How progress is measured and what trajectories are compared at (progress or accuracy).
    t : (T,) array
        The grid of index values t_k of the reference trajectories.
    method : {"exact", "landmarks"}
        The map's embedding; placing uses every point, or the landmarks.
    outcomes : DataFrame
        One row per reference run: configuration, architecture, final errors, losses, progress,
        epochs and steps to the speed levels, and every config field.

    Examples
    --------
    >>> from inpca.atlas import Atlas
    >>> atlas = Atlas.load("results")                          # doctest: +SKIP
    >>> atlas.place(probs, split="train").progress             # doctest: +SKIP
    0.63
    """

    def __init__(self, path: Path, memory_gb: float = DEFAULT_MEMORY_GB, device: str = "cpu", follow: bool = True):
        self.path = Path(path)
        self.memory_bytes = float(memory_gb) * 2**30
        self.device = device
        self.splits = self._splits()
        self._check_complete(follow)
        self.chunk_samples = _chunk_samples(self.path)
        with open_h5(self.path / "store" / "ref.h5") as ref:
            attrs = dict(ref.attrs)
            self.labels = {split: ref[f"{split}_labels"][()] for split in SPLITS}
        self.num_classes = int(attrs["num_classes"])
        self.fingerprint, self.dataset_name = str(attrs["fingerprint"]), str(attrs["dataset"])
        self.progress_mode = str(attrs.get("progress_mode", "angle"))
        self.n_samples = {split: len(self.labels[split]) for split in SPLITS}
        self.points = read_table(self.path / "store" / "index.tsv")
        self.models = {}
        self.reference_rows = {}
        self.method = self.metric = None
        for split in self.splits:
            self._load_embedding(split)
        self.trajectories = self.outcomes = self.t = self.index = None
        if follow:
            self.trajectories = read_table(self.path / "trajectories" / "index.tsv")
            self._check_plans()
            first_plan = self.path / "trajectories" / f"{self.trajectories['block'].iloc[0]}.h5"
            with open_h5(first_plan) as plan:
                self.t = plan["t"][()]
                self.index = str(plan.attrs["index"])
            self.outcomes = self._outcomes()
        self._reference_cache: dict = {}
        self._model_cache: dict = {}
        self._seed_pairs: dict = {}  # split -> (T, pairs) distances at equal progress of two seeds
        self._seed_pair_runs = self._pairs_of_seeds() if follow else []
        self._followed: dict = {}
        self._forecast_cache: dict = {}

    # ---- loading -------------------------------------------------------------------------------

    @classmethod
    def load(cls, path="results", memory_gb: float = DEFAULT_MEMORY_GB, device: str = "cpu",
             follow: bool = True) -> "Atlas":
        """The finished study in `path` as an atlas.

        Parameters
        ----------
        path : str or Path
            The study's results folder.
        memory_gb : float
            How much of the reference probabilities and reference models at equal progress is kept in
            memory; beyond it they are read from the store on every use.
        device : {"cpu", "cuda", "auto"}
            Where the distances to the references are computed.
        follow : bool
            False: an atlas that only places checkpoints, which needs the map (store and embedding)
            but not the trajectory stage and the analysis.

        Returns
        -------
        Atlas

        Raises
        ------
        AtlasError
            One line naming the missing file and the command that makes it, for a study that is not
            finished, or one written by an older inpca.
        """
        return cls(Path(path), memory_gb=memory_gb, device=device, follow=follow)

    def _command(self, target: str = "") -> str:
        """The command that finishes this study (folders.study_command)."""
        return study_command(self.path, target)

    def _check_complete(self, follow: bool) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise AtlasError(f"{self.path}: a file, not a folder; an atlas is the results folder of a finished study "
                             "(results/ for config.yaml, results-NAME/ for --configfile NAME.yaml)")
        if not self.path.is_dir():
            raise AtlasError(f"{self.path}: no such folder; an atlas is the results folder of a finished study; make "
                             f"it with: {command_for_folder(self.path)}")
        if not (self.path / STUDY_MARKER).is_file() and not (self.path / "store").is_dir():
            # no study ever wrote here: a command that makes a study would not make this folder one
            raise AtlasError(f"{self.path}: not a study's results folder (no {STUDY_MARKER}, no store/); an atlas is "
                             "the results folder of a finished study (results/ for config.yaml, results-NAME/ for "
                             "--configfile NAME.yaml)")
        needed = atlas_files(self.path, self.splits or ["train"])
        if not follow:  # placing needs the map only
            needed = [path for path in needed if path.parts[-2] in ("store", "embedding")]
        for path in needed:
            if not path.exists():
                raise AtlasError(f"{path}: not made yet, and an atlas is a finished study; make it with: "
                                 f"{self._command()}")

    def _splits(self) -> list[str]:
        """The splits the study works on: those any stage left a trace of (a half-built atlas whose
        embedding of one split is missing is unfinished, not an atlas of the other split alone)."""
        return [split for split in SPLITS if (self.path / "embedding" / f"{split}.h5").exists()
                or (self.path / "distances" / split).is_dir() or (self.path / "analysis" / split).is_dir()]

    def _check_plans(self) -> None:
        for block in dict.fromkeys(self.trajectories["block"]):
            plan = self.path / "trajectories" / f"{block}.h5"
            if not plan.exists():
                raise AtlasError(f"{plan}: not made yet; make it with: {self._command('trajectories')}")
            with open_h5(plan) as f:
                if "train_rows" not in f:
                    raise AtlasError(f"{plan}: written by an older inpca (it stores reindexed probabilities, not a "
                                     f"plan); update the study with: {self._command()}")
            store = self.path / "store" / f"{block}.h5"
            if not store.exists():
                raise AtlasError(f"{store}: not made yet; make it with: {self._command('store')}")

    def _load_embedding(self, split: str) -> None:
        # scikit-learn (the fitted estimators' base) loads with the first embedding, not with the package:
        # `python -m inpca.atlas --help` and `import inpca.atlas` stay quick
        from ..embedding_file import load_fitted

        path = self.path / "embedding" / f"{split}.h5"
        self.models[split] = load_fitted(path)
        with open_h5(path) as f:
            method, metric = str(f.attrs.get("method", "exact")), str(f.attrs["metric"])
            if self.method is not None and (method, metric) != (self.method, self.metric):
                raise AtlasError(f"{path}: a {method} map of {metric} distances, but the other split's is a "
                                 f"{self.method} map of {self.metric}; finish the study with: {self._command()}")
            self.method, self.metric = method, metric
            rows = f["landmarks"][()] if "landmarks" in f else np.arange(f["coords"].shape[0])
        if len(self.points) != (f_points := self.models[split].components_.shape[0]) and self.method == "exact":
            raise AtlasError(f"{path}: fitted on {f_points} points, but {self.path / 'store' / 'index.tsv'} lists "
                             f"{len(self.points)}; finish the study with: {self._command()}")
        self.reference_rows[split] = np.asarray(rows, dtype=np.int64)

    def _outcomes(self) -> pd.DataFrame:
        """One row per reference run (not diverged): its configuration, final errors, losses, progress,
        epochs and steps to the speed levels (of the first split), config fields."""

        table = self.trajectories.copy()
        table["configuration"] = configuration_labels(table).to_numpy()
        runs = table[table["kind"] == "run"].copy()
        diverged = pd.to_numeric(runs["diverged_at_step"], errors="coerce").fillna(-1) >= 0
        runs = runs[~diverged]
        last = self.points[self.points["kind"] == "run"].groupby("run", sort=False).tail(1).set_index("run")
        for split in SPLITS:
            runs[f"final_{split}_loss"] = runs["run"].map(last[f"{split}_loss"])
            runs[f"final_progress_{split}"] = runs["run"].map(last[f"progress_{split}"])
            runs["final_epoch"] = runs["run"].map(last["epoch"])
        for split in self.splits:
            speed = read_table(self.path / "analysis" / split / "speed_runs.tsv").set_index("run")
            for column in speed.columns:
                if column.startswith(("epoch_to_", "step_to_")):
                    runs[f"{column}_{split}" if split != self.splits[0] else column] = runs["run"].map(speed[column])
        return runs.reset_index(drop=True)

    @property
    def levels(self) -> list[float]:
        """The progress levels the study measured speed at (speed_runs.tsv)."""
        return sorted(float(c[len("epoch_to_"):]) for c in self.outcomes.columns
                      if c.startswith("epoch_to_") and c.count("_") == 2)

    def close(self) -> None:
        """Let go of what the atlas keeps in memory (it holds no file open between calls)."""
        self._reference_cache.clear()
        self._model_cache.clear()
        self._followed.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- the samples ---------------------------------------------------------------------------

    def dataset_spec(self) -> dict:
        """The study's data set as a config section (name, split, keep_every, ...), as its runs were
        trained on it (the run configs a store block keeps, with their types)."""
        for block in dict.fromkeys(self.points["block"]):
            with open_h5(self.path / "store" / f"{block}.h5") as f:
                configs = json.loads(f.attrs.get("runs", "{}"))
            for config in configs.values():
                if isinstance(config, dict) and isinstance(config.get("dataset"), dict):
                    return dict(config["dataset"])
        return {"name": self.dataset_name}

    def dataset(self):
        """The samples a new network must be evaluated on, in the atlas' order (:class:`inpca.data.Dataset`,
        ``keep_every`` included); checked against the atlas' fingerprint."""
        spec = self.dataset_spec()
        if spec.get("name") in (None, "recorded"):
            raise AtlasError(f"{self.path}: a study of recorded runs keeps only their labels; evaluate a new network on "
                             f"the samples those recordings used (data fingerprint {self.fingerprint})")
        dataset = load_study_dataset(complete_section("dataset", spec))
        if dataset.fingerprint != self.fingerprint:
            raise AtlasError(f"{self.path}: its data set {spec} gives fingerprint {dataset.fingerprint} here, the atlas "
                             f"has {self.fingerprint}; the samples differ (another data_dir or a changed data set)")
        return dataset

    # ---- checking input ------------------------------------------------------------------------

    def _checked(self, probs, split: str, what: str) -> np.ndarray:
        """(M, N, C) float32 probabilities of `split`, or one line saying what is wrong."""
        P = np.asarray(probs.detach().cpu().numpy() if hasattr(probs, "detach") else probs)
        if P.ndim == 2:
            P = P[None]
        if P.ndim != 3 or P.shape[0] == 0:
            raise AtlasError(f"{what}: expected {split} probabilities of shape (N, C) or (M, N, C), got {P.shape}")
        expected = (self.n_samples[split], self.num_classes)
        if P.shape[1:] != expected:
            raise AtlasError(f"{what}: {split} probabilities of {P.shape[1]} samples x {P.shape[2]} classes, but the "
                             f"atlas {self.path} has {expected[0]} x {expected[1]} ({self.dataset_name}); evaluate on "
                             "the atlas' samples (Atlas.dataset, Recorder.for_atlas)")
        try:
            validate_probabilities(P, f"{what}: {split} probabilities")
        except ValueError as exc:
            # the validator counts points; here they are the checkpoints of one run (or the one placed)
            where = "(" if what == "place" else r"(checkpoint \1, "
            raise AtlasError(re.sub(r"\(point (\d+), ", where, str(exc).splitlines()[0], count=1)) from None
        return P.astype(np.float32, copy=False)

    def _split_of(self, probs, split) -> str:
        if split is not None:
            if split not in self.splits:
                raise AtlasError(f"split {split!r}: the atlas {self.path} embedded {', '.join(self.splits)}")
            return split
        n = np.shape(probs)[-2] if np.ndim(probs) >= 2 else -1
        matches = [s for s in self.splits if self.n_samples[s] == n]
        if len(matches) != 1:
            raise AtlasError(f"probabilities of {n} samples: say which split they are (split=...); the atlas has "
                             + ", ".join(f"{self.n_samples[s]} {s}" for s in self.splits))
        return matches[0]

    # ---- distances -----------------------------------------------------------------------------

    def _prepared(self, Q: np.ndarray):
        """Reference points ready for the kernels (validated and square-rooted once)."""
        return ReferencePoints(Q, metric=self.metric, device=self.device, chunk_samples=self.chunk_samples)

    def _reference_points(self, split: str):
        """The reference points (in the map's column order) prepared for the kernels and kept in memory
        when they fit; else None (they are read block by block each time)."""
        if split in self._reference_cache:
            return self._reference_cache[split]
        rows = self.reference_rows[split]
        size = len(rows) * self.n_samples[split] * self.num_classes * 4
        if size > self.memory_bytes:
            return None
        self._reference_cache[split] = self._prepared(np.concatenate(list(self._read_points(split, rows))))
        return self._reference_cache[split]

    def _read_points(self, split: str, rows: np.ndarray):
        """The probabilities of the given index rows (increasing), block by block, from the store."""
        blocks = self.points["block"].to_numpy()
        within = self.points["row"].to_numpy().astype(np.int64)
        for block in dict.fromkeys(blocks[rows]):
            mine = rows[blocks[rows] == block]
            with open_block(self.path / "store" / f"{block}.h5") as f:
                yield np.asarray(f[f"{split}_probs"][within[mine].tolist()], dtype=np.float32)

    def _distances_to_points(self, P: np.ndarray, split: str) -> np.ndarray:
        references = self._reference_points(split)
        if references is not None:
            d = references.distances(P)
        else:
            d = np.hstack([self._prepared(Q).distances(P) for Q in self._read_points(split, self.reference_rows[split])])
        d[d < SAME_POINT] = 0.0
        return d

    # ---- placing -------------------------------------------------------------------------------

    def place(self, probs, split: str | None = None, nearest: int = 5):
        """Place one checkpoint: (N, C) probabilities of one split (`split` may be left out when the
        sample count says which), or a dict {split: (N, C)} for several. Returns a :class:`Placement`
        (or a dict of them): coordinates in the atlas' axes, progress, distance to truth and the
        `nearest` reference points."""
        if isinstance(probs, dict):
            return {s: self.place(p, split=s, nearest=nearest) for s, p in probs.items()}
        split = self._split_of(probs, split)
        P = self._checked(probs, split, "place")
        if P.shape[0] != 1:
            raise AtlasError(f"place: one checkpoint at a time, got {P.shape[0]}")
        return self._place(P, split, nearest)

    def _place(self, P: np.ndarray, split: str, nearest: int = 5) -> Placement:
        d = self._distances_to_points(P, split)[0]
        coords = self.models[split].transform(d[None])[0]
        rows = self.reference_rows[split]
        is_run = (self.points["kind"].to_numpy()[rows] == "run")
        order = np.argsort(d, kind="stable")
        order = order[is_run[order]][:nearest]
        table = self.points.iloc[rows[order]]
        near = pd.DataFrame({"run": table["run"].to_numpy(), "checkpoint": table["checkpoint"].to_numpy(),
                             "epoch": table["epoch"].to_numpy(), "distance": d[order]})
        progress = float(progress_many(P, self.labels[split], self.num_classes, mode=self.progress_mode)[0])
        return Placement(split, coords, progress, float(distance_to_truth(P, self.labels[split])[0]), near)

    # ---- following -----------------------------------------------------------------------------

    def _reference_models(self, split: str, k: int):
        """Every reference trajectory (trajectories/index.tsv order) at t_k, prepared for the kernels
        (:class:`inpca.distances.ReferencePoints`); kept while they fit the memory budget."""
        key = (split, k)
        if key in self._model_cache:
            return self._model_cache[key]
        parts = []
        for block in dict.fromkeys(self.trajectories["block"]):
            # opened for this t_k only: no file of the study stays open between calls, so the user's own
            # h5py.File on it works while the atlas is in use (HDF5 refuses a file open with other locking)
            with ReindexedBlock(self.path / "store" / f"{block}.h5", self.path / "trajectories" / f"{block}.h5",
                                self.path / "store" / "ref.h5", split,
                                self.device if self.device != "auto" else "cpu") as reindexed:
                parts.append(reindexed.at(k))
        models = np.concatenate(parts)
        prepared = self._prepared(models)
        if (len(self._model_cache) + 1) * models.nbytes <= self.memory_bytes:
            self._model_cache[key] = prepared
        return prepared

    def check_run(self, run) -> None:
        """AtlasError (one line) when `run` (a run file, or a dict like :func:`inpca.runfile.read_run`'s)
        cannot be placed: recorded on other data, a split missing, empty, or probabilities that are not."""
        for split in self.splits:
            self._run_of(run, split)

    def _run_of(self, run, split: str):
        """(probs (K, N, C) float32, train_error (K,) or None, epochs (K,)) of a run: a run file, a dict
        like :func:`inpca.runfile.read_run`'s, or (K, N, C) probabilities."""
        source = "run"
        if isinstance(run, (str, Path)):
            source = str(run)
            run = read_run(run)
        if isinstance(run, dict):
            source = str(run.get("path", source))  # read_run's: the file the arrays came from
            attrs = run.get("attrs", {})
            if "fingerprint" in attrs and str(attrs["fingerprint"]) != self.fingerprint:
                raise AtlasError(f"{source}: recorded on other data than the atlas {self.path} (fingerprints "
                                 f"{attrs['fingerprint']} and {self.fingerprint}, {self.dataset_name}); record it on "
                                 "the atlas' samples (Recorder.for_atlas)")
            probs = run.get(f"{split}_probs")
            if probs is None:
                raise AtlasError(f"{source}: no {split} probabilities")
            K = len(probs)
            train_error = np.asarray(run["train_error"], dtype=float) if "train_error" in run else None
            epochs = np.asarray(run.get("epoch", np.full(K, np.nan)), dtype=float)
        else:
            probs, train_error, epochs = run, None, None
        if len(probs) == 0:
            raise AtlasError(f"{source}: an empty run (no checkpoint); nothing to place")
        P = self._checked(probs, split, source)
        K = P.shape[0]
        epochs = np.full(K, np.nan) if epochs is None else epochs
        return P, train_error, epochs

    def follow(self, run, split: str = "train", exclude=()) -> Following:
        """A run so far (a run file, a dict of its arrays, or its (K, N, C) probabilities on `split`)
        reindexed on the atlas' grid up to the index it has reached, and its distance at equal progress
        to every reference trajectory over the reached t_k, nearest first. `exclude`: reference runs to
        leave out (e.g. a held-out configuration's seeds, for an honest benchmark), from the ranking and
        from the seed-to-seed spread."""

        if split not in self.splits:
            raise AtlasError(f"split {split!r}: the atlas {self.path} embedded {', '.join(self.splits)}")
        if self.trajectories is None:
            raise AtlasError(f"{self.path}: loaded to place checkpoints only (Atlas.load(..., follow=False))")
        if isinstance(run, (str, Path)):
            run = read_run(run)  # once: its arrays name the file (read_run's "path")
        P, train_error, epochs = self._run_of(run, split)
        test_error = self._test_error_of(run, len(P))
        if self.index == "accuracy" and train_error is None:
            train = self._run_of(run, "train")[0] if split != "train" else P
            train_error = np.mean(train.argmax(-1) != self.labels["train"][None], axis=1)
        known = run.get(f"progress_{split}") if isinstance(run, dict) else None  # placed before: not again
        progress = (np.asarray(known, dtype=float) if known is not None and len(known) == len(P) else
                    progress_many(P, self.labels[split], self.num_classes, mode=self.progress_mode))
        values = index_values(progress, train_error if train_error is not None else np.zeros(len(P)), self.index)
        reached = np.flatnonzero(self.t <= values.max())
        references = self.trajectories.reset_index(drop=True)
        distances = np.empty((len(reached), len(references)))
        if len(reached):
            lower, upper, fraction = reindex_plan(values, self.t[reached])
            digests = {row: _digest(P[row]) for row in set(lower.tolist()) | set(upper.tolist())}  # each row once
            for i, k in enumerate(reached):
                # a run's model at t_k stays the same once a checkpoint past t_k exists: a run followed
                # checkpoint after checkpoint computes the distances of its new t_k only
                key = (split, int(k), digests[lower[i]], digests[upper[i]], float(fraction[i]))
                if key not in self._followed:
                    model = model_at(P[lower[i]], P[upper[i]], lower[i] == upper[i], fraction[i]).astype(np.float32)
                    if len(self._followed) >= FOLLOW_MEMO:
                        self._followed.clear()
                    self._followed[key] = self._reference_models(split, int(k)).distances(model[None])[0]
                distances[i] = self._followed[key]
        return self._following(split, reached, distances, float(values.max()), frozenset(exclude), epochs, test_error,
                               train_error if train_error is not None else np.full(len(P), np.nan))

    def _following(self, split, reached, distances, index_reached, exclude, epochs, test_error, train_error):
        """A Following from a run's distances at the reached t_k to every reference trajectory: the
        references ranked by their mean, the seed-to-seed spread and the geodesic's distance."""
        references = self.trajectories.reset_index(drop=True)
        is_run = (references["kind"] == "run").to_numpy()
        mean = distances.mean(axis=0) if len(reached) else np.full(len(references), np.nan)
        geodesic = float(mean[~is_run][0]) if (~is_run).any() else math.nan
        table = self.outcomes[~self.outcomes["run"].isin(exclude)]
        table = table.merge(pd.DataFrame({"run": references["run"], "distance": mean}), on="run")
        table = table.sort_values("distance", kind="stable").reset_index(drop=True)
        order = [c for c in ("run", "configuration", "arch", "distance") if c in table.columns]
        table = table[order + [c for c in table.columns if c not in order]]
        return Following(split, self.t[reached], distances, table, index_reached,
                         self._seed_spread(split, reached, set(exclude)), geodesic, np.asarray(epochs, dtype=float),
                         np.asarray(test_error, dtype=float), np.asarray(train_error, dtype=float), exclude)

    def _test_error_of(self, run, K: int) -> np.ndarray:
        """The run's test error per checkpoint: its recorded metric, or from its test probabilities and
        the atlas' labels; NaN where neither is given."""
        if isinstance(run, dict):
            if run.get("test_error") is not None and len(run["test_error"]) == K:
                return np.asarray(run["test_error"], dtype=float)
            probs = run.get("test_probs")
            if probs is not None and len(probs) == K and K and np.shape(probs[0])[0] == self.n_samples["test"]:
                return np.array([self.test_error(p) for p in probs])
        return np.full(K, np.nan)

    def test_error(self, probs) -> float:
        """The 0/1 error of one checkpoint's (N, C) test probabilities on the atlas' test labels."""
        return float(np.mean(np.asarray(probs).argmax(-1) != self.labels["test"]))

    def _pairs_of_seeds(self) -> list[tuple[str, str]]:
        """Every pair of reference runs of one configuration (two seeds)."""
        pairs = []
        for _, group in self.outcomes.groupby("configuration"):
            members = list(group["run"])
            pairs += [(a, b) for i, a in enumerate(members) for b in members[i + 1:]]
        return pairs

    def _seed_spread(self, split: str, reached: np.ndarray, exclude: set = frozenset()) -> float:
        """The largest mean distance (over the reached t_k) between two seeds of one configuration (of
        the runs not excluded)."""
        if not len(reached):
            return math.nan
        if split not in self._seed_pairs:
            rows = {run: i for i, run in enumerate(self.trajectories["run"])}
            pairs = [(rows[a], rows[b]) for a, b in self._seed_pair_runs]
            with open_h5(self.path / "analysis" / split / "equal_progress.h5") as f:
                runs = text(f["run"][()])
                if runs != self.trajectories["run"].tolist():
                    raise AtlasError(f"{self.path / 'analysis' / split / 'equal_progress.h5'} and the trajectory index "
                                     f"list different trajectories; finish the study with: {self._command()}")
                D = f["D"]
                self._seed_pairs[split] = (np.stack([D[:, a, b] for a, b in pairs], axis=1) if pairs
                                           else np.zeros((D.shape[0], 0)))
        kept = [i for i, (a, b) in enumerate(self._seed_pair_runs) if a not in exclude and b not in exclude]
        per_pair = self._seed_pairs[split][reached][:, kept]
        return float(per_pair.mean(axis=0).max()) if per_pair.shape[1] else math.nan

    # ---- forecasting ---------------------------------------------------------------------------

    def forecast(self, following: Following, k: int = 5, total_epochs: float | None = None) -> Forecast:
        """The run's end: its final test error from everything known at the cut
        (:mod:`inpca.atlas.forecast`, with an 80 % range), every other target from the `k` nearest
        reference trajectories of `following` (each weighted by the inverse of its distance, with the
        neighbours' range). `total_epochs`: how long the run will train; by default as long as the
        atlas' reference runs (their median). The neighbours' part is absent below the atlas' first
        grid point and noted when the nearest reference trajectory is farther than the atlas'
        seed-to-seed spread; the final test error is then forecast from the run's own curve."""
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise AtlasError(f"k: expected an integer >= 1, got {k!r}")
        split = following.split
        targets = self._targets(split)
        estimates = {t: (math.nan,) * 3 for t in targets}
        neighbours = following.references.head(k if len(following.t) else 0).copy()
        reason = ""
        if not len(following.t):
            reason = (f"progress {following.index_reached:.3f} is below the atlas' first grid point "
                      f"t = {self.t[0]:.3g}: no neighbours yet")
        else:
            weights = 1.0 / np.maximum(neighbours["distance"].to_numpy(), 1e-12)
            neighbours["weight"] = weights / weights.sum()
            for target, column in targets.items():
                values = pd.to_numeric(neighbours[column], errors="coerce").to_numpy(dtype=float)
                ok = np.isfinite(values)
                if ok.any():
                    w = neighbours["weight"].to_numpy()[ok]
                    estimates[target] = (float((values[ok] * w).sum() / w.sum()), float(values[ok].min()),
                                         float(values[ok].max()))
            nearest = float(neighbours["distance"].iloc[0])
            if math.isfinite(following.seed_spread) and nearest > following.seed_spread:
                reason = (f"the nearest reference trajectory is {nearest:.3g} away, farther than the atlas' "
                          f"seed-to-seed spread {following.seed_spread:.3g}")
        estimates["final_test_error_neighbours"] = estimates["final_test_error"]
        estimates["final_test_error"] = self._forecast_final_test_error(following, int(k), total_epochs)
        trusted = math.isfinite(estimates["final_test_error"][0])
        if not trusted:
            seen = ("no test error of the run" if len(following.test_error) > 1 else
                    "one checkpoint: nothing of the training seen yet")
            reason = f"{seen}; {reason}" if reason else seen
        return Forecast(split, len(neighbours), float(following.t[-1]) if len(following.t) else math.nan, estimates,
                        neighbours, trusted, reason,
                        str(neighbours["configuration"].iloc[0]) if len(neighbours) else "", self.levels)

    # ---- the forecast of the final test error (inpca.atlas.forecast) -----------------------------

    def _error_floor(self) -> float:
        """Half a test sample: errors are compared in log(error + floor)."""
        return 0.5 / max(self.n_samples.get("test", 0), 1)

    def _reference_curves(self, split: str) -> dict:
        """{run: (progress on `split`, test error)} per checkpoint of every reference run."""
        key = ("curves", split)
        if key not in self._forecast_cache:
            runs = self.points[self.points["kind"] == "run"]
            self._forecast_cache[key] = {
                run: (group[f"progress_{split}"].to_numpy(dtype=float), group["test_error"].to_numpy(dtype=float))
                for run, group in runs.groupby("run", sort=False)}
        return self._forecast_cache[key]

    def _forecast_features(self, following: Following, k: int, total_epochs: float) -> dict | None:
        test_error = np.asarray(following.test_error, dtype=float)
        if len(test_error) < 2 or not np.isfinite(test_error[-1]):  # nothing of the training seen yet
            return None
        floor = self._error_floor()
        if ("finals",) not in self._forecast_cache:  # every forecast reads it: indexed once
            self._forecast_cache[("finals",)] = self.outcomes.set_index("run")["final_test_error"]
        finals = self._forecast_cache[("finals",)]
        curve = curve_features(following.epochs, test_error, following.train_error, total_epochs, floor)
        return feature_row(curve, analogue_features(following, k, self._reference_curves(following.split), finals,
                                                    floor))

    def reference_cuts(self, split: str = "train", k: int = 5) -> pd.DataFrame:
        """The forecast's training rows: every reference run cut at :data:`inpca.atlas.forecast.TRAINING_CUTS`
        of its epochs and followed with its own configuration's runs left out (as a new configuration
        would be), its features at the cut and its target log(final + e) - log(current + e). Computed
        once (a minute on a study of a few hundred runs), kept in memory and, where the study's folder
        is writable, in ``analysis/<split>/forecast_references_k<k>.tsv``."""
        key = ("cuts", split, k)
        if key in self._forecast_cache:
            return self._forecast_cache[key]
        path = self.path / "analysis" / split / f"forecast_references_k{k}.tsv"
        runs = self.outcomes["run"].tolist()
        if path.exists():
            rows = read_table(path)
            if (len(rows) and int(rows["version"].iloc[0]) == FORECAST_VERSION
                    and set(rows["run"]) <= set(runs) and rows["run"].nunique() >= 0.9 * len(runs)):
                self._forecast_cache[key] = rows
                return rows

        floor = self._error_floor()
        by_configuration = self.outcomes.groupby("configuration")["run"].apply(frozenset).to_dict()
        points = self.points[self.points["kind"] == "run"]
        position = {run: i for i, run in enumerate(self.trajectories["run"])}
        rows = []
        # a reference run cut at a fraction of its epochs is, at every t_k it has reached, the reference
        # trajectory itself (the plan's first crossing lies within the cut): its distances at equal
        # progress to every other trajectory are the study's own (analysis/<split>/equal_progress.h5)
        with open_h5(self.path / "analysis" / split / "equal_progress.h5") as f:
            D = f["D"]
            for run, configuration, final in zip(self.outcomes["run"], self.outcomes["configuration"],
                                                 self.outcomes["final_test_error"]):
                mine = points[points["run"] == run]
                epochs = mine["epoch"].to_numpy(dtype=float)
                if len(epochs) < 2 or not np.isfinite(final) or run not in position:
                    continue
                to_others = D[:, position[run], :]
                train_error = mine["train_error"].to_numpy(dtype=float)
                test_error = mine["test_error"].to_numpy(dtype=float)
                values = index_values(mine[f"progress_{split}"].to_numpy(dtype=float), train_error, self.index)
                for cut in TRAINING_CUTS:
                    keep = epochs <= cut * epochs[-1] + 1e-9
                    if keep.sum() < 2:
                        continue
                    reached = np.flatnonzero(self.t <= values[keep].max())
                    following = self._following(split, reached, to_others[reached], float(values[keep].max()),
                                                by_configuration[configuration], epochs[keep], test_error[keep],
                                                train_error[keep])
                    row = self._forecast_features(following, k, float(epochs[-1]))
                    if row is None:  # no test error recorded
                        continue
                    row.update(run=run, configuration=configuration, arch=str(mine["arch"].iloc[0]), cut=cut,
                               final=float(final), target=float(np.log(final + floor) - row["log_current"]))
                    rows.append(row)
        table = pd.DataFrame(rows)
        table.insert(0, "version", FORECAST_VERSION)
        # as the file keeps them (6 significant digits), so a forecast is the same fresh or from the file
        for column in [*FEATURES, "target", "current", "final"]:
            table[column] = table[column].map(lambda v: float(f"{v:.6g}"))
        try:
            write_table(table, path)
        except OSError as exc:  # a study folder one may not write: kept in memory only
            log.warning("%s: not written (%s); the forecast's reference cuts are kept in memory", path,
                        exc.strerror or exc)
        self._forecast_cache[key] = table
        return table

    def _forecast_model(self, split: str, k: int, excluded: frozenset):
        """The forecast fitted on the reference cuts of every run not excluded (cached per exclude set)."""
        key = ("model", split, k, excluded)
        if key not in self._forecast_cache:
            rows = self.reference_cuts(split, k)
            # the range is as wide as the forecast errs on what is new: a configuration, or, when the runs
            # left out span several configurations (an architecture held out), a whole architecture
            several = rows.loc[rows["run"].isin(excluded), "configuration"].nunique() > 1
            by = "arch" if several else "configuration"
            residual_key = ("residuals", split, k, by)
            if residual_key not in self._forecast_cache:
                self._forecast_cache[residual_key] = out_of_fold_residuals(rows, by=by)
            kept = ~rows["run"].isin(excluded).to_numpy()
            models = [key for key in self._forecast_cache if key[0] == "model"]
            for old in models[:max(0, len(models) - 7)]:  # a benchmark holds out one set after another
                del self._forecast_cache[old]
            self._forecast_cache[key] = ForecastModel(rows[kept].reset_index(drop=True),
                                                      self._forecast_cache[residual_key][kept], self._error_floor())
        return self._forecast_cache[key]

    def _forecast_final_test_error(self, following: Following, k: int, total_epochs) -> tuple:
        total = float(total_epochs) if total_epochs else float(np.nanmedian(self.outcomes["final_epoch"]))
        row = self._forecast_features(following, k, total)
        if row is None:
            return (math.nan, math.nan, math.nan)
        return self._forecast_model(following.split, k, following.excluded).predict(row)

    def _targets(self, split: str) -> dict:
        targets = {"final_test_error": "final_test_error", "final_train_error": "final_train_error",
                   "final_test_loss": "final_test_loss", "final_train_loss": "final_train_loss",
                   "final_progress": f"final_progress_{split}"}
        for level in self.levels:
            for what in ("epoch", "step"):
                column = f"{what}_to_{level:g}"
                if column in self.outcomes.columns:
                    targets[column] = column
        return targets

    # ---- a run, checkpoint by checkpoint (the live table and the command line) ------------------

    def progress(self, probs, split: str) -> float:
        """The progress of one checkpoint's (N, C) probabilities of `split`, as :meth:`place` measures it."""
        P = self._checked(probs, self._split_of(probs, split), "progress")
        return float(progress_many(P, self.labels[split], self.num_classes, mode=self.progress_mode)[0])

    def checkpoint_row(self, probs: dict, history: dict, split: str = "train", k: int = 5, *, step, epoch,
                       total_epochs: float | None = None):
        """One row of a run's atlas table for its latest checkpoint: `probs` {split: (N, C)} of that
        checkpoint, `history` the run so far ({split: list of (N, C)}, train_error, epoch lists, the
        latest included; ``progress_<split>``, the progress of the checkpoints before the latest, may
        be given so they are not measured again; ``test_error`` the test errors, else they are measured
        on ``history["test"]``). `history` is not changed.
        `total_epochs`: see :meth:`forecast`. Returns (row, forecast):
        step, epoch, per split the coordinates (pc1..pc3), progress and nearest reference point; the
        reached t, the nearest configuration and its distance, the forecast final test error with its
        range, whether it is trusted and why not. :class:`inpca.atlas.live.LiveTable` keeps the history."""
        row = {"step": int(step), "epoch": float(epoch)}
        for s in self.splits:
            if s not in probs:
                continue
            placement = self.place(probs[s], split=s)
            row.update({f"{s}_pc{i + 1}": float(c) for i, c in enumerate(placement.coords[:3])})
            row[f"{s}_progress"] = placement.progress
            row[f"{s}_nearest_point"] = f"{placement.nearest['run'].iloc[0]}@{placement.nearest['checkpoint'].iloc[0]}"
        progress = list(history.get(f"progress_{split}") or [])
        if len(progress) == len(history[split]) - 1 and split in probs:
            progress.append(row[f"{split}_progress"])  # this checkpoint's, just placed
        following = self.follow({f"{split}_probs": np.stack(history[split]),
                                 f"progress_{split}": progress if len(progress) == len(history[split]) else None,
                                 "train_error": np.asarray(history["train_error"], dtype=float),
                                 "test_error": history.get("test_error"),
                                 "test_probs": history.get("test") if history.get("test_error") is None else None,
                                 "epoch": np.asarray(history["epoch"], dtype=float)}, split=split)
        forecast = self.forecast(following, k=k, total_epochs=total_epochs)
        value, low, high = forecast.estimates["final_test_error"]
        row.update({"t_reached": forecast.t_reached, "nearest_configuration": forecast.nearest_configuration,
                    "distance_nearest": float(following.references["distance"].iloc[0]) if len(following.t) else math.nan,
                    "forecast_final_test_error": value, "forecast_low": low, "forecast_high": high,
                    "forecast_neighbours": forecast.estimates["final_test_error_neighbours"][0],
                    "forecast_trusted": forecast.trusted, "forecast_note": forecast.reason})
        return row, forecast

    def trace(self, run, split: str = "train", k: int = 5, total_epochs: float | None = None) -> pd.DataFrame:
        """A recorded run (a run file, or a dict like :func:`inpca.runfile.read_run`'s) placed checkpoint
        by checkpoint as if it were being recorded (:class:`inpca.atlas.live.LiveTable`): one
        :meth:`checkpoint_row` per checkpoint, each from the checkpoints up to it. `total_epochs`: how
        long the run trained (:meth:`forecast`); by default its last checkpoint's epoch, as the live
        recorder knows it from its schedule."""
        source = str(run) if isinstance(run, (str, Path)) else "run"
        run = read_run(run) if isinstance(run, (str, Path)) else run
        checked = {s: self._run_of({**run, "attrs": run.get("attrs", {})}, s)[0] for s in self.splits}
        train_error = np.asarray(run["train_error"], dtype=float)
        if total_epochs is None:
            last = float(np.asarray(run["epoch"], dtype=float)[-1]) if len(run["epoch"]) else math.nan
            total_epochs = last if math.isfinite(last) and last > 0 else None
        table = LiveTable(self, None, split, k, total_epochs)
        for i in range(checked[split].shape[0]):
            table.add(run["step"][i], run["epoch"][i], {s: checked[s][i] for s in self.splits}, train_error[i],
                      write=False)
        log.info("traced %s: %d checkpoints", source, len(table.rows))
        return table.table()
