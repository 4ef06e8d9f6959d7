"""Hostile inputs of the data sets (:mod:`infoclust.data`): names, sizes, seeds, missing or damaged files.

Issue 22, item 8: chapter 03's ``-p dataset nope`` named the inner ``names``.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from test_hostile_common import case, collect, shape_is, works, strict_test, refused

from infoclust.data import load_dataset, load_first_available, read_idx


def test_an_unknown_data_set_is_named_as_the_dataset():
    with refused("dataset='nope'", "mnist5k"):
        load_first_available(["nope"])  # what chapter 03 passes for -p dataset nope


pytestmark = pytest.mark.usefixtures("one_thread")

#: The files the cases write (removed when the tests end).
TMP = Path(tempfile.mkdtemp(prefix="hostile_data_"))
atexit.register(shutil.rmtree, TMP, ignore_errors=True)


def _idx(path: Path, array: np.ndarray, truncate: int = 0) -> None:
    dims = array.shape
    data = bytes([0, 0, 8, len(dims)]) + b"".join(int(d).to_bytes(4, "big") for d in dims) + array.tobytes()
    path.write_bytes(data[: len(data) - truncate] if truncate else data)


def idx_folder(n_train: int = 20, n_test: int = 10, truncate: str = "", missing: str = "") -> Path:
    """A folder in torchvision's MNIST layout with tiny IDX files (one truncated or missing if asked)."""
    root = Path(tempfile.mkdtemp(dir=TMP))
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        for kind, arr in (
            ("images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)),
            ("labels-idx1-ubyte", rng.integers(0, 10, n, dtype=np.uint8)),
        ):
            name = f"{split}-{kind}"
            if name != missing:
                _idx(raw / name, arr, truncate=100 if name == truncate else 0)
    return root


def _cases() -> None:
    ld = load_dataset
    case("data-name-case", lambda: ld("MNIST"), "dataset name ~mnist")
    case("data-name-unknown", lambda: ld("imagenet"), "dataset name")
    case("data-n-zero", lambda: ld("digits", n=0), "n")
    case("data-n-negative", lambda: ld("digits", n=-5), "n")
    case("data-n-float", lambda: ld("digits", n=2.5), "n")
    case("data-n-string", lambda: ld("digits", n="100"), "n")
    case("data-n-too-many", lambda: ld("digits", n=10**6), "n")
    case("data-seed-none", lambda: ld("digits", n=10, seed=None), "seed")
    case("data-seed-negative", lambda: ld("digits", n=10, seed=-1), "seed")
    case("data-seed-string", lambda: ld("digits", n=10, seed="0"), "seed")
    case("data-download-string", lambda: ld("digits", download="no"), "download")
    case(
        "data-mnist-missing",
        lambda: ld("mnist", root=Path(tempfile.mkdtemp(dir=TMP))),
        "~not available ~mnist",
        exc="DatasetUnavailable",
    )
    case(
        "data-mnist-label-file-missing",
        lambda: ld("mnist", root=idx_folder(missing="t10k-labels-idx1-ubyte")),
        "~not available ~t10k-labels",
        exc="DatasetUnavailable",
    )
    case(
        "data-mnist-truncated-images",
        lambda: ld("mnist", root=idx_folder(truncate="train-images-idx3-ubyte")),
        "~train-images-idx3-ubyte",
        exc="DatasetUnavailable",
        also=("delete",),
    )
    case(
        "data-mnist-truncated-labels",
        lambda: ld("mnist", root=idx_folder(truncate="t10k-labels-idx1-ubyte")),
        "~t10k-labels-idx1-ubyte",
        exc="DatasetUnavailable",
        also=("delete",),
    )
    works("data-mnist-idx-files", lambda: ld("mnist", root=idx_folder()), shape_is(30, 1, 28, 28))
    case(
        "data-root-is-a-file",
        lambda: ld("mnist", root=__file__),
        "root ~not a folder ~directory",
        exc="DatasetUnavailable",
    )

    def truncated_idx():
        path = TMP / "trunc-images-idx3-ubyte"
        _idx(path, np.zeros((5, 28, 28), np.uint8), truncate=50)
        return read_idx(path)

    def empty_idx():
        path = TMP / "empty-idx"
        path.write_bytes(b"")
        return read_idx(path)

    def not_idx():
        path = TMP / "notidx.txt"
        path.write_text("hello, world")
        return read_idx(path)

    case(
        "data-read_idx-truncated",
        truncated_idx,
        "~trunc-images-idx3-ubyte",
        also=("delete",),
        exc="ValueError",
    )
    case("data-read_idx-empty", empty_idx, "~empty-idx", exc="ValueError")
    case("data-read_idx-not-idx", not_idx, "~notidx.txt", exc="ValueError")
    case(
        "data-read_idx-missing",
        lambda: read_idx(TMP / "no-such-file"),
        "~no-such-file",
        exc="FileNotFoundError",
    )


CASES = collect(_cases)
test_hostile_input = strict_test(CASES)
