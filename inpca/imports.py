"""Run files recorded by one's own training (:mod:`inpca.record`) brought into a study.

The config's `imports` lists files or glob patterns. When Snakemake parses the workflow, each file is
opened (h5py, imported only when a study has imports) for its identity: the run config it carries, its
data set fingerprint and sizes, and its first checkpoint. A run's id is `rec-<arch>-<8 hex>` (`arch`
from the recording's config), the hex digits hashing the config and the first checkpoint's
probabilities: the same recording imported again, from any path, is the same run, and nothing is
recomputed. Two files with the same content,
or recorded on different data, are refused at parse time with one line naming both files.

The `import_run` job (:func:`import_run`) then validates the whole file as the store would (shapes,
NaN, negative probabilities, row sums) and writes it as `results/runs/{run}.h5` under the study's id.
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


def import_run(source, out_path, run_id: str, sum_tolerance: float = 1e-3, reference=None) -> None:
    """Validate a recorded run file as the store would and write it as the study's run `run_id`.

    `reference`: the study's reference block when the study has a data set of its own; a recording
    made on other data is refused, naming both files.
    """
    import logging

    from .errors import StoreError
    from .runfile import METRICS, check_probabilities, read_run, write_run
    from .store import check_fits_reference, read_reference

    run = read_run(source)
    for split in SPLITS:
        if f"{split}_labels" not in run:
            raise StoreError(f"{source}: no {split}_labels; record it with inpca.record, which stores the labels")
    if reference is not None:
        ref = read_reference(reference)
        expected, name = str(ref["attrs"]["fingerprint"]), str(ref["attrs"]["dataset"])
        if str(run["attrs"]["fingerprint"]) != expected:
            raise StoreError(f"{source} was recorded on other data than the study's {name} ({reference}): fingerprints "
                             f"{run['attrs']['fingerprint']} and {expected}; record it on the study's data "
                             "(Recorder.for_dataset) or use dataset: {name: recorded}")
        # every sample against the study's: a recording cut short (its attributes edited to match) is
        # refused here, naming the recording, and not later by the store, naming the copy
        check_fits_reference(source, run["attrs"], {s: run[f"{s}_probs"].shape[1:] for s in SPLITS}, ref["attrs"],
                             {s: run[f"{s}_labels"] for s in SPLITS}, {s: ref[f"{s}_labels"] for s in SPLITS})
    for split in SPLITS:
        check_probabilities(source, f"{split}_probs", run[f"{split}_probs"], sum_tolerance)
    attrs = {**run["attrs"], "run_id": run_id, "imported_from": str(source)}
    attrs.pop("format_version", None)
    probs = {split: run[f"{split}_probs"] for split in SPLITS}
    labels = {split: run[f"{split}_labels"] for split in SPLITS}
    write_run(out_path, probs, run["step"], run["epoch"], {m: run[m] for m in METRICS}, attrs, labels)
    logging.getLogger("inpca.imports").info("imported %s as %s: %d checkpoints", source, run_id, len(run["step"]))
