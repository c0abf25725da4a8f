"""Checkpoint schedules (inpca.schedule), against the paper's counts and first steps."""

import pytest

from inpca.schedule import checkpoint_steps, log_steps, paper_steps


@pytest.mark.parametrize("steps_per_epoch, epochs, count", [(250, 200, 67), (50, 200, 67), (500, 200, 62),
                                                             (100, 200, 62), (250, 300, 73), (500, 300, 68)])
def test_paper_schedule_counts(steps_per_epoch, epochs, count):
    assert len(paper_steps(steps_per_epoch, epochs)) == count


def test_paper_schedule_for_batch_size_200_begins_and_ends_like_the_authors_log():
    steps = paper_steps(250, 200)
    assert steps[:8] == [0, 1, 63, 125, 187, 249, 251, 313]
    assert steps[-1] == 50000
    assert 1500 in steps and 7250 in steps and 19000 in steps


def test_schedules_start_at_zero_end_at_the_last_step_and_are_strictly_increasing():
    for steps, last in [(paper_steps(21, 12), 252), (paper_steps(3, 1), 3), (log_steps(1000, 20), 1000)]:
        assert steps[0] == 0 and steps[-1] == last
        assert all(a < b for a, b in zip(steps, steps[1:]))


def test_log_schedule_is_dense_early_and_sparse_late():
    steps = log_steps(10_000, 30)
    assert 25 <= len(steps) <= 30
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    assert gaps[0] <= gaps[-1] / 10


def test_checkpoint_steps_dispatches_on_the_config():
    assert checkpoint_steps({"schedule": "paper", "early_epochs": 5, "per_epoch": 4}, 250, 200) == paper_steps(250, 200)
    assert checkpoint_steps({"schedule": "log", "count": 10}, 10, 10) == log_steps(100, 10)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        paper_steps(0, 10)
    with pytest.raises(ValueError):
        log_steps(10, 1)
