"""Wu et al.'s exact projection and the entropic oracle (infoclust.exact_projection).

Feasibility and optimality are checked by independent computations: a dense transport
matrix built entry by entry from the plan's offsets, POT's exact W2 (a linear program),
SciPy's SLSQP on the projection's quadratic program and SciPy's linprog on the oracle's
linear program.
"""

import math
import warnings

import numpy as np
import pytest
import scipy.optimize
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infoclust.data import load_dataset
from infoclust.exact_projection import (
    LocalPlan,
    _dykstra,
    entropic_lmo,
    fit_in_box,
    project_plan,
    project_plan_in_box,
)
from infoclust.utils import ConvergenceWarning, ParameterError
from infoclust.wasserstein import grid_cost, local_cost, w2_exact, wasserstein_exact


@pytest.fixture(scope="module")
def digits():
    x, _ = load_dataset("mnist5k", n=4, seed=5)
    return x


def small(seed=0, n=2, size=5):
    """Tiny non-negative images with some empty pixels, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g) * (torch.rand(n, 1, size, size, generator=g) < 0.6)


def dense(plan: LocalPlan, i: int) -> np.ndarray:
    """Image i's plan as an (HW, HW) matrix, entry by entry from the offsets (independent of
    the plan's own target indices)."""
    _, c, h, w = plan.shape
    k = int(math.isqrt(plan.mass.shape[1]))
    out = np.zeros((h * w, h * w))
    mass = plan.mass.numpy()
    for r in (plan.image == i).nonzero().flatten().tolist():
        pixel = int(plan.source[r]) % (h * w)
        for o in range(k * k):
            di, dj = o // k - k // 2, o % k - k // 2
            ti, tj = pixel // w + di, pixel % w + dj
            if 0 <= ti < h and 0 <= tj < w:
                out[pixel, ti * w + tj] += mass[r, o]
            else:
                assert mass[r, o] == 0.0
    return out


def check_feasible(plan: LocalPlan, x: torch.Tensor, eps: float, tol: float = 1e-6):
    """Marginals and cost of every image's plan, from its dense matrix; and POT's W2."""
    h, w = x.shape[-2:]
    cost = grid_cost(h, w).numpy()
    z = plan.images()
    for i in range(len(x)):
        p = dense(plan, i)
        m = float(x[i].double().sum())
        assert p.min() >= 0
        np.testing.assert_allclose(p.sum(1), x[i, 0].double().flatten().numpy(), atol=tol * m, rtol=0)
        np.testing.assert_allclose(p.sum(0), z[i, 0].flatten().numpy(), atol=tol * m, rtol=0)
        assert (p * cost).sum() <= eps * m * (1 + tol)
    assert (w2_exact(x, z) ** 2 <= eps * (1 + tol)).all()


# ---------------------------------------------------------------- plans


def test_stay_plan_and_local_cost():
    x = small()
    plan = LocalPlan.stay(x, 3)
    assert len(plan.mass) == int((x > 0).sum())
    torch.testing.assert_close(plan.images(), x.double())
    assert (plan.transport_cost() == 0).all()
    torch.testing.assert_close(
        local_cost(3), torch.tensor([2.0, 1, 2, 1, 0, 1, 2, 1, 2], dtype=torch.float64)
    )
    with pytest.raises(ParameterError, match="kernel_size"):
        LocalPlan.stay(x, 4)
    with pytest.raises(TypeError, match="x has dtype"):
        LocalPlan.stay((x * 255).to(torch.uint8))


