"""What a configuration of a study is: the normalised config fields of each run, its architecture, the
factor of variation each field belongs to, and a short readable label per configuration
(:func:`configuration_labels`: every config field but the seed). The paper's analysis
(:mod:`inpca.analysis`) and the atlas (:mod:`inpca.atlas`) both group runs by these labels, so they live
here, below both."""

from __future__ import annotations

import json
import math
from typing import Sequence

import numpy as np
import pandas as pd

from .errors import ResultsError
from .study import GEODESIC

# Config fields of a run that are not nested (arch.*, optimizer.*, dataset.*, checkpoints.* are).
RUN_FIELDS = ("batch_size", "weight_decay", "augment", "epochs", "seed", "lr_schedule", "warmup_epochs",
              "precision")
# Factors of variation, in the order they are listed when importances tie. The first eight are the
# paper's; the last five appear only when a study varies them (so that "differs in this factor
# alone" really means every other config field is equal).
FACTORS = ("architecture", "width/depth", "optimizer", "learning rate", "batch size", "weight decay",
           "augmentation", "seed", "epochs", "lr schedule", "precision", "initialization", "other")
SEP = " \u00b7 "  # " · " between the parts of a configuration label
# init.name of a run at the default initialisation (no `init` key in its config), once a study has corners.
DEFAULT_INIT = "default"


# --------------------------------------------------------------------------------------------------
# normalised values and the rows of a trajectories table


def normalised(value) -> str:
    """A config value as canonical text: '' for missing, 'true'/'false', ints without '.0', canonical JSON."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return ""
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    text = str(value).strip()
    low = text.lower()
    if low in ("", "nan", "none", "null"):
        return ""
    if low in ("true", "false"):
        return low
    try:
        return normalised(float(text))
    except ValueError:
        pass
    if text[:1] in "[{":
        try:
            return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
        except ValueError:
            pass
    return text


def shown_value(text: str) -> str:
    """A normalised value for a label: numbers in short form (0.0005, 5e-05, 128)."""
    try:
        v = float(text)
    except ValueError:
        return text
    return f"{v:g}"


def check_trajectories(trajectories) -> None:
    if not isinstance(trajectories, pd.DataFrame):
        raise ResultsError(f"trajectories: expected a pandas DataFrame, got {type(trajectories).__name__}")
    missing = [c for c in ("run", "kind") if c not in trajectories.columns]
    if missing:
        raise ResultsError(f"trajectories: missing column(s) {', '.join(missing)}")
    kinds = set(trajectories["kind"].astype(str))
    bad = sorted(kinds - {"run", GEODESIC})
    if bad:
        raise ResultsError(f"trajectories.kind: expected 'run' or 'geodesic', got {', '.join(map(repr, bad))}")


def run_mask(trajectories) -> np.ndarray:
    return (trajectories["kind"].astype(str) == "run").to_numpy()


def geodesic_mask(trajectories) -> np.ndarray:
    return (trajectories["kind"].astype(str) == GEODESIC).to_numpy()


def geodesic_row(trajectories) -> int:
    rows = np.flatnonzero(geodesic_mask(trajectories))
    if len(rows) != 1:
        raise ResultsError(f"trajectories: expected one row of kind 'geodesic', found {len(rows)}")
    return int(rows[0])


def archs_of(trajectories) -> np.ndarray:
    """Architecture name of every row; 'geodesic' on the geodesic row."""
    if "arch" in trajectories.columns:
        arch = trajectories["arch"]
    elif "arch.name" in trajectories.columns:
        arch = trajectories["arch.name"]
    else:
        arch = pd.Series([""] * len(trajectories), index=trajectories.index)
    out = np.array([normalised(a) or "?" for a in arch], dtype=object)
    out[geodesic_mask(trajectories)] = GEODESIC
    return out


def config_columns(trajectories) -> list[str]:
    """Config fields: the dotted columns and the run's top-level fields, in table order."""
    return [c for c in trajectories.columns if "." in str(c) or c in RUN_FIELDS]


