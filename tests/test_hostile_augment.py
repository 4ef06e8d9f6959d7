"""Hostile inputs of the augmentations (:mod:`infoclust.augment`): refused naming the argument, or handled."""

from __future__ import annotations


import pytest
import torch
from test_hostile_common import X, X28, nan, noncontig, uint8
from test_hostile_common import case, collect, either, equals, shape_is, works, strict_test

from infoclust.augment import MNISTTransform, colour_jitter, crop_resize, random_affine


pytestmark = pytest.mark.usefixtures("one_thread")


def _cases() -> None:
    cr = lambda *a: crop_resize(*a)  # noqa: E731
    case("augment-crop-too-big", lambda: cr(X28(), 30, 24), "crop")
    case("augment-crop-zero", lambda: cr(X28(), 0, 24), "crop")
    case("augment-size-zero", lambda: cr(X28(), 20, 0), "size")
    case("augment-crop-rank3", lambda: cr(X28()[:, 0], 20, 24), "x")
    case("augment-crop-nan", lambda: cr(nan(X28()), 20, 24), "x ~nan")
    case("augment-crop-empty", lambda: cr(X28()[:0], 20, 24), "x ~EMPTY")
    either("augment-crop-uint8", lambda: cr(uint8(X28()), 20, 24), "x ~uint8")
    works(
        "augment-crop-noncontiguous",
        lambda: cr(noncontig(X28()), 20, 24),
        equals(lambda: cr(X28(), 20, 24)),
    )
    works("augment-crop-numpy", lambda: cr(X28().numpy(), 20, 24), equals(lambda: cr(X28(), 20, 24)))
    cj = lambda x, **k: colour_jitter(x, **k)  # noqa: E731
    case("augment-jitter-brightness-negative", lambda: cj(X(), brightness=-1.0), "brightness")
    case("augment-jitter-brightness-big", lambda: cj(X(), brightness=2.0), "brightness")
    case("augment-jitter-nan", lambda: cj(nan(X())), "x ~nan")
    case(
        "augment-affine-angle-length",
        lambda: random_affine(X(), torch.zeros(3), torch.ones(48), torch.zeros(48, 2)),
        "angle",
    )
    T = lambda **k: MNISTTransform(**k)  # noqa: E731
    case("augment-transform-max_angle-negative", lambda: T(max_angle=-1.0), "max_angle")
    case("augment-transform-p_rotate-two", lambda: T(p_rotate=2.0), "p_rotate")
    case("augment-transform-scales-empty", lambda: T(scales=()), "scales")
    case("augment-transform-scales-zero", lambda: T(scales=(0.0,)), "scales")
    case("augment-transform-extent-small", lambda: T(extent=0.5), "extent")
    case("augment-transform-jitter-short", lambda: T(jitter=(0.4,)), "jitter")
    case("augment-transform-scales-number", lambda: T(scales=0.8), "scales", exc="TypeError")
    case("augment-transform-nan", lambda: T()(nan(X())), "x ~nan")
    case("augment-transform-rank3", lambda: T()(X()[:, 0]), "x")
    case("augment-transform-empty", lambda: T()(X()[:0]), "x ~EMPTY")
    either("augment-transform-uint8", lambda: T()(uint8(X())), "x ~uint8")
    works("augment-transform-noncontiguous", lambda: T()(noncontig(X())), shape_is(48, 1, 8, 8))
    works("augment-transform-float64", lambda: T()(X().double()), shape_is(48, 1, 8, 8))


CASES = collect(_cases)
test_hostile_input = strict_test(CASES)