def test_select_keeps_each_images_plan():
    x = small(n=4)
    plan = LocalPlan.stay(x, 3)
    plan.mass += 0.01 * torch.rand(
        plan.mass.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    plan.mass *= plan.valid
    rows = torch.tensor([1, 3])
    sub = plan.select(rows)
    torch.testing.assert_close(sub.images(), plan.images()[rows])
    torch.testing.assert_close(sub.mass, plan.mass[plan.rows_of(rows)])


# ---------------------------------------------------------------- the exact projection


@pytest.mark.parametrize("eps", [0.05, 0.3, 2.0])
def test_projection_is_feasible_to_1e6_by_independent_checks(digits, eps):
    plan = LocalPlan.stay(digits, 5)
    g = torch.Generator().manual_seed(0)
    values = plan.mass + 0.2 * torch.randn(plan.mass.shape, generator=g, dtype=torch.float64)
    out = project_plan(plan, values, eps)
    check_feasible(out, digits, eps)
    # the constraint is active for small radii: the budget is spent (to rtol)
    if eps <= 0.3:
        budget = eps * digits.double().sum((1, 2, 3))
        torch.testing.assert_close(out.transport_cost(), budget, rtol=1e-8, atol=0)


def _slsqp_projection(plan: LocalPlan, values: torch.Tensor, eps: float, upper: float | None = None):
    """The projection's quadratic program for one image, solved by SciPy on the valid entries
    (from the stay plan, which is feasible); with ``upper``, also every pixel of the image at
    most ``upper`` (one inequality per target pixel, built from the offsets)."""
    valid = plan.valid.numpy()
    owner = np.nonzero(valid)[0]
    v = values.numpy()[valid]
    c = np.broadcast_to(plan.cost.numpy(), valid.shape)[valid]
    x = plan.source_mass().numpy()
    a_eq = np.stack([(owner == r) * 1.0 for r in range(len(x))])
    cons = [
        {"type": "eq", "fun": lambda p: a_eq @ p - x, "jac": lambda p: a_eq},
        {"type": "ineq", "fun": lambda p: np.array([eps * x.sum() - c @ p]), "jac": lambda p: -c[None]},
    ]
    if upper is not None:
        _, _, h, w = plan.shape
        k = int(math.isqrt(valid.shape[1]))
        rows, offsets = np.nonzero(valid)
        source = plan.source.numpy()[rows] % (h * w)
        target = (source // w + offsets // k - k // 2) * w + source % w + offsets % k - k // 2
        a_box = np.stack([(target == pixel) * 1.0 for pixel in range(h * w)])
        cons.append({"type": "ineq", "fun": lambda p: upper - a_box @ p, "jac": lambda p: -a_box})
    res = scipy.optimize.minimize(
        lambda p: 0.5 * ((p - v) ** 2).sum(),
        plan.mass.numpy()[valid],
        jac=lambda p: p - v,
        bounds=[(0, None)] * len(v),
        constraints=cons,
        method="SLSQP",
        options={"ftol": 1e-12, "maxiter": 3000},
    )
    assert res.success, res.message
    return res.x, valid


def test_projection_agrees_with_a_generic_qp_solver():
    x = small(seed=3, n=1, size=5)
    plan = LocalPlan.stay(x, 3)
    g = torch.Generator().manual_seed(2)
    values = plan.mass + 0.3 * torch.randn(plan.mass.shape, generator=g, dtype=torch.float64)
    out = project_plan(plan, values, 0.2)
    ref, valid = _slsqp_projection(plan, values, 0.2)
    ours = out.mass.numpy()[valid]
    objective = lambda p: 0.5 * ((p - values.numpy()[valid]) ** 2).sum()  # noqa: E731
    assert objective(ours) <= objective(ref) + 1e-9
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_point_inside_the_ball_is_its_own_projection(digits):
    plan = LocalPlan.stay(digits, 5)
    inside = plan.mass.clone()
    inside[:, 12] *= 0.9
    inside[:, 13] += 0.1 * plan.mass[:, 12] * plan.valid[:, 13]  # a tenth of the mass one pixel right
    inside[:, 12] += 0.1 * plan.mass[:, 12] * ~plan.valid[:, 13]
    out = project_plan(plan, inside, 0.5)
    torch.testing.assert_close(out.mass, inside, rtol=0, atol=1e-15)


def test_projection_stopped_early_warns_and_stays_feasible(digits):
    plan = LocalPlan.stay(digits, 5)
    values = plan.mass + 0.2 * torch.randn(
        plan.mass.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    with pytest.warns(ConvergenceWarning, match="project_plan"):
        out = project_plan(plan, values, 0.1, max_iter=1)
    check_feasible(out, digits, 0.1)
    with pytest.raises(ParameterError, match="values must have"):
        project_plan(plan, values[:, :3], 0.1)
    with pytest.raises(ParameterError, match="eps"):
        project_plan(plan, values, -1.0)


# ---------------------------------------------------------------- the oracle and the box


def test_entropic_oracle_is_feasible_and_near_the_linear_program():
    x = small(seed=4, n=1, size=5)
    plan = LocalPlan.stay(x, 3)
    direction = torch.randn(plan.mass.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    eps, gamma = 0.3, 1e-3
    out = entropic_lmo(plan, direction, eps, gamma)
    check_feasible(out, x, eps)
    # the linear program max <P, G> over the same set, by SciPy
    valid = plan.valid.numpy()
    owner = np.nonzero(valid)[0]
    g = direction.numpy()[valid]
    c = plan.cost.numpy()[None, :].repeat(len(valid), 0)[valid]
    rows = plan.source_mass().numpy()
    a_eq = np.stack([(owner == r) * 1.0 for r in range(len(rows))])
    lp = scipy.optimize.linprog(
        -g, A_ub=c[None], b_ub=[eps * rows.sum()], A_eq=a_eq, b_eq=rows, bounds=(0, None)
    )
    assert lp.status == 0
    value = float(out.mass.numpy()[valid] @ g)
    # the entropy term costs at most gamma * sum_q x_q log(window size)
    assert -lp.fun - gamma * rows.sum() * math.log(9) - 1e-9 <= value <= -lp.fun + 1e-9


def test_fit_in_box_keeps_the_plan_in_the_ball_and_the_image_in_0_1(digits):
    plan = LocalPlan.stay(digits, 5)
    values = plan.mass + 0.3 * torch.randn(
        plan.mass.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )
    projected = project_plan(plan, values, 0.5)
    assert projected.images().max() > 1.0  # the projection alone overflows some pixels
    boxed = fit_in_box(projected)
    assert boxed.images().max() <= 1.0 + 1e-12
    assert (boxed.transport_cost() <= projected.transport_cost() + 1e-15).all()
    check_feasible(boxed, digits, 0.5)


def test_fit_in_box_keeps_the_moves_between_full_pixels():
    """A binary image (every bright pixel at 1) whose ball projection swaps mass between full
    pixels: the mass sent home bounces between them for dozens of passes. With 20 passes
    1e-7 stayed above 1 and the final mixing fell back to the plan that moves nothing."""
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(1, 1, 6, 6, generator=g, dtype=torch.float64) < 0.6).double()
    plan = LocalPlan.stay(x, 3)
    values = plan.mass + torch.randn(plan.mass.shape, generator=g, dtype=torch.float64)
    projected = project_plan(plan, values, 0.5)
    boxed = fit_in_box(projected)
    assert boxed.images().max() <= 1.0 + 1e-12
    check_feasible(boxed, x, 0.5)
    assert boxed.transport_cost() > 0.3 * projected.transport_cost()


def box_case(seed: int, size: int = 5):
    """A tiny image with some bright pixels, its stay plan (3 x 3 window) and a point far
    from it, whose ball projection overflows the box."""
    g = torch.Generator().manual_seed(seed)
    x = (
        torch.rand(1, 1, size, size, generator=g) * (torch.rand(1, 1, size, size, generator=g) < 0.7)
    ).double()
    x[0, 0, size // 2, size // 2] = 1.0
    plan = LocalPlan.stay(x, 3)
    values = plan.mass + 0.5 * torch.randn(plan.mass.shape, generator=g, dtype=torch.float64)
    values[:, 4] -= 0.5  # push mass off the centre: its neighbours overflow
    return x, plan, values


@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 10_000),
    st.integers(3, 6),
    st.floats(0.05, 3.0),
    st.floats(0.3, 1.0),
)
def test_box_projection_is_in_the_ball_and_in_the_box(seed, size, eps, upper):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 1, size, size, generator=g, dtype=torch.float64) * upper
    x *= torch.rand(x.shape, generator=g, dtype=torch.float64) < 0.6
    plan = LocalPlan.stay(x, 3)
    values = plan.mass + torch.randn(plan.mass.shape, generator=g, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # feasible whether converged or not
        out = project_plan_in_box(plan, values, eps, upper, max_iter=30)
    check_feasible(out, x, eps)  # the ball, rows summing to x, independently of the plan's indices
    z = out.images()
    assert z.min() >= 0 and z.max() <= upper * (1 + 1e-12)


def test_box_projection_agrees_with_a_generic_qp_solver():
    x, plan, values = box_case(2)
    assert project_plan(plan, values, 0.5).images().max() > 1.5  # the ball alone overflows
    out = project_plan_in_box(plan, values, 0.5, tol=1e-9, max_iter=5000)
    ref, valid = _slsqp_projection(plan, values, 0.5, upper=1.0)
    objective = lambda p: 0.5 * ((p - values.numpy()[valid]) ** 2).sum()  # noqa: E731
    ours = out.mass.numpy()[valid]
    assert objective(ours) <= objective(ref) + 1e-6
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    # the box costs something: fit_in_box alone is farther from the point
    assert objective(fit_in_box(project_plan(plan, values, 0.5)).mass.numpy()[valid]) > objective(ours) + 1e-3


def test_box_projection_started_from_a_nearby_correction_is_the_same_projection():
    """Dykstra's iterations started from the box correction of a nearby point (Frank-Wolfe's
    warm start) go to the projection of the new point, and are far nearer to it after 10
    steps than the iterations started from 0."""
    x, plan, values = box_case(2)
    q = _dykstra(plan, values, 0.5, 1.0, None, 60, 1e-4)[1]  # near its projection; any such q is a start
    nearby = values + 0.02 * torch.randn(
        values.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    projection, _, converged = _dykstra(plan, nearby, 0.5, 1.0, None, 2000, 1e-4)
    assert converged

    def error(start, steps):
        return float(
            (_dykstra(plan, nearby, 0.5, 1.0, start, steps, 1e-9)[0].mass - projection.mass).abs().max()
        )

    assert error(q, 40) < 1e-3
    assert error(q, 10) < 0.1 * error(None, 10)


def test_box_projection_stopped_early_warns_and_stays_feasible():
    x, plan, values = box_case(2)
    with pytest.warns(ConvergenceWarning, match="project_plan_in_box"):
        out = project_plan_in_box(plan, values, 0.5, max_iter=1)
    check_feasible(out, x, 0.5)
    assert out.images().max() <= 1.0
    with pytest.raises(ParameterError, match="upper=0.5"):
        project_plan_in_box(plan, values, 0.5, upper=0.5)
    with pytest.raises(ParameterError, match="tol"):
        project_plan_in_box(plan, values, 0.5, tol=0.0)


def test_wasserstein_exact_with_cost_d():
    """W_p of a translated image is the translation's length for every p; between a point
    and two half points at distances 1 and 3, W1 = 2 and W2 = sqrt(5)."""
    x = torch.zeros(1, 1, 6, 6)
    x[0, 0, 1, 1] = 1.0
    moved = torch.roll(x, (1, 1), (2, 3))
    for p in (1.0, 2.0, 3.0):
        torch.testing.assert_close(
            wasserstein_exact(x, moved, p=p), torch.tensor([math.sqrt(2)], dtype=torch.float64)
        )
    split = torch.zeros(1, 1, 6, 6)
    split[0, 0, 1, 2] = split[0, 0, 1, 4] = 0.5
    torch.testing.assert_close(wasserstein_exact(x, split, p=1.0), torch.tensor([2.0], dtype=torch.float64))
    torch.testing.assert_close(w2_exact(x, split), torch.tensor([math.sqrt(5)], dtype=torch.float64))
    with pytest.raises(ParameterError, match="p=0"):
        wasserstein_exact(x, split, p=0)
