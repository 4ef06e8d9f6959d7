"""ADef (infoclust.adef) on a linear classifier whose minimal deformation is known."""

import numpy as np
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
    expected[0, 0] = SHIFT * w  # uniform shift along x on the support
    torch.testing.assert_close(step, expected, atol=1e-9, rtol=0)


@pytest.mark.parametrize("max_iter", [1, 50])
def test_adef_finds_the_known_minimal_deformation(max_iter):
    x, model, _ = ramp_and_linear_model()
    res = adef(model, x, sigma=0.0, overshoot=1.2, max_iter=max_iter)
    assert res.original_label.item() == 0 and res.label.item() == 1 and res.fooled.item()
    assert res.iterations.item() >= 1
    assert res.t_norm.item() == pytest.approx(1.2 * SHIFT, rel=1e-6)
    torch.testing.assert_close(res.t_norm, t_norm(res.field))


def test_max_norm_caps_the_steps_and_the_overshoot():
    x, model, _ = ramp_and_linear_model()
    stuck = adef(model, x, sigma=0.0, max_norm=0.9 * SHIFT)  # the only step reaches SHIFT
    assert not stuck.fooled.item() and stuck.t_norm.item() == 0.0 and stuck.iterations.item() == 1
    capped = adef(model, x, sigma=0.0, max_norm=1.1 * SHIFT, overshoot=1.2)  # the overshoot stops at 1.1
    assert capped.overshot.item() and capped.fooled.item()
    assert capped.t_norm.item() == pytest.approx(1.1 * SHIFT, rel=1e-6)
    with pytest.raises(ParameterError, match="max_norm"):
        adef(model, x, max_norm=0.0)


def test_tol_stops_an_iterate_that_sits_on_the_boundary():
    x, model, _ = ramp_and_linear_model()
    res = adef(model, x, sigma=0.0, max_iter=50, tol=1e-4)
    assert res.fooled.item() and res.iterations.item() <= 3


def test_smoothed_adef_flips_and_respects_the_lower_bound():
    x, model, _ = ramp_and_linear_model()
    res = adef(model, x, sigma=1.0, overshoot=1.2, max_iter=50)
    assert res.fooled.item()
    # the iterates approach the boundary, which no field smaller than SHIFT reaches
    assert res.t_norm.item() >= 1.2 * SHIFT * (1 - 1e-6)
    assert res.t_norm.item() < 1.2 * 2 * SHIFT


