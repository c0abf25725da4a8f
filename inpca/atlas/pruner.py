"""An Optuna pruner that stops a trial whose atlas forecast says it cannot beat the best trial so far.

::

    import optuna
    from inpca.atlas import Atlas, AtlasPruner
    from inpca.record import Recorder, log_steps

    atlas = Atlas.load("results")

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        model, optimizer = make(lr)
        with Recorder.for_atlas(f"runs/trial-{trial.number}.h5", atlas, config={"lr": lr}, steps=steps,
                                steps_per_epoch=len(loader), trial=trial) as rec:
            ...                                   # rec.record(model, step=step) at its due steps
            for epoch in range(epochs):
                ...                               # one epoch of training, recording as it goes
                trial.report(test_error, epoch)   # as usual
                if trial.should_prune():
                    raise optuna.TrialPruned()
        return test_error                         # the final test error: what the atlas forecasts

    study = optuna.create_study(direction="minimize", pruner=AtlasPruner(patience=2))
    study.optimize(objective, n_trials=30)

The recorder given ``trial=`` keeps the latest forecast of the run's final test error in the trial
(``trial.user_attrs["inpca_forecast"]``: step, epoch, value, low, high, trusted); the pruner reads it
at every ``should_prune``. It prunes when, for `patience` consecutive reports at or after
`n_warmup_steps`, the forecast's bound `use` ("low", the optimistic end of its range, by default; or
"value") is above the best *completed* trial's objective value plus `margin`.

Why the completed trials and not the forecasts of the trials still running: a completed trial's value
is measured, a forecast is not (its error is several points early on); comparing a forecast with
another forecast would let one optimistic forecast stop every other trial, and in a sequential study
no other trial runs. The objective must therefore return the final test error (the quantity the atlas
forecasts) in a study that minimises.

Where the atlas gives nothing to go by (no forecast yet, below the atlas' first grid point, an
untrusted forecast, no completed trial) the pruner never prunes, or asks `fallback` (e.g.
``optuna.pruners.MedianPruner()``) when one is given. Input it cannot use is one warning per trial and
the study goes on: a trial that never stored a forecast (recorded without ``trial=``, or without an
atlas, or with an atlas of other data: the recorder then warns and records without it), a trial that
reports NaN (a diverged training: pruned, as Optuna's own pruners do), a study that maximises.
"""

from __future__ import annotations

import logging
import math

try:
    import optuna
    from optuna.pruners import BasePruner
    from optuna.study import StudyDirection
    from optuna.trial import TrialState
except ImportError:  # pragma: no cover - the message users see
    raise ImportError("inpca.atlas.AtlasPruner needs optuna: pip install 'inpca[optuna]'") from None

from ..record import FORECAST_ATTR, forecast_attr

__all__ = ["AtlasPruner", "FORECAST_ATTR", "forecast_attr"]

log = logging.getLogger("inpca.atlas")

USES = ("low", "value", "high")


