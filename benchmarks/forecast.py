"""Does the atlas forecast a training's end better than the obvious baselines? Held-out configurations and
held-out architectures, with bootstrap confidence intervals and the forecast range's coverage.

Two protocols (``--protocol configuration|architecture|both``):

* configuration: every configuration of a finished study is held out in turn (all its seeds leave the
  atlas: its references and its seed-to-seed spread), as before;
* architecture: every architecture (the arch name with its fields, e.g. ``fc 32x1``; or with
  ``--architecture-level family`` the name alone, e.g. ``fc``) is held out in turn: all its runs leave
  the references, so the atlas places a network of a kind it has never seen.

Each held-out run is cut at 10 %, 25 % and 50 % of its epochs (the checkpoints up to then, as if it were
still training) and its final test error is forecast five ways, on the same cuts:

* forecast: the atlas' forecast, ``Atlas.forecast(Atlas.follow(run so far, exclude=held out), k)``'s
  ``estimates["final_test_error"]`` (value, low, high), low-high a nominal 80 % range;
* atlas neighbours: the k nearest reference trajectories' final errors at equal progress,
  ``estimates["final_test_error_neighbours"]`` (value, min, max of the k neighbours; the same as the
  forecast in an atlas without that key);
* current: the run's test error at the cut (what successive halving ranks by);
* power law: a + b * epoch^(-c) fitted to the run's test errors so far (scipy's curve_fit, bounded,
  several starts; a fit that fails falls back to the current error and is counted);
* hyperparameters: the k nearest runs (not held out) in config space alone (one-hot architecture and
  optimizer, log learning rate, log batch size, log weight decay, augmentation, log parameter count),
  no training seen.

For each protocol and cut it prints a markdown table, across the cuts that every method forecasts (the
atlas declines a run that has not reached its first grid point), of the Spearman correlation of the
forecast with the true final test error and the mean absolute error, each with a 95 % percentile
bootstrap interval over configurations (``--bootstrap`` resamples of the held-out configurations with
replacement, all of a drawn configuration's cuts together, seeded, the same resamples for every method);
the selection regret (the true error of the configuration a method ranks best, by its seeds' mean
forecast, minus the best true configuration error); how often the forecast's range (and the neighbours'
min-max) holds the true final error, and its median width; and the share of cuts on which the forecast
is closer to the true final error than each other method. Below, the same with a method's declined cuts
replaced by the run's current error, on all cuts. Diverged runs are not targets. It also times
``Atlas.follow`` and ``Atlas.forecast`` per cut and prints the wall time.

    python benchmarks/forecast.py --study results-digits-zoo [--protocol both] [--k 5] [--split train]
        [--bootstrap 1000] [--seed 0] [--out forecast.tsv]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CUTS = (0.10, 0.25, 0.50)
NOMINAL = 0.80  # the forecast's range is a nominal 80 % range
# (column, label, range columns or None) of the methods, the forecast first
METHODS = (("forecast", "forecast", ("forecast_low", "forecast_high")),
           ("neighbours", "atlas neighbours", ("neighbours_low", "neighbours_high")),
           ("current", "current error", None),
           ("power_law", "power law", None),
           ("hyperparameters", "hyperparameters", None))


# ---- pure helpers (tests/unit/test_forecast_benchmark.py) ----------------------------------------


def cut_run(run: dict, fraction: float) -> dict | None:
    """The run's checkpoints up to `fraction` of its epochs (None if only checkpoint 0 is left)."""
    epochs = np.asarray(run["epoch"], dtype=float)
    keep = epochs <= fraction * float(epochs[-1]) + 1e-9
    if keep.sum() < 2:
        return None
    out = {key: (value[keep] if isinstance(value, np.ndarray) and len(value) == len(epochs) else value)
           for key, value in run.items()}
    return out


