"""The files of a study, read and written in one way: HDF5 files, TSV tables and the atomic write.

- :func:`atomic_path`: a file appears at its final path complete or not at all: the writer writes
  ``<path>.tmp`` and renames it (a killed job leaves no file that looks finished). Every file the
  pipeline writes goes through it: HDF5 files, tables, figures, the training state (``torch.save``).
- :func:`write_h5`: an HDF5 file through :func:`atomic_path`.
- :func:`create`: a dataset without timestamps, so identical content gives bit-identical files.
- :func:`open_h5`: open for reading; a missing, truncated or corrupt file becomes one line that
  names the file and a command that rebuilds it.
- :func:`text`: labels stored as bytes (run ids, kinds) read back as str.
- :func:`read_table`, :func:`write_table`: a study's TSV tables (index.tsv, runs.tsv, the analyses'
  tables) as pandas DataFrames; columns that are labels stay text even when they look like numbers.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .errors import RunFileError, rebuild_hint



def _h5py():
    import h5py

    return h5py


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; on success rename it to `path`, on failure delete it."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_h5(path: str | Path, fill) -> None:
    """Create the HDF5 file `path` atomically; `fill(h5file)` writes the content."""
    h5py = _h5py()
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", track_order=False) as f:
            fill(f)


def create(f, name: str, data=None, **options):
    """A dataset without timestamps (bit-identical files for identical content): every dataset the
    project writes is made here. `options` go to h5py (shape, dtype, chunks, ...); returns the dataset."""
    return f.create_dataset(name, data=data, track_times=False, **options)


def text(values) -> list[str]:
    """Labels as stored in HDF5 (bytes, str, or 0-d arrays of them) as a list of str: run ids, kinds, ..."""
    return [text_of(v) for v in values]


def text_of(value) -> str:
    """One label or attribute as str (see :func:`text`)."""
    if getattr(value, "shape", None) == () and hasattr(value, "item"):
        value = value.item()
    return value.decode() if isinstance(value, bytes) else str(value)


def open_h5(path: str | Path, **options):
    """Open an HDF5 file for reading, turning a missing/truncated/corrupt file into one line;
    `options` go to h5py.File (e.g. rdcc_nbytes)."""
    h5py = _h5py()
    path = Path(path)
    if not path.exists():
        raise RunFileError(f"{path}: file does not exist")
    if path.is_dir():  # HDF5 would say "file read failed" with a timestamp and errno 21
        raise RunFileError(f"{path}: a folder, not an HDF5 file"
                           + ("; a recording in progress: read it when it is finished" if path.suffix == ".partial"
                              else ""))
    try:
        return h5py.File(path, "r", locking=False, **options)
    except OSError as exc:
        raise RunFileError(f"{path}: not a readable HDF5 file ({h5_reason(exc)}); truncated or corrupted? "
                           + rebuild_hint(path)) from None


# Columns that are labels even when they look like numbers (a run id of hex digits, a block name).
LABEL_COLUMNS = ("run", "kind", "block", "arch", "optimizer", "configuration")


def read_table(path):
    """A TSV table of a study (index.tsv, runs.tsv, an analysis table) as a pandas DataFrame."""
    import pandas as pd

    return pd.read_csv(path, sep="\t", dtype={column: str for column in LABEL_COLUMNS})


def write_table(table, path) -> None:
    """A DataFrame as a study's TSV table, atomically (6 significant digits for floats)."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")


def h5_reason(exc: OSError) -> str:
    """HDF5's detail ('truncated file: eof = ...', 'file signature not found') without the prefix."""
    text = str(exc)
    if "(" in text and text.rstrip().endswith(")"):
        return text[text.index("(") + 1:text.rstrip().rindex(")")]
    return text or "unreadable"
