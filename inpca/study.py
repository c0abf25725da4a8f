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
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

# Bump one of these when package code changes what a stage produces on purpose: rules take the
# number as a param, so Snakemake reruns that stage (and what depends on it) and nothing earlier.
RESULTS_VERSION = {"train": 1, "store": 1, "distance": 1, "embedding": 1, "plots": 1}

REFERENCE_BLOCK = "ref"
SPLITS = ("train", "test")

# Fields of `dataset` that change the samples, per data set (data_dir and download do not).
_DATASET_IDENTITY = {
    "digits": ("test_fraction", "split_seed", "keep_every"),
    "cifar10": ("keep_every",),
    "synthetic": ("n_train", "n_test", "num_classes", "input_shape", "seed", "keep_every"),
}
_FLOAT_FIELDS = {"lr", "momentum", "weight_decay", "warmup_epochs"}
_GRID_LIST_KEYS = ("arch", "optimizer", "batch_size", "weight_decay", "augment", "epochs", "seed")


class ConfigError(ValueError):
    """A study config that does not match the schema; the message is one line."""


@dataclass(frozen=True)
class Study:
    config: dict
    runs: dict[str, dict]  # run id -> canonical run config, sorted by id
    blocks: dict[str, list[str]] = field(default_factory=dict)  # block -> run ids (non-empty blocks)

    @property
    def point_blocks(self) -> list[str]:
        """Blocks in the order their points appear in index.tsv and the distance matrices."""
        return [REFERENCE_BLOCK, *self.blocks]

    @property
    def tiles(self) -> list[tuple[str, str]]:
        """Every pair of blocks (bi, bj) with bi at or before bj in point order."""
        names = self.point_blocks
        return [(a, b) for i, a in enumerate(names) for b in names[i:]]

    @property
    def splits(self) -> list[str]:
        return list(self.config["distance"]["splits"])

    def block_of(self, run_id: str) -> str:
        return block_of(run_id, self.config["store"]["blocks"])


# --------------------------------------------------------------------------------------------
# validation


def load_schema(path: str | Path) -> dict:
    import yaml

    with open(path) as f:
        return yaml.safe_load(f)


