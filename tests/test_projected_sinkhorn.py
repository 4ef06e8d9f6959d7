"""Projected Sinkhorn (infoclust.projected_sinkhorn): Lambert W and the projection."""

import warnings

import numpy as np
import pytest
import scipy.special
import torch

from infoclust.data import load_dataset
from infoclust.projected_sinkhorn import (
    lambertw,
    lambertw_exp,
    project_wasserstein_ball,
)
from infoclust.utils import ConvergenceWarning, ParameterError
from infoclust.wasserstein import local_cost, w2_exact


@pytest.fixture(scope="module")
def digits():
    x, _ = load_dataset("mnist5k", n=6, seed=3)
    return x


def step(x: torch.Tensor, size: float = 0.1, seed: int = 0) -> torch.Tensor:
    """A PGD-like point to project: x plus a random +-size step on every pixel."""
    g = torch.Generator().manual_seed(seed)
    return x + size * (2 * torch.randint(0, 2, x.shape, generator=g) - 1)


def mass(a: torch.Tensor) -> torch.Tensor:
    return a.double().flatten(1).sum(1)


# ---------------------------------------------------------------- Lambert W


def test_lambertw_matches_scipy_over_600_decades():
    x = np.concatenate([[0.0], np.logspace(-300, 300, 2001), [np.e, 1.0, 1e-3]])
    ours = lambertw(torch.from_numpy(x)).numpy()
    ref = scipy.special.lambertw(x).real
    np.testing.assert_allclose(ours, ref, rtol=1e-13, atol=0)


def test_lambertw_float32_matches_scipy():
    # in the log domain the relative error of W is about one ulp of |log x| (|log x| <= 70)
    x = np.logspace(-30, 30, 301).astype(np.float32)
    ours = lambertw(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, scipy.special.lambertw(x.astype(np.float64)).real, rtol=1e-5)


def test_lambertw_exp_beyond_the_float_range():
    # W0(e^s) for s where e^s overflows: check the defining equation W + log W = s
    s = torch.tensor([700.0, 1000.0, 1e4, 1e6, 1e12], dtype=torch.float64)
    w = lambertw_exp(s)
    assert torch.isfinite(w).all()
    torch.testing.assert_close(w + torch.log(w), s, rtol=1e-14, atol=0)
    # and far below: W0(e^s) = e^s to first order, exactly 0 once that underflows
    s = torch.tensor([-30.0, -700.0, -1e4, -float("inf")], dtype=torch.float64)
    w = lambertw_exp(s)
    assert w[0].item() == pytest.approx(scipy.special.lambertw(np.exp(-30.0)).real, rel=1e-14)
    assert w[2].item() == 0.0 and w[3].item() == 0.0 and torch.isfinite(w).all()


def test_lambertw_rejects_negative_arguments():
    with pytest.raises(ParameterError, match="x must be >= 0"):
        lambertw(torch.tensor([-0.1]))


# ---------------------------------------------------------------- the projection


def test_local_cost_is_squared_distance_for_p2():
    c = local_cost(3, 2.0).view(3, 3)
    torch.testing.assert_close(c, torch.tensor([[2.0, 1, 2], [1, 0, 1], [2, 1, 2]], dtype=torch.float64))
    with pytest.raises(ParameterError, match="kernel_size"):
        local_cost(4)


