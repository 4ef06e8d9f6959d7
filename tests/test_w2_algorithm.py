"""The talk's Algorithm 1 (infoclust.w2_algorithm), every output checked against POT directly."""

import numpy as np
import ot
import pytest
import torch

from infoclust._w2_bounds import w2_bounds
from infoclust.classifiers import random_classifier
from infoclust.data import load_dataset
from infoclust.deform import random_field, warp
from infoclust.w2_algorithm import END_REASONS, W2Perturbation, w2_perturbation
from infoclust.utils import ParameterError
from infoclust.wasserstein import to_histogram


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
    assert (res.steps == 0).all() and (res.end == 1).all() and (res.w2 == 0).all() and res.exact.all()
    assert torch.equal(res.field, torch.zeros_like(res.field))
    assert res.solved == 0 and res.tests == len(digits)  # the lower bounds settled every test


@pytest.mark.parametrize("eps", [0.2, 0.45])
def test_never_a_point_outside_the_ball(digits, model, eps):
    gen = torch.Generator().manual_seed(0)
    res = w2_perturbation(model, digits, eps=eps, eta=0.1, alpha=1.0, max_iter=6, generator=gen)
    # both branches of line 5 taken, else the test would be vacuous
    assert (res.steps > 0).any() and (res.end == 1).any()
    d = pot_w2(res.images, digits)
    assert (d <= eps * (1 + 1e-9)).all(), d
    exact = res.exact.numpy()
    np.testing.assert_allclose(res.w2.numpy()[exact], d[exact], atol=1e-7)
    assert (res.w2.numpy() >= d - 1e-7).all()  # an upper bound where not exact


@pytest.mark.parametrize("eps, eta", [(0.3, 0.1), (0.5, 0.3), (1.0, 1.0)])
def test_bounds_give_the_walks_of_exact_distances(digits, model, eps, eta):
    kwargs = dict(eps=eps, eta=eta, alpha=0.5, max_iter=5)
    fast = w2_perturbation(model, digits, bounds=True, generator=torch.Generator().manual_seed(1), **kwargs)
    slow = w2_perturbation(model, digits, bounds=False, generator=torch.Generator().manual_seed(1), **kwargs)
    assert torch.equal(fast.images, slow.images)
    assert torch.equal(fast.steps, slow.steps) and torch.equal(fast.end, slow.end)
    assert slow.exact.all() and slow.solved == slow.tests == fast.tests
    assert fast.solved < slow.solved
    np.testing.assert_allclose(fast.w2[fast.exact].numpy(), slow.w2[fast.exact].numpy(), rtol=1e-12)
    assert (fast.w2 >= slow.w2 - 1e-12).all() and (fast.w2 <= eps).all()


def test_bounds_bracket_the_exact_distance(digits):
    gen = torch.Generator().manual_seed(0)
    field = random_field(
        len(digits), 28, 28, torch.linspace(0.2, 3.0, len(digits)), sigma=2.0, generator=gen, device="cpu"
    )
    moved = warp(digits, field)
    noise = torch.rand(digits.shape, generator=gen) * (torch.rand(digits.shape, generator=gen) < 0.3)
    for a, b in ((digits, moved), (digits, noise), (moved, noise)):
        lower, upper = w2_bounds(
            to_histogram(a, torch.float64).view(-1, 28, 28), to_histogram(b, torch.float64).view(-1, 28, 28)
        )
        d = torch.as_tensor(pot_w2(a, b))
        assert (lower <= d).all() and (d <= upper).all()
        assert (lower > 0.5 * d).all() and (upper < 3 * d).all()  # and they are not vacuous
    shifted = torch.roll(torch.nn.functional.pad(digits, (3, 3, 3, 3)), shifts=(2, -1), dims=(2, 3))
    lower, upper = w2_bounds(
        to_histogram(torch.nn.functional.pad(digits, (3, 3, 3, 3)), torch.float64).view(-1, 34, 34),
        to_histogram(shifted, torch.float64).view(-1, 34, 34),
    )
    torch.testing.assert_close(lower, torch.full_like(lower, 5**0.5))  # a translation: both exact
    torch.testing.assert_close(upper, torch.full_like(upper, 5**0.5))


