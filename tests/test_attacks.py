"""The Wasserstein attacks (infoclust.attacks): PGD with either projection, Frank-Wolfe, the
result, the robust-accuracy curve and the one classifier rule (shared with ADef and Algorithm 1)."""

import warnings

import pytest
import torch

from infoclust.adef import adef
from infoclust.attacks import (
    AttackResult,
    check_classifier,
    robust_accuracy,
    wasserstein_frank_wolfe,
    wasserstein_pgd,
)
from infoclust.classifiers import random_classifier
from infoclust.data import load_dataset
from infoclust.utils import ConvergenceWarning, ParameterError
from infoclust.w2_algorithm import w2_perturbation
from infoclust.wasserstein import w2_exact, wasserstein_exact


@pytest.fixture(scope="module")
def digits():
    x, _ = load_dataset("mnist5k", n=6, seed=3)
    return x


@pytest.fixture(scope="module")
def digits4():
    """The digits of the exact-projection tests (tests/test_exact_projection.py)."""
    x, _ = load_dataset("mnist5k", n=4, seed=5)
    return x


# ---------------------------------------------------------------- the attack


def test_pgd_with_a_random_classifier_and_no_labels(digits):
    model = random_classifier(1, 7, seed=0, device="cpu")
    with torch.no_grad():
        own = model(digits).argmax(1)
    res = wasserstein_pgd(
        model,
        digits,
        None,
        eps0=0.5,
        eps_factor=1.5,
        eps_every=2,
        alpha=0.1,
        lam=100.0,
        kernel_size=5,
        max_iter=6,
        verbose=False,
    )
    x_adv, eps, success = res.images, res.eps, res.fooled
    assert (
        isinstance(res, AttackResult)
        and x_adv.shape == digits.shape
        and (x_adv >= 0).all()
        and (x_adv <= 1).all()
    )
    with torch.no_grad():
        now = model(x_adv).argmax(1)
    assert torch.equal(success, now != own)  # y=None means the model's own labels
    # the radius grew by 1.5 every 2 iterations while the image resisted
    allowed = torch.tensor([0.5 * 1.5**j for j in range(4)], dtype=torch.float64)
    assert all(torch.isclose(e, allowed).any() for e in eps)
    assert (eps[~success] == 0.5 * 1.5**3).all()
    assert (x_adv != digits).flatten(1).any(1).all()  # every image was moved
    # every image took a step; an image stops once fooled, the others ran all 6
    assert (res.iterations >= 1).all() and (res.iterations[~success] == 6).all()


def test_pgd_checks_labels_images_and_reports_capped_projections(digits):
    model = random_classifier(1, 10, seed=0, device="cpu")
    with pytest.raises(ParameterError, match=r"y must hold labels in \[0, 10\)"):
        wasserstein_pgd(model, digits, torch.arange(1, 7) + 4, max_iter=1, verbose=False)  # 1-based: 10
    with pytest.raises(ParameterError, match="x must be images in"):
        wasserstein_pgd(model, 2 * digits, None, max_iter=1, verbose=False)
    with pytest.raises(TypeError, match="x has dtype torch.uint8"):
        wasserstein_pgd(model, (255 * digits).to(torch.uint8), None, max_iter=1, verbose=False)
    with pytest.raises(ParameterError, match="proj_iter"):
        wasserstein_pgd(model, digits, None, proj_iter=0, verbose=False)
    with pytest.warns(ConvergenceWarning, match="projections stopped at proj_iter=2"):
        wasserstein_pgd(model, digits, None, max_iter=1, proj_iter=2, verbose=False)


def test_robust_accuracy_counts_radii():
    eps = torch.tensor([0.0, 0.7, 1.0, 1.5, 0.9])
    success = torch.tensor([True, True, True, True, False])
    acc = robust_accuracy(eps, success, [0.0, 0.7, 1.0, 2.0])
    torch.testing.assert_close(acc, torch.tensor([0.8, 0.6, 0.4, 0.2]))


# ---------------------------------------------------------------- the attacks