class AtlasPruner(BasePruner):
    """Prunes a trial whose forecast final test error cannot beat the best completed trial.

    Parameters
    ----------
    n_warmup_steps : int, default 0
        Never prune before this reported step.
    patience : int, default 1
        How many consecutive reports (``trial.report`` + ``should_prune``) the forecast must be
        worse than the best before the trial is pruned.
    margin : float, default 0.0
        The forecast must be above the best completed value + margin (an error, e.g. 0.005).
    use : {"low", "value", "high"}, default "low"
        Which forecast to compare: the optimistic end of its range (prunes only a trial that even in the
        best case ends worse), the point forecast, or the pessimistic end.
    fallback : optuna.pruners.BasePruner, optional
        Asked where the atlas gives nothing to go by; without one the pruner does not prune there.
    n_startup_trials : int, default 1
        Never prune (by the forecast) before this many trials completed.
    require_trusted : bool, default True
        An untrusted forecast (farther from every reference than two seeds of one configuration) counts
        as no forecast.
    attr : str, default "inpca_forecast"
        The trial's user attribute holding the forecast (:func:`forecast_attr`).
    """

    def __init__(self, n_warmup_steps: int = 0, patience: int = 1, margin: float = 0.0, use: str = "low",
                 fallback: BasePruner | None = None, n_startup_trials: int = 1, require_trusted: bool = True,
                 attr: str = FORECAST_ATTR):
        if not isinstance(n_warmup_steps, int) or n_warmup_steps < 0:
            raise ValueError(f"n_warmup_steps: {n_warmup_steps!r}; expected an integer >= 0")
        if not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience: {patience!r}; expected an integer >= 1")
        if not isinstance(n_startup_trials, int) or n_startup_trials < 1:
            raise ValueError(f"n_startup_trials: {n_startup_trials!r}; expected an integer >= 1")
        if not (isinstance(margin, (int, float)) and math.isfinite(margin)):
            raise ValueError(f"margin: {margin!r}; expected a finite number")
        if use not in USES:
            raise ValueError(f"use: {use!r}; expected one of {', '.join(USES)}")
        if fallback is not None and not isinstance(fallback, BasePruner):
            raise ValueError(f"fallback: a {type(fallback).__name__}, not an optuna pruner")
        self.n_warmup_steps, self.patience, self.margin, self.use = n_warmup_steps, patience, float(margin), use
        self.fallback, self.n_startup_trials, self.require_trusted, self.attr = (fallback, n_startup_trials,
                                                                                 require_trusted, attr)
        # per trial (number): the last step judged and how many consecutive reports were worse. Kept in
        # the pruner: should_prune runs in the process that runs the trial, so each process keeps its own
        # trials' counts, with any storage.
        self._streak: dict[int, tuple[int, int]] = {}
        self._warned: set[tuple[int, str]] = set()
        self.decisions: list[dict] = []  # what was decided and why, one entry per pruned trial

    def _warn_once(self, trial, kind: str, message: str) -> None:
        if (trial.number, kind) not in self._warned:
            self._warned.add((trial.number, kind))
            log.warning("AtlasPruner: trial %d: %s", trial.number, message)

    def _fall_back(self, study, trial) -> bool:
        return bool(self.fallback.prune(study, trial)) if self.fallback is not None else False

    def prune(self, study: "optuna.study.Study", trial: "optuna.trial.FrozenTrial") -> bool:
        step = trial.last_step
        if step is None:
            return False
        reported = trial.intermediate_values[step]
        if not math.isfinite(reported):
            self._warn_once(trial, "nan", f"reported {reported} at step {step}: a diverged training, pruned")
            return True
        if study.direction != StudyDirection.MINIMIZE:
            self._warn_once(trial, "direction", "the study maximises, and the atlas forecasts the final test "
                                                "error (to be minimised); not pruning by the forecast")
            return self._fall_back(study, trial)
        if step < self.n_warmup_steps:
            return False
        forecast = trial.user_attrs.get(self.attr)
        if not isinstance(forecast, dict):
            self._warn_once(trial, "none", f"no forecast in trial.user_attrs[{self.attr!r}] (record with "
                                           "Recorder.for_atlas(..., trial=trial)); "
                                           + ("asking the fallback" if self.fallback else "not pruning"))
            return self._fall_back(study, trial)
        bound = forecast.get(self.use)
        usable = isinstance(bound, (int, float)) and math.isfinite(bound)
        if not usable or (self.require_trusted and not forecast.get("trusted", False)):
            return self._fall_back(study, trial)
        values = [t.value for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                  if t.value is not None and math.isfinite(t.value)]
        if len(values) < self.n_startup_trials:
            return self._fall_back(study, trial)
        best = min(values)
        last, streak = self._streak.get(trial.number, (None, 0))
        if last == step:  # should_prune asked again at the same report: judged already
            return streak >= self.patience
        streak = streak + 1 if bound > best + self.margin else 0
        self._streak[trial.number] = (step, streak)
        if streak >= self.patience:
            self.decisions.append({"trial": trial.number, "step": step, "forecast": dict(forecast), "best": best})
            log.info("AtlasPruner: trial %d pruned at step %d: forecast %s %.4f > best %.4f + %.4f for %d reports",
                     trial.number, step, self.use, bound, best, self.margin, streak)
            return True
        return False
