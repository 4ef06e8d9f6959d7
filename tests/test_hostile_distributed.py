"""Hostile inputs of fit_in_processes and spawn (issue 22, item 8): refused before any process starts.

``threads=0`` or a non-estimator failed only inside the children, and a lambda ``g`` with
"Can't pickle local object"; each is now refused here, naming the argument, at once.
"""

from __future__ import annotations

import time

import pytest
import torch
from test_hostile_common import refused

from infoclust.distributed import fit_in_processes, spawn
from infoclust.iic import IIC

X = torch.rand(8, 1, 8, 8)


@pytest.fixture(autouse=True)
def _at_once():
    start = time.perf_counter()
    yield
    assert time.perf_counter() - start < 5, "refused only after processes started"


@pytest.mark.parametrize("threads", [0, -1, 1.5, "2"])
def test_threads(threads):
    with refused("threads"):
        fit_in_processes(IIC(2, epochs=1, trunk="small"), X, threads=threads)


@pytest.mark.parametrize("estimator", [object(), "IIC", None])
def test_not_an_estimator(estimator):
    with refused("estimator"):
        fit_in_processes(estimator, X)


def test_a_lambda_g():
    with refused("g=", "top level"):
        fit_in_processes(IIC(2, epochs=1, trunk="small", g=lambda b: b.flip(-1)), X)


def test_spawn_a_local_function():
    def local(*args):
        return None

    with refused("fn", "top level"):
        spawn(local, 2)
