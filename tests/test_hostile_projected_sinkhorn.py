"""Hostile inputs of the projected Sinkhorn projection and attack (:mod:`infoclust.projected_sinkhorn`).

Each case must fail with an error that names the argument, or work (see ``test_hostile_common``).
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any, Callable

import pytest
import torch
from test_hostile_common import X28, chan3, cnn, gen, mnist, nan, noncontig
from test_hostile_common import case, collect, either, equals, warns, works, strict_test

from infoclust.attacks import robust_accuracy, wasserstein_pgd
from infoclust.projected_sinkhorn import lambertw, project_wasserstein_ball
from infoclust.wasserstein import local_cost, w2_exact


pytestmark = pytest.mark.usefixtures("one_thread")

#: The entropic regularisations tried, each once (a projection of seconds).
LAMS = (1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8)


def _in_ball(x: torch.Tensor, eps: float) -> Callable[[Any], str | None]:
    """A check: the projection is finite, keeps x's mass and lies in the ball (exact W2^2 <= eps)."""

    def check(z: Any) -> str | None:
        z = z[0] if isinstance(z, tuple) else z
        if not bool(torch.isfinite(z).all()):
            return "NaN in the projection"
        mx, mz = x.flatten(1).sum(1).double(), z.flatten(1).sum(1).double()
        if not torch.allclose(mx, mz, rtol=1e-3):
            return f"mass changed by up to {float(((mz - mx) / mx).abs().max()):.2%}"
        if bool((z < -1e-6).any()):
            return "negative pixels in the projection"
        w2 = w2_exact(x, z.clamp_min(0)).double() ** 2
        if bool((w2 > eps * (1 + 1e-3) + 1e-6).any()):
            return f"outside the ball: W2^2 = {float(w2.max()):.4g} > eps = {eps}"
        return None

    return check


