"""Does the atlas forecast a training's end better than the obvious baselines? Leave one configuration out.

For every configuration of a finished study (all its seeds leave the atlas), each of its runs is cut at
10 %, 25 % and 50 % of its epochs (the checkpoints up to then, as if it were still training) and its
final test error is forecast four ways, on the same cuts:

* atlas: the k nearest reference trajectories at equal progress (:meth:`inpca.atlas.Atlas.follow`,
  :meth:`~inpca.atlas.Atlas.forecast`; the held-out configuration excluded from the references and from
  the seed-to-seed spread);
* current: the run's test error at the cut (what successive halving ranks by);
* power law: a + b * epoch^(-c) fitted to the run's test errors so far (scipy's curve_fit, bounded,
  several starts; a fit that fails falls back to the current error and is counted);
* hyperparameters: the k nearest runs in config space alone (one-hot architecture and optimizer, log
  learning rate, log batch size, log weight decay, augmentation, log parameter count), no training seen.

For each cut it prints, across the held-out runs, the Spearman correlation of the forecast with the true
final test error, the mean absolute error, and the selection regret (the true error of the configuration
a method ranks best, by its seeds' mean forecast, minus the best true configuration error); for the
atlas also how many forecasts it trusts and the same numbers on those, and how often its range (the
neighbours' lowest and highest final error) holds the true one. Diverged runs are not targets.

    python benchmarks/forecast.py --study results-digits-zoo [--k 5] [--split train] [--out forecast.tsv]
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
        "augment": table.get("augment", pd.Series(False, index=table.index)).astype(str).str.lower().eq("true").astype(float),
        "params": np.log10(pd.to_numeric(table.get("parameters"), errors="coerce").fillna(1e4)),
    })
    X = pd.concat(parts + [numeric], axis=1).to_numpy(dtype=float)
    scale = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(scale > 0, scale, 1.0)


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    return float(spearmanr(a[ok], b[ok]).statistic) if ok.sum() > 2 else math.nan


def regret(table: pd.DataFrame, column: str) -> float:
    """True final error of the configuration ranked best by `column` (seeds' mean) minus the best."""
    per = table.groupby("configuration")[[column, "true"]].mean()
    per = per[np.isfinite(per[column])]
    return float(per["true"].loc[per[column].idxmin()] - per["true"].min()) if len(per) else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", required=True, help="the results folder of a finished study (the atlas)")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--split", default="train")
    parser.add_argument("--out", default=None, help="a TSV of every forecast")
    args = parser.parse_args()
    from inpca.atlas import Atlas
    from inpca.runfile import read_run

    started = time.perf_counter()
    atlas = Atlas.load(args.study, memory_gb=4.0)
    references = atlas.outcomes
    features = pd.DataFrame(hyperparameter_features(references), index=references["run"])
    rows, failed_fits, place_seconds = [], 0, []
    for configuration, members in references.groupby("configuration", sort=False):
        held_out = set(members["run"])
        others = references[~references["run"].isin(held_out)]
        for run_id in members["run"]:
            run = read_run(Path(args.study) / "runs" / f"{run_id}.h5")
            true = float(run["test_error"][-1])
            final_epoch = float(run["epoch"][-1])
            distance = np.linalg.norm(features.loc[others["run"]].to_numpy() - features.loc[run_id].to_numpy(), axis=1)
            nearest = np.argsort(distance, kind="stable")[:args.k]
            weights = 1.0 / np.maximum(distance[nearest], 1e-9)
            hyper = float((others["final_test_error"].to_numpy()[nearest] * weights).sum() / weights.sum())
            for cut in CUTS:
                part = cut_run(run, cut)
                if part is None:
                    continue
                t0 = time.perf_counter()
                following = atlas.follow(part, split=args.split, exclude=held_out)
                forecast = atlas.forecast(following, k=args.k)
                place_seconds.append(time.perf_counter() - t0)
                law, fitted = power_law(part["epoch"], part["test_error"], final_epoch)
                failed_fits += not fitted
                rows.append({"run": run_id, "configuration": configuration, "arch": members["arch"].iloc[0],
                             "cut": cut, "true": true, "atlas": forecast.estimates["final_test_error"][0],
                             "atlas_low": forecast.estimates["final_test_error"][1],
                             "atlas_high": forecast.estimates["final_test_error"][2],
                             "trusted": forecast.trusted, "current": float(part["test_error"][-1]),
                             "power_law": law, "hyperparameters": hyper,
                             "nearest_same_arch": bool(len(following.references) and
                                                       following.references["arch"].iloc[0] == members["arch"].iloc[0]),
                             "t_reached": forecast.t_reached})
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, sep="\t", index=False)
    methods = ["atlas", "current", "power_law", "hyperparameters"]
    # The atlas declines runs that have not reached its first grid point by the cut: every method is
    # compared on the runs it forecasts, and on all runs with the atlas falling back to the current error.
    table["atlas_or_current"] = table["atlas"].where(np.isfinite(table["atlas"]), table["current"])
    n_runs = table["run"].nunique()
    print(f"{args.study}: {len(references)} reference runs in {references['configuration'].nunique()} configurations "
          f"(diverged runs are not targets); each configuration held out in turn; k = {args.k}, split {args.split}; "
          f"{time.perf_counter() - started:.0f} s")
    print("| cut | runs | method | Spearman ρ | mean abs. error | selection regret |")
    print("| --- | --- | --- | --- | --- | --- |")
    for cut, part in table.groupby("cut"):
        forecast = part[np.isfinite(part["atlas"])]
        declined = len(part) - len(forecast)
        for method in methods:
            print(f"| {cut:.0%} | {len(forecast)} the atlas forecasts | {method} | "
                  f"{spearman(forecast[method], forecast['true']):.2f} | "
                  f"{np.mean(np.abs(forecast[method] - forecast['true'])):.4f} | {regret(forecast, method):.4f} |")
        for method in ("atlas_or_current", "current", "power_law", "hyperparameters"):
            print(f"| {cut:.0%} | all {len(part)} ({declined} declined by the atlas) | {method} | "
                  f"{spearman(part[method], part['true']):.2f} | {np.mean(np.abs(part[method] - part['true'])):.4f} | "
                  f"{regret(part, method):.4f} |")
        inside = (forecast["atlas_low"] <= forecast["true"]) & (forecast["true"] <= forecast["atlas_high"])
        print(f"| {cut:.0%} | {len(forecast)} the atlas forecasts | atlas range [low, high] (the neighbours') | "
              f"holds the true final error in {inside.mean():.0%} | median width "
              f"{np.median(forecast['atlas_high'] - forecast['atlas_low']):.4f} | |")
        untrusted = forecast[~forecast["trusted"].astype(bool)]
        print(f"| {cut:.0%} | {len(untrusted)} forecast but untrusted (farther than two seeds) | atlas | "
              f"{spearman(untrusted['atlas'], untrusted['true']):.2f} | "
              f"{np.mean(np.abs(untrusted['atlas'] - untrusted['true'])) if len(untrusted) else math.nan:.4f} | |")
    print(f"{n_runs} held-out runs; power-law fits that failed (fell back to the current error): {failed_fits} of "
          f"{len(table)}; the held-out run's nearest reference trajectory has its architecture in "
          f"{table['nearest_same_arch'].mean():.0%} of the cuts; follow + forecast took a median "
          f"{np.median(place_seconds) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
