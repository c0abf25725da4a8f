"""Tests of inpca.files: the atomic write, HDF5 files written and opened, labels as text, TSV tables."""

import h5py
import numpy as np
import pandas as pd
import pytest

from inpca.errors import RunFileError
from inpca.files import atomic_path, create, h5_reason, open_h5, read_table, text, text_of, write_h5, write_table
from inpca.folders import STUDY_MARKER


# ----------------------------------------------------------------------------- atomic_path

def test_atomic_path_renames_the_temporary_file_on_success(tmp_path):
    path = tmp_path / "new" / "folder" / "table.tsv"  # parents are made
    with atomic_path(path) as tmp:
        assert tmp == path.with_name("table.tsv.tmp")
        assert tmp.parent.is_dir()
        tmp.write_text("done\n")
        assert not path.exists(), "the final path must not appear before the body finishes"
    assert path.read_text() == "done\n"
    assert not tmp.exists()


def test_atomic_path_leaves_no_partial_file_when_the_body_raises(tmp_path):
    path = tmp_path / "out.h5"
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"half a file")
            raise RuntimeError("killed")
    assert not path.exists()
    assert not tmp.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_the_old_file_when_the_new_one_fails(tmp_path):
    path = tmp_path / "runs.tsv"
    path.write_text("old\n")
    with pytest.raises(KeyError):
        with atomic_path(path) as tmp:
            tmp.write_text("new but broken")
            raise KeyError("x")
    assert path.read_text() == "old\n"
    assert not tmp.exists()


def test_atomic_path_replaces_an_existing_file(tmp_path):
    path = tmp_path / "runs.tsv"
    path.write_text("old\n")
    with atomic_path(path) as tmp:
        tmp.write_text("new\n")
    assert path.read_text() == "new\n"


def test_atomic_path_body_that_writes_nothing_is_an_error_and_leaves_nothing(tmp_path):
    """A body that never creates the temporary file: the rename fails (FileNotFoundError), no file appears."""
    path = tmp_path / "x.h5"
    with pytest.raises(FileNotFoundError):
        with atomic_path(path):
            pass
    assert not path.exists()


# ----------------------------------------------------------------------------- write_h5 / open_h5

def fill_example(f):
    create(f, "probs", np.arange(24, dtype=np.float32).reshape(2, 3, 4), chunks=(1, 3, 4))
    create(f, "step", np.array([0, 10], dtype=np.int64))
    create(f, "empty", shape=(0,), dtype=np.float64)
    f.attrs["run_id"] = "abc"
    f.attrs["num_classes"] = 4


def test_write_h5_and_open_h5_round_trip(tmp_path):
    path = tmp_path / "sub" / "a.h5"
    write_h5(path, fill_example)
    assert not path.with_name("a.h5.tmp").exists()
    with open_h5(path) as f:
        np.testing.assert_array_equal(f["probs"][()], np.arange(24, dtype=np.float32).reshape(2, 3, 4))
        assert f["probs"].dtype == np.float32 and f["probs"].chunks == (1, 3, 4)
        np.testing.assert_array_equal(f["step"][()], [0, 10])
        assert f["empty"].shape == (0,)
        assert text_of(f.attrs["run_id"]) == "abc"
        assert int(f.attrs["num_classes"]) == 4
        assert f.mode == "r"


def test_open_h5_passes_options_to_h5py(tmp_path):
    path = tmp_path / "a.h5"
    write_h5(path, fill_example)
    with open_h5(path, rdcc_nbytes=1 << 20) as f:
        assert f.id.get_access_plist().get_cache()[2] == 1 << 20


def test_identical_content_gives_bit_identical_files(tmp_path):
    """No timestamps (create's track_times=False): CPU runs must give byte-identical files."""
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    write_h5(a, fill_example)
    import time

    time.sleep(1.1)  # a timestamp, if one were stored, would differ
    write_h5(b, fill_example)
    assert a.read_bytes() == b.read_bytes()


def test_create_sets_no_timestamps(tmp_path):
    path = tmp_path / "a.h5"

    def fill(f):
        fill_example(f)
        f.create_dataset("control", data=np.zeros(2), track_times=True)  # what a timestamp looks like

    write_h5(path, fill)
    with h5py.File(path, "r") as f:
        assert h5py.h5o.get_info(f["control"].id).ctime > 0
        for name in ("probs", "step", "empty"):
            assert h5py.h5o.get_info(f[name].id).ctime == 0, name


def test_write_h5_leaves_no_file_when_fill_raises(tmp_path):
    path = tmp_path / "a.h5"

    def fill(f):
        create(f, "x", np.zeros(3))
        raise ValueError("bad content")

    with pytest.raises(ValueError, match="bad content"):
        write_h5(path, fill)
    assert list(tmp_path.iterdir()) == []


def assert_one_line_naming(exc_info, path):
    message = str(exc_info.value)
    assert "\n" not in message, message
    assert message.startswith(f"{path}: "), message
    return message


def test_open_h5_refuses_a_missing_file(tmp_path):
    path = tmp_path / "missing.h5"
    with pytest.raises(RunFileError) as exc_info:
        open_h5(path)
    assert assert_one_line_naming(exc_info, path) == f"{path}: file does not exist"


def test_open_h5_refuses_a_folder(tmp_path):
    path = tmp_path / "run.h5"
    path.mkdir()
    with pytest.raises(RunFileError) as exc_info:
        open_h5(path)
    assert assert_one_line_naming(exc_info, path) == f"{path}: a folder, not an HDF5 file"


def test_open_h5_calls_a_partial_folder_a_recording_in_progress(tmp_path):
    path = tmp_path / "run.h5.partial"
    path.mkdir()
    with pytest.raises(RunFileError) as exc_info:
        open_h5(path)
    message = assert_one_line_naming(exc_info, path)
    assert "a recording in progress" in message


