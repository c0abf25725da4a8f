"""AtlasPruner (issue 28.3, 28.5): a real Optuna pruner that prunes by the forecast the recorder keeps in
the trial, with its patience, margin and fallback; what it cannot use is one warning per trial."""

import logging
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

optuna = pytest.importorskip("optuna", reason="optuna is not installed (pip install -e '.[optuna]')")

from inpca.atlas import AtlasPruner, Forecast  # noqa: E402
from inpca.record import FORECAST_ATTR, Recorder, forecast_attr  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)


def forecast(low, value=None, trusted=True, step=0):
    value = low + 0.01 if value is None else value
    return {"step": step, "epoch": None, "value": value, "low": low, "high": value + 0.01, "trusted": trusted,
            "reason": ""}


def replay(pruner, trials, direction="minimize"):
    """A study whose trials report `curve` step by step, storing `forecasts[step]` before each report;
    each trial is (curve, forecasts); returns the study."""
    study = optuna.create_study(direction=direction, pruner=pruner)

    def objective(trial):
        curve, forecasts = trials[trial.number]
        for step, value in enumerate(curve):
            if forecasts is not None and forecasts[step] is not None:
                trial.set_user_attr(FORECAST_ATTR, forecasts[step])
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return curve[-1]

    study.optimize(objective, n_trials=len(trials))
    return study


def states(study):
    return [(t.state.name, t.last_step) for t in study.trials]


def test_atlas_pruner_is_an_optuna_pruner_and_imported_lazily():
    assert isinstance(AtlasPruner(), optuna.pruners.BasePruner)
    code = "import sys; import inpca.atlas; print('optuna' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_without_optuna_inpca_atlas_imports_and_the_pruner_says_what_to_install():
    code = ("import sys; sys.modules['optuna'] = None\nimport inpca.atlas\nprint('atlas ok', flush=True)\n"
            "inpca.atlas.AtlasPruner")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "atlas ok"
    assert proc.stderr.strip().splitlines()[-1] == ("ImportError: inpca.atlas.AtlasPruner needs optuna: "
                                                    "pip install 'inpca[optuna]'")


def test_prunes_after_patience_reports_whose_optimistic_bound_is_worse_than_the_best_completed():
    good = ([0.5, 0.2, 0.1, 0.05], None)
    worse = ([0.6, 0.3, 0.2, 0.1], [forecast(0.08)] * 4)
    better = ([0.6, 0.3, 0.2, 0.04], [forecast(0.03)] * 4)
    study = replay(AtlasPruner(patience=2), [good, worse, better])
    assert states(study) == [("COMPLETE", 3), ("PRUNED", 1), ("COMPLETE", 3)]
    assert study.pruner.decisions[0]["best"] == 0.05 and study.pruner.decisions[0]["step"] == 1


def test_a_streak_is_consecutive_and_the_margin_and_warmup_hold_it_back():
    good = ([0.5, 0.05], None)
    # worse, better, worse, worse: pruned at the 4th report with patience 2
    flip = ([0.6, 0.5, 0.4, 0.3, 0.2], [forecast(0.08), forecast(0.01), forecast(0.08), forecast(0.08),
                                        forecast(0.08)])
    assert states(replay(AtlasPruner(patience=2), [good, flip])) == [("COMPLETE", 1), ("PRUNED", 3)]
    within = ([0.6, 0.5, 0.4], [forecast(0.052)] * 3)
    assert states(replay(AtlasPruner(margin=0.005), [good, within]))[1] == ("COMPLETE", 2)
    assert states(replay(AtlasPruner(margin=0.001), [good, within]))[1] == ("PRUNED", 0)
    assert states(replay(AtlasPruner(n_warmup_steps=2), [good, within]))[1] == ("PRUNED", 2)
    # the point forecast instead of the optimistic bound
    point = ([0.6, 0.5, 0.4], [forecast(0.03, value=0.07)] * 3)
    assert states(replay(AtlasPruner(), [good, point]))[1] == ("COMPLETE", 2)
    assert states(replay(AtlasPruner(use="value"), [good, point]))[1] == ("PRUNED", 0)


