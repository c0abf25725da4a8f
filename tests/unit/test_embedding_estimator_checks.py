"""scikit-learn's own conformance suite on every estimator the package exposes: InPCA (dense solver,
and the Lanczos and block solvers with row blocks of a few entries, so the block-by-block path is
checked too) and WeightedLandmarkInPCA. Each check is its own test.

No check is marked as an expected failure: with the tags that say the input is a pairwise,
non-negative distance matrix (the suite then feeds the estimators square kernel matrices), every
check applies and passes. check_array_api_input needs SCIPY_ARRAY_API=1 before scipy is imported,
which would change scipy for every other test of the session; scikit-learn skips it in process, so it
runs here in a fresh interpreter instead.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from inpca.embedding import InPCA
from inpca.landmarks import WeightedLandmarkInPCA

REPO = Path(__file__).resolve().parents[2]

ESTIMATORS = [
    InPCA(n_components=2),
    InPCA(n_components=2, solver="lanczos", block_bytes=64),
    InPCA(n_components=2, solver="block", block_bytes=64),
    WeightedLandmarkInPCA(n_components=2),
]

pytestmark = pytest.mark.usefixtures("single_threaded_blas")


@parametrize_with_checks(ESTIMATORS)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_array_api_check_with_scipy_array_api_enabled():
    script = (
        "from sklearn.utils.estimator_checks import check_estimator\n"
        "from inpca.embedding import InPCA\nfrom inpca.landmarks import WeightedLandmarkInPCA\n"
        "for estimator in (InPCA(n_components=2), WeightedLandmarkInPCA(n_components=2)):\n"
        "    results = [r for r in check_estimator(estimator, on_fail=None)\n"
        "               if r['check_name'] == 'check_array_api_input']\n"
        "    assert results, 'check_array_api_input did not run'\n"
        "    for r in results:\n"
        "        print(type(estimator).__name__, r['status'], r['exception'])\n"
    )
    env = {**os.environ, "SCIPY_ARRAY_API": "1", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines == ["InPCA passed None", "WeightedLandmarkInPCA passed None"], done.stdout
