"""The paper's claims, measured on one study: numbers behind `results/analysis/{split}/`.

Mao et al. (PNAS 2024) make four claims about the training trajectories of many networks; each
function here measures one of them on the trajectories of a study, reindexed to T equal values
t_k of progress (t = 0 ignorance, t = 1 truth):

1. Architectures, not optimizers or other hyper-parameters, separate the trajectories:
   :func:`configuration_distances` (distances between configurations, for a dendrogram) and
   :func:`factor_effects` (which factor makes two runs' trajectories differ).
2. Trajectories go the same way at different speeds: :func:`speed` (epochs and steps to reach a
   level of progress; are larger networks faster?).
3. Trajectories stay near the P0 -> P* geodesic in narrow tubes: :func:`distance_to_geodesic` and
   :func:`tube_widths` (distance of each seed from its configuration's seed-mean trajectory).
4. The manifold is low-dimensional: the explained stress of the embedding, reported by
   :func:`summary_markdown`.
5. Networks started far from ignorance (pre-trained "corners": random labels, a small subset,
   perturbed weights) converge to the solution along a similar manifold: :func:`corner_distances`
   (distance of corner-started runs from the same training started at the default initialisation,
   against the distance between two seeds of that default training).

Inputs (per data split), assembled by the caller:

* ``dists`` (T, R, R) float: ``dists[k, i, j]`` = Bhattacharyya distance between trajectories i and j
  at the same t_k (symmetric, zero diagonal).
* ``trajectories``: a DataFrame with one row per trajectory in the order of ``dists``: ``run``,
  ``kind`` ("run" or "geodesic"), ``arch``, ``optimizer`` (label), ``parameters``,
  ``final_train_error``, ``final_test_error``, ``diverged``, ``diverged_at_step`` and every config
  field flattened with dots (``arch.name``, ``optimizer.lr``, ``batch_size``, ``seed``, ...), empty
  on the geodesic row.
* ``keep``: a bool array over those rows (from :func:`select_runs`).

A *configuration* is every config field except the seed; runs that differ only in their seed are
seeds of one configuration, and the geodesic is a configuration of its own.

Initialisations ("corners"): a run of grid key ``init`` has config fields ``init.name``
("random_labels", "subsample", "perturbed"), ``init.epochs``, ``init.seed``, ``init.samples``,
``init.scale``, ``init.optimizer.*``, ... A run at the default initialisation has no ``init.*``
values; when a table has any ``init.*`` column, such a run counts as ``init.name = "default"``, so
a corner-started run and the same training from the default start are different configurations
(labels such as ``"fc · random_labels"`` and ``"fc · default init"``). The label columns ``init``
and ``corner`` of the trajectory table are not used (older tables lack them).

Config values are compared after normalisation (see :func:`_norm`): ``0.0`` and ``0``, ``True``
and ``"true"``, ``"[64, 64]"`` and ``"[64,64]"`` are equal, and an empty cell equals NaN, so a
table read back from TSV groups as the in-memory one does.

Bad input raises :class:`inpca.errors.ResultsError` (a ``ValueError``) with one line naming the
argument. Only numpy, pandas, scipy and scikit-learn are used; the figures are in
:mod:`inpca.analysis_plots`.
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .errors import ResultsError
from .trajectories import first_crossing

__all__ = [
    "FACTORS",
    "DEFAULT_LEVELS",
    "select_runs",
    "configuration_labels",
    "configuration_archs",
    "configuration_distances",
    "run_pairs",
    "factor_effects",
    "distance_to_geodesic",
    "tube_widths",
    "speed",
    "corner_distances",
    "summary_markdown",
]

GEODESIC = "geodesic"
DEFAULT_LEVELS = (0.5, 0.8, 0.9)
# Config fields of a run that are not nested (arch.*, optimizer.*, dataset.*, checkpoints.* are).
RUN_FIELDS = ("batch_size", "weight_decay", "augment", "epochs", "seed", "lr_schedule", "warmup_epochs",
              "precision")
# Factors of variation, in the order they are listed when importances tie. The first eight are the
# paper's; the last five appear only when a study varies them (so that "differs in this factor
# alone" really means every other config field is equal).
FACTORS = ("architecture", "width/depth", "optimizer", "learning rate", "batch size", "weight decay",
           "augmentation", "seed", "epochs", "lr schedule", "precision", "initialization", "other")
FACTOR_COLUMNS = ("factor", "median", "q25", "q75", "pairs_differing_only_here", "importance",
                  "importance_std")
# The forest and its permutation importance use at most this many run pairs (a random subset, fixed by
# random_state): beyond it the estimate no longer changes but the time keeps growing.
MAX_IMPORTANCE_PAIRS = 20_000
IMPORTANCE_REPEATS = 20
FOREST_TREES = 100
SEP = " \u00b7 "  # " · " between the parts of a configuration label
# init.name of a run at the default initialisation (no `init` key in its config), once a study has corners.
DEFAULT_INIT = "default"
CORNER_COLUMNS = ("configuration", "arch", "init", "comparison", "t", "distance", "pairs", "start")
TO_DEFAULT, BETWEEN_SEEDS = "to default", "between seeds"
# The values of t at which summary.md reports the corners (the nearest t of the grid).
CORNER_TS = (0.25, 0.5, 0.75)


# --------------------------------------------------------------------------------------------------
# validation and normalisation


def _norm(value) -> str:
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
        return _norm(float(text))
    except ValueError:
        pass
    if text[:1] in "[{":
        try:
            return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
        except ValueError:
            pass
    return text


def _show(text: str) -> str:
    """A normalised value for a label: numbers in short form (0.0005, 5e-05, 128)."""
    try:
        v = float(text)
    except ValueError:
        return text
    return f"{v:g}"


def _check_trajectories(trajectories) -> None:
    if not isinstance(trajectories, pd.DataFrame):
        raise ResultsError(f"trajectories: expected a pandas DataFrame, got {type(trajectories).__name__}")
    missing = [c for c in ("run", "kind") if c not in trajectories.columns]
    if missing:
        raise ResultsError(f"trajectories: missing column(s) {', '.join(missing)}")
    kinds = set(trajectories["kind"].astype(str))
    bad = sorted(kinds - {"run", GEODESIC})
    if bad:
        raise ResultsError(f"trajectories.kind: expected 'run' or 'geodesic', got {', '.join(map(repr, bad))}")


def _check_keep(keep, n: int) -> np.ndarray:
    if keep is None:
        return np.ones(n, dtype=bool)
    arr = np.asarray(keep)
    if arr.shape != (n,):
        raise ResultsError(f"keep: expected shape ({n},) (one flag per trajectory), got {arr.shape}")
    if arr.dtype != bool:
        if not np.isin(arr, (0, 1)).all():
            raise ResultsError("keep: expected booleans (one flag per trajectory)")
        arr = arr.astype(bool)
    return arr


def _check_dists(dists, n: int) -> np.ndarray:
    arr = np.asarray(dists, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise ResultsError(f"dists: expected shape (T, R, R), got {arr.shape}")
    if arr.shape[1] != n:
        raise ResultsError(f"dists: {arr.shape[1]} trajectories but trajectories has {n} rows")
    if arr.shape[0] == 0:
        raise ResultsError("dists: no values of t (T = 0)")
    return arr


def _is_run(trajectories) -> np.ndarray:
    return (trajectories["kind"].astype(str) == "run").to_numpy()


def _is_geodesic(trajectories) -> np.ndarray:
    return (trajectories["kind"].astype(str) == GEODESIC).to_numpy()


def _geodesic_row(trajectories) -> int:
    rows = np.flatnonzero(_is_geodesic(trajectories))
    if len(rows) != 1:
        raise ResultsError(f"trajectories: expected one row of kind 'geodesic', found {len(rows)}")
    return int(rows[0])


def _archs(trajectories) -> np.ndarray:
    """Architecture name of every row; 'geodesic' on the geodesic row."""
    if "arch" in trajectories.columns:
        arch = trajectories["arch"]
    elif "arch.name" in trajectories.columns:
        arch = trajectories["arch.name"]
    else:
        arch = pd.Series([""] * len(trajectories), index=trajectories.index)
    out = np.array([_norm(a) or "?" for a in arch], dtype=object)
    out[_is_geodesic(trajectories)] = GEODESIC
    return out


def _config_columns(trajectories) -> list[str]:
    """Config fields: the dotted columns and the run's top-level fields, in table order."""
    return [c for c in trajectories.columns if "." in str(c) or c in RUN_FIELDS]


