"""Hostile inputs of IIC (:mod:`infoclust.iic`): refused naming the argument, or handled."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from test_hostile_common import X, X28, chan3, gen, inf, nan, noncontig, uint8
from test_hostile_common import case, collect, either, equals, shape_is, works, strict_test

from infoclust.iic import ClusterNet, IIC, iic_loss, information, joint_distribution


pytestmark = pytest.mark.usefixtures("one_thread")


def fitted_iic():
    return iic(epochs=1).fit(X())


def iic(**kw: Any):
    args = dict(
        n_clusters=3,
        n_overclusters=None,
        n_subheads=1,
        trunk="small",
        epochs=1,
        batch_size=16,
        repeats=1,
        lr=1e-3,
        seed=0,
        device="cpu",
        verbose=False,
    )
    args.update(kw)
    return IIC(**args)


def _cases() -> None:
    for name, kw, names in [
        ("n_clusters-one", dict(n_clusters=1), "n_clusters"),
        ("n_clusters-float", dict(n_clusters=2.5), "n_clusters"),
        ("n_overclusters-one", dict(n_overclusters=1), "n_overclusters"),
        ("n_subheads-zero", dict(n_subheads=0), "n_subheads"),
        ("trunk-unknown", dict(trunk="resnet"), "trunk"),
        ("g-string", dict(g="crop"), "g"),
        ("epochs-zero", dict(epochs=0), "epochs"),
        ("epochs-none", dict(epochs=None), "epochs"),
        ("batch_size-one", dict(batch_size=1), "batch_size"),
        ("batch_size-too-big", dict(batch_size=1000), "batch_size"),
        ("repeats-zero", dict(repeats=0), "repeats"),
        ("main_passes-zero", dict(main_passes=0), "main_passes"),
        ("over_passes-negative", dict(over_passes=-1), "over_passes"),
        ("lr-zero", dict(lr=0.0), "lr"),
        ("lr-nan", dict(lr=float("nan")), "lr"),
        ("lamb-negative", dict(lamb=-1.0), "lamb"),
        ("seed-none", dict(seed=None), "seed"),
        ("seed-negative", dict(seed=-1), "seed"),
        ("seed-string", dict(seed="0"), "seed"),
        ("amp-string", dict(amp="yes"), "amp"),
        ("device-gpu", dict(device="gpu"), "device"),
        ("verbose-string", dict(verbose="no"), "verbose"),
    ]:
        case(f"iic-{name}", lambda kw=kw: iic(**kw).fit(X()), names)
    fit = lambda data, **kw: iic(**kw).fit(data)  # noqa: E731
    case("iic-fit-empty", lambda: fit(X()[:0]), "x ~EMPTY")
    case("iic-fit-rank3", lambda: fit(X()[:, 0]), "x")
    case("iic-fit-nan", lambda: fit(nan(X())), "x ~nan")
    case("iic-fit-inf", lambda: fit(inf(X())), "x ~nan")
    case("iic-fit-too-small", lambda: fit(X()[..., :2, :2]), "x ~too small ~pixels")
    case(
        "iic-clusternet-too-small",
        lambda: ClusterNet(1, 4, 3, None, 1, "vgg"),
        "input_size ~too small ~pixels",
    )
    case("iic-fit-y-length", lambda: iic().fit(X(), np.zeros(5, int)), "y")
    case("iic-fit-y-float", lambda: iic().fit(X(), np.zeros(48)), "y", exc="TypeError")
    case("iic-fit-y-2d", lambda: iic().fit(X(), np.zeros((48, 2), int)), "y")
    case("iic-g-changes-shape", lambda: fit(X(), g=lambda b: b[:, :, :4, :4]), "g")
    case("iic-g-returns-numpy", lambda: fit(X(), g=lambda b: b.numpy()), "g")
    case(
        "iic-g-returns-nan",
        lambda: fit(X(), g=lambda b: b * float("nan")),
        "g ~nan",
        exc="ParameterError|TrainingDivergedError",
    )
    either("iic-fit-uint8", lambda: fit(uint8(X())).labels_, "x ~uint8")
    works("iic-fit-numpy-float64", lambda: fit(X().double().numpy()).labels_, shape_is(48))
    works("iic-fit-float16", lambda: fit(X().half()).labels_, shape_is(48))
    works(
        "iic-fit-noncontiguous",
        lambda: fit(noncontig(X())).labels_,
        equals(lambda: fitted_iic().labels_),
    )
    either("iic-fit-non-square", lambda: fit(X()[..., :, 1:7]).labels_, "x ~square", shape_is(48))
    case("iic-predict-unfitted", lambda: iic().predict(X()), "~fit", exc="NotFittedError")
    case("iic-predict-other-size", lambda: fitted_iic().predict(X28()), "x ~pixels ~image size")
    case("iic-predict-other-channels", lambda: fitted_iic().predict(chan3(X())), "x ~channel")
    case("iic-predict-nan", lambda: fitted_iic().predict(nan(X())), "x ~nan")
    case("iic-predict-empty", lambda: fitted_iic().predict(X()[:0]), "x ~EMPTY")
    case("iic-predict-rank3", lambda: fitted_iic().predict(X()[:, 0]), "x")
    case("iic-predict-head", lambda: fitted_iic().predict(X(), head="aux"), "head")
    case("iic-predict-subhead", lambda: fitted_iic().predict(X(), subhead=5), "subhead")
    either(
        "iic-predict-uint8",
        lambda: fitted_iic().predict(uint8(X())),
        "x ~uint8",
        equals(lambda: fitted_iic().predict(X())),
    )
    works(
        "iic-predict-numpy",
        lambda: fitted_iic().predict(X().numpy()),
        equals(lambda: fitted_iic().predict(X())),
    )
    works(
        "iic-predict-noncontiguous",
        lambda: fitted_iic().predict(noncontig(X())),
        equals(lambda: fitted_iic().predict(X())),
    )
    works(
        "iic-predict_proba-float64",
        lambda: fitted_iic().predict_proba(X().double()),
        equals(lambda: fitted_iic().predict_proba(X()), atol=1e-4),
    )
    z = lambda n=8, k=3: torch.softmax(torch.randn(n, k, generator=gen()), 1)  # noqa: E731
    case("iic-loss-shape-mismatch", lambda: iic_loss(z(8, 3), z(8, 4)), "z z_tf")
    case("iic-loss-lamb-negative", lambda: iic_loss(z(), z(), lamb=-1.0), "lamb")
    case("iic-loss-nan", lambda: iic_loss(nan(z()), z()), "z ~nan")
    case("iic-loss-numpy", lambda: iic_loss(z().numpy(), z().numpy()), "z", exc="TypeError")
    case("iic-joint-1d", lambda: joint_distribution(z().flatten(), z().flatten()), "z z_tf")
    case("iic-information-negative", lambda: information(np.array([[0.5, -0.1], [0.3, 0.3]])), "p")
    case("iic-information-nonsquare", lambda: information(np.ones((2, 3))), "p")
    case(
        "iic-information-nan",
        lambda: information(np.array([[0.5, np.nan], [0.2, 0.3]])),
        "p ~nan",
    )
    case("iic-clusternet-channels-zero", lambda: ClusterNet(0, 8, 3), "in_channels")
    case("iic-clusternet-trunk-unknown", lambda: ClusterNet(1, 8, 3, trunk="resnet"), "trunk")


CASES = collect(_cases)
test_hostile_input = strict_test(CASES)
