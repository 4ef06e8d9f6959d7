"""The Wasserstein-2 distance between images and the talk's perturbation model (section 4.1).

An image is a histogram on its pixel grid: the pixel values, summed over the channels,
normalised to total mass 1 (:func:`to_histogram`). The ground cost is the squared
Euclidean distance between pixel centres, in pixels (:func:`grid_cost`), so that

.. math:: W_2(X, Y) = \\Big(\\min_{\\pi \\in \\Pi(X, Y)} \\sum_{p, q} \\pi_{pq} |p - q|^2\\Big)^{1/2}

is talk eq. (5) with q = 2 and is measured in pixels. Three ways to compute it:

* :func:`w2_exact` -- the exact value by network simplex (POT's ``ot.emd2``), one pair
  at a time on the CPU;
* :func:`w2_sinkhorn` -- entropic regularisation for a whole batch in torch (CPU or GPU),
  log-domain Sinkhorn that uses the separability of the Gibbs kernel on a grid;
* :func:`sample_perturbation` -- draws from the talk's eq. (6),
  :math:`p(\\xi | x) \\propto \\exp(-d_W(x, x + \\xi)^2 / \\eta^2)`, by Metropolis-Hastings.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .utils import ParameterError, check_choice, check_int, check_number

__all__ = [
    "to_histogram",
    "grid_cost",
    "w2_exact",
    "w2_sinkhorn",
    "perturbation_density",
    "acceptance_probability",
    "MHResult",
    "sample_perturbation",
]


def _as_batch(name: str, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(H, W) -> (1, 1, H, W); (C, H, W) -> (1, C, H, W); (N, C, H, W) unchanged."""
    x = torch.as_tensor(x)
    if x.dim() == 2:
        return x[None, None]
    if x.dim() == 3:
        return x[None]
    if x.dim() == 4:
        return x
    raise ParameterError(f"{name} must have shape (H, W), (C, H, W) or (N, C, H, W), "
                         f"got {tuple(x.shape)}")