def _config_frame(trajectories) -> pd.DataFrame:
    """Normalised config values (text) of every row; arch.name / optimizer.name from the labels if absent."""
    cols = _config_columns(trajectories)
    frame = pd.DataFrame({c: [_norm(v) for v in trajectories[c]] for c in cols}, index=trajectories.index)
    if "arch.name" not in frame.columns and "arch" in trajectories.columns:
        frame.insert(0, "arch.name", [_norm(v) for v in trajectories["arch"]])
    if not any(str(c).startswith("optimizer.") for c in frame.columns) and "optimizer" in trajectories.columns:
        frame["optimizer.name"] = [_norm(v) for v in trajectories["optimizer"]]
    if any(_is_init(c) for c in frame.columns):
        # a run without an init.name started at the default initialisation: a configuration of its own
        if "init.name" not in frame.columns:
            frame["init.name"] = ""
        frame.loc[frame["init.name"] == "", "init.name"] = DEFAULT_INIT
    frame.loc[_is_geodesic(trajectories), :] = ""
    return frame


def _is_init(column) -> bool:
    return str(column).startswith("init.")


def _factor_of(column: str) -> str:
    if _is_init(column):
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
# 0. which runs count


def select_runs(trajectories: pd.DataFrame, max_final_train_error: float | None) -> tuple[np.ndarray, pd.DataFrame]:
    """Runs that enter the analysis, as the paper chose them.

    Returns ``(keep, excluded)``: ``keep`` is a bool array with one flag per row of ``trajectories``;
    ``excluded`` has columns ``run, reason``, one row per dropped run in table order. The geodesic row
    is always kept. A run that diverged is dropped with reason ``"diverged at step N"``
    (``diverged_at_step``; just ``"diverged"`` when that is unknown or -1); otherwise a run whose
    ``final_train_error`` exceeds ``max_final_train_error`` is dropped with reason
    ``"final train error 0.35 > 0.1"`` (the paper drops runs with final train error > 0.1), and a run
    without a final train error with ``"final train error missing"``. ``max_final_train_error=None``
    applies no threshold.
    """
    _check_trajectories(trajectories)
    if max_final_train_error is not None:
        try:
            threshold = float(max_final_train_error)
        except (TypeError, ValueError):
            raise ResultsError(f"max_final_train_error: expected a number, got {max_final_train_error!r}") from None
        if not threshold >= 0:
            raise ResultsError(f"max_final_train_error: expected a number >= 0, got {max_final_train_error!r}")
    is_run = _is_run(trajectories)
    keep = np.ones(len(trajectories), dtype=bool)
    n = len(trajectories)
    diverged = list(trajectories["diverged"]) if "diverged" in trajectories.columns else [False] * n
    at_step = (pd.to_numeric(trajectories["diverged_at_step"], errors="coerce").to_numpy(dtype=float)
               if "diverged_at_step" in trajectories.columns else np.full(n, np.nan))
    if max_final_train_error is not None and "final_train_error" not in trajectories.columns:
        raise ResultsError("trajectories: missing column final_train_error (needed for max_final_train_error)")
    errors = (pd.to_numeric(trajectories["final_train_error"], errors="coerce").to_numpy(dtype=float)
              if "final_train_error" in trajectories.columns else np.full(n, np.nan))
    excluded = []
    for i, run in enumerate(trajectories["run"].astype(str)):
        if not is_run[i]:
            continue
        reason = None
        if _norm(diverged[i]) in ("true", "1"):
            step = at_step[i]
            reason = f"diverged at step {int(step)}" if np.isfinite(step) and step >= 0 else "diverged"
        elif max_final_train_error is not None:
            err = errors[i]
            if not np.isfinite(err):
                reason = "final train error missing"
            elif err > threshold:
                reason = f"final train error {err:.3g} > {threshold:g}"
        if reason is not None:
            keep[i] = False
            excluded.append({"run": run, "reason": reason})
    return keep, pd.DataFrame(excluded, columns=["run", "reason"])


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
            arch.append(row[c] if row[c].startswith("[") else f"{c.split('.', 1)[1]} {_show(row[c])}")
        parts.append(" ".join(arch))
    opt = []
    if opt_cols:
        opt.append(optimizer_label or row.get("optimizer.name", "") or "?")
        for c in opt_cols:
            if c in ("optimizer.name", "optimizer.nesterov") or not row[c]:
                continue
            key = {"momentum": "mom"}.get(c.split(".", 1)[1], c.split(".", 1)[1])
            opt.append(f"{key} {_show(row[c])}")
    if "optimizer.lr" in varying and row.get("optimizer.lr"):
        opt.append(f"lr {_show(row['optimizer.lr'])}")
    if opt:
        parts.append(" ".join(opt))
    for c in varying:
        if c.startswith(("arch.", "optimizer.", "init.")) or c == "seed" or not row[c]:
            continue
        v = row[c]
        if c == "batch_size":
            parts.append(f"bs {_show(v)}")
        elif c == "weight_decay":
            parts.append(f"wd {_show(v)}")
        elif c == "augment":
            parts.append("aug" if v == "true" else "no aug")
        elif c == "epochs":
            parts.append(f"{_show(v)} ep")
        elif c == "warmup_epochs":
            parts.append(f"warmup {_show(v)}")
        elif c in ("lr_schedule", "precision"):
            parts.append(v)
        else:
            parts.append(f"{c} {_show(v)}")
    if any(_is_init(c) for c in varying):
        parts.append(_init_label(row, init_fields))
    return SEP.join(parts)


# init.* fields shown after the name of the corner, and how
_INIT_FIELDS = {"init.epochs": "init {} ep", "init.seed": "corner s{}", "init.batch_size": "init bs {}",
                "init.weight_decay": "init wd {}", "init.optimizer.lr": "init lr {}"}
_INIT_HEAD = ("init.name", "init.samples", "init.scale")
_INIT_OPTIMIZER = ("init.optimizer.name", "init.optimizer.nesterov", "init.optimizer.momentum", "init.optimizer.betas")


