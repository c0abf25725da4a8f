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
