"""The forecast benchmark's pure helpers (benchmarks/forecast.py) on synthetic tables: the bootstrap over
configurations, the range's coverage, the selection regret, the closer share, the architecture labels."""

import importlib.util
import math

import numpy as np
import pandas as pd
import pytest

from inpca.testing import REPO


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("forecast_benchmark", REPO / "benchmarks" / "forecast.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synthetic(n_configurations=40, seeds=2, noise=0.01, seed=0):
    """Configurations with a true final error; a forecast = truth + noise; a useless one = noise alone."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.01, 0.3, n_configurations)
    rows = []
    for c in range(n_configurations):
        for s in range(seeds):
            true = truth[c] + rng.normal(0, 0.002)
            rows.append({"configuration": f"c{c}", "run": f"c{c}-s{s}", "true": true,
                         "forecast": true + rng.normal(0, noise), "current": rng.uniform(0.01, 0.3)})
    return pd.DataFrame(rows)


def test_resamples_draw_whole_configurations_with_replacement(bench):
    groups = np.array(["a", "a", "b", "c", "c", "c"])
    resamples = bench.bootstrap_resamples(groups, n=200, seed=1)
    assert len(resamples) == 200
    for rows in resamples:
        drawn = groups[rows]
        # every drawn configuration comes with all its rows, as many times as it was drawn
        counts = pd.Series(drawn).value_counts()
        sizes = {"a": 2, "b": 1, "c": 3}
        assert all(counts[g] % sizes[g] == 0 for g in counts.index)
        assert sum(counts[g] // sizes[g] for g in counts.index) == 3  # 3 configurations drawn
    # seeded: the same resamples again; another seed: others
    again = bench.bootstrap_resamples(groups, n=200, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(resamples, again))
    other = bench.bootstrap_resamples(groups, n=200, seed=2)
    assert not all(np.array_equal(a, b) for a, b in zip(resamples, other))
    assert bench.bootstrap_resamples(np.array([]), n=5) == []


def test_bootstrap_ci_brackets_the_statistic_and_narrows_with_data(bench):
    small, large = synthetic(20, noise=0.03), synthetic(400, noise=0.03)
    widths = []
    for table in (small, large):
        x, t = table["forecast"].to_numpy(), table["true"].to_numpy()
        resamples = bench.bootstrap_resamples(table["configuration"], n=500, seed=0)
        point = bench.mae(x, t)
        low, high = bench.bootstrap_ci(lambda rows: bench.mae(x[rows], t[rows]), resamples)
        assert low <= point <= high
        widths.append(high - low)
    # the noise is N(0, 0.03): MAE ~ 0.03 * sqrt(2 / pi) = 0.024, inside the 800-run interval
    assert low < 0.03 * math.sqrt(2 / math.pi) < high
    assert widths[1] < widths[0] / 2
    # a perfect forecast ranks perfectly in every resample; a useless one's ρ interval holds 0
    table = synthetic(60, noise=0.0)
    x, t, u = (table[c].to_numpy() for c in ("forecast", "true", "current"))
    resamples = bench.bootstrap_resamples(table["configuration"], n=300, seed=0)
    assert bench.bootstrap_ci(lambda rows: bench.spearman(x[rows], t[rows]), resamples) == pytest.approx((1.0, 1.0))
    low, high = bench.bootstrap_ci(lambda rows: bench.spearman(u[rows], t[rows]), resamples)
    assert low < 0 < high


def test_bootstrap_ci_leaves_out_non_finite_resamples(bench):
    values = iter([np.nan, 1.0, 2.0, 3.0, np.nan])
    low, high = bench.bootstrap_ci(lambda rows: next(values), [None] * 5, level=1.0)
    assert (low, high) == (1.0, 3.0)
    assert all(math.isnan(v) for v in bench.bootstrap_ci(lambda rows: math.nan, [None] * 3))


def test_coverage(bench):
    true = np.array([0.1, 0.2, 0.3, 0.4, np.nan])
    low = np.array([0.0, 0.2, 0.31, 0.0, 0.0])
    high = np.array([0.2, 0.25, 0.4, np.nan, 1.0])
    # ends count as inside; a NaN end or truth is no range at all: 2 of the 3 finite ranges hold it
    assert bench.coverage(true, low, high) == pytest.approx(2 / 3)
    assert math.isnan(bench.coverage([np.nan], [0.0], [1.0]))
    # a range of the truth's own 10 % and 90 % quantiles holds it 80 % of the time
    rng = np.random.default_rng(0)
    true = rng.normal(size=20000)
    assert bench.coverage(true, np.full_like(true, -1.2816), np.full_like(true, 1.2816)) == pytest.approx(0.8, abs=0.01)


def test_regret(bench):
    table = pd.DataFrame({"configuration": ["a", "a", "b", "b", "c", "c"],
                          "true": [0.10, 0.12, 0.05, 0.07, 0.20, 0.22],
                          "good": [0.3, 0.3, 0.1, 0.2, 0.5, 0.5],  # ranks b best: no regret
                          "bad": [0.3, 0.3, 0.4, 0.4, 0.0, 0.2],   # ranks c best (its seeds' mean 0.1)
                          "partial": [np.nan, np.nan, np.nan, np.nan, 0.1, np.nan]})
    assert bench.regret(table, "good") == pytest.approx(0.0)
    assert bench.regret(table, "bad") == pytest.approx(0.21 - 0.06)
    # a configuration without any finite forecast is not chosen; the best is still over all of them
    assert bench.regret(table, "partial") == pytest.approx(0.21 - 0.06)


def test_closer_share(bench):
    table = pd.DataFrame({"true": [0.1, 0.2, 0.3, 0.4, 0.5],
                          "a": [0.1, 0.25, 0.3, 0.5, np.nan],
                          "b": [0.2, 0.2, 0.35, 0.4, 0.5]})
    # row 0: a closer; 1: b; 2: a; 3: b; row 4 has no forecast a
    assert bench.closer_share(table, "a", "b") == pytest.approx((0.5, 0.0))
    table.loc[1, "a"] = 0.2
    assert bench.closer_share(table, "a", "b") == pytest.approx((0.5, 0.25))


def test_summary_on_a_synthetic_table(bench):
    table = synthetic(50, noise=0.01)
    table["forecast_low"], table["forecast_high"] = table["forecast"] - 0.0128, table["forecast"] + 0.0128
    resamples = bench.bootstrap_resamples(table["configuration"], n=200, seed=0)
    stats = bench.summary(table[["configuration", "true", "forecast", "forecast_low", "forecast_high", "current"]],
                          resamples)
    assert set(stats) == {"forecast", "current"}
    forecast, current = stats["forecast"], stats["current"]
    assert forecast["rho"] > 0.95 and abs(current["rho"]) < 0.4
    assert forecast["mae"] < current["mae"]
    assert forecast["rho_ci"][0] <= forecast["rho"] <= forecast["rho_ci"][1]
    # ±1.28 σ of N(0, 0.01) noise: a nominal 80 % range
    assert 0.7 < forecast["coverage"] < 0.9 and forecast["width"] == pytest.approx(0.0256)
    assert "coverage" not in current and current["closer"][0] > 0.8


def test_architecture_labels(bench):
    table = pd.DataFrame({"arch": ["fc", "fc", "allcnn", "vit"], "arch.name": ["fc", "fc", "allcnn", "vit"],
                          "arch.width": [32, 256, 0.5, np.nan], "arch.depth": [1, 3, np.nan, 2]})
    spec = bench.architecture_labels(table).tolist()
    assert spec == ["fc depth=1.0 width=32.0", "fc depth=3.0 width=256.0", "allcnn width=0.5", "vit depth=2.0"]
    assert bench.architecture_labels(table, "family").tolist() == ["fc", "fc", "allcnn", "vit"]
    units = bench.held_out_units(table.assign(run=["r0", "r1", "r2", "r3"], configuration=["x", "y", "z", "w"]),
                                 "architecture", "family")
    assert [(name, runs) for name, runs in units] == [("fc", ["r0", "r1"]), ("allcnn", ["r2"]), ("vit", ["r3"])]


def test_cut_run(bench):
    run = {"epoch": np.array([0.0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), "test_error": np.linspace(0.9, 0.1, 11),
           "attrs": {"x": 1}}
    part = bench.cut_run(run, 0.25)
    assert part["epoch"].tolist() == [0.0, 1, 2] and len(part["test_error"]) == 3 and part["attrs"] == {"x": 1}
    assert bench.cut_run(run, 0.05) is None