def _init_fields(frame: pd.DataFrame, rows: np.ndarray) -> list[str]:
    """The init.* sub-fields a label must show: those that differ between two of `rows` with the same
    init name, samples and scale and every other field equal but the seed. A corner's pre-training
    optimizer, batch size and weight decay default to the run's own, so they vary with them across the
    study; they are shown only when they tell two corners of the same training apart."""
    init_cols = [c for c in frame.columns if _is_init(c)]
    if not init_cols or "init.name" not in frame.columns:
        return []
    group_cols = [c for c in frame.columns if c != "seed" and (not _is_init(c) or c in _INIT_HEAD)]
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


def _init_label(row: dict, init_fields: list[str]) -> str:
    """The initialisation of a configuration, compactly: "default init", "random_labels", "subsample 100"
    (its samples), "perturbed 0.1" (its scale), then the sub-fields ``init_fields`` (:func:`_init_fields`)
    that it has ("init 30 ep", "corner s1" for init.seed, "init lr 0.1", "init adam"), joined by " · "."""
    name = row.get("init.name", "") or DEFAULT_INIT
    if name == DEFAULT_INIT:
        return "default init"
    head = name
    for c in ("init.samples", "init.scale"):
        if row.get(c):
            head += f" {_show(row[c])}"
    parts = [head]
    if any(c in init_fields for c in _INIT_OPTIMIZER) and row.get("init.optimizer.name"):
        opt = row["init.optimizer.name"]
        if opt == "sgd" and row.get("init.optimizer.nesterov") == "true":
            opt += "-nesterov"
        words = [f"init {opt}"]
        if "init.optimizer.momentum" in init_fields and row.get("init.optimizer.momentum"):
            words.append(f"mom {_show(row['init.optimizer.momentum'])}")
        if "init.optimizer.betas" in init_fields and row.get("init.optimizer.betas"):
            words.append(f"betas {row['init.optimizer.betas']}")
        parts.append(" ".join(words))
    for c in init_fields:
        if c in _INIT_HEAD or c in _INIT_OPTIMIZER or not row.get(c):
            continue
        form = _INIT_FIELDS.get(c, "init " + c.split(".", 1)[1] + " {}")
        parts.append(form.format(_show(row[c])))
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
    _check_trajectories(trajectories)
    frame = _config_frame(trajectories)
    frame_no_seed = frame.drop(columns=[c for c in frame.columns if c == "seed"])
    is_run = _is_run(trajectories)
    keys = [tuple(r) for r in frame_no_seed.itertuples(index=False, name=None)]
    if "optimizer" in trajectories.columns:
        opt_labels = [_norm(v) for v in trajectories["optimizer"]]
    else:
        opt_labels = [""] * len(trajectories)
    for i, lab in enumerate(opt_labels):
        if not lab and is_run[i]:
            name = frame["optimizer.name"].iloc[i] if "optimizer.name" in frame.columns else ""
            nesterov = frame["optimizer.nesterov"].iloc[i] if "optimizer.nesterov" in frame.columns else ""
            opt_labels[i] = f"{name}-nesterov" if name == "sgd" and nesterov == "true" else name
    records = frame_no_seed.to_dict("records")

    init_fields = _init_fields(frame_no_seed, np.flatnonzero(is_run))

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
        arch = _archs(trajectories)
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


def _ordered_configurations(labels: np.ndarray, archs: np.ndarray, rows: np.ndarray) -> list[str]:
    """Configuration labels of `rows`, sorted by architecture then label, the geodesic last."""
    pairs = {(archs[i], labels[i]) for i in rows}
    return [lab for arch, lab in sorted(pairs, key=lambda p: (p[1] == GEODESIC, p[0], p[1]))]


def configuration_archs(trajectories: pd.DataFrame, labels: Sequence[str] | None = None) -> list[str]:
    """The architecture of each configuration label (``labels`` in this order; all if None), 'geodesic'
    for the geodesic. Labels as returned by :func:`configuration_distances`."""
    _check_trajectories(trajectories)
    lab = configuration_labels(trajectories).to_numpy()
    archs = _archs(trajectories)
    arch_of = {}
    for a, l in zip(archs, lab):
        arch_of.setdefault(l, a)
    if labels is None:
        labels = _ordered_configurations(lab, archs, np.arange(len(lab)))
    unknown = [l for l in labels if l not in arch_of]
    if unknown:
        raise ResultsError(f"labels: {unknown[0]!r} is not a configuration of trajectories")
    return [arch_of[l] for l in labels]


def configuration_distances(dists, trajectories: pd.DataFrame, keep) -> tuple[list[str], np.ndarray, pd.DataFrame]:
    """Distances between configurations: ``(labels, D, pairs)``.

    ``D[a, b]`` (G, G) = mean over t_k and over all pairs of kept seeds (i of configuration a, j of
    configuration b) of ``dists[k, i, j]``; on the diagonal the mean over pairs i != j of the same
    configuration (0 for a configuration with one kept seed). The geodesic (if kept) is a configuration
    of its own. ``labels`` (G) are the configuration labels (:func:`configuration_labels`), sorted by
    architecture then label, the geodesic last. ``pairs``: one row per unordered pair a < b, columns
    ``a, b, distance, arch_a, arch_b, same_arch`` (arch of the geodesic: 'geodesic'; same_arch is False
    for its pairs).
    """
    _check_trajectories(trajectories)
    keep = _check_keep(keep, len(trajectories))
    dists = _check_dists(dists, len(trajectories))
    rows = np.flatnonzero(keep)
    mean = dists.mean(axis=0)
    if rows.size and not np.isfinite(mean[np.ix_(rows, rows)]).all():
        raise ResultsError("dists: non-finite distances between kept trajectories")
    lab = configuration_labels(trajectories).to_numpy()
    archs = _archs(trajectories)
    labels = _ordered_configurations(lab, archs, rows)
    members = [rows[lab[rows] == l] for l in labels]
    g = len(labels)
    D = np.zeros((g, g))
    for a in range(g):
        for b in range(a, g):
            block = mean[np.ix_(members[a], members[b])]
            if a == b:
                n = len(members[a])
                D[a, a] = (block.sum() - np.trace(block)) / (n * (n - 1)) if n > 1 else 0.0
            else:
                D[a, b] = D[b, a] = block.mean()
    arch_of = [archs[m[0]] for m in members]
    records = [{"a": labels[a], "b": labels[b], "distance": D[a, b], "arch_a": arch_of[a], "arch_b": arch_of[b],
                "same_arch": bool(arch_of[a] == arch_of[b] and arch_of[a] != GEODESIC)}
               for a in range(g) for b in range(a + 1, g)]
    pairs = pd.DataFrame(records, columns=["a", "b", "distance", "arch_a", "arch_b", "same_arch"])
    return labels, D, pairs


# --------------------------------------------------------------------------------------------------
# 1. which factor separates trajectories


