"""Checkpoint schedules: the optimizer steps at which a run records its predictions.

Step t counts optimizer steps; t = 0 is the network before training. Both schedules always include
step 0 and the last step, and are dense early and sparse late, because predictions move fastest at
the start of training.
"""

from __future__ import annotations

import math


def paper_steps(steps_per_epoch: int, epochs: int, early_epochs: int = 5, per_epoch: int = 4) -> list[int]:
    """The schedule of Mao et al. (their runner.py), generalised to any epoch length.

    - t = 0;
    - in each of the first `early_epochs` epochs, after every (steps_per_epoch // per_epoch)-th step,
      counted from the first step of the epoch (t is recorded after the step, so the first is t = 1);
    - the end of every later epoch e (0-based) with e <= 25, or 25 < e <= 65 and e % 4 == 0,
      or e > 65 and e % 15 == 0;
    - the end of the last epoch.
    For 200 epochs of 250 steps this gives the paper's 67 checkpoints 0, 1, 63, 125, 187, 249, 251, ...
    """
    if steps_per_epoch < 1 or epochs < 1:
        raise ValueError(f"steps_per_epoch and epochs must be >= 1, got {steps_per_epoch} and {epochs}")
    every = max(steps_per_epoch // per_epoch, 1)
    steps = {0}
    for epoch in range(min(early_epochs, epochs)):
        steps.update(epoch * steps_per_epoch + i + 1 for i in range(steps_per_epoch) if i % every == 0)
    for epoch in range(early_epochs, epochs):
        if epoch <= 25 or (epoch <= 65 and epoch % 4 == 0) or (epoch > 65 and epoch % 15 == 0):
            steps.add((epoch + 1) * steps_per_epoch)
    steps.add(epochs * steps_per_epoch)
    return sorted(steps)


def log_steps(total_steps: int, count: int) -> list[int]:
    """Step 0 plus up to count-1 distinct steps spaced evenly in log(step) from 1 to total_steps."""
    if total_steps < 1 or count < 2:
        raise ValueError(f"total_steps must be >= 1 and count >= 2, got {total_steps} and {count}")
    steps = {0, total_steps}
    n = count - 1
    for i in range(n):
        steps.add(int(round(math.exp(math.log(total_steps) * i / max(n - 1, 1)))))
    return sorted(s for s in steps if 0 <= s <= total_steps)


def checkpoint_steps(checkpoints: dict, steps_per_epoch: int, epochs: int) -> list[int]:
    """The steps for a run, from the study's `checkpoints` section."""
    if checkpoints["schedule"] == "paper":
        return paper_steps(steps_per_epoch, epochs, checkpoints["early_epochs"], checkpoints["per_epoch"])
    return log_steps(steps_per_epoch * epochs, checkpoints["count"])
