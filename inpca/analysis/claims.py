"""The paper's claims, each measured by one function on the trajectories at equal progress (see
:mod:`inpca.analysis`)."""

from __future__ import annotations

import math
import warnings
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..configurations import (DEFAULT_INIT, FACTORS, archs_of, check_trajectories, config_frame, configuration_labels,
                              factor_of, geodesic_mask, geodesic_row, init_fields_shown, init_label, is_init_field,
                              ordered_configurations, run_mask)
from ..errors import ResultsError
from ..study import GEODESIC
from ..trajectories import first_crossing
from .selection import check_dists, check_keep


DEFAULT_LEVELS = (0.5, 0.8, 0.9)
FACTOR_COLUMNS = ("factor", "median", "q25", "q75", "pairs_differing_only_here", "importance",
                  "importance_std")
# The forest and its permutation importance use at most this many run pairs (a random subset, fixed by
# random_state): beyond it the estimate no longer changes but the time keeps growing.
MAX_IMPORTANCE_PAIRS = 20_000
IMPORTANCE_REPEATS = 20
FOREST_TREES = 100
CORNER_COLUMNS = ("configuration", "arch", "init", "comparison", "t", "distance", "pairs", "start")
TO_DEFAULT, BETWEEN_SEEDS = "to default", "between seeds"


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
    check_trajectories(trajectories)
    keep = check_keep(keep, len(trajectories))
    dists = check_dists(dists, len(trajectories))
    rows = np.flatnonzero(keep)
    mean = dists.mean(axis=0)
    if rows.size and not np.isfinite(mean[np.ix_(rows, rows)]).all():
        raise ResultsError("dists: non-finite distances between kept trajectories")
    lab = configuration_labels(trajectories).to_numpy()
    archs = archs_of(trajectories)
    labels = ordered_configurations(lab, archs, rows)
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
    check_trajectories(trajectories)
    keep = check_keep(keep, len(trajectories))
    dists = check_dists(dists, len(trajectories))
    rows = np.flatnonzero(keep & run_mask(trajectories))
    frame = config_frame(trajectories).iloc[rows]
    groups: dict[str, list[str]] = {}
    for c in frame.columns:
        groups.setdefault(factor_of(str(c)), []).append(c)
    codes = {}
    for factor in FACTORS:
        cols = groups.get(factor)
        if not cols:
            continue
        code = pd.factorize(pd.Series([tuple(r) for r in frame[cols].itertuples(index=False, name=None)],
                                      dtype=object))[0]
        if len(set(code)) > 1:
            codes[factor] = code
    arch_code = pd.factorize(pd.Series(archs_of(trajectories)[rows]))[0]
    iu, ju = np.triu_indices(len(rows), 1)
    mean = dists.mean(axis=0)
    runs = trajectories["run"].astype(str).to_numpy()
    archs = archs_of(trajectories)
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
    check_trajectories(trajectories)
    dists = check_dists(dists, len(trajectories))
    keep = check_keep(keep, len(trajectories))
    t = _grid(ts, dists.shape[0])
    g = geodesic_row(trajectories)
    rows = np.flatnonzero(run_mask(trajectories) & keep)
    lab = configuration_labels(trajectories).to_numpy()
    archs = archs_of(trajectories)
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
    check_trajectories(trajectories)
    keep = check_keep(keep, len(trajectories))
    ts = np.asarray(ts, dtype=float)
    if ts.ndim != 1 or ts.size == 0:
        raise ResultsError(f"ts: expected a 1-D array of the t_k, got shape {ts.shape}")
    lab = configuration_labels(trajectories).to_numpy()
    archs = archs_of(trajectories)
    runs = trajectories["run"].astype(str).to_numpy()
    rows = np.flatnonzero(keep & run_mask(trajectories))
    frames = []
    for conf in ordered_configurations(lab, archs, rows):
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
    check_trajectories(trajectories)
    keep = check_keep(keep, len(trajectories))
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
    archs = archs_of(trajectories)
    is_run = run_mask(trajectories)
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
    check_trajectories(trajectories)
    keep = check_keep(keep, len(trajectories))
    dists = check_dists(dists, len(trajectories))
    t = _grid(ts, dists.shape[0])
    empty = pd.DataFrame({c: pd.Series(dtype=float if c in ("t", "distance") else int if c == "pairs" else object)
                          for c in CORNER_COLUMNS})
    frame = config_frame(trajectories)
    if "init.name" not in frame.columns:
        return empty
    is_run = run_mask(trajectories)
    rows = np.flatnonzero(keep & is_run)
    lab = configuration_labels(trajectories).to_numpy()
    archs = archs_of(trajectories)
    base_cols = [c for c in frame.columns if not is_init_field(c) and c != "seed"]
    base = [tuple(r) for r in frame[base_cols].itertuples(index=False, name=None)]
    default = (frame["init.name"] == DEFAULT_INIT).to_numpy()
    no_seed = frame.drop(columns=[c for c in frame.columns if c == "seed"])
    init_fields = init_fields_shown(no_seed, np.flatnonzero(is_run))
    records = no_seed.to_dict("records")
    members = {conf: rows[lab[rows] == conf] for conf in ordered_configurations(lab, archs, rows)}
    defaults = {conf: m for conf, m in members.items() if default[m[0]]}
    corners = sorted((init_label(records[m[0]], init_fields), conf) for conf, m in members.items() if not default[m[0]])
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
# the map of whole trajectories