def test_stopping_probability_one_stops_after_the_first_accepted_step(digits, model):
    res = w2_perturbation(model, digits, eps=5.0, eta=1e6, max_iter=5)
    assert ((res.steps == 1) & (res.end == 0)).all()


def test_stopping_probability_zero_walks_until_the_cap(digits, model):
    res = w2_perturbation(model, digits, eps=50.0, eta=1e-4, max_iter=3)
    assert ((res.steps == 3) & (res.end == 2)).all() and END_REASONS[2] == "max_iter reached"


def test_transformation_is_a_batch_to_batch_g(digits):
    g = W2Perturbation(eps=0.5, eta=0.3, max_iter=4, seed=1)
    state = torch.get_rng_state()
    with torch.no_grad():
        gx = g(digits)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is untouched
    assert gx.shape == digits.shape and gx.dtype == digits.dtype and gx.device == digits.device
    assert not any(p.requires_grad for p in g.random_classifier.model_for(digits).parameters())
    assert (g.last_result_.w2 <= 0.5).all() and (g.last_result_.steps > 0).any()
    again = W2Perturbation(eps=0.5, eta=0.3, max_iter=4, seed=1)(digits)
    torch.testing.assert_close(gx, again)
    fresh = W2Perturbation(eps=0.5, eta=1e6, max_iter=1, redraw=True, seed=1)
    assert not torch.equal(fresh(digits), fresh(digits))
    assert W2Perturbation(eps=0.5, eta=0.3, max_iter=2, seed=1)(digits.double()).dtype == torch.float64


def test_inputs_are_converted_and_validated(digits, model):
    ref = w2_perturbation(
        model, digits, eps=0.5, eta=0.3, max_iter=2, generator=torch.Generator().manual_seed(0)
    )
    for variant in (digits.numpy(), digits.double(), digits.transpose(-1, -2).contiguous().transpose(-1, -2)):
        out = w2_perturbation(
            model, variant, eps=0.5, eta=0.3, max_iter=2, generator=torch.Generator().manual_seed(0)
        )
        torch.testing.assert_close(out.images, ref.images)
    bad = digits.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ParameterError, match="images contains NaN"):
        w2_perturbation(model, bad, eps=1.0, eta=1.0)
    with pytest.raises(ParameterError, match="x contains NaN"):
        W2Perturbation()(bad)
    with pytest.raises(ParameterError, match="images has negative pixels"):
        w2_perturbation(model, digits - 0.5, eps=1.0, eta=1.0)
    with pytest.raises(ParameterError, match="images has 3 channels"):
        w2_perturbation(model, digits.repeat(1, 3, 1, 1), eps=1.0, eta=1.0)
    assert W2Perturbation(max_iter=1)(digits.repeat(1, 3, 1, 1)).shape == (
        6,
        3,
        28,
        28,
    )  # its own net: 3 channels
    with pytest.raises(ParameterError, match="images is an empty batch"):
        w2_perturbation(model, digits[:0], eps=1.0, eta=1.0)
    with pytest.raises(TypeError, match="generator"):
        w2_perturbation(model, digits, eps=1.0, eta=1.0, generator=0)
    with pytest.raises(TypeError, match="model"):
        W2Perturbation(model="cnn")


def test_bad_parameters_raise(digits, model):
    with pytest.raises(ParameterError, match="eps"):
        w2_perturbation(model, digits, eps=-1.0, eta=1.0)
    with pytest.raises(ParameterError, match="eta"):
        w2_perturbation(model, digits, eps=1.0, eta=0.0)
    with pytest.raises(ParameterError, match="alpha"):
        W2Perturbation(alpha=0.0)
    with pytest.raises(ParameterError, match="max_iter"):
        W2Perturbation(max_iter=0)
    with pytest.raises(ParameterError, match="n_random_classes"):
        W2Perturbation(n_random_classes=1)
    with pytest.raises(ParameterError, match="bounds"):
        W2Perturbation(bounds="yes")
    for seed in (None, -1, 2**32, 0.5):
        with pytest.raises(ParameterError, match="seed"):
            W2Perturbation(seed=seed)
    with pytest.raises(ParameterError, match="images must have shape"):
        w2_perturbation(model, digits[0], eps=1.0, eta=1.0)