def config_frame(trajectories) -> pd.DataFrame:
    """Normalised config values (text) of every row; arch.name / optimizer.name from the labels if absent."""
    cols = config_columns(trajectories)
    frame = pd.DataFrame({c: [normalised(v) for v in trajectories[c]] for c in cols}, index=trajectories.index)
    if "arch.name" not in frame.columns and "arch" in trajectories.columns:
        frame.insert(0, "arch.name", [normalised(v) for v in trajectories["arch"]])
    if not any(str(c).startswith("optimizer.") for c in frame.columns) and "optimizer" in trajectories.columns:
        frame["optimizer.name"] = [normalised(v) for v in trajectories["optimizer"]]
    if any(is_init_field(c) for c in frame.columns):
        # a run without an init.name started at the default initialisation: a configuration of its own
        if "init.name" not in frame.columns:
            frame["init.name"] = ""
        frame.loc[frame["init.name"] == "", "init.name"] = DEFAULT_INIT
    frame.loc[geodesic_mask(trajectories), :] = ""
    return frame


def is_init_field(column) -> bool:
    return str(column).startswith("init.")


def factor_of(column: str) -> str:
    if is_init_field(column):
        return "initialization"
    if column == "arch.name":
        return "architecture"
    if column.startswith("arch."):
        return "width/depth"
    if column == "optimizer.lr":
        return "learning rate"
    if column.startswith("optimizer."):
        return "optimizer"
    return {"batch_size": "batch size", "weight_decay": "weight decay", "augment": "augmentation",
            "seed": "seed", "epochs": "epochs", "lr_schedule": "lr schedule", "warmup_epochs": "lr schedule",
            "precision": "precision"}.get(column, "other")


# --------------------------------------------------------------------------------------------------
# configurations


def _varying(frame: pd.DataFrame, rows: np.ndarray, strict: bool) -> list[str]:
    """Columns whose values differ among `rows`; not strict: ignoring empty cells (a field that only
    some architectures or optimizers have varies only if two of them have different values)."""
    out = []
    for c in frame.columns:
        values = set(frame[c].to_numpy()[rows])
        if not strict:
            values.discard("")
        if len(values) > 1:
            out.append(c)
    return out


def _label(row: dict, varying: list[str], optimizer_label: str, init_fields: list[str]) -> str:
    arch_cols = [c for c in varying if c.startswith("arch.")]
    opt_cols = [c for c in varying if c.startswith("optimizer.") and c != "optimizer.lr"]
    parts = []
    if arch_cols:
        arch = [row.get("arch.name", "") or "?"]
        for c in arch_cols:
            if c == "arch.name" or not row[c]:
                continue
            arch.append(row[c] if row[c].startswith("[") else f"{c.split('.', 1)[1]} {shown_value(row[c])}")
        parts.append(" ".join(arch))
    opt = []
    if opt_cols:
        opt.append(optimizer_label or row.get("optimizer.name", "") or "?")
        for c in opt_cols:
            if c in ("optimizer.name", "optimizer.nesterov") or not row[c]:
                continue
            key = {"momentum": "mom"}.get(c.split(".", 1)[1], c.split(".", 1)[1])
            opt.append(f"{key} {shown_value(row[c])}")
    if "optimizer.lr" in varying and row.get("optimizer.lr"):
        opt.append(f"lr {shown_value(row['optimizer.lr'])}")
    if opt:
        parts.append(" ".join(opt))
    for c in varying:
        if c.startswith(("arch.", "optimizer.", "init.")) or c == "seed" or not row[c]:
            continue
        v = row[c]
        if c == "batch_size":
            parts.append(f"bs {shown_value(v)}")
        elif c == "weight_decay":
            parts.append(f"wd {shown_value(v)}")
        elif c == "augment":
            parts.append("aug" if v == "true" else "no aug")
        elif c == "epochs":
            parts.append(f"{shown_value(v)} ep")
        elif c == "warmup_epochs":
            parts.append(f"warmup {shown_value(v)}")
        elif c in ("lr_schedule", "precision"):
            parts.append(v)
        else:
            parts.append(f"{c} {shown_value(v)}")
    if any(is_init_field(c) for c in varying):
        parts.append(init_label(row, init_fields))
    return SEP.join(parts)


