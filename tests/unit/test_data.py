"""Unit tests for inpca.data: digits, synthetic, tiny CIFAR-10, the study's recorded samples, and their errors."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from inpca.data import CIFAR10_MEAN, CIFAR10_STD, Dataset, DatasetError, load_dataset, load_study_dataset
from inpca.errors import ConfigError, InpcaError
from inpca.testing import tiny_cifar10_arrays, write_tiny_cifar10

# ------------------------------------------------------------------------------------------
# digits
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load_dataset({"name": "digits", "test_fraction": 0.25, "split_seed": 0})


def test_digits_shapes_and_types(digits):
    assert digits.name == "digits"
    assert digits.is_image and digits.num_classes == 10 and digits.input_shape == (1, 8, 8)
    assert digits.n_train + digits.n_test == 1797
    assert (digits.n_train, digits.n_test) == (1347, 450)
    assert digits.x_train.shape == (1347, 1, 8, 8) and digits.x_test.shape == (450, 1, 8, 8)
    assert digits.x_train.dtype == np.uint8 and digits.y_train.dtype == np.int64
    assert digits.y_train.shape == (1347,) and digits.y_test.shape == (450,)
    assert digits.x_train.max() == 255 and digits.x_train.min() == 0
    assert set(np.unique(digits.y_train)) == set(range(10))


def test_digits_stratified(digits):
    from sklearn.datasets import load_digits

    y = load_digits().target
    total = np.bincount(y, minlength=10)
    test = np.bincount(digits.y_test, minlength=10)
    assert np.all(np.abs(test - 0.25 * total) <= 1)
    assert np.array_equal(np.bincount(digits.y_train, minlength=10) + test, total)


def test_digits_pixels_and_fixed_order(digits):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    raw = load_digits()
    idx = np.arange(len(raw.target))
    tr, te = train_test_split(idx, test_size=0.25, stratify=raw.target, random_state=0)
    tr, te = np.sort(tr), np.sort(te)
    expect = np.rint(raw.images * 255 / 16).astype(np.uint8)[:, None]
    assert np.array_equal(digits.x_train, expect[tr]) and np.array_equal(digits.y_train, raw.target[tr])
    assert np.array_equal(digits.x_test, expect[te]) and np.array_equal(digits.y_test, raw.target[te])


def test_digits_mean_std_from_train(digits):
    xs = digits.x_train.astype(np.float64) / 255
    assert len(digits.mean) == len(digits.std) == 1
    assert digits.mean[0] == pytest.approx(xs.mean()) and digits.std[0] == pytest.approx(xs.std())


def test_digits_fingerprint(digits):
    again = load_dataset({"name": "digits", "test_fraction": 0.25, "split_seed": 0})
    assert again.fingerprint == digits.fingerprint
    assert len(digits.fingerprint) == 16 and int(digits.fingerprint, 16) >= 0
    assert load_dataset({"name": "digits", "split_seed": 1}).fingerprint != digits.fingerprint
    assert load_dataset({"name": "digits", "test_fraction": 0.2}).fingerprint != digits.fingerprint
    # defaults are test_fraction 0.25, split_seed 0
    assert load_dataset({"name": "digits"}).fingerprint == digits.fingerprint


def _replace(ds: Dataset, **kw) -> Dataset:
    fields = dict(
        name=ds.name, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test,
        num_classes=ds.num_classes, input_shape=ds.input_shape, is_image=ds.is_image, mean=ds.mean, std=ds.std,
    )
    fields.update(kw)
    return Dataset(**fields)


def test_fingerprint_sees_order_labels_and_name(digits):
    assert _replace(digits).fingerprint == digits.fingerprint
    # swap two train samples that share a label: labels unchanged, order changed
    i, j = np.flatnonzero(digits.y_train == 3)[:2]
    perm = np.arange(digits.n_train)
    perm[[i, j]] = [j, i]
    assert np.array_equal(digits.y_train[perm], digits.y_train)
    assert _replace(digits, x_train=digits.x_train[perm]).fingerprint != digits.fingerprint
    y = digits.y_test.copy()
    y[0] = (y[0] + 1) % 10
    assert _replace(digits, y_test=y).fingerprint != digits.fingerprint
    assert _replace(digits, name="digits2").fingerprint != digits.fingerprint
    assert _replace(digits, x_train=digits.x_train[1:], y_train=digits.y_train[1:]).fingerprint != digits.fingerprint


# ------------------------------------------------------------------------------------------
# synthetic
# ------------------------------------------------------------------------------------------

SYN = {"name": "synthetic", "n_train": 1000, "n_test": 200, "num_classes": 10, "input_shape": [20], "seed": 0}


def test_synthetic_vector():
    ds = load_dataset(SYN)
    assert not ds.is_image and ds.input_shape == (20,) and ds.num_classes == 10
    assert ds.x_train.shape == (1000, 20) and ds.x_test.shape == (200, 20)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.mean == (0.0,) and ds.std == (1.0,)
    assert np.allclose(ds.x_train.mean(0), 0, atol=1e-5) and np.allclose(ds.x_train.std(0), 1, atol=1e-4)
    counts = np.bincount(ds.y_train, minlength=10)
    assert counts.min() >= 50  # roughly balanced, every class present
    assert ds.y_train.max() < 10 and ds.y_test.min() >= 0


def test_synthetic_deterministic_and_seeded():
    a, b = load_dataset(SYN), load_dataset(dict(SYN))
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert a.fingerprint == b.fingerprint
    c = load_dataset({**SYN, "seed": 1})
    assert c.fingerprint != a.fingerprint and not np.array_equal(c.y_train, a.y_train)


def test_synthetic_is_learnable_but_not_linear():
    from sklearn.linear_model import LogisticRegression

    ds = load_dataset(SYN)
    acc = LogisticRegression(max_iter=500).fit(ds.x_train, ds.y_train).score(ds.x_test, ds.y_test)
    assert 0.3 < acc < 0.95


def test_synthetic_images():
    ds = load_dataset({**SYN, "input_shape": [3, 8, 8], "num_classes": 4, "n_train": 40, "n_test": 12})
    assert ds.is_image and ds.input_shape == (3, 8, 8)
    assert ds.x_train.shape == (40, 3, 8, 8) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (12, 3, 8, 8)
    assert np.array_equal(np.bincount(ds.y_train, minlength=4) + np.bincount(ds.y_test, minlength=4), [13, 13, 13, 13])
    assert len(ds.mean) == len(ds.std) == 3 and all(0 < s < 1 for s in ds.std)
    again = load_dataset({**SYN, "input_shape": [3, 8, 8], "num_classes": 4, "n_train": 40, "n_test": 12})
    assert again.fingerprint == ds.fingerprint


def test_synthetic_images_work_with_conv_net():
    from inpca.models import build_model

    ds = load_dataset({**SYN, "input_shape": [1, 8, 8], "n_train": 16, "n_test": 10})
    model = build_model({"name": "allcnn", "width": 0.1}, ds.input_shape, ds.num_classes)
    mean = torch.tensor(ds.mean).view(1, -1, 1, 1)
    std = torch.tensor(ds.std).view(1, -1, 1, 1)
    out = model((torch.from_numpy(ds.x_train).float() / 255 - mean) / std)
    assert out.shape == (16, 10)


# ------------------------------------------------------------------------------------------
# spec errors
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec,field",
    [
        ({"name": "mnist"}, "name"),
        ({"name": "digits", "test_fraction": 1.5}, "test_fraction"),
        ({"name": "digits", "split_seed": -1}, "split_seed"),
        ({"name": "digits", "subsample": 10}, "subsample"),
        ({"name": "digits", "n_train": 100}, "n_train"),  # a key of another data set
        ({"name": "synthetic", "input_shape": [3, 8]}, "input_shape"),
        ({"name": "synthetic", "num_classes": 1}, "num_classes"),
        ({"name": "synthetic", "n_train": 0}, "n_train"),
        ({"name": "cifar10", "data_dir": ""}, "data_dir"),
        ({"name": "cifar10", "data_dir": "/x", "download": "yes"}, "download"),
    ],
)
def test_a_spec_the_schema_refuses_is_a_config_error_naming_the_key(spec, field):
    with pytest.raises(ConfigError, match=field) as e:
        load_dataset(spec)
    assert isinstance(e.value, ValueError)
    assert "\n" not in str(e.value)


def test_a_digits_split_too_small_for_every_class_is_a_dataset_error():
    with pytest.raises(DatasetError, match="test_fraction=0.001") as e:
        load_dataset({"name": "digits", "test_fraction": 0.001})
    assert isinstance(e.value, InpcaError) and "\n" not in str(e.value)


def test_the_study_records_every_kth_sample_of_each_split():
    full = load_dataset({"name": "synthetic", "n_train": 100, "n_test": 30})
    recorded = load_study_dataset({"name": "synthetic", "n_train": 100, "n_test": 30, "keep_every": 3})
    assert recorded.name == "synthetic/every3" and (recorded.n_train, recorded.n_test) == (34, 10)
    assert np.array_equal(recorded.x_train, full.x_train[::3]) and np.array_equal(recorded.y_test, full.y_test[::3])
    assert recorded.fingerprint != full.fingerprint
    assert load_study_dataset({"name": "synthetic", "n_train": 100, "n_test": 30}).fingerprint == full.fingerprint


# ------------------------------------------------------------------------------------------
# CIFAR-10 (tiny fixture in the real on-disk format)
# ------------------------------------------------------------------------------------------


@pytest.fixture()
def cifar_root(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    def no_download(self):  # the loader must never download unless asked
        raise AssertionError("download attempted")

    monkeypatch.setattr(CIFAR10, "download", no_download)
    return write_tiny_cifar10(tmp_path / "cifar", n_train=50, n_test=20, seed=0)


def test_fixture_is_in_cifar_format(cifar_root):
    folder = cifar_root / "cifar-10-batches-py"
    assert sorted(os.listdir(folder)) == sorted(
        [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    )
    with open(folder / "data_batch_1", "rb") as f:
        entry = pickle.load(f, encoding="bytes")  # how the real files read with byte keys
    assert entry[b"data"].dtype == np.uint8 and entry[b"data"].shape == (10, 3072)
    assert len(entry[b"labels"]) == 10
    with open(folder / "batches.meta", "rb") as f:
        meta = pickle.load(f, encoding="latin1")  # how torchvision reads them
    assert meta["label_names"][0] == "airplane"


def test_tiny_cifar_loads(cifar_root):
    ds = load_dataset({"name": "cifar10", "data_dir": str(cifar_root), "download": False})
    x_train, y_train, x_test, y_test = tiny_cifar10_arrays(50, 20, 0)
    assert ds.name == "cifar10" and ds.is_image and ds.num_classes == 10 and ds.input_shape == (3, 32, 32)
    assert ds.x_train.shape == (50, 3, 32, 32) and ds.x_test.shape == (20, 3, 32, 32)
    assert ds.x_train.dtype == np.uint8 and ds.x_train.flags["C_CONTIGUOUS"]
    assert ds.y_train.dtype == np.int64
    assert np.array_equal(ds.x_train, x_train) and np.array_equal(ds.y_train, y_train)
    assert np.array_equal(ds.x_test, x_test) and np.array_equal(ds.y_test, y_test)
    assert ds.mean == CIFAR10_MEAN and ds.std == CIFAR10_STD
    assert load_dataset({"name": "cifar10", "data_dir": str(cifar_root)}).fingerprint == ds.fingerprint


def test_tiny_cifar_matches_torchvision_layout(cifar_root):
    """NCHW is torchvision's NHWC .data transposed (checks the channel order of the transposition)."""
    from inpca.data import _cifar_class

    tv = _cifar_class(("test_batch",))(root=str(cifar_root), train=True)
    ds = load_dataset({"name": "cifar10", "data_dir": str(cifar_root)})
    assert np.array_equal(ds.x_test, tv.data.transpose(0, 3, 1, 2))
    assert ds.y_test.tolist() == tv.targets


