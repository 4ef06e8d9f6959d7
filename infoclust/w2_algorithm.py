"""The talk's Algorithm 1: a random walk of ADef steps inside a Wasserstein ball.

Talk section 4.5 ("W2-perturbation"), for every image ``x``::

    x' := x
    while TRUE:
        x'' := ADefStep(x', ...)                 # single ADef step with step size alpha
        if W2(x'', x) <= eps:                    # x'' within the ball
            x' := x''
            with probability p(xi | x): return x'
        else:
            return x'

with ``p(xi | x) = exp(-W2(x', x)^2 / eta^2)`` (talk, eq. 6;
:func:`infoclust.wasserstein.perturbation_density`). The ADef step is
:func:`infoclust.adef.adef_step` against a classifier (by default the talk's random,
non-trainable network) and the label it gives to ``x``; following ADef, each accepted
step is added to an accumulated field and the ORIGINAL image is re-warped by it.

Both tests of the loop compare W2 with a threshold (``eps``, and for the coin ``u <
p(xi | x)``), and both are decided exactly: by certified bounds ``L <= W2 <= U`` (cheap
1-D transport problems, :mod:`infoclust._w2_bounds`, tightened by the triangle inequality
through the walk's previous point) when the threshold lies outside the bracket, and
otherwise by the exact distance (:func:`infoclust.wasserstein.w2_exact`, POT's
network simplex). Every returned image therefore lies inside its ball, and the walks are
the ones that exact distances alone would give (``bounds=False`` computes them so).

Choices the talk leaves open, made explicit here: ``alpha`` scales each ADef step
(``alpha = 1`` is the full linearised step to the nearest decision boundary), the ADef
step keeps the candidate label whose new accumulated field has the smallest T-norm (ADef's
rule), and ``max_iter`` caps the walk (the talk's loop ends almost surely, but after about
``exp(eps^2 / eta^2)`` steps in the worst case); a capped walk returns its last point inside
the ball, like the other two exits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._random_net import LazyRandomClassifier
from ._w2_bounds import w2_bounds
from .adef import _smallest_step, _targets
from .attacks import check_classifier
from .deform import _warp
from .transforms import Transform
from .utils import (
    ParameterError,
    check_bool,
    check_generator,
    check_int,
    check_number,
)
from .wasserstein import _density, _normalise, _w2_exact

__all__ = ["END_REASONS", "PerturbationResult", "w2_perturbation", "W2Perturbation"]

#: Why a walk ended, indexed by :attr:`PerturbationResult.end`.
END_REASONS = ("stopped at random", "next step left the ball", "max_iter reached")


@dataclass
class PerturbationResult:
    """What :func:`w2_perturbation` returns, one entry per image.

    Attributes
    ----------
    images : torch.Tensor
        The perturbed images ``x'``, ``(N, C, H, W)``.
    field : torch.Tensor
        The accumulated deformation field, ``(N, 2, H, W)`` in pixels (``x' = warp(x, field)``).
    w2 : torch.Tensor
        ``(N,)`` float64: ``W2(x', x)`` where ``exact``, else a certified upper bound of it;
        at most ``eps`` either way.
    exact : torch.Tensor
        ``(N,)`` bool: ``w2`` is the exact distance (solved, or 0 for ``x' = x``).
    steps : torch.Tensor
        Accepted ADef steps, ``(N,)`` long (0: ``x'`` is ``x`` itself).
    end : torch.Tensor
        ``(N,)`` long index into :data:`END_REASONS`.
    solved : int
        Exact transport problems solved during the walks (the other tests were settled
        by the bounds).
    tests : int
        Trial points tested, one per ADef step taken.
    """

    images: torch.Tensor
    field: torch.Tensor
    w2: torch.Tensor
    exact: torch.Tensor
    steps: torch.Tensor
    end: torch.Tensor
    solved: int
    tests: int


def _histograms(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 histograms (N, H, W) of ``images`` and which of them have mass (the others are zero)."""
    mass = images.detach().double().sum((1, 2, 3))
    ok = mass > 0
    hist = torch.zeros(len(images), *images.shape[-2:], dtype=torch.float64, device=images.device)
    if bool(ok.any()):
        hist[ok] = _normalise(images[ok].detach(), torch.float64).view(-1, *images.shape[-2:])
    return hist, ok


def _w2_brackets(
    trial: torch.Tensor,
    x: torch.Tensor,
    current: torch.Tensor,
    current_lower: torch.Tensor,
    current_upper: torch.Tensor,
    bounds: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``lower <= W2(trial[i], x[i]) <= upper``, infinite where the trial lost all its mass.

    The bounds of :func:`~infoclust._w2_bounds.w2_bounds` between ``trial`` and ``x``, tightened
    by the triangle inequality through the walk's current point ``x'`` (``current``), whose
    distance to ``x`` lies in ``[current_lower, current_upper]``:
    ``W2(x'', x) <= W2(x', x) + W2(x'', x')`` and ``W2(x'', x) >= W2(x', x) - W2(x'', x')``, with
    ``W2(x'', x')`` (one small step) bounded above by its own Knothe-Rosenblatt coupling.
    A deformation can push a whole image out of the frame: it is then no histogram, and
    outside every ball. With ``bounds=False`` the bracket is (0, inf): every test is solved.
    """
    hist, ok = _histograms(trial)
    inf = torch.full((len(trial),), float("inf"), dtype=torch.float64, device=trial.device)
    if not bounds:
        return torch.where(ok, 0.0, inf), inf
    lower, upper = inf.clone(), inf.clone()
    if bool(ok.any()):
        lo, up = w2_bounds(hist[ok], _histograms(x[ok])[0])
        step = w2_bounds(hist[ok], _histograms(current[ok])[0])[1]
        lower[ok] = torch.maximum(lo, current_lower[ok] - step)
        upper[ok] = torch.minimum(up, current_upper[ok] + step)
    return lower, upper


def w2_perturbation(
    model: nn.Module,
    images: torch.Tensor,
    eps: float,
    eta: float,
    *,
    alpha: float = 0.25,
    sigma: float = 0.5,
    candidates: int | None = None,
    max_iter: int = 20,
    bounds: bool = True,
    generator: torch.Generator | None = None,
) -> PerturbationResult:
    """Algorithm 1 of the talk (section 4.5) for every image of a batch, independently.

    Parameters
    ----------
    model : nn.Module
        Differentiable classifier in eval mode; its prediction on ``x`` is the label the
        ADef steps move away from. The images are moved to its device and dtype.
    images : torch.Tensor or numpy.ndarray
        ``(N, C, H, W)`` non-negative images (each is a histogram for W2), finite.
    eps : float
        Radius of the Wasserstein ball, in the units of
        :func:`infoclust.wasserstein.w2_exact` (pixels).
    eta : float
        Width of the stopping probability ``exp(-W2^2 / eta^2)`` (talk, eq. 6): large
        ``eta`` stops early, small ``eta`` walks on until the ball's edge.
    alpha : float
        Step size: the fraction of each ADef step taken. With ``alpha < 1`` the walk
        approaches the classifier's nearest decision boundary without crossing it (to
        first order), so the classifier, not only the ball, bounds how far it goes.
    sigma, candidates
        Passed to :func:`infoclust.adef.adef_step` (``candidates``: how many of the classes
        ranked highest on ``x`` to try, ``None`` all).
    max_iter : int
        Cap on the number of ADef steps per image.
    bounds : bool
        Settle each test by the certified bounds when they suffice (same walks, fewer
        exact solves; ``w2`` is then exact only where ``exact``). ``False`` solves every
        test exactly.
    generator : torch.Generator or None
        CPU generator for the stopping coins (``None``: torch's global one). One coin is
        drawn per step of every walk still running, whether or not the step is accepted.

    Returns
    -------
    PerturbationResult
        Perturbed images, fields, distances, step counts, end reasons and solver counts.
    """
    x = check_classifier(model, images, nonnegative=True).detach()
    empty = (x.flatten(1).sum(1) <= 0).nonzero().flatten()
    if len(empty):
        raise ParameterError(
            f"images {empty[:5].tolist()} have zero total mass; each image is a histogram "
            "for W2 and needs positive mass"
        )
    eps = check_number("eps", eps, 0.0)
    eta = check_number("eta", eta, 0.0, strict_low=True)
    alpha = check_number("alpha", alpha, 0.0, strict_low=True)
    sigma = check_number("sigma", sigma, 0.0)
    max_iter = check_int("max_iter", max_iter, 1)
    bounds = check_bool("bounds", bounds)
    generator = check_generator("generator", generator)
    n, _, h, w = x.shape
    dev = x.device
    with torch.no_grad():
        logits = model(x)
    labels = logits.argmax(1)
    targets = _targets(logits, labels, candidates)
    field = x.new_zeros(n, 2, h, w)
    current = x.clone()  # line 2: x' := x
    dist = torch.zeros(n, dtype=torch.float64, device=dev)  # W2(x', x), or an upper bound of it
    dist_lower = torch.zeros(n, dtype=torch.float64, device=dev)
    steps = torch.zeros(n, dtype=torch.long, device=dev)
    end = torch.full((n,), 2, dtype=torch.long, device=dev)
    active = torch.ones(n, dtype=torch.bool, device=dev)
    solved = tests = 0
    for _ in range(max_iter):  # line 3: while TRUE
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        with torch.enable_grad():
            xi = current[idx].requires_grad_(True)
            # the candidate whose new field field + alpha * step is smallest: ADef's rule
            step = _smallest_step(xi, model(xi), labels[idx], targets[idx], field[idx] / alpha, sigma)
        trial_field = field[idx] + alpha * step
        trial = _warp(x[idx], trial_field)  # line 4: x'' := ADefStep(x')
        coin = torch.rand(idx.numel(), generator=generator, dtype=torch.float64).to(dev)
        lower, upper = _w2_brackets(trial, x[idx], current[idx], dist_lower[idx], dist[idx], bounds)
        # each test is settled unless its threshold lies inside the bracket [lower, upper]
        unsure = ((lower <= eps) & (eps < upper)) | (
            (upper <= eps) & (coin >= _density(upper, eta)) & (coin < _density(lower, eta))
        )
        unsure &= torch.isfinite(lower)
        if bool(unsure.any()):
            d = _w2_exact(trial[unsure], x[idx][unsure])
            lower[unsure], upper[unsure] = d, d
        solved += int(unsure.sum())
        tests += idx.numel()
        inside = upper <= eps  # line 5
        left = idx[~inside]  # line 10: return x'
        end[left], active[left] = 1, False
        acc = idx[inside]  # line 6: x' := x''
        field[acc], current[acc] = trial_field[inside], trial[inside]
        dist[acc], dist_lower[acc] = upper[inside], lower[inside]
        steps[acc] += 1
        stop = acc[coin[inside] < _density(upper[inside], eta)]  # lines 7-8: return x'
        end[stop], active[stop] = 0, False
    return PerturbationResult(current, field, dist, dist_lower == dist, steps, end, solved, tests)


class W2Perturbation(Transform):
    """Algorithm 1 as IIC's random transformation ``g`` (talk eq. 4 with section 4.5).

    ``g = W2Perturbation(eps, eta); gx = g(x)`` maps a batch ``(N, C, H, W)`` to a
    perturbed batch of the same shape, dtype and device, each image inside the
    Wasserstein ball of radius ``eps`` around its original. Works under
    ``torch.no_grad()`` (the ADef steps switch gradients on for themselves). Its randomness
    comes from its own generators (``seed``); the global random state is never touched.

    Parameters
    ----------
    eps, eta, alpha, sigma, max_iter, bounds
        As in :func:`w2_perturbation`.
    candidates : int or None
        Candidate labels per ADef step (``None``: all). The default, 1, tries only the
        classifier's highest other class on ``x``: against the random classifier on digits
        the walks took as many steps on average as with all candidates, often the same
        walk, at a fraction of the cost (the run is in the README, "Numbers measured once").
    model : nn.Module or None
        The classifier the ADef steps attack. ``None`` (default) uses the talk's random,
        non-trainable network (:func:`infoclust.classifiers.random_classifier`) with
        ``n_random_classes`` outputs, built for the batch's device and size.
    n_random_classes : int
        Classes of the default random classifier.
    redraw : bool
        With the default model: draw a fresh random classifier at every call (seeded by
        ``seed`` plus the call count). The walk from ``x`` is deterministic given the
        classifier, so this is what makes two calls on the same ``x`` follow different
        paths; with ``False`` only the stopping time is random.
    seed : int
        Seeds the random classifier's weights and the stopping coins, in [0, 2**32 - 1].

    Attributes
    ----------
    last_result_ : PerturbationResult or None
        The full result of the latest call (distances, steps, end reasons).
    """

    def __init__(
        self,
        eps: float = 1.0,
        eta: float = 0.5,
        *,
        model: nn.Module | None = None,
        n_random_classes: int = 10,
        redraw: bool = False,
        alpha: float = 0.25,
        sigma: float = 0.5,
        candidates: int | None = 1,
        max_iter: int = 20,
        bounds: bool = True,
        seed: int = 0,
    ) -> None:
        self.eps = check_number("eps", eps, 0.0)
        self.eta = check_number("eta", eta, 0.0, strict_low=True)
        self.alpha = check_number("alpha", alpha, 0.0, strict_low=True)
        self.sigma = check_number("sigma", sigma, 0.0)
        self.candidates = candidates if candidates is None else check_int("candidates", candidates, 1)
        self.max_iter = check_int("max_iter", max_iter, 1)
        self.bounds = check_bool("bounds", bounds)
        self.redraw = check_bool("redraw", redraw)
        if model is not None and not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module or None, got {type(model).__name__}")
        self.model = model
        self.n_random_classes = check_int("n_random_classes", n_random_classes, 2)
        self._seed(seed)

    def _seed(self, seed: int) -> None:
        """A new generator for the coins, a new random classifier, and no call yet."""
        super()._seed(seed)
        self.random_classifier = LazyRandomClassifier(self.n_random_classes, self.seed)
        self.calls = 0
        self.last_result_: PerturbationResult | None = None

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        model = (
            self.model
            if self.model is not None
            else self.random_classifier.model_for(x, self.calls if self.redraw else 0)
        )
        self.last_result_ = w2_perturbation(
            model,
            x,
            self.eps,
            self.eta,
            alpha=self.alpha,
            sigma=self.sigma,
            candidates=self.candidates,
            max_iter=self.max_iter,
            bounds=self.bounds,
            generator=self.generator,
        )
        self.calls += 1
        return self.last_result_.images