class Always(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


def test_without_a_usable_forecast_it_does_not_prune_or_asks_the_fallback():
    good = ([0.5, 0.05], None)
    untrusted = ([0.6, 0.5, 0.4], [forecast(0.2, trusted=False)] * 3)
    not_yet = ([0.6, 0.5, 0.4], [forecast(math.nan)] * 3)  # NaN: no forecast (below the first grid point)
    not_yet[1][0]["low"] = None
    first = ([0.6, 0.5], [forecast(0.9)] * 2)  # no completed trial to compare with
    assert states(replay(AtlasPruner(), [good, untrusted, not_yet])) == [("COMPLETE", 1), ("COMPLETE", 2),
                                                                        ("COMPLETE", 2)]
    assert states(replay(AtlasPruner(fallback=Always()), [good, untrusted])) == [("PRUNED", 0), ("PRUNED", 0)]
    assert states(replay(AtlasPruner(require_trusted=False), [good, untrusted]))[1] == ("PRUNED", 0)
    assert states(replay(AtlasPruner(), [first])) == [("COMPLETE", 1)]


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "inpca.atlas" and r.levelno == logging.WARNING]


def test_a_trial_without_forecast_is_one_warning_and_the_study_goes_on(caplog):
    caplog.set_level(logging.WARNING, "inpca.atlas")
    good = ([0.5, 0.05], None)
    silent = ([0.6, 0.5, 0.4, 0.3], None)
    study = replay(AtlasPruner(), [good, silent, silent])
    assert states(study) == [("COMPLETE", 1), ("COMPLETE", 3), ("COMPLETE", 3)]
    assert warnings_of(caplog) == [f"AtlasPruner: trial {n}: no forecast in trial.user_attrs['inpca_forecast'] "
                                   "(record with Recorder.for_atlas(..., trial=trial)); not pruning" for n in (0, 1, 2)]


def test_a_trial_that_reports_nan_is_pruned_with_one_warning(caplog):
    caplog.set_level(logging.WARNING, "inpca.atlas")
    good = ([0.5, 0.05], [forecast(0.01)] * 2)
    diverged = ([0.6, math.nan, 0.4], [forecast(0.01)] * 3)
    study = replay(AtlasPruner(), [good, diverged, good])
    assert states(study) == [("COMPLETE", 1), ("PRUNED", 1), ("COMPLETE", 1)]
    assert warnings_of(caplog) == ["AtlasPruner: trial 1: reported nan at step 1: a diverged training, pruned"]


def test_a_study_that_maximises_is_one_warning_per_trial_and_never_pruned_by_the_forecast(caplog):
    caplog.set_level(logging.WARNING, "inpca.atlas")
    trials = [([0.5, 0.9], [forecast(0.01)] * 2), ([0.5, 0.6, 0.7], [forecast(0.9)] * 3)]
    assert states(replay(AtlasPruner(), trials, direction="maximize")) == [("COMPLETE", 1), ("COMPLETE", 2)]
    assert len(warnings_of(caplog)) == 2 and "maximises" in warnings_of(caplog)[0]


@pytest.mark.parametrize("kwargs, message", [
    ({"patience": 0}, "patience: 0; expected an integer >= 1"),
    ({"use": "median"}, "use: 'median'; expected one of low, value, high"),
    ({"margin": math.nan}, "margin: nan; expected a finite number"),
    ({"fallback": "median"}, "fallback: a str, not an optuna pruner"),
    ({"n_warmup_steps": -1}, "n_warmup_steps: -1; expected an integer >= 0"),
])
def test_bad_settings_are_refused_in_one_line(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message.replace('(', '.').replace(')', '.')}$"):
        AtlasPruner(**kwargs)


# ---- the recorder gives the trial its forecasts


