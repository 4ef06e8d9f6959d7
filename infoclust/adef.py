"""ADef: adversarial deformations by iterated, smoothed linearised steps.

Alaifari, Alberti and Gauksson, "ADef: an Iterative Algorithm to Construct Adversarial
Deformations" (ICLR 2019); talk section 4.4. A deformation is a vector field ``tau``
and the deformed image is ``x_tau(p) = x(p + tau(p))`` (:func:`infoclust.deform.warp`).
Its size is the T-norm ``||tau||_T = max_p |tau(p)|`` (:func:`infoclust.deform.t_norm`).

For a classifier ``F`` with label ``l`` and a candidate label ``k`` with margin
``f = F_k - F_l``, first-order Taylor expansion of ``f(x_tau)`` around the current
iterate gives ``f + <a, tau>`` with ``a(p) = sum_c (df/dx_c)(p) grad x_c(p)``. The
Gaussian-smoothed least-norm solution of ``f + <a, tau> = 0`` is

    tau_k = - f * S(S a) / ||S a||^2,        S = Gaussian filter of width sigma,

(the paper's smoothed linearised step). The step of smallest T-norm over the
candidates is added to the accumulated field and the ORIGINAL image is re-warped by the
sum, so interpolation errors never compound. :func:`adef_step` is one such step (the
building block of the talk's Algorithm 1 in :mod:`infoclust.w2_algorithm`); :func:`adef` is
the whole attack with the stopping rule and the overshoot.

Fields follow :mod:`infoclust.deform`: shape ``(N, 2, H, W)`` in pixel units, channel 0
the displacement along x (columns), channel 1 along y (rows).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import nn

from .deform import gaussian_filter, image_gradient, t_norm, warp
from .utils import ParameterError, check_int, check_number

__all__ = ["ADefResult", "adef_step", "adef"]


@dataclass
class ADefResult:
    """What :func:`adef` returns, one entry per image of the batch.

    Attributes
    ----------
    images : torch.Tensor
        Deformed images ``x(p + tau(p))``, ``(N, C, H, W)``, with the overshoot applied.
    field : torch.Tensor
        The final field ``tau`` (overshoot included), ``(N, 2, H, W)``, pixel units.
    original_label, label : torch.Tensor
        The model's prediction on the original and on the deformed image, ``(N,)``.
    changed : torch.Tensor
        Boolean ``(N,)``: ``label != original_label``.
    iterations : torch.Tensor
        ADef iterations taken by each image, ``(N,)`` (at most ``max_iter``).
    t_norm : torch.Tensor
        ``||tau||_T`` of the final field, ``(N,)``, in pixels.
    """

    images: torch.Tensor
    field: torch.Tensor
    original_label: torch.Tensor
    label: torch.Tensor
    changed: torch.Tensor
    iterations: torch.Tensor
    t_norm: torch.Tensor

    def __getitem__(self, index) -> "ADefResult":
        """The results of a subset of the images (any tensor index), e.g. ``res[:10]``."""
        return ADefResult(*(getattr(self, f.name)[index] for f in fields(self)))


def _check_images(images: torch.Tensor) -> None:
    if not torch.is_tensor(images) or images.ndim != 4:
        raise ParameterError(f"images must be a (N, C, H, W) tensor; got {getattr(images, 'shape', type(images))}")


@torch.no_grad()
def _predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return model(images).argmax(1)


def adef_step(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    sigma: float = 0.5,
    candidates: int | None = None,
) -> torch.Tensor:
    """One ADef step at ``images``: the smallest-T-norm smoothed linearised field.

    For each image and each candidate label ``k`` (the ``candidates`` highest-scoring
    classes other than ``labels``) the step ``tau_k = -f_k S(S a_k) / ||S a_k||^2`` of
    Alaifari et al. (2019; Gaussian smoothing ``S``, talk section 4.4) zeroes the linearised
    margin ``f_k = F_k - F_l``; the one with the smallest T-norm is returned.

    Parameters
    ----------
    model : nn.Module
        Differentiable classifier ``(N, C, H, W) -> (N, K)`` logits, in eval mode (its
        parameters may be frozen, as in :func:`infoclust.classifiers.random_classifier`).
    images : torch.Tensor
        The current iterates ``x^(n)`` (already deformed), ``(N, C, H, W)``.
    labels : torch.Tensor
        The label ``l`` to move away from, ``(N,)`` long (usually the prediction on the
        original image).
    sigma : float
        Width of the Gaussian filter S in pixels; 0 turns smoothing off.
    candidates : int or None
        How many of the other classes to try, by descending score; ``None`` tries all.

    Returns
    -------
    torch.Tensor
        The step field ``(N, 2, H, W)`` in pixel units, on ``images.device``. It is zero
        for an image whose margins have zero gradient.
    """
    _check_images(images)
    sigma = check_number("sigma", sigma, 0.0)
    if labels.shape != images.shape[:1]:
        raise ParameterError(f"labels must have shape ({images.shape[0]},); got {tuple(labels.shape)}")
    n, _, h, w = images.shape
    with torch.enable_grad():
        x = images.detach().requires_grad_(True)
        logits = model(x)
        n_cand = logits.shape[1] - 1 if candidates is None else check_int("candidates", candidates, 1, logits.shape[1] - 1)
        others = logits.detach().scatter(1, labels[:, None], float("-inf"))
        cand = others.topk(n_cand, dim=1).indices                      # (N, K')
        margins = logits.gather(1, cand) - logits.gather(1, labels[:, None])
        grads = torch.stack([
            torch.autograd.grad(margins[:, j].sum(), x, retain_graph=j < n_cand - 1)[0]
            for j in range(n_cand)
        ], dim=1)                                                      # (N, K', C, H, W)
    # a(p) = sum_c df/dx_c(p) * grad x_c(p): (N, K', 2, H, W)
    a = (grads.unsqueeze(3) * image_gradient(images.detach()).unsqueeze(1)).sum(2)
    sa = gaussian_filter(a.flatten(0, 1), sigma)
    norm2 = sa.pow(2).flatten(1).sum(1)
    scale = -margins.detach().flatten() / norm2.clamp_min(torch.finfo(norm2.dtype).tiny)
    steps = torch.where(norm2[:, None, None, None] > 0, scale[:, None, None, None] * gaussian_filter(sa, sigma), 0.0)
    size = t_norm(steps).masked_fill(norm2 == 0, float("inf")).view(n, n_cand)
    best = size.argmin(1)
    return steps.view(n, n_cand, 2, h, w)[torch.arange(n, device=images.device), best]


def adef(
    model: nn.Module,
    images: torch.Tensor,
    *,
    sigma: float = 0.5,
    overshoot: float = 1.2,
    max_iter: int = 100,
    candidates: int | None = None,
    tol: float = 1e-4,
) -> ADefResult:
    """ADef (Alaifari, Alberti, Gauksson 2019; talk section 4.4) on a batch.

    The label of each image is the model's own prediction on it (no ground truth is
    needed, so a random classifier works as well as a trained one). Each iteration
    adds :func:`adef_step` to the accumulated field ``tau`` and re-warps the ORIGINAL
    image by ``tau``; an image stops as soon as its label changes, or after
    ``max_iter`` iterations. Finally ``tau`` is multiplied by ``overshoot`` (the
    paper's eta) and the original images are warped once more.

    On a piecewise-linear (ReLU) network the linearised step lands almost exactly on the
    decision boundary, so some iterates approach it geometrically from the original side
    and never cross; only the overshoot flips them. ``tol`` stops such an image once its
    step is shorter than ``tol`` pixels: with the geometric convergence seen there, the
    remaining iterations would add about ``tol`` to the field, each at full cost.
    ``tol=0`` gives the paper's rule alone.

    Parameters
    ----------
    model : nn.Module
        Differentiable classifier in eval mode, on the images' device.
    images : torch.Tensor
        ``(N, C, H, W)`` images.
    sigma : float
        Gaussian smoothing width of the step in pixels (paper: 0.5 on MNIST, 1 on
        ImageNet); 0 turns smoothing off.
    overshoot : float
        Factor applied to the final field (paper: 1.2 on MNIST, 1.1 on ImageNet).
    max_iter : int
        Iteration cap per image (paper: 100 on MNIST).
    candidates : int or None
        Candidate labels per step (see :func:`adef_step`); ``None`` tries every class.
    tol : float
        Stop an image whose step has a T-norm below ``tol`` pixels (see above).

    Returns
    -------
    ADefResult
        Deformed images, fields, labels, whether the label changed, iterations, T-norms.
    """
    _check_images(images)
    sigma = check_number("sigma", sigma, 0.0)
    overshoot = check_number("overshoot", overshoot, 0.0, strict_low=True)
    max_iter = check_int("max_iter", max_iter, 1)
    tol = check_number("tol", tol, 0.0)
    images = images.detach()
    n, _, h, w = images.shape
    original = _predict(model, images)
    field = images.new_zeros(n, 2, h, w)
    current = images.clone()
    iterations = torch.zeros(n, dtype=torch.long, device=images.device)
    active = torch.ones(n, dtype=torch.bool, device=images.device)
    for _ in range(max_iter):
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        step = adef_step(model, current[idx], original[idx], sigma=sigma, candidates=candidates)
        field[idx] += step
        current[idx] = warp(images[idx], field[idx])
        iterations[idx] += 1
        active[idx] = (_predict(model, current[idx]) == original[idx]) & (t_norm(step) >= tol)
    field = overshoot * field
    deformed = warp(images, field)
    label = _predict(model, deformed)
    return ADefResult(deformed, field, original, label, label != original, iterations, t_norm(field))
