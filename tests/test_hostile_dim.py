"""Hostile inputs of Deep InfoMax and the linear probe (:mod:`infoclust.dim`).

Each case must fail with an error that names the argument, or work (see ``test_hostile_common``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from test_hostile_common import X, X28, chan3, inf, nan, noncontig, uint8, nonfinite
from test_hostile_common import case, collect, either, equals, works, strict_test

from infoclust.dim import DeepInfoMax, linear_probe


pytestmark = pytest.mark.usefixtures("one_thread")


def dim(**kw: Any):
    args = dict(
        widths=(4, 4, 4),
        code_dim=4,
        critic_dim=8,
        epochs=1,
        batch_size=16,
        seed=0,
        device="cpu",
        verbose=False,
    )
    args.update(kw)
    return DeepInfoMax(**args)


def fitted_dim():
    return dim().fit(X(32))


def _cases() -> None:
    for name, kw, names in [
        ("alpha-negative", dict(alpha=-1.0), "alpha"),
        ("all-zero", dict(alpha=0.0, beta=0.0, gamma=0.0), "alpha"),
        ("estimator-unknown", dict(estimator="mine"), "estimator"),
        ("local_critic-unknown", dict(local_critic="dotp"), "local_critic"),
        ("code_dim-zero", dict(code_dim=0), "code_dim"),
        ("widths-two", dict(widths=(8, 8)), "widths"),
        ("widths-zero", dict(widths=(0, 4, 4)), "widths"),
        ("critic_dim-zero", dict(critic_dim=0), "critic_dim"),
        ("epochs-zero", dict(epochs=0), "epochs"),
        ("batch_size-one", dict(batch_size=1), "batch_size"),
        ("lr-zero", dict(lr=0.0), "lr"),
        ("seed-none", dict(seed=None), "seed"),
        ("seed-negative", dict(seed=-1), "seed"),
        ("device-gpu", dict(device="gpu"), "device"),
    ]:
        case(f"dim-{name}", lambda kw=kw: dim(**kw).fit(X(32)), names)
    fit = lambda data, **kw: dim(**kw).fit(data)  # noqa: E731
    case("dim-fit-empty", lambda: fit(X()[:0]), "x ~EMPTY")
    case("dim-fit-rank3", lambda: fit(X()[:, 0]), "x")
    case("dim-fit-nan", lambda: fit(nan(X(32))), "x ~nan")
    case("dim-fit-inf", lambda: fit(inf(X(32))), "x ~nan")
    case("dim-fit-too-small", lambda: fit(X(32)[..., :4, :4]), "x ~too small ~pixels")
    case("dim-fit-one-image", lambda: fit(X(32)[:1]), "x ~at least 2")
    case(
        "dim-diverges-lr",
        lambda: fit(X(32), lr=1e3, epochs=2),
        "lr",
        exc="TrainingDivergedError",
        also=("epoch", "step"),
        check=lambda m: nonfinite(m.history_),
    )
    either("dim-fit-uint8", lambda: fit(uint8(X(32))).transform(X(32)), "x ~uint8")
    works(
        "dim-fit-numpy",
        lambda: fit(X(32).numpy()).transform(X(32)),
        equals(lambda: fitted_dim().transform(X(32)), atol=1e-4),
    )
    works(
        "dim-fit-float64",
        lambda: fit(X(32).double()).transform(X(32)),
        equals(lambda: fitted_dim().transform(X(32)), atol=1e-4),
    )
    works(
        "dim-fit-noncontiguous",
        lambda: fit(noncontig(X(32))).transform(X(32)),
        equals(lambda: fitted_dim().transform(X(32)), atol=1e-4),
    )
    case("dim-transform-unfitted", lambda: dim().transform(X()), "~fit", exc="NotFittedError")
    case("dim-transform-other-size", lambda: fitted_dim().transform(X28()), "x ~pixels ~image size")
    case("dim-transform-other-channels", lambda: fitted_dim().transform(chan3(X())), "x ~channel")
    case("dim-transform-nan", lambda: fitted_dim().transform(nan(X())), "x ~nan")
    case("dim-transform-empty", lambda: fitted_dim().transform(X()[:0]), "x ~EMPTY")
    works(
        "dim-transform-numpy-float64",
        lambda: fitted_dim().transform(X().double().numpy()),
        equals(lambda: fitted_dim().transform(X()), atol=1e-4),
    )
    works(
        "dim-transform-noncontiguous",
        lambda: fitted_dim().transform(noncontig(X())),
        equals(lambda: fitted_dim().transform(X())),
    )
    case("dim-partial_fit-one-image", lambda: dim().partial_fit(X(1)), "x ~at least 2")
    case("dim-partial_fit-other-size", lambda: fitted_dim().partial_fit(X28()), "x ~pixels ~image size")
    feats = lambda: np.random.default_rng(0).normal(size=(40, 3))  # noqa: E731
    labels = np.repeat(np.arange(4), 10)
    case(
        "dim-probe-nan",
        lambda: linear_probe(nan(torch.as_tensor(feats())), labels),
        "features ~nan",
    )
    case("dim-probe-length", lambda: linear_probe(feats(), labels[:30]), "features labels")
    case("dim-probe-test_size", lambda: linear_probe(feats(), labels, test_size=1.5), "test_size")
    case(
        "dim-probe-float-labels",
        lambda: linear_probe(feats(), labels + 0.5),
        "labels",
        exc="TypeError",
    )
    case("dim-probe-one-class", lambda: linear_probe(feats(), np.zeros(40, int)), "labels ~classes")


CASES = collect(_cases)
test_hostile_input = strict_test(CASES)
