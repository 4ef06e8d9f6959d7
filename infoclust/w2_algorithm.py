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
Distances are exact (:func:`infoclust.wasserstein.w2_exact`, POT's network simplex), so
every returned image lies inside its ball by construction.

Two choices the talk leaves open, made explicit here: ``alpha`` scales each ADef step
(``alpha = 1`` is the full linearised step to the nearest decision boundary), and
``max_steps`` caps the walk (the talk's loop ends almost surely, but after about
``exp(eps^2 / eta^2)`` steps in the worst case); a capped walk returns its last point
inside the ball, like the other two exits.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .adef import adef_step
from .classifiers import random_classifier
from .deform import warp
from .utils import ParameterError, check_int, check_number
from .wasserstein import perturbation_density, w2_exact

__all__ = ["END_REASONS", "PerturbationResult", "w2_perturbation", "W2Perturbation"]

#: Why a walk ended, indexed by :attr:`PerturbationResult.end`.
END_REASONS = ("stopped at random", "next step left the ball", "max_steps reached")


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
        Exact ``W2(x', x)``, ``(N,)`` float64, at most ``eps``.
    steps : torch.Tensor
        Accepted ADef steps, ``(N,)`` long (0: ``x'`` is ``x`` itself).
    end : torch.Tensor
        ``(N,)`` long index into :data:`END_REASONS`.
    """

    images: torch.Tensor
    field: torch.Tensor
    w2: torch.Tensor
    steps: torch.Tensor
    end: torch.Tensor


def w2_perturbation(
    model: nn.Module,
    images: torch.Tensor,
    eps: float,
    eta: float,
    *,
    alpha: float = 0.25,
    sigma: float = 0.5,
    candidates: int | None = None,
    max_steps: int = 20,
    generator: torch.Generator | None = None,
) -> PerturbationResult:
    """Algorithm 1 of the talk (section 4.5) for every image of a batch, independently.

    Parameters
    ----------
    model : nn.Module
        Differentiable classifier in eval mode on the images' device; its prediction on
        ``x`` is the label the ADef steps move away from.
    images : torch.Tensor
        ``(N, C, H, W)`` non-negative images (each is a histogram for W2).
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
        Passed to :func:`infoclust.adef.adef_step`.
    max_steps : int
        Cap on the number of ADef steps per image.
    generator : torch.Generator or None
        CPU generator for the stopping coins (``None``: torch's global one).

    Returns
    -------
    PerturbationResult
        Perturbed images, fields, exact distances, step counts and end reasons.
    """
    if not torch.is_tensor(images) or images.ndim != 4:
        raise ParameterError(f"images must be a (N, C, H, W) tensor; got {getattr(images, 'shape', type(images))}")
    eps = check_number("eps", eps, 0.0)
    eta = check_number("eta", eta, 0.0, strict_low=True)
    alpha = check_number("alpha", alpha, 0.0, strict_low=True)
    max_steps = check_int("max_steps", max_steps, 1)
    x = images.detach()
    n, _, h, w = x.shape
    dev = x.device
    with torch.no_grad():
        labels = model(x).argmax(1)
    field = x.new_zeros(n, 2, h, w)
    current = x.clone()                                      # line 2: x' := x
    dist = torch.zeros(n, dtype=torch.float64, device=dev)
    steps = torch.zeros(n, dtype=torch.long, device=dev)
    end = torch.full((n,), 2, dtype=torch.long, device=dev)
    active = torch.ones(n, dtype=torch.bool, device=dev)
    for _ in range(max_steps):                               # line 3: while TRUE
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        step = adef_step(model, current[idx], labels[idx], sigma=sigma, candidates=candidates)
        trial_field = field[idx] + alpha * step
        trial = warp(x[idx], trial_field)                    # line 4: x'' := ADefStep(x')
        d = _exact_w2(trial, x[idx])
        inside = d <= eps                                    # line 5
        left = idx[~inside]                                  # line 10: return x'
        end[left], active[left] = 1, False
        acc = idx[inside]                                    # line 6: x' := x''
        field[acc], current[acc], dist[acc] = trial_field[inside], trial[inside], d[inside]
        steps[acc] += 1
        coin = torch.rand(acc.numel(), generator=generator, dtype=torch.float64).to(dev)
        stop = acc[coin < perturbation_density(d[inside], eta)]   # lines 7-8: return x'
        end[stop], active[stop] = 0, False
    return PerturbationResult(current, field, dist, steps, end)


def _exact_w2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact ``W2(a[i], b[i])``, float64 on ``a.device``; infinite where ``a[i]`` has no mass
    left (a deformation can push the whole image out of the frame: it is then no
    histogram, and outside every ball)."""
    d = torch.full((len(a),), float("inf"), dtype=torch.float64, device=a.device)
    ok = a.flatten(1).sum(1) > 0
    if ok.any():
        d[ok] = w2_exact(a[ok], b[ok])
    return d


class W2Perturbation:
    """Algorithm 1 as IIC's random transformation ``g`` (talk eq. 4 with section 4.5).

    ``g = W2Perturbation(eps, eta); gx = g(x)`` maps a batch ``(N, C, H, W)`` to a
    perturbed batch of the same shape on the same device, each image inside the
    Wasserstein ball of radius ``eps`` around its original. Works under
    ``torch.no_grad()`` (the ADef steps switch gradients on for themselves).

    Parameters
    ----------
    eps, eta, alpha, sigma, candidates, max_steps
        As in :func:`w2_perturbation`.
    model : nn.Module or None
        The classifier the ADef steps attack. ``None`` (default) uses the talk's random,
        non-trainable network (:func:`infoclust.classifiers.random_classifier`) with
        ``n_classes`` outputs, built on the batch's device.
    n_classes : int
        Classes of the default random classifier.
    redraw : bool
        With the default model: draw a fresh random classifier at every call (seeded by
        ``seed`` and the call count). The walk from ``x`` is deterministic given the
        classifier, so this is what makes two calls on the same ``x`` follow different
        paths; with ``False`` only the stopping time is random.
    seed : int
        Seeds the random classifier's weights and the stopping coins.

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
        n_classes: int = 10,
        redraw: bool = False,
        alpha: float = 0.25,
        sigma: float = 0.5,
        candidates: int | None = None,
        max_steps: int = 20,
        seed: int = 0,
    ) -> None:
        self.eps = check_number("eps", eps, 0.0)
        self.eta = check_number("eta", eta, 0.0, strict_low=True)
        self.alpha = check_number("alpha", alpha, 0.0, strict_low=True)
        self.sigma = check_number("sigma", sigma, 0.0)
        self.candidates = candidates if candidates is None else check_int("candidates", candidates, 1)
        self.max_steps = check_int("max_steps", max_steps, 1)
        self.n_classes = check_int("n_classes", n_classes, 2)
        self.redraw = bool(redraw)
        self.seed = check_int("seed", seed, 0, 2**31 - 1)
        self.model = model
        self.generator = torch.Generator().manual_seed(self.seed)
        self.calls = 0
        self.last_result_: PerturbationResult | None = None
        self._random: tuple[str, int, nn.Module] | None = None

    def _model_for(self, x: torch.Tensor) -> nn.Module:
        if self.model is not None:
            return self.model
        key = (str(x.device), self.calls if self.redraw else 0)
        if self._random is None or self._random[:2] != key:
            model = random_classifier(x.shape[1], self.n_classes, (self.seed + key[1]) % 2**32, device=x.device)
            self._random = (*key, model)
        return self._random[2]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.last_result_ = w2_perturbation(
            self._model_for(x), x, self.eps, self.eta, alpha=self.alpha, sigma=self.sigma,
            candidates=self.candidates, max_steps=self.max_steps, generator=self.generator,
        )
        self.calls += 1
        return self.last_result_.images

    def __repr__(self) -> str:
        return (f"W2Perturbation(eps={self.eps}, eta={self.eta}, alpha={self.alpha}, sigma={self.sigma}, "
                f"max_steps={self.max_steps}, n_classes={self.n_classes}, redraw={self.redraw})")