def to_histogram(images: torch.Tensor | np.ndarray, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Turn images into histograms of mass 1 on their pixel grid.

    Multi-channel images are summed over the channels first (one mass per pixel: the
    total intensity), then each image is divided by its total mass.

    Parameters
    ----------
    images : array-like
        Shape (N, C, H, W), (C, H, W) or (H, W); non-negative, finite, each image with
        positive total mass.
    dtype : torch.dtype, optional
        Floating type of the result (default: that of ``images``, float32 for integers).

    Returns
    -------
    torch.Tensor
        Shape (N, H * W), rows summing to 1, pixels in row-major order (as
        :func:`grid_cost`).

    Raises
    ------
    ParameterError
        On negative or non-finite pixels, or an image whose mass is zero (a histogram
        cannot be made from it, and dividing would give NaN).
    """
    x = _as_batch("images", images)
    if dtype is None:
        dtype = x.dtype if x.is_floating_point() else torch.float32
    x = x.to(dtype)
    if not torch.isfinite(x).all():
        raise ParameterError("images contain NaN or infinite values")
    if (x < 0).any():
        raise ParameterError(f"images contain negative pixels (min {x.min().item():.3g}); a "
                             "histogram needs non-negative mass (shift or clamp them first)")
    h = x.sum(1).flatten(1)
    mass = h.sum(1, keepdim=True)
    empty = (mass[:, 0] <= 0).nonzero().flatten()
    if len(empty):
        raise ParameterError(f"images {empty[:5].tolist()} have zero total mass; the "
                             "Wasserstein distance is defined between histograms of mass 1")
    return h / mass


def _axis_cost(n: int, dtype: torch.dtype, device: torch.device | str | None) -> torch.Tensor:
    t = torch.arange(n, dtype=dtype, device=device)
    return (t[:, None] - t[None, :]) ** 2


def grid_cost(h: int, w: int, dtype: torch.dtype = torch.float64,
              device: torch.device | str | None = None) -> torch.Tensor:
    """Squared Euclidean distances between the pixel centres of an h x w grid.

    ``C[p, q] = (i_p - i_q)^2 + (j_p - j_q)^2`` in pixels^2 for pixels in row-major order,
    the ground cost :math:`d_\\Omega^2` of talk eq. (5) with q = 2. Shape (h*w, h*w).
    """
    h = check_int("h", h, 1)
    w = check_int("w", w, 1)
    ci = _axis_cost(h, dtype, device)
    cj = _axis_cost(w, dtype, device)
    return (ci[:, None, :, None] + cj[None, :, None, :]).reshape(h * w, h * w)


def _pair_batches(a, b) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _as_batch("a", a), _as_batch("b", b)
    if a.shape[2:] != b.shape[2:]:
        raise ParameterError(f"a and b must have the same image size, got {tuple(a.shape)} "
                             f"and {tuple(b.shape)}")
    if len(a) != len(b) and 1 not in (len(a), len(b)):
        raise ParameterError(f"a and b must hold the same number of images (or one of them "
                             f"a single image), got {len(a)} and {len(b)}")
    n = max(len(a), len(b))
    return a.expand(n, *a.shape[1:]), b.expand(n, *b.shape[1:])


def w2_exact(a, b, num_iter_max: int = 1_000_000) -> torch.Tensor:
    """Exact W2 between matched images, ``W2(a[i], b[i])`` (talk eq. (5), q = 2).

    Each pair is solved by POT's network simplex, ``ot.emd2``, on the supports of the two
    histograms only (zero-mass pixels carry no transport, so this is exact and much
    faster on digits).

    Parameters
    ----------
    a, b : array-like
        Images of shape (N, C, H, W), or single images (C, H, W) / (H, W); a single image
        is paired with every image of the other batch. See :func:`to_histogram`.
    num_iter_max : int
        Passed to ``ot.emd2`` as ``numItermax``.

    Returns
    -------
    torch.Tensor
        Shape (N,), float64, in pixels, on the device of ``a``.
    """
    import ot

    num_iter_max = check_int("num_iter_max", num_iter_max, 1)
    a, b = _pair_batches(a, b)
    device = a.device
    h, w = a.shape[-2:]
    ha = to_histogram(a.detach().cpu(), torch.float64).numpy()
    hb = to_histogram(b.detach().cpu(), torch.float64).numpy()
    cost = grid_cost(h, w).numpy()
    out = np.empty(len(ha))
    for i, (p, q) in enumerate(zip(ha, hb)):
        sp, sq = np.flatnonzero(p), np.flatnonzero(q)
        pp, qq = p[sp], q[sq]
        val = ot.emd2(pp / pp.sum(), qq / qq.sum(), cost[np.ix_(sp, sq)], numItermax=num_iter_max)
        out[i] = np.sqrt(max(float(val), 0.0))
    return torch.as_tensor(out, device=device)


# ----------------------------------------------------------------------------------------
# Entropic W2 on the grid
# ----------------------------------------------------------------------------------------

def _grid_lse(h: torch.Tensor, ci: torch.Tensor, cj: torch.Tensor, eps: float,
              wi: torch.Tensor | None = None, wj: torch.Tensor | None = None) -> torch.Tensor:
    """``log sum_q exp(h[q] - C[p, q] / eps) * wi * wj`` for every pixel p of every batch row.

    ``h`` has shape (B, H, W); the kernel ``exp(-C / eps)`` of the grid cost factorises into
    a row kernel and a column kernel, so the sum over the H*W pixels q is two 1-D
    log-sum-exp "convolutions": over the columns, then over the rows -- O(HW (H + W)) per
    image instead of O((HW)^2). Optional ``wi`` (H, H) and ``wj`` (W, W) are extra log
    weights of the row and column factors (used for the transport cost).
    """
    kj = -cj / eps if wj is None else wj - cj / eps
    ki = -ci / eps if wi is None else wi - ci / eps
    t = torch.logsumexp(h[:, :, None, :] + kj, dim=-1)             # (B, H_q, W_p)
    return torch.logsumexp(t[:, None, :, :] + ki[:, :, None], dim=2)  # (B, H_p, W_p)


@dataclass
class _SinkhornState:
    f: torch.Tensor
    g: torch.Tensor
    n_iter: int
    error: float


def _sinkhorn_log(log_a: torch.Tensor, log_b: torch.Tensor, reg: float, tol: float,
                  max_iter: int, scaling: float) -> _SinkhornState:
    """Log-domain Sinkhorn with epsilon-scaling on a batch of grid histograms (B, H, W)."""
    dtype, device = log_a.dtype, log_a.device
    hh, ww = log_a.shape[-2:]
    ci, cj = _axis_cost(hh, dtype, device), _axis_cost(ww, dtype, device)
    diameter2 = float((hh - 1) ** 2 + (ww - 1) ** 2)
    f = torch.zeros_like(log_a)
    g = torch.zeros_like(log_b)
    # epsilon-scaling: a few sweeps at decreasing blur before iterating at eps = reg
    eps = max(diameter2, reg)
    while eps > reg:
        f = -eps * _grid_lse(log_b + g / eps, ci, cj, eps)
        g = -eps * _grid_lse(log_a + f / eps, ci, cj, eps)
        eps = max(eps * scaling, reg)
    error = float("inf")
    for it in range(1, max_iter + 1):
        f_new = -reg * _grid_lse(log_b + g / reg, ci, cj, reg)
        # marginal error of the current plan (f, g) on the a side; the b side is exact
        err = (log_a.exp() * ((f - f_new) / reg).expm1().abs()).flatten(1).sum(1)
        f = f_new
        g = -reg * _grid_lse(log_a + f / reg, ci, cj, reg)
        error = float(err.max())
        if error < tol:
            break
    return _SinkhornState(f, g, it, error)


def _transport_cost(state: _SinkhornState, log_a, log_b, reg: float) -> torch.Tensor:
    """<C, P> for the plan P = a b exp((f + g - C) / reg), per batch row."""
    hh, ww = log_a.shape[-2:]
    dtype, device = log_a.dtype, log_a.device
    ci, cj = _axis_cost(hh, dtype, device), _axis_cost(ww, dtype, device)
    log_ci, log_cj = ci.log(), cj.log()       # log 0 = -inf on the diagonal: no cost there
    hb = log_b + state.g / reg
    rows = _grid_lse(hb, ci, cj, reg, wi=log_ci)
    cols = _grid_lse(hb, ci, cj, reg, wj=log_cj)
    outer = log_a + state.f / reg
    both = torch.stack((outer + rows, outer + cols), 1).flatten(1)
    return torch.logsumexp(both, dim=1).exp()


def w2_sinkhorn(
    a,
    b,
    reg: float = 1.0,
    debiased: bool = False,
    tol: float = 1e-4,
    max_iter: int = 500,
    scaling: float = 0.5,
    dtype: torch.dtype = torch.float32,
    return_info: bool = False,
):
    """Entropic W2 between matched images for whole batches, in torch (CPU or GPU).

    Solves the entropic problem :math:`\\min_\\pi \\langle C, \\pi\\rangle + \\varepsilon
    KL(\\pi | a \\otimes b)` (Cuturi 2013) for every pair by log-domain Sinkhorn with
    epsilon-scaling. The Gibbs kernel of the squared-Euclidean grid cost is separable,
    :math:`e^{-C/\\varepsilon} = e^{-C_{rows}/\\varepsilon} \\otimes e^{-C_{cols}/\\varepsilon}`, so one
    iteration costs 1-D log-sum-exp convolutions along each axis instead of an (HW)^2
    kernel: :math:`O(HW(H + W))` per image.

    Parameters
    ----------
    a, b : array-like
        Images as in :func:`w2_exact`; computed on the device of ``a``.
    reg : float
        Entropic regularisation :math:`\\varepsilon` in pixels^2 (> 0). The plan blurs mass
        over about :math:`\\sqrt{\\varepsilon / 2}` pixels.
    debiased : bool
        False: ``sqrt(<C, P_eps>)``, the transport cost of the entropic plan (what
        ``ot.sinkhorn2`` returns), which overestimates W2. True: the Sinkhorn divergence
        :math:`S_\\varepsilon = OT_\\varepsilon(a,b) - (OT_\\varepsilon(a,a) + OT_\\varepsilon(b,b))/2`
        (Genevay et al. 2018; Feydy et al. 2019), 0 for identical images, whose bias is
        :math:`O(\\varepsilon^2)`; returns :math:`\\sqrt{\\max(S_\\varepsilon, 0)}`. Costs 3
        problems per pair.
    tol : float
        Stop when the L1 error of every plan's marginals is below ``tol``.
    max_iter : int
        Most Sinkhorn iterations at ``reg`` (after the epsilon-scaling sweeps).
    scaling : float
        Factor in (0, 1) by which the blur decreases from the grid's squared diameter down
        to ``reg`` (one sweep per value).
    dtype : torch.dtype
        Computation type (float32 or float64).
    return_info : bool
        Also return ``{"n_iter", "marginal_error"}``.

    Returns
    -------
    torch.Tensor
        Shape (N,), in pixels, on the device of ``a``; with ``return_info`` a pair.
    """
    reg = check_number("reg", reg, 0.0, strict_low=True)
    tol = check_number("tol", tol, 0.0, strict_low=True)
    max_iter = check_int("max_iter", max_iter, 1)
    scaling = check_number("scaling", scaling, 0.0, 1.0, strict_low=True)
    if scaling == 1.0:
        raise ParameterError("scaling=1.0 must be < 1")
    check_choice("dtype", dtype, (torch.float32, torch.float64))
    a, b = _pair_batches(a, b)
    hh, ww = a.shape[-2:]
    with torch.no_grad():
        ha = to_histogram(a.detach(), dtype).view(-1, hh, ww)
        hb = to_histogram(b.detach(), dtype).to(ha.device).view(-1, hh, ww)
        n = len(ha)
        if debiased:
            ha, hb = torch.cat((ha, ha, hb)), torch.cat((hb, ha, hb))
        log_a, log_b = ha.log(), hb.log()
        state = _sinkhorn_log(log_a, log_b, reg, tol, max_iter, scaling)
        if debiased:
            ot_eps = ((ha * state.f).flatten(1).sum(1) + (hb * state.g).flatten(1).sum(1))
            value = ot_eps[:n] - 0.5 * (ot_eps[n:2 * n] + ot_eps[2 * n:])
        else:
            value = _transport_cost(state, log_a, log_b, reg)
        out = value.clamp_min(0.0).sqrt()
    if return_info:
        return out, {"n_iter": state.n_iter, "marginal_error": state.error}
    return out


# ----------------------------------------------------------------------------------------
# The perturbation model of talk eq. (6)
# ----------------------------------------------------------------------------------------

def perturbation_density(dist: torch.Tensor | float, eta: float) -> torch.Tensor:
    """Unnormalised density of talk eq. (6): :math:`\\exp(-d_W(x, x + \\xi)^2 / \\eta^2)`.

    Parameters
    ----------
    dist : tensor or float
        :math:`d_W(x, x + \\xi)` in pixels.
    eta : float
        Width :math:`\\eta` in pixels (> 0).
    """
    eta = check_number("eta", eta, 0.0, strict_low=True)
    dist = torch.as_tensor(dist, dtype=torch.float64)
    return torch.exp(-dist ** 2 / eta ** 2)


def acceptance_probability(dist_current: torch.Tensor, dist_proposed: torch.Tensor,
                           eta: float) -> torch.Tensor:
    """Metropolis acceptance probability for the target of eq. (6) and a symmetric proposal:
    ``min(1, p(xi' | x) / p(xi | x)) = min(1, exp((d^2 - d'^2) / eta^2))``."""
    eta = check_number("eta", eta, 0.0, strict_low=True)
    d0 = torch.as_tensor(dist_current, dtype=torch.float64)
    d1 = torch.as_tensor(dist_proposed, dtype=torch.float64)
    return torch.exp(((d0 ** 2 - d1 ** 2) / eta ** 2).clamp_max(0.0))