def power_law(epochs, errors, final_epoch) -> tuple[float, bool]:
    """a + b * epoch^(-c) fitted to (epochs > 0, errors), evaluated at final_epoch; (value, fitted)."""
    from scipy.optimize import curve_fit

    x, y = np.asarray(epochs, float), np.asarray(errors, float)
    x, y = x[x > 0], y[x > 0]
    if len(x) < 3:
        return float(errors[-1]), False

    def f(e, a, b, c):
        return a + b * np.power(e, -c)

    best = None
    for c0 in (0.3, 1.0, 2.0):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                params, _ = curve_fit(f, x, y, p0=(max(y[-1] * 0.5, 1e-3), max(y[0] - y[-1], 1e-3), c0),
                                      bounds=([0, 0, 0.01], [1, 10, 5]), maxfev=5000)
        except (RuntimeError, ValueError):
            continue
        residual = float(np.sum((f(x, *params) - y) ** 2))
        if best is None or residual < best[0]:
            best = (residual, params)
    if best is None:
        return float(errors[-1]), False
    return float(np.clip(f(final_epoch, *best[1]), 0.0, 1.0)), True


def hyperparameter_features(table: pd.DataFrame) -> np.ndarray:
    """Config space: one-hot architecture and optimizer, log lr, log batch size, log weight decay,
    augmentation, log parameters; standardised columns."""
    parts = [pd.get_dummies(table["arch"].astype(str), prefix="arch").astype(float),
             pd.get_dummies(table["optimizer"].astype(str), prefix="opt").astype(float)]
    numeric = pd.DataFrame({
        "lr": np.log10(pd.to_numeric(table.get("optimizer.lr"), errors="coerce").fillna(1e-3)),
        "batch": np.log2(pd.to_numeric(table.get("batch_size"), errors="coerce").fillna(64)),
        "wd": np.log10(pd.to_numeric(table.get("weight_decay"), errors="coerce").fillna(0) + 1e-6),
        "augment": table.get("augment", pd.Series(False, index=table.index))
                        .astype(str).str.lower().eq("true").astype(float),
        "params": np.log10(pd.to_numeric(table.get("parameters"), errors="coerce").fillna(1e4)),
    })
    X = pd.concat(parts + [numeric], axis=1).to_numpy(dtype=float)
    scale = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(scale > 0, scale, 1.0)


def architecture_labels(table: pd.DataFrame, level: str = "spec") -> pd.Series:
    """Each run's architecture: the arch name with its ``arch.*`` fields ("fc depth=1 width=32"), or with
    level "family" the name alone ("fc")."""
    if level == "family":
        return table["arch"].astype(str)
    fields = sorted(c for c in table.columns if c.startswith("arch.") and c != "arch.name")

    def label(row) -> str:
        parts = [f"{c[len('arch.'):]}={row[c]}" for c in fields
                 if not (row[c] is None or (isinstance(row[c], float) and math.isnan(row[c])) or row[c] == "")]
        return " ".join([str(row["arch"])] + parts)

    return table.apply(label, axis=1) if len(table) else pd.Series([], dtype=str)


def spearman(a, b) -> float:
    """Spearman's ρ of the finite pairs (NaN below 3 pairs or for a constant side)."""
    from scipy.stats import rankdata

    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return math.nan
    ra, rb = rankdata(a[ok]), rankdata(b[ok])
    if ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def mae(forecast, true) -> float:
    forecast, true = np.asarray(forecast, float), np.asarray(true, float)
    ok = np.isfinite(forecast) & np.isfinite(true)
    return float(np.mean(np.abs(forecast[ok] - true[ok]))) if ok.any() else math.nan


def coverage(true, low, high) -> float:
    """The share of the finite ranges [low, high] that hold `true` (ends included); NaN if none."""
    true, low, high = (np.asarray(x, float) for x in (true, low, high))
    ok = np.isfinite(true) & np.isfinite(low) & np.isfinite(high)
    return float(np.mean((low[ok] <= true[ok]) & (true[ok] <= high[ok]))) if ok.any() else math.nan


