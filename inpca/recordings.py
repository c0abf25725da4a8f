"""The recordings a study imports, found and named when Snakemake parses the workflow: each file the
config's `imports` name is opened for its identity (h5py, imported only when a study has imports) and
given its run id (see :mod:`inpca.imports`, which then brings a recording into the study as a job).

Planning only: the config and the errors, and nothing that writes a run file, so that the study's plan
(:mod:`inpca.study`) reads the recordings without importing the run files or the store.
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
from dataclasses import dataclass

from .config import SPLITS
from .errors import ConfigError

PREFIX = "rec"
#: Imported run ids; grid runs start with an architecture name, so the two never collide.
RUN_ID_PATTERN = r"rec-[a-z0-9]+(?:-[a-z0-9]+)*-[0-9a-f]{8}"


@dataclass(frozen=True)
class ImportedRun:
    source: str          # the file as found (relative to the working directory if the pattern was)
    config: dict         # the run config the recording carries (free-form)
    fingerprint: str
    dataset: str
    num_classes: int
    n_train: int
    n_test: int
    checkpoints: int

    def study_entry(self) -> dict:
        """The run's entry in the study: its own config, plus what the pipeline needs to plan it."""
        recorded = {"source": self.source, "dataset": self.dataset, "num_classes": self.num_classes,
                    "n_train": self.n_train, "n_test": self.n_test, "checkpoints": self.checkpoints}
        return {**self.config, "recorded": recorded}


def _label(config: dict) -> str:
    """A readable part of the id from the recording's own config (its `arch` or `name`), never from
    the file's name: the id must not change when the file moves."""
    value = config.get("arch", config.get("name", "run")) if isinstance(config, dict) else "run"
    if isinstance(value, dict):
        value = value.get("name", "run")
    words = re.findall(r"[a-z0-9]+", str(value).lower())
    return "-".join(words)[:24].strip("-") or "run"


def _identity(path: str) -> tuple[str, ImportedRun]:
    import h5py

    try:
        f = h5py.File(path, "r", locking=False)
    except OSError as exc:
        raise ConfigError(f"imports: {path} is not a readable HDF5 file ({exc}); record it with inpca.record") from None
    with f:
        attrs = dict(f.attrs)
        missing = [k for k in ("config", "fingerprint", "num_classes", "n_train", "n_test") if k not in attrs]
        if missing or "train_probs" not in f or "test_probs" not in f:
            raise ConfigError(f"imports: {path} is not a run file (missing {', '.join(missing) or 'probabilities'}); "
                              "record it with inpca.record")
        if f["train_probs"].shape[0] == 0:
            raise ConfigError(f"imports: {path} holds no checkpoint")
        config = json.loads(attrs["config"])
        digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
        for split in SPLITS:
            digest.update(f[f"{split}_probs"][0].tobytes())
        run = ImportedRun(source=path, config=config, fingerprint=str(attrs["fingerprint"]),
                          dataset=str(attrs.get("dataset", "recorded")), num_classes=int(attrs["num_classes"]),
                          n_train=int(attrs["n_train"]), n_test=int(attrs["n_test"]),
                          checkpoints=int(f["step"].shape[0]))
    return f"{PREFIX}-{_label(config)}-{digest.hexdigest()[:8]}", run


def scan(imports: list[dict]) -> dict[str, ImportedRun]:
    """Every file the `imports` entries name, by run id; ConfigError (one line) on a pattern that
    matches nothing, a file that is no run file, the same recording twice, or mixed data sets."""
    runs: dict[str, ImportedRun] = {}
    for i, entry in enumerate(imports):
        paths = sorted(glob.glob(entry["path"]))
        if not paths:
            raise ConfigError(f"imports[{i}].path: {entry['path']!r} matches no file")
        for path in paths:
            run_id, run = _identity(path)
            if run_id in runs:
                raise ConfigError(f"imports: {runs[run_id].source} and {path} hold the same recording "
                                  f"(run {run_id}); import it once")
            runs[run_id] = run
    first = next(iter(runs.values()), None)
    for run in runs.values():
        if run.fingerprint != first.fingerprint:
            raise ConfigError(f"imports: {first.source} and {run.source} were recorded on different data "
                              f"(fingerprints {first.fingerprint} and {run.fingerprint}); one study maps one data set")
        sizes, first_sizes = (run.n_train, run.n_test, run.num_classes), (first.n_train, first.n_test, first.num_classes)
        if sizes != first_sizes:
            raise ConfigError(f"imports: {first.source} and {run.source} hold different samples (train, test, classes: "
                              f"{first_sizes} and {sizes}) under one fingerprint; is one of them cut short?")
    return dict(sorted(runs.items()))