def test_open_h5_refuses_a_file_that_is_not_hdf5(tmp_path):
    path = tmp_path / "garbage.h5"
    path.write_bytes(b"this is not an HDF5 file\n" * 100)
    with pytest.raises(RunFileError) as exc_info:
        open_h5(path)
    message = assert_one_line_naming(exc_info, path)
    assert "not a readable HDF5 file" in message
    assert "signature" in message, "HDF5's reason (file signature not found) belongs in the line"
    assert "nothing rebuilds it" in message, "outside a study: no promise of a rerun"
    assert exc_info.value.__cause__ is None and exc_info.value.__suppress_context__


def test_open_h5_refuses_a_truncated_file_inside_a_study_with_a_rebuild_command(tmp_path, monkeypatch):
    folder = tmp_path / "results"
    (folder / "runs").mkdir(parents=True)
    (folder / STUDY_MARKER).write_text("config.yaml\n")
    monkeypatch.chdir(tmp_path)
    path = folder / "runs" / "abc.h5"
    write_h5(path, lambda f: create(f, "x", np.random.default_rng(0).random((200, 200))))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RunFileError) as exc_info:
        open_h5(path)
    message = assert_one_line_naming(exc_info, path)
    assert "truncated" in message
    assert f"rm {path} && " in message and "--cores all" in message


def test_open_h5_refuses_an_empty_file(tmp_path):
    path = tmp_path / "empty.h5"
    path.write_bytes(b"")
    with pytest.raises(RunFileError) as exc_info:
        open_h5(path)
    assert "not a readable HDF5 file" in assert_one_line_naming(exc_info, path)


def test_h5_reason_takes_the_detail_in_parentheses():
    exc = OSError("Unable to synchronously open file (truncated file: eof = 96, sblock->base_addr = 0)")
    assert h5_reason(exc) == "truncated file: eof = 96, sblock->base_addr = 0"
    assert h5_reason(OSError("no parentheses here")) == "no parentheses here"
    assert h5_reason(OSError()) == "unreadable"


# ----------------------------------------------------------------------------- text

def test_text_reads_labels_stored_as_bytes_or_str(tmp_path):
    path = tmp_path / "labels.h5"
    write_h5(path, lambda f: (create(f, "run", np.array([b"a1", b"007", b"e5"])),
                              f.attrs.__setitem__("kind", "grid")))
    with open_h5(path) as f:
        assert text(f["run"][()]) == ["a1", "007", "e5"]
        assert text_of(f.attrs["kind"]) == "grid"
        assert text_of(f["run"][1]) == "007"


def test_text_of_unwraps_zero_dimensional_arrays_and_numbers():
    assert text_of(np.array(b"abc")) == "abc"
    assert text_of(np.array("xyz")) == "xyz"
    assert text_of(np.bytes_(b"q")) == "q"
    assert text_of(3) == "3"
    assert text([b"x", "y", np.array(b"z")]) == ["x", "y", "z"]


# ----------------------------------------------------------------------------- tables

def test_write_table_and_read_table_round_trip_with_six_significant_digits(tmp_path):
    table = pd.DataFrame({
        "run": ["007", "1e5", "abc"],          # labels that look like numbers stay text
        "kind": ["grid", "grid", "imported"],
        "value": [1.23456789, 123456.789, 1.0e-9 / 3],
        "steps": [1, 20, 300],
    })
    path = tmp_path / "tables" / "runs.tsv"
    write_table(table, path)
    assert not path.with_name("runs.tsv.tmp").exists()
    lines = path.read_text().splitlines()
    assert lines[0] == "run\tkind\tvalue\tsteps"
    assert lines[1] == "007\tgrid\t1.23457\t1"
    back = read_table(path)
    assert list(back["run"]) == ["007", "1e5", "abc"]
    assert all(isinstance(v, str) for v in back["run"]) and pd.api.types.is_string_dtype(back["run"])
    np.testing.assert_allclose(back["value"], table["value"], rtol=5e-6)
    assert back["value"][1] == 123457.0
    assert back["steps"].dtype == np.int64 and list(back["steps"]) == [1, 20, 300]


@pytest.mark.parametrize("column", ["run", "kind", "block", "arch", "optimizer", "configuration"])
def test_read_table_keeps_every_label_column_as_text(tmp_path, column):
    path = tmp_path / "t.tsv"
    path.write_text(f"{column}\tx\n0012\t1.5\n3e2\t2\n")
    back = read_table(path)
    assert list(back[column]) == ["0012", "3e2"]
    assert all(isinstance(v, str) for v in back[column])
    assert back["x"].dtype == np.float64


def test_write_table_keeps_the_old_table_when_writing_fails(tmp_path):
    path = tmp_path / "runs.tsv"
    write_table(pd.DataFrame({"run": ["a"], "value": [1.0]}), path)

    class Unprintable:
        def __str__(self):
            raise RuntimeError("cannot format this cell")

    # a long table whose last cell fails: pandas has written earlier rows to the temporary file by then
    broken = pd.DataFrame({"run": [f"r{i}" for i in range(200_000)] + [Unprintable()]})
    with pytest.raises(RuntimeError, match="cannot format this cell"):
        write_table(broken, path)
    assert list(read_table(path)["run"]) == ["a"]
    assert not path.with_name("runs.tsv.tmp").exists()


def test_write_table_nan_round_trips(tmp_path):
    path = tmp_path / "t.tsv"
    write_table(pd.DataFrame({"run": ["a", "b"], "value": [np.nan, 0.5]}), path)
    back = read_table(path)
    assert np.isnan(back["value"][0]) and back["value"][1] == 0.5
