"""Hostile inputs of the deformations (:mod:`infoclust.deform`): refused naming the argument, or handled."""

from __future__ import annotations

import math

import pytest
import torch
from test_hostile_common import X28, gen, inf, nan, noncontig, uint8
from test_hostile_common import case, collect, either, equals, shape_is, works, strict_test

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


pytestmark = pytest.mark.usefixtures("one_thread")


def _cases() -> None:
    xs = lambda: X28(4)  # noqa: E731
    f = lambda n=4, s=28: 0.5 * torch.randn(n, 2, s, s, generator=gen())  # noqa: E731
    wp = lambda x, fld: warp(x, fld)  # noqa: E731
    case("deform-warp-rank3", lambda: wp(xs()[:, 0], f()), "images")
    case("deform-warp-field-channels", lambda: wp(xs(), torch.zeros(4, 3, 28, 28)), "field")
    case("deform-warp-field-size", lambda: wp(xs(), f(4, 8)), "field")
    case("deform-warp-nan", lambda: wp(nan(xs()), f()), "images ~nan")
    case("deform-warp-field-nan", lambda: wp(xs(), nan(f())), "field ~nan")
    case("deform-warp-empty", lambda: wp(xs()[:0], f()[:0]), "images ~EMPTY")
    either("deform-warp-uint8", lambda: wp(uint8(xs()), f()), "images ~uint8")
    either("deform-warp-numpy", lambda: wp(xs().numpy(), f()), "images", exc="TypeError")
    works("deform-warp-float64", lambda: wp(xs().double(), f()), equals(lambda: wp(xs(), f()), 1e-4))
    works(
        "deform-warp-noncontiguous",
        lambda: wp(noncontig(xs()), noncontig(f())),
        equals(lambda: wp(xs(), f())),
    )
    gf = lambda t, s=1.0: gaussian_filter(t, s)  # noqa: E731
    case("deform-filter-sigma-negative", lambda: gf(xs(), -1.0), "sigma")
    case("deform-filter-sigma-nan", lambda: gf(xs(), math.nan), "sigma")
    case("deform-filter-rank3", lambda: gf(xs()[:, 0]), "t")
    case("deform-filter-nan", lambda: gf(nan(xs())), "t ~nan")
    works("deform-filter-noncontiguous", lambda: gf(noncontig(xs())), equals(lambda: gf(xs())))
    case("deform-gradient-1px", lambda: image_gradient(xs()[..., :1, :1]), "images")
    case("deform-t_norm-channels", lambda: t_norm(torch.zeros(2, 3, 4, 4)), "field")
    case("deform-field_norm-unknown", lambda: field_norm(f(), "l2"), "norm")
    af = lambda *a, **k: affine_field(*a, **k)  # noqa: E731
    case("deform-affine-h-zero", lambda: af(0, 5), "h")
    case("deform-affine-scale-zero", lambda: af(5, 5, scale=0.0), "scale")
    case("deform-affine-angle-nan", lambda: af(5, 5, angle=math.nan), "angle")
    case("deform-affine-shift-one", lambda: af(5, 5, shift=(1.0,)), "shift")
    case("deform-affine-device-gpu", lambda: af(5, 5, device="gpu"), "device")
    rf = lambda *a, **k: random_field(*a, **{"device": "cpu", **k})  # noqa: E731
    case("deform-random-n-zero", lambda: rf(0, 8, 8, 1.0), "n")
    case("deform-random-magnitude-negative", lambda: rf(2, 8, 8, -1.0), "magnitude")
    case("deform-random-magnitude-length", lambda: rf(2, 8, 8, torch.ones(3)), "magnitude")
    case("deform-random-sigma-negative", lambda: rf(2, 8, 8, 1.0, sigma=-1.0), "sigma")
    case("deform-random-norm-unknown", lambda: rf(2, 8, 8, 1.0, norm="l1"), "norm")
    case(
        "deform-random-generator-int",
        lambda: rf(2, 8, 8, 1.0, generator=3),
        "generator",
        exc="TypeError",
    )
    RD = lambda *a, **k: RandomDeformation(*a, **k)  # noqa: E731
    case("deform-g-magnitude-negative", lambda: RD(-1.0), "magnitude")
    case("deform-g-magnitude-triple", lambda: RD((1.0, 2.0, 3.0)), "magnitude")
    case("deform-g-magnitude-reversed", lambda: RD((2.0, 1.0)), "magnitude")
    case("deform-g-sigma-negative", lambda: RD(1.0, sigma=-1.0), "sigma")
    case("deform-g-norm-unknown", lambda: RD(1.0, norm="l1"), "norm")
    case("deform-g-nan", lambda: RD(1.0)(nan(xs())), "x ~nan")
    case("deform-g-inf", lambda: RD(1.0)(inf(xs())), "x ~nan")
    case("deform-g-rank3", lambda: RD(1.0)(xs()[:, 0]), "x")
    case("deform-g-empty", lambda: RD(1.0)(xs()[:0]), "x ~EMPTY")
    either("deform-g-uint8", lambda: RD(1.0)(uint8(xs())), "x ~uint8")
    works(
        "deform-g-noncontiguous",
        lambda: RD(1.0, seed=0)(noncontig(xs())),
        equals(lambda: RD(1.0, seed=0)(xs())),
    )
    works("deform-g-float64", lambda: RD(1.0, seed=0)(xs().double()), shape_is(4, 1, 28, 28))
    case("deform-g-seed-none", lambda: RD(1.0, seed=None), "seed")
    case("deform-g-seed-negative", lambda: RD(1.0, seed=-1), "seed")


CASES = collect(_cases)
test_hostile_input = strict_test(CASES)