def _cases() -> None:
    P = lambda w, x, eps=0.5, **k: project_wasserstein_ball(w, x, eps, **k)  # noqa: E731
    x = lambda: X28(2)  # noqa: E731
    w = lambda: (X28(2) + 0.3 * torch.randn(2, 1, 28, 28, generator=gen())).clamp(0, 1)  # noqa: E731
    case("proj-shape-mismatch", lambda: P(w(), X28(3)), "w x")
    case("proj-rank3", lambda: P(w()[:, 0], x()[:, 0]), "w x")
    case("proj-lam-zero", lambda: P(w(), x(), lam=0.0), "lam")
    case("proj-lam-nan", lambda: P(w(), x(), lam=math.nan), "lam")
    case("proj-max_iter-zero", lambda: P(w(), x(), max_iter=0), "max_iter")
    case("proj-tol-zero", lambda: P(w(), x(), tol=0.0), "tol")
    case("proj-x-negative", lambda: P(w(), x() - 0.5), "x ~negative")
    case("proj-x-nan", lambda: P(w(), nan(x())), "x ~nan")
    case("proj-w-nan", lambda: P(nan(w()), x()), "w ~nan")
    case("proj-eps-negative", lambda: P(w(), x(), -1.0), "eps")
    case("proj-eps-length", lambda: P(w(), x(), torch.ones(5)), "eps")
    case("proj-eps-nan", lambda: P(w(), x(), math.nan), "eps")
    case("proj-kernel-even", lambda: P(w(), x(), kernel_size=4), "kernel_size")
    case("proj-kernel-zero", lambda: P(w(), x(), kernel_size=0), "kernel_size")
    case("proj-p-zero", lambda: P(w(), x(), p=0.0), "p")
    case("proj-empty", lambda: P(w()[:0], x()[:0]), "w x ~EMPTY")
    either(
        "proj-x-zero-mass",
        lambda: P(w(), torch.zeros(2, 1, 28, 28)),
        "x ~mass",
        lambda z: None if not bool(z.any()) else "mass appeared around an empty image",
    )
    either("proj-numpy", lambda: P(w().numpy(), x().numpy()), "w x", exc="TypeError")
    works(
        "proj-noncontiguous",
        lambda: P(noncontig(w()), noncontig(x())),
        equals(lambda: P(w(), x()), 1e-4),
    )
    works("proj-float64", lambda: P(w().double(), x().double()), _in_ball(X28(2), 0.5))
    works(
        "proj-float16",
        lambda: P(w().half(), x().half()),
        lambda z: None if bool(torch.isfinite(z).all()) else "NaN in the projection",
    )
    warns("proj-max_iter-cap", lambda: P(w(), x(), max_iter=2), "max_iter ~converge")

    @functools.cache
    def at_lam(lam: float) -> tuple[torch.Tensor, tuple[warnings.WarningMessage, ...]]:
        """One image's projection per lam and its warnings, shared by the lam cases and the sweep."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            z = P(w()[:1], x()[:1], lam=lam, max_iter=400)
        return z, tuple(caught)

    def projected(lam: float) -> torch.Tensor:
        z, caught = at_lam(lam)
        for m in caught:  # said again to whoever asks second
            warnings.warn_explicit(m.message, m.category, m.filename, m.lineno)
        return z

    for lam in LAMS:
        # the docstring: "Larger is closer to the exact projection; any value is safe here"
        either(
            f"proj-lam-{lam:.0e}",
            lambda lam=lam: projected(lam),
            "lam max_iter ~converge",
            _in_ball(X28(1), 0.5),
        )

    def lam_sweep() -> list[tuple[float, float, bool]]:
        """By lam: ||z - w||^2 and whether the solver warned."""
        return [(lam, float((at_lam(lam)[0] - w()[:1]).pow(2).sum()), bool(at_lam(lam)[1])) for lam in LAMS]

    def no_worse(rows: list[tuple[float, float, bool]]) -> str | None:
        """A larger lam must not give a worse projection (farther from w) unless the solver warned."""
        for (_, before, _), (lam, d, warned) in zip(rows, rows[1:]):
            if d > before * 1.02 + 1e-6 and not warned:
                return f"||z - w||^2 grows with lam without a warning at lam {lam:g} ({rows})"
        return None

    works("proj-lam-monotone", lam_sweep, no_worse)
    case("proj-lambertw-negative", lambda: lambertw(torch.tensor([-1.0])), "x")
    case("proj-local_cost-even", lambda: local_cost(4), "kernel_size")
    case("proj-local_cost-p-negative", lambda: local_cost(3, -1.0), "p")

    def pgd(x, y=None, **k):
        return wasserstein_pgd(cnn(), x, y, **{"max_iter": 2, "proj_iter": 5, "verbose": False, **k})

    xs, ys = (lambda: X28(4)), (lambda: mnist(4)[1])
    case(
        "pgd-labels-1-based",
        lambda: pgd(xs(), torch.tensor([1, 5, 10, 3])),
        "y ~classes",
    )
    case("pgd-labels-float", lambda: pgd(xs(), ys().float()), "y", exc="TypeError")
    case("pgd-labels-length", lambda: pgd(xs(), ys()[:2]), "y")
    case("pgd-x-rank3", lambda: pgd(xs()[:, 0]), "x")
    case("pgd-x-nan", lambda: pgd(nan(xs())), "x ~nan")
    case("pgd-x-empty", lambda: pgd(xs()[:0]), "x ~EMPTY")
    case("pgd-x-channels", lambda: pgd(chan3(xs())), "x ~channel")
    case("pgd-eps0-zero", lambda: pgd(xs(), eps0=0.0), "eps0")
    case("pgd-eps_factor-small", lambda: pgd(xs(), eps_factor=0.5), "eps_factor")
    case("pgd-eps_every-zero", lambda: pgd(xs(), eps_every=0), "eps_every")
    case("pgd-alpha-zero", lambda: pgd(xs(), alpha=0.0), "alpha")
    case("pgd-iter-negative", lambda: pgd(xs(), max_iter=-1), "max_iter")
    case("pgd-proj_iter-zero", lambda: pgd(xs(), proj_iter=0), "proj_iter")
    case("pgd-lam-zero", lambda: pgd(xs(), lam=0.0), "lam")
    case("pgd-kernel-even", lambda: pgd(xs(), kernel_size=4), "kernel_size")
    either("pgd-x-float64", lambda: pgd(xs().double()), "x ~float64")
    either("pgd-x-numpy", lambda: pgd(xs().numpy()), "x", exc="TypeError")
    works(
        "pgd-x-noncontiguous",
        lambda: pgd(noncontig(xs())).images,
        equals(lambda: pgd(xs()).images, 1e-4),
    )
    case(
        "pgd-robust-length",
        lambda: robust_accuracy(torch.ones(4), torch.ones(3, dtype=torch.bool), [0.5]),
        "eps success",
    )
    case(
        "pgd-robust-radii-nan",
        lambda: robust_accuracy(torch.ones(4), torch.ones(4, dtype=torch.bool), [math.nan]),
        "radii",
    )


CASES = collect(_cases)
test_hostile_input = strict_test(CASES)
