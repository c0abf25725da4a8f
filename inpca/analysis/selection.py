"""Which runs an analysis counts (:func:`select_runs`, as the paper chose them) and the checks of the
arrays the analyses take beside the trajectories table. What a configuration is:
:mod:`inpca.configurations`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..configurations import check_trajectories, normalised, run_mask
from ..errors import ResultsError


# --------------------------------------------------------------------------------------------------
# checks


def check_keep(keep, n: int) -> np.ndarray:
    if keep is None:
        return np.ones(n, dtype=bool)
    arr = np.asarray(keep)
    if arr.shape != (n,):
        raise ResultsError(f"keep: expected shape ({n},) (one flag per trajectory), got {arr.shape}")
    if arr.dtype != bool:
        if not np.isin(arr, (0, 1)).all():
            raise ResultsError("keep: expected booleans (one flag per trajectory)")
        arr = arr.astype(bool)
    return arr


def check_dists(dists, n: int) -> np.ndarray:
    arr = np.asarray(dists, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise ResultsError(f"dists: expected shape (T, R, R), got {arr.shape}")
    if arr.shape[1] != n:
        raise ResultsError(f"dists: {arr.shape[1]} trajectories but trajectories has {n} rows")
    if arr.shape[0] == 0:
        raise ResultsError("dists: no values of t (T = 0)")
    return arr


# --------------------------------------------------------------------------------------------------
# 0. which runs count


def select_runs(trajectories: pd.DataFrame, max_final_train_error: float | None) -> tuple[np.ndarray, pd.DataFrame]:
    """Runs that enter the analysis, as the paper chose them.

    Returns ``(keep, excluded)``: ``keep`` is a bool array with one flag per row of ``trajectories``;
    ``excluded`` has columns ``run, reason``, one row per dropped run in table order. The geodesic row
    is always kept. A run that diverged is dropped with reason ``"diverged at step N"``
    (``diverged_at_step``; just ``"diverged"`` when that is unknown or -1); otherwise a run whose
    ``final_train_error`` exceeds ``max_final_train_error`` is dropped with reason
    ``"final train error 0.35 > 0.1"`` (the paper drops runs with final train error > 0.1), and a run
    without a final train error with ``"final train error missing"``. ``max_final_train_error=None``
    applies no threshold.
    """
    check_trajectories(trajectories)
    if max_final_train_error is not None:
        try:
            threshold = float(max_final_train_error)
        except (TypeError, ValueError):
            raise ResultsError(f"max_final_train_error: expected a number, got {max_final_train_error!r}") from None
        if not threshold >= 0:
            raise ResultsError(f"max_final_train_error: expected a number >= 0, got {max_final_train_error!r}")
    is_run = run_mask(trajectories)
    keep = np.ones(len(trajectories), dtype=bool)
    n = len(trajectories)
    diverged = list(trajectories["diverged"]) if "diverged" in trajectories.columns else [False] * n
    at_step = (pd.to_numeric(trajectories["diverged_at_step"], errors="coerce").to_numpy(dtype=float)
               if "diverged_at_step" in trajectories.columns else np.full(n, np.nan))
    if max_final_train_error is not None and "final_train_error" not in trajectories.columns:
        raise ResultsError("trajectories: missing column final_train_error (needed for max_final_train_error)")
    errors = (pd.to_numeric(trajectories["final_train_error"], errors="coerce").to_numpy(dtype=float)
              if "final_train_error" in trajectories.columns else np.full(n, np.nan))
    excluded = []
    for i, run in enumerate(trajectories["run"].astype(str)):
        if not is_run[i]:
            continue
        reason = None
        if normalised(diverged[i]) in ("true", "1"):
            step = at_step[i]
            reason = f"diverged at step {int(step)}" if np.isfinite(step) and step >= 0 else "diverged"
        elif max_final_train_error is not None:
            err = errors[i]
            if not np.isfinite(err):
                reason = "final train error missing"
            elif err > threshold:
                reason = f"final train error {err:.3g} > {threshold:g}"
        if reason is not None:
            keep[i] = False
            excluded.append({"run": run, "reason": reason})
    return keep, pd.DataFrame(excluded, columns=["run", "reason"])
