"""Hostile inputs of the exact projection's plan side (issue 22, item 7).

``project_plan`` with NaN, inf or 1e300 in the plan failed with "index -1 is out of bounds";
``entropic_lmo`` with a NaN direction returned NaN; ``fit_in_box(upper=0.5)`` returned pixels
above 0.5 (its precondition was documented, not checked); a window of 10,001 px on 8 px images
was accepted and died in the allocator. Each is refused at the door, naming the argument.
"""

from __future__ import annotations

import pytest
import torch
from test_hostile_common import refused

from infoclust.exact_projection import LocalPlan, entropic_lmo, fit_in_box, project_plan


@pytest.fixture
def plan() -> LocalPlan:
    x = torch.zeros(2, 1, 8, 8, dtype=torch.float64)
    x[:, :, 2:6, 3:5] = 0.5
    x[1, 0, 4, 4] = 1.0
    return LocalPlan.stay(x, kernel_size=3)


def _with(plan: LocalPlan, value: float) -> torch.Tensor:
    values = plan.mass.clone()
    values[1, 2] = value
    return values


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 1e300])
def test_project_plan_refuses_values_it_cannot_project(plan, bad):
    with refused("values"):
        project_plan(plan, _with(plan, bad), 0.5)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e300])
def test_entropic_lmo_refuses_a_bad_direction(plan, bad):
    with refused("direction"):
        entropic_lmo(plan, _with(plan, bad), 0.5)


def test_the_checks_leave_good_plans_alone(plan):
    projected = project_plan(plan, _with(plan, 3.0), 0.5)
    assert torch.allclose(projected.source_mass(), plan.source_mass())
    assert torch.isfinite(entropic_lmo(plan, _with(plan, 3.0), 0.5).mass).all()


def test_fit_in_box_below_the_brightest_pixel(plan):
    with refused("upper=0.5", "1"):
        fit_in_box(plan, upper=0.5)


def test_fit_in_box_at_the_brightest_pixel_fits(plan):
    assert float(fit_in_box(plan, upper=1.0).images().max()) <= 1.0


def test_a_window_wider_than_the_images(plan):
    with refused("kernel_size=10001", "15"):
        LocalPlan.stay(torch.rand(1, 1, 8, 8), kernel_size=10_001)
