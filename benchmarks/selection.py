"""Choosing a network early: the search replayed on recorded trainings, every pruner through Optuna itself.

Each configuration of a finished study is one trial: its seed-0 run (the lowest seed; the other seeds
are not trials), whose recorded test error after each whole epoch (the checkpoint at that epoch; every
whole epoch is a checkpoint of the pipeline's schedules, otherwise linear interpolation between the two
around it) the objective reports epoch by epoch with ``trial.report(error, epoch)`` and
``trial.should_prune()``, returning the final test error. A run that diverged reports the chance error
(1 - 1/classes) from the epoch it diverged on. Trials run one after another (n_jobs=1), in an order
fixed by ``study.enqueue_trial``; every method sees the same ``--orders`` random orders (seeded).

Methods, each a real Optuna study: no pruning (``NopPruner``), ``MedianPruner()``,
``PercentilePruner(25)``, ``SuccessiveHalvingPruner()``, ``HyperbandPruner(min_resource=1,
max_resource=epochs)``, ``PatientPruner(MedianPruner(), patience=2)``; "one epoch, then the top K"
(Egele et al. 2023: every configuration trained one epoch, pruned by a pruner that stops every trial
after its first report, then the K best by that epoch's error enqueued again and finished, resuming at
epoch 2, with no pruning; K = 1, 3, 5); and :class:`inpca.atlas.AtlasPruner` with a leave-configuration-
out atlas: the forecast the objective gives the trial after each epoch is the atlas' forecast of that
run cut at that epoch with all of its configuration's runs excluded (``Atlas.follow(..., exclude=)``),
computed once per (configuration, epoch) and cached (``--cache``; the key holds the study, k, split and
the atlas' source), so the orders and repeated runs are cheap.

For each method, over the orders: the regret of the chosen configuration (the best *completed* trial,
as ``study.best_trial`` has it: its true final test error minus the best configuration's) against the
cumulative epochs spent by all trials so far, as an anytime curve (before any trial completes, the
regret of a blind pick: the mean over configurations) and the area under it (the mean regret over the
no-pruning budget); the epochs spent; the epochs to reach regret <= 0.005; the speed-up over no pruning
at equal regret (the epochs no pruning needs to reach the regret the method ends with, over the epochs
the method needed for it; median over orders); how often the true best configuration was stopped; and a
paired Wilcoxon test (across orders, on the area) against the best other method.

    python benchmarks/selection.py --study results [--orders 30] [--k 5] [--out docs]

Writes ``selection-<study>.tsv`` (one row per method and order) and ``selection-<study>.png`` (the
anytime curves) into ``--out`` and prints the table as Markdown.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REGRET_TARGET = 0.005
CACHE = Path.home() / ".cache" / "inpca" / "selection"


@dataclass
class Replay:
    """What a replay needs of a study: per configuration (N) its trial's test error after each epoch
    1..E and, for the AtlasPruner, the forecast after each epoch (value, low, high, trusted; NaN where
    the atlas gives none)."""

    names: list
    curves: np.ndarray  # (N, E)
    forecasts: np.ndarray | None = None  # (N, E, 4)

    @property
    def final(self) -> np.ndarray:
        return self.curves[:, -1]

    @property
    def epochs(self) -> int:
        return self.curves.shape[1]


# ---- the methods: Optuna's pruners, one epoch then the top K, the atlas


def methods(epochs: int, atlas: bool = True) -> dict:
    """name -> (pruner factory, top K or None)."""
    from optuna.pruners import (HyperbandPruner, MedianPruner, NopPruner, PatientPruner, PercentilePruner,
                                SuccessiveHalvingPruner)

    table = {
        "no pruning": (NopPruner, None),
        "median": (MedianPruner, None),
        "percentile 25": (lambda: PercentilePruner(25.0), None),
        "successive halving": (SuccessiveHalvingPruner, None),
        "hyperband": (lambda: HyperbandPruner(min_resource=1, max_resource=epochs), None),
        "patient median (2)": (lambda: _quiet(PatientPruner, MedianPruner(), patience=2), None),
        "one epoch, top 1": (None, 1),
        "one epoch, top 3": (None, 3),
        "one epoch, top 5": (None, 5),
    }
    if atlas:
        from inpca.atlas import AtlasPruner

        table["atlas (low, patience 2)"] = (lambda: AtlasPruner(patience=2, use="low"), None)
        table["atlas (value, patience 2)"] = (lambda: AtlasPruner(patience=2, use="value"), None)
    return table


def _quiet(cls, *args, **kwargs):
    """Optuna's pruner without its ExperimentalWarning (PatientPruner)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(*args, **kwargs)


def _after_first_report():
    from optuna.pruners import BasePruner

    class AfterFirstReport(BasePruner):
        """Stops every trial after its first report (the first phase of "one epoch, then the top K")."""

        def prune(self, study, trial):
            return trial.last_step is not None

    return AfterFirstReport()


