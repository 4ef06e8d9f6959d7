"""Hostile inputs of the transformations' pool and seeding (issue 22, item 8)."""

from __future__ import annotations

import pytest
import torch
from test_hostile_common import refused

from infoclust.augment import MNISTTransform
from infoclust.transforms import PerturbationPool


def _nan_g(batch: torch.Tensor) -> torch.Tensor:
    out = batch.clone()
    out[0, 0, 0, 0] = float("nan")
    return out


def test_a_pool_of_a_g_that_returns_nan():
    with refused("g", "NaN"):
        PerturbationPool(_nan_g, torch.rand(4, 1, 8, 8), 2, verbose=False)


def _flip(batch: torch.Tensor) -> torch.Tensor:
    return batch.flip(-1)


@pytest.mark.parametrize("make", [MNISTTransform, lambda: PerturbationPool(_flip, torch.rand(4, 1, 8, 8), 2)])
def test_with_seed_on_a_generator(make):
    # a generator would be shared by every copy, so their draws would depend on each other
    generator = torch.Generator().manual_seed(0)
    g = make()
    with refused("seed"):
        g.with_seed(generator)
