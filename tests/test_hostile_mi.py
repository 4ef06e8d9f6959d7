"""Hostile inputs of the mutual-information estimators (:mod:`infoclust.mi`).

Each case must fail with an error that names the argument, or work (see ``test_hostile_common``).
"""

from __future__ import annotations


import pytest
import torch
from test_hostile_common import gen, nan
from test_hostile_common import case, collect, strict_test

from infoclust.mi import (
    correlated_gaussians,
    dv_mi,
    gaussian_mi,
    infonce_mi,
    jsd_mi,
    mi_estimate,
    mi_training_curve,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def _cases() -> None:
    s = lambda n=6: torch.randn(n, n, generator=gen())  # noqa: E731
    case("mi-jsd-1d", lambda: jsd_mi(torch.randn(5)), "scores")
    case("mi-jsd-one-sample", lambda: jsd_mi(torch.randn(1, 1)), "scores")
    case("mi-dv-nonsquare", lambda: dv_mi(torch.randn(4, 5)), "scores")
    case("mi-nce-numpy", lambda: infonce_mi(s().numpy()), "scores")
    case("mi-jsd-nan", lambda: jsd_mi(nan(s())), "scores ~nan")
    case("mi-estimate-unknown", lambda: mi_estimate(s(), "mine"), "estimator")
    case("mi-gaussian-dim-zero", lambda: gaussian_mi(0, 0.5), "dim")
    case("mi-gaussian-rho-one", lambda: gaussian_mi(2, 1.0), "rho")
    case("mi-gaussian-rho-two", lambda: gaussian_mi(2, 2.0), "rho")
    case("mi-correlated-n-zero", lambda: correlated_gaussians(0, 2, 0.5), "n")
    case(
        "mi-correlated-generator-int",
        lambda: correlated_gaussians(4, 2, 0.5, generator=3),
        "generator",
        exc="TypeError",
    )
    case("mi-correlated-device-gpu", lambda: correlated_gaussians(4, 2, 0.5, device="gpu"), "device")

    def curve(**kw):
        args = dict(
            estimator="jsd",
            true_mi=(1.0,),
            dim=2,
            steps_per_level=2,
            batch_size=8,
            device="cpu",
            verbose=False,
        )
        return mi_training_curve(**{**args, **kw})

    case("mi-curve-estimator", lambda: curve(estimator="mine"), "estimator")
    case("mi-curve-true_mi-empty", lambda: curve(true_mi=()), "true_mi")
    case("mi-curve-true_mi-negative", lambda: curve(true_mi=(-1.0,)), "true_mi")
    case("mi-curve-dim-zero", lambda: curve(dim=0), "dim")
    case("mi-curve-steps-zero", lambda: curve(steps_per_level=0), "steps_per_level")
    case("mi-curve-batch-one", lambda: curve(batch_size=1), "batch_size")
    case("mi-curve-generator-int", lambda: curve(generator=0), "generator", exc="TypeError")
    case("mi-curve-true_mi-string", lambda: curve(true_mi="2"), "true_mi")


CASES = collect(_cases)
test_hostile_input = strict_test(CASES)
