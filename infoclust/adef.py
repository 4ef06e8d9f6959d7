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

(the paper's smoothed linearised step). Of the candidates, ADef keeps the step whose
accumulated field ``tau + tau_k`` has the smallest T-norm, and re-warps the ORIGINAL
image by the new field, so interpolation errors never compound. :func:`adef_step` is one
such step (the building block of the talk's Algorithm 1 in :mod:`infoclust.w2_algorithm`);
:func:`adef` is the whole attack with the stopping rule and the overshoot.

The choices follow the authors' reference code (``deformation.py`` of
https://gitlab.math.ethz.ch/tandrig/ADef, and their ``ADefAttack`` in Foolbox): candidate
labels are ranked once, on the original image; the candidate is chosen by the T-norm of
the accumulated field; the overshoot multiplies only the fields of images whose label has
not changed or that lie on a decision boundary. The departures are listed in
:func:`adef`.

Fields follow :mod:`infoclust.deform`: shape ``(N, 2, H, W)`` in pixel units, channel 0
the displacement along x (columns), channel 1 along y (rows).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import nn

from ._random_net import LazyRandomClassifier
from .attacks import check_classifier
from .deform import gaussian_filter, image_gradient, t_norm, warp
from .transforms import Transform
from .utils import ParameterError, check_choice, check_images, check_int, check_labels, check_number

__all__ = ["ADefResult", "adef_step", "adef", "ADefPerturbation"]

#: Two logits closer than this are a tie: the image lies on a decision boundary (the
#: authors' threshold).
BOUNDARY_TOL = 1e-6


@dataclass
class ADefResult:
    """What :func:`adef` returns, one entry per image of the batch.

    Attributes
    ----------
    images : torch.Tensor
        Deformed images ``x(p + tau(p))``, ``(N, C, H, W)``, with the overshoot applied.
    field : torch.Tensor
        The final field ``tau`` (overshoot included where ``overshot``), ``(N, 2, H, W)``,
        pixel units.
    original_label, label : torch.Tensor
        The model's prediction on the original and on the deformed image, ``(N,)``.
    fooled : torch.Tensor
        Boolean ``(N,)``: ``label != original_label`` (as in :class:`~infoclust.attacks.AttackResult`).
    overshot : torch.Tensor
        Boolean ``(N,)``: the field was multiplied by the overshoot (the iterations ended
        with the original label, or on a decision boundary).
    iterations : torch.Tensor
        ADef iterations taken by each image, ``(N,)`` (at most ``max_iter``).
    t_norm : torch.Tensor
        ``||tau||_T`` of the final field, ``(N,)``, in pixels.
    """

    images: torch.Tensor
    field: torch.Tensor
    original_label: torch.Tensor
    label: torch.Tensor
    fooled: torch.Tensor
    overshot: torch.Tensor
    iterations: torch.Tensor
    t_norm: torch.Tensor

    def __getitem__(self, index) -> "ADefResult":
        """The results of a subset of the images (any tensor index), e.g. ``res[:10]``."""
        return ADefResult(*(getattr(self, f.name)[index] for f in fields(self)))


@torch.no_grad()
def _predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return model(images).argmax(1)


def _targets(logits: torch.Tensor, labels: torch.Tensor, candidates) -> torch.Tensor:
    """Candidate labels ``(N, K')``: the ``candidates`` highest-scoring classes other than ``labels``."""
    n_classes = logits.shape[1]
    if candidates is None:
        count = n_classes - 1
    elif torch.is_tensor(candidates):
        return (
            check_labels("candidates", candidates.flatten(), candidates.numel(), n_classes)
            .view(candidates.shape)
            .to(logits.device)
        )
    else:
        count = check_int("candidates", candidates, 1, n_classes - 1)
    others = logits.detach().scatter(1, labels[:, None], float("-inf"))
    return others.topk(count, dim=1).indices


def _smallest_step(
    x: torch.Tensor,
    logits: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor,
    field: torch.Tensor | None,
    sigma: float,
    max_norm: float = float("inf"),
) -> torch.Tensor:
    """The step of :func:`adef_step` from ``logits = model(x)`` (``x`` a leaf that requires grad).

    The margin gradients of the candidates take one backward pass each through the graph
    of ``logits`` (freed after the last). ``||S a||^2 = <a, S^2 a>`` since ``S`` is
    symmetric, so the filter runs once, as ``S^2``. A candidate whose accumulated field would
    reach ``max_norm`` is not taken; an image without an admissible candidate gets a zero step.
    """
    n, k = targets.shape
    margins = logits.gather(1, targets) - logits.gather(1, labels[:, None])  # (N, K')
    grads = torch.stack(
        [torch.autograd.grad(margins[:, j].sum(), x, retain_graph=j < k - 1)[0] for j in range(k)], dim=1
    )  # (N, K', C, H, W)
    # a(p) = sum_c df/dx_c(p) * grad x_c(p): (N, K', 2, H, W)
    a = (grads.unsqueeze(3) * image_gradient(x.detach()).unsqueeze(1)).sum(2)
    s2a = gaussian_filter(a.flatten(0, 1), sigma, power=2).view_as(a)
    norm2 = (a * s2a).flatten(2).sum(2)  # ||S a||^2
    usable = norm2 > 0
    scale = torch.where(usable, -margins.detach() / norm2.clamp_min(torch.finfo(norm2.dtype).tiny), 0.0)
    steps = scale[..., None, None, None] * s2a
    total = steps if field is None else steps + field.unsqueeze(1)
    size = total.pow(2).sum(2).flatten(2).amax(2).sqrt()
    size = size.masked_fill(~usable | (size >= max_norm), float("inf"))
    best = steps[torch.arange(n, device=x.device), size.argmin(1)]
    return torch.where(torch.isfinite(size.amin(1))[:, None, None, None], best, 0.0)


def adef_step(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    field: torch.Tensor | None = None,
    sigma: float = 0.5,
    candidates: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """One ADef step at ``images``: the smoothed linearised step of the best candidate label.

    For each image and each candidate label ``k`` the step ``tau_k = -f_k S(S a_k) / ||S a_k||^2``
    of Alaifari et al. (2019, eq. (7); Gaussian smoothing ``S``, talk section 4.4) zeroes the
    linearised margin ``f_k = F_k - F_l``. The candidate kept is the one whose accumulated
    field ``field + tau_k`` has the smallest T-norm (the authors' rule; with ``field=None``
    the step's own T-norm).

    Parameters
    ----------
    model : nn.Module
        Differentiable classifier ``(N, C, H, W) -> (N, K)`` logits, in eval mode (its
        parameters may be frozen, as in :func:`infoclust.classifiers.random_classifier`).
    images : torch.Tensor or numpy.ndarray
        The current iterates ``x^(n)`` (already deformed), ``(N, C, H, W)``; moved to the
        model's device and dtype.
    labels : torch.Tensor or array-like
        The label ``l`` to move away from, ``(N,)`` integers in ``[0, K)`` (usually the
        prediction on the original image).
    field : torch.Tensor or None
        The field accumulated so far, ``(N, 2, H, W)`` in pixels, which chooses the candidate.
    sigma : float
        Width of the Gaussian filter S in pixels; 0 turns smoothing off.
    candidates : int, torch.Tensor or None
        Which labels to try: an int ``k``, the ``k`` highest-scoring classes at ``images``
        other than ``labels``; an integer tensor ``(N, K')`` of labels per image; ``None``,
        every other class.

    Returns
    -------
    torch.Tensor
        The step field ``(N, 2, H, W)`` in pixel units, on the model's device. It is zero
        for an image whose margins have zero gradient.
    """
    images = check_classifier(model, images)
    sigma = check_number("sigma", sigma, 0.0)
    n, _, h, w = images.shape
    if field is not None:
        field = check_images("field", field, dtype=images.dtype, device=images.device, channels=2)
        if field.shape != (n, 2, h, w):
            raise ParameterError(f"field must have shape {(n, 2, h, w)}, got {tuple(field.shape)}")
    with torch.enable_grad():
        x = images.detach().requires_grad_(True)
        logits = model(x)
        labels = check_labels("labels", labels, n, logits.shape[1]).to(images.device)
        targets = _targets(logits, labels, candidates)
        if targets.shape[0] != n:
            raise ParameterError(f"candidates must have shape ({n}, K'), got {tuple(targets.shape)}")
        return _smallest_step(x, logits, labels, targets, field, sigma)


def adef(
    model: nn.Module,
    images: torch.Tensor,
    *,
    sigma: float = 0.5,
    overshoot: float = 1.2,
    max_iter: int = 100,
    candidates: int | None = None,
    max_norm: float = float("inf"),
    tol: float = 1e-4,
) -> ADefResult:
    """ADef (Alaifari, Alberti, Gauksson 2019, Algorithm 1; talk section 4.4) on a batch.

    The label of each image is the model's own prediction on it (no ground truth is
    needed, so a random classifier works as well as a trained one), and its candidate
    labels are the ``candidates`` next-highest classes on the original image. Each iteration
    adds :func:`adef_step` to the accumulated field ``tau`` and re-warps the ORIGINAL image
    by ``tau``; an image stops as soon as its label changes, or after ``max_iter``
    iterations, or when no candidate step keeps its field's T-norm below ``max_norm``.
    Finally the field of every image that still has its original label, or lies on a
    decision boundary (two logits within :data:`BOUNDARY_TOL`), is multiplied by
    ``overshoot`` (the paper's eta; less where that would reach ``max_norm``) and its
    original warped once more; a successful field is left as it is (the authors' reference
    code does the same).

    Two departures from the authors' code. On a piecewise-linear
    (ReLU) network the linearised step lands almost exactly on the decision boundary, so
    some iterates approach it geometrically from the original side and never cross; only
    the overshoot flips them. ``tol`` stops such an image once its step is shorter than
    ``tol`` pixels: with the geometric convergence seen there, the remaining iterations
    would add about ``tol`` to the field, each at full cost (the authors stop an image when
    the T-norm of its field changes by less than 1e-10, a rule ``tol=0`` keeps in spirit:
    the iterations then run to ``max_iter``). And outside the frame the deformed image is
    zero, where the authors repeat the border pixel (the same on MNIST, whose border is
    black).

    Parameters
    ----------
    model : nn.Module
        Differentiable classifier in eval mode; the images are moved to its device and dtype.
    images : torch.Tensor or numpy.ndarray
        ``(N, C, H, W)`` images, finite.
    sigma : float
        Gaussian smoothing width of the step in pixels (paper: 0.5 on MNIST, 1 on
        ImageNet); 0 turns smoothing off.
    overshoot : float
        Factor >= 1 applied to the field of an image that has not changed label or sits on
        the decision boundary (paper: 1.2 on MNIST, 1.1 on ImageNet).
    max_iter : int
        Iteration cap per image (paper: 100 on MNIST).
    candidates : int or None
        How many labels to try per step, the highest-ranked on the original image other
        than its label (the authors' ``ind_candidates``); ``None`` tries every class.
    max_norm : float
        Largest T-norm of a field, in pixels (the authors' ``max_norm``; default: no cap). It
        bounds the deformation where the classifier is hard to flip, as a random one can be.
    tol : float
        Stop an image whose step has a T-norm below ``tol`` pixels (see above).

    Returns
    -------
    ADefResult
        Deformed images, fields, labels, whether the model was fooled, where the overshoot was
        applied, iterations, T-norms.
    """
    images = check_classifier(model, images).detach()
    sigma = check_number("sigma", sigma, 0.0)
    overshoot = check_number("overshoot", overshoot, 1.0)
    max_iter = check_int("max_iter", max_iter, 1)
    tol = check_number("tol", tol, 0.0)
    if max_norm != float("inf"):
        max_norm = check_number("max_norm", max_norm, 0.0, strict_low=True)
    n, _, h, w = images.shape
    dev = images.device
    field = images.new_zeros(n, 2, h, w)
    iterations = torch.zeros(n, dtype=torch.long, device=dev)
    idx = torch.arange(n, device=dev)
    x = images.clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)  # the graph of every label check serves the next step
        final = logits.detach().clone()  # the logits at each image's current field
        original = final.argmax(1)
        targets = _targets(final, original, candidates)
        for _ in range(max_iter):
            if logits is None:
                logits = model(x)
            step = _smallest_step(x, logits, original[idx], targets[idx], field[idx], sigma, max_norm)
            field[idx] += step
            iterations[idx] += 1
            current = warp(images[idx], field[idx])
            x = current.detach().requires_grad_(True)
            logits = model(x)
            final[idx] = logits.detach()
            size = t_norm(step)
            keep = (final[idx].argmax(1) == original[idx]) & (size >= tol) & (size > 0)
            if not bool(keep.any()):
                break
            if not bool(keep.all()):
                idx, x, logits = idx[keep], x.detach()[keep].requires_grad_(True), None
    top = final.max(1, keepdim=True).values
    # the authors' overshoot: where the label has not changed or ties, at most up to max_norm
    factor = (max_norm / t_norm(field).clamp_min(torch.finfo(field.dtype).tiny)).clamp(1.0, overshoot)
    overshot = ((final.argmax(1) == original) | ((final >= top - BOUNDARY_TOL).sum(1) > 1)) & (factor > 1.0)
    field[overshot] *= factor[overshot, None, None, None]
    deformed = warp(images, field)
    label = final.argmax(1)  # the field of an image without overshoot is the one checked last
    if bool(overshot.any()):
        label[overshot] = _predict(model, deformed[overshot])
    return ADefResult(
        deformed, field, original, label, label != original, overshot, iterations, t_norm(field)
    )


class ADefPerturbation(Transform):
    """g(x): the ADef deformation (talk section 4.4) that flips a random classifier.

    :func:`adef` against a random classifier, built for the batch's device and size from
    ``seed``; the global random state is never touched. An IIC transformation g
    (:mod:`infoclust.transforms`).

    The defaults are the book's. The talk's code (issue 21, "as the talk ran it"; its
    settings in ``../shared/references.md``, "The talk's own results") used at most 50
    iterations, no smoothing and overshoot 1 against one random linear layer:
    ``ADefPerturbation(sigma=0.0, overshoot=1.0, max_iter=50, classifier="linear")``. The
    summary does not state its candidate labels (``candidates=None`` tries all, as the
    authors' code can), and its stopping rule is the authors' (see ``tol`` of :func:`adef`,
    kept at its default here).

    Parameters
    ----------
    sigma, overshoot, max_iter, max_norm
        As in :func:`adef` (``max_norm``: a cap on the T-norm, in pixels); ``sigma=0`` turns
        the smoothing off, ``overshoot=1`` the overshoot.
    candidates : int or None
        Candidate labels per step (:func:`adef`; ``None``: all). The default, 1, tries only
        the random classifier's highest other class: on digits it flipped as many and as far
        as all candidates at a fraction of the cost (the run is in the README, "Numbers measured once").
    classifier : {"cnn", "linear"}
        The random classifier: the book's convolutional network
        (:func:`infoclust.classifiers.random_classifier`) or the talk's code's one linear
        layer (:func:`infoclust.classifiers.random_linear_classifier`).
    n_random_classes : int
        Classes of the random classifier (any number >= 2).
    seed : int
        Seed of the random classifier's weights, in [0, 2**32 - 1].
    """

    def __init__(
        self,
        *,
        sigma: float = 0.5,
        overshoot: float = 1.2,
        max_iter: int = 20,
        candidates: int | None = 1,
        max_norm: float = float("inf"),
        classifier: str = "cnn",
        n_random_classes: int = 10,
        seed: int = 0,
    ) -> None:
        self.n_random_classes = check_int("n_random_classes", n_random_classes, 2)
        self.classifier = check_choice("classifier", classifier, ("cnn", "linear"))
        self._seed(seed)
        self.sigma = check_number("sigma", sigma, 0.0)
        self.overshoot = check_number("overshoot", overshoot, 1.0)
        self.max_iter = check_int("max_iter", max_iter, 1)
        self.max_norm = (
            max_norm if max_norm == float("inf") else check_number("max_norm", max_norm, 0.0, strict_low=True)
        )
        self.candidates = (
            candidates
            if candidates is None
            else check_int("candidates", candidates, 1, self.n_random_classes - 1)
        )

    def _seed(self, seed: int) -> None:
        """The random classifier of ``seed`` (the deformation draws nothing else)."""
        self.random_classifier = LazyRandomClassifier(self.n_random_classes, seed, self.classifier)
        self.seed = self.random_classifier.seed

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        res = adef(
            self.random_classifier.model_for(x),
            x,
            sigma=self.sigma,
            overshoot=self.overshoot,
            max_iter=self.max_iter,
            candidates=self.candidates,
            max_norm=self.max_norm,
        )
        return res.images