def regret(table: pd.DataFrame, column: str, truth: str = "true") -> float:
    """True final error of the configuration ranked best by `column` (its seeds' mean forecast) minus the
    best true configuration error of the table (a configuration without a finite forecast is not chosen,
    but still counts as the best)."""
    per = table.groupby("configuration")[[column, truth]].mean()
    best = per[truth].min()
    per = per[np.isfinite(per[column])]
    return float(per[truth].loc[per[column].idxmin()] - best) if len(per) else math.nan


def closer_share(table: pd.DataFrame, column: str, other: str, truth: str = "true") -> tuple[float, float]:
    """(share of rows where `column` is strictly closer to the truth than `other`, share of ties), over
    the rows where both are finite."""
    a = np.abs(table[column].to_numpy(float) - table[truth].to_numpy(float))
    b = np.abs(table[other].to_numpy(float) - table[truth].to_numpy(float))
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        return math.nan, math.nan
    return float(np.mean(a[ok] < b[ok])), float(np.mean(a[ok] == b[ok]))


def bootstrap_resamples(groups, n: int = 1000, seed: int = 0) -> list[np.ndarray]:
    """`n` resamples of the row positions, drawing the groups (configurations) with replacement, all of
    a drawn group's rows together (a group drawn twice gives its rows twice)."""
    groups = np.asarray(groups)
    labels, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == i) for i in range(len(labels))]
    rng = np.random.default_rng(seed)
    return [np.concatenate([members[i] for i in rng.integers(0, len(labels), len(labels))])
            for _ in range(n)] if len(labels) else []


