"""ADef (infoclust.adef) on a linear classifier whose minimal deformation is known."""
import pytest
import torch
from torch import nn

from infoclust.adef import adef, adef_step
from infoclust.classifiers import random_classifier
from infoclust.data import load_dataset
from infoclust.deform import t_norm
from infoclust.utils import ParameterError

SIZE, SLOPE, SHIFT = 16, 1.0 / 16, 0.5


def ramp_and_linear_model() -> tuple[torch.Tensor, nn.Module, torch.Tensor]:
    """Image x(i, j) = SLOPE * j and a 2-class linear model whose boundary is a shift by SHIFT.

    F_0 = b, F_1 = <w, x> with w = 1 on an 8 x 8 block away from the border. Shifting the
    block's content by t pixels along x changes <w, x> by SLOPE * t * 64, exactly (bilinear
    interpolation of a linear ramp is exact), and no field with T-norm below SHIFT can reach
    the boundary, since |<w, x_tau> - <w, x>| <= SLOPE * 64 * ||tau||_T.
    """
    x = (torch.arange(SIZE, dtype=torch.float64) * SLOPE).expand(SIZE, SIZE).reshape(1, 1, SIZE, SIZE)
    w = torch.zeros(SIZE, SIZE, dtype=torch.float64)
    w[4:12, 4:12] = 1.0
    lin = nn.Linear(SIZE * SIZE, 2, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[1] = w.flatten()
        lin.bias.zero_()
        lin.bias[0] = (w * x[0, 0]).sum() + SLOPE * SHIFT * w.sum()
    return x, nn.Sequential(nn.Flatten(), lin).eval(), w


def test_step_is_the_minimal_translation_without_smoothing():
    x, model, w = ramp_and_linear_model()
    step = adef_step(model, x, torch.zeros(1, dtype=torch.long), sigma=0.0)
    expected = torch.zeros_like(step)
    expected[0, 0] = SHIFT * w                      # uniform shift along x on the support
    torch.testing.assert_close(step, expected, atol=1e-9, rtol=0)


@pytest.mark.parametrize("max_iter", [1, 50])
def test_adef_finds_the_known_minimal_deformation(max_iter):
    x, model, _ = ramp_and_linear_model()
    res = adef(model, x, sigma=0.0, overshoot=1.2, max_iter=max_iter)
    assert res.original_label.item() == 0 and res.label.item() == 1 and res.changed.item()
    assert res.iterations.item() >= 1
    assert res.t_norm.item() == pytest.approx(1.2 * SHIFT, rel=1e-6)
    torch.testing.assert_close(res.t_norm, t_norm(res.field))


def test_tol_stops_an_iterate_that_sits_on_the_boundary():
    x, model, _ = ramp_and_linear_model()
    res = adef(model, x, sigma=0.0, max_iter=50, tol=1e-4)
    assert res.changed.item() and res.iterations.item() <= 3


def test_smoothed_adef_flips_and_respects_the_lower_bound():
    x, model, _ = ramp_and_linear_model()
    res = adef(model, x, sigma=1.0, overshoot=1.2, max_iter=50)
    assert res.changed.item()
    # the iterates approach the boundary, which no field smaller than SHIFT reaches
    assert res.t_norm.item() >= 1.2 * SHIFT * (1 - 1e-6)
    assert res.t_norm.item() < 1.2 * 2 * SHIFT


def test_random_classifier_batch_flips_and_images_are_independent():
    x, _ = load_dataset("mnist5k", n=8, seed=1)
    model = random_classifier(1, 10, seed=1, device="cpu")
    res = adef(model, x, max_iter=30, candidates=4)
    assert res.images.shape == x.shape and res.field.shape == (8, 2, 28, 28)
    assert res.changed.all()
    assert (res.iterations >= 1).all() and (res.iterations <= 30).all()
    torch.testing.assert_close(res.label, model(res.images).argmax(1))
    alone = adef(model, x[5:6], max_iter=30, candidates=4)
    torch.testing.assert_close(alone.field, res.field[5:6], atol=1e-5, rtol=1e-4)


def test_bad_parameters_raise():
    x, model, _ = ramp_and_linear_model()
    with pytest.raises(ParameterError, match="sigma"):
        adef(model, x, sigma=-1.0)
    with pytest.raises(ParameterError, match="overshoot"):
        adef(model, x, overshoot=0.0)
    with pytest.raises(ParameterError, match="max_iter"):
        adef(model, x, max_iter=0)
    with pytest.raises(ParameterError, match="candidates"):
        adef(model, x, candidates=2)
    with pytest.raises(ParameterError, match="images"):
        adef(model, x[0])
