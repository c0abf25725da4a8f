"""Fixtures the unit tests share."""

import copy

import pytest

from inpca.study import load_study
from inpca.testing import REPO

SCHEMA = REPO / "inpca" / "schemas" / "config.schema.yaml"

# A small grid: fc and All-CNN x SGD-Nesterov and Adam x 2 seeds (8 runs), every other key defaulted.
GRID = {
    "grid": [
        {
            "arch": [{"name": "fc", "width": 8, "depth": 1}, {"name": "allcnn", "width": 0.25}],
            "optimizer": [{"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True}, {"name": "adam", "lr": 1e-3}],
            "seed": [0, 1],
        }
    ]
}


@pytest.fixture
def base_config():
    """The small grid's config, a fresh copy for each test."""
    return copy.deepcopy(GRID)


@pytest.fixture
def plan():
    """The study of a config (default: the small grid), validated and expanded as the workflow does."""

    def load(cfg=None):
        return load_study(copy.deepcopy(cfg or GRID), SCHEMA)

    return load
