"""The study plan: a validated config expanded into runs, run ids, store blocks and distance tiles.

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

import copy
import functools
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

# Bump one of these when package code changes what a stage produces on purpose: rules take the
# number as a param, so Snakemake reruns that stage (and what depends on it) and nothing earlier.
RESULTS_VERSION = {"train": 2, "corners": 1, "store": 2, "distance": 1, "embedding": 1, "plots": 1,
                   "trajectories": 1, "analysis": 1}

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"

_ARCH_NAMES = r"(?:fc|allcnn|wrn|convmixer|vit)"
_INIT_LABELS = r"(?:randlabels|subsample\d+|perturbed)"
#: Run ids of the grid: architecture, optimizer, the corner's kind (runs from a corner only), seed and
#: 8 hex digits of the config's hash, e.g. allcnn-sgdn-s0-1a2b3c4d, fc-adam-randlabels-s1-0f9e8d7c.
GRID_RUN_PATTERN = rf"{_ARCH_NAMES}-[a-z0-9]+(?:-{_INIT_LABELS})?-s\d+-[0-9a-f]{{8}}"
#: Corner ids: architecture, kind, the corner's seed and 8 hex digits, e.g. fc-subsample100-s0-5a6b7c8d.
CORNER_PATTERN = rf"{_ARCH_NAMES}-{_INIT_LABELS}-s\d+-[0-9a-f]{{8}}"

REFERENCE_BLOCK = "ref"
CORNERS_BLOCK = "corners"
SPLITS = ("train", "test")

#: What a checkpoint's record measures, per split (run files, the store, index.tsv).
METRICS = ("train_loss", "train_error", "test_loss", "test_error")
#: Per-point columns of index.tsv from the store (the checkpoint, its metrics, progress, distance to truth).
POINT_FIELDS = ("checkpoint", "step", "epoch", *METRICS, "t", "progress_train", "progress_test",
                "dist_truth_train", "dist_truth_test")
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
# validation: the schema is the one source of truth for keys, types and defaults


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    import yaml

    with open(path) as f:
        return yaml.safe_load(f)


@functools.lru_cache(maxsize=4)
def _schema_at(path: str) -> dict:
    return load_schema(path)


def _resolve(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref") if isinstance(schema, dict) else None
    if ref and ref.startswith("#/"):
        node = root
        for part in ref[2:].split("/"):
            node = node[part]
        merged = {k: v for k, v in schema.items() if k != "$ref"}
        return {**_resolve(node, root), **merged}
    return schema


# JSON type names of Python values; bool before int, since a bool is an int in Python.
_JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array"),
               (dict, "object"))


def _json_type(value) -> str:
    return next((name for kind, name in _JSON_TYPES if isinstance(value, kind)), "null")


def _declared_types(schema: dict) -> set[str]:
    declared = schema.get("type")
    if declared is None:
        if "properties" in schema or "additionalProperties" in schema:
            return {"object"}
        if "items" in schema:
            return {"array"}
        if "enum" in schema or "const" in schema:
            values = schema.get("enum", [schema.get("const")])
            return {_json_type(v) for v in values}
        return set()
    return set(declared) if isinstance(declared, list) else {declared}


def _type_matches(schema: dict, value) -> bool:
    declared = _declared_types(schema)
    kind = _json_type(value)
    return not declared or kind in declared or (kind == "integer" and "number" in declared)


def _branches(schema: dict, instance, root: dict) -> list[dict]:
    """The resolved subschemas that describe `instance`: the schema itself, the oneOf/anyOf
    alternative of the instance's type, and every allOf member whose if/then selects it."""
    import jsonschema

    schema = _resolve(schema, root)
    out = [schema]
    for key in ("oneOf", "anyOf"):
        for sub in schema.get(key, []):
            sub = _resolve(sub, root)
            if _type_matches(sub, instance):
                out += _branches(sub, instance, root)
                break
    for sub in schema.get("allOf", []):
        sub = _resolve(sub, root)
        if "if" in sub:
            condition = {**sub["if"], "$defs": root.get("$defs", {})}
            if jsonschema.Draft202012Validator(condition).is_valid(instance) and "then" in sub:
                out += _branches(sub["then"], instance, root)
        else:
            out += _branches(sub, instance, root)
    return out


def _property_schemas(schema: dict, instance, root: dict, key: str) -> list[dict]:
    return [b["properties"][key] for b in _branches(schema, instance, root) if key in b.get("properties", {})]


