"""Mutual-information estimators as plain functions of critic score matrices.

Deep InfoMax (Hjelm et al., 2019, section 3.1) never computes a mutual information: it
trains a critic :math:`T(x, y)` and reads an estimate off the critic's scores on
*positive* pairs (drawn from the joint, an input with its own code) and *negative* pairs
(from the product of marginals, an input with another input's code). With a batch of
:math:`N` samples every pairing is scored at once, giving a score matrix ``scores`` of
shape ``(N, N)`` or ``(N, N, L)`` (``L`` locations of a local feature map) where
``scores[i, j, l] = T(x_i^{(l)}, y_j)``: the diagonal ``i == j`` holds the positives and
every other entry a negative.

With :math:`\\mathrm{sp}(z) = \\log(1 + e^z)` the three estimators are

* Jensen-Shannon (DIM eq. 4): :math:`E_P[-\\mathrm{sp}(-T)] - E_{P \\times \\tilde P}[\\mathrm{sp}(T)]`,
* Donsker-Varadhan (DIM eq. 2, MINE): :math:`E_P[T] - \\log E_{P \\times \\tilde P}[e^T]`,
* InfoNCE (DIM eq. 5): :math:`E_P[T(x, y) - \\log \\sum_{x'} e^{T(x', y)}]`, shifted by
  :math:`\\log N` so that it reads in nats; it can never exceed :math:`\\log N`.

With a location axis, each location is estimated on its own and the estimates are averaged,
as in the local term :math:`\\frac{1}{M^2}\\sum_i \\hat I(X^{(i)}; E(X))` of eq. (1). (The
authors' code pools the negatives of all locations for InfoNCE, which moves the ceiling to
:math:`\\log(N L)`; we keep eq. (1)'s per-location estimate.)

The module also holds the toy problem with a known answer used to compare the estimators:
correlated Gaussians (:func:`correlated_gaussians`, :func:`gaussian_mi`) and a critic trained
on them (:func:`mi_training_curve`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .utils import (
    ParameterError,
    check_bool,
    check_choice,
    check_finite,
    check_generator,
    check_int,
    check_not_diverged,
    check_number,
    draw_seed,
    forked_global_rng,
    resolve_device,
)

__all__ = [
    "ESTIMATORS",
    "jsd_mi",
    "dv_mi",
    "infonce_mi",
    "mi_estimate",
    "gaussian_mi",
    "correlated_gaussians",
    "SeparableCritic",
    "mi_training_curve",
]

ESTIMATORS = ("jsd", "dv", "nce")


def _check_scores(scores: torch.Tensor, finite: bool = True) -> torch.Tensor:
    """Return ``scores`` as (N, N, L), checking that it is square in its first two axes (and finite)."""
    if not torch.is_tensor(scores) or scores.ndim not in (2, 3) or scores.shape[0] != scores.shape[1]:
        shape = tuple(scores.shape) if torch.is_tensor(scores) else type(scores).__name__
        raise ParameterError(f"scores must be a tensor of shape (N, N) or (N, N, L), got {shape}")
    if scores.shape[0] < 2:
        raise ParameterError("scores needs a batch of N >= 2 samples (negatives are the other samples)")
    if finite:
        check_finite("scores", scores)
    return scores if scores.ndim == 3 else scores.unsqueeze(-1)


def _split(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive scores (N, L) and the boolean mask of negatives (N, N, 1) of a (N, N, L) matrix."""
    n = scores.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=scores.device)
    return scores.diagonal(dim1=0, dim2=1).T, ~eye.unsqueeze(-1)