def test_relative_data_dir_uses_base(cifar_root):
    ds = load_dataset({"name": "cifar10", "data_dir": "cifar"}, data_dir_base=str(cifar_root.parent))
    assert ds.n_train == 50
    with pytest.raises(DatasetError, match="elsewhere"):
        load_dataset({"name": "cifar10", "data_dir": "cifar"}, data_dir_base=str(cifar_root.parent / "elsewhere"))


def _err(root) -> str:
    with pytest.raises(DatasetError) as e:
        load_dataset({"name": "cifar10", "data_dir": str(root)})
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_missing_dir(tmp_path, cifar_root):
    missing = tmp_path / "nowhere"
    msg = _err(missing)
    assert str(missing) in msg and "cifar-10-batches-py" in msg


def test_empty_dir(tmp_path, cifar_root):
    (tmp_path / "empty").mkdir()
    msg = _err(tmp_path / "empty")
    assert str(tmp_path / "empty") in msg and "cifar-10-batches-py/data_batch_1" in msg


@pytest.mark.parametrize("name", ["data_batch_4", "test_batch", "batches.meta"])
def test_missing_file(cifar_root, name):
    (cifar_root / "cifar-10-batches-py" / name).unlink()
    msg = _err(cifar_root)
    assert str(cifar_root) in msg and f"cifar-10-batches-py/{name}" in msg


@pytest.mark.parametrize("name", ["data_batch_2", "test_batch", "batches.meta"])
@pytest.mark.parametrize("how", ["half", "empty", "garbage"])
def test_truncated_or_corrupt_file(cifar_root, name, how):
    path = cifar_root / "cifar-10-batches-py" / name
    data = path.read_bytes()
    path.write_bytes({"half": data[: len(data) // 2], "empty": b"", "garbage": b"\x00not a pickle" * 7}[how])
    msg = _err(cifar_root)
    assert str(path) in msg


def test_wrong_array_size(cifar_root):
    """A well-formed pickle whose data does not hold 32x32x3 images."""
    path = cifar_root / "cifar-10-batches-py" / "data_batch_5"
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    entry["data"] = entry["data"][:, :1000]
    with open(path, "wb") as f:
        pickle.dump(entry, f)
    assert str(path) in _err(cifar_root)