def _item_schemas(schema: dict, instance, root: dict) -> list[dict]:
    return [b["items"] for b in _branches(schema, instance, root) if isinstance(b.get("items"), dict)]


def _parse_text(text: str, types: set[str]):
    """A value given as text (Snakemake's --config passes nested values as strings) converted to
    the type the schema asks for; returned unchanged when it does not parse."""
    word = text.strip()
    if "boolean" in types and word.lower() in ("true", "false"):
        return word.lower() == "true"
    if "integer" in types:
        try:
            return int(word)
        except ValueError:
            pass
    if "number" in types:
        try:
            return float(word)
        except ValueError:
            pass
    return text


def _coerce(instance, schema: dict, root: dict, floats: bool = False):
    """Convert text to the numbers and booleans the schema asks for, and (`floats`) integers to
    floats where the schema asks for a number (so 0 and 0.0 give one run id)."""
    branches = _branches(schema, instance, root)
    if isinstance(instance, str):
        types = set().union(*(_declared_types(_resolve(b, root)) for b in _alternatives(schema, root)))
        if "string" not in types and types & {"integer", "number", "boolean"}:
            value = _parse_text(instance, types)
            return instance if value is instance else _coerce(value, schema, root, floats)
        return instance
    if floats and isinstance(instance, int) and not isinstance(instance, bool):
        types = set().union(*(_declared_types(b) for b in branches))
        return float(instance) if "number" in types and "integer" not in types else instance
    if isinstance(instance, dict):
        return {k: _first(_property_schemas(schema, instance, root, k), lambda sub: _coerce(v, sub, root, floats), v)
                for k, v in instance.items()}
    if isinstance(instance, list):
        items = _item_schemas(schema, instance, root)
        return [_coerce(v, items[0], root, floats) if items else v for v in instance]
    return instance


def _alternatives(schema: dict, root: dict) -> list[dict]:
    """The schema and, recursively, each of its oneOf/anyOf alternatives (for text of unknown type)."""
    schema = _resolve(schema, root)
    out = [schema]
    for key in ("oneOf", "anyOf"):
        for sub in schema.get(key, []):
            out += _alternatives(sub, root)
    return out


def _first(candidates: list, apply, default):
    return apply(candidates[0]) if candidates else default


# A filled default can select another branch (a filled `name` picks its if/then), which can have
# defaults of its own: filling repeats until a round fills nothing. Each round that continues has
# filled at least one key that was missing, so the schema's nesting bounds the rounds; the cap is a
# guard against a schema whose branches keep selecting each other.
_MAX_FILL_ROUNDS = 32


def _fill_defaults(instance, schema: dict, root: dict):
    """Fill `default:` values of object properties, in every branch that applies to the instance
    (a oneOf alternative of its type, an if/then selected by its `name`), recursing into objects
    and array items, until a round fills nothing. Whether a round filled anything is counted, not
    found by comparing the instance with a copy: NaN != NaN would make such a comparison loop."""
    for _ in range(_MAX_FILL_ROUNDS):
        if not _fill_round(instance, schema, root):
            return instance
    raise ConfigError(f"the schema's defaults did not settle after {_MAX_FILL_ROUNDS} rounds (a bug in "
                      "schemas/config.schema.yaml: branches whose defaults select each other)")


def _fill_round(instance, schema: dict, root: dict) -> int:
    """One round of _fill_defaults; returns how many keys it filled."""
    filled = 0
    for branch in _branches(schema, instance, root):
        if isinstance(instance, dict):
            for key, sub in branch.get("properties", {}).items():
                sub = _resolve(sub, root)
                if key not in instance and "default" in sub:
                    instance[key] = copy.deepcopy(sub["default"])
                    filled += 1
                if key in instance:
                    filled += _fill_round(instance[key], sub, root)
        elif isinstance(instance, list) and isinstance(branch.get("items"), dict):
            for item in instance:
                filled += _fill_round(item, branch["items"], root)
    return filled


def _check_finite(instance, path=()) -> None:
    """Refuse NaN and infinities anywhere (YAML's .nan/.inf, or "nan" given with --config): no
    setting of a study means anything as NaN, and a NaN learning rate would train a NaN network."""
    if isinstance(instance, float) and not math.isfinite(instance):
        raise ConfigError(f"{_format_path(path)}: {instance!r} is not a finite number")
    if isinstance(instance, dict):
        for key, value in instance.items():
            _check_finite(value, (*path, key))
    elif isinstance(instance, list):
        for i, value in enumerate(instance):
            _check_finite(value, (*path, i))