class OnePixel(torch.nn.Module):
    """Class 1 iff the pixel (3, 3) is brighter than 0.05."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(50.0))

    def forward(self, x):
        s = self.scale * (x[:, 0, 3, 3] - 0.05)
        return torch.stack([-s, s], 1)


@pytest.mark.parametrize("attack", ["sinkhorn", "exact", "frank-wolfe"])
def test_every_attack_fools_a_one_pixel_classifier_inside_the_ball(attack):
    x = torch.zeros(2, 1, 7, 7)
    x[:, 0, 3, 4] = 1.0  # one pixel away: cost 1 per unit mass
    y = torch.zeros(2, dtype=torch.long)
    kw = {"eps0": 0.2, "eps_factor": 1.0, "kernel_size": 3, "max_iter": 10, "verbose": False}
    if attack == "frank-wolfe":
        res = wasserstein_frank_wolfe(OnePixel().eval(), x, y, **kw)
    else:
        res = wasserstein_pgd(OnePixel().eval(), x, y, projection=attack, alpha=0.2, lam=1e4, **kw)
    x_adv = res.images
    assert res.fooled.all() and (x_adv[:, 0, 3, 3] > 0.05).all()
    # exact attacks are in the ball to rounding; projected Sinkhorn's clipping may add a little
    slack = 1e-2 if attack == "sinkhorn" else 1e-6
    assert (w2_exact(x, x_adv) ** 2 <= 0.2 * (1 + slack)).all()


@pytest.mark.parametrize("attack", ["sinkhorn", "exact", "frank-wolfe"])
def test_every_attack_runs_under_no_grad_as_an_evaluation_calls_it(attack):
    """w2_shift and cluster_change_rate call g under torch.no_grad(): the attacks still step."""
    x = torch.zeros(2, 1, 7, 7)
    x[:, 0, 3, 4] = 1.0
    y = torch.zeros(2, dtype=torch.long)
    kw = {"eps0": 0.2, "eps_factor": 1.0, "kernel_size": 3, "max_iter": 10, "verbose": False}
    with torch.no_grad():
        if attack == "frank-wolfe":
            res = wasserstein_frank_wolfe(OnePixel().eval(), x, y, **kw)
        else:
            res = wasserstein_pgd(OnePixel().eval(), x, y, projection=attack, alpha=0.2, lam=1e4, **kw)
    assert res.fooled.all() and not res.images.requires_grad


def test_exact_attacks_on_digits_return_feasible_images(digits4):
    digits = digits4[2:]  # PGD fools the second one, not the first: both paths (a second faster)
    model = random_classifier(1, 10, seed=0, device="cpu")
    kw = {"eps0": 0.3, "eps_factor": 1.5, "eps_every": 1, "kernel_size": 5, "max_iter": 3, "verbose": False}
    for res in (
        wasserstein_pgd(model, digits, None, projection="exact", **kw),
        wasserstein_frank_wolfe(model, digits, None, **kw),
    ):
        x_adv, eps, success = res.images, res.eps, res.fooled
        assert x_adv.dtype == digits.dtype and (x_adv >= 0).all() and (x_adv <= 1).all()
        torch.testing.assert_close(x_adv.sum((1, 2, 3)), digits.sum((1, 2, 3)), rtol=1e-5, atol=0)
        assert (w2_exact(digits, x_adv) ** 2 <= eps * (1 + 1e-5)).all()
        with torch.no_grad():
            assert torch.equal(success, model(x_adv).argmax(1) != model(digits).argmax(1))


def test_attack_inputs_are_checked(digits4):
    digits = digits4
    model = random_classifier(1, 10, seed=0, device="cpu")
    with pytest.raises(ParameterError, match=r"y must hold labels in \[0, 10\)"):
        wasserstein_frank_wolfe(model, digits, torch.full((4,), 10), verbose=False)
    with pytest.raises(ParameterError, match="gamma"):
        wasserstein_frank_wolfe(model, digits, None, gamma=0.0, verbose=False)
    with pytest.raises(ParameterError, match="box_iter"):
        wasserstein_frank_wolfe(model, digits, None, box_iter=0, verbose=False)
    with pytest.raises(ParameterError, match="projection"):
        wasserstein_pgd(model, digits, None, projection="dual", verbose=False)
    nan = digits.clone()
    nan[0, 0, 5, 5] = float("nan")
    with pytest.raises(ParameterError, match="x contains NaN"):
        wasserstein_frank_wolfe(model, nan, None, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wasserstein_frank_wolfe(model, digits, None, max_iter=1, verbose=False)


class Rightward(torch.nn.Module):
    """Two classes; class 1's logit grows with the mean column of the mass but stays below
    class 0's within a W1 radius of 0.5 (the mean moves by at most W1): it cannot be fooled,
    and its gradient asks every attack to move all the mass right."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(0.1, dtype=torch.float64))

    def forward(self, x):
        column = torch.arange(x.shape[-1], dtype=x.dtype)
        mean = (x.sum((1, 2)) * column).sum(1) / x.sum((1, 2, 3))
        s = self.scale * mean - 5.0
        return torch.stack([torch.zeros_like(s), s], 1)


