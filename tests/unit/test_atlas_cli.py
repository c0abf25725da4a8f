"""The atlas' command line (python -m inpca.atlas place) on input it refuses before any study is read: each
refusal one line naming what is wrong, exit 2. Placing in a real atlas: tests/workflow/test_atlas.py."""

import subprocess
import sys

import pytest

from inpca.atlas.cli import main, table_name


def refused(capsys, argv, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert all(word in err for word in words), err
    return err


def test_help_shows_plain_text_and_the_defaults():
    proc = subprocess.run([sys.executable, "-m", "inpca.atlas", "place", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "`" not in text and "(default: atlas-placements)" in text and "(default: 5)" in text
    assert "A.h5 -> A.h5.atlas.tsv" in text
    top = subprocess.run([sys.executable, "-m", "inpca.atlas", "--help"], capture_output=True, text=True, timeout=120)
    assert top.returncode == 0 and "`" not in top.stdout and "Place recorded runs in an atlas" in top.stdout


def test_the_table_has_the_recorders_name():
    from inpca.record import Recorder

    assert table_name("runs/A.h5") == "A.h5.atlas.tsv"
    assert Recorder.atlas_table.fget(type("R", (), {"path": __import__("pathlib").Path("runs/A.h5")})()).name == \
        table_name("runs/A.h5")


def test_two_run_files_of_one_name_are_refused_naming_both(tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "A.h5").write_bytes(b"")
    refused(capsys, ["place", str(tmp_path / "a/A.h5"), str(tmp_path / "b/A.h5"), "--atlas", str(tmp_path),
                     "--out", str(tmp_path / "out")], str(tmp_path / "a/A.h5"), str(tmp_path / "b/A.h5"),
            "A.h5.atlas.tsv")
    assert not (tmp_path / "out").exists()


def test_a_recording_in_progress_is_named_as_such(tmp_path, capsys):
    partial = tmp_path / "X.h5.partial"
    partial.mkdir()
    for step in (0, 5, 10):
        (partial / f"{step}.h5").write_bytes(b"")
    err = refused(capsys, ["place", str(partial), "--atlas", str(tmp_path)], "is a folder: a recording in progress",
                  "3 checkpoints, steps 0..10", "place it when it is finished", str(tmp_path / "X.h5"),
                  "checkpoints so far")
    assert "file read failed" not in err
    (tmp_path / "X.h5.atlas.tsv").write_text("step\n0\n")  # the recorder places them as they come
    refused(capsys, ["place", str(partial), "--atlas", str(tmp_path)], str(tmp_path / "X.h5.atlas.tsv"))
    refused(capsys, ["place", str(tmp_path / "X.h5"), "--atlas", str(tmp_path)], "no such file yet",
            "recording in progress")
    from inpca.errors import RunFileError
    from inpca.files import open_h5

    with pytest.raises(RunFileError, match="a folder, not an HDF5 file; a recording in progress"):
        open_h5(partial)


def test_an_atlas_that_is_a_file_and_an_out_that_is_a_file_are_named(tmp_path, capsys):
    run = tmp_path / "A.h5"
    run.write_bytes(b"")
    readme = tmp_path / "README.md"
    readme.write_text("hello")
    err = refused(capsys, ["place", str(run), "--atlas", str(readme)], str(readme), "a file, not a folder",
                  "results folder of a finished study")
    assert "results:" not in err
    refused(capsys, ["place", str(run), "--atlas", str(tmp_path), "--out", str(readme)], f"--out {readme}",
            "a file, not a folder")


@pytest.mark.parametrize("k", ["0", "-3", "five"])
def test_k_below_one_is_refused_by_the_parser(tmp_path, capsys, k):
    with pytest.raises(SystemExit) as info:
        main(["place", str(tmp_path / "A.h5"), "--atlas", str(tmp_path), "--k", k])
    assert info.value.code == 2 and "expected an integer >= 1" in capsys.readouterr().err
