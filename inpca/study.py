"""The study plan: a validated config (:mod:`inpca.config`) expanded into runs, run ids, store blocks
and distance tiles, and the columns of the tables a study writes.

Snakemake imports this module when it parses the workflow (every cluster job re-parses it), so it
uses the standard library plus jsonschema and never touches torch, h5py or numpy.

Identity:
- A run's config holds every field that changes what training produces (dataset, architecture,
  optimizer, batch size, weight decay, augmentation, epochs, seed, schedules, checkpoint schedule).
  Its id is a readable prefix plus 8 hex digits of the SHA-256 of that config as canonical JSON, so
  reordering or regrouping the grid changes no id.
- A run's store block is a hash of its id modulo ``store.blocks``: adding a run changes one block.
- The reference points (ignorance, the geodesic, truth) form the block ``ref``.
- A run with a non-default ``init`` starts from a *corner*: its config holds the init with every
  default resolved (the pre-training optimizer, batch size and weight decay default to the run's
  own). A corner's config is the data set, the architecture and that init; its id is a readable
  prefix plus 8 hex digits of its hash, so runs that differ in anything else (their seed, their
  optimizer when the init names its own) share one corner. Default-init runs have no ``init`` key:
  their ids are those of studies written before corners existed.
- The geodesics from P0 to each corner and from it to P* form the block ``corners`` (only in a
  study with corners); it is a block of the distance matrices, not of the trajectory analysis.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

from .config import (ARCHITECTURES, SCHEMA_PATH, SPLITS, as_list, cached_schema, check_data_present, resolve_column,
                     validate_config)
from .errors import ConfigError
from .recordings import scan

# Bump one of these when package code changes what a stage produces on purpose: rules take the
# number as a param, so Snakemake reruns that stage (and what depends on it) and nothing earlier.
RESULTS_VERSION = {"train": 2, "corners": 1, "store": 2, "distance": 1, "embedding": 1, "plots": 1,
                   "trajectories": 2, "analysis": 1,
                   "atlas": 1}

_ARCH_NAMES = rf"(?:{'|'.join(ARCHITECTURES)})"
_INIT_LABELS = r"(?:randlabels|subsample\d+|perturbed)"
#: Run ids of the grid: architecture, optimizer, the corner's kind (runs from a corner only), seed and
#: 8 hex digits of the config's hash, e.g. allcnn-sgdn-s0-1a2b3c4d, fc-adam-randlabels-s1-0f9e8d7c.
GRID_RUN_PATTERN = rf"{_ARCH_NAMES}-[a-z0-9]+(?:-{_INIT_LABELS})?-s\d+-[0-9a-f]{{8}}"
#: Corner ids: architecture, kind, the corner's seed and 8 hex digits, e.g. fc-subsample100-s0-5a6b7c8d.
CORNER_PATTERN = rf"{_ARCH_NAMES}-{_INIT_LABELS}-s\d+-[0-9a-f]{{8}}"

REFERENCE_BLOCK = "ref"
CORNERS_BLOCK = "corners"
#: The P0 -> P* geodesic as one more trajectory of the trajectory stage: its run id and its kind.
GEODESIC = "geodesic"

#: What a checkpoint's record measures, per split (run files, the store, index.tsv): train_loss, ...
METRICS = tuple(f"{split}_{measure}" for split in SPLITS for measure in ("loss", "error"))
#: Per-point columns of index.tsv from the store (the checkpoint, its metrics, progress, distance to truth).
POINT_FIELDS = ("checkpoint", "step", "epoch", *METRICS, "t", *(f"progress_{split}" for split in SPLITS),
                *(f"dist_truth_{split}" for split in SPLITS))
#: The columns of results/store/index.tsv before the runs' own config fields (flattened: optimizer.lr, ...).
INDEX_COLUMNS = ("point", "block", "row", "run", "kind", "arch", "optimizer", "init", "corner", "parameters",
                 "diverged_at_step", *POINT_FIELDS)

_GRID_LIST_KEYS = ("arch", "optimizer", "batch_size", "weight_decay", "augment", "epochs", "seed", "init")
# Keys of `dataset` that say where the data are, not what they are: not part of a run's identity.
_DATASET_LOCATION = ("data_dir", "download")
# Keys of `checkpoints` that each schedule reads (besides schedule and dtype).
_SCHEDULE_KEYS = {"paper": ("early_epochs", "per_epoch"), "log": ("count",)}


@dataclass(frozen=True)
class Study:
    config: dict
    runs: dict[str, dict]  # run id -> canonical run config (imported runs: their own config), sorted by id
    blocks: dict[str, list[str]] = field(default_factory=dict)  # block -> run ids (non-empty blocks)
    corners: dict[str, dict] = field(default_factory=dict)  # corner id -> corner config, sorted by id

    @property
    def point_blocks(self) -> list[str]:
        """Blocks in the order their points appear in index.tsv and the distance matrices."""
        return [REFERENCE_BLOCK, *([CORNERS_BLOCK] if self.corners else []), *self.blocks]

    @property
    def tiles(self) -> list[tuple[str, str]]:
        """Every pair of blocks (bi, bj) with bi at or before bj in point order."""
        return _pairs(self.point_blocks)

    @property
    def trajectory_blocks(self) -> list[str]:
        """Blocks of the trajectory analysis: the geodesic (from ``ref``) and the runs' blocks; the
        corner geodesics are reference curves of the embedding, not trajectories."""
        return [REFERENCE_BLOCK, *self.blocks]

    @property
    def trajectory_tiles(self) -> list[tuple[str, str]]:
        return _pairs(self.trajectory_blocks)

    def corner_of(self, run_id: str) -> str | None:
        """The id of the corner a run starts from, or None (default init, imported runs)."""
        corner = corner_config(self.runs[run_id])
        return corner_id(corner) if corner else None

    @property
    def trained_runs(self) -> list[str]:
        """Runs the grid trains (the others are imported recordings)."""
        return [rid for rid, run in self.runs.items() if "recorded" not in run]

    @property
    def imported_runs(self) -> list[str]:
        return [rid for rid, run in self.runs.items() if "recorded" in run]

    @property
    def splits(self) -> list[str]:
        return list(self.config["distance"]["splits"])

    def block_of(self, run_id: str) -> str:
        return block_of(run_id, self.config["store"]["blocks"])


def _pairs(names: list[str]) -> list[tuple[str, str]]:
    return [(a, b) for i, a in enumerate(names) for b in names[i:]]


# --------------------------------------------------------------------------------------------
# expansion


def dataset_identity(dataset: dict) -> dict:
    """The fields of `dataset` that decide the samples (the schema admits only the data set's own)."""
    return {k: v for k, v in dataset.items() if k not in _DATASET_LOCATION}


def checkpoints_identity(checkpoints: dict) -> dict:
    """The fields of `checkpoints` that the chosen schedule reads: a paper schedule's runs do not
    change when `count` (a log-schedule key) does."""
    keep = ("schedule", "dtype", *_SCHEDULE_KEYS[checkpoints["schedule"]])
    return {k: checkpoints[k] for k in keep}


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _digest(config: dict) -> str:
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:8]


