import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Keep numba's compiled kernels in one cache that all test processes (and snakemake jobs) share.
os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO / ".pytest_cache" / "numba"))


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if not _cuda_available():
        skip = pytest.mark.skip(reason="no CUDA GPU visible (runs on a GPU machine)")
        for item in items:
            if item.get_closest_marker("gpu"):  # the marker only: a test or parameter named "gpu" is no GPU test
                item.add_marker(skip)
    # Skipped before its study is built; never in CI, which installs Chromium (.ci/run): there the test
    # fails instead, naming what is missing.
    browser_items = [item for item in items if item.get_closest_marker("browser")]
    if browser_items and os.environ.get("CI") != "true":
        from inpca.testing import missing_browser

        reason = missing_browser()
        if reason is not None:
            for item in browser_items:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def single_threaded_blas():
    """Correctness tests on small matrices: one BLAS thread keeps them fast on a shared 2-core VM,
    where multithreaded BLAS calls stall on descheduled partner threads (a 600 x 600 eigh took 4 s
    instead of 0.05 s under load)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only the speed of the tests depends on it
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