def run_order(replay: Replay, pruner_factory, order, top_k: int | None = None) -> dict:
    """One study: the configurations in `order`, each a trial, with the pruner (or one epoch then the top
    K). Returns completed [(cumulative epochs, configuration)], the epochs spent, the stopped
    configurations."""
    import optuna

    from inpca.record import FORECAST_ATTR

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = list(replay.names)
    index = {name: i for i, name in enumerate(names)}
    spent = [0]
    completed, stopped = [], set()

    def objective(trial):
        i = index[trial.suggest_categorical("configuration", names)]
        start = int(trial.user_attrs.get("resume_at_epoch", 1))
        for epoch in range(start, replay.epochs + 1):
            spent[0] += 1
            if replay.forecasts is not None:
                value, low, high, trusted = replay.forecasts[i, epoch - 1]
                if np.isfinite(value):
                    trial.set_user_attr(FORECAST_ATTR, {
                        "step": epoch, "epoch": float(epoch), "value": float(value),
                        "low": float(low) if np.isfinite(low) else None,
                        "high": float(high) if np.isfinite(high) else None, "trusted": bool(trusted), "reason": ""})
            trial.report(float(replay.curves[i, epoch - 1]), epoch)
            if trial.should_prune():
                stopped.add(i)
                raise optuna.TrialPruned()
        stopped.discard(i)
        completed.append((spent[0], i))
        return float(replay.final[i])

    pruner = _after_first_report() if top_k is not None else pruner_factory()
    # a fixed name: Hyperband assigns a trial's bracket by a hash of the study's name and the trial number
    study = optuna.create_study(direction="minimize", pruner=pruner, study_name="replay",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    for i in order:
        study.enqueue_trial({"configuration": names[i]})
    study.optimize(objective, n_trials=len(order), n_jobs=1)
    if top_k is not None:
        first = {names.index(t.params["configuration"]): t.intermediate_values[1] for t in study.trials}
        top = sorted(first, key=lambda i: (first[i], list(order).index(i)))[:top_k]
        study.pruner = optuna.pruners.NopPruner()
        for i in top:
            study.enqueue_trial({"configuration": names[i]}, user_attrs={"resume_at_epoch": 2})
        study.optimize(objective, n_trials=len(top), n_jobs=1)
    return {"completed": completed, "spent": spent[0], "stopped": stopped, "study": study}


def anytime(replay: Replay, completed, budget: int) -> np.ndarray:
    """Regret of the best completed trial at each cumulative epoch 0..budget (a blind pick's mean regret
    before the first one completes)."""
    regret = replay.final - replay.final.min()
    curve = np.full(budget + 1, regret.mean())
    best = math.inf
    for spent, i in completed:
        if replay.final[i] < best:
            best = replay.final[i]
            curve[min(spent, budget + 1):] = best - replay.final.min()
    return curve


def first_at(curve: np.ndarray, level: float) -> float:
    """The first cumulative epoch at which the curve is <= level (inf if never)."""
    hit = np.flatnonzero(curve <= level + 1e-12)
    return float(hit[0]) if len(hit) else math.inf


def evaluate(replay: Replay, table: dict, orders: list) -> pd.DataFrame:
    """One row per (method, order): area, final regret, epochs spent, epochs to the target regret,
    speed-up over no pruning at equal regret, whether the best configuration was stopped."""
    budget = len(replay.names) * replay.epochs
    best = int(np.argmin(replay.final))
    rows, curves = [], {}
    for name, (factory, top_k) in table.items():
        curves[name] = []
        for o, order in enumerate(orders):
            result = run_order(replay, factory, order, top_k)
            curve = anytime(replay, result["completed"], budget)
            curves[name].append(curve)
            done = {i for _, i in result["completed"]}
            rows.append({"method": name, "order": o, "area": float(curve.mean()), "final_regret": float(curve[-1]),
                         "epochs": result["spent"], "epochs_to_target": first_at(curve, REGRET_TARGET),
                         "epochs_to_own_final": first_at(curve, curve[-1]),
                         "best_stopped": best not in done, "completed": len(done)})
    frame = pd.DataFrame(rows)
    nop = frame[frame["method"] == "no pruning"].set_index("order")
    if len(nop):
        nop_curves = dict(enumerate(curves["no pruning"]))
        frame["speedup"] = [first_at(nop_curves[row.order], row.final_regret) / max(row.epochs_to_own_final, 1.0)
                            for row in frame.itertuples()]
    frame.attrs["curves"] = {name: np.stack(c) for name, c in curves.items()}
    return frame


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per method (medians/means over orders) and the paired Wilcoxon test against the best peer."""
    from scipy.stats import wilcoxon

    areas = frame.pivot(index="order", columns="method", values="area")
    means = areas.mean().sort_values()
    rows = []
    for method, part in frame.groupby("method", sort=False):
        peers = means.drop(method)
        peer = peers.index[0]
        diff = areas[method] - areas[peer]
        p = float(wilcoxon(areas[method], areas[peer]).pvalue) if np.any(diff != 0) else 1.0
        reached = np.isfinite(part["epochs_to_target"])
        rows.append({"method": method, "epochs": part["epochs"].median(), "final regret": part["final_regret"].mean(),
                     "final regret 0": (part["final_regret"] <= 1e-12).mean(), "area": part["area"].mean(),
                     "epochs to 0.005": part["epochs_to_target"][reached].median() if reached.any() else math.nan,
                     "reached 0.005": reached.mean(),
                     "speed-up": part["speedup"].median() if "speedup" in part else math.nan,
                     "best stopped": part["best_stopped"].mean(), "peer": peer,
                     "area vs peer": float(np.median(diff)), "wilcoxon p": p})
    return pd.DataFrame(rows).sort_values("area", kind="stable").reset_index(drop=True)


def markdown(table: pd.DataFrame) -> str:
    lines = ["| method | epochs spent | final regret (mean; orders at 0) | area (mean regret) | epochs to regret "
             "≤ 0.005 (median; orders reaching it) | speed-up at equal regret | true best stopped | vs best peer "
             "(Wilcoxon p on the area) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in table.itertuples(index=False):
        lines.append(f"| {r.method} | {r.epochs:.0f} | {r._2:.4f}; {r._3:.0%} | {r.area:.4f} | "
                     f"{'never' if math.isnan(r._5) else f'{r._5:.0f}'}; {r._6:.0%} | {r._7:.1f}× | {r._8:.0%} | {r.peer}: "
                     f"{'+' if r._10 >= 0 else ''}{r._10:.4f}, p = {r._11:.2g} |")
    return "\n".join(lines)


def figure(frame: pd.DataFrame, replay: Replay, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = frame.attrs["curves"]
    fig, ax = plt.subplots(figsize=(8, 4.8))
    x = np.arange(len(replay.names) * replay.epochs + 1)
    styles = {"no pruning": ("black", "-"), "atlas (low, patience 2)": ("tab:red", "-"),
              "atlas (value, patience 2)": ("tab:red", "--")}
    others = iter(["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
                   "tab:cyan", "tab:gray"])
    for name, stack in curves.items():
        color, line = styles.get(name, (None, None))
        color, line = (color, line) if color else (next(others), "-" if "epoch" not in name else ":")
        ax.plot(x[1:], stack.mean(axis=0)[1:], color=color, linestyle=line, label=name, lw=1.6)
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_ylim(bottom=0)
    ax.axhline(REGRET_TARGET, color="grey", lw=0.8, linestyle="--")
    ax.set_xlabel("cumulative epochs (all trials)")
    ax.set_ylabel("regret of the chosen configuration (mean over orders)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


# ---- a finished study as a replay (the atlas' forecasts computed once, cached)


def _interp_epochs(epochs, errors, E: int, chance: float) -> np.ndarray:
    epochs, errors = np.asarray(epochs, float), np.asarray(errors, float)
    whole = np.arange(1, E + 1, dtype=float)
    curve = np.interp(whole, epochs, errors)
    curve[whole > epochs[-1] + 1e-9] = chance  # diverged: nothing recorded after it
    return curve


def _cut(run: dict, epoch: float) -> dict:
    epochs = np.asarray(run["epoch"], dtype=float)
    keep = epochs <= epoch + 1e-9
    return {key: (value[keep] if isinstance(value, np.ndarray) and len(value) == len(epochs) else value)
            for key, value in run.items()}


def _cache_key(study: Path, k: int, split: str, runs: list) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([str(study.resolve()), k, split, runs]).encode())
    digest.update(Path(__file__).read_bytes())  # how the runs are cut and forecast here
    for name in ("atlas.py", "forecast.py", "live.py"):
        source = Path(__file__).resolve().parents[1] / "inpca" / "atlas" / name
        if source.exists():
            digest.update(source.read_bytes())
    for name in ("runs.tsv", "trajectories/index.tsv"):
        if (study / name).exists():
            digest.update((study / name).read_bytes())
    return digest.hexdigest()[:16]


def load_replay(study, k: int = 5, split: str = "train", cache: Path | None = CACHE, atlas: bool = True) -> Replay:
    """The study's configurations, their seed-0 runs' curves, and (with `atlas`) each configuration's
    leave-configuration-out forecasts after each epoch (cached under `cache`)."""
    import h5py

    from inpca.atlas import Atlas

    study = Path(study)
    loaded = Atlas.load(study, memory_gb=4.0)
    outcomes = loaded.outcomes
    # every run of the study (runs.tsv), not only the atlas' references: the analysis leaves out runs that
    # end above its max_final_train_error and diverged ones, and those are what a pruner should stop
    table = pd.read_csv(study / "runs.tsv", sep="\t", dtype=str, keep_default_na=False)
    recipe = [c for c in table.columns if c not in ("run", "block", "seed")]
    table["key"] = table[recipe].agg("|".join, axis=1)
    labels = dict(zip(outcomes["run"], outcomes["configuration"]))
    table["configuration"] = table.groupby("key")["run"].transform(
        lambda runs: next((labels[r] for r in runs if r in labels), sorted(runs)[0]))
    table["seed_number"] = pd.to_numeric(table["seed"], errors="coerce")
    trials = table.sort_values(["configuration", "seed_number", "run"]).groupby("configuration", sort=True).head(1)
    names, runs = trials["configuration"].tolist(), trials["run"].tolist()
    E = int(pd.to_numeric(table["epochs"]).max())
    chance = 1.0 - 1.0 / loaded.num_classes
    curves = []
    for run in runs:
        with h5py.File(study / "runs" / f"{run}.h5", "r") as f:
            curves.append(_interp_epochs(f["epoch"][()], f["test_error"][()], E, chance))
    replay = Replay(names, np.stack(curves))
    if not atlas:
        return replay
    key = _cache_key(study, k, split, runs)
    path = Path(cache) / f"{study.name}-{key}.npy" if cache is not None else None
    if path is not None and path.exists():
        replay.forecasts = np.load(path)
        print(f"forecasts from the cache {path}")
        return replay
    from inpca.runfile import read_run

    forecasts = np.full((len(runs), E, 4), np.nan)
    started = time.perf_counter()
    # one thread for the forecast's own models: scikit-learn's OpenMP prediction of one row on a busy
    # 2-core machine took 2.7 s with the default threads and 8 ms with one (measured)
    from threadpoolctl import threadpool_limits

    limits = threadpool_limits(1)
    for n, (configuration, run_id) in enumerate(zip(names, runs)):
        held_out = set(table.loc[table["configuration"] == configuration, "run"])
        run = read_run(study / "runs" / f"{run_id}.h5")
        for epoch in range(1, E + 1):
            part = _cut(run, epoch)
            if len(part["epoch"]) < 2 or float(run["epoch"][-1]) < epoch - 1e-9:
                continue  # diverged before this epoch (checkpoints need not fall on whole epochs)
            forecast = loaded.forecast(loaded.follow(part, split=split, exclude=held_out), k=k)
            value, low, high = forecast.estimates["final_test_error"]
            forecasts[n, epoch - 1] = (value, low, high, float(forecast.trusted))
        print(f"  forecasts of {configuration} ({n + 1}/{len(runs)}), {time.perf_counter() - started:.0f} s",
              flush=True)
    limits.restore_original_limits()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, forecasts)
    replay.forecasts = forecasts
    return replay


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", required=True, help="the results folder of a finished study")
    parser.add_argument("--orders", type=int, default=30, help="random arrival orders (each method sees the same)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=5, help="reference trajectories per forecast")
    parser.add_argument("--split", default="train")
    parser.add_argument("--out", default="docs", help="folder for selection-<study>.tsv and .png")
    parser.add_argument("--cache", default=str(CACHE), help="folder of the cached forecasts ('' for none)")
    parser.add_argument("--no-atlas", action="store_true", help="leave the AtlasPruner out")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    replay = load_replay(args.study, args.k, args.split, Path(args.cache) if args.cache else None, not args.no_atlas)
    rng = np.random.default_rng(args.seed)
    orders = [rng.permutation(len(replay.names)) for _ in range(args.orders)]
    frame = evaluate(replay, methods(replay.epochs, atlas=not args.no_atlas), orders)
    table = summary(frame)
    name = Path(args.study).resolve().name
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / f"selection-{name}.tsv", sep="\t", index=False)
    final = replay.final
    title = (f"{name}: {len(final)} configurations × {replay.epochs} epochs, {args.orders} orders; final test "
             f"errors {final.min():.3f}-{final.max():.3f}")
    figure(frame, replay, out / f"selection-{name}.png", title)
    print(f"{title}; best {replay.names[int(np.argmin(final))]}; no-pruning budget {final.size * replay.epochs} "
          f"epochs; {time.perf_counter() - started:.0f} s")
    if replay.forecasts is not None:
        trusted = np.isfinite(replay.forecasts[..., 0]) & (replay.forecasts[..., 3] > 0)
        print(f"atlas forecasts: {trusted.mean():.0%} of (configuration, epoch) trusted; at epoch 1 "
              f"{trusted[:, 0].mean():.0%}")
    print(markdown(table))


if __name__ == "__main__":
    main()