@pytest.mark.parametrize("attack", ["exact", "frank-wolfe"])
def test_exact_attacks_spend_their_radius_on_a_classifier_they_cannot_fool(digits4, attack):
    """The paper's MNIST settings (radius 0.5 in W1, cost d, 5 x 5 window, fixed radius,
    PGD step 0.1, gamma 1e-3), 30 and 15 iterations instead of 300 (enough to spend it here)."""
    x = digits4[:2].double()
    y = torch.zeros(2, dtype=torch.long)
    kw = {"eps0": 0.5, "eps_factor": 1.0, "kernel_size": 5, "p": 1.0, "verbose": False}
    if attack == "exact":
        res = wasserstein_pgd(Rightward().eval(), x, y, projection="exact", alpha=0.1, max_iter=30, **kw)
    else:
        res = wasserstein_frank_wolfe(Rightward().eval(), x, y, gamma=1e-3, max_iter=15, **kw)
    x_adv = res.images
    assert (
        not res.fooled.any()
        and (res.iterations == (30 if attack == "exact" else 15)).all()
        and (x_adv >= 0).all()
        and (x_adv <= 1).all()
    )
    used = wasserstein_exact(x, x_adv, p=1.0) / 0.5
    assert (used > 0.9).all() and (used <= 1 + 1e-6).all(), used


# ---------------------------------------------------------------- the one classifier rule


def test_every_attack_refuses_a_classifier_in_training_mode(digits):
    """One rule for the Wasserstein attacks, ADef and Algorithm 1: eval mode, or an error
    (batch normalisation in training mode would use and update the attacked batch's
    statistics)."""
    model = random_classifier(1, 10, seed=0, device="cpu").train()
    attacks = {
        "pgd": lambda: wasserstein_pgd(model, digits, max_iter=1, verbose=False),
        "pgd exact": lambda: wasserstein_pgd(model, digits, projection="exact", max_iter=1, verbose=False),
        "frank-wolfe": lambda: wasserstein_frank_wolfe(model, digits, max_iter=1, verbose=False),
        "adef": lambda: adef(model, digits, max_iter=1),
        "algorithm 1": lambda: w2_perturbation(model, digits, 1.0, 0.5, max_iter=1),
    }
    for name, attack in attacks.items():
        with pytest.raises(ParameterError, match="model is in training mode: call model.eval"):
            attack()
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        wasserstein_pgd(lambda x: x, digits, verbose=False)


def test_check_classifier_moves_the_images_to_the_model():
    model = random_classifier(1, 10, seed=0, device="cpu").double()
    x = check_classifier(model, torch.rand(2, 1, 8, 8, dtype=torch.float32), "x")
    assert x.dtype == torch.float64 and x.is_contiguous()
    with pytest.raises(ParameterError, match="x"):
        check_classifier(model, torch.rand(2, 3, 8, 8), "x")  # the model's first convolution takes 1 channel