@pytest.mark.parametrize("eps", [0.1, 0.5, 1.0])
def test_outputs_lie_in_the_ball_by_pot_and_conserve_mass(digits, eps):
    w = step(digits)
    z, info = project_wasserstein_ball(w, digits, eps, lam=300.0, kernel_size=5, return_info=True)
    assert info.converged.all()
    # mass conserved (the plan's rows sum to x, the output is what it delivers)
    torch.testing.assert_close(mass(z), mass(digits), rtol=1e-5, atol=0)
    assert (z >= 0).all()
    # the plan's own cost is at the radius (the constraint is active: w is far outside)
    assert (info.cost <= eps * (1 + 1e-6)).all()
    assert (info.cost >= eps * 0.9).all()
    # POT's exact W2^2 between x and the projection: at most the plan's cost
    w2sq = w2_exact(digits, z) ** 2
    assert (w2sq <= eps * (1 + 1e-5)).all(), (w2sq, eps)
    # it minimises 1/2 ||w - z||^2 + 1/lam sum P log P: no worse than staying at x (the identity
    # plan). Not "closer to w than x": the entropy can buy a blur that moves z away from w.
    m = mass(digits).view(-1, 1, 1, 1)
    xn = digits.double() / m
    stay = 0.5 * ((w - digits) / m).flatten(1).pow(2).sum(1) + torch.xlogy(xn, xn).flatten(1).sum(1) / 300.0
    assert (info.objective <= stay.float() + 1e-6).all(), (info.objective, stay)


def _relative_distance(z, ref, w, x):
    return (z.double() - ref.double()).flatten(1).norm(dim=1) / (w.double() - x.double()).flatten(1).norm(
        dim=1
    )


@pytest.fixture(scope="module")
def converged(digits):
    """Float64 projections at lam = 100 and 1000, certified to 1e-6 (the references)."""
    x, w = digits[:3].double(), step(digits[:3]).double()
    refs = {
        lam: project_wasserstein_ball(w, x, 0.5, lam=lam, max_iter=3000, tol=1e-6) for lam in (100.0, 1000.0)
    }
    return x, w, refs


@pytest.mark.parametrize("lam", [100.0, 1000.0])
def test_certified_stop_is_within_tol_of_the_converged_projection(converged, lam):
    x, w, refs = converged
    for tol in (1e-2, 1e-3):
        z, info = project_wasserstein_ball(w.float(), x.float(), 0.5, lam=lam, tol=tol, return_info=True)
        assert info.converged.all() and (info.gap <= tol).all()
        true = _relative_distance(z, refs[lam], w, x)
        # the certificate bounds the true distance (float32 run against the float64 reference)
        assert (true <= info.gap + 1e-5).all(), (true, info.gap)
    # the tighter tolerance takes more iterations
    _, loose = project_wasserstein_ball(w, x, 0.5, lam=lam, tol=1e-2, return_info=True)
    _, tight = project_wasserstein_ball(w, x, 0.5, lam=lam, tol=1e-4, return_info=True)
    assert loose.n_iter < tight.n_iter


@pytest.mark.parametrize("lam", [1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8])
def test_any_lambda_is_safe_and_never_stops_silently(digits, lam):
    # The docstring: any lambda is numerically safe; the iterations needed grow with lambda,
    # and a run stopped at max_iter says so. Either it converged (certified within tol) or it
    # warns; either way the output is in the ball, with x's mass, finite.
    x, w = digits[:3], step(digits[:3])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        z, info = project_wasserstein_ball(w, x, 0.5, lam=lam, max_iter=200, return_info=True)
    warned = any(issubclass(c.category, ConvergenceWarning) for c in caught)
    assert warned == (not bool(info.converged.all()))
    assert warned == (lam >= 1e4)  # about 800 iterations at 1e4 (docstring)
    assert info.n_iter == 200 if warned else info.n_iter < 200
    assert torch.isfinite(z).all() and (z >= 0).all()
    assert (info.cost <= 0.5 * (1 + 1e-6)).all()
    torch.testing.assert_close(mass(z), mass(x), rtol=1e-5, atol=0)


def test_larger_lambda_is_closer_to_the_exact_projection(converged):
    # w = x is inside the ball: the exact projection is x itself; the entropic one blurs by
    # O(1/lambda), and the blur shrinks as lambda grows (both converged).
    x = converged[0]
    errors = []
    for lam in (1e2, 1e3):
        z = project_wasserstein_ball(x, x, 1.0, lam=lam, max_iter=1000)
        errors.append(((z - x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)).max().item())
    assert errors[0] > errors[1]


