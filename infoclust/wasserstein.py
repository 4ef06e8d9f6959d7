"""The Wasserstein-2 distance between images and the talk's perturbation model (section 4.1).

An image is a histogram on its pixel grid: the pixel values, summed over the channels,
normalised to total mass 1 (:func:`to_histogram`). The ground cost is the squared
Euclidean distance between pixel centres, in pixels (:func:`grid_cost`), so that

.. math:: W_2(X, Y) = \\Big(\\min_{\\pi \\in \\Pi(X, Y)} \\sum_{p, q} \\pi_{pq} |p - q|^2\\Big)^{1/2}

is talk eq. (5) with q = 2 and is measured in pixels. Three ways to compute it:

* :func:`w2_exact` -- the exact value by network simplex (POT's ``ot.emd2``), one pair
  at a time on the CPU;
* :func:`w2_sinkhorn` -- entropic regularisation for a whole batch in torch (CPU or GPU):
  Sinkhorn's matrix scaling with the separable Gibbs kernel of the grid, and a log-domain
  Sinkhorn for small regularisations;
* :func:`sample_perturbation` -- draws from the talk's eq. (6),
  :math:`p(\\xi | x) \\propto \\exp(-d_W(x, x + \\xi)^2 / \\eta^2)`, by Metropolis-Hastings.
"""

from __future__ import annotations

import inspect
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ._grid_sinkhorn import axis_cost, entropic_values
from .utils import (
    ConvergenceWarning,
    ParameterError,
    check_choice,
    check_generator,
    check_images,
    check_int,
    check_number,
    resolve_device,
)

__all__ = [
    "to_histogram",
    "grid_cost",
    "local_cost",
    "w2_exact",
    "wasserstein_exact",
    "radius_to_distance",
    "distance_to_radius",
    "intensity_wasserstein",
    "w2_sinkhorn",
    "perturbation_density",
    "acceptance_probability",
    "MHResult",
    "sample_perturbation",
]


