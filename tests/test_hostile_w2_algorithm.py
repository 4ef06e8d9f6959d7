"""Hostile inputs of Algorithm 1 (the W2 perturbation) (:mod:`infoclust.w2_algorithm`).

Each case must fail with an error that names the argument, or work (see ``test_hostile_common``).
"""

from __future__ import annotations


import pytest
import torch
from test_hostile_common import X28, chan3, cnn, gen, inf, nan, noncontig, uint8
from test_hostile_common import case, collect, either, equals, works, strict_test

from infoclust.w2_algorithm import W2Perturbation, w2_perturbation


pytestmark = pytest.mark.usefixtures("one_thread")


def _cases() -> None:
    xs = lambda: X28(3)  # noqa: E731
    wp = lambda x, eps=0.5, eta=0.3, **k: w2_perturbation(  # noqa: E731
        cnn(), x, eps, eta, **{"max_iter": 2, "generator": gen(), **k}
    )
    case("w2alg-nan", lambda: wp(nan(xs())), "images ~nan")
    case("w2alg-inf", lambda: wp(inf(xs())), "images ~nan")
    case("w2alg-negative", lambda: wp(xs() - 0.5), "images ~negative")
    case("w2alg-zero-mass", lambda: wp(torch.zeros(2, 1, 28, 28)), "images ~mass")
    case("w2alg-rank3", lambda: wp(xs()[:, 0]), "images")
    case("w2alg-empty", lambda: wp(xs()[:0]), "images ~EMPTY")
    case("w2alg-channels", lambda: wp(chan3(xs())), "images ~channel")
    case("w2alg-eps-negative", lambda: wp(xs(), eps=-1.0), "eps")
    case("w2alg-eta-zero", lambda: wp(xs(), eta=0.0), "eta")
    case("w2alg-alpha-zero", lambda: wp(xs(), alpha=0.0), "alpha")
    case("w2alg-max_iter-zero", lambda: wp(xs(), max_iter=0), "max_iter")
    case("w2alg-generator-int", lambda: wp(xs(), generator=3), "generator", exc="TypeError")
    case("w2alg-candidates-zero", lambda: wp(xs(), candidates=0), "candidates")
    either("w2alg-uint8", lambda: wp(uint8(xs())), "images ~uint8")
    either("w2alg-numpy", lambda: wp(xs().numpy()), "images", exc="TypeError")
    either("w2alg-float64", lambda: wp(xs().double()), "images ~float64")
    works(
        "w2alg-noncontiguous",
        lambda: wp(noncontig(xs())).images,
        equals(lambda: wp(xs()).images, 1e-4),
    )
    G = lambda *a, **k: W2Perturbation(*a, **{"max_iter": 2, **k})  # noqa: E731
    case("w2alg-g-eps-negative", lambda: G(-1.0), "eps")
    case("w2alg-g-eta-zero", lambda: G(0.5, 0.0), "eta")
    case("w2alg-g-seed-none", lambda: G(seed=None), "seed")
    case("w2alg-g-seed-negative", lambda: G(seed=-1), "seed")
    works("w2alg-g-seed-max", lambda: G(seed=2**32 - 1))
    case("w2alg-g-classes-one", lambda: G(n_random_classes=1), "n_random_classes")
    case("w2alg-g-candidates-zero", lambda: G(candidates=0), "candidates")
    case("w2alg-g-redraw-string", lambda: G(redraw="no"), "redraw")
    case("w2alg-g-nan", lambda: G()(nan(xs())), "x ~nan")
    case("w2alg-g-rank3", lambda: G()(xs()[:, 0]), "x")
    case("w2alg-g-empty", lambda: G()(xs()[:0]), "x ~EMPTY")
    works("w2alg-g-noncontiguous", lambda: G()(noncontig(xs())), equals(lambda: G()(xs()), 1e-4))


CASES = collect(_cases)
test_hostile_input = strict_test(CASES)
