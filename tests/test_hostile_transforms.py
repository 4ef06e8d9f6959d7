"""Hostile inputs of the perturbations as transformations, the pool and seeding (:mod:`infoclust.transforms`).

Issue 22, item 8: a g that returns NaN, ``with_seed`` given a generator.
"""

from __future__ import annotations

import pytest
import torch
from test_hostile_common import X, X28, nan, noncontig
from test_hostile_common import case, collect, equals, works, strict_test, refused

from infoclust.augment import MNISTTransform
from infoclust.transforms import PerturbationPool, SinkhornPerturbation, compose


def _nan_g(batch: torch.Tensor) -> torch.Tensor:
    out = batch.clone()
    out[0, 0, 0, 0] = float("nan")
    return out


def test_a_pool_of_a_g_that_returns_nan():
    with refused("g", "NaN"):
        PerturbationPool(_nan_g, torch.rand(4, 1, 8, 8), 2, verbose=False)


def _flip(batch: torch.Tensor) -> torch.Tensor:
    return batch.flip(-1)


@pytest.mark.parametrize("make", [MNISTTransform, lambda: PerturbationPool(_flip, torch.rand(4, 1, 8, 8), 2)])
def test_with_seed_on_a_generator(make):
    # a generator would be shared by every copy, so their draws would depend on each other
    generator = torch.Generator().manual_seed(0)
    g = make()
    with refused("seed"):
        g.with_seed(generator)


pytestmark = pytest.mark.usefixtures("one_thread")


def _cases() -> None:
    SP = lambda *a, **k: SinkhornPerturbation(*a, **k)  # noqa: E731
    case("transforms-sinkhorn-eps-zero", lambda: SP(0.0), "eps")
    case("transforms-sinkhorn-iter-zero", lambda: SP(max_iter=0), "max_iter")
    case("transforms-sinkhorn-lam-zero", lambda: SP(lam=0.0), "lam")
    case("transforms-sinkhorn-kernel-even", lambda: SP(kernel_size=4), "kernel_size")
    case("transforms-sinkhorn-proj_iter-zero", lambda: SP(proj_iter=0), "proj_iter")
    case(
        "transforms-sinkhorn-classes-one",
        lambda: SP(n_random_classes=1),
        "n_random_classes",
    )
    case("transforms-sinkhorn-seed-none", lambda: SP(seed=None), "seed")
    case("transforms-sinkhorn-nan", lambda: SP(max_iter=1, proj_iter=3)(nan(X28(2))), "x ~nan")
    works(
        "transforms-sinkhorn-noncontiguous",
        lambda: SP(max_iter=1, proj_iter=3)(noncontig(X28(2))),
        equals(lambda: SP(max_iter=1, proj_iter=3)(X28(2)), 1e-4),
    )

    def pool(g=None, x=None, **k):
        return PerturbationPool(
            g or (lambda b: b.flip(-1)), X(8) if x is None else x, **{"n_copies": 1, "verbose": False, **k}
        )

    case("transforms-pool-g-string", lambda: pool(g="flip"), "g")
    case("transforms-pool-duplicates", lambda: pool(x=X(2).repeat(2, 1, 1, 1)), "x ~duplicate")
    case("transforms-pool-copies-zero", lambda: pool(n_copies=0), "n_copies")
    case("transforms-pool-batch-zero", lambda: pool(batch_size=0), "batch_size")
    case("transforms-pool-g-shape", lambda: pool(g=lambda b: b[:, :, :4]), "g")
    case("transforms-pool-g-numpy", lambda: pool(g=lambda b: b.numpy()), "g")
    case("transforms-pool-seed-none", lambda: pool(seed=None), "seed")
    case("transforms-pool-x-nan", lambda: pool(x=nan(X(8))), "x ~nan")
    case("transforms-pool-x-empty", lambda: pool(x=X(8)[:0]), "x ~EMPTY")
    case("transforms-pool-unknown-image", lambda: pool()(X28(2)), "x ~not in the pool")
    case("transforms-compose-empty", lambda: compose(), "~callable ~transform")
    case("transforms-compose-number", lambda: compose(1), "~callable ~transform")


# chapters and the build -----------------------------------------------------------------


CASES = collect(_cases)
test_hostile_input = strict_test(CASES)
