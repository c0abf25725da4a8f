"""The examples in the public API's docstrings run (numpydoc Examples sections, as doctests)."""

import doctest
import importlib

import pytest

PUBLIC_API = ["inpca.record", "inpca.embedding", "inpca.results", "inpca.atlas.atlas"]


@pytest.mark.parametrize("module", PUBLIC_API)
def test_the_examples_in_the_public_apis_docstrings_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_the_readme_lists_every_job_rule_of_the_workflow():
    import re
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    rules = {name for path in (repo / "rules").glob("*.smk")
             for name in re.findall(r"^rule (\w+):", path.read_text(), re.M)}
    targets = set(re.findall(r"^rule (\w+):", (repo / "Snakefile").read_text(), re.M))
    readme = (repo / "README.md").read_text()
    listed = readme.split("The job rules are", 1)[1].split("\n\n", 1)[0]
    assert sorted(rule for rule in rules if f"`{rule}`" not in listed) == []
    assert sorted(target for target in targets if f"`{target}`" not in readme) == []