# init.* fields shown after the name of the corner, and how
_INIT_FIELDS = {"init.epochs": "init {} ep", "init.seed": "corner s{}", "init.batch_size": "init bs {}",
                "init.weight_decay": "init wd {}", "init.optimizer.lr": "init lr {}"}
_INIT_HEAD = ("init.name", "init.samples", "init.scale")
_INIT_OPTIMIZER = ("init.optimizer.name", "init.optimizer.nesterov", "init.optimizer.momentum", "init.optimizer.betas")


def init_fields_shown(frame: pd.DataFrame, rows: np.ndarray) -> list[str]:
    """The init.* sub-fields a label must show: those that differ between two of `rows` with the same
    init name, samples and scale and every other field equal but the seed. A corner's pre-training
    optimizer, batch size and weight decay default to the run's own, so they vary with them across the
    study; they are shown only when they tell two corners of the same training apart."""
    init_cols = [c for c in frame.columns if is_init_field(c)]
    if not init_cols or "init.name" not in frame.columns:
        return []
    group_cols = [c for c in frame.columns if c != "seed" and (not is_init_field(c) or c in _INIT_HEAD)]
    shown = set()
    values = frame[init_cols].to_numpy()
    groups: dict[tuple, list[int]] = {}
    for i, key in zip(rows, frame[group_cols].iloc[rows].itertuples(index=False, name=None)):
        groups.setdefault(key, []).append(i)
    for members in groups.values():
        if len(members) < 2:
            continue
        for j, c in enumerate(init_cols):
            found = set(values[members, j])
            if c in _INIT_OPTIMIZER[1:]:  # momentum of sgd, betas of adam: compared only where both have one
                found.discard("")
            if len(found) > 1:
                shown.add(c)
    return [c for c in init_cols if c in shown and c not in _INIT_HEAD]


def init_label(row: dict, init_fields: list[str]) -> str:
    """The initialisation of a configuration, compactly: "default init", "random_labels", "subsample 100"
    (its samples), "perturbed 0.1" (its scale), then the sub-fields ``init_fields`` (:func:`init_fields_shown`)
    that it has ("init 30 ep", "corner s1" for init.seed, "init lr 0.1", "init adam"), joined by " · "."""
    name = row.get("init.name", "") or DEFAULT_INIT
    if name == DEFAULT_INIT:
        return "default init"
    head = name
    for c in ("init.samples", "init.scale"):
        if row.get(c):
            head += f" {shown_value(row[c])}"
    parts = [head]
    if any(c in init_fields for c in _INIT_OPTIMIZER) and row.get("init.optimizer.name"):
        opt = row["init.optimizer.name"]
        if opt == "sgd" and row.get("init.optimizer.nesterov") == "true":
            opt += "-nesterov"
        words = [f"init {opt}"]
        if "init.optimizer.momentum" in init_fields and row.get("init.optimizer.momentum"):
            words.append(f"mom {shown_value(row['init.optimizer.momentum'])}")
        if "init.optimizer.betas" in init_fields and row.get("init.optimizer.betas"):
            words.append(f"betas {row['init.optimizer.betas']}")
        parts.append(" ".join(words))
    for c in init_fields:
        if c in _INIT_HEAD or c in _INIT_OPTIMIZER or not row.get(c):
            continue
        form = _INIT_FIELDS.get(c, "init " + c.split(".", 1)[1] + " {}")
        parts.append(form.format(shown_value(row[c])))
    return SEP.join(parts)


