"""Tests of the batched perturbations g in infoclust.augment."""

import math

import pytest
import torch

from infoclust.augment import CIFARTransform, MNISTTransform, colour_jitter, crop_resize, random_affine
from infoclust.utils import ParameterError


def test_mnist_transform_keeps_shape_device_range():
    x = torch.rand(16, 1, 24, 24)
    out = MNISTTransform()(x)
    assert out.shape == x.shape and out.device == x.device and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1


def test_parameters_are_drawn_per_sample():
    x = torch.rand(1, 1, 24, 24).expand(32, -1, -1, -1).contiguous()
    out = MNISTTransform()(x)
    diffs = (out[1:] - out[:1]).abs().flatten(1).amax(1)
    assert (diffs > 1e-3).all()


def test_equal_seeds_give_equal_perturbations():
    x = torch.rand(8, 1, 24, 24)
    a = MNISTTransform(seed=3)(x)
    b = MNISTTransform(seed=3)(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, MNISTTransform(seed=4)(x))


def test_identity_settings_reproduce_the_input():
    x = torch.rand(4, 1, 12, 12)
    g = MNISTTransform(max_angle=0, scales=(1.0,), extent=1.0, jitter=(0, 0, 0, 0))
    torch.testing.assert_close(g(x), x, atol=1e-5, rtol=0)


def test_random_affine_quarter_turn_is_rot90():
    x = torch.rand(2, 3, 7, 7)
    out = random_affine(x, torch.full((2,), math.pi / 2), torch.ones(2), torch.zeros(2, 2))
    torch.testing.assert_close(out, torch.rot90(x, 1, (2, 3)), atol=1e-5, rtol=0)


def test_random_affine_shift_moves_content():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 3, 5] = 1.0
    # sample window centred one pixel (2/8 in normalised units) to the right: content moves left
    out = random_affine(x, torch.zeros(1), torch.ones(1), torch.tensor([[0.25, 0.0]]))
    assert out[0, 0, 3, 4] == pytest.approx(1.0)


def test_colour_jitter_leaves_grey_colour_alone_and_changes_rgb_hue():
    grey = torch.rand(4, 1, 6, 6)
    torch.testing.assert_close(colour_jitter(grey, 0, 0, 0.4, 0.5), grey)
    rgb = torch.rand(4, 3, 6, 6)
    torch.testing.assert_close(colour_jitter(rgb, 0, 0, 0, 0), rgb, atol=1e-5, rtol=0)
    assert (colour_jitter(rgb, 0, 0, 0, 0.5) - rgb).abs().max() > 1e-2


def test_crop_resize():
    x = torch.rand(3, 1, 28, 28)
    assert crop_resize(x, 20, 24).shape == (3, 1, 24, 24)
    torch.testing.assert_close(crop_resize(x, 20, 20), x[..., 4:24, 4:24])
    with pytest.raises(ParameterError, match="crop"):
        crop_resize(x, 30, 24)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"max_angle": -1}, "max_angle"),
        ({"p_rotate": 2}, "p_rotate"),
        ({"scales": ()}, "scales"),
        ({"scales": (0.8, 1.5)}, "extent"),
        ({"jitter": (0.4, 0.4)}, "jitter"),
    ],
)
def test_bad_parameters_are_named(kwargs, name):
    with pytest.raises(ParameterError, match=name):
        MNISTTransform(**kwargs)


def test_draws_do_not_depend_on_the_global_generator_and_leave_it_alone():
    x = torch.rand(8, 3, 12, 12)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a = MNISTTransform(seed=5)(x)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(1)
    assert torch.equal(MNISTTransform(seed=5)(x), a)
    b = colour_jitter(x, generator=torch.Generator().manual_seed(2))
    assert torch.equal(colour_jitter(x, generator=torch.Generator().manual_seed(2)), b)


def test_bad_seeds_generators_and_images_are_named():
    with pytest.raises(ParameterError, match="seed"):
        MNISTTransform(seed=None)
    with pytest.raises(TypeError, match="generator"):
        colour_jitter(torch.rand(2, 3, 4, 4), generator=3)
    with pytest.raises(ParameterError, match="hue"):
        colour_jitter(torch.rand(2, 3, 4, 4), hue=0.7)
    with pytest.raises(ParameterError, match="x is an empty batch"):
        MNISTTransform()(torch.rand(0, 1, 8, 8))
    with pytest.raises(TypeError, match="x has dtype torch.uint8"):
        MNISTTransform()(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ParameterError, match=r"shift must be a tensor of shape \(2, 2\)"):
        random_affine(torch.rand(2, 1, 4, 4), torch.zeros(2), torch.ones(2), torch.zeros(2))


def test_numpy_and_noncontiguous_batches_work():
    x = torch.rand(4, 1, 12, 12)
    noncontig = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    assert torch.equal(MNISTTransform(seed=1)(noncontig), MNISTTransform(seed=1)(x))
    assert torch.equal(MNISTTransform(seed=1)(x.numpy()), MNISTTransform(seed=1)(x))


def test_cifar_transform_flips_half_the_images_and_keeps_the_crop_inside():
    x = torch.rand(400, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    plain = CIFARTransform(scales=(1.0,), jitter=(0, 0, 0, 0), seed=3)(x)  # the crop is the image
    flipped = torch.isclose(plain, x.flip(-1), atol=1e-5).flatten(1).all(1)
    kept = torch.isclose(plain, x, atol=1e-5).flatten(1).all(1)
    assert bool((flipped | kept).all()) and 0.4 < flipped.float().mean() < 0.6
    g = CIFARTransform(jitter=(0, 0, 0, 0), p_flip=0.0, seed=3)  # the paper's 20 of 32 px window
    out = g(torch.ones(50, 3, 32, 32))
    assert torch.allclose(out, torch.ones_like(out), atol=1e-5), "no zero padding enters the view"
    assert torch.equal(CIFARTransform(seed=5)(x[:8]), CIFARTransform(seed=5)(x[:8]))


def test_mnist_transform_draws_no_flip_by_default():
    """p_flip = 0 draws nothing more: the digits' g gives the same numbers as before the flip existed."""
    x = torch.rand(16, 1, 24, 24, generator=torch.Generator().manual_seed(1))
    a, b = MNISTTransform(seed=2), MNISTTransform(seed=2)
    a(x)
    b(x)
    assert torch.equal(a.generator.get_state(), b.generator.get_state())
    c = MNISTTransform(p_flip=0.5, seed=2)
    c(x)
    assert not torch.equal(a.generator.get_state(), c.generator.get_state())
    with pytest.raises(ParameterError, match="p_flip"):
        MNISTTransform(p_flip=1.5)
