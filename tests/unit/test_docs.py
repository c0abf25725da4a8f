"""The examples in the public API's docstrings run (numpydoc Examples sections, as doctests)."""

import doctest
import importlib

import pytest

PUBLIC_API = ["inpca.record"]


@pytest.mark.parametrize("module", PUBLIC_API)
def test_the_examples_in_the_public_apis_docstrings_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
