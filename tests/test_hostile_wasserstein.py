"""Hostile inputs of the Wasserstein distances and sampling (:mod:`infoclust.wasserstein`).

Each case must fail with an error that names the argument, or work (see ``test_hostile_common``).
"""

from __future__ import annotations

import math

import pytest
import torch
from test_hostile_common import X, X28, chan3, gen, nan, noncontig, uint8
from test_hostile_common import case, collect, equals, warns, works, strict_test

from infoclust.wasserstein import (
    acceptance_probability,
    grid_cost,
    perturbation_density,
    sample_perturbation,
    to_histogram,
    w2_exact,
    w2_sinkhorn,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def _cases() -> None:
    a, b = (lambda: X(4)), (lambda: X(8)[4:])
    th = lambda x: to_histogram(x)  # noqa: E731
    case("w2-histogram-negative", lambda: th(a() - 0.5), "images ~negative")
    case("w2-histogram-nan", lambda: th(nan(a())), "images ~nan")
    case("w2-histogram-zero-mass", lambda: th(torch.zeros(2, 1, 8, 8)), "images ~mass")
    case("w2-histogram-5d", lambda: th(a()[None]), "images")
    case("w2-histogram-empty", lambda: th(a()[:0]), "images ~EMPTY")
    case("w2-grid_cost-zero", lambda: grid_cost(0, 5), "h")
    case("w2-grid_cost-float", lambda: grid_cost(2.5, 3), "h")
    ex = lambda *x, **k: w2_exact(*x, **k)  # noqa: E731
    case("w2-exact-size-mismatch", lambda: ex(a(), X28()), "a b ~size")
    case("w2-exact-count-mismatch", lambda: ex(X(3), X(5)), "a b")
    case("w2-exact-nan", lambda: ex(nan(a()), b()), "a ~nan")
    case("w2-exact-negative", lambda: ex(a() - 0.5, b()), "a ~negative")
    case("w2-exact-zero-mass", lambda: ex(torch.zeros(4, 1, 8, 8), b()), "a ~mass")
    case("w2-exact-empty", lambda: ex(a()[:0], b()[:0]), "a ~EMPTY")
    case("w2-exact-max_iter-zero", lambda: ex(a(), b(), max_iter=0), "max_iter")
    warns(
        "w2-exact-max_iter-cap",
        lambda: ex(X28(2), X28(4)[2:], max_iter=3),
        "max_iter ~converge",
    )
    works("w2-exact-numpy", lambda: ex(a().numpy(), b().numpy()), equals(lambda: ex(a(), b())))
    works("w2-exact-noncontiguous", lambda: ex(noncontig(a()), b()), equals(lambda: ex(a(), b())))
    works(
        "w2-exact-uint8",
        lambda: ex(uint8(a()), uint8(b())),
        equals(lambda: ex(a(), b()), 1e-2),
    )
    works(
        "w2-exact-float16",
        lambda: ex(a().half(), b().half()),
        equals(lambda: ex(a(), b()), 1e-2),
    )
    works("w2-exact-hw", lambda: ex(a()[0, 0], b()[0, 0]), equals(lambda: ex(a()[:1], b()[:1])))
    sk = lambda *x, **k: w2_sinkhorn(*x, **k)  # noqa: E731
    for name, kw, names in [
        ("reg-zero", dict(reg=0.0), "reg"),
        ("reg-negative", dict(reg=-1.0), "reg"),
        ("reg-nan", dict(reg=math.nan), "reg"),
        ("tol-zero", dict(tol=0.0), "tol"),
        ("max_iter-zero", dict(max_iter=0), "max_iter"),
        ("scaling-one", dict(scaling=1.0), "scaling"),
        ("omega-two", dict(omega=2.0), "omega"),
        ("debiased-string", dict(debiased="yes"), "debiased"),
        ("dtype-half", dict(dtype=torch.float16), "dtype"),
    ]:
        case(f"w2-sinkhorn-{name}", lambda kw=kw: sk(a(), b(), **kw), names)
    case("w2-sinkhorn-nan", lambda: sk(nan(a()), b()), "a ~nan")
    case("w2-sinkhorn-size-mismatch", lambda: sk(a(), X28()), "a b ~size")
    case("w2-sinkhorn-empty", lambda: sk(a()[:0], b()[:0]), "a ~EMPTY")
    warns(
        "w2-sinkhorn-reg-0.01",
        lambda: sk(a(), b(), reg=0.01),
        "reg max_iter ~converge",
    )
    warns(
        "w2-sinkhorn-max_iter-cap",
        lambda: sk(X28(2), X28(4)[2:], reg=2.0, max_iter=2),
        "max_iter ~converge",
    )
    works(
        "w2-sinkhorn-noncontiguous",
        lambda: sk(noncontig(a()), b()),
        equals(lambda: sk(a(), b())),
    )
    works("w2-sinkhorn-numpy", lambda: sk(a().numpy(), b().numpy()), equals(lambda: sk(a(), b())))
    works(
        "w2-sinkhorn-float64",
        lambda: sk(a().double(), b().double()),
        equals(lambda: sk(a(), b()), 1e-3),
    )

    def near_exact(r):
        gap = float((r - ex(a(), b())).abs().max())
        return None if gap < 0.15 else f"differs from w2_exact by {gap:.3f} px"

    works(
        "w2-sinkhorn-near-exact",
        lambda: sk(a(), b(), reg=1.0, tol=1e-6, max_iter=5000),
        near_exact,
    )
    case("w2-density-eta-zero", lambda: perturbation_density(1.0, 0.0), "eta")
    case(
        "w2-density-dist-nan",
        lambda: perturbation_density(float("nan"), 1.0),
        "dist ~nan",
    )
    case(
        "w2-acceptance-eta-nan",
        lambda: acceptance_probability(0.1, 0.2, float("nan")),
        "eta",
    )

    def mh(x, **k):
        return sample_perturbation(x, **{"eta": 0.5, "n_chains": 2, "n_steps": 3, **k})

    one = lambda: X(1)[0]  # noqa: E731
    case("w2-mh-eta-zero", lambda: mh(one(), eta=0.0), "eta")
    case("w2-mh-chains-zero", lambda: mh(one(), n_chains=0), "n_chains")
    case("w2-mh-steps-zero", lambda: mh(one(), n_steps=0), "n_steps")
    case("w2-mh-two-channels", lambda: mh(chan3(X(1))[0, :2]), "x")
    case("w2-mh-negative", lambda: mh(one() - 0.5), "x ~negative")
    case("w2-mh-nan", lambda: mh(nan(one())), "x ~nan")
    case("w2-mh-zero-mass", lambda: mh(torch.zeros(1, 8, 8)), "x ~mass")
    case("w2-mh-generator-int", lambda: mh(one(), generator=3), "generator", exc="TypeError")
    works(
        "w2-mh-noncontiguous",
        lambda: mh(noncontig(X(1))[0], generator=gen()).samples,
        equals(lambda: mh(one(), generator=gen()).samples),
    )


CASES = collect(_cases)
test_hostile_input = strict_test(CASES)
