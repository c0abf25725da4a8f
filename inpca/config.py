"""The study config: the schema as the one source of truth, and everything that checks a config.

A config (config.yaml, a --configfile) is validated against ``inpca/schemas/config.schema.yaml`` when
Snakemake parses the workflow: text given with ``--config`` is converted to the types the schema asks
for, NaN and infinities are refused, unknown keys and bad values stop the parse with one line naming
the key (:class:`~inpca.errors.ConfigError`), defaults are filled in (so two ways of writing one
network are one run), and the rules a schema cannot express are checked (an architecture against the
data set's images, a corner's subset against its classes, the samples ``keep_every`` leaves). The
study's folder (``results:``, or one derived from the config file's name) is decided here too.

Facts the schema states are read from it once, here: the architectures (:data:`ARCHITECTURES`) and
the splits (:data:`SPLITS`).

Standard library plus PyYAML and jsonschema only: every cluster job re-parses the workflow.
"""

from __future__ import annotations

import copy
import functools
import math
from importlib import resources
from pathlib import Path

from .errors import ConfigError
from .folders import STUDY_MARKER, folder_of_config, study_config_file
from .resources import dataset_size

#: The schema, shipped inside the package (``inpca/schemas/config.schema.yaml``) and found through
#: importlib.resources, so an installed package (a wheel, no checkout) validates as the workflow does;
#: the workflow (rules/common.smk) reads this same file through the package beside it.
SCHEMA = resources.files(__package__) / "schemas" / "config.schema.yaml"
#: The schema as a path, for callers that want one (a plain file for any installed package; only a
#: package imported from a zip has none on disk, and :func:`cached_schema` still reads it from SCHEMA).
SCHEMA_PATH = SCHEMA if isinstance(SCHEMA, Path) else Path(str(SCHEMA))


# --------------------------------------------------------------------------------------------
# validation: the schema is the one source of truth for keys, types and defaults


def load_schema(path=SCHEMA) -> dict:
    """The schema in `path` (a path, or an importlib.resources Traversable; default the package's own)."""
    import yaml

    source = path if hasattr(path, "read_text") else Path(path)
    return yaml.safe_load(source.read_text(encoding="utf-8"))


def cached_schema(path: str | None = None) -> dict:
    """The schema at `path` (default: the package's own), parsed once per process (read only: validation
    copies what it fills)."""
    return _parsed_schema(None if path is None or str(path) == str(SCHEMA) else str(path))


@functools.lru_cache(maxsize=4)
def _parsed_schema(path: str | None) -> dict:
    return load_schema(SCHEMA if path is None else path)


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
        alternatives = [_resolve(b, root) for b in _alternatives(schema, root)]
        types = set().union(*(_declared_types(b) for b in alternatives))
        # a word the schema names (a const or enum beside a number: "authors") stays text; free text
        # ("type: string") stays text; anything else is parsed as the number or boolean it asks for
        words = {str(w) for b in alternatives for w in b.get("enum", [b["const"]] if "const" in b else [])}
        free_text = any("type" in b and "string" in _declared_types(b) for b in alternatives)
        if instance not in words and not free_text and types & {"integer", "number", "boolean"}:
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
                      "inpca/schemas/config.schema.yaml: branches whose defaults select each other)")


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
    schema = schema if schema is not None else cached_schema()
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
    root = schema if schema is not None else cached_schema()
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
        for arch in as_list(entry["arch"]):
            try:
                check_arch_fits(arch, shape)
            except ConfigError as error:
                raise ConfigError(f"grid[{i}].{error}") from None
        for opt in as_list(entry["optimizer"]):
            if opt["name"] == "sgd" and opt["nesterov"] and not opt["momentum"]:
                raise ConfigError(f"grid[{i}].optimizer: nesterov needs momentum > 0")
        for batch_size in as_list(entry["batch_size"]):
            if batch_size > n_train:
                raise ConfigError(f"grid[{i}].batch_size: {batch_size} exceeds the {n_train} training samples of "
                                  f"{dataset['name']}")
        inits = entry["init"]
        for j, init in enumerate(as_list(inits)):
            _check_init(init, f"grid[{i}].init" + (f"[{j}]" if isinstance(inits, list) else ""), dataset, n_train)


