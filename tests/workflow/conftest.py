"""Studies that several workflow test modules use, built once per test session."""

import os
from pathlib import Path

import pytest
import yaml

from inpca.atlas import Atlas
from inpca.testing import REPO, copy_workflow, snakemake


@pytest.fixture(scope="session")
def default_study(tmp_path_factory):
    """The default study (config.yaml: 32 networks on digits), every stage, as `make run` makes it.
    While developing, INPCA_TEST_DEFAULT_STUDY=<a folder where `make run` finished> takes that one
    instead of building it again (the tests only read it; CI always builds it)."""
    if os.environ.get("INPCA_TEST_DEFAULT_STUDY") and os.environ.get("CI") != "true":
        return Path(os.environ["INPCA_TEST_DEFAULT_STUDY"]).resolve()
    workdir = copy_workflow(tmp_path_factory.mktemp("default"), yaml.safe_load((REPO / "config.yaml").read_text()))
    snakemake(workdir, timeout=3600)
    return workdir


@pytest.fixture(scope="module")
def atlas(default_study):
    with Atlas.load(default_study / "results") as loaded:
        yield loaded