def bootstrap_ci(statistic, resamples, level: float = 0.95) -> tuple[float, float]:
    """The `level` percentile interval of `statistic(rows)` (rows: an array of row positions) over the
    resamples; resamples whose statistic is not finite are left out (NaN, NaN if all are)."""
    values = np.array([statistic(rows) for rows in resamples], dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def summary(table: pd.DataFrame, resamples, level: float = 0.95) -> dict:
    """Per method (METHODS present in `table`): ρ, MAE with their bootstrap intervals, regret, the
    range's coverage (with interval) and median width, and the forecast's closer share against it."""
    out = {}
    true = table["true"].to_numpy(float)
    for column, _, ranges in METHODS:
        if column not in table.columns:
            continue
        x = table[column].to_numpy(float)
        row = {"rho": spearman(x, true), "mae": mae(x, true), "regret": regret(table, column)}
        row["rho_ci"] = bootstrap_ci(lambda rows: spearman(x[rows], true[rows]), resamples, level)
        row["mae_ci"] = bootstrap_ci(lambda rows: mae(x[rows], true[rows]), resamples, level)
        if ranges and all(r in table.columns for r in ranges):
            low, high = (table[r].to_numpy(float) for r in ranges)
            row["coverage"] = coverage(true, low, high)
            row["coverage_ci"] = bootstrap_ci(lambda rows: coverage(true[rows], low[rows], high[rows]),
                                              resamples, level)
            width = high - low
            row["width"] = float(np.median(width[np.isfinite(width)])) if np.isfinite(width).any() else math.nan
        if column != "forecast" and "forecast" in table.columns:
            row["closer"] = closer_share(table, "forecast", column)
        out[column] = row
    return out


# ---- the run ----------------------------------------------------------------------------------


def _f(x: float, digits: int = 3) -> str:
    return "–" if not math.isfinite(x) else f"{x:.{digits}f}"


def _pct(x: float) -> str:
    return "–" if not math.isfinite(x) else f"{100 * x:.0f} %"


def held_out_units(references: pd.DataFrame, protocol: str, level: str) -> list[tuple[str, list[str]]]:
    """(name, runs) of each unit held out in turn: configurations, or architectures."""
    key = references["configuration"] if protocol == "configuration" else architecture_labels(references, level)
    return [(str(name), list(members["run"])) for name, members in references.groupby(key.to_numpy(), sort=False)]


def run_protocol(atlas, study: Path, protocol: str, args, cache: dict) -> tuple[pd.DataFrame, dict]:
    """The forecasts of every held-out run's cuts, one row per cut; and the protocol's counts."""
    from inpca.runfile import read_run

    references = atlas.outcomes
    features = pd.DataFrame(hyperparameter_features(references), index=references["run"])
    arch_of = dict(zip(references["run"], architecture_labels(references, args.architecture_level)))
    rows, failed_fits = [], 0
    started = time.perf_counter()
    for unit, held in held_out_units(references, protocol, args.architecture_level):
        held_out = set(held)
        others = references[~references["run"].isin(held_out)]
        if not len(others):
            continue
        X_others = features.loc[others["run"]].to_numpy()
        for run_id in held:
            if run_id not in cache:
                cache[run_id] = read_run(study / "runs" / f"{run_id}.h5")
            run = cache[run_id]
            member = references[references["run"] == run_id].iloc[0]
            true = float(run["test_error"][-1])
            final_epoch = float(run["epoch"][-1])
            distance = np.linalg.norm(X_others - features.loc[run_id].to_numpy(), axis=1)
            nearest = np.argsort(distance, kind="stable")[:args.k]
            weights = 1.0 / np.maximum(distance[nearest], 1e-9)
            hyper = float((others["final_test_error"].to_numpy()[nearest] * weights).sum() / weights.sum())
            for cut in CUTS:
                part = cut_run(run, cut)
                if part is None:
                    continue
                t0 = time.perf_counter()
                following = atlas.follow(part, split=args.split, exclude=held_out)
                t1 = time.perf_counter()
                forecast = atlas.forecast(following, k=args.k)
                t2 = time.perf_counter()
                atlas.forecast(following, k=args.k)  # again: what a live run pays once the atlas is fitted
                t3 = time.perf_counter()
                if (run_id, cut) not in cache:
                    cache[(run_id, cut)] = power_law(part["epoch"], part["test_error"], final_epoch)
                law, fitted = cache[(run_id, cut)]
                failed_fits += not fitted
                new = forecast.estimates["final_test_error"]
                old = forecast.estimates.get("final_test_error_neighbours", new)
                nearest_arch = (arch_of.get(following.references["run"].iloc[0])
                                if len(following.t) and len(following.references) else None)
                rows.append({"protocol": protocol, "held_out": unit, "run": run_id,
                             "configuration": member["configuration"], "architecture": arch_of[run_id],
                             "cut": cut, "true": true,
                             "forecast": new[0], "forecast_low": new[1], "forecast_high": new[2],
                             "neighbours": old[0], "neighbours_low": old[1], "neighbours_high": old[2],
                             "current": float(part["test_error"][-1]), "power_law": law, "power_law_fitted": fitted,
                             "hyperparameters": hyper, "trusted": bool(forecast.trusted), "note": forecast.reason,
                             "t_reached": forecast.t_reached,
                             "nearest_same_architecture": nearest_arch == arch_of[run_id],
                             "follow_ms": (t1 - t0) * 1000, "forecast_ms": (t2 - t1) * 1000,
                             "forecast_again_ms": (t3 - t2) * 1000})
    counts = {"failed_fits": failed_fits, "seconds": time.perf_counter() - started,
              "units": len(held_out_units(references, protocol, args.architecture_level))}
    return pd.DataFrame(rows), counts


def print_protocol(table: pd.DataFrame, counts: dict, protocol: str, args, n_references: int) -> None:
    level = 0.95
    level_words = "the arch name alone" if args.architecture_level == "family" else "the arch name with its fields"
    what = ("configuration (all its seeds)" if protocol == "configuration" else
            f"architecture ({level_words}; all its runs)")
    print()
    print(f"### Protocol {protocol}: each {what} held out in turn ({counts['units']} held out in turn)")
    print()
    print(f"{args.study}: {n_references} reference runs, {table['configuration'].nunique()} configurations; "
          f"{table['run'].nunique()} held-out runs (diverged runs are not targets), {len(table)} cuts; k = {args.k}, "
          f"split {args.split}; {args.bootstrap} bootstrap resamples of configurations (seed {args.seed}), "
          f"{_pct(level)} percentile intervals; took {counts['seconds']:.0f} s")
    print()
    columns = [c for c, _, _ in METHODS]
    label = {c: name for c, name, _ in METHODS}
    header = ("| cut | method | forecasts (of all cuts) | cuts compared | Spearman ρ [95 % CI] | MAE [95 % CI] | "
              "selection regret | range holds the true error [95 % CI] | median range width | forecast closer |\n"
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")

    def rows(cut, part: pd.DataFrame, compared: pd.DataFrame, finite: dict, fallback: bool) -> None:
        stats = summary(compared, bootstrap_resamples(compared["configuration"], args.bootstrap, args.seed), level)
        for c in columns:
            s, n = stats[c], int(finite[c].sum())
            rng = width = closer = ""
            if "coverage" in s:
                rng = (f"{_pct(s['coverage'])} [{_pct(s['coverage_ci'][0])}, {_pct(s['coverage_ci'][1])}]"
                       + (f" (nominal {_pct(NOMINAL)})" if c == "forecast" else " (k neighbours' min-max)"))
                width = _f(s["width"], 4)
            if "closer" in s:
                share, ties = s["closer"]
                closer = _pct(share) + (f" ({_pct(ties)} ties)" if ties > 0 else "")
            name = label[c] + (f" (the current error on the {len(part) - n} it declines)" if fallback and n < len(part)
                               else "")
            print(f"| {_pct(cut)} | {name} | {n} of {len(part)} | {len(compared)} | "
                  f"{_f(s['rho'], 2)} [{_f(s['rho_ci'][0], 2)}, {_f(s['rho_ci'][1], 2)}] | "
                  f"{_f(s['mae'], 4)} [{_f(s['mae_ci'][0], 4)}, {_f(s['mae_ci'][1], 4)}] | {_f(s['regret'], 4)} | "
                  f"{rng} | {width} | {closer} |")

    print("On the cuts that every method forecasts:")
    print()
    print(header)
    groups = list(table.groupby("cut"))
    for cut, part in groups:
        finite = {c: np.isfinite(part[c].to_numpy(float)) for c in columns}
        rows(cut, part, part[np.logical_and.reduce([finite[c] for c in columns])], finite, False)
    if any(not np.isfinite(table[c].to_numpy(float)).all() for c in columns):
        print()
        print("On all cuts, a method that declines a cut taking the run's current error there (its range: on the "
              "cuts it gave one):")
        print()
        print(header)
        for cut, part in groups:
            finite = {c: np.isfinite(part[c].to_numpy(float)) for c in columns}
            filled = part.copy()
            for c in columns:
                filled[c] = filled[c].where(finite[c], filled["current"])
            rows(cut, part, filled, finite, True)
    print()
    ranged = table[np.isfinite(table["forecast_low"]) & np.isfinite(table["forecast_high"])]
    resamples = bootstrap_resamples(ranged["configuration"], args.bootstrap, args.seed)
    pooled = coverage(ranged["true"], ranged["forecast_low"], ranged["forecast_high"])
    arrays = [ranged[c].to_numpy(float) for c in ("true", "forecast_low", "forecast_high")]
    low, high = bootstrap_ci(lambda rows: coverage(*(a[rows] for a in arrays)), resamples)
    width = (ranged["forecast_high"] - ranged["forecast_low"]).to_numpy(float)
    verdict = "–" if not math.isfinite(pooled) else "within" if abs(pooled - NOMINAL) <= 0.05 else "outside"
    print(f"- The forecast's nominal {_pct(NOMINAL)} range held the true final error in {_pct(pooled)} "
          f"[{_pct(low)}, {_pct(high)}] of the {len(ranged)} cuts it gave a range for (all cuts pooled; {verdict} "
          f"75-85 %), median width {_f(float(np.median(width)) if len(width) else math.nan, 4)}; below it in "
          f"{_pct(float(np.mean(ranged['true'] < ranged['forecast_low'])) if len(ranged) else math.nan)}, above it in "
          f"{_pct(float(np.mean(ranged['true'] > ranged['forecast_high'])) if len(ranged) else math.nan)}.")
    placed = table[np.isfinite(table["neighbours"])]
    far = int(placed["note"].astype(str).str.contains("farther than").sum())
    same = float(placed["nearest_same_architecture"].mean()) if len(placed) else math.nan
    print(f"- Of the {len(placed)} cuts with neighbours (past the atlas' first grid point), the nearest reference "
          f"trajectory was farther than the atlas' seed-to-seed spread in {far} and had the held-out run's "
          f"architecture in {_pct(same)}; power-law fits that failed (fell back to the current error): "
          f"{counts['failed_fits']} of {len(table)}.")
    slowest = int(np.argmax(table["forecast_ms"].to_numpy()))
    print(f"- Per cut: Atlas.follow took a median {np.median(table['follow_ms']):.0f} ms, Atlas.forecast a median "
          f"{np.median(table['forecast_ms']):.1f} ms (mean {np.mean(table['forecast_ms']):.1f} ms; the slowest, "
          f"{np.max(table['forecast_ms']) / 1000:.1f} s, was cut {slowest + 1} of {len(table)}); all forecasts "
          f"{table['forecast_ms'].sum() / 1000:.1f} s (these include fitting the forecast once per held-out set); "
          f"the same call again, fitted: a median {np.median(table['forecast_again_ms']):.1f} ms.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", required=True, help="the results folder of a finished study (the atlas)")
    parser.add_argument("--protocol", choices=("configuration", "architecture", "both"), default="configuration",
                        help="hold out each configuration, each architecture, or both in turn (default configuration)")
    parser.add_argument("--architecture-level", choices=("spec", "family"), default="spec",
                        help="architecture protocol: an architecture is the arch name with its fields (spec, default) "
                             "or the name alone (family)")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--split", default="train")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of configurations (1000)")
    parser.add_argument("--seed", type=int, default=0, help="the bootstrap's seed (0)")
    parser.add_argument("--out", default=None, help="a TSV of every forecast (a protocol column)")
    args = parser.parse_args()
    from inpca.atlas import Atlas

    started = time.perf_counter()
    study = Path(args.study)
    atlas = Atlas.load(study, memory_gb=4.0)
    protocols = ("configuration", "architecture") if args.protocol == "both" else (args.protocol,)
    cache, tables = {}, []
    print(f"# benchmarks/forecast.py --study {args.study} --protocol {args.protocol} --k {args.k} --split {args.split} "
          f"--bootstrap {args.bootstrap} --seed {args.seed}"
          + (f" --architecture-level {args.architecture_level}" if args.protocol != "configuration" else ""))
    for protocol in protocols:
        table, counts = run_protocol(atlas, study, protocol, args, cache)
        if not len(table) or counts["units"] < 2:
            print(f"\n### Protocol {protocol}: nothing to hold out ({counts['units']} units)")
            continue
        print_protocol(table, counts, protocol, args, len(atlas.outcomes))
        tables.append(table)
    if args.out and tables:
        pd.concat(tables).to_csv(args.out, sep="\t", index=False)
    print(f"\nWall time: {time.perf_counter() - started:.0f} s (loading the atlas included)")


if __name__ == "__main__":
    main()