def jsd_mi(scores: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon MI estimate (DIM eq. 4), plus ``log 4``.

    .. math:: \\hat I^{(JSD)} = E_P[-\\mathrm{sp}(-T)] - E_{P\\times\\tilde P}[\\mathrm{sp}(T)] + \\log 4

    The ``log 4`` offset (as in the authors' code) makes the value twice the Jensen-Shannon
    divergence between joint and product of marginals: 0 when the critic cannot tell the
    pairs apart, ``log 4`` (its supremum) when it separates them perfectly. It is a proxy
    that grows with the MI, not an estimate in nats.

    Parameters
    ----------
    scores : torch.Tensor
        Critic scores, shape (N, N) or (N, N, L); diagonal = positive pairs.

    Returns
    -------
    torch.Tensor
        Scalar estimate (differentiable), averaged over locations.
    """
    return _jsd(_check_scores(scores))


def _jsd(s: torch.Tensor) -> torch.Tensor:
    pos, neg = _split(s)
    n = s.shape[0]
    e_pos = (-F.softplus(-pos)).mean(0)
    e_neg = (F.softplus(s) * neg).sum((0, 1)) / (n * (n - 1))
    return (e_pos - e_neg).mean() + math.log(4.0)


def dv_mi(scores: torch.Tensor) -> torch.Tensor:
    """Donsker-Varadhan MI lower bound (DIM eq. 2; the bound MINE maximises).

    .. math:: \\hat I^{(DV)} = E_P[T] - \\log E_{P\\times\\tilde P}[e^T]

    Exact in nats when ``T`` is the log density ratio plus any constant; unbounded above,
    and high-variance because of the exponential.

    Parameters
    ----------
    scores : torch.Tensor
        Critic scores, shape (N, N) or (N, N, L); diagonal = positive pairs.

    Returns
    -------
    torch.Tensor
        Scalar estimate in nats (differentiable), averaged over locations.
    """
    return _dv(_check_scores(scores))


def _dv(s: torch.Tensor) -> torch.Tensor:
    pos, neg = _split(s)
    n = s.shape[0]
    log_mean_exp = torch.logsumexp(s.masked_fill(~neg, -math.inf), dim=(0, 1)) - math.log(n * (n - 1))
    return (pos.mean(0) - log_mean_exp).mean()


def infonce_mi(scores: torch.Tensor) -> torch.Tensor:
    """InfoNCE MI lower bound (DIM eq. 5), shifted by ``log N`` to read in nats.

    .. math:: \\hat I^{(NCE)} = \\log N + E_P\\Big[T(x_j, y_j) - \\log \\sum_{i=1}^{N} e^{T(x_i, y_j)}\\Big]

    For each code ``y_j`` the critic must pick its own input among the ``N`` inputs of the
    batch (a softmax over the column ``scores[:, j]``). Each term is at most 0, so the
    estimate never exceeds ``log N``, however large the true MI.

    Parameters
    ----------
    scores : torch.Tensor
        Critic scores, shape (N, N) or (N, N, L); diagonal = positive pairs.

    Returns
    -------
    torch.Tensor
        Scalar estimate in nats (differentiable), averaged over locations.
    """
    return _nce(_check_scores(scores))


def _nce(s: torch.Tensor) -> torch.Tensor:
    pos, _ = _split(s)
    return (pos - torch.logsumexp(s, dim=0)).mean() + math.log(s.shape[0])


_FORMULAS = {"jsd": _jsd, "dv": _dv, "nce": _nce}


def mi_estimate(scores: torch.Tensor, estimator: str = "jsd") -> torch.Tensor:
    """The estimate named ``estimator`` (``"jsd"``, ``"dv"`` or ``"nce"``) of ``scores``.

    Parameters
    ----------
    scores : torch.Tensor, shape (N, N)
        Critic scores ``T(x_i, y_j)``; the diagonal holds the positive pairs.
    estimator : str
        ``"jsd"`` (Jensen-Shannon), ``"dv"`` (Donsker-Varadhan) or ``"nce"`` (InfoNCE).

    Returns
    -------
    torch.Tensor
        The estimate, a 0-d tensor (nats for ``"dv"`` and ``"nce"``), differentiable.
    """
    return _FORMULAS[check_choice("estimator", estimator, ESTIMATORS)](_check_scores(scores))


def _estimate(scores: torch.Tensor, estimator: str) -> torch.Tensor:
    """:func:`mi_estimate` without the NaN check, which costs a device sync: for training loops
    that check their own terms for divergence."""
    return _FORMULAS[estimator](_check_scores(scores, finite=False))


def gaussian_mi(dim: int, rho: float) -> float:
    """True MI in nats of ``dim`` independent pairs of standard normals with correlation ``rho``.

    .. math:: I(X; Y) = -\\tfrac{d}{2} \\log(1 - \\rho^2)

    Parameters
    ----------
    dim : int
        The dimension :math:`d` (number of independent pairs).
    rho : float
        The correlation :math:`\\rho` of each pair, in (-1, 1).

    Returns
    -------
    float
        The mutual information in nats.
    """
    check_int("dim", dim, 1)
    rho = check_number("rho", rho, -1.0, 1.0)
    if abs(rho) == 1.0:
        raise ParameterError("rho must lie strictly between -1 and 1 (the MI is infinite at +-1)")
    return -0.5 * dim * math.log1p(-rho * rho)


def _rho_for(mi: float, dim: int) -> float:
    """The correlation that gives ``dim`` Gaussian pairs a mutual information of ``mi`` nats."""
    return math.sqrt(1.0 - math.exp(-2.0 * mi / dim))


def correlated_gaussians(
    n: int,
    dim: int,
    rho: float,
    *,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` pairs ``(x, y)`` with ``y = rho x + sqrt(1 - rho^2) eps``, all ``dim``-dimensional.

    The MI between ``x`` and ``y`` is :func:`gaussian_mi` ``(dim, rho)``.

    Parameters
    ----------
    n : int
        Number of pairs.
    dim : int
        Dimension of ``x`` and of ``y``.
    rho : float
        Correlation of each coordinate pair, in (-1, 1).
    generator : torch.Generator or None
        Source of the draws; None: torch's global one.
    device : str or torch.device
        Where the pairs are drawn.

    Returns
    -------
    x, y : torch.Tensor, shape (n, dim)
        The pairs.
    """
    check_int("n", n, 1)
    gaussian_mi(dim, rho)
    generator = check_generator("generator", generator)
    device = resolve_device(device)
    x = torch.randn(n, dim, generator=generator).to(device)
    eps = torch.randn(n, dim, generator=generator).to(device)
    return x, rho * x + math.sqrt(1.0 - rho * rho) * eps


class SeparableCritic(nn.Module):
    """Critic ``T(x, y) = g(x)^T h(y)`` with two MLPs: all N x N scores from one matrix product.

    This is the encode-and-dot-product form of DIM's local critic, used here on vectors.

    Parameters
    ----------
    dim : int
        Dimension of ``x`` and ``y``.
    hidden : int
        Width of each MLP's hidden layer.
    out : int
        Dimension of ``g(x)`` and ``h(y)``.
    """

    def __init__(self, dim: int, hidden: int = 256, out: int = 32) -> None:
        super().__init__()

        def mlp() -> nn.Sequential:
            return nn.Sequential(
                nn.Linear(dim, hidden),
                nn.ReLU(),
                nn.Linear(hidden, hidden),
                nn.ReLU(),
                nn.Linear(hidden, out),
            )

        self.g, self.h = mlp(), mlp()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Scores ``(N, N)``: ``[i, j] = T(x_i, y_j)``."""
        return self.g(x) @ self.h(y).T


def mi_training_curve(
    estimator: str,
    *,
    true_mi: tuple[float, ...] = (2.0, 4.0, 6.0, 8.0),
    dim: int = 20,
    steps_per_level: int = 400,
    batch_size: int = 64,
    lr: float = 5e-4,
    generator: torch.Generator | None = None,
    device: str = "auto",
    verbose: bool = True,
) -> dict[str, np.ndarray]:
    """Train a critic by maximising one estimator on correlated Gaussians whose MI steps up.

    The true MI follows the staircase ``true_mi`` (``steps_per_level`` steps each); at every
    step a fresh batch is drawn, the critic ascends ``estimator`` and all three estimators
    are read off the same score matrix.

    Parameters
    ----------
    estimator : {"jsd", "dv", "nce"}
        The objective the critic maximises.
    true_mi : tuple of float
        MI levels in nats.
    dim : int
        Dimension of x and of y.
    steps_per_level : int
        Training steps at each MI level.
    batch_size : int
        N: the InfoNCE ceiling is ``log N``.
    lr : float
        Adam learning rate.
    generator : torch.Generator or None
        CPU generator of the critic's initialisation (a seed drawn from it) and of every
        batch; None: torch's global generator.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``...
    verbose : bool
        Show a tqdm progress bar.

    Returns
    -------
    dict
        ``"true"`` (steps,), and ``"jsd"``, ``"dv"``, ``"nce"`` (steps,) estimates per step.
    """
    from tqdm.auto import tqdm

    check_choice("estimator", estimator, ESTIMATORS)
    check_int("dim", dim, 1)
    check_int("steps_per_level", steps_per_level, 1)
    check_int("batch_size", batch_size, 2)
    check_number("lr", lr, 0.0, strict_low=True)
    if not isinstance(true_mi, (tuple, list)) or not true_mi:
        raise ParameterError(f"true_mi={true_mi!r} must be a non-empty tuple of positive numbers")
    for m in true_mi:
        check_number("true_mi", m, 0.0, strict_low=True)
    gen = check_generator("generator", generator)
    check_bool("verbose", verbose)
    dev = resolve_device(device)
    with forked_global_rng(draw_seed(gen)):  # torch's default initialisation, on the CPU
        critic = SeparableCritic(dim)
    critic = critic.to(dev)
    opt = torch.optim.Adam(critic.parameters(), lr=lr)
    out: dict[str, list[float]] = {"true": [], **{e: [] for e in ESTIMATORS}}
    bar = tqdm(total=len(true_mi) * steps_per_level, desc=f"critic ({estimator})", disable=not verbose)
    for level, mi in enumerate(true_mi):
        rho = _rho_for(mi, dim)
        for step in range(steps_per_level):
            x, y = correlated_gaussians(batch_size, dim, rho, generator=gen, device=dev)
            scores = critic(x, y)
            loss = -_estimate(scores, estimator)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            check_not_diverged(
                f"the critic's training (level {level + 1}, {mi} nats)",
                f"the {estimator} loss",
                loss.item(),
                epoch=None,
                step=step + 1,
                lower=f"lr (now {lr})",
            )
            with torch.no_grad():
                for name in ESTIMATORS:
                    out[name].append(float(_estimate(scores, name)))
            out["true"].append(mi)
            bar.update()
    bar.close()
    return {k: np.asarray(v) for k, v in out.items()}