def test_no_overflow_or_nan_with_zero_pixels(digits):
    # digits are mostly exact zeros; w reaches 1.1 and -0.1 (a step from the clamp bounds)
    assert (digits == 0).float().mean() > 0.5
    w = step(digits, 0.1)
    for lam in (1000.0, 1e5, 1e7):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            z, info = project_wasserstein_ball(w, digits, 0.5, lam=lam, max_iter=20, return_info=True)
        assert torch.isfinite(z).all() and (z >= 0).all(), lam
        assert torch.isfinite(info.objective).all() and torch.isfinite(info.psi).all()
        torch.testing.assert_close(mass(z), mass(digits), rtol=1e-5, atol=0)


def test_transport_is_local_and_per_channel():
    # channel 0: one bright pixel; channel 1: empty. Nothing may reach beyond the window
    # (k = 3 -> one pixel away), nor appear in the empty channel.
    x = torch.zeros(1, 2, 9, 9)
    x[0, 0, 4, 4] = 1.0
    w = torch.rand(1, 2, 9, 9, generator=torch.Generator().manual_seed(0))
    z = project_wasserstein_ball(w, x, 10.0, lam=1000.0, kernel_size=3, max_iter=300)
    assert z[0, 1].abs().max() == 0
    outside = torch.ones(9, 9, dtype=torch.bool)
    outside[3:6, 3:6] = False
    assert z[0, 0][outside].abs().max() == 0
    assert z[0, 0].sum().item() == pytest.approx(1.0, rel=1e-5)
    # a large radius lets the mass spread towards w, inside the window only
    assert (z[0, 0, 3:6, 3:6] > 0).sum() > 1


@pytest.mark.parametrize("spread", [1.0, 900.0])
def test_separable_sums_agree_with_the_window_sums(spread):
    """The p = 2 kernel summed axis by axis gives the window-by-window sums to rounding; with
    exponents spread over 900 within an image (underflow after scaling) it falls back to them."""
    from infoclust.projected_sinkhorn import _SeparableKernel, _WindowKernel

    g = torch.Generator().manual_seed(0)
    beta = spread * (torch.rand(3, 2, 7, 9, generator=g) < 0.9) + torch.rand(3, 2, 7, 9, generator=g)
    beta = beta.double()
    alpha = torch.where(torch.rand(beta.shape, generator=g) < 0.6, beta, float("inf"))
    support = torch.isfinite(alpha).double()
    reach = torch.nn.functional.max_pool2d(support.view(6, 1, 7, 9), 5, 1, 2).view(beta.shape) > 0
    log_reach = torch.log(reach.double())
    psi = torch.tensor([0.0, 0.7, 40.0], dtype=torch.float64)
    cost = local_cost(5, 2.0)
    fast, exact = _SeparableKernel(psi, cost, 5), _WindowKernel(psi, cost, 5)
    a, b = fast.rows(beta, entropy=True), exact.rows(beta, entropy=True)
    for name in ("lse", "cost", "cost2", "stay", "pi_log_pi"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=1e-10, atol=1e-12, msg=name)
    la, lb = fast.lse(alpha, support, log_reach), exact.lse(alpha, support, log_reach)
    assert torch.equal(torch.isfinite(la), torch.isfinite(lb)) and torch.equal(
        torch.isfinite(la), reach.flatten(2)
    )
    torch.testing.assert_close(la[torch.isfinite(la)], lb[torch.isfinite(lb)], rtol=1e-10, atol=1e-12)


