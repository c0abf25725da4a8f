"""Studies that several workflow test modules use, built once per test session."""

import pytest
import yaml

from inpca.atlas import Atlas
from inpca.testing import REPO, copy_workflow, snakemake


@pytest.fixture(scope="session")
def default_study(tmp_path_factory):
    """The default study (config.yaml: 32 networks on digits), every stage, as `make run` makes it."""
    workdir = copy_workflow(tmp_path_factory.mktemp("default"), yaml.safe_load((REPO / "config.yaml").read_text()))
    snakemake(workdir, timeout=3600)
    return workdir


@pytest.fixture(scope="module")
def atlas(default_study):
    with Atlas.load(default_study / "results") as loaded:
        yield loaded