def _as_batch(name: str, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(H, W) -> (1, 1, H, W); (C, H, W) -> (1, C, H, W); (N, C, H, W) unchanged. Integer
    images become float64: a histogram does not depend on the images' scale."""
    x = torch.as_tensor(x)
    if not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool:
        x = x.double()
    if x.dim() == 2:
        return x[None, None]
    if x.dim() == 3:
        return x[None]
    if x.dim() == 4:
        return x
    raise ParameterError(f"{name} must have shape (H, W), (C, H, W) or (N, C, H, W), got {tuple(x.shape)}")


def _checked_images(name: str, images) -> torch.Tensor:
    """The door check of images for a histogram: a batch (N, C, H, W), finite, non-negative."""
    return check_images(name, _as_batch(name, images), nonnegative=True)


def _masses(x: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """The unnormalised histograms (N, H * W) of checked images: the channels summed, in ``dtype``."""
    x = x.contiguous()
    return x.to(dtype or x.dtype).sum(1).flatten(1)


def _normalise(x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """:func:`to_histogram` of checked images with positive mass, unchecked (the library's own callers)."""
    h = _masses(x, dtype)
    return h / h.sum(1, keepdim=True)


def _histograms(name: str, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """:func:`to_histogram` of checked images, refusing (naming ``name``) an image of zero mass."""
    h = _masses(x, dtype)
    mass = h.sum(1, keepdim=True)
    empty = (mass[:, 0] <= 0).nonzero().flatten()
    if len(empty):
        raise ParameterError(
            f"{name}: images {empty[:5].tolist()} have zero total mass; the "
            "Wasserstein distance is defined between histograms of mass 1"
        )
    return h / mass


def to_histogram(images: torch.Tensor | np.ndarray, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Turn images into histograms of mass 1 on their pixel grid.

    Multi-channel images are summed over the channels first (one mass per pixel: the
    total intensity), then each image is divided by its total mass.

    Parameters
    ----------
    images : array-like
        Images of shape (N, C, H, W), (C, H, W) or (H, W); non-negative, finite, each
        image with positive total mass. Integer images (e.g. uint8 in 0..255) are taken
        as they are: the histogram does not depend on the scale.
    dtype : torch.dtype, optional
        Floating type of the result (default: that of ``images``, float64 for integers).

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
    TypeError
        On boolean images, or what is not an array.
    """
    return _histograms("images", _checked_images("images", images), dtype)


def grid_cost(
    h: int, w: int, dtype: torch.dtype = torch.float64, device: torch.device | str | None = "cpu"
) -> torch.Tensor:
    """Squared Euclidean distances between the pixel centres of an h x w grid.

    ``C[p, q] = (i_p - i_q)^2 + (j_p - j_q)^2`` in pixels^2 for pixels in row-major order,
    the ground cost :math:`d_\\Omega^2` of talk eq. (5) with q = 2.

    Parameters
    ----------
    h, w : int
        The grid's height and width in pixels.
    dtype : torch.dtype
        The cost's floating-point type.
    device : torch.device or str or None
        Where the cost lives (default: the CPU, where POT reads it); ``None`` or ``"auto"``: the
        best device present (:func:`~infoclust.utils.resolve_device`).

    Returns
    -------
    torch.Tensor, shape (h*w, h*w)
        The squared distances in pixels^2.
    """
    return _grid_cost(check_int("h", h, 1), check_int("w", w, 1), dtype, resolve_device(device))


def _grid_cost(h: int, w: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """:func:`grid_cost` for checked sizes and a resolved device."""
    ci = axis_cost(h, dtype, device)
    cj = axis_cost(w, dtype, device)
    return (ci[:, None, :, None] + cj[None, :, None, :]).reshape(h * w, h * w)


def local_cost(
    kernel_size: int = 5,
    p: float = 2.0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = "cpu",
) -> torch.Tensor:
    """Cost :math:`(d_i^2 + d_j^2)^{p/2}` of moving mass by each offset of a k x k window.

    The ground cost of the windowed transport plans of :mod:`infoclust.projected_sinkhorn`
    and :mod:`infoclust.exact_projection`: mass moves only inside a k x k window around
    each pixel.

    Parameters
    ----------
    kernel_size : int
        The window's side k, odd (a window centred on the pixel).
    p : float
        The exponent, positive: the cost is the Euclidean distance to the power p.
    dtype : torch.dtype
        The costs' dtype.
    device : torch.device or str or None
        The costs' device (default: the CPU); ``None`` or ``"auto"``: the best device present
        (:func:`~infoclust.utils.resolve_device`).

    Returns
    -------
    torch.Tensor
        A flat tensor of ``k * k`` costs in row-major order of the offsets ``(d_i, d_j)``,
        ``d`` from ``-(k // 2)`` to ``k // 2`` (the order of ``F.unfold``).

    Raises
    ------
    ParameterError
        When ``kernel_size`` is not a positive odd integer or ``p`` is not positive.
    """
    kernel_size = check_int("kernel_size", kernel_size, 1)
    if kernel_size % 2 == 0:
        raise ParameterError(f"kernel_size={kernel_size} must be odd (a window centred on the pixel)")
    p = check_number("p", p, 0.0, strict_low=True)
    d = torch.arange(kernel_size, dtype=dtype, device=resolve_device(device)) - kernel_size // 2
    return ((d[:, None] ** 2 + d[None, :] ** 2) ** (p / 2)).flatten()


def _pair_batches(a, b) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _checked_images("a", a), _checked_images("b", b)
    if a.shape[2:] != b.shape[2:]:
        raise ParameterError(
            f"a and b must have the same image size, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if len(a) != len(b) and 1 not in (len(a), len(b)):
        raise ParameterError(
            f"a and b must hold the same number of images (or one of them "
            f"a single image), got {len(a)} and {len(b)}"
        )
    n = max(len(a), len(b))
    return a.expand(n, *a.shape[1:]), b.expand(n, *b.shape[1:])


def w2_exact(a, b, max_iter: int = 1_000_000) -> torch.Tensor:
    """Exact W2 between matched images, ``W2(a[i], b[i])`` (talk eq. (5), q = 2).

    Each pair is solved by POT's network simplex, ``ot.emd2``, on the supports of the two
    histograms only: zero-mass pixels carry no transport, so the value is exact, and the
    smaller problems are faster than ``ot.emd2`` on the full grid (the run on MNIST digits
    is in the README, "Numbers measured once"). One pair at a time, on the CPU.

    Parameters
    ----------
    a, b, max_iter
        As :func:`wasserstein_exact` (images, or single images paired with every image of
        the other batch; most network-simplex iterations per pair).

    Returns
    -------
    torch.Tensor
        Shape (N,), float64, in pixels, on the device of ``a``; a
        :class:`~infoclust.utils.ConvergenceWarning` where some pair is not optimal.
    """
    return wasserstein_exact(a, b, 2.0, max_iter=max_iter)


def w2_sinkhorn(
    a,
    b,
    reg: float = 8.0,
    debiased: bool | str = "cost",
    tol: float = 1e-3,
    max_iter: int = 1000,
    scaling: float = 0.5,
    omega: float = 1.8,
    dtype: torch.dtype = torch.float32,
    return_info: bool = False,
):
    """Entropic W2 between matched images for whole batches, in torch (CPU or GPU).

    Solves the entropic problem :math:`OT_\\varepsilon(a, b) = \\min_\\pi \\langle C, \\pi\\rangle +
    \\varepsilon KL(\\pi | a \\otimes b)` (Cuturi 2013) of talk eq. (5) (q = 2) for every pair. The
    Gibbs kernel of the squared-Euclidean grid cost is separable, :math:`e^{-C/\\varepsilon} =
    e^{-C_{rows}/\\varepsilon} \\otimes e^{-C_{cols}/\\varepsilon}`, so applying it costs two small
    matrix products per image (:math:`O(HW(H+W))`) instead of an (HW)^2 kernel (Solomon et
    al. 2015). For ``reg >= 1`` px^2, Sinkhorn's matrix scaling runs on the whole batch in
    ``dtype``; plans it cannot resolve (scalings out of range when ``reg`` is small against
    the squared size of the grid, or not converged in ``max_iter``), and all plans at
    ``reg < 1``, are solved by a log-domain Sinkhorn with epsilon-scaling and
    over-relaxation in float64, stable for any ``reg`` but several times slower.

    Parameters
    ----------
    a, b : array-like
        Images as in :func:`w2_exact`; computed on the device of ``a``.
    reg : float
        Entropic regularisation :math:`\\varepsilon` in pixels^2 (> 0); the plan blurs mass
        over about :math:`\\sqrt{\\varepsilon / 2}` pixels.
    debiased : {False, True, "divergence", "cost"}
        Which value is returned (square-rooted, in pixels):

        * ``False``: :math:`\\langle C, P_{ab}\\rangle`, the transport cost of the entropic
          plan (what ``ot.sinkhorn2`` returns); overestimates :math:`W_2^2` by about the
          blur, ~ :math:`\\varepsilon`.
        * ``True`` or ``"divergence"``: the Sinkhorn divergence :math:`OT_\\varepsilon(a,b)
          - (OT_\\varepsilon(a,a) + OT_\\varepsilon(b,b))/2` (Genevay et al. 2018; Feydy et al.
          2019), 0 for identical images. On a pixel grid it underestimates :math:`W_2^2`
          by about :math:`\\varepsilon (H(P_{ab}) - (H(a) + H(b))/2)` (entropies).
        * ``"cost"`` (default): :math:`\\langle C, P_{ab}\\rangle - (\\langle C, P_{aa}\\rangle +
          \\langle C, P_{bb}\\rangle)/2`, the plan's cost minus the blur measured on each
          image against itself; exact for translated images, 0 for identical ones, and
          the most accurate of the three on MNIST (see chapter 04).

        The debiased values solve 3 problems per pair, in one batch.
    tol : float
        A plan stops iterating when the L1 error of its marginals is below ``tol``; the
        default ``1e-3`` was as accurate as full convergence on MNIST pairs, and ``1e-2``
        only slightly less accurate in half the time (README, "Numbers measured once").
    max_iter : int
        Most iterations of the matrix scaling, and of the log-domain solver at ``reg``.
    scaling : float
        Log-domain solver only: factor in (0, 1) by which its blur decreases from the
        squared diameter of the grid to ``reg``, one sweep per value.
    omega : float
        Log-domain solver only: over-relaxation factor in [1, 2) (1: plain Sinkhorn).
    dtype : torch.dtype
        float32 (default) or float64, the type of the matrix scaling. A ``tol`` below
        ``1000`` machine epsilons of float32 (1.2e-4) is out of float32's reach, and such
        problems are scaled in float64.
    return_info : bool
        Also return ``{"n_iter", "marginal_error", "log_domain"}``: matrix-scaling
        iterations, the largest L1 marginal error, and how many problems went to the
        log-domain solver.

    Returns
    -------
    torch.Tensor
        Shape (N,), in pixels, float64, on the device of ``a``; with ``return_info`` a
        pair ``(values, info)``.

    Warns
    -----
    ConvergenceWarning
        When some plan's marginal error is still above ``tol`` after ``max_iter``
        iterations (e.g. ``reg = 0.01`` on MNIST at the default ``max_iter``).

    Notes
    -----
    Not for small distances. The entropic plan blurs mass over about a pixel even at the
    smallest ``reg`` worth its time, and the debiasing removes that blur only where both
    images are equally sharp: between a digit and its own deformation by 0.5 to 2 pixels
    the error is tens of per cent, a few per cent still at 4 pixels, where it is about 1 %
    between different digits (chapter 04; ``benchmarks/bench_wasserstein.py``,
    small-perturbation row). Use :func:`w2_exact` there, as :func:`sample_perturbation` and
    :func:`infoclust.w2_algorithm.w2_perturbation` do.
    """
    reg = check_number("reg", reg, 0.0, strict_low=True)
    tol = check_number("tol", tol, 0.0, strict_low=True)
    max_iter = check_int("max_iter", max_iter, 1)
    scaling = check_number("scaling", scaling, 0.0, 1.0, strict_low=True)
    if scaling == 1.0:
        raise ParameterError("scaling=1.0 must be < 1")
    omega = check_number("omega", omega, 1.0, 2.0)
    if omega == 2.0:
        raise ParameterError("omega=2.0 must be < 2")
    mode = {False: "none", True: "divergence"}.get(debiased, debiased)
    check_choice("debiased", mode, ("none", "divergence", "cost"))
    check_choice("dtype", dtype, (torch.float32, torch.float64))
    if tol < 1000 * torch.finfo(dtype).eps:
        dtype = torch.float64
    a, b = _pair_batches(a, b)
    hh, ww = a.shape[-2:]
    with torch.no_grad():
        ha = _histograms("a", a.detach(), dtype).view(-1, hh, ww)
        hb = _histograms("b", b.detach(), dtype).to(ha.device).view(-1, hh, ww)
        n = len(ha)
        if mode != "none":  # the symmetric problems in the same batch: see _sinkhorn_scaling
            ha, hb = torch.cat((ha, ha, hb)), torch.cat((hb, ha, hb))
        value, info = entropic_values(ha, hb, reg, mode, tol, max_iter, scaling, omega)
        if mode != "none":
            value = value[:n] - 0.5 * (value[n : 2 * n] + value[2 * n :])
        out = value.clamp_min(0.0).sqrt()
    if not info["marginal_error"] < tol:
        warnings.warn(
            f"w2_sinkhorn: marginal error {info['marginal_error']:.2g} > tol={tol:g} after "
            f"max_iter={max_iter} iterations (reg={reg:g}); raise max_iter, or reg, for values "
            f"of the entropic problem",
            ConvergenceWarning,
            stacklevel=2,
        )
    if return_info:
        return out, info
    return out


# ----------------------------------------------------------------------------------------
# The perturbation model of talk eq. (6)
# ----------------------------------------------------------------------------------------


def perturbation_density(dist: torch.Tensor | float, eta: float) -> torch.Tensor:
    """Unnormalised density of talk eq. (6): :math:`\\exp(-d_W(x, x + \\xi)^2 / \\eta^2)`.

    Parameters
    ----------
    dist : tensor or float
        :math:`d_W(x, x + \\xi)` in pixels, >= 0; ``inf`` (a distance only known to be
        unbounded, e.g. Algorithm 1 without its W2 bounds) has density 0. NaN or a negative
        distance is a :class:`~infoclust.utils.ParameterError`.
    eta : float
        Width :math:`\\eta` in pixels (> 0).

    Returns
    -------
    torch.Tensor
        The density, of the shape of ``dist`` (a 0-d tensor for a float), in [0, 1].
    """
    eta = check_number("eta", eta, 0.0, strict_low=True)
    dist = torch.as_tensor(dist, dtype=torch.float64)
    if bool(torch.isnan(dist).any()) or bool((dist < 0).any()):
        raise ParameterError("dist must hold distances >= 0 (inf allowed), got NaN or a negative value")
    return _density(dist, eta)


def _density(dist: torch.Tensor, eta: float) -> torch.Tensor:
    """:func:`perturbation_density` of float64 distances >= 0 and a checked ``eta``, unchecked."""
    return torch.exp(-(dist**2) / eta**2)


def acceptance_probability(
    dist_current: torch.Tensor, dist_proposed: torch.Tensor, eta: float
) -> torch.Tensor:
    """Metropolis acceptance probability for the target of eq. (6) and a symmetric proposal:
    ``min(1, p(xi' | x) / p(xi | x)) = min(1, exp((d^2 - d'^2) / eta^2))``.

    Parameters
    ----------
    dist_current : torch.Tensor
        :math:`d = d_W(x, x + \\xi)` of the chains' current states, in pixels.
    dist_proposed : torch.Tensor
        :math:`d' = d_W(x, x + \\xi')` of the proposals, broadcastable with ``dist_current``.
    eta : float
        Width :math:`\\eta` of the target in pixels (> 0).

    Returns
    -------
    torch.Tensor
        The probability of accepting each proposal, in [0, 1].
    """
    eta = check_number("eta", eta, 0.0, strict_low=True)
    return _acceptance(dist_current, dist_proposed, eta)


def _acceptance(dist_current, dist_proposed, eta: float) -> torch.Tensor:
    """:func:`acceptance_probability` with a checked ``eta``."""
    d0 = torch.as_tensor(dist_current, dtype=torch.float64)
    d1 = torch.as_tensor(dist_proposed, dtype=torch.float64)
    return torch.exp(((d0**2 - d1**2) / eta**2).clamp_max(0.0))


@dataclass
class MHResult:
    """Output of :func:`sample_perturbation`.

    Attributes
    ----------
    samples : torch.Tensor
        (n_chains, 1, H, W): the perturbed images :math:`x + \\xi`, with the mass of ``x``.
    distances : torch.Tensor
        (n_chains,): :math:`d_W(x, x + \\xi)` of each sample, in pixels.
    acceptance_rate : float
        Accepted proposals / all proposals, over all chains and steps.
    trace : torch.Tensor
        (n_steps,): mean distance over the chains after each step (to judge burn-in).
    seconds : float
        Wall time of the whole run.
    """

    samples: torch.Tensor
    distances: torch.Tensor
    acceptance_rate: float
    trace: torch.Tensor
    seconds: float


def _grid_edges(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Index pairs (p, q) of the horizontally and vertically adjacent pixels (row-major)."""
    idx = torch.arange(h * w).view(h, w)
    p = torch.cat((idx[:, :-1].flatten(), idx[:-1, :].flatten()))
    q = torch.cat((idx[:, 1:].flatten(), idx[1:, :].flatten()))
    return p, q


def sample_perturbation(
    x: torch.Tensor,
    eta: float,
    n_chains: int = 16,
    n_steps: int = 1000,
    distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = w2_exact,
    generator: torch.Generator | None = None,
) -> MHResult:
    """Draw :math:`x + \\xi` from talk eq. (6), :math:`p(\\xi | x) \\propto
    \\exp(-d_W(x, x + \\xi)^2 / \\eta^2)`, by Metropolis-Hastings.

    The perturbed image stays a histogram with the mass of ``x`` (non-negative pixels,
    :math:`\\sum \\xi = 0`); on that set the density is proper. A proposal picks one pair
    of adjacent pixels (p, q) uniformly and splits their joint mass ``m`` afresh,
    ``(u m, (1 - u) m)`` with ``u ~ U(0, 1)``: it moves mass locally, never makes a pixel
    negative, and is symmetric (the reverse move has the same density ``1/m``), so a
    proposal is accepted with probability :func:`acceptance_probability`,
    ``min(1, exp((d^2 - d'^2) / eta^2))``. ``n_chains`` independent chains start at ``x``
    and run in parallel; each step costs one ``distance`` evaluation per chain (with
    :func:`w2_exact` on a small digit, a fraction of a millisecond: README, "Numbers measured once").

    Parameters
    ----------
    x : torch.Tensor
        One single-channel image, (1, H, W) or (H, W), non-negative with positive mass.
    eta : float
        Width of eq. (6) in pixels (> 0).
    n_chains, n_steps : int
        Number of chains (= samples returned) and of proposals per chain.
    distance : callable
        ``distance(a, b)`` -> (N,) W2 distances of matched batches; :func:`w2_exact`
        by default, and keep it so: eq. (6) weighs distances of the order of ``eta``, a
        pixel or less, where :func:`w2_sinkhorn` is off by tens of per cent (it blurs
        mass over about a pixel; chapter 04 and ``benchmarks/bench_wasserstein.py``
        measure it on random deformations of 0.5 to 4 pixels). On a 28 x 28 digit the
        exact distance of one proposal costs a few milliseconds.
    generator : torch.Generator, optional
        Source of randomness.

    Returns
    -------
    MHResult
    """
    eta = check_number("eta", eta, 0.0, strict_low=True)
    n_chains = check_int("n_chains", n_chains, 1)
    n_steps = check_int("n_steps", n_steps, 1)
    check_generator("generator", generator)
    xb = _checked_images("x", x)
    if xb.shape[:2] != (1, 1):
        raise ParameterError(f"x must be one single-channel image (1, H, W) or (H, W), got {tuple(x.shape)}")
    hh, ww = xb.shape[-2:]
    if hh * ww < 2:
        raise ParameterError("x must have at least 2 pixels")
    start = time.perf_counter()
    mass = xb.double().sum()
    hist = _histograms("x", xb.detach().cpu(), torch.float64)  # (1, HW)
    p_idx, q_idx = _grid_edges(hh, ww)
    ref = hist.view(1, 1, hh, ww)
    state = hist.repeat(n_chains, 1)
    dist = torch.zeros(n_chains, dtype=torch.float64)
    accepted = 0
    trace = torch.empty(n_steps, dtype=torch.float64)
    rows = torch.arange(n_chains)
    for step in range(n_steps):
        e = torch.randint(len(p_idx), (n_chains,), generator=generator)
        u = torch.rand(n_chains, generator=generator, dtype=torch.float64)
        p, q = p_idx[e], q_idx[e]
        m = state[rows, p] + state[rows, q]
        prop = state.clone()
        prop[rows, p] = u * m
        prop[rows, q] = m - u * m
        d_new = distance(ref, prop.view(n_chains, 1, hh, ww)).detach().cpu().double()
        accept = torch.rand(n_chains, generator=generator, dtype=torch.float64) < _acceptance(
            dist, d_new, eta
        )
        state = torch.where(accept[:, None], prop, state)
        dist = torch.where(accept, d_new, dist)
        accepted += int(accept.sum())
        trace[step] = dist.mean()
    samples = (state * mass).view(n_chains, 1, hh, ww).to(device=xb.device, dtype=xb.dtype)
    return MHResult(samples, dist, accepted / (n_chains * n_steps), trace, time.perf_counter() - start)


# ----------------------------------------------------------------------------------------
# W_p for other ground costs, and the intensity-histogram distance of the talk's code
# ----------------------------------------------------------------------------------------


def wasserstein_exact(a, b, p: float = 2.0, *, max_iter: int = 1_000_000) -> torch.Tensor:
    """Exact :math:`W_p` between matched images with ground cost :math:`d^p` (:func:`w2_exact` is p = 2).

    .. math:: W_p(X, Y) = \\Big(\\min_{\\pi \\in \\Pi(X, Y)} \\sum_{u, v} \\pi_{uv} |u - v|^p\\Big)^{1/p}

    between the images' histograms (:func:`to_histogram`), in pixels, by POT's network
    simplex on the supports of each pair. With ``p = 1`` it is the earth mover's distance
    with cost :math:`d`, the ground cost of Wu et al.'s MNIST attacks (their radius 0.5 is
    :math:`W_1` in pixels).

    Parameters
    ----------
    a, b : array-like
        Images of shape (N, C, H, W), or single images (C, H, W) / (H, W); a single image
        is paired with every image of the other batch.
    p : float
        Exponent of the ground cost (> 0).
    max_iter : int
        Most network-simplex iterations per pair (POT's ``numItermax``).

    Returns
    -------
    torch.Tensor
        Shape (N,), float64, in pixels, on the device of ``a``.

    Warns
    -----
    ConvergenceWarning
        When the network simplex of some pair stopped at ``max_iter`` (or POT reports
        another failure): those values are not the optimum.
    """
    p = check_number("p", p, 0.0, strict_low=True)
    max_iter = check_int("max_iter", max_iter, 1)
    a, b = _pair_batches(a, b)
    ha = _histograms("a", a.detach().cpu(), torch.float64)
    hb = _histograms("b", b.detach().cpu(), torch.float64)
    return _exact(ha, hb, a.shape[-2:], p, max_iter).to(a.device)


def _w2_exact(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """:func:`w2_exact` of checked batches (N, C, H, W) of one shape, each image of positive
    mass: no checks (Algorithm 1's own trial points). float64, on the device of ``a``."""
    ha, hb = _normalise(a.detach().cpu(), torch.float64), _normalise(b.detach().cpu(), torch.float64)
    return _exact(ha, hb, a.shape[-2:], 2.0, 1_000_000).to(a.device)


def _exact(ha: torch.Tensor, hb: torch.Tensor, size, p: float, max_iter: int) -> torch.Tensor:
    """The kernel of :func:`wasserstein_exact`: W_p between the float64 CPU histograms ``ha[i]``
    and ``hb[i]`` (N, H * W) on an H x W grid (``size``), pair by pair; float64 on the CPU."""
    import ot

    ha, hb = ha.numpy(), hb.numpy()
    cost = _grid_cost(*size, torch.float64, torch.device("cpu")).numpy() ** (p / 2)
    # both histograms sum to 1 and the dual potentials are not used: skip POT's checks of the
    # masses and its centring of the potentials where it offers to (a sixth of the time per pair)
    offered = inspect.signature(ot.emd2).parameters
    skip = {k: False for k in ("check_marginals", "center_dual") if k in offered}
    out = np.empty(len(ha))
    failed: dict[int, str] = {}
    for i, (u, v) in enumerate(zip(ha, hb)):
        su, sv = np.flatnonzero(u), np.flatnonzero(v)
        uu, vv = u[su], v[sv]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # POT's; replaced by ours below
            val, log = ot.emd2(
                uu / uu.sum(), vv / vv.sum(), cost[np.ix_(su, sv)], numItermax=max_iter, log=True, **skip
            )
        if log["result_code"] != 1:  # 1: optimal (POT's network simplex)
            failed[i] = log["warning"] or f"result code {log['result_code']}"
        out[i] = max(float(val), 0.0) ** (1 / p)
    if failed:
        first = next(iter(failed.items()))
        warnings.warn(
            f"wasserstein_exact: {len(failed)} of {len(ha)} pairs are not optimal (pair {first[0]}: "
            f"{first[1]}); raise max_iter={max_iter}",
            ConvergenceWarning,
            stacklevel=3,
        )
    return torch.as_tensor(out)


def radius_to_distance(radius, p: float = 2.0):
    """The :math:`W_p` distance in pixels of a transport radius, :math:`\\varepsilon^{1/p}`.

    A radius given as a transport cost per unit mass with ground cost :math:`d^p` (the
    ``eps`` of :func:`~infoclust.attacks.wasserstein_pgd` and of the talk's
    code, ``p = 2``) bounds :math:`W_p^p`, so the ball holds the images within
    :math:`W_p \\le \\varepsilon^{1/p}` pixels: the talk's starting radii 0.001, 0.01, 0.1
    and 1 are :math:`W_2` = 0.032, 0.1, 0.32 and 1 px. The book's ``w2_eps`` parameters are
    already in pixels of :math:`W_2`.

    Parameters
    ----------
    radius : float or array-like
        Transport cost per unit mass (>= 0, finite).
    p : float
        Exponent of the ground cost (> 0).

    Returns
    -------
    float or torch.Tensor
        The distance in pixels (a float for a number, a float64 tensor otherwise).
    """
    p = check_number("p", p, 0.0, strict_low=True)
    return _power("radius", radius, 1.0 / p)


def distance_to_radius(distance, p: float = 2.0):
    """The transport radius of a :math:`W_p` distance in pixels, :math:`d^p` (the inverse of
    :func:`radius_to_distance`): a ``w2_eps`` of 0.3 px is the talk's radius 0.09.

    Parameters
    ----------
    distance : float or array-like
        :math:`W_p` in pixels (>= 0, finite).
    p : float
        Exponent of the ground cost (> 0).

    Returns
    -------
    float or torch.Tensor
        Transport cost per unit mass (a float for a number, a float64 tensor otherwise).
    """
    p = check_number("p", p, 0.0, strict_low=True)
    return _power("distance", distance, p)


def _power(name: str, value, exponent: float):
    """``value ** exponent`` for a non-negative finite number or array (checked, named)."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return check_number(name, value, 0.0) ** exponent
    values = torch.as_tensor(value, dtype=torch.float64)
    if not bool(torch.isfinite(values).all()) or bool((values < 0).any()):
        raise ParameterError(f"{name} must be finite and >= 0")
    return values**exponent


def intensity_wasserstein(a, b, bins: int = 256) -> torch.Tensor:
    """The 1-D Wasserstein distance between the intensity histograms of matched images.

    What the talk's own code called the Wasserstein distance between two images: each
    image's pixel values, in [0, 1], are counted in ``bins`` equal bins, and the two
    histograms are compared by the 1-D earth mover's distance between bin centres
    (``scipy.stats.wasserstein_distance``), in units of intensity. It does not see where
    the ink is: a translated digit, or one rotated by 90 degrees, has distance 0, while the
    spatial :math:`W_2` of talk eq. (5) (:func:`w2_exact`) measures how far the ink moved.

    Parameters
    ----------
    a, b : array-like
        Images (N, C, H, W) with values in [0, 1], or single images (C, H, W) / (H, W)
        paired with every image of the other batch.
    bins : int
        Histogram bins over [0, 1] (the talk's code: 256).

    Returns
    -------
    torch.Tensor
        Shape (N,), float64, in units of intensity (between 0 and 1).
    """
    from scipy.stats import wasserstein_distance

    bins = check_int("bins", bins, 1)
    a, b = _pair_batches(a, b)
    for name, images in (("a", a), ("b", b)):
        if bool((images > 1).any()):
            raise ParameterError(
                f"{name} must hold intensities in [0, 1], got up to {images.max().item():.3g}"
            )
    edges = np.linspace(0.0, 1.0, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    out = [
        wasserstein_distance(
            centres,
            centres,
            np.histogram(u.detach().cpu().double().numpy(), edges)[0],
            np.histogram(v.detach().cpu().double().numpy(), edges)[0],
        )
        for u, v in zip(a, b)
    ]
    return torch.tensor(out, dtype=torch.float64, device=a.device)
