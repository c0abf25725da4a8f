"""HDF5 input and output shared by every stage, and the one atomic-write helper.

- :func:`atomic_path`: a file appears at its final path complete or not at all: the writer writes
  ``<path>.tmp`` and renames it (a killed job leaves no file that looks finished). Used for HDF5
  files, the training state (``torch.save``) and the TSV tables.
- :func:`write_h5`: an HDF5 file through :func:`atomic_path`.
- :func:`create`: a dataset without timestamps, so identical content gives bit-identical files.
- :func:`open_h5`: open for reading; a missing, truncated or corrupt file becomes one line that
  names the file and a command that rebuilds it.
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


def create(f, name: str, data, chunks=None) -> None:
    """A dataset without timestamps (bit-identical files for identical content)."""
    f.create_dataset(name, data=data, track_times=False, chunks=chunks)


def open_h5(path: str | Path, **options):
    """Open an HDF5 file for reading, turning a missing/truncated/corrupt file into one line;
    `options` go to h5py.File (e.g. rdcc_nbytes)."""
    h5py = _h5py()
    path = Path(path)
    if not path.exists():
        raise RunFileError(f"{path}: file does not exist")
    try:
        return h5py.File(path, "r", locking=False, **options)
    except OSError as exc:
        raise RunFileError(f"{path}: not a readable HDF5 file ({h5_reason(exc)}); truncated or corrupted? "
                           + rebuild_hint(path)) from None


def h5_reason(exc: OSError) -> str:
    """HDF5's detail ('truncated file: eof = ...', 'file signature not found') without the prefix."""
    text = str(exc)
    if "(" in text and text.rstrip().endswith(")"):
        return text[text.index("(") + 1:text.rstrip().rindex(")")]
    return text or "unreadable"
