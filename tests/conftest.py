"""Shared fixtures: chapters executed once per session with the smoke profile."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from infoclust.book.catalogue import ROOT
from infoclust.book.runs import execute_chapter
from infoclust.data import load_dataset
from infoclust.utils import NUM_THREADS_ENV, num_threads

SMOKE_DIR = ROOT / "_build" / "smoke"
_executed: dict[str, Path | BaseException] = {}


def execute_smoke(chapter: str) -> Path:
    """Execute ``chapter`` with the smoke profile once per session; re-raise its failure."""
    if chapter not in _executed:
        try:
            _executed[chapter] = execute_chapter(chapter, "smoke", SMOKE_DIR)
        except Exception as err:  # remembered, so that every test that needs it fails
            _executed[chapter] = err
    result = _executed[chapter]
    if isinstance(result, BaseException):
        raise result
    return result


def pytest_configure(config) -> None:
    """Under pytest-xdist (``make test``), each worker gets its share of the CPUs.

    ``$INFOCLUST_NUM_THREADS`` (read by chapters' kernels, run_arms and the build) and this
    process's torch threads become the CPUs over the workers, at least one, unless the variable
    is set: two workers with two threads each on two cores would only fight over them.
    """
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers:
        return
    if NUM_THREADS_ENV not in os.environ:  # num_threads() is then the CPUs this process may use
        os.environ[NUM_THREADS_ENV] = str(max(1, num_threads() // int(workers)))
    torch.set_num_threads(num_threads())


#: Test modules that take minutes; run first, so that no worker waits for one at the end.
SLOW_FIRST = ("test_full_profile_iic.py", "test_distributed.py", "test_build.py")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups off the markers
def pytest_collection_modifyitems(items) -> None:
    """Tests that read the smoke chapters share one xdist worker (``--dist loadgroup``), so that
    each chapter is executed once per session, not once per worker; they and the slow modules
    go first."""
    for item in items:
        if "smoke" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("smoke"))

    def rank(item) -> int:
        if item.get_closest_marker("xdist_group"):
            return 0
        name = item.path.name
        return 1 + SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST) + 1

    items.sort(key=rank)  # stable: the order within each rank stays


def pytest_collection_finish(session) -> None:
    """Under ``--dist loadgroup`` a grouped test's id ends in ``@<group>``; if this pytest and
    pytest-xdist lose the groups, the workers would build the smoke chapters side by side in one
    folder (``BuildLocked``): stop with the cause instead."""
    if not session.config.getoption("loadgroup", False):
        return
    lost = [i.nodeid for i in session.items if i.get_closest_marker("xdist_group") and "@" not in i.nodeid]
    if lost:
        raise pytest.UsageError(
            f"pytest-xdist's groups were not applied ({lost[0]} has none): this pytest "
            f"({pytest.__version__}) and pytest-xdist do not work together; install the test extra's versions"
        )


@pytest.fixture(scope="session")
def smoke() -> Callable[[str], Path]:
    return execute_smoke


#: Images in the tiny MNIST of ``mnist_root``: 600 "train" and 100 "t10k", real digits (mnist5k's first 700).
N_TRAIN, N_TEST = 600, 100


def _write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    """A ``data_root`` holding a tiny MNIST as torchvision expects it: ``MNIST/raw/*-ubyte``."""
    x, y = load_dataset("mnist5k", n=N_TRAIN + N_TEST, seed=0)
    images = (x[:, 0] * 255).round().numpy().astype(np.uint8)
    labels = y.numpy().astype(np.uint8)
    root = tmp_path_factory.mktemp("data")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, part in (("train", slice(0, N_TRAIN)), ("t10k", slice(N_TRAIN, None))):
        _write_idx(raw / f"{split}-images-idx3-ubyte", images[part])
        _write_idx(raw / f"{split}-labels-idx1-ubyte", labels[part])
    return root


@pytest.fixture
def one_thread():
    """Torch on one thread for the test: tiny cases run faster so, and fairer to a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
