"""Tests of inpca.errors: the exception family, first_line and the rebuild hint inside and outside a study."""

import shlex
from pathlib import Path

import pytest

from inpca.errors import (
    ConfigError,
    DatasetError,
    DeviceError,
    InpcaError,
    ResultsError,
    RunFileError,
    StoreError,
    first_line,
    rebuild_hint,
)
from inpca.folders import STUDY_MARKER

SUBCLASSES = (ConfigError, DatasetError, RunFileError, StoreError, DeviceError, ResultsError)


@pytest.mark.parametrize("cls", SUBCLASSES, ids=lambda c: c.__name__)
def test_every_refusal_is_an_inpca_error_and_a_value_error(cls):
    exc = cls("results/runs/a.h5: missing attribute 'run_id'")
    assert isinstance(exc, InpcaError)
    assert isinstance(exc, ValueError), f"{cls.__name__} must stay a ValueError for callers that catch ValueError"
    with pytest.raises(InpcaError, match=r"^results/runs/a\.h5: missing attribute 'run_id'$"):
        raise exc
    with pytest.raises(ValueError):
        raise cls("x")


def test_the_base_class_is_not_a_value_error_and_the_subclasses_are_distinct():
    assert not issubclass(InpcaError, ValueError)
    assert issubclass(InpcaError, Exception)
    for a in SUBCLASSES:
        for b in SUBCLASSES:
            assert issubclass(a, b) == (a is b), f"{a.__name__} vs {b.__name__}"


def test_a_bug_is_not_an_inpca_error():
    """Rule scripts print only the line of an InpcaError; a KeyError or plain ValueError is a bug."""
    assert not isinstance(KeyError("x"), InpcaError)
    assert not isinstance(ValueError("x"), InpcaError)


def test_first_line_takes_the_first_line_of_the_message():
    exc = RuntimeError("first line\nsecond line\nthird")
    assert first_line(exc) == "first line"
    assert first_line(exc, typed=True) == "RuntimeError: first line"


def test_first_line_skips_leading_blank_lines_and_spaces():
    assert first_line(OSError("\n  Unable to open file (truncated file)\n more")) == "Unable to open file (truncated file)"


def test_first_line_of_an_empty_message_is_the_type_name():
    assert first_line(KeyboardInterrupt()) == "KeyboardInterrupt"
    assert first_line(ValueError("")) == "ValueError"
    assert first_line(ValueError("   \n ")) == "ValueError"
    # typed with no message: the name alone, not "ValueError: ValueError"
    assert first_line(ValueError(""), typed=True) == "ValueError"


def test_first_line_of_a_key_error_keeps_its_quotes():
    assert first_line(KeyError("run_id")) == "'run_id'"
    assert first_line(KeyError("run_id"), typed=True) == "KeyError: 'run_id'"


def test_rebuild_hint_outside_every_study_promises_no_rerun(tmp_path):
    path = tmp_path / "my-recording" / "run.h5"
    path.parent.mkdir()
    path.write_bytes(b"")
    hint = rebuild_hint(path)
    assert "nothing rebuilds it" in hint
    assert "snakemake" not in hint and "rm " not in hint
    assert "\n" not in hint


def make_study(root: Path, config: str = "config.yaml", snakefile: bool = True) -> Path:
    """A study's results folder (only its marker) below `root`, which holds a Snakefile if asked."""
    folder = root / ("results" if config == "config.yaml" else f"results-{Path(config).stem}")
    (folder / "runs").mkdir(parents=True)
    (folder / STUDY_MARKER).write_text(config + "\n")
    if snakefile:
        (root / "Snakefile").write_text("")
    return folder


def test_rebuild_hint_inside_the_default_study_deletes_and_reruns(tmp_path, monkeypatch):
    folder = make_study(tmp_path)
    monkeypatch.chdir(tmp_path)  # the study is run from here: no cd in the command
    path = folder / "runs" / "abc.h5"
    hint = rebuild_hint(path)
    assert hint.startswith(f"delete it and rerun Snakemake, which rebuilds it: rm {path} && ")
    assert hint.endswith("--cores all"), hint
    assert "--configfile" not in hint and "cd " not in hint
    assert "\n" not in hint


def test_rebuild_hint_names_the_config_file_of_another_study(tmp_path, monkeypatch):
    folder = make_study(tmp_path, "presets/small.yaml")
    monkeypatch.chdir(tmp_path)
    hint = rebuild_hint(folder / "runs" / "abc.h5")
    assert hint.endswith("--cores all --configfile presets/small.yaml"), hint


def test_rebuild_hint_of_a_config_list_reruns_the_last_config_file(tmp_path, monkeypatch):
    """A marker naming several config files (config.yaml, then an override): the study is the last one."""
    folder = make_study(tmp_path, "config.yaml")
    (folder / STUDY_MARKER).write_text("config.yaml, presets/big.yaml\n")
    monkeypatch.chdir(tmp_path)
    hint = rebuild_hint(folder / "runs" / "abc.h5")
    assert hint.endswith("--configfile presets/big.yaml"), hint


def test_rebuild_hint_from_elsewhere_changes_to_the_study_first(tmp_path, monkeypatch):
    project = tmp_path / "my project"  # a space: the cd must quote it
    project.mkdir()
    folder = make_study(project)
    elsewhere = tmp_path / "notebooks"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    hint = rebuild_hint(folder / "runs" / "abc.h5")
    assert f"cd {shlex.quote(str(project.resolve()))} && " in hint, hint
    assert "\n" not in hint


def test_rebuild_hint_finds_the_marker_above_nested_folders(tmp_path, monkeypatch):
    folder = make_study(tmp_path)
    monkeypatch.chdir(tmp_path)
    deep = folder / "tiles" / "train" / "bhattacharyya" / "0_1.h5"
    assert "rm " in rebuild_hint(deep)
    # a results-looking folder without the marker is no study
    (folder / STUDY_MARKER).unlink()
    assert "nothing rebuilds it" in rebuild_hint(deep)

