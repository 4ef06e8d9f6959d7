"""Hostile inputs of the statistics of paired comparisons (issue 22, item 6): paired_difference."""

from __future__ import annotations

import pytest
from test_hostile_common import refused

from infoclust.metrics import paired_difference

A, B = [0.97, 0.95, 0.96, 0.96, 0.94], [0.95, 0.94, 0.93, 0.94, 0.93]


@pytest.mark.parametrize("power", [1 - 1e-12, 1 - 1e-9, 1.0, 1.5, float("nan"), 0.01, "0.8"])
def test_power_beyond_what_the_integral_resolves(power):
    with refused("power"):
        paired_difference(A, B, power=power)