def _format_path(path, prefix: str = "") -> str:
    out = prefix
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _specific_error(error, root: dict):
    """Inside a oneOf/anyOf, the error of the alternative that matches the instance's type (an
    architecture given as one mapping is judged as a mapping, not as a list)."""
    import jsonschema

    while error.validator in ("oneOf", "anyOf") and error.context:
        alternatives = error.validator_value
        matching = [e for e in error.context
                    if _type_matches(_resolve(alternatives[e.relative_schema_path[0]], root), error.instance)]
        if not matching:
            break
        error = min(matching, key=jsonschema.exceptions.relevance)
    return error


def _one_line(error, root: dict, prefix: str = "") -> str:
    error = _specific_error(error, root)
    where = _format_path(error.absolute_path, prefix)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"unknown key {', '.join(map(repr, extra))} in {where}; allowed: {', '.join(allowed)}"
    if error.validator == "enum":
        return f"{where}: {error.instance!r} is not one of {error.validator_value}"
    if error.validator == "const":
        return f"{where}: {error.instance!r} is not {error.validator_value!r}"
    if error.validator == "dependentRequired":
        return f"{where}: {error.message}"
    if error.validator in ("oneOf", "anyOf"):
        kinds = sorted(set().union(*(_declared_types(_resolve(s, root)) for s in error.validator_value)))
        hint = " or ".join(kinds) or "one of the allowed forms"
        return f"{where}: {error.instance!r} is not valid; expected {hint}" + _text_hint(error.instance)
    if error.validator == "type":
        return f"{where}: {error.instance!r} is not of type {error.validator_value!r}" + _text_hint(error.instance)
    return f"{where}: {error.message}"


def _text_hint(instance) -> str:
    if not isinstance(instance, str):
        return ""
    return (" (a value given with --config arrives as text and is converted only where it parses; "
            "or give it in a file with --configfile)")


def _validate(instance, schema: dict, root: dict, prefix: str = "") -> None:
    import jsonschema

    schema = {**schema, "$defs": root.get("$defs", {})}
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(instance),
                    key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        raise ConfigError(_one_line(errors[0], root, prefix))


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """The config with text converted, defaults filled in and every rule checked; ConfigError (one
    line naming the key and what is allowed) if it is invalid."""
    schema = schema if schema is not None else _schema_at(str(SCHEMA_PATH))
    config = _coerce(copy.deepcopy(dict(config)), schema, schema)
    _check_finite(config)
    _validate(config, schema, schema)
    for i, entry in enumerate(config.get("grid", [])):
        try:
            entry["arch"] = _widths_of_fc(entry["arch"])
        except ConfigError as error:
            raise ConfigError(f"grid[{i}].{error}") from None
    config = _coerce(_fill_defaults(config, schema, schema), schema, schema, floats=True)
    _check_semantics(config)
    return config


def _widths_of_fc(arch):
    """fc's width + depth is stored as widths, so the two ways to write one network are one run."""
    if isinstance(arch, list):
        return [_widths_of_fc(a) for a in arch]
    if arch["name"] == "fc" and "width" in arch:
        if "widths" in arch:
            raise ConfigError(f"arch fc: give widths or width + depth, not both (got {arch})")
        arch = {**{k: v for k, v in arch.items() if k not in ("width", "depth")},
                "widths": [arch["width"]] * arch["depth"]}
    return arch


def complete_section(name: str, value: dict, schema: dict | None = None) -> dict:
    """One $defs entry (e.g. "arch", "optimizer") validated and with its defaults, as the study
    does for every grid entry; for callers of the package that build a network by hand."""
    root = schema if schema is not None else _schema_at(str(SCHEMA_PATH))
    sub = {"$ref": f"#/$defs/{name}"}
    value = _coerce(copy.deepcopy(value), sub, root)
    _check_finite(value, (name,))
    _validate(value, sub, root, prefix=name)
    if name == "arch":
        value = _widths_of_fc(value)
    return _coerce(_fill_defaults(value, sub, root), sub, root, floats=True)


def image_shape(dataset: dict) -> tuple[int, ...]:
    """Per-sample input shape of the configured data set (no data loaded)."""
    return {"digits": (1, 8, 8), "cifar10": (3, 32, 32)}.get(dataset["name"]) or tuple(dataset["input_shape"])