class FakeAtlas:
    """What the recorder's live table asks of an atlas: a fixed forecast per checkpoint (no study)."""

    splits = ["train", "test"]
    dataset_name = "fake"
    path = "fake-atlas"

    def __init__(self, fingerprint, low=0.08):
        self.fingerprint, self.low = fingerprint, low
        (_, y_train), (_, y_test) = data()
        self.labels = {"train": y_train, "test": y_test}

    def dataset(self):
        raise AssertionError("not used")

    def test_error(self, probs):
        return float(np.mean(np.asarray(probs).argmax(-1) != self.labels["test"]))

    def checkpoint_row(self, probs, history, split, k, *, step, epoch, **_):
        estimates = {"final_test_error": (self.low + 0.01, self.low, self.low + 0.02)}
        neighbours = pd.DataFrame({"run": ["r"], "distance": [0.1]})
        return ({"step": int(step), "epoch": float(epoch), "train_progress": 0.5},
                Forecast(split, k, 0.1, estimates, neighbours, True, "", "c"))


def data():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((60, 5)).astype(np.float32), rng.integers(0, 3, 60)
    return (x[:40], y[:40]), (x[40:], y[40:])


def train(path, trial, atlas, steps=(0, 1, 2, 3)):
    import torch

    train_, test = data()
    model = torch.nn.Linear(5, 3)
    with Recorder(path, train=train_, test=test, config={"arch": "linear", "n": trial.number}, steps=list(steps),
                  steps_per_epoch=1, atlas=atlas, trial=trial) as rec:
        for step in steps:
            rec.record(model, step=step)
            trial.report(0.5 - step / 100, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
    return rec


def test_the_recorder_keeps_the_latest_forecast_in_the_trial_and_the_pruner_prunes_by_it(tmp_path):
    kept = []

    def objective(trial):
        if trial.number == 0:
            return 0.05
        atlas = FakeAtlas(fingerprint_of_data(), low=0.02 if trial.number == 1 else 0.08)
        try:
            rec = train(tmp_path / f"t{trial.number}.h5", trial, atlas)
        finally:
            kept.append(dict(trial.user_attrs))
        assert rec.latest_forecast == forecast_attr((0.03, 0.02, 0.04), step=3, epoch=3.0)
        return 0.04

    study = optuna.create_study(pruner=AtlasPruner(patience=2))
    study.optimize(objective, n_trials=3)
    assert states(study) == [("COMPLETE", None), ("COMPLETE", 3), ("PRUNED", 1)]
    assert kept[0][FORECAST_ATTR] == {"step": 3, "epoch": 3.0, "value": pytest.approx(0.03), "low": 0.02,
                                      "high": pytest.approx(0.04), "trusted": True, "reason": ""}
    assert kept[1][FORECAST_ATTR]["step"] == 1 and kept[1][FORECAST_ATTR]["low"] == 0.08


def fingerprint_of_data():
    from inpca.data import fingerprint_of

    (xa, ya), (xb, yb) = data()
    return fingerprint_of("recorded", xa, ya, xb, yb, 3)


def test_with_a_trial_an_atlas_of_other_data_or_none_is_one_warning_and_the_run_is_recorded(tmp_path, caplog):
    from inpca.record import RecorderError

    caplog.set_level(logging.WARNING, "inpca.record")
    study = optuna.create_study(pruner=AtlasPruner())
    trial = study.ask()
    rec = train(tmp_path / "other.h5", trial, FakeAtlas("another-fingerprint"))
    assert rec.finished and rec.atlas is None and rec.latest_forecast is None and FORECAST_ATTR not in trial.user_attrs
    rec = train(tmp_path / "none.h5", study.ask(), None)
    assert rec.finished
    messages = [r.getMessage() for r in caplog.records if r.name == "inpca.record" and r.levelno == logging.WARNING]
    assert len(messages) == 2
    assert messages[0].startswith("trial 0: ") and "records on other data than the atlas fake-atlas" in messages[0]
    assert messages[0].endswith("; recording without the atlas (no forecast for the pruner)")
    assert messages[1] == ("trial 1: a Recorder given a trial but no atlas forecasts nothing; record with "
                           "Recorder.for_atlas(path, atlas, ..., trial=trial)")
    train_, test = data()
    with pytest.raises(RecorderError, match="records on other data"):  # without a trial: refused, as before
        Recorder(tmp_path / "refused.h5", train=train_, test=test, config={}, steps=[0],
                 atlas=FakeAtlas("another-fingerprint"))
