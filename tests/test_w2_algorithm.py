"""The talk's Algorithm 1 (infoclust.w2_algorithm), every output checked against POT directly."""
import numpy as np
import ot
import pytest
import torch

from infoclust.classifiers import random_classifier
from infoclust.data import load_dataset
from infoclust.w2_algorithm import W2Perturbation, w2_perturbation
from infoclust.utils import ParameterError


@pytest.fixture(scope="module")
def digits():
    x, _ = load_dataset("mnist5k", n=6, seed=2)
    return x


@pytest.fixture(scope="module")
def model():
    return random_classifier(1, 10, seed=1, device="cpu")


def pot_w2(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """W2 in pixels by ot.emd2 on the full grid: an independent path to the library's value."""
    h, w = a.shape[-2:]
    grid = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij"), -1).reshape(-1, 2).astype(float)
    cost = ot.dist(grid, grid, metric="sqeuclidean")
    out = []
    for p, q in zip(a.sum(1).flatten(1).double().numpy(), b.sum(1).flatten(1).double().numpy()):
        out.append(np.sqrt(ot.emd2(p / p.sum(), q / q.sum(), cost)))
    return np.array(out)


def test_returns_x_itself_when_the_first_step_leaves_the_ball(digits, model):
    res = w2_perturbation(model, digits, eps=1e-6, eta=0.5)
    assert torch.equal(res.images, digits)
    assert (res.steps == 0).all() and (res.end == 1).all() and (res.w2 == 0).all()
    assert torch.equal(res.field, torch.zeros_like(res.field))


@pytest.mark.parametrize("eps", [0.2, 0.45])
def test_never_a_point_outside_the_ball(digits, model, eps):
    gen = torch.Generator().manual_seed(0)
    res = w2_perturbation(model, digits, eps=eps, eta=0.1, alpha=1.0, max_steps=6, generator=gen)
    # both branches of line 5 taken, else the test would be vacuous
    assert (res.steps > 0).any() and (res.end == 1).any()
    d = pot_w2(res.images, digits)
    assert (d <= eps * (1 + 1e-9)).all(), d
    np.testing.assert_allclose(res.w2.numpy(), d, atol=1e-7)


def test_stopping_probability_one_stops_after_the_first_accepted_step(digits, model):
    res = w2_perturbation(model, digits, eps=5.0, eta=1e6, max_steps=5)
    assert ((res.steps == 1) & (res.end == 0)).all()


def test_stopping_probability_zero_walks_until_the_cap(digits, model):
    res = w2_perturbation(model, digits, eps=50.0, eta=1e-4, max_steps=3)
    assert ((res.steps == 3) & (res.end == 2)).all()


def test_transformation_is_a_batch_to_batch_g(digits):
    g = W2Perturbation(eps=0.5, eta=0.3, max_steps=4, seed=1)
    with torch.no_grad():
        gx = g(digits)
    assert gx.shape == digits.shape and gx.dtype == digits.dtype and gx.device == digits.device
    assert not any(p.requires_grad for p in g._random[2].parameters())
    assert (g.last_result_.w2 <= 0.5).all() and (g.last_result_.steps > 0).any()
    again = W2Perturbation(eps=0.5, eta=0.3, max_steps=4, seed=1)(digits)
    torch.testing.assert_close(gx, again)
    fresh = W2Perturbation(eps=0.5, eta=1e6, max_steps=1, redraw=True, seed=1)
    assert not torch.equal(fresh(digits), fresh(digits))


def test_bad_parameters_raise(digits, model):
    with pytest.raises(ParameterError, match="eps"):
        w2_perturbation(model, digits, eps=-1.0, eta=1.0)
    with pytest.raises(ParameterError, match="eta"):
        w2_perturbation(model, digits, eps=1.0, eta=0.0)
    with pytest.raises(ParameterError, match="alpha"):
        W2Perturbation(alpha=0.0)
    with pytest.raises(ParameterError, match="max_steps"):
        W2Perturbation(max_steps=0)
    with pytest.raises(ParameterError, match="images"):
        w2_perturbation(model, digits[0], eps=1.0, eta=1.0)