def configuration_labels(trajectories: pd.DataFrame) -> pd.Series:
    """A short readable label per row naming its configuration (all config fields but the seed).

    Built only from the fields that vary among the study's runs, e.g. ``"fc [64,64] · sgd-nesterov
    lr 0.05"``, ``"allcnn · adam"``; ``"geodesic"`` on the geodesic row. The architecture name is
    shown whenever an ``arch.*`` field varies, the optimizer label (column ``optimizer``, e.g.
    "sgd-nesterov") whenever an ``optimizer.*`` field other than the learning rate varies. A field that
    only some architectures or optimizers have (``arch.widths``, ``optimizer.momentum``) is shown only
    when two runs have different values of it. When nothing varies, the label is ``"<arch> · <optimizer>"``.
    In a study with corners (``init.*`` columns) the initialisation is the last part of the label
    whenever an ``init.*`` field varies: ``"default init"``, ``"random_labels"``, ``"subsample 100"``,
    ``"perturbed 0.1"``, followed by the init fields that tell apart two corners of the same name, samples
    and scale whose runs are otherwise equal but for the seed (``"init 30 ep"``, ``"corner s1"`` for
    ``init.seed``, ``"init lr 0.1"``); a corner's optimizer or batch size that just follows the run's own
    is not repeated.
    Runs that differ only in their seed share a label; different configurations never do (if the
    short labels collide, every varying field is used, then ``" #2"``, ``" #3"`` is appended).
    Returns a Series with the index of ``trajectories``.
    """
    check_trajectories(trajectories)
    frame = config_frame(trajectories)
    frame_no_seed = frame.drop(columns=[c for c in frame.columns if c == "seed"])
    is_run = run_mask(trajectories)
    keys = [tuple(r) for r in frame_no_seed.itertuples(index=False, name=None)]
    if "optimizer" in trajectories.columns:
        opt_labels = [normalised(v) for v in trajectories["optimizer"]]
    else:
        opt_labels = [""] * len(trajectories)
    for i, lab in enumerate(opt_labels):
        if not lab and is_run[i]:
            name = frame["optimizer.name"].iloc[i] if "optimizer.name" in frame.columns else ""
            nesterov = frame["optimizer.nesterov"].iloc[i] if "optimizer.nesterov" in frame.columns else ""
            opt_labels[i] = f"{name}-nesterov" if name == "sgd" and nesterov == "true" else name
    records = frame_no_seed.to_dict("records")

    init_fields = init_fields_shown(frame_no_seed, np.flatnonzero(is_run))

    def build(strict: bool) -> dict:
        varying = _varying(frame_no_seed, is_run, strict)
        out = {}
        for i in np.flatnonzero(is_run):
            if keys[i] not in out:
                out[keys[i]] = _label(records[i], varying, opt_labels[i], init_fields)
        return out

    by_key = build(strict=False)
    if len(set(by_key.values())) < len(by_key):
        by_key = build(strict=True)
    if any(not v for v in by_key.values()):  # nothing varies: one configuration
        arch = archs_of(trajectories)
        for i in np.flatnonzero(is_run):
            if not by_key[keys[i]]:
                by_key[keys[i]] = SEP.join(p for p in (arch[i], opt_labels[i]) if p) or "runs"
    seen: dict[str, int] = {GEODESIC: 1}
    for key, lab in by_key.items():
        if lab in seen:
            seen[lab] += 1
            by_key[key] = f"{lab} #{seen[lab]}"
        else:
            seen[lab] = 1
    labels = [by_key[keys[i]] if is_run[i] else GEODESIC for i in range(len(trajectories))]
    return pd.Series(labels, index=trajectories.index, name="configuration", dtype=object)


def ordered_configurations(labels: np.ndarray, archs: np.ndarray, rows: np.ndarray) -> list[str]:
    """Configuration labels of `rows`, sorted by architecture then label, the geodesic last."""
    pairs = {(archs[i], labels[i]) for i in rows}
    return [lab for arch, lab in sorted(pairs, key=lambda p: (p[1] == GEODESIC, p[0], p[1]))]


def configuration_archs(trajectories: pd.DataFrame, labels: Sequence[str] | None = None) -> list[str]:
    """The architecture of each configuration label (``labels`` in this order; all if None), 'geodesic'
    for the geodesic. Labels as returned by :func:`configuration_distances`."""
    check_trajectories(trajectories)
    lab = configuration_labels(trajectories).to_numpy()
    archs = archs_of(trajectories)
    arch_of = {}
    for a, l in zip(archs, lab):
        arch_of.setdefault(l, a)
    if labels is None:
        labels = ordered_configurations(lab, archs, np.arange(len(lab)))
    unknown = [l for l in labels if l not in arch_of]
    if unknown:
        raise ResultsError(f"labels: {unknown[0]!r} is not a configuration of trajectories")
    return [arch_of[l] for l in labels]
