"""The loop shared by the Wasserstein attacks (private).

:func:`run_attack` drives every attack of :mod:`infoclust.projected_sinkhorn` and
:mod:`infoclust.exact_projection` the same way (Wong et al. 2019, section 5): each
iteration, the images still classified as their label take one step of the attack; every
``eps_every`` iterations the radius of each image that is still correct grows by
``eps_factor``; an image leaves the attack as soon as it is misclassified, so its radius is
the one that fooled it. An attack is an object with two methods (:class:`AttackState`):
the current images of some batch rows, and one step of those rows given the gradient of
the loss with respect to their images.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .utils import ParameterError, check_bool, check_images, check_int, check_labels, check_number

__all__ = ["AttackState", "prepare_attack", "run_attack"]


class AttackState(Protocol):
    def images(self, rows: torch.Tensor) -> torch.Tensor:
        """The current adversarial images of batch rows ``rows``, (len(rows), C, H, W)."""

    def step(self, rows: torch.Tensor, grad: torch.Tensor, eps: torch.Tensor, t: int) -> None:
        """One attack step of ``rows``: ``grad`` is the loss gradient at their images, ``eps``
        their radii, ``t`` the iteration (from 0)."""


def _device_and_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def prepare_attack(model: nn.Module, x, y) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check an attack's inputs; return ``x`` and the labels on the model's device and the
    model's clean predictions.

    ``x`` must be floating-point images (N, C, H, W) in [0, 1], finite (NumPy arrays are
    taken; the images are cast to the model's floating type); ``y`` integer labels in
    ``[0, K)`` for the model's ``K`` outputs, or None for the model's own predictions (the
    talk's label-free use). A label outside the model's classes would make every image
    count as fooled before any step.
    """
    x = check_images("x", x, nonnegative=True)
    if bool((x > 1).any()):
        raise ParameterError(
            f"x must be images in [0, 1], got pixels up to {x.max().item():.3g} (scale them "
            f"first, e.g. x / 255)"
        )
    dev, dtype = _device_and_dtype(model)
    x = x.to(device=dev, dtype=dtype)
    try:
        with torch.no_grad():
            logits = model(x)
    except RuntimeError as err:
        raise ParameterError(
            f"x of shape {tuple(x.shape)} does not fit the model (its channels or size?): {err}"
        ) from err
    if logits.ndim != 2 or len(logits) != len(x):
        raise ParameterError(
            f"model must map (N, C, H, W) images to (N, K) logits, got {tuple(logits.shape)}"
        )
    pred = logits.argmax(1)
    y = pred if y is None else check_labels("y", y, len(x), logits.shape[1]).to(dev)
    return x, y, pred


def run_attack(
    model: nn.Module,
    y: torch.Tensor,
    pred: torch.Tensor,
    state: AttackState,
    *,
    eps0: float,
    eps_factor: float,
    eps_every: int,
    max_iter: int,
    verbose: bool,
    desc: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run ``state``'s steps with growing radii; return ``(x_adv, eps, success)``.

    ``eps`` (N,) is each image's radius at the end (where ``success``, the one that fooled
    it; 0 for images misclassified before any step); ``success`` (N,) whether the
    prediction on ``x_adv`` differs from ``y``.
    """
    eps0 = check_number("eps0", eps0, 0.0, strict_low=True)
    eps_factor = check_number("eps_factor", eps_factor, 1.0)
    eps_every = check_int("eps_every", eps_every, 1)
    max_iter = check_int("max_iter", max_iter, 0)
    verbose = check_bool("verbose", verbose)
    success = pred != y
    everyone = torch.arange(len(y), device=y.device)
    eps = torch.where(success, 0.0, eps0).to(torch.float64)
    for t in tqdm(range(max_iter), desc=desc, disable=not verbose):
        rows = (~success).nonzero().flatten()
        if len(rows) == 0:
            break
        xa = state.images(rows).detach().requires_grad_(True)
        loss = F.cross_entropy(model(xa), y[rows], reduction="sum")
        (grad,) = torch.autograd.grad(loss, xa)
        with torch.no_grad():
            state.step(rows, grad, eps[rows], t)
            success[rows] = model(state.images(rows)).argmax(1) != y[rows]
            if (t + 1) % eps_every == 0:
                eps = torch.where(success, eps, eps * eps_factor)
    with torch.no_grad():
        return state.images(everyone).detach(), eps, success