def init_label(init: dict) -> str:
    """The corner's kind in ids: randlabels, subsample<samples>, perturbed."""
    return {"random_labels": "randlabels", "perturbed": "perturbed"}.get(init["name"]) or f"subsample{init['samples']}"


def run_id(run: dict) -> str:
    opt = run["optimizer"]
    opt_label = "sgdn" if opt["name"] == "sgd" and opt.get("nesterov") else opt["name"]
    corner = f"-{init_label(run['init'])}" if "init" in run else ""
    return f"{run['arch']['name']}-{opt_label}{corner}-s{run['seed']}-{_digest(run)}"


def resolve_init(init: dict, run: dict) -> dict | None:
    """The init of a run with every default resolved (None for the default init): the pre-training
    optimizer, batch size and weight decay of a pre-trained corner default to the run's own (the
    batch size of a subsample corner to at most its samples)."""
    name = init["name"]
    if name == "default":
        return None
    if name == "perturbed":
        return dict(init)
    resolved = dict(init)
    resolved.setdefault("optimizer", run["optimizer"])
    resolved.setdefault("batch_size", min(run["batch_size"], init["samples"]) if name == "subsample"
                        else run["batch_size"])
    resolved.setdefault("weight_decay", run["weight_decay"])
    return resolved


def corner_config(run: dict) -> dict | None:
    """The corner a grid run starts from ({dataset, arch, init}), or None (default init, imported runs)."""
    if "init" not in run or "recorded" in run:
        return None
    return {"dataset": run["dataset"], "arch": run["arch"], "init": run["init"]}