#: Each split must record at least this many samples per class: distances, errors and progress are
#: means over the recorded samples, and with fewer a single sample moves them by more than runs differ.
MIN_SAMPLES_PER_CLASS = 10


def _check_recorded_samples(dataset: dict) -> None:
    """Refuse a data set (or a `keep_every`) that leaves too few samples to record on."""
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

def _shown(path) -> str:
    """A path as the user would type it in the working directory (relative when inside it)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def results_folder(config: dict, configfiles) -> tuple[str, str]:
    """(folder, owner): where the study writes, and the config file(s) it comes from as the user named
    them. The config's `results` key decides; else the folder of the last config file (the default
    config.yaml, or the last --configfile, which is the whole study): see :func:`folder_of_config`."""
    files = [Path(f) for f in configfiles] or [Path("config.yaml")]
    owner = ", ".join(_shown(f) for f in files)
    return str(config.get("results") or folder_of_config(files[-1])), owner


#: What a study must have made to serve as an atlas (inpca.atlas), checked at parse by name only.
ATLAS_FILES = ("store/index.tsv", "store/ref.h5", "trajectories/index.tsv", "embedding/{split}.h5",
               "analysis/{split}/speed_runs.tsv", "analysis/{split}/equal_progress.h5")


def atlas_files(folder, splits) -> list[Path]:
    """The files of ATLAS_FILES in an atlas folder, for the given splits, each once."""
    return list(dict.fromkeys(Path(folder) / name.format(split=split) for split in splits for name in ATLAS_FILES))


def check_atlas(atlas: dict, results: str) -> None:
    """The config's `atlas` (if any): a finished study's folder, not this study's own."""
    if not atlas:
        return
    folder = Path(atlas["path"])
    if folder.resolve() == Path(results).resolve():
        raise ConfigError(f"atlas.path: {atlas['path']!r} is this study's own folder; an atlas is another, finished "
                          "study")
    if not folder.is_dir():
        raise ConfigError(f"atlas.path: {str(folder.resolve())!r} does not exist; give the results folder of a finished "
                          "study")
    for path in atlas_files(folder, [atlas["split"]]):
        if not path.exists():
            raise ConfigError(f"atlas.path: {path} is missing; the atlas must be a finished study (run its analysis "
                              "target first)")


def claim_results_folder(folder: str, owner: str, write: bool) -> None:
    """Refuse to write a study into a folder that holds another config file's study (ConfigError, one
    line); with `write`, mark the folder as this study's. The mark is the config file's path: editing
    a config keeps its study, moving or renaming it asks (deleting the mark says it is the same study)."""
    marker = Path(folder) / STUDY_MARKER
    if marker.exists():
        holder = marker.read_text().strip()
        if holder != owner:
            config_file = study_config_file(owner)
            raise ConfigError(f"results: {folder} holds the study of {holder}, and {owner} would overwrite it; give "
                              f"this study a folder of its own (results: <folder> in {config_file}; "
                              f"left out, it is {folder_of_config(Path(config_file))}), or delete {marker} if "
                              f"{owner} is that study moved or renamed")
    elif write:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(owner + "\n")


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


# --------------------------------------------------------------------------------------------
# facts the schema states


def _schema_enum(*keys) -> tuple[str, ...]:
    node = cached_schema()
    for key in keys:
        node = node[key]
    return tuple(node["enum"])


#: The architectures a grid can train ($defs/arch's names), in the schema's order.
ARCHITECTURES = _schema_enum("$defs", "arch", "properties", "name")
#: The predictions a study records and maps: on the training set and on the held-out set.
SPLITS = _schema_enum("properties", "distance", "properties", "splits", "items")


def as_list(value):
    """A grid value that may be one value or a list of them, as a list."""
    return value if isinstance(value, list) else [value]


