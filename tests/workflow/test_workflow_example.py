"""examples/ as a user runs it (examples/README.md): record one's own training, kill it, resume it,
and map the recordings with the pipeline.

Kept small: one seed, SGD and Adam, 2 epochs of the example's ResNet-10 (12 checkpoints per run).
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from inpca.testing import REPO
from inpca.testing import copy_workflow, job_counts

pytestmark = pytest.mark.workflow

EXAMPLE = REPO / "examples/record_own_training.py"
EXAMPLE_CONFIG = REPO / "examples/config.yaml"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
EPOCHS = ["--epochs", "2", "--seeds", "0"]


def record_command(out: Path, *optimizers: str) -> list[str]:
    return [sys.executable, str(EXAMPLE), "--out", str(out), *EPOCHS, "--optimizers", *optimizers]


def record(out: Path, *optimizers: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(record_command(out, *optimizers), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def schedule() -> list[int]:
    from inpca.data import load_study_dataset
    from inpca.record import paper_steps

    return paper_steps(load_study_dataset({"name": "digits"}).n_train // 64, 2)


def checkpoints_in(folder: Path) -> list[Path]:
    """The checkpoints a recording has saved so far (its files in progress have other names)."""
    return [p for p in folder.glob("*.h5") if p.stem.isdigit()] if folder.exists() else []


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    """The example's recordings, uninterrupted."""
    out = tmp_path_factory.mktemp("recorded") / "my_runs"
    record(out, "sgd", "adam")
    return out


def test_a_killed_recording_completes_when_rerun_and_equals_an_uninterrupted_one(recordings, tmp_path):
    from inpca.runfile import read_run

    out = tmp_path / "my_runs"
    path, partial = out / "resnet10-sgd-s0.h5", out / "resnet10-sgd-s0.h5.partial"
    proc = subprocess.Popen(record_command(out, "sgd"), start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while len(checkpoints_in(partial)) < 2:  # two, so that the kill lands past the first
            assert proc.poll() is None, "the recording finished before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint recorded in 300 s"
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):  # gone already if the wait above failed
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = len(checkpoints_in(partial))
    assert not path.exists() and killed_at < len(schedule())

    resumed = record(out, "sgd")
    assert f"resuming with {killed_at} checkpoints recorded" in resumed.stderr
    run, uninterrupted = read_run(path), read_run(recordings / path.name)
    assert run["step"].tolist() == schedule()
    assert not partial.exists()
    # the example trains deterministically (seeded, one thread, deterministic algorithms): the
    # checkpoints recorded before the kill and after the rerun are those of an uninterrupted run
    for split in ("train", "test"):
        assert np.array_equal(run[f"{split}_probs"], uninterrupted[f"{split}_probs"]), split


def test_the_pipeline_maps_the_recordings_and_importing_them_again_recomputes_nothing(recordings, tmp_path):
    # as examples/README.md: the workflow (here a copy) run from a folder of one's own study
    workflow = copy_workflow(tmp_path / "workflow", yaml.safe_load(EXAMPLE_CONFIG.read_text()))
    study = tmp_path / "my_study"
    shutil.copytree(recordings, study / "my_runs")

    def snakemake(*args) -> str:
        proc = subprocess.run([SNAKEMAKE, "--snakefile", str(workflow / "Snakefile"), "--cores", "2",
                               "--configfile", str(EXAMPLE_CONFIG), *args], cwd=study, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, f"snakemake {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        return proc.stdout + proc.stderr

    ran = job_counts(snakemake())
    assert ran["import_run"] == 2 and "train_run" not in ran
    index = (study / "results/store/index.tsv").read_text().splitlines()
    header = index[0].split("\t")
    rows = [dict(zip(header, line.split("\t"))) for line in index[1:]]
    imported = {row["run"]: row["optimizer.name"] for row in rows if row["run"].startswith("rec-resnet10-")}
    assert sorted(imported.values()) == ["adam", "sgd"]
    assert sum(row["run"] in imported for row in rows) == 2 * len(schedule())
    for split in ("train", "test"):
        assert (study / f"results/plots/{split}/trajectories.png").stat().st_size > 1000
        assert "2 runs in the study, 2 kept" in (study / f"results/analysis/{split}/summary.md").read_text()

    # recording again leaves the finished files as they are; a newer copy of them changes nothing
    before = {p.name: p.read_bytes() for p in (study / "my_runs").glob("*.h5")}
    record(study / "my_runs", "sgd", "adam")
    assert {p.name: p.read_bytes() for p in (study / "my_runs").glob("*.h5")} == before
    for path in (study / "my_runs").glob("*.h5"):
        os.utime(path)
    assert "Nothing to be done" in snakemake("-n")