def check_arch_fits(arch: dict, input_shape: tuple) -> None:
    """Rules between an architecture and the data that a JSON schema cannot express."""
    name = arch["name"]
    if name == "fc":
        return
    if len(input_shape) != 3:
        raise ConfigError(f"arch {name} needs image input (C, H, W); the data set's input shape is "
                          f"{list(input_shape)} (use fc for vector data)")
    _, h, w = input_shape
    if name == "wrn" and (arch["depth"] - 4) % 6:
        raise ConfigError(f"arch wrn: depth must be 6n+4 (10, 16, 22, 28, ...), got {arch['depth']}")
    if name == "convmixer" and arch["patch"] > min(h, w):
        raise ConfigError(f"arch convmixer: patch {arch['patch']} must be at most the image size {h}x{w}")
    if name == "vit" and (h % arch["patch"] or w % arch["patch"]):
        raise ConfigError(f"arch vit: patch {arch['patch']} must divide the image size {h}x{w}")


def _check_semantics(config: dict) -> None:
    """Rules a JSON schema cannot express well, with the same one-line messages."""
    from .resources import dataset_size

    dataset = config["dataset"]
    if dataset["name"] == "recorded":
        if config["grid"]:
            raise ConfigError("grid: a study of dataset recorded imports its runs and trains none; leave grid empty "
                              "or name the data set the grid trains on")
        if not config["imports"]:
            raise ConfigError("imports: dataset recorded needs run files to import (imports: [{path: ...}])")
        return
    if not config["grid"] and not config["imports"]:
        raise ConfigError("grid: the study has no run: give a grid entry or import recorded runs")
    if dataset["name"] == "synthetic" and len(dataset["input_shape"]) == 2:
        raise ConfigError(f"dataset.input_shape: [D] or [C, H, W], got {dataset['input_shape']}")
    shape = image_shape(dataset)
    n_train = dataset_size(dataset, recorded=False)[0]
    _check_recorded_samples(dataset)
    for i, entry in enumerate(config["grid"]):
        for arch in _as_list(entry["arch"]):
            try:
                check_arch_fits(arch, shape)
            except ConfigError as error:
                raise ConfigError(f"grid[{i}].{error}") from None
        for opt in _as_list(entry["optimizer"]):
            if opt["name"] == "sgd" and opt["nesterov"] and not opt["momentum"]:
                raise ConfigError(f"grid[{i}].optimizer: nesterov needs momentum > 0")
        for batch_size in _as_list(entry["batch_size"]):
            if batch_size > n_train:
                raise ConfigError(f"grid[{i}].batch_size: {batch_size} exceeds the {n_train} training samples of "
                                  f"{dataset['name']}")
        inits = entry["init"]
        for j, init in enumerate(_as_list(inits)):
            _check_init(init, f"grid[{i}].init" + (f"[{j}]" if isinstance(inits, list) else ""), dataset, n_train)


#: Each split must record at least this many samples per class: distances, errors and progress are
#: means over the recorded samples, and with fewer a single sample moves them by more than runs differ.
MIN_SAMPLES_PER_CLASS = 10


def _check_recorded_samples(dataset: dict) -> None:
    """Refuse a data set (or a `keep_every`) that leaves too few samples to record on."""
    from .resources import dataset_size

    full, kept = dataset_size(dataset, recorded=False), dataset_size(dataset)
    need = MIN_SAMPLES_PER_CLASS * full[2]
    minimum = (f"each split must keep at least {need} ({MIN_SAMPLES_PER_CLASS} per class: distances and errors are "
               "means over the recorded samples)")
    splits = {"train": (full[0], kept[0]), "test": (full[1], kept[1])}
    for split, (n_full, _) in splits.items():
        if n_full < need:
            raise ConfigError(f"dataset: {dataset['name']} has {n_full} {split} samples; {minimum}")
    for split, (n_full, n_kept) in splits.items():
        if n_kept < need:
            # the largest k with ceil(n / k) >= need, on both splits
            largest = min(math.ceil(n / (need - 1)) - 1 for n, _ in splits.values())
            raise ConfigError(f"dataset.keep_every: {dataset['keep_every']} keeps {n_kept} of the {n_full} {split} "
                              f"samples of {dataset['name']}; {minimum}: use keep_every <= {largest}")


