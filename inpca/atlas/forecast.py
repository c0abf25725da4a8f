"""The atlas' forecast of a run's final test error from everything known at the cut.

The neighbours' forecast (the k nearest reference trajectories' final errors) ignores what the run
itself has shown, and on a zoo of digits networks the run's own current test error ranks final errors
better from a quarter of the training on. This forecast uses both:

* the run's own curve: its current and best test error, the train error, how fast the test error
  fell over the last half of the epochs so far, the fraction of its training done;
* where its trajectory is: its progress, its distance to the geodesic, how far its nearest reference
  trajectory is compared with the atlas' seed-to-seed spread;
* analogues (the method of analogues of weather forecasting): how the k nearest reference
  trajectories went on *from the same progress*, i.e. the mean change log(final error) - log(error at
  the run's progress) of the neighbours, carried onto the run, and the neighbours' final errors.

A gradient-boosted regressor (scikit-learn's HistGradientBoostingRegressor with the absolute loss:
small, takes the missing analogue features of a run below the atlas' first grid point as they are,
and needs no hand-made transforms) predicts the median of log(final + e) - log(current + e), e half
a test sample; so a model that learned nothing forecasts the current error. It is fitted on the atlas' own reference
runs only, each cut at several fractions of its epochs and followed with its own configuration's
runs left out of the references (as a new configuration would be), never on the run forecast: runs
excluded from a follow (a benchmark's held-out configuration or architecture) are left out of the
fit too.

The 80 % range is split-conformal: the absolute log residuals of out-of-fold predictions of the
reference cuts (folds by configuration; by architecture when the runs left out span several
configurations, as when a benchmark holds out an architecture), their 80 % quantile (finite-sample
corrected) per training cut (the one nearest the fraction of training the run has done), put around
the forecast in log space. It holds the true final error in 80 % of cuts of runs as new to the atlas
as the folds are; for a family unlike every reference it is a statement about the references, not
a guarantee.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# Bump when the features, the cuts or the model change: the cached reference cuts carry it.
FORECAST_VERSION = 2
# The fractions of its epochs each reference run is cut at to make the training rows.
TRAINING_CUTS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
COVERAGE = 0.8
FEATURES = ("log_current", "log_best", "log_train", "slope", "fraction", "progress", "geodesic", "novelty",
            "analogue", "neighbours")


def curve_features(epochs, test_error, train_error, total_epochs: float, floor: float) -> dict:
    """The run's own curve at the cut (its checkpoints so far, in order)."""
    epochs = np.asarray(epochs, dtype=float)
    test_error = np.asarray(test_error, dtype=float)
    current = float(test_error[-1])
    log_current = math.log(current + floor)
    # the change of log error since the checkpoint nearest half the epochs so far (NaN with one)
    slope = math.nan
    if len(epochs) > 1 and epochs[-1] > 0:
        half = int(np.argmin(np.abs(epochs[:-1] - epochs[-1] / 2)))
        slope = log_current - math.log(float(test_error[half]) + floor)
    train = float(np.asarray(train_error, dtype=float)[-1]) if train_error is not None else math.nan
    return {"current": current, "log_current": log_current, "log_best": math.log(float(np.min(test_error)) + floor),
            "log_train": math.log(train + floor) if math.isfinite(train) else math.nan, "slope": slope,
            "fraction": float(epochs[-1]) / total_epochs if total_epochs > 0 else math.nan}


def error_at_progress(progress: np.ndarray, error: np.ndarray, level: float) -> float:
    """A reference run's test error where its progress first reaches `level` (linear between the two
    checkpoints around the crossing); its final error if it never gets there."""
    above = np.flatnonzero(progress >= level)
    if not len(above):
        return float(error[-1])
    j = int(above[0])
    if j == 0 or progress[j] == progress[j - 1]:
        return float(error[j])
    a = (level - progress[j - 1]) / (progress[j] - progress[j - 1])
    return float(error[j - 1] + a * (error[j] - error[j - 1]))


def analogue_features(following, k: int, curves: dict, finals: pd.Series, floor: float) -> dict:
    """Where the run's trajectory is and how its nearest reference trajectories went on from there.

    `curves` {run: (progress, test error) arrays}; `finals` the final test error by run."""
    out = {"progress": following.index_reached, "geodesic": following.distance_to_geodesic,
           "novelty": math.nan, "analogue": math.nan, "neighbours": math.nan}
    if not len(following.t) or not len(following.references):
        return out
    neighbours = following.references.head(k)
    distance = neighbours["distance"].to_numpy(dtype=float)
    weights = 1.0 / np.maximum(distance, 1e-12)
    weights /= weights.sum()
    if math.isfinite(following.seed_spread) and following.seed_spread > 0:
        out["novelty"] = float(distance[0] / following.seed_spread)
    changes, finals_log = [], []
    for run in neighbours["run"]:
        progress, error = curves[run]
        final = float(finals[run])
        changes.append(math.log(final + floor) - math.log(error_at_progress(progress, error, following.index_reached)
                                                          + floor))
        finals_log.append(math.log(final + floor))
    out["analogue"] = float(np.dot(weights, changes))
    out["neighbours"] = float(np.dot(weights, finals_log))
    return out


