"""The pieces of the atlas' forecast (inpca.atlas.forecast) on synthetic curves: what a reference
run's error is at a progress, the run's own curve at the cut, the conformal range's coverage."""

import math

import numpy as np
import pandas as pd
import pytest

from inpca.atlas.forecast import (FEATURES, ForecastModel, _conformal_quantile, curve_features, error_at_progress,
                                  out_of_fold_residuals)


def test_a_reference_runs_error_at_a_progress_is_read_where_it_first_gets_there():
    progress = np.array([0.0, 0.2, 0.6, 0.5, 0.9])
    error = np.array([0.9, 0.5, 0.1, 0.2, 0.05])
    assert error_at_progress(progress, error, 0.0) == 0.9
    assert error_at_progress(progress, error, 0.4) == pytest.approx(0.3)  # halfway from 0.2 to 0.6
    assert error_at_progress(progress, error, 0.55) == pytest.approx(0.1 + 0.5 * 0.0 + (0.5 - 0.4) * 0, abs=0.05)
    assert error_at_progress(progress, error, 0.95) == 0.05  # never gets there: its final error


def test_the_runs_own_curve_at_the_cut():
    floor = 0.5 / 450
    row = curve_features([0, 1, 2, 4], [0.9, 0.2, 0.1, 0.05], [0.9, 0.15, 0.05, 0.01], total_epochs=20, floor=floor)
    assert row["current"] == 0.05 and row["fraction"] == 0.2
    assert row["log_current"] == pytest.approx(math.log(0.05 + floor))
    assert row["slope"] == pytest.approx(math.log(0.05 + floor) - math.log(0.1 + floor))  # since epoch 2
    assert row["log_train"] == pytest.approx(math.log(0.01 + floor))
    one = curve_features([0, 1], [0.9, 0.5], None, total_epochs=20, floor=floor)
    assert one["slope"] == pytest.approx(math.log(0.5 + floor) - math.log(0.9 + floor)) and math.isnan(one["log_train"])


def test_the_conformal_quantile_is_the_finite_sample_corrected_one():
    residuals = np.arange(1, 11, dtype=float)  # 10 residuals: the ceil(11 * 0.8) = 9th
    assert _conformal_quantile(residuals) == 9.0
    assert _conformal_quantile(np.zeros(0)) == math.inf


def synthetic_cuts(n_configurations=40, seed=0):
    """Reference cuts of runs whose final error is their current error times a factor that depends on
    the slope, with noise: a learnable relation the forecast should find."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_configurations):
        quality = rng.uniform(-4.5, -1.0)
        for seed_ in range(2):
            for cut in (0.1, 0.25, 0.5):
                current = math.exp(quality + (1 - cut) * 1.5 + rng.normal(0, 0.1))
                slope = -(1 - cut) * 1.5 + rng.normal(0, 0.1)
                final = math.exp(quality + rng.normal(0, 0.15))
                row = {name: math.nan for name in FEATURES}
                row.update(log_current=math.log(current), log_best=math.log(current), slope=slope, fraction=cut,
                           current=current, configuration=f"c{c}", run=f"c{c}-s{seed_}", cut=cut, final=final,
                           target=math.log(final) - math.log(current))
                rows.append(row)
    return pd.DataFrame(rows)


def test_the_forecast_learns_from_the_reference_cuts_and_its_range_holds_at_about_its_rate():
    train, held_out = synthetic_cuts(60, seed=0), synthetic_cuts(60, seed=1)
    model = ForecastModel(train, out_of_fold_residuals(train), floor=0.0)
    predicted = np.array([model.predict(row) for row in held_out.to_dict("records")])
    value, low, high = predicted.T
    true = held_out["final"].to_numpy()
    assert np.all(low <= value) and np.all(value <= high)
    # better than the current error, which ignores how much the curve has left to fall
    assert np.mean(np.abs(np.log(value) - np.log(true))) < 0.5 * np.mean(np.abs(held_out["target"]))
    coverage = np.mean((low <= true) & (true <= high))
    assert 0.7 <= coverage <= 0.92, coverage