def run_pairs(dists, trajectories: pd.DataFrame, keep) -> pd.DataFrame:
    """Every unordered pair of kept runs (not the geodesic) with the factors in which they differ.

    Columns: ``run_a, run_b, arch_a, arch_b, distance`` (mean over t_k of ``dists[k, i, j]``),
    ``n_differing`` (how many factors differ), ``differs_only`` (the factor if exactly one differs,
    '' otherwise) and one bool column ``"differs:<factor>"`` per factor that varies among the kept runs
    (that is, in which at least one pair differs).
    Factors (:data:`FACTORS`) group config fields: architecture = ``arch.name``; width/depth = the other
    ``arch.*`` fields, counted only between runs of the same architecture (fc widths and All-CNN widths
    are not comparable); optimizer = ``optimizer.*`` except the learning rate (name, nesterov, momentum,
    betas); learning rate = ``optimizer.lr``; batch size, weight decay, augmentation, seed; and, only
    when a study varies them, epochs, lr schedule (``lr_schedule``, ``warmup_epochs``), precision,
    initialization (``init.*``; a default-init run counts as ``init.name = "default"``) and other (any
    remaining field, e.g. ``dataset.*``).
    """
    _check_trajectories(trajectories)
    keep = _check_keep(keep, len(trajectories))
    dists = _check_dists(dists, len(trajectories))
    rows = np.flatnonzero(keep & _is_run(trajectories))
    frame = _config_frame(trajectories).iloc[rows]
    groups: dict[str, list[str]] = {}
    for c in frame.columns:
        groups.setdefault(_factor_of(str(c)), []).append(c)
    codes = {}
    for factor in FACTORS:
        cols = groups.get(factor)
        if not cols:
            continue
        code = pd.factorize(pd.Series([tuple(r) for r in frame[cols].itertuples(index=False, name=None)],
                                      dtype=object))[0]
        if len(set(code)) > 1:
            codes[factor] = code
    arch_code = pd.factorize(pd.Series(_archs(trajectories)[rows]))[0]
    iu, ju = np.triu_indices(len(rows), 1)
    mean = dists.mean(axis=0)
    runs = trajectories["run"].astype(str).to_numpy()
    archs = _archs(trajectories)
    out = pd.DataFrame({"run_a": runs[rows[iu]], "run_b": runs[rows[ju]], "arch_a": archs[rows[iu]],
                        "arch_b": archs[rows[ju]], "distance": mean[rows[iu], rows[ju]]})
    differ = {}
    for factor, code in codes.items():
        d = code[iu] != code[ju]
        if factor == "width/depth":  # sizes of different architectures are not comparable
            d &= arch_code[iu] == arch_code[ju]
        if d.any():
            differ[factor] = d
    n = np.zeros(len(iu), dtype=int)
    for d in differ.values():
        n += d
    only = np.full(len(iu), "", dtype=object)
    for factor, d in differ.items():
        only[d & (n == 1)] = factor
    out["n_differing"] = n
    out["differs_only"] = only
    for factor, d in differ.items():
        out[f"differs:{factor}"] = d
    return out


def factor_effects(dists, trajectories: pd.DataFrame, keep, random_state: int = 0,
                   pairs: pd.DataFrame | None = None) -> pd.DataFrame:
    """How much each factor of variation moves a trajectory: one row per factor that varies among kept runs.

    Pair distance = mean over t_k of ``dists[k, i, j]`` for two kept runs (see :func:`run_pairs`, which
    also defines the factors; pass its result as ``pairs`` to reuse it). Columns:

    * ``median``, ``q25``, ``q75``, ``pairs_differing_only_here``: the distribution of the distances of
      pairs that differ in this factor alone (every other factor equal); NaN stats when there is no
      such pair.
    * ``importance``, ``importance_std``: permutation importance (scikit-learn) of the binary feature
      "the pair differs in this factor" for a random forest (``RandomForestRegressor``, 100 trees) that
      predicts the pair distance from all those features: the mean and std over 20 shuffles of the drop
      in R^2. Forest and shuffles use at most 20,000 pairs (a random subset fixed by ``random_state``;
      the median, q25 and q75 use all pairs). NaN with fewer than 3 pairs. The authors used AutoGluon
      for this; a forest on a few binary features is enough here.

    Sorted by importance, largest first (NaN last; ties keep the order of :data:`FACTORS`).
    """
    if pairs is None:
        pairs = run_pairs(dists, trajectories, keep)
    factors = [c.split(":", 1)[1] for c in pairs.columns if str(c).startswith("differs:")]
    if not factors:
        return pd.DataFrame(columns=list(FACTOR_COLUMNS))
    y = pairs["distance"].to_numpy(dtype=float)
    X = pairs[[f"differs:{f}" for f in factors]].to_numpy(dtype=float)
    importance = np.full(len(factors), np.nan)
    importance_std = np.full(len(factors), np.nan)
    if len(y) >= 3:
        from sklearn.ensemble import RandomForestRegressor
        from sklearn.inspection import permutation_importance

        if len(y) > MAX_IMPORTANCE_PAIRS:
            pick = np.sort(np.random.default_rng(random_state).choice(len(y), MAX_IMPORTANCE_PAIRS, replace=False))
            Xi, yi = X[pick], y[pick]
        else:
            Xi, yi = X, y
        model = RandomForestRegressor(n_estimators=FOREST_TREES, random_state=random_state)
        model.fit(Xi, yi)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = permutation_importance(model, Xi, yi, n_repeats=IMPORTANCE_REPEATS, random_state=random_state)
        importance, importance_std = result.importances_mean, result.importances_std
    rows = []
    for f, imp, sd in zip(factors, importance, importance_std):
        d = y[pairs["differs_only"].to_numpy() == f]
        q25, med, q75 = (np.quantile(d, [0.25, 0.5, 0.75]) if d.size else (np.nan,) * 3)
        rows.append({"factor": f, "median": float(med), "q25": float(q25), "q75": float(q75),
                     "pairs_differing_only_here": int(d.size), "importance": float(imp),
                     "importance_std": float(sd)})
    out = pd.DataFrame(rows, columns=list(FACTOR_COLUMNS))
    out["_order"] = [FACTORS.index(f) for f in out["factor"]]
    out = out.sort_values(["importance", "_order"], ascending=[False, True], na_position="last", kind="mergesort")
    return out.drop(columns="_order").reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# 3. near the geodesic, in narrow tubes


def _grid(ts, T: int) -> np.ndarray:
    if ts is None:
        return np.arange(T) / T
    ts = np.asarray(ts, dtype=float)
    if ts.shape != (T,):
        raise ResultsError(f"ts: expected shape ({T},) (one t per reindexed point), got {ts.shape}")
    return ts


def distance_to_geodesic(dists, trajectories: pd.DataFrame, ts=None, keep=None) -> pd.DataFrame:
    """Distance of every run from the geodesic at each t_k, from the geodesic's row of ``dists``.

    Long table, columns ``run, configuration, arch, t, distance``, runs in table order and t ascending
    within a run. ``ts`` (T,) are the t_k (default k/T, k = 0..T-1); ``keep`` (optional) restricts the
    table to kept runs. Needs exactly one geodesic row.
    """
    _check_trajectories(trajectories)
    dists = _check_dists(dists, len(trajectories))
    keep = _check_keep(keep, len(trajectories))
    t = _grid(ts, dists.shape[0])
    g = _geodesic_row(trajectories)
    rows = np.flatnonzero(_is_run(trajectories) & keep)
    lab = configuration_labels(trajectories).to_numpy()
    archs = _archs(trajectories)
    runs = trajectories["run"].astype(str).to_numpy()
    T = len(t)
    return pd.DataFrame({
        "run": np.repeat(runs[rows], T),
        "configuration": np.repeat(lab[rows], T),
        "arch": np.repeat(archs[rows], T),
        "t": np.tile(t, len(rows)),
        "distance": dists[:, g, rows].T.reshape(-1),
    })


