"""MI estimators (infoclust.mi) on score matrices whose answer is known."""

import math

import numpy as np
import pytest
import torch

from infoclust.mi import (
    ESTIMATORS,
    correlated_gaussians,
    dv_mi,
    gaussian_mi,
    infonce_mi,
    jsd_mi,
    mi_estimate,
    mi_training_curve,
)
from infoclust.utils import ParameterError


def separable(n: int, locations: int | None = None, margin: float = 30.0) -> torch.Tensor:
    """Scores +margin on the diagonal and -margin elsewhere."""
    shape = (n, n) if locations is None else (n, n, locations)
    s = torch.full(shape, -margin)
    s[range(n), range(n)] = margin
    return s


@pytest.mark.parametrize("locations", [None, 5])
def test_perfectly_separable_scores(locations):
    n = 16
    s = separable(n, locations)
    assert jsd_mi(s).item() == pytest.approx(math.log(4.0), abs=1e-6)  # 2 JSD reaches log 4
    assert dv_mi(s).item() == pytest.approx(60.0, abs=1e-4)  # E_P[T] - log E[e^T] = 30 - (-30)
    assert infonce_mi(s).item() == pytest.approx(math.log(n), abs=1e-6)


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("value", [0.0, 3.0])
def test_identical_positive_and_negative_scores_give_zero(estimator, value):
    s = torch.full((10, 10, 4), value)
    est = mi_estimate(s, estimator).item()
    if estimator == "jsd" and value != 0.0:
        # the JSD proxy is maximised at 0 over constant critics and negative elsewhere
        assert est < 0.0
    else:
        assert est == pytest.approx(0.0, abs=1e-5)


def test_random_scores_without_signal_are_near_zero():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(256, 256, generator=g) * 0.1
    for estimator in ESTIMATORS:
        assert abs(mi_estimate(s, estimator).item()) < 0.02


def test_infonce_never_exceeds_log_n():
    g = torch.Generator().manual_seed(1)
    for n in (2, 8, 64):
        for scale in (1.0, 10.0, 1e3):
            s = torch.randn(n, n, 3, generator=g) * scale
            s[range(n), range(n)] += 5 * scale  # strong positives
            assert infonce_mi(s).item() <= math.log(n) + 1e-5
    assert infonce_mi(separable(8, margin=1e4)).item() <= math.log(8) + 1e-5


def test_optimal_critic_recovers_gaussian_mi():
    """With T = log p(x,y)/(p(x)p(y)) (the optimal critic), DV and InfoNCE read the true MI."""
    dim, rho, n = 1, 0.6, 2000
    x, y = correlated_gaussians(n, dim, rho, generator=torch.Generator().manual_seed(0))
    x, y = x[:, 0], y[:, 0]
    v = 1 - rho**2
    # log ratio of the bivariate normal density to the product of its marginals, for all pairs
    t = -0.5 * math.log(v) - (y[None, :] - rho * x[:, None]) ** 2 / (2 * v) + y[None, :] ** 2 / 2
    true = gaussian_mi(dim, rho)
    assert dv_mi(t).item() == pytest.approx(true, abs=0.05)
    assert infonce_mi(t).item() == pytest.approx(true, abs=0.05)  # true MI << log 2000


def test_gaussian_mi_formula():
    assert gaussian_mi(1, 0.0) == 0.0
    assert gaussian_mi(20, 0.5) == pytest.approx(-10 * math.log(0.75))


def test_estimators_are_differentiable():
    s = torch.randn(6, 6, 2, requires_grad=True)
    for estimator in ESTIMATORS:
        (g,) = torch.autograd.grad(mi_estimate(s, estimator), s)
        assert torch.isfinite(g).all()
        assert (g.diagonal(dim1=0, dim2=1) > 0).all()  # raising a positive score raises the estimate


def test_bad_inputs_raise():
    with pytest.raises(ParameterError, match="scores"):
        jsd_mi(torch.zeros(3, 4))
    with pytest.raises(ParameterError, match="scores"):
        dv_mi(torch.zeros(1, 1))
    with pytest.raises(ParameterError, match="estimator"):
        mi_estimate(torch.zeros(3, 3), "mine")
    with pytest.raises(ParameterError, match="rho"):
        gaussian_mi(2, 1.0)


def test_training_curve_tracks_mi_and_nce_saturates():
    curve = mi_training_curve(
        "nce",
        true_mi=(1.0, 6.0),
        dim=4,
        steps_per_level=150,
        batch_size=16,
        lr=2e-3,
        generator=torch.Generator().manual_seed(0),
        device="cpu",
        verbose=False,
    )
    assert set(curve) == {"true", "jsd", "dv", "nce"}
    assert len(curve["true"]) == 300
    early, late = curve["nce"][100:150].mean(), curve["nce"][250:].mean()
    assert 0.5 < early < 1.5  # close to the true 1 nat
    assert late <= math.log(16) + 1e-5 < 6.0  # capped below the true 6 nats
    assert late > early


def test_training_curve_checks_its_arguments():
    with pytest.raises(TypeError, match="generator"):
        mi_training_curve("nce", steps_per_level=1, generator=0, verbose=False)
    with pytest.raises(ParameterError, match="true_mi"):
        mi_training_curve("nce", true_mi=(1.0, -2.0), steps_per_level=1, verbose=False)
    with pytest.raises(TypeError, match="generator"):
        correlated_gaussians(4, 2, 0.5, generator=1)


def test_training_curve_repeats_itself_for_a_generator():
    kw = dict(true_mi=(1.0,), dim=2, steps_per_level=5, batch_size=8, device="cpu", verbose=False)
    a = mi_training_curve("dv", generator=torch.Generator().manual_seed(3), **kw)
    b = mi_training_curve("dv", generator=torch.Generator().manual_seed(3), **kw)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_non_finite_scores_are_named():
    s = torch.zeros(4, 4)
    s[1, 2] = float("nan")
    for estimator in ESTIMATORS:
        with pytest.raises(ParameterError, match="scores contains NaN"):
            mi_estimate(s, estimator)
    with pytest.raises(ParameterError, match="scores contains NaN"):
        jsd_mi(s.fill_(float("inf")))