def feature_row(curve: dict, analogue: dict) -> dict:
    row = {**curve, **analogue}
    # the neighbours' final errors relative to where the run is now
    row["neighbours"] = row["neighbours"] - row["log_current"] if math.isfinite(row["neighbours"]) else math.nan
    return row


def _regressor():
    from sklearn.ensemble import HistGradientBoostingRegressor

    # small and strongly regularised: a few hundred to a few thousand training cuts
    # absolute loss: the conditional median of log(final) - log(current), so the forecast is the median
    # final error (a monotone map keeps medians): what minimises the mean absolute error, and robust to
    # the few runs that end far from where their curve points (a late collapse, a late start)
    return HistGradientBoostingRegressor(loss="absolute_error", max_iter=150, learning_rate=0.05, max_leaf_nodes=8,
                                         min_samples_leaf=20, l2_regularization=1.0, random_state=0)


def _one_thread():
    """OpenMP on one thread for the regressor: its data are small, and its threads spin against every
    other process of a busy machine (a fit of 1,800 rows: 0.2 s on one thread, 12.8 s on two cores
    shared with a running study; measured with threadpoolctl on the 2-core machine)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


def out_of_fold_residuals(rows: pd.DataFrame, folds: int = 5, by: str = "configuration") -> np.ndarray:
    """|log residual| of each reference cut, predicted by a model fitted without its fold: the values
    of column `by` (its configuration, or its architecture) dealt round-robin into `folds` folds, in
    their order in `rows`. The folds are what a forecast is new by: a configuration the atlas has not
    seen, or a whole architecture."""
    groups = list(dict.fromkeys(rows[by]))
    fold_of = {c: i % folds for i, c in enumerate(groups)}
    fold = rows[by].map(fold_of).to_numpy()
    columns = [name for name in FEATURES if rows[name].notna().any()]
    X, y = rows[columns].to_numpy(dtype=float), rows["target"].to_numpy(dtype=float)
    residual = np.full(len(rows), np.nan)
    for f in range(min(folds, len(groups))):
        test = fold == f
        if test.all() or not test.any():
            continue
        with _one_thread():
            model = _regressor().fit(X[~test], y[~test])
            residual[test] = np.abs(model.predict(X[test]) - y[test])
    return residual


class ForecastModel:
    """The fitted forecast: the regressor on the reference cuts and the conformal quantiles."""

    def __init__(self, rows: pd.DataFrame, residuals: np.ndarray, floor: float):
        self.floor = floor
        self.n_rows = len(rows)
        # a feature no reference cut has (e.g. no seed pairs: no novelty) is left out
        self.columns = [name for name in FEATURES if rows[name].notna().any()]
        with _one_thread():
            self.regressor = _regressor().fit(rows[self.columns].to_numpy(dtype=float),
                                              rows["target"].to_numpy(dtype=float))
        # the residuals' quantile per training cut (early cuts are wider): a forecast takes the one of the
        # cut whose rows have done the fraction of training nearest its own
        everything = residuals[np.isfinite(residuals)]
        self.fractions, self.quantiles = [], []
        for _, group in rows.assign(residual=residuals).groupby("cut"):
            mine = group["residual"].to_numpy()
            mine = mine[np.isfinite(mine)]
            self.fractions.append(float(np.nanmedian(group["fraction"])))
            self.quantiles.append(_conformal_quantile(mine if len(mine) >= 20 else everything))
        self.fractions, self.quantiles = np.asarray(self.fractions), np.asarray(self.quantiles)

    def predict(self, row: dict) -> tuple[float, float, float]:
        """(value, low, high): the forecast final test error and its range."""
        x = np.array([[row[name] for name in self.columns]], dtype=float)
        with _one_thread():
            log_value = row["log_current"] + float(self.regressor.predict(x)[0])
        fraction = row["fraction"] if math.isfinite(row["fraction"]) else 1.0
        q = float(self.quantiles[int(np.argmin(np.abs(self.fractions - fraction)))])

        def error(log_error):
            return float(np.clip(math.exp(log_error) - self.floor, 0.0, 1.0))

        return error(log_value), error(log_value - q), error(log_value + q)


def _conformal_quantile(residuals: np.ndarray, coverage: float = COVERAGE) -> float:
    n = len(residuals)
    if n == 0:
        return math.inf
    # the ceil((n + 1) coverage)-th smallest: the split-conformal quantile (Vovk; Angelopoulos & Bates 2021)
    rank = min(n, math.ceil((n + 1) * coverage))
    return float(np.sort(residuals)[rank - 1])
