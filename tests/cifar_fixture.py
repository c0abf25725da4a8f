"""Write a tiny CIFAR-10 directory in the real on-disk format, for tests (no download).

Usage from a test (tests/ is not a package, so put this directory on sys.path)::

    import sys, pathlib
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # from tests/unit/
    from cifar_fixture import write_tiny_cifar10

    root = write_tiny_cifar10(tmp_path / "cifar")   # -> pass as dataset.data_dir
    ds = inpca.data.load_dataset({"name": "cifar10", "data_dir": str(root)})

Format.  The official ``cifar-10-python.tar.gz`` extracts to ``cifar-10-batches-py/`` holding
``data_batch_1..5``, ``test_batch`` and ``batches.meta``: Python 2 pickles (protocol 2) of dicts
whose keys are Python 2 ``str`` -- i.e. byte strings.  Loaded in Python 3 with
``encoding="bytes"`` the keys read as ``b"data"``, ``b"labels"``, ...; loaded the way torchvision
does (``encoding="latin1"``) they read as ``"data"``, ``"labels"``.  A Python 3 ``bytes`` key
would stay ``bytes`` under latin1 and torchvision would fail with ``KeyError: 'data'``, so this
writer emits Python-2 string opcodes (``SHORT_BINSTRING``/``BINSTRING``) for keys and string
values, exactly like the real files.  ``b"data"`` is uint8 (n, 3072) (row = 1024 R, 1024 G,
1024 B values of a 32x32 image, row-major), ``b"labels"`` a list of ints in 0..9.

The md5 sums differ from the real files; inpca.data's CIFAR loader checks existence and
readability instead of md5 (see ``inpca.data._cifar_class``).
"""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))


class _Py2Str(bytes):
    """Marks a byte string to be pickled as a Python 2 ``str``."""


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler lets us add an opcode writer
    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2str(self, obj: _Py2Str) -> None:
        data = bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[_Py2Str] = _save_py2str


def _dump(obj: object, path: Path) -> None:
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


def _s(text: str) -> _Py2Str:
    return _Py2Str(text.encode("ascii"))


def _batch(label: str, x: np.ndarray, y: np.ndarray, start: int) -> dict:
    return {
        _s("batch_label"): _s(label),
        _s("labels"): [int(v) for v in y],
        _s("data"): np.ascontiguousarray(x, dtype=np.uint8),
        _s("filenames"): [_s(f"tiny_{start + i:06d}.png") for i in range(len(y))],
    }


def tiny_cifar10_arrays(n_train: int = 50, n_test: int = 20, seed: int = 0):
    """The arrays :func:`write_tiny_cifar10` writes: (x_train, y_train, x_test, y_test) with x
    uint8 NCHW (n, 3, 32, 32) and y int64, train in data_batch_1..5 order."""
    rng = np.random.default_rng(seed)
    out = []
    for n in (n_train, n_test):
        x = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        y = np.resize(np.arange(10, dtype=np.int64), n)
        rng.shuffle(y)
        out += [x, y]
    return tuple(out)


def write_tiny_cifar10(root, n_train: int = 50, n_test: int = 20, seed: int = 0) -> Path:
    """Create ``root/cifar-10-batches-py/`` with ``n_train`` train images split over
    data_batch_1..5 (as evenly as possible) and ``n_test`` test images; returns ``root``.

    The images are random uint8; the labels cycle through all 10 classes (shuffled), so every
    class occurs once n >= 10.  The same (n_train, n_test, seed) always writes the same bytes.
    """
    root = Path(root)
    folder = root / "cifar-10-batches-py"
    os.makedirs(folder, exist_ok=True)
    x_train, y_train, x_test, y_test = tiny_cifar10_arrays(n_train, n_test, seed)
    flat_train = x_train.reshape(n_train, 3072)
    bounds = np.linspace(0, n_train, len(TRAIN_FILES) + 1).round().astype(int)
    for i, name in enumerate(TRAIN_FILES):
        a, b = bounds[i], bounds[i + 1]
        _dump(_batch(f"training batch {i + 1} of 5", flat_train[a:b], y_train[a:b], a), folder / name)
    _dump(_batch("testing batch 1 of 1", x_test.reshape(n_test, 3072), y_test, 0), folder / "test_batch")
    per_batch = int(bounds[1] - bounds[0])
    _dump(
        {_s("num_cases_per_batch"): per_batch, _s("label_names"): [_s(c) for c in CLASSES], _s("num_vis"): 3072},
        folder / "batches.meta",
    )
    return root
