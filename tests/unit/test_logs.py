"""Rule scripts' error handling (inpca.logs.run_script): refusals are one line, bugs keep their traceback."""

import logging
from types import SimpleNamespace

import numpy as np
import pytest

from inpca.errors import StoreError
from inpca.logs import run_script


def fake_smk(tmp_path):
    return SimpleNamespace(log=[str(tmp_path / "job.log")], rule="store_block")


def a_numpy_bug(smk):
    np.zeros(3).reshape(2, 2)  # a genuine bug: numpy raises ValueError


def a_refusal(smk):
    raise StoreError("results/runs/x.h5: data set fingerprint 1 differs from the study's 2")


@pytest.fixture(autouse=True)
def restore_logging():
    yield
    logging.basicConfig(handlers=[logging.NullHandler()], force=True)


def test_a_bug_keeps_its_traceback_in_the_log_and_the_console_gets_one_line_with_the_log_path(tmp_path, capsys):
    smk = fake_smk(tmp_path)
    with pytest.raises(SystemExit) as info:
        run_script(a_numpy_bug, smk)
    message = str(info.value.code)
    assert "\n" not in message and "ValueError" in message and smk.log[0] in message
    log = (tmp_path / "job.log").read_text()
    assert "Traceback (most recent call last)" in log and "a_numpy_bug" in log and "reshape" in log
    console = capsys.readouterr().err
    assert "Traceback" not in console and "ValueError" in console


def test_a_refusal_is_one_line_on_the_console_and_in_the_log(tmp_path, capsys):
    smk = fake_smk(tmp_path)
    with pytest.raises(SystemExit) as info:
        run_script(a_refusal, smk)
    assert str(info.value.code) == ("error in rule store_block: results/runs/x.h5: data set fingerprint 1 differs "
                                    "from the study's 2")
    log = (tmp_path / "job.log").read_text()
    assert "fingerprint 1 differs" in log and "Traceback" not in log
    assert "Traceback" not in capsys.readouterr().err


# --- the operating system refuses a write: the machine, not a bug -------------------------------------------

def _fill_the_disk(smk):
    """What a job does when its file system is full: write an HDF5 output larger than the disk."""
    from inpca.files import write_h5

    write_h5(smk.output[0], lambda f: f.create_dataset("probs", data=np.ones((4, 2**18))))  # 8 MB


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    """A 1 MB file system (tmpfs) as the working directory: a real ENOSPC. Needs root and mount."""
    import shutil
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    if not shutil.which("mount") or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                                                   capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root); the fake-writer test covers the logic")
    monkeypatch.chdir(disk)
    yield disk
    logging.basicConfig(handlers=[logging.NullHandler()], force=True)  # closes the job's log on the disk
    monkeypatch.chdir(tmp_path)
    subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_is_one_line_naming_the_file_and_what_to_free_and_leaves_nothing(small_disk, capsys):
    (small_disk / "logs").mkdir()
    (small_disk / "results/runs").mkdir(parents=True)
    (small_disk / "results/runs/a.h5").write_bytes(b"x" * 300_000)
    smk = SimpleNamespace(log=["logs/reindex.log"], rule="reindex", output=["results/trajectories/b001.h5"])
    with pytest.raises(SystemExit) as info:
        run_script(_fill_the_disk, smk)
    message = str(info.value.code)
    assert message.startswith("error in rule reindex: no space left on the device writing "
                              "results/trajectories/b001.h5.tmp (")
    assert "\n" not in message and "free space there" in message and "results/runs/ 0 MB" in message
    assert "--cores all" in message and "nothing incomplete was kept" in message
    console = capsys.readouterr().err
    assert "Traceback" not in console and "Logging error" not in console and "a bug" not in console
    assert (small_disk / "logs/reindex.log").read_text().count("no space left on the device") == 1
    assert list((small_disk / "results/trajectories").iterdir()) == []  # no partial output


def test_a_refused_write_is_one_line_also_when_the_error_comes_from_plain_python(tmp_path):
    import errno

    def denied(smk):
        raise OSError(errno.EACCES, "Permission denied", "results/plots/train/spectrum.png")

    def full(smk):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "results/store/b000.h5.tmp"))

    smk = SimpleNamespace(log=[str(tmp_path / "job.log")], rule="plot_spectrum", output=["results/x.png"])
    with pytest.raises(SystemExit) as info:
        run_script(denied, smk)
    assert str(info.value.code) == ("error in rule plot_spectrum: permission denied writing "
                                    "results/plots/train/spectrum.png ([Errno 13] Permission denied: "
                                    f"'results/plots/train/spectrum.png'); fix that and rerun "
                                    f"{__import__('inpca.folders').folders.snakemake_command()} --cores all")
    with pytest.raises(SystemExit) as info:
        run_script(full, smk)
    assert "no space left on the device writing " + str(tmp_path / "results/store/b000.h5.tmp") in str(info.value.code)


def test_a_log_that_cannot_be_written_sends_a_bugs_traceback_to_the_console_without_logging_errors(capsys):
    """/dev/full refuses every write with ENOSPC, as a full disk does."""
    smk = SimpleNamespace(log=["/dev/full"], rule="store_block", output=[])
    with pytest.raises(SystemExit) as info:
        run_script(a_numpy_bug, smk)
    message = str(info.value.code)
    assert "could not be written" in message and "traceback in" not in message
    console = capsys.readouterr().err
    assert "--- Logging error ---" not in console
    assert "Traceback (most recent call last)" in console and "reshape" in console