def _check_init(init: dict, where: str, dataset: dict, n_train: int) -> None:
    from .resources import dataset_size

    optimizer = init.get("optimizer")
    if optimizer and optimizer["name"] == "sgd" and optimizer["nesterov"] and not optimizer["momentum"]:
        raise ConfigError(f"{where}.optimizer: nesterov needs momentum > 0")
    limit, what = n_train, f"the {n_train} training samples of {dataset['name']}"
    if init["name"] == "subsample":
        classes = dataset_size(dataset, recorded=False)[2]
        samples = init["samples"]
        if samples > n_train:
            raise ConfigError(f"{where}.samples: {samples} exceeds {what}")
        if samples % classes:
            raise ConfigError(f"{where}.samples: {samples} is not divisible into the {classes} classes of "
                              f"{dataset['name']} (a class-balanced subset needs a multiple of {classes})")
        limit, what = samples, f"the subset's {samples} samples"
    if init.get("batch_size", 0) > limit:
        raise ConfigError(f"{where}.batch_size: {init['batch_size']} exceeds {what}")


def check_data_present(dataset: dict) -> None:
    """A data set on disk that is missing is found now, not in every training job."""
    if dataset["name"] != "cifar10" or dataset["download"]:
        return
    folder = Path(dataset["data_dir"]) / "cifar-10-batches-py"
    if not folder.is_dir():
        raise ConfigError(f"dataset.data_dir: {str(folder.resolve())!r} does not exist; put the extracted CIFAR-10 "
                          "python version (cifar-10-python.tar.gz) there, or set dataset.download: true to fetch it")


# --------------------------------------------------------------------------------------------
# the study's folder

#: The default study's folder; the study of a config file `<name>.yaml` writes to `results-<name>`.
DEFAULT_RESULTS = "results"
#: The file in a study's folder that names the config file whose study it holds.
STUDY_MARKER = ".inpca-study"


def _shown(path) -> str:
    """A path as the user would type it in the working directory (relative when inside it)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _own_folder(config_file: Path) -> str:
    """The folder of the study of a config file: `results` for a config.yaml, else `results-<name>`."""
    return DEFAULT_RESULTS if config_file.name == "config.yaml" else f"{DEFAULT_RESULTS}-{config_file.stem}"


def results_folder(config: dict, configfiles) -> tuple[str, str]:
    """(folder, owner): where the study writes, and the config file(s) it comes from as the user named
    them. The config's `results` key decides; else the folder of the last config file (the default
    config.yaml, or the last --configfile, which is the whole study): see :func:`_own_folder`."""
    files = [Path(f) for f in configfiles] or [Path("config.yaml")]
    owner = ", ".join(_shown(f) for f in files)
    return str(config.get("results") or _own_folder(files[-1])), owner


def claim_results_folder(folder: str, owner: str, write: bool) -> None:
    """Refuse to write a study into a folder that holds another config file's study (ConfigError, one
    line); with `write`, mark the folder as this study's. The mark is the config file's path: editing
    a config keeps its study, moving or renaming it asks (deleting the mark says it is the same study)."""
    marker = Path(folder) / STUDY_MARKER
    if marker.exists():
        holder = marker.read_text().strip()
        if holder != owner:
            raise ConfigError(f"results: {folder} holds the study of {holder}, and {owner} would overwrite it; give "
                              f"this study a folder of its own (results: <folder> in {owner.split(', ')[-1]}; "
                              f"left out, it is {_own_folder(Path(owner.split(', ')[-1]))}), or delete {marker} if "
                              f"{owner} is that study moved or renamed")
    elif write:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(owner + "\n")


# --------------------------------------------------------------------------------------------
# expansion


def _as_list(value):
    return value if isinstance(value, list) else [value]


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
        choices = [_as_list(entry[k]) for k in _GRID_LIST_KEYS]
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
    config = validate_config(config, load_schema(schema_path))
    if check_data:
        check_data_present(config["dataset"])
    runs = expand_grid(config)
    if config["imports"]:
        from .imports import scan

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


def resolve_column(columns, name: str, key: str = "plots.color_by") -> str:
    """The column `name` of a table with these columns, or the one column ending in `.{name}`
    (lr -> optimizer.lr); ConfigError (one line naming `key`) otherwise."""
    columns = [str(c) for c in columns]
    if name in columns:
        return name
    matches = [c for c in columns if c.endswith("." + name)]
    if len(matches) == 1:
        return matches[0]
    hint = f" (ambiguous: {', '.join(matches)})" if matches else ""
    raise ConfigError(f"{key}: {name!r} is not a column of index.tsv{hint}; available columns: {', '.join(columns)}")


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
