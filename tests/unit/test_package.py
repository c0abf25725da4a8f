"""The package as a user imports it: the public API at the top, resolved lazily, so that `import inpca`
(which every Snakemake parse does) stays light; and the files it reads at run time inside it."""

import subprocess
import sys

import pytest

import inpca

HEAVY = ("torch", "h5py", "numpy", "scipy", "pandas", "matplotlib", "plotly", "numba")


def python(code: str) -> str:
    """`code` run in a fresh interpreter (sys.modules as a user's script starts); its stdout."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


def test_import_inpca_loads_no_heavy_module_and_none_of_the_public_apis_submodules():
    modules = HEAVY + ("inpca.embedding", "inpca.record", "inpca.atlas", "inpca.results")
    loaded = python(f"import sys, inpca\nprint(' '.join(m for m in {modules!r} if m in sys.modules))")
    assert loaded == ""


def test_the_workflows_parse_imports_stay_light():
    """What rules/common.smk imports at every parse (and every cluster job's re-parse): none of the heavy
    libraries, numpy included (h5py is imported only when a study has recordings to import)."""
    loaded = python("import sys\n"
                    "import inpca.config, inpca.study, inpca.errors, inpca.recordings, inpca.resources, inpca.devices\n"
                    f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    assert loaded == ""


def test_reading_results_loads_no_training_or_fitting_library():
    """`inpca.results.load` in a notebook: no torch, numba, scikit-learn or plotting until asked for."""
    heavy = ("torch", "numba", "sklearn", "matplotlib", "plotly")
    loaded = python(f"import sys, inpca.results\nprint(' '.join(m for m in {heavy!r} if m in sys.modules))")
    assert loaded == ""


@pytest.mark.parametrize("module", ["inpca.store", "inpca.tiles", "inpca.trajectory_files", "inpca.imports",
                                    "inpca.train", "inpca.analysis.steps"])
def test_a_jobs_module_loads_no_solver_or_training_library_it_may_not_use(module):
    """Each of a study's ~100 jobs is a fresh interpreter that imports its step's module: scipy's solvers
    (0.2-0.3 s), scikit-learn (0.75 s) or torch at import would be paid by every job, used or not. They
    load inside the functions that use them."""
    heavy = ("torch", "numba", "sklearn", "scipy.linalg", "scipy.optimize", "scipy.sparse", "matplotlib", "plotly")
    loaded = python(f"import sys, {module}\nprint(' '.join(m for m in {heavy!r} if m in sys.modules))")
    assert loaded == ""


@pytest.mark.parametrize("name, module", [("InPCA", "inpca.embedding"), ("Recorder", "inpca.record"),
                                          ("Atlas", "inpca.atlas"), ("load", "inpca.results")])
def test_the_public_api_is_at_the_top_and_is_the_submodules_own(name, module):
    import importlib

    assert getattr(inpca, name) is getattr(importlib.import_module(module), name)
    assert name in inpca.__all__ and name in dir(inpca)


def test_from_inpca_import_the_public_api_in_a_fresh_interpreter():
    out = python("from inpca import InPCA, Recorder, Atlas, load\n"
                 "print(InPCA.__module__, Recorder.__module__, Atlas.__module__, load.__module__)")
    assert out == "inpca.embedding inpca.record inpca.atlas.atlas inpca.results"


def test_an_unknown_name_is_an_attribute_error_and_submodules_still_import():
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        inpca.nothing  # noqa: B018
    from inpca import files, study  # submodules, not names of the public API

    assert study.__name__ == "inpca.study" and files.__name__ == "inpca.files"
    assert isinstance(inpca.__version__, str)


def test_the_schema_is_inside_the_package_and_read_through_importlib_resources():
    from importlib import resources
    from pathlib import Path

    from inpca.config import SCHEMA, SCHEMA_PATH, cached_schema

    assert SCHEMA_PATH.is_file() and Path(inpca.__file__).parent in SCHEMA_PATH.parents
    assert SCHEMA.read_text() == (resources.files("inpca") / "schemas" / "config.schema.yaml").read_text()
    assert "$defs" in cached_schema() and cached_schema() is cached_schema(str(SCHEMA_PATH))


def test_the_atlas_and_its_command_line_load_no_fitting_or_training_library_until_used():
    """`python -m inpca.atlas --help`, or a training script's `import inpca.atlas`: answered without
    scikit-learn (it loads with the first embedding), torch or numba."""
    heavy = ("torch", "numba", "sklearn", "matplotlib", "plotly", "optuna")
    loaded = python(f"import sys, inpca.atlas, inpca.atlas.cli\nprint(' '.join(m for m in {heavy!r} if m in sys.modules))")
    assert loaded == ""
