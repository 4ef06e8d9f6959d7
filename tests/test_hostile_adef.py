"""Hostile inputs of ADef (:mod:`infoclust.adef`): refused naming the argument, or handled."""

from __future__ import annotations

import math

import pytest
import torch
from test_hostile_common import X28, chan3, cnn, inf, nan, noncontig, uint8
from test_hostile_common import case, collect, either, equals, works, strict_test

from infoclust.adef import adef, adef_step
from infoclust.classifiers import predict
from infoclust.transforms import ADefPerturbation


pytestmark = pytest.mark.usefixtures("one_thread")


def _cases() -> None:
    ad = lambda x, **k: adef(cnn(), x, **{"max_iter": 3, **k})  # noqa: E731
    xs = lambda: X28(4)  # noqa: E731
    case("adef-rank3", lambda: ad(xs()[:, 0]), "images")
    case("adef-nan", lambda: ad(nan(xs())), "images ~nan")
    case("adef-inf", lambda: ad(inf(xs())), "images ~nan")
    case("adef-empty", lambda: ad(xs()[:0]), "images ~EMPTY")
    case("adef-channels", lambda: ad(chan3(xs())), "images ~channel")
    case("adef-too-small", lambda: ad(xs()[..., :1, :1]), "images ~too small ~pixels")
    case("adef-sigma-negative", lambda: ad(xs(), sigma=-1.0), "sigma")
    case("adef-overshoot-zero", lambda: ad(xs(), overshoot=0.0), "overshoot")
    case("adef-max_iter-zero", lambda: ad(xs(), max_iter=0), "max_iter")
    case("adef-candidates-zero", lambda: ad(xs(), candidates=0), "candidates")
    case("adef-candidates-too-many", lambda: ad(xs(), candidates=20), "candidates")
    case("adef-tol-negative", lambda: ad(xs(), tol=-1.0), "tol")
    either("adef-uint8", lambda: ad(uint8(xs())), "images ~uint8")
    either("adef-numpy", lambda: ad(xs().numpy()), "images", exc="TypeError")
    either("adef-float64", lambda: ad(xs().double()), "images ~float64")
    works(
        "adef-noncontiguous",
        lambda: ad(noncontig(xs())).images,
        equals(lambda: ad(xs()).images, 1e-4),
    )
    step = lambda x, labels, **k: adef_step(cnn(), x, labels, **k)  # noqa: E731
    lab = lambda: predict(cnn(), xs())  # noqa: E731
    case("adef-step-labels-shape", lambda: step(xs(), lab()[:2]), "labels")
    case("adef-step-labels-float", lambda: step(xs(), lab().float()), "labels", exc="TypeError")
    case("adef-step-labels-range", lambda: step(xs(), torch.full((4,), 10)), "labels ~classes")
    case("adef-step-nan", lambda: step(nan(xs()), lab()), "images ~nan")
    case("adef-step-sigma-nan", lambda: step(xs(), lab(), sigma=math.nan), "sigma")
    AP = lambda **k: ADefPerturbation(**k)  # noqa: E731
    case("adef-g-sigma-negative", lambda: AP(sigma=-1.0), "sigma")
    case("adef-g-overshoot-small", lambda: AP(overshoot=0.5), "overshoot")
    case("adef-g-max_iter-zero", lambda: AP(max_iter=0), "max_iter")
    case("adef-g-classes-one", lambda: AP(n_random_classes=1), "n_random_classes")
    case("adef-g-seed-none", lambda: AP(seed=None), "seed")
    case("adef-g-seed-negative", lambda: AP(seed=-1), "seed")
    case("adef-g-nan", lambda: AP(max_iter=2)(nan(xs())), "x ~nan")


CASES = collect(_cases)
test_hostile_input = strict_test(CASES)
