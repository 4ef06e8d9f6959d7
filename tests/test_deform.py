"""Tests of infoclust.deform: warping conventions, smoothing, gradients, random fields."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from infoclust.deform import (
    RandomDeformation,
    affine_field,
    field_norm,
    gaussian_filter,
    image_gradient,
    random_field,
    t_norm,
    warp,
)
from infoclust.utils import ParameterError


def _images(n=3, c=2, h=7, w=9, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_zero_field_is_identity():
    x = _images()
    assert torch.allclose(warp(x, torch.zeros(3, 2, 7, 9)), x, atol=1e-6)


@pytest.mark.parametrize("channel", [0, 1])
def test_one_pixel_field_shifts_by_one_pixel(channel):
    x = _images()
    field = torch.zeros(3, 2, 7, 9)
    field[:, channel] = 1.0
    out = warp(x, field)
    if channel == 0:  # horizontal: out[..., j] = x[..., j + 1], last column outside -> 0
        assert torch.allclose(out[..., :-1], x[..., 1:], atol=1e-6)
        assert out[..., -1].abs().max() == 0
    else:
        assert torch.allclose(out[..., :-1, :], x[..., 1:, :], atol=1e-6)
        assert out[..., -1, :].abs().max() == 0


def test_half_pixel_is_bilinear_and_per_sample():
    x = _images(n=2)
    field = torch.zeros(2, 2, 7, 9)
    field[1, 0] = 0.5  # only the second sample moves
    out = warp(x, field)
    assert torch.allclose(out[0], x[0], atol=1e-6)
    assert torch.allclose(out[1, ..., :-1], 0.5 * (x[1, ..., :-1] + x[1, ..., 1:]), atol=1e-6)


def test_warp_is_differentiable():
    x = _images().requires_grad_()
    field = torch.full((3, 2, 7, 9), 0.3, requires_grad=True)
    warp(x, field).sum().backward()
    assert x.grad is not None and field.grad is not None and field.grad.abs().sum() > 0


def test_gaussian_filter_identity_mass_and_roughness():
    t = torch.randn(4, 2, 20, 20, generator=torch.Generator().manual_seed(1))
    assert torch.equal(gaussian_filter(t, 0.0), t)
    delta = torch.zeros(1, 1, 21, 21)
    delta[0, 0, 10, 10] = 1.0
    assert gaussian_filter(delta, 1.5).sum().item() == pytest.approx(1.0, abs=1e-5)

    def roughness(f):  # mean squared difference of neighbours relative to the field's power
        d = (f[..., 1:, :] - f[..., :-1, :]).pow(2).mean() + (f[..., 1:] - f[..., :-1]).pow(2).mean()
        return (d / f.pow(2).mean()).item()

    r0, r1, r2 = (roughness(gaussian_filter(t, s)) for s in (0.0, 1.0, 3.0))
    assert r0 > r1 > r2


def test_gaussian_filter_matches_separable_convolution_with_zero_padding():
    t = torch.randn(3, 2, 9, 13, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for sigma in (0.5, 1.0, 3.0):  # 3.0: the kernel is wider than the image
        radius = max(1, int(4.0 * sigma + 0.5))
        k = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float64) / sigma) ** 2)
        k = k / k.sum()
        ref = F.conv2d(t.reshape(6, 1, 9, 13), k.view(1, 1, 1, -1), padding=(0, radius))
        ref = F.conv2d(ref, k.view(1, 1, -1, 1), padding=(radius, 0)).view_as(t)
        torch.testing.assert_close(gaussian_filter(t, sigma), ref)
        torch.testing.assert_close(
            gaussian_filter(t, sigma, power=2), gaussian_filter(gaussian_filter(t, sigma), sigma)
        )


def test_gaussian_filter_is_symmetric_operator():
    g = torch.Generator().manual_seed(2)
    u, v = torch.randn(1, 1, 9, 11, generator=g), torch.randn(1, 1, 9, 11, generator=g)
    assert (gaussian_filter(u, 2.0) * v).sum().item() == pytest.approx(
        (u * gaussian_filter(v, 2.0)).sum().item(), rel=1e-5
    )


def test_image_gradient_of_a_ramp():
    ramp = (3.0 * torch.arange(6.0)).view(1, 1, 1, 6) + (2.0 * torch.arange(5.0)).view(1, 1, 5, 1)
    g = image_gradient(ramp)
    assert g.shape == (1, 1, 2, 5, 6)
    assert torch.allclose(g[:, :, 0], torch.full((1, 1, 5, 6), 3.0))
    assert torch.allclose(g[:, :, 1], torch.full((1, 1, 5, 6), 2.0))


def test_t_norm_and_rms():
    f = torch.zeros(2, 2, 4, 4)
    f[0, 0, 1, 1], f[0, 1, 1, 1] = 3.0, 4.0
    assert torch.allclose(t_norm(f), torch.tensor([5.0, 0.0]))
    assert field_norm(f, "rms")[0].item() == pytest.approx(5.0 / 4.0)


@pytest.mark.parametrize("norm", ["max", "rms"])
@pytest.mark.parametrize("sigma", [0.0, 2.0])
def test_random_field_has_requested_size(norm, sigma):
    f = random_field(
        5, 12, 10, 1.5, sigma=sigma, norm=norm, generator=torch.Generator().manual_seed(0), device="cpu"
    )
    assert f.shape == (5, 2, 12, 10)
    assert torch.allclose(field_norm(f, norm), torch.full((5,), 1.5), atol=1e-5)
    assert not torch.allclose(f[0], f[1])  # one field per sample
    per = random_field(3, 6, 6, torch.tensor([0.0, 1.0, 2.0]), device="cpu")
    assert torch.allclose(t_norm(per), torch.tensor([0.0, 1.0, 2.0]), atol=1e-5)


def test_random_field_reproducible_with_generator():
    a = random_field(2, 8, 8, 1.0, 1.0, generator=torch.Generator().manual_seed(5), device="cpu")
    b = random_field(2, 8, 8, 1.0, 1.0, generator=torch.Generator().manual_seed(5), device="cpu")
    assert torch.equal(a, b)


def test_random_deformation_callable():
    x = _images(n=4, c=1, h=16, w=16)
    g = RandomDeformation(magnitude=(0.5, 2.0), sigma=2.0, seed=0)
    out = g(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.allclose(out, x)
    assert torch.allclose(RandomDeformation(0.0)(x), x, atol=1e-6)
    assert "sigma=2.0" in repr(g)


def test_random_deformation_owns_its_randomness():
    x = _images(n=4, c=1, h=16, w=16)
    state = torch.get_rng_state()
    a = RandomDeformation(magnitude=(0.5, 2.0), sigma=2.0, seed=3)
    first, second = a(x), a(x)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is untouched
    assert not torch.equal(first, second)  # a fresh field per call
    b = RandomDeformation(magnitude=(0.5, 2.0), sigma=2.0, seed=3)
    assert torch.equal(b(x), first) and torch.equal(b(x), second)
    assert not torch.equal(RandomDeformation(magnitude=(0.5, 2.0), sigma=2.0, seed=4)(x), first)


def test_inputs_numpy_noncontiguous_and_float64():
    x = _images(n=2, c=1, h=8, w=8)
    field = torch.full((2, 2, 8, 8), 0.5)
    ref = warp(x, field)
    torch.testing.assert_close(warp(x.numpy(), field.numpy()), ref)
    xt = x.transpose(-1, -2).contiguous().transpose(-1, -2)  # same values, not contiguous
    assert not xt.is_contiguous()
    torch.testing.assert_close(warp(xt, field), ref)
    out64 = warp(x.double(), field)
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64.float(), ref)
    assert gaussian_filter(np.ones((1, 1, 5, 5)), 1.0).shape == (1, 1, 5, 5)
    assert RandomDeformation(1.0, seed=0)(x.numpy()).shape == x.shape


def test_nan_and_bad_batches_are_rejected():
    x = _images(n=2, c=1, h=8, w=8)
    bad = x.clone()
    bad[0, 0, 3, 3] = float("nan")
    field = torch.zeros(2, 2, 8, 8)
    with pytest.raises(ParameterError, match="images.*NaN"):
        warp(bad, field)
    nan_field = field.clone()
    nan_field[1, 0, 0, 0] = float("inf")
    with pytest.raises(ParameterError, match="field.*NaN"):
        warp(x, nan_field)
    with pytest.raises(ParameterError, match="x.*NaN"):
        RandomDeformation(1.0, seed=0)(bad)
    with pytest.raises(ParameterError, match="images.*NaN"):
        image_gradient(bad)
    with pytest.raises(ParameterError, match="t.*NaN"):
        gaussian_filter(bad, 1.0)
    with pytest.raises(ParameterError, match="field.*NaN"):
        t_norm(nan_field)
    with pytest.raises(ParameterError, match="x is an empty batch"):
        RandomDeformation(1.0, seed=0)(x[:0])
    with pytest.raises(ParameterError, match="images must have shape"):
        warp(x[0], field)
    with pytest.raises(ParameterError, match="images .* at least 2 x 2"):
        image_gradient(torch.zeros(1, 1, 1, 5))
    with pytest.raises(TypeError, match="images has dtype torch.uint8"):
        warp((255 * x).to(torch.uint8), field)
    with pytest.raises(ParameterError, match="power"):
        gaussian_filter(x, 1.0, power=0)


def test_randomness_arguments():
    with pytest.raises(TypeError, match="generator"):
        random_field(2, 4, 4, 1.0, generator=0)
    for seed in (None, -1, 2**32, 1.5, "0"):
        with pytest.raises(ParameterError, match="seed"):
            RandomDeformation(1.0, seed=seed)
    with pytest.raises(TypeError, match="generator"):
        RandomDeformation(1.0, generator=torch.Generator())


def test_bad_inputs():
    x = _images()
    with pytest.raises(ParameterError, match="field"):
        warp(x, torch.zeros(3, 2, 5, 5))
    with pytest.raises(ParameterError, match="field"):
        warp(x, torch.zeros(3, 3, 7, 9))
    with pytest.raises(ParameterError, match="images"):
        warp(x[0], torch.zeros(3, 2, 7, 9))
    with pytest.raises(ParameterError, match="sigma"):
        gaussian_filter(x, -1.0)
    with pytest.raises(ParameterError, match="norm"):
        random_field(2, 4, 4, 1.0, norm="l1")
    with pytest.raises(ParameterError, match="magnitude"):
        random_field(2, 4, 4, -1.0)
    with pytest.raises(ParameterError, match="magnitude"):
        RandomDeformation((2.0, 1.0))


def test_affine_field_shift_rotation_and_scale():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 6] = 1.0  # two pixels right of the centre
    assert torch.allclose(warp(x, affine_field(9, 9, shift=(1.0, 0.0)))[0, 0, 4, 7], torch.tensor(1.0))
    up = warp(x, affine_field(9, 9, angle=90.0))  # counter-clockwise on screen: to above the centre
    assert up[0, 0, 2, 4].item() == pytest.approx(1.0, abs=1e-5)
    far = warp(x, affine_field(9, 9, scale=1.5))  # 2 px -> 3 px from the centre
    assert far[0, 0, 4, 7].item() == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(affine_field(5, 7), torch.zeros(1, 2, 5, 7), atol=1e-6)
