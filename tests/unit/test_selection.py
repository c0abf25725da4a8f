"""benchmarks/selection.py on a tiny fake study (issue 28.4): synthetic curves and forecasts, no atlas;
the numbers every method must give are checked by hand."""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip("optuna", reason="optuna is not installed (pip install -e '.[optuna]')")

SPEC = importlib.util.spec_from_file_location("selection_benchmark", Path(__file__).resolve().parents[2] / "benchmarks" /
                                              "selection.py")
selection = importlib.util.module_from_spec(SPEC)
sys.modules["selection_benchmark"] = selection  # dataclasses look their module up
SPEC.loader.exec_module(selection)

E = 4
# four configurations; c2 is the best (final 0.02), c0 the worst; c3 starts best (a top-1-after-one-epoch trap)
CURVES = np.array([[0.50, 0.40, 0.35, 0.30],
                   [0.40, 0.20, 0.10, 0.08],
                   [0.45, 0.15, 0.05, 0.02],
                   [0.30, 0.25, 0.22, 0.20]])


def replay(forecasts=None):
    return selection.Replay([f"c{i}" for i in range(len(CURVES))], CURVES.copy(), forecasts)


def exact_forecasts(width=0.01, trusted=1.0):
    """Each configuration's true final error, +- width, from epoch 1 on."""
    final = CURVES[:, -1][:, None].repeat(E, axis=1)
    return np.stack([final, final - width, final + width, np.full_like(final, trusted)], axis=-1)


class StopAll(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


def test_no_pruning_spends_every_epoch_and_ends_at_regret_zero():
    data = replay()
    result = selection.run_order(data, optuna.pruners.NopPruner, [0, 3, 1, 2])
    assert result["spent"] == 4 * E and [i for _, i in result["completed"]] == [0, 3, 1, 2]
    assert [spent for spent, _ in result["completed"]] == [4, 8, 12, 16]
    curve = selection.anytime(data, result["completed"], 4 * E)
    regret = CURVES[:, -1] - 0.02
    # a blind pick before the first trial completes, then c0's, c3's, c1's and c2's regret
    np.testing.assert_allclose(curve[[0, 3, 4, 7, 8, 11, 12, 16]],
                               [regret.mean(), regret.mean(), 0.28, 0.28, 0.18, 0.18, 0.06, 0.0])
    assert selection.first_at(curve, 0.005) == 16 and curve[-1] == 0


def test_a_pruner_that_stops_everything_after_one_epoch_spends_one_epoch_per_configuration():
    data = replay()
    result = selection.run_order(data, StopAll, [2, 1, 0, 3])
    assert result["spent"] == 4 and result["completed"] == [] and result["stopped"] == {0, 1, 2, 3}
    curve = selection.anytime(data, result["completed"], 4 * E)
    assert np.allclose(curve, (CURVES[:, -1] - 0.02).mean()) and math.isinf(selection.first_at(curve, 0.005))


def test_one_epoch_then_the_top_k_finishes_the_k_best_after_epoch_one():
    data = replay()
    top1 = selection.run_order(data, None, [0, 1, 2, 3], top_k=1)
    assert top1["spent"] == 4 + (E - 1) and [i for _, i in top1["completed"]] == [3]  # c3 leads after epoch 1
    top3 = selection.run_order(data, None, [0, 1, 2, 3], top_k=3)
    assert top3["spent"] == 4 + 3 * (E - 1) and sorted(i for _, i in top3["completed"]) == [1, 2, 3]
    assert selection.anytime(data, top3["completed"], 4 * E)[-1] == 0


def test_the_atlas_pruner_prunes_by_the_given_forecasts():
    data = replay(exact_forecasts())
    pruner = selection.methods(E)["atlas (low, patience 2)"][0]
    # c2 first: every other configuration's forecast low (final - 0.01) is above 0.02 -> pruned at epoch 2
    result = selection.run_order(data, pruner, [2, 0, 1, 3])
    assert [i for _, i in result["completed"]] == [2] and result["spent"] == E + 3 * 2
    # untrusted forecasts: never pruned
    untrusted = replay(exact_forecasts(trusted=0.0))
    assert selection.run_order(untrusted, pruner, [2, 0, 1, 3])["spent"] == 4 * E


def test_evaluate_and_summary_give_every_method_and_the_figure_is_drawn(tmp_path):
    data = replay(exact_forecasts())
    orders = [np.random.default_rng(s).permutation(4) for s in range(6)]
    frame = selection.evaluate(data, selection.methods(E), orders)
    assert set(frame["method"]) == set(selection.methods(E)) and len(frame) == 6 * len(selection.methods(E))
    nop = frame[frame["method"] == "no pruning"]
    assert (nop["epochs"] == 4 * E).all() and (nop["final_regret"] == 0).all() and (nop["speedup"] == 1).all()
    assert not nop["best_stopped"].any()
    top1 = frame[frame["method"] == "one epoch, top 1"]
    assert (top1["epochs"] == 4 + E - 1).all() and top1["best_stopped"].all()
    assert np.allclose(top1["final_regret"], 0.18)
    atlas = frame[frame["method"] == "atlas (low, patience 2)"]
    assert (atlas["final_regret"] == 0).all() and not atlas["best_stopped"].any()
    assert (atlas["epochs"] < 4 * E).all() and (atlas["speedup"] >= 1).all()
    table = selection.summary(frame)
    assert table["method"].iloc[-1] == "one epoch, top 1" or table["area"].iloc[-1] >= table["area"].iloc[0]
    assert selection.markdown(table).count("\n") == len(table) + 1
    selection.figure(frame, data, tmp_path / "selection.png", "fake")
    assert (tmp_path / "selection.png").stat().st_size > 1000