def test_float32_and_float64_images_give_one_projection(digits):
    """The iterations run in float64 whatever the images' dtype."""
    x = digits[:3]
    w = step(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        z32 = project_wasserstein_ball(w, x, 0.3, max_iter=10)
        z64 = project_wasserstein_ball(w.double(), x.double(), 0.3, max_iter=10)
    assert z32.dtype == torch.float32
    torch.testing.assert_close(z32, z64.float())


def test_empty_image_projects_to_zero():
    x = torch.zeros(2, 1, 8, 8)
    x[1, 0, 2, 2] = 0.5
    z = project_wasserstein_ball(torch.rand(2, 1, 8, 8), x, 0.3)
    assert torch.equal(z[0], torch.zeros(1, 8, 8))
    assert z[1].sum().item() == pytest.approx(0.5, rel=1e-5)


def test_dual_objective_matches_the_primal_at_convergence(converged):
    # Strong duality: the dual value (correctly evaluated, arguments in order) equals the
    # primal 1/2 ||w - z||^2 + 1/lam sum P log P of the returned plan, in unit-mass units.
    x, w, _ = converged
    lam = 1000.0
    z, info = project_wasserstein_ball(w, x, 0.5, lam=lam, max_iter=3000, tol=1e-6, return_info=True)
    m = mass(x).view(-1, 1, 1, 1)
    plan = info.plan / m[..., None]
    ent = torch.where(plan > 0, plan * torch.log(plan), 0.0).flatten(1).sum(1)
    primal = 0.5 * ((w - z) / m).flatten(1).pow(2).sum(1) + ent / lam
    torch.testing.assert_close(info.objective, primal, rtol=1e-9, atol=1e-12)
    # the plan takes x and delivers z
    torch.testing.assert_close(info.plan.sum(2), x, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(info.plan.sum(2).sum((1, 2, 3)), z.sum((1, 2, 3)), rtol=1e-9, atol=0)


def test_output_is_in_the_ball_even_when_stopped_early(digits):
    # after 3 iterations psi is far from converged; the final mixing step keeps the plan
    # within budget, and POT agrees; mass is still exact; the cap is reported
    w = step(digits)
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        z, info = project_wasserstein_ball(w, digits, 0.3, lam=1e4, max_iter=3, return_info=True)
    assert info.n_iter == 3 and not info.converged.any()
    assert (info.cost <= 0.3 * (1 + 1e-6)).all()
    assert (w2_exact(digits, z) ** 2 <= 0.3 * (1 + 1e-5)).all()
    torch.testing.assert_close(mass(z), mass(digits), rtol=1e-5, atol=0)
    # the returned plan delivers z and takes x
    torch.testing.assert_close(info.plan.sum(2), digits, rtol=1e-4, atol=1e-6)


def test_per_image_radius_and_dtype(digits):
    w = step(digits)
    eps = torch.tensor([0.1, 0.2, 0.4, 0.8, 1.6, 3.2])
    z, info = project_wasserstein_ball(w.double(), digits.double(), eps, return_info=True)
    assert z.dtype == torch.float64
    assert (info.cost <= eps.double() * (1 + 1e-6)).all()
    assert (w2_exact(digits, z) ** 2 <= eps.double() * (1 + 1e-5)).all()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"lam": 0.0}, "lam"),
        ({"kernel_size": 4}, "kernel_size"),
        ({"max_iter": 0}, "max_iter"),
        ({"tol": -1.0}, "tol"),
        ({"eps": -0.5}, "eps"),
        ({"eps": torch.ones(3)}, "eps"),
    ],
)
def test_bad_parameters_raise(digits, kwargs, name):
    args = {"eps": 0.5, **kwargs}
    eps = args.pop("eps")
    with pytest.raises(ParameterError, match=name):
        project_wasserstein_ball(digits, digits, eps, **args)


def test_bad_images_raise(digits):
    with pytest.raises(ParameterError, match="x has negative pixels"):
        project_wasserstein_ball(digits, digits - 0.5, 0.5)
    with pytest.raises(ParameterError, match="same|shape"):
        project_wasserstein_ball(digits[:2], digits, 0.5)
    nan = digits.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ParameterError, match="w contains NaN"):
        project_wasserstein_ball(nan, digits, 0.5)
    with pytest.raises(ParameterError, match="x contains NaN"):
        project_wasserstein_ball(digits, nan.abs(), 0.5)
    # uint8 images (0..255) would lose mass to the [0, 1] logic downstream: rejected
    with pytest.raises(TypeError, match="x.float"):
        project_wasserstein_ball(digits, (255 * digits).to(torch.uint8), 0.5)
