"""Hostile inputs of k-means (:mod:`infoclust.kmeans`): refused at the door naming the argument, or handled.

Issue 22, item 8: features whose squared distances overflow, a meta device.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_hostile_common import X, X28, gen, inf, nan, noncontig, uint8
from test_hostile_common import case, collect, either, equals, warns, works, strict_test, refused

from infoclust.kmeans import KMeans, kmeans_plusplus, pairwise_sq_dists


@pytest.mark.parametrize("scale", [1e20, 1e30, -1e20])
def test_features_whose_squared_distances_overflow(scale):
    # was: "invalid multinomial distribution (encountering probability entry < 0)" from k-means++
    x = torch.rand(30, 3, generator=torch.Generator().manual_seed(0)) * scale
    with refused("x", "float32"):
        KMeans(3, seed=0).fit(x)


def test_large_but_representable_features_work():
    x = torch.rand(30, 3, generator=torch.Generator().manual_seed(0)) * 1e15
    assert np.isfinite(KMeans(3, seed=0).fit(x).cluster_centers_).all()


def test_a_meta_device():
    with refused("device", "meta"):
        KMeans(3, device="meta").fit(torch.rand(30, 3))


pytestmark = pytest.mark.usefixtures("one_thread")


def fitted_kmeans():
    return KMeans(4, seed=0, device="cpu").fit(X())


def _cases() -> None:
    KM = lambda *a, **k: KMeans(*a, **{"device": "cpu", **k})  # noqa: E731
    x = X
    for name, kw, names in [
        ("n_clusters-zero", dict(n_clusters=0), "n_clusters"),
        ("n_clusters-float", dict(n_clusters=2.5), "n_clusters"),
        ("n_clusters-too-many", dict(n_clusters=100), "n_clusters"),
        ("n_init-zero", dict(n_init=0), "n_init"),
        ("max_iter-zero", dict(max_iter=0), "max_iter"),
        ("tol-negative", dict(tol=-1.0), "tol"),
        ("tol-nan", dict(tol=float("nan")), "tol"),
        ("empty-unknown", dict(empty="drop"), "empty"),
        ("init-misspelt", dict(init="kmeans++"), "init"),
        ("init-wrong-shape", dict(init=np.zeros((3, 5))), "init"),
        ("init-nan", dict(init=np.full((4, 64), np.nan)), "init"),
        ("init-with-n_init", dict(init=X(4).reshape(4, -1).numpy(), n_init=3), "n_init"),
        ("seed-none", dict(seed=None), "seed"),
        ("seed-negative", dict(seed=-1), "seed"),
        ("seed-float", dict(seed=1.5), "seed"),
        ("seed-huge", dict(seed=2**40), "seed"),
        ("device-gpu", dict(device="gpu"), "device"),
    ]:
        kw.setdefault("n_clusters", 4)
        case(f"kmeans-{name}", lambda kw=kw: KM(**kw).fit(x()), names)
    fit = lambda data: KM(4, seed=0).fit(data)  # noqa: E731
    case("kmeans-fit-empty", lambda: fit(X()[:0]), "x ~EMPTY")
    case("kmeans-fit-1d", lambda: fit(X().flatten()), "x")
    case("kmeans-fit-nan", lambda: fit(nan(X())), "x ~nan")
    case("kmeans-fit-inf", lambda: fit(inf(X())), "x ~nan")
    case("kmeans-fit-list-of-strings", lambda: fit([["a", "b"], ["c", "d"]]), "x", exc="TypeError")
    ref = lambda: fitted_kmeans().labels_  # noqa: E731
    either("kmeans-fit-uint8", lambda: fit(uint8(X())).labels_, "x ~uint8")
    works("kmeans-fit-numpy-float64", lambda: fit(X().double().numpy()).labels_, equals(ref))
    works("kmeans-fit-noncontiguous", lambda: fit(noncontig(X())).labels_, equals(ref))
    works("kmeans-fit-float16", lambda: fit(X().half()).labels_)
    works("kmeans-fit-list", lambda: fit(X(8).reshape(8, -1).tolist()).labels_)
    warns(
        "kmeans-max_iter-cap",
        lambda: KM(8, init="random", max_iter=1, seed=0).fit(X()),
        "max_iter ~converge",
    )
    case("kmeans-predict-unfitted", lambda: KM(4).predict(X()), "~fit", exc="NotFittedError")
    case("kmeans-predict-other-size", lambda: fitted_kmeans().predict(X28()), "x ~features ~pixels")
    case("kmeans-predict-nan", lambda: fitted_kmeans().predict(nan(X())), "x ~nan")
    case("kmeans-predict-empty", lambda: fitted_kmeans().predict(X()[:0]), "x ~EMPTY")
    works(
        "kmeans-predict-noncontiguous",
        lambda: fitted_kmeans().predict(noncontig(X())),
        equals(lambda: fitted_kmeans().predict(X())),
    )
    works(
        "kmeans-predict-numpy",
        lambda: fitted_kmeans().predict(X().numpy()),
        equals(lambda: fitted_kmeans().predict(X())),
    )
    flat = lambda: X().reshape(48, -1)  # noqa: E731
    case("kmeans-plusplus-zero", lambda: kmeans_plusplus(flat(), 0, gen()), "n_clusters")
    case("kmeans-plusplus-too-many", lambda: kmeans_plusplus(flat(), 100, gen()), "n_clusters")
    case(
        "kmeans-plusplus-generator-int",
        lambda: kmeans_plusplus(flat(), 3, 0),
        "generator",
        exc="TypeError",
    )
    case("kmeans-pairwise-mismatch", lambda: pairwise_sq_dists(flat(), torch.zeros(3, 5)), "x c")


CASES = collect(_cases)
test_hostile_input = strict_test(CASES)
