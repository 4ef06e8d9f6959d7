"""Hostile inputs of KMeans (issue 22, item 8): refused at the door, naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_hostile_common import refused

from infoclust.kmeans import KMeans


@pytest.mark.parametrize("scale", [1e20, 1e30, -1e20])
def test_features_whose_squared_distances_overflow(scale):
    # was: "invalid multinomial distribution (encountering probability entry < 0)" from k-means++
    x = torch.rand(30, 3, generator=torch.Generator().manual_seed(0)) * scale
    with refused("x", "float32"):
        KMeans(3, seed=0).fit(x)


def test_large_but_representable_features_work():
    x = torch.rand(30, 3, generator=torch.Generator().manual_seed(0)) * 1e15
    assert np.isfinite(KMeans(3, seed=0).fit(x).cluster_centers_).all()


def test_a_meta_device():
    with refused("device", "meta"):
        KMeans(3, device="meta").fit(torch.rand(30, 3))