def trajectory_map(dists, trajectories: pd.DataFrame, keep, n_components: int = 3, geodesic_weight=1.0) -> dict:
    """InPCA of whole trajectories: one point per kept trajectory (the geodesic included), from the
    mean over t of the distances at equal progress (the paper's map in which configurations cluster by
    architecture; the authors' ``inpca_reindexed.py``).

    ``geodesic_weight``: how many trajectories the geodesic counts for in the centring and the
    eigenproblem (weighted InPCA, :class:`inpca.landmarks.WeightedLandmarkInPCA`); 1 is plain InPCA,
    "authors" is the authors' ``--weight_geod`` (the number of trajectories / 10).

    Returns a dict: ``rows`` (the kept trajectories' rows of ``trajectories``), ``coords`` (len(rows), k),
    ``eigenvalues`` (k,) signed, ``explained_stress`` (k,), ``geodesic_weight`` (the number used) and how
    well architectures separate in the mean distances (runs only): ``nn_same_arch`` (the fraction of
    runs whose nearest other run has their architecture), ``nn_chance`` (the same expected from the
    architecture counts alone: sum_a n_a (n_a - 1) / (n (n - 1))) and ``silhouette`` (scikit-learn's, on
    the precomputed distances; NaN with fewer than two architectures or runs).
    """
    from sklearn.metrics import silhouette_score

    from ..embedding import InPCA
    from ..landmarks import WeightedLandmarkInPCA

    check_trajectories(trajectories)
    keep = check_keep(keep, len(trajectories))
    dists = check_dists(dists, len(trajectories))
    rows = np.flatnonzero(keep)
    mean = dists.mean(axis=0)[np.ix_(rows, rows)]
    if not np.isfinite(mean).all():
        raise ResultsError("dists: non-finite distances between kept trajectories")
    geodesic = geodesic_mask(trajectories)[rows]
    if geodesic_weight == "authors":
        geodesic_weight = max(len(rows) / 10.0, 1e-12)
    geodesic_weight = float(geodesic_weight)
    if not geodesic_weight > 0:
        raise ResultsError(f"geodesic_weight: expected a number > 0 or 'authors', got {geodesic_weight!r}")
    k = max(1, min(int(n_components), len(rows) - 1)) if len(rows) > 1 else 1
    if geodesic_weight == 1.0 or not geodesic.any():
        model = InPCA(n_components=k, solver="dense").fit(mean)
    else:
        weights = np.where(geodesic, geodesic_weight, 1.0)
        model = WeightedLandmarkInPCA(n_components=k).fit(mean, sample_weight=weights)
    archs = archs_of(trajectories)[rows]
    runs = ~geodesic
    run_dists, run_archs = mean[np.ix_(runs, runs)], archs[runs]
    n = int(runs.sum())
    nn_same = nn_chance = silhouette = math.nan
    if n >= 2:
        others = run_dists + np.diag(np.full(n, np.inf))
        nn_same = float(np.mean(run_archs[np.argmin(others, axis=1)] == run_archs))
        counts = pd.Series(run_archs).value_counts().to_numpy()
        nn_chance = float((counts * (counts - 1)).sum() / (n * (n - 1)))
        if 2 <= len(counts) <= n - 1:
            silhouette = float(silhouette_score(run_dists, run_archs, metric="precomputed"))
    return {"rows": rows, "coords": model.coords_, "eigenvalues": model.eigenvalues_,
            "explained_stress": model.explained_stress_, "geodesic_weight": geodesic_weight,
            "nn_same_arch": nn_same, "nn_chance": nn_chance, "silhouette": silhouette}