def corner_id(corner: dict) -> str:
    init = corner["init"]
    return f"{corner['arch']['name']}-{init_label(init)}-s{init['seed']}-{_digest(corner)}"


def block_of(run_id: str, n_blocks: int) -> str:
    index = int(hashlib.sha256(run_id.encode()).hexdigest()[:12], 16) % n_blocks
    return f"b{index:03d}"


def expand_grid(config: dict) -> dict[str, dict]:
    """All runs of the study, id -> canonical config. Raises ConfigError on duplicates."""
    shared = {
        "dataset": dataset_identity(config["dataset"]),
        "checkpoints": checkpoints_identity(config["checkpoints"]),
    }
    runs: dict[str, dict] = {}
    origin: dict[str, int] = {}
    for i, entry in enumerate(config["grid"]):
        choices = [as_list(entry[k]) for k in _GRID_LIST_KEYS]
        for values in itertools.product(*choices):
            run = dict(zip(_GRID_LIST_KEYS, values))
            for key in ("lr_schedule", "warmup_epochs", "precision"):
                run[key] = entry[key]
            run.update(shared)
            init = resolve_init(run.pop("init"), run)
            if init is not None:
                run["init"] = init
            rid = run_id(run)
            if rid in runs:
                where = f"grid[{origin[rid]}]" + (" (twice)" if origin[rid] == i else f" and grid[{i}]")
                raise ConfigError(f"{where} both expand to run {rid}; remove the duplicate")
            runs[rid] = run
            origin[rid] = i
    return dict(sorted(runs.items()))


def load_study(config: dict, schema_path: str | Path = SCHEMA_PATH, check_data: bool = True) -> Study:
    """The validated study; `check_data` also refuses a data set that must be on disk and is not."""
    config = validate_config(config, cached_schema(str(schema_path)))  # parsed once per process
    if check_data:
        check_data_present(config["dataset"])
    runs = expand_grid(config)
    if config["imports"]:
        imported = scan(config["imports"])
        runs = dict(sorted({**runs, **{rid: run.study_entry() for rid, run in imported.items()}}.items()))
        if config["dataset"]["name"] == "recorded":
            first = next(iter(imported.values()))
            # the data set is the recordings' own: its size and identity come from the files
            config["dataset"].update(n_train=first.n_train, n_test=first.n_test, num_classes=first.num_classes,
                                     fingerprint=first.fingerprint)
    blocks: dict[str, list[str]] = {}
    for rid in runs:
        blocks.setdefault(block_of(rid, config["store"]["blocks"]), []).append(rid)
    resolve_column(index_columns(runs), config["plots"]["color_by"])
    corners = {corner_id(c): c for c in map(corner_config, runs.values()) if c}
    return Study(config=config, runs=runs, blocks=dict(sorted(blocks.items())), corners=dict(sorted(corners.items())))


def flatten(run: dict, prefix: str = "") -> dict:
    """Nested run config -> flat {'arch.name': 'fc', 'optimizer.lr': 0.1, ...} for tables."""
    out = {}
    for key, value in run.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        elif isinstance(value, list):
            out[name] = canonical_json(value)
        else:
            out[name] = value
    return out


def index_columns(runs: dict[str, dict]) -> list[str]:
    """The columns results/store/index.tsv will have for these runs (known at parse time, so that a
    typo in plots.color_by stops the parse instead of the plot jobs after all training)."""
    config_keys = dict.fromkeys(key for run in runs.values()
                                for key in flatten({k: v for k, v in run.items() if k != "recorded"}))
    return [*INDEX_COLUMNS, *sorted(config_keys)]


def runs_table_rows(study: Study) -> list[dict]:
    """One row per run for results/runs.tsv (`corner`: the id of the corner it starts from, or empty)."""
    return [{"run": rid, "block": study.block_of(rid), "corner": study.corner_of(rid) or "", **flatten(run)}
            for rid, run in study.runs.items()]