def _resolve(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref")
    if ref and ref.startswith("#/"):
        node = root
        for part in ref[2:].split("/"):
            node = node[part]
        merged = {k: v for k, v in schema.items() if k != "$ref"}
        return {**_resolve(node, root), **merged}
    return schema


def _fill_defaults(instance, schema: dict, root: dict):
    """Fill `default:` values of object properties, recursing into objects and array items."""
    schema = _resolve(schema, root)
    if isinstance(instance, dict):
        for key, sub in schema.get("properties", {}).items():
            sub_resolved = _resolve(sub, root)
            if key not in instance and "default" in sub_resolved:
                instance[key] = copy.deepcopy(sub_resolved["default"])
            if key in instance:
                _fill_defaults(instance[key], sub_resolved, root)
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for item in instance:
            _fill_defaults(item, schema["items"], root)
    return instance


def _format_path(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _one_line(error) -> str:
    import jsonschema

    error = jsonschema.exceptions.best_match([error])
    where = _format_path(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"unknown key {', '.join(map(repr, extra))} in {where}; allowed: {', '.join(allowed)}"
    if error.validator == "enum":
        return f"{where}: {error.instance!r} is not one of {error.validator_value}"
    if error.validator == "required":
        return f"{where}: {error.message}"
    if error.validator == "oneOf":
        # say what the alternatives expect instead of jsonschema's "is not valid under any"
        descs = [_resolve(s, error.schema).get("type", "") if isinstance(s, dict) else "" for s in error.validator_value]
        hint = " or ".join(str(d) for d in descs if d) or "one of the allowed forms"
        return f"{where}: {error.instance!r} is not valid; expected {hint}"
    return f"{where}: {error.message}"


def validate_config(config: dict, schema: dict) -> dict:
    """Return a deep copy of `config` with defaults filled in; raise ConfigError (one line) if invalid."""
    import jsonschema

    config = _fill_defaults(copy.deepcopy(dict(config)), schema, schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        raise ConfigError(_one_line(errors[0]))
    _check_semantics(config)
    return config


def _check_semantics(config: dict) -> None:
    """Rules a JSON schema cannot express well, with the same one-line messages."""
    for i, entry in enumerate(config["grid"]):
        for arch in _as_list(entry["arch"]):
            if arch["name"] == "fc" and "widths" in arch and ("width" in arch or "depth" in arch):
                raise ConfigError(f"grid[{i}].arch: fc takes either widths or width+depth, not both")
            if arch["name"] == "fc" and "width" in arch and arch["width"] != int(arch["width"]):
                raise ConfigError(f"grid[{i}].arch.width: fc's width is a number of units, got {arch['width']}")
        for opt in _as_list(entry["optimizer"]):
            if opt["name"] != "sgd" and ("momentum" in opt or "nesterov" in opt):
                raise ConfigError(f"grid[{i}].optimizer: momentum/nesterov apply to sgd only, not {opt['name']}")
            if opt["name"] == "sgd" and opt.get("nesterov") and not opt.get("momentum"):
                raise ConfigError(f"grid[{i}].optimizer: nesterov needs momentum > 0")
            if opt["name"] == "sgd" and "betas" in opt:
                raise ConfigError(f"grid[{i}].optimizer: betas apply to adam/adamw only")


# --------------------------------------------------------------------------------------------
# expansion


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _normalise_numbers(obj):
    if isinstance(obj, dict):
        return {k: (float(v) if k in _FLOAT_FIELDS and isinstance(v, (int, float)) and not isinstance(v, bool)
                    else _normalise_numbers(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_normalise_numbers(v) for v in obj]
    return obj


def _canonical_arch(arch: dict) -> dict:
    """fc's width counts units (int); allcnn's width is a channel multiplier (float)."""
    arch = dict(arch)
    if "width" in arch:
        arch["width"] = int(arch["width"]) if arch["name"] == "fc" else float(arch["width"])
    return arch


def _canonical_optimizer(opt: dict) -> dict:
    opt = dict(opt)
    if opt["name"] == "sgd":
        opt.setdefault("momentum", 0.0)
        opt.setdefault("nesterov", False)
    else:
        opt.setdefault("betas", [0.9, 0.999])
    return opt


def dataset_identity(dataset: dict) -> dict:
    name = dataset["name"]
    return {"name": name, **{k: dataset[k] for k in _DATASET_IDENTITY[name]}}


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def run_id(run: dict) -> str:
    digest = hashlib.sha256(canonical_json(run).encode()).hexdigest()[:8]
    opt = run["optimizer"]
    opt_label = "sgdn" if opt["name"] == "sgd" and opt.get("nesterov") else opt["name"]
    return f"{run['arch']['name']}-{opt_label}-s{run['seed']}-{digest}"


def block_of(run_id: str, n_blocks: int) -> str:
    index = int(hashlib.sha256(run_id.encode()).hexdigest()[:12], 16) % n_blocks
    return f"b{index:03d}"


def expand_grid(config: dict) -> dict[str, dict]:
    """All runs of the study, id -> canonical config. Raises ConfigError on duplicates."""
    shared = {
        "dataset": dataset_identity(config["dataset"]),
        "checkpoints": {k: v for k, v in config["checkpoints"].items()},
    }
    runs: dict[str, dict] = {}
    origin: dict[str, int] = {}
    for i, entry in enumerate(config["grid"]):
        choices = [_as_list(entry[k]) for k in _GRID_LIST_KEYS]
        for values in itertools.product(*choices):
            run = dict(zip(_GRID_LIST_KEYS, values))
            run["optimizer"] = _canonical_optimizer(run["optimizer"])
            run["arch"] = _canonical_arch(run["arch"])
            for key in ("lr_schedule", "warmup_epochs", "precision"):
                run[key] = entry[key]
            run.update(shared)
            run = _normalise_numbers(run)
            rid = run_id(run)
            if rid in runs:
                where = f"grid[{origin[rid]}]" + (" (twice)" if origin[rid] == i else f" and grid[{i}]")
                raise ConfigError(f"{where} both expand to run {rid}; remove the duplicate")
            runs[rid] = run
            origin[rid] = i
    return dict(sorted(runs.items()))


def load_study(config: dict, schema_path: str | Path) -> Study:
    config = validate_config(config, load_schema(schema_path))
    runs = expand_grid(config)
    blocks: dict[str, list[str]] = {}
    for rid in runs:
        blocks.setdefault(block_of(rid, config["store"]["blocks"]), []).append(rid)
    return Study(config=config, runs=runs, blocks=dict(sorted(blocks.items())))


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


def runs_table_rows(study: Study) -> list[dict]:
    """One row per run for results/runs.tsv."""
    return [{"run": rid, "block": study.block_of(rid), **flatten(run)} for rid, run in study.runs.items()]