def two_candidates_model() -> tuple[torch.Tensor, nn.Module]:
    """The ramp and a 3-class linear model: class 1 is reached by a shift of +0.5 px on rows 2-5,
    class 2 by a shift of -0.3 px on rows 10-13 (columns 4-11 both); class 0 is the label."""
    x = (torch.arange(SIZE, dtype=torch.float64) * SLOPE).expand(SIZE, SIZE).reshape(1, 1, SIZE, SIZE)
    w1, w2 = torch.zeros(SIZE, SIZE, dtype=torch.float64), torch.zeros(SIZE, SIZE, dtype=torch.float64)
    w1[2:6, 4:12], w2[10:14, 4:12] = 1.0, -1.0
    lin = nn.Linear(SIZE * SIZE, 3, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[1], lin.weight[2] = w1.flatten(), w2.flatten()
        lin.bias.zero_()
        lin.bias[1] = -(w1 * x[0, 0]).sum() - SLOPE * 32 * 0.5
        lin.bias[2] = -(w2 * x[0, 0]).sum() - SLOPE * 32 * 0.3
    return x, nn.Sequential(nn.Flatten(), lin).eval()


def test_step_keeps_the_candidate_with_the_smallest_accumulated_field():
    x, model = two_candidates_model()
    label = torch.zeros(1, dtype=torch.long)
    alone = adef_step(model, x, label, sigma=0.0)  # class 2's step is the shorter: -0.3 px
    assert alone[0, 0, 12, 8].item() == pytest.approx(-0.3) and alone[0, 0, 4, 8].item() == 0.0
    field = torch.full((1, 2, SIZE, SIZE), -0.5, dtype=torch.float64)
    field[:, 1] = 0.0
    step = adef_step(model, x, label, sigma=0.0, field=field)  # -0.5 + 0.5 = 0 beats -0.5 - 0.3
    assert step[0, 0, 4, 8].item() == pytest.approx(0.5) and step[0, 0, 12, 8].item() == 0.0
    only2 = adef_step(model, x, label, sigma=0.0, field=field, candidates=torch.tensor([[2]]))
    torch.testing.assert_close(only2, alone)


def test_random_classifier_batch_flips_and_images_are_independent():
    x, _ = load_dataset("mnist5k", n=8, seed=1)
    model = random_classifier(1, 10, seed=1, device="cpu")
    res = adef(model, x, max_iter=30, candidates=4)
    assert res.images.shape == x.shape and res.field.shape == (8, 2, 28, 28)
    assert res.fooled.all()
    assert (res.iterations >= 1).all() and (res.iterations <= 30).all()
    torch.testing.assert_close(res.label, model(res.images).argmax(1))
    alone = adef(model, x[5:6], max_iter=30, candidates=4)
    torch.testing.assert_close(alone.field, res.field[5:6], atol=1e-5, rtol=1e-4)


def test_overshoot_only_where_the_label_did_not_change_or_ties():
    x, _ = load_dataset("mnist5k", n=12, seed=3)
    model = random_classifier(1, 10, seed=2, device="cpu")
    plain = adef(model, x, max_iter=3, overshoot=1.0)
    over = adef(model, x, max_iter=3, overshoot=1.2)
    assert not plain.overshot.any()
    assert (~plain.fooled).any() and plain.fooled.any()  # both cases occur
    assert over.overshot[~plain.fooled].all()
    flipped = plain.fooled & ~over.overshot
    assert flipped.any()
    torch.testing.assert_close(over.field[flipped], plain.field[flipped])
    torch.testing.assert_close(over.field[over.overshot], 1.2 * plain.field[over.overshot])
    torch.testing.assert_close(over.t_norm, t_norm(over.field))


def test_inputs_are_converted_and_validated():
    x, _ = load_dataset("mnist5k", n=4, seed=1)
    model = random_classifier(1, 10, seed=1, device="cpu")
    ref = adef(model, x, max_iter=3)
    for variant in (x.numpy(), x.double(), x.transpose(-1, -2).contiguous().transpose(-1, -2)):
        out = adef(model, variant, max_iter=3)
        assert out.images.dtype == torch.float32
        torch.testing.assert_close(out.field, ref.field)
    bad = x.clone()
    bad[1, 0, 5, 5] = float("nan")
    with pytest.raises(ParameterError, match="images contains NaN"):
        adef(model, bad)
    with pytest.raises(ParameterError, match="images has 3 channels, expected 1"):
        adef(model, x.repeat(1, 3, 1, 1))
    with pytest.raises(ParameterError, match="images is an empty batch"):
        adef(model, x[:0])
    with pytest.raises(TypeError, match="model"):
        adef(lambda t: t, x)
    with pytest.raises(ParameterError, match="model is in training mode"):
        adef(random_classifier(1, 10, seed=1, device="cpu").train(), x)
    labels = model(x).argmax(1)
    with pytest.raises(TypeError, match="labels"):
        adef_step(model, x, labels.float())
    with pytest.raises(ParameterError, match="labels must hold labels in \\[0, 10\\)"):
        adef_step(model, x, labels + 10)
    with pytest.raises(ParameterError, match="labels must have shape"):
        adef_step(model, x, labels[:2])
    with pytest.raises(ParameterError, match="field must have shape"):
        adef_step(model, x, labels, field=torch.zeros(4, 2, 5, 5))
    with pytest.raises(ParameterError, match="candidates"):
        adef_step(model, x, labels, candidates=torch.full((4, 2), 10))
    assert adef_step(model, x, labels.numpy()).shape == (4, 2, 28, 28)
    assert adef_step(model, x, np.asarray(labels.tolist()), candidates=torch.tensor([[3]] * 4)).shape == (
        4,
        2,
        28,
        28,
    )


def test_bad_parameters_raise():
    x, model, _ = ramp_and_linear_model()
    with pytest.raises(ParameterError, match="sigma"):
        adef(model, x, sigma=-1.0)
    with pytest.raises(ParameterError, match="overshoot"):
        adef(model, x, overshoot=0.9)
    with pytest.raises(ParameterError, match="max_iter"):
        adef(model, x, max_iter=0)
    with pytest.raises(ParameterError, match="candidates"):
        adef(model, x, candidates=2)
    with pytest.raises(ParameterError, match="images"):
        adef(model, x[0])