def tube_widths(trajectories: pd.DataFrame, keep, ts, read_probs: Callable[[list[int]], np.ndarray],
                distance: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> pd.DataFrame:
    """Width of the tube of each configuration's seeds around their mean trajectory.

    For every configuration with at least two kept seeds: the seed-mean trajectory is the arithmetic
    mean of the seeds' probabilities at each t_k (a mixture, still a distribution); each seed's width at
    t_k is ``distance(seed at t_k, mean at t_k)``. ``read_probs(rows)`` returns the reindexed
    probabilities (len(rows), T, N, C) of those row positions of ``trajectories``; it is called once per
    configuration, so memory holds one configuration's seeds at a time. ``distance(P, Q)`` maps
    (M, N, C), (M', N, C) to the (M, M') Bhattacharyya distances. Long table, columns
    ``configuration, arch, run, t, distance`` (empty, with those columns, when no configuration has two
    kept seeds).
    """
    _check_trajectories(trajectories)
    keep = _check_keep(keep, len(trajectories))
    ts = np.asarray(ts, dtype=float)
    if ts.ndim != 1 or ts.size == 0:
        raise ResultsError(f"ts: expected a 1-D array of the t_k, got shape {ts.shape}")
    lab = configuration_labels(trajectories).to_numpy()
    archs = _archs(trajectories)
    runs = trajectories["run"].astype(str).to_numpy()
    rows = np.flatnonzero(keep & _is_run(trajectories))
    frames = []
    for conf in _ordered_configurations(lab, archs, rows):
        members = rows[lab[rows] == conf]
        if len(members) < 2:
            continue
        probs = np.asarray(read_probs([int(r) for r in members]))
        if probs.ndim != 4 or probs.shape[:2] != (len(members), len(ts)):
            raise ResultsError(f"read_probs: expected shape ({len(members)}, {len(ts)}, N, C) for configuration "
                               f"{conf!r}, got {probs.shape}")
        mean = probs.mean(axis=0, dtype=np.float64).astype(probs.dtype)
        width = np.empty((len(members), len(ts)))
        for k in range(len(ts)):
            d = np.asarray(distance(probs[:, k], mean[k][None]), dtype=float)
            if d.shape != (len(members), 1):
                raise ResultsError(f"distance: expected shape ({len(members)}, 1), got {d.shape}")
            width[:, k] = d[:, 0]
        del probs, mean
        frames.append(pd.DataFrame({"configuration": conf, "arch": archs[members[0]],
                                    "run": np.repeat(runs[members], len(ts)), "t": np.tile(ts, len(members)),
                                    "distance": width.reshape(-1)}))
    if not frames:
        return pd.DataFrame(columns=["configuration", "arch", "run", "t", "distance"])
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------------
# 2. same way, different speeds


def _level_name(level: float) -> str:
    return f"{level:g}"


def speed(points: pd.DataFrame, trajectories: pd.DataFrame, keep, split: str,
          levels: Sequence[float] = DEFAULT_LEVELS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Epochs and optimizer steps each run needs to reach levels of progress on `split`.

    ``points``: one row per checkpoint (columns ``run, step, epoch, progress_{split}``; rows of kind
    other than "run" are ignored). For each run and level L, the time at which ``progress_{split}`` first
    reaches L, linearly interpolated between the checkpoint before and the first checkpoint at/above L;
    the first checkpoint's time when it already is at/above L; NaN when the run never reaches L.

    Returns ``(per_run, per_configuration)``.

    * ``per_run``: one row per run of ``trajectories``: ``run, configuration, arch, parameters,
      included`` (its ``keep`` flag), ``epoch_to_<L>`` and ``step_to_<L>`` for each level (e.g.
      ``epoch_to_0.5``), ``final_train_error, final_test_error``.
    * ``per_configuration``: the kept runs grouped by configuration: ``rank, configuration, arch,
      n_seeds`` and the mean over its seeds of every numeric column above. A mean is NaN when any seed
      never reached the level (so NaN means "not every seed got there"). Ranked by ``epoch_to_<highest
      level>``, fastest first, configurations that never reach it last (among them, by the lower
      levels); ``parameters`` sits next to the ranks so "larger networks are faster" can be read off.
    """
    _check_trajectories(trajectories)
    keep = _check_keep(keep, len(trajectories))
    if not isinstance(points, pd.DataFrame):
        raise ResultsError(f"points: expected a pandas DataFrame, got {type(points).__name__}")
    column = f"progress_{split}"
    missing = [c for c in ("run", "step", "epoch", column) if c not in points.columns]
    if missing:
        raise ResultsError(f"points: missing column(s) {', '.join(missing)} (split {split!r})")
    try:
        levels = sorted({float(level) for level in levels})
    except (TypeError, ValueError):
        raise ResultsError(f"levels: expected numbers, got {levels!r}") from None
    if not levels:
        raise ResultsError("levels: expected at least one level of progress")
    pts = points
    if "kind" in pts.columns:
        pts = pts[pts["kind"].astype(str) == "run"]
    pts = pts.assign(run=pts["run"].astype(str))
    sort_cols = ["step", "epoch"] + (["checkpoint"] if "checkpoint" in pts.columns else [])
    by_run = {run: g.sort_values(sort_cols, kind="mergesort") for run, g in pts.groupby("run", sort=False)}
    lab = configuration_labels(trajectories).to_numpy()
    archs = _archs(trajectories)
    is_run = _is_run(trajectories)
    records = []
    for i in np.flatnonzero(is_run):
        row = trajectories.iloc[i]
        run = str(row["run"])
        rec = {"run": run, "configuration": lab[i], "arch": archs[i],
               "parameters": pd.to_numeric(pd.Series([row.get("parameters", np.nan)]), errors="coerce").iloc[0],
               "included": bool(keep[i])}
        g = by_run.get(run)
        if g is not None:
            prog = pd.to_numeric(g[column], errors="coerce").to_numpy(dtype=float)
            ok = np.isfinite(prog)
            epoch = pd.to_numeric(g["epoch"], errors="coerce").to_numpy(dtype=float)[ok]
            step = pd.to_numeric(g["step"], errors="coerce").to_numpy(dtype=float)[ok]
            prog = prog[ok]
        else:
            epoch = step = prog = np.empty(0)
        for level in levels:
            rec[f"epoch_to_{_level_name(level)}"] = first_crossing(prog, epoch, level)
        for level in levels:
            rec[f"step_to_{_level_name(level)}"] = first_crossing(prog, step, level)
        for c in ("final_train_error", "final_test_error"):
            rec[c] = pd.to_numeric(pd.Series([row.get(c, np.nan)]), errors="coerce").iloc[0]
        records.append(rec)
    time_cols = [f"{w}_to_{_level_name(level)}" for w in ("epoch", "step") for level in levels]
    per_run = pd.DataFrame(records, columns=["run", "configuration", "arch", "parameters", "included", *time_cols,
                                             "final_train_error", "final_test_error"])
    numeric = ["parameters", *time_cols, "final_train_error", "final_test_error"]
    for c in numeric:
        per_run[c] = per_run[c].astype(float)
    kept = per_run[per_run["included"]]
    conf_rows = []
    for conf, g in kept.groupby("configuration", sort=False):
        rec = {"configuration": conf, "arch": g["arch"].iloc[0], "n_seeds": len(g)}
        for c in numeric:
            rec[c] = float(g[c].mean(skipna=False))
        conf_rows.append(rec)
    per_conf = pd.DataFrame(conf_rows, columns=["configuration", "arch", "n_seeds", *numeric])
    order = [f"epoch_to_{_level_name(level)}" for level in reversed(levels)]
    per_conf = per_conf.sort_values(order + ["configuration"], na_position="last", kind="mergesort")
    per_conf = per_conf.reset_index(drop=True)
    per_conf.insert(0, "rank", np.arange(1, len(per_conf) + 1))
    return per_run, per_conf


# --------------------------------------------------------------------------------------------------
# 5. networks started far from ignorance


def _pair_block(dists: np.ndarray, a: np.ndarray, b: np.ndarray | None) -> tuple[np.ndarray, int]:
    """Mean over run pairs at each t_k: (i in a, j in b), or i < j within a when b is None."""
    if b is None:
        iu, ju = np.triu_indices(len(a), 1)
        block = dists[:, a[iu], a[ju]]
    else:
        block = dists[:, a[:, None], b[None, :]].reshape(dists.shape[0], -1)
    if not np.isfinite(block).all():
        raise ResultsError("dists: non-finite distances between kept trajectories")
    return block.mean(axis=1), block.shape[1]


def corner_distances(dists, trajectories: pd.DataFrame, keep, ts=None, start=None) -> pd.DataFrame:
    """How far runs started from a corner stay from the same training started at the default init.

    The *partners* of a kept corner-started run (``init.name`` other than "default") are the kept
    default-init runs whose config equals its config in every field except ``init.*`` and the seed.
    Long table, columns ``configuration`` (label of the partners' configuration), ``arch``, ``init``
    (the initialisation part of the corner configuration's label, e.g. "random_labels", "subsample 100",
    "random_labels · corner s1"; "default" for the partners themselves), ``comparison``, ``t``,
    ``distance`` (mean of ``dists[k, i, j]`` over the run pairs) and ``pairs`` (how many run pairs):

    * ``"to default"``: each corner configuration with partners against them (pairs = n_corner x n_partner);
    * ``"between seeds"``, init "default": pairs of seeds of a partner configuration (the scale);
    * ``"between seeds"``, init of a corner: pairs of seeds of a corner configuration with two or more
      kept seeds (only corners that have partners).

    Configurations by architecture then label; within one, the default seeds first, then each corner
    (by its init label), "to default" before "between seeds"; t ascending. ``ts`` (T,) are the t_k
    (default k/T). ``start`` (R,) (optional) is each trajectory's index value at its first checkpoint;
    column ``start`` is its mean over the runs of the row's corner (of the default configuration on
    its "between seeds" rows), NaN without it. A corner may start far along (a subset corner already
    fits most of the data): below its start, its reindexed runs sit at the corner itself.
    Empty (with those columns) when no kept corner-started run has a partner.
    """
    _check_trajectories(trajectories)
    keep = _check_keep(keep, len(trajectories))
    dists = _check_dists(dists, len(trajectories))
    t = _grid(ts, dists.shape[0])
    empty = pd.DataFrame({c: pd.Series(dtype=float if c in ("t", "distance") else int if c == "pairs" else object)
                          for c in CORNER_COLUMNS})
    frame = _config_frame(trajectories)
    if "init.name" not in frame.columns:
        return empty
    is_run = _is_run(trajectories)
    rows = np.flatnonzero(keep & is_run)
    lab = configuration_labels(trajectories).to_numpy()
    archs = _archs(trajectories)
    base_cols = [c for c in frame.columns if not _is_init(c) and c != "seed"]
    base = [tuple(r) for r in frame[base_cols].itertuples(index=False, name=None)]
    default = (frame["init.name"] == DEFAULT_INIT).to_numpy()
    no_seed = frame.drop(columns=[c for c in frame.columns if c == "seed"])
    init_fields = _init_fields(no_seed, np.flatnonzero(is_run))
    records = no_seed.to_dict("records")
    members = {conf: rows[lab[rows] == conf] for conf in _ordered_configurations(lab, archs, rows)}
    defaults = {conf: m for conf, m in members.items() if default[m[0]]}
    corners = sorted((_init_label(records[m[0]], init_fields), conf) for conf, m in members.items() if not default[m[0]])
    frames = []

    starts = (np.full(len(trajectories), np.nan) if start is None
              else np.asarray(start, dtype=float).reshape(len(trajectories)))

    def add(conf, init, comparison, a, b=None):
        distance, n = _pair_block(dists, a, b)
        frames.append(pd.DataFrame({"configuration": conf, "arch": archs[a[0]], "init": init, "comparison": comparison,
                                    "t": t, "distance": distance, "pairs": n,
                                    "start": float(np.mean(starts[a]))}))

    for conf, partners in defaults.items():
        mine = [(init, c) for init, c in corners if base[members[c][0]] == base[partners[0]]]
        if not mine:
            continue
        if len(partners) >= 2:
            add(conf, DEFAULT_INIT, BETWEEN_SEEDS, partners)
        for init, c in mine:
            add(conf, init, TO_DEFAULT, members[c], partners)
            if len(members[c]) >= 2:
                add(conf, init, BETWEEN_SEEDS, members[c])
    if not frames:
        return empty
    out = pd.concat(frames, ignore_index=True)
    out["pairs"] = out["pairs"].astype(int)
    return out[list(CORNER_COLUMNS)]


# --------------------------------------------------------------------------------------------------
# summary.md


def _num(x, digits: int = 3) -> str:
    """A number for prose: 3 significant digits, thousands separators for large ones, 'n/a' for NaN."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(x):
        return "n/a"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if x == 0:
        return "0"
    return f"{x:.{digits}g}"


def _params(x) -> str:
    """A parameter count: 1.2M, 45.3k, 800."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "n/a"
    if not math.isfinite(x):
        return "n/a"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.0f}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _frame(value) -> pd.DataFrame:
    return value if isinstance(value, pd.DataFrame) else pd.DataFrame()


def _claim_architectures(pairs: pd.DataFrame, factors: pd.DataFrame) -> list[str]:
    lines = ["## 1. Architectures versus other factors", ""]
    text = []
    if {"arch_a", "arch_b", "distance"} <= set(pairs.columns) and len(pairs):
        runs = pairs[(pairs["arch_a"] != GEODESIC) & (pairs["arch_b"] != GEODESIC)]
        same = runs["arch_a"] == runs["arch_b"]
        archs = sorted((set(pairs["arch_a"]) | set(pairs["arch_b"])) - {GEODESIC})
        between, within = runs.loc[~same, "distance"], runs.loc[same, "distance"]
        if len(archs) < 2:
            text.append(f"Only one architecture ({', '.join(archs) or 'none'}) among the kept configurations, "
                        "so architectures cannot be compared with each other.")
        else:
            text.append(f"Median distance between configurations of different architectures: "
                        f"{_num(between.median())} ({len(between)} pairs of configurations, {len(archs)} "
                        f"architectures).")
            if len(within):
                ratio = between.median() / within.median() if within.median() > 0 else np.nan
                text.append(f"Within the same architecture: {_num(within.median())} ({len(within)} pairs)"
                            + (f"; the ratio is {_num(ratio)}." if np.isfinite(ratio) else "."))
            else:
                text.append("No architecture has two configurations, so there is no within-architecture distance.")
    else:
        text.append("Fewer than two configurations: no distances between configurations.")
    lines.append(" ".join(text))
    lines.append("")
    if len(factors) == 0:
        lines.append("No factor of variation varies among the kept runs: no factor ranking.")
    else:
        lines.append("Factors ranked by permutation importance (drop in R\u00b2 of a random forest that predicts the "
                     "distance of two runs from the factors in which they differ; median [q25, q75] of the "
                     "distances of pairs differing in that factor alone):")
        lines.append("")
        for i, r in enumerate(factors.itertuples(index=False), start=1):
            n = int(r.pairs_differing_only_here)
            dist = (f"median {_num(r.median)} [{_num(r.q25)}, {_num(r.q75)}] over {n} pairs" if n
                    else "no pair differs in it alone")
            lines.append(f"{i}. **{r.factor}**: importance {_num(r.importance)} \u00b1 {_num(r.importance_std)}; "
                         f"{dist}")
    lines.append("")
    return lines


def _claim_speed(per_conf: pd.DataFrame) -> list[str]:
    lines = ["## 2. Same way, different speeds", ""]
    cols = [c for c in per_conf.columns if str(c).startswith("epoch_to_")]
    if not len(per_conf) or not cols:
        lines += ["No kept configuration has progress measurements.", ""]
        return lines
    levels = sorted(cols, key=lambda c: float(c.split("_to_", 1)[1]))
    reached = [c for c in levels if per_conf[c].notna().all()]
    if not reached:
        lines += [f"No level of progress ({', '.join(c.split('_to_', 1)[1] for c in levels)}) is reached by every "
                  f"seed of every configuration, so speeds cannot be compared.", ""]
        return lines
    col = reached[-1]
    level = col.split("_to_", 1)[1]
    order = per_conf.sort_values([col, "configuration"], kind="mergesort")
    fast, slow = order.iloc[0], order.iloc[-1]
    text = [f"Highest level of progress reached by every configuration: {level}."]
    if len(order) == 1:
        text.append(f"The only configuration, `{fast['configuration']}` ({_params(fast['parameters'])} parameters), "
                    f"reaches it at epoch {_num(fast[col])}.")
    else:
        text.append(f"Fastest: `{fast['configuration']}` at epoch {_num(fast[col])} ({_params(fast['parameters'])} "
                    f"parameters); slowest: `{slow['configuration']}` at epoch {_num(slow[col])} "
                    f"({_params(slow['parameters'])} parameters).")
    never = [c for c in levels if c not in reached]
    if never:
        missing = per_conf.loc[per_conf[never[-1]].isna(), "configuration"]
        text.append(f"{len(missing)} of {len(per_conf)} configurations do not reach {never[-1].split('_to_', 1)[1]} "
                    "with every seed.")
    data = per_conf[["parameters", col]].astype(float).dropna()
    if len(data) < 3:
        text.append("Fewer than three configurations with parameter counts: no correlation of size and speed.")
    elif data["parameters"].nunique() < 2 or data[col].nunique() < 2:
        text.append("Parameter counts or epochs are all equal: no correlation of size and speed.")
    else:
        from scipy.stats import spearmanr

        rho, p = spearmanr(data["parameters"], data[col])
        text.append(f"Spearman correlation of parameter count and epochs to {level} across {len(data)} "
                    f"configurations: \u03c1 = {_num(rho, 2)} (p = {_num(p, 2)}); negative means larger networks "
                    "get there in fewer epochs.")
    lines += [" ".join(text), ""]
    return lines


def _claim_tubes(tube: pd.DataFrame, pairs: pd.DataFrame) -> list[str]:
    lines = ["## 3. Near the geodesic, in narrow tubes", ""]
    if not len(tube) or "distance" not in tube.columns:
        lines += ["No configuration has two kept seeds, so tube widths are not measured.", ""]
        return lines
    t = tube["t"].astype(float)
    grid = np.unique(t.to_numpy())
    mid = grid[np.argmin(np.abs(grid - 0.5))]
    at = tube[np.isclose(t, mid)]
    n_conf = tube["configuration"].nunique()
    text = [f"Tube width = distance of a seed from its configuration's seed-mean trajectory, over "
            f"{_count(tube['run'].nunique(), 'run')} in {_count(n_conf, 'configuration')} with two or more seeds. "
            f"Median at t = {_num(mid)}: {_num(at['distance'].median())}; over all t: "
            f"{_num(tube['distance'].median())}."]
    if tube["arch"].nunique() > 1:
        per = at.groupby("arch")["distance"].median()
        text.append("At that t, per architecture: " + ", ".join(f"{a} {_num(v)}" for a, v in per.items()) + ".")
    if {"arch_a", "arch_b", "distance"} <= set(pairs.columns):
        runs = pairs[(pairs["arch_a"] != GEODESIC) & (pairs["arch_b"] != GEODESIC)]
        if len(runs):
            text.append(f"For scale, the median distance between two configurations is "
                        f"{_num(runs['distance'].median())}.")
        geo = pairs[(pairs["arch_a"] == GEODESIC) | (pairs["arch_b"] == GEODESIC)]
        if len(geo):
            text.append(f"The median distance of a configuration from the geodesic (mean over t) is "
                        f"{_num(geo['distance'].median())}.")
    lines += [" ".join(text), ""]
    return lines


def _claim_stress(explained_stress) -> list[str]:
    lines = ["## 4. A low-dimensional manifold", ""]
    values = [] if explained_stress is None else [float(v) for v in np.ravel(np.asarray(explained_stress, dtype=float))]
    if not values:
        lines += ["No explained stress of the embedding was given.", ""]
        return lines
    top = ", ".join(f"S({k}) = {_num(v)}" for k, v in enumerate(values[:3], start=1))
    lines += [f"Explained stress of the embedding of all points by its top components: {top}.", ""]
    return lines


def _pair_mean(rows: pd.DataFrame) -> float:
    """Mean distance over the run pairs behind some rows of the corner table (rows weighted by pairs)."""
    w = rows["pairs"].to_numpy(dtype=float)
    d = rows["distance"].to_numpy(dtype=float)
    return float((w * d).sum() / w.sum()) if len(rows) and w.sum() > 0 else float("nan")


def _claim_corners(corners: pd.DataFrame) -> list[str]:
    lines = ["## 5. Networks that start far from ignorance", ""]
    if not len(corners):
        lines += ["No kept corner-started run has a default-init partner (a kept run at the default "
                  "initialisation with the same configuration apart from the init and the seed), so corners are "
                  "not compared.", ""]
        return lines
    missing = [c for c in CORNER_COLUMNS if c not in corners.columns]
    if missing:
        raise ResultsError(f"corners: missing column(s) {', '.join(missing)} (expected the table of corner_distances)")
    table = corners.assign(t=pd.to_numeric(corners["t"], errors="coerce"), init=corners["init"].astype(str),
                           comparison=corners["comparison"].astype(str),
                           configuration=corners["configuration"].astype(str))
    grid = np.unique(table["t"].dropna().to_numpy(dtype=float))
    if not grid.size:
        raise ResultsError("corners.t: no values of t")
    picked = []
    for target in CORNER_TS:  # a tie (0.25 on a grid of tenths) goes to the smaller t
        t = float(grid[np.argmin(np.round(np.abs(grid - target), 9))])
        if t not in picked:
            picked.append(t)
    seeds = table[table["comparison"] == BETWEEN_SEEDS]
    to_default = table[table["comparison"] == TO_DEFAULT]
    lines += [f"Runs started from a pre-trained or perturbed \"corner\" against the same training from the default "
              f"start (the kept default-init runs whose configuration is the same apart from the init and the seed), "
              f"at equal progress t; for scale, the distance between two seeds of that default-init configuration "
              f"(and between two seeds of the corner); ratio = distance to default-init runs / distance between "
              f"default seeds (1: as close as two seeds of the default training). Means over run pairs, at the t of "
              f"the grid nearest to {', '.join(f'{x:g}' for x in CORNER_TS)}.", "",
              "| init | t | to default-init runs | between default seeds | ratio | between corner seeds |",
              "|---|---|---|---|---|---|"]
    sentences = []
    for init in dict.fromkeys(to_default["init"]):
        mine = to_default[to_default["init"] == init]
        confs = set(mine["configuration"])
        base = seeds[(seeds["init"] == DEFAULT_INIT) & seeds["configuration"].isin(confs)]
        own = seeds[seeds["init"] == init]
        values = []
        begins = (pd.to_numeric(mine["start"], errors="coerce").groupby(mine["configuration"]).first().dropna()
                  if "start" in mine.columns else pd.Series(dtype=float))
        # marked below the latest start: there the runs of at least one configuration are still at the corner
        begin = float(begins.max()) if len(begins) else float("nan")
        for t in picked:
            d = _pair_mean(mine[np.isclose(mine["t"], t)])
            b = _pair_mean(base[np.isclose(base["t"], t)])
            c = _pair_mean(own[np.isclose(own["t"], t)])
            ratio = d / b if np.isfinite(b) and b > 0 else float("nan")
            values.append(d)
            mark = " \u2020" if np.isfinite(begin) and t < begin else ""
            lines.append(f"| {init} | {_num(t)}{mark} | {_num(d)} | {_num(b)} | {_num(ratio)} | {_num(c)} |")
        n_pairs = int(mine.groupby("configuration")["pairs"].first().sum())
        where = ("" if not len(begins) else f", its runs start at t = {_num(begins.min(), 2)}" if
                 _num(begins.min(), 2) == _num(begin, 2) else
                 f", its runs start at t = {_num(begins.min(), 2)} to {_num(begin, 2)} by configuration")
        head = (f"- **{init}** ({_count(len(confs), 'configuration')}, {_count(n_pairs, 'run pair')} to default-init "
                f"runs{where})")
        early, late = values[0], values[-1]
        span = f"from {_num(early)} at t = {_num(picked[0])} to {_num(late)} at t = {_num(picked[-1])}"
        if len(picked) < 2:
            sentences.append(f"{head}: one value of t only, so no trend.")
        elif not (np.isfinite(early) and np.isfinite(late)):
            sentences.append(f"{head}: distances missing, so no trend.")
        elif late < early:
            sentences.append(f"{head}: the distance shrinks {span}.")
        elif late > early:
            sentences.append(f"{head}: the distance does not shrink; it grows {span}.")
        else:
            sentences.append(f"{head}: the distance stays at {_num(early)} from t = {_num(picked[0])} to "
                             f"t = {_num(picked[-1])}.")
    if not (seeds["init"] == DEFAULT_INIT).any():
        sentences.append("- No default-init configuration compared here has two kept seeds, so there is no seed scale.")
    if any("\u2020 |" in line for line in lines):
        sentences.append("- \u2020: t below where the corner's runs start (in at least one configuration); there they "
                         "are still at the corner itself, so the distance is the corner's own from the default-init "
                         "runs at that t.")
    lines += ["", *sentences, ""]
    return lines


def summary_markdown(split: str, *, excluded, configuration_pairs, factors, tube, speed_per_configuration,
                     explained_stress, n_runs: int, corners=None) -> str:
    """The text of `summary.md` for one split: a heading and one short paragraph per claim, with the
    study's numbers (it reports what the data show; it does not assert the paper's conclusions).

    Arguments are the results of this module: ``excluded`` (:func:`select_runs`), ``configuration_pairs``
    (the pairs of :func:`configuration_distances`), ``factors`` (:func:`factor_effects`), ``tube``
    (:func:`tube_widths`), ``speed_per_configuration`` (:func:`speed`), ``explained_stress`` (S(1), S(2),
    ... of the embedding, or None) and ``n_runs`` (runs in the study). Any of the tables may be empty or
    None: the paragraph then says what could not be measured (one architecture, no configuration with
    two seeds, no factor that varies).

    ``corners`` (:func:`corner_distances`; give it only in a study with corners) adds a section "5.
    Networks that start far from ignorance" before the excluded runs: for each init, the mean distance
    (over run pairs) to its default-init partners at the t of the grid nearest 0.25, 0.5 and 0.75, next to
    the distance between two seeds of those default configurations and the ratio, and whether the distance
    shrinks from early to late t. None: no such section; an empty table: one sentence saying so.
    """
    try:
        n_runs = int(n_runs)
    except (TypeError, ValueError):
        raise ResultsError(f"n_runs: expected an integer, got {n_runs!r}") from None
    excluded = _frame(excluded)
    n_excluded = len(excluded)
    lines = [f"# Analysis of the {split} split", "",
             f"{_count(n_runs, 'run')} in the study, {n_runs - n_excluded} kept, {n_excluded} excluded "
             "(listed at the end). "
             "Distances are Bhattacharyya distances between trajectories at equal progress t, averaged over t.", ""]
    lines += _claim_architectures(_frame(configuration_pairs), _frame(factors))
    lines += _claim_speed(_frame(speed_per_configuration))
    lines += _claim_tubes(_frame(tube), _frame(configuration_pairs))
    lines += _claim_stress(explained_stress)
    if corners is not None:
        if not isinstance(corners, pd.DataFrame):
            raise ResultsError(f"corners: expected a pandas DataFrame or None, got {type(corners).__name__}")
        lines += _claim_corners(corners)
    lines += ["## Excluded runs", ""]
    if n_excluded:
        lines += [f"- `{r.run}`: {r.reason}" for r in excluded[["run", "reason"]].itertuples(index=False)]
    else:
        lines.append("none")
    return "\n".join(lines) + "\n"


# The page around summary.html: readable in a browser and in the report's iframe, no outside resources.
_SUMMARY_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; line-height: 1.5; max-width: 50rem; margin: 1.5rem auto; padding: 0 1rem;
       color: #222; background: #fff; }}
code {{ font-size: 0.9em; background: #f3f3f3; padding: 0 0.2em; }}
table {{ border-collapse: collapse; margin: 0.5rem 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: left; }}
</style>
</head>
<body>
{body}</body>
</html>
"""


def summary_html(markdown_text: str, title: str) -> str:
    """`summary.md` (the text of :func:`summary_markdown`) as a standalone HTML page, the report's entry
    (a browser shows HTML in the report; it only offers a Markdown file for download).

    Raw HTML in the text is escaped, not passed through: run ids and configuration labels in the text
    come from the user's config. Links keep markdown-it's check (no ``javascript:`` URLs).
    """
    import html

    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown_text)
    return _SUMMARY_PAGE.format(title=html.escape(title), body=body)
