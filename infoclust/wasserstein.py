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

import time
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

_LOG_KERNEL_FLOOR = -660.0  # exp of it is a normal float64 with room to spare (> e^-708)
_EMPTY = -1e30  # log-mass of an empty pixel: exp() gives exactly 0, and no row is all -inf


def _lse_axis(h: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``out[..., p] = log sum_q exp(h[..., q] + k[p, q])``: a 1-D log-domain convolution, float64.

    When every entry of the log-kernel ``k`` is finite and above ``_LOG_KERNEL_FLOOR``, this
    is a matrix product with ``exp(k)`` after shifting each row of ``h`` by its maximum:
    the shifted sum is then at least ``exp(min k)``, a normal float, so nothing underflows (exponents far below that are clamped, and their share
    of the sum is below e^-40). Otherwise it is an explicit log-sum-exp over a
    (..., P, Q) tensor, with the same clamping (``exp`` making denormal floats is many
    times slower on x86 CPUs). Every row of ``h`` must hold a finite value: empty pixels
    carry the log-mass ``_EMPTY`` rather than -inf.
    """
    kmin = float(k.min())
    if kmin >= _LOG_KERNEL_FLOOR:
        m = h.amax(-1, keepdim=True)
        e = (h - m).clamp_min_(kmin - 40.0).exp_()
        return (e @ k.exp().T).log_().add_(m)
    s = h[..., None, :] + k
    m = s.amax(-1, keepdim=True)
    return (s - m).clamp_min_(-80.0).exp_().sum(-1).log_().add_(m[..., 0])


def _grid_lse(h: torch.Tensor, ci: torch.Tensor, cj: torch.Tensor, eps: float,
              wi: torch.Tensor | None = None, wj: torch.Tensor | None = None) -> torch.Tensor:
    """``log sum_q exp(h[q] - C[p, q] / eps) * wi * wj`` for every pixel p of every batch row.

    ``h`` has shape (B, H, W); the kernel ``exp(-C / eps)`` of the grid cost factorises into
    a row kernel and a column kernel, so the sum over the H*W pixels q is two 1-D
    log-domain convolutions (:func:`_lse_axis`): along the columns, then along the rows --
    O(HW (H + W)) per image instead of O((HW)^2). Optional ``wi`` (H, H) and ``wj`` (W, W)
    are extra log weights of the row and column factors (used for the transport cost).
    """
    kj = -cj / eps if wj is None else wj - cj / eps
    ki = -ci / eps if wi is None else wi - ci / eps
    t = _lse_axis(h, kj)                                      # (B, H_q, W_p)
    return _lse_axis(t.transpose(1, 2), ki).transpose(1, 2)   # (B, H_p, W_p)


@dataclass
class _SinkhornState:
    f: torch.Tensor
    g: torch.Tensor
    n_iter: int
    error: float


def _sinkhorn_log(log_a: torch.Tensor, log_b: torch.Tensor, reg: float, tol: float,
                  max_iter: int, scaling: float, omega: float) -> _SinkhornState:
    """Log-domain Sinkhorn on a batch of grid histograms (B, H, W).

    Epsilon-scaling (one sweep per blur value, from the grid's squared diameter down to
    ``reg``), then over-relaxed updates at ``reg`` (Thibault et al. 2017:
    ``f <- f + omega (T(g) - f)``; ``omega = 1`` is plain Sinkhorn) until the L1 error of
    both marginals of every plan is below ``tol`` (checked every 5 iterations).
    """
    dtype, device = log_a.dtype, log_a.device
    hh, ww = log_a.shape[-2:]
    ci, cj = _axis_cost(hh, dtype, device), _axis_cost(ww, dtype, device)
    a, b = log_a.exp(), log_b.exp()
    f = torch.zeros_like(log_a)
    g = torch.zeros_like(log_b)
    eps = max(float((hh - 1) ** 2 + (ww - 1) ** 2), reg)
    while eps > reg:
        f = -eps * _grid_lse(log_b + g / eps, ci, cj, eps)
        g = -eps * _grid_lse(log_a + f / eps, ci, cj, eps)
        eps = max(eps * scaling, reg)
    error = float("inf")
    for it in range(1, max_iter + 1):
        # the a-marginal of the plan (f, g) is a * exp((f - T_b(g)) / reg), and so on
        f_target = -reg * _grid_lse(log_b + g / reg, ci, cj, reg)
        check = it % 5 == 0 or it == max_iter  # the error costs as much as half an update
        if check:
            err_a = (a * ((f - f_target) / reg).expm1().abs()).flatten(1).sum(1)
        f = f + omega * (f_target - f)
        g_target = -reg * _grid_lse(log_a + f / reg, ci, cj, reg)
        if check:
            err_b = (b * ((g - g_target) / reg).expm1().abs()).flatten(1).sum(1)
            error = float(torch.maximum(err_a, err_b).max())
        g = g + omega * (g_target - g)
        if check and error < tol:
            break
    return _SinkhornState(f, g, it, error)


def _transport_cost(state: _SinkhornState, log_a, log_b, reg: float) -> torch.Tensor:
    """<C, P> for the plan P = a b exp((f + g - C) / reg), per batch row.

    Fast path (as in :func:`_lse_axis`): for every pixel p, the plan's row mass and the
    mean cost of where it goes, both from shifted matrix products, the cost split into
    its column part (pass 1) and row part (pass 2). Otherwise log-sum-exps with the log
    of the cost as extra weights.
    """
    hh, ww = log_a.shape[-2:]
    dtype, device = log_a.dtype, log_a.device
    ci, cj = _axis_cost(hh, dtype, device), _axis_cost(ww, dtype, device)
    hb = log_b + state.g / reg
    kmin = -float(max(ci.max(), cj.max())) / reg
    if kmin < _LOG_KERNEL_FLOOR:
        rows = _grid_lse(hb, ci, cj, reg, wi=ci.log())  # log 0 = -inf: no cost on the diagonal
        cols = _grid_lse(hb, ci, cj, reg, wj=cj.log())
        outer = log_a + state.f / reg
        both = torch.stack((outer + rows, outer + cols), 1).flatten(1)
        return torch.logsumexp(both, dim=1).exp()
    ki, kj = (-ci / reg).exp(), (-cj / reg).exp()
    m = hb.amax(-1, keepdim=True)
    e = (hb - m).clamp_min_(kmin - 40.0).exp_()                  # (B, H_q, W_q)
    t0 = e @ kj.T                                                # (B, H_q, W_p)
    col_cost = ((e @ (kj * cj).T) / t0).transpose(1, 2)          # mean column cost
    l0 = (t0.log_() + m).transpose(1, 2)                         # (B, W_p, H_q)
    m2 = l0.amax(-1, keepdim=True)
    w = (l0 - m2).clamp_min_(kmin - 40.0).exp_()
    d = w @ ki.T                                                 # (B, W_p, H_p)
    mean_cost = (w @ (ki * ci).T + (w * col_cost) @ ki.T) / d
    log_row = (d.log_() + m2).transpose(1, 2)                    # (B, H_p, W_p)
    mass = (log_a + state.f / reg + log_row).exp_()              # row marginal of the plan
    return (mass * mean_cost.transpose(1, 2)).flatten(1).sum(1)


_SCALING_MIN_REG = 1.0  # px^2; below it plain Sinkhorn needs thousands of iterations on 28 x 28


@dataclass
class _ScalingState:
    u: torch.Tensor
    v: torch.Tensor
    n_iter: int
    error: torch.Tensor  # (N,) L1 marginal error of each plan; NaN where the scaling broke down


def _kernel_apply(ki: torch.Tensor, x: torch.Tensor, kj: torch.Tensor) -> torch.Tensor:
    """``K x`` for a batch of grid functions (N, H, W): the separable Gibbs kernel
    ``K = ki (x) kj`` acts as ``ki @ x @ kj`` (both factors symmetric), two small matrix
    products per image instead of an (HW) x (HW) one."""
    return ki @ x @ kj


def _sinkhorn_scaling(a: torch.Tensor, b: torch.Tensor, ki: torch.Tensor, kj: torch.Tensor,
                      tol: float, max_iter: int) -> _ScalingState:
    """Sinkhorn's matrix scaling (Cuturi 2013, Alg. 1) on a batch of grid histograms (N, H, W).

    The plan is ``P = diag(u) K diag(v)`` with the separable kernel of :func:`_kernel_apply`;
    alternate ``u = a / K v`` and ``v = b / K u``. After the u-update the a-marginal is
    exact, so the L1 error of the b-marginal, ``|v K u - b|_1``, is the stopping criterion,
    checked every 5 iterations. ``0 / 0`` (an empty pixel where the kernel underflowed)
    reads as 0. A row leaves the batch when its plan is within ``tol`` or has broken down:
    an error that did not decrease since the last check, or is not finite (the kernel or
    the scalings out of range; the caller solves those again in the log domain). Rows are
    independent and identical rows give identical results, so a pair of identical images
    has exactly the plan of their symmetric problem.
    """
    tiny = torch.finfo(a.dtype).tiny
    n = len(a)
    u_out, v_out = torch.zeros_like(a), torch.zeros_like(b)
    error = torch.full((n,), float("inf"), dtype=a.dtype, device=a.device)
    active = torch.arange(n, device=a.device)  # rows still iterating
    previous = error.clone()
    v = torch.ones_like(b)
    for it in range(1, max_iter + 1):
        u = a / _kernel_apply(ki, v, kj).clamp_min_(tiny)
        ku = _kernel_apply(ki, u, kj)
        if it % 5 and it != max_iter:
            v = b / ku.clamp_min_(tiny)
            continue
        err = (v * ku - b).abs_().flatten(1).sum(1)
        done = (err < tol) | ~(err < previous) | (it == max_iter)  # converged, stalled, or out of time
        if bool(done.any()):
            rows = active[done]
            u_out[rows], v_out[rows], error[rows] = u[done], v[done], err[done]
            keep = ~done
            active, a, b, ku, err = active[keep], a[keep], b[keep], ku[keep], err[keep]
            if not len(active):
                break
        previous = err
        v = b / ku.clamp_min_(tiny)
    return _ScalingState(u_out, v_out, it, error)


def _scaling_values(state: _ScalingState, a: torch.Tensor, b: torch.Tensor, ki: torch.Tensor,
                    kj: torch.Tensor, reg: float, mode: str) -> torch.Tensor:
    """Per-row value of a scaling-domain plan ``P = diag(u) K diag(v)``.

    ``mode == "divergence"``: the dual value ``<a, f> + <b, g>`` with the potentials
    ``f = reg log(u / a)``, ``g = reg log(v / b)`` (0 log 0 = 0), i.e. :math:`OT_\\varepsilon`.
    Otherwise the transport cost ``<C, P>``, the cost split into its row and column parts:
    ``sum u * ((ki * ci) v kj + ki v (kj * cj))``.
    """
    u, v = state.u, state.v
    if mode == "divergence":
        dual = torch.xlogy(a, u) - torch.xlogy(a, a) + torch.xlogy(b, v) - torch.xlogy(b, b)
        return reg * dual.flatten(1).sum(1)
    ci = _axis_cost(ki.shape[0], ki.dtype, ki.device)
    cj = _axis_cost(kj.shape[0], kj.dtype, kj.device)
    kcv = (ki * ci) @ v @ kj + ki @ v @ (kj * cj)
    return (u * kcv).flatten(1).sum(1)


def _entropic_values(a: torch.Tensor, b: torch.Tensor, reg: float, mode: str, tol: float,
                     max_iter: int, scaling: float, omega: float) -> tuple[torch.Tensor, dict]:
    """Entropic value of every pair (a[i], b[i]), shape (N,), and the solver's statistics.

    For ``reg >= _SCALING_MIN_REG``, matrix scaling in the dtype of ``a`` first
    (:func:`_sinkhorn_scaling`): fast, but its scalings can over- or underflow when ``reg``
    is small against the squared size of the grid. The plans it leaves non-finite or
    unconverged, and every plan at smaller ``reg`` (where plain Sinkhorn needs thousands of
    iterations), are solved by the log-domain Sinkhorn with epsilon-scaling in float64
    (:func:`_sinkhorn_log`), which is stable for any ``reg``.
    """
    values = torch.zeros(len(a), dtype=torch.float64, device=a.device)
    error = torch.full_like(values, float("inf"))
    n_iter = 0
    if reg >= _SCALING_MIN_REG:
        hh, ww = a.shape[-2:]
        ki = (-_axis_cost(hh, a.dtype, a.device) / reg).exp()
        kj = (-_axis_cost(ww, a.dtype, a.device) / reg).exp()
        state = _sinkhorn_scaling(a, b, ki, kj, tol, max_iter)
        values = _scaling_values(state, a, b, ki, kj, reg, mode).double()
        error, n_iter = state.error.double(), state.n_iter
    redo = (~(error < tol) | ~torch.isfinite(values)).nonzero().flatten()
    if len(redo):
        log_a = a[redo].double().log().clamp_min_(_EMPTY)
        log_b = b[redo].double().log().clamp_min_(_EMPTY)
        log_state = _sinkhorn_log(log_a, log_b, reg, tol, max_iter, scaling, omega)
        if mode == "divergence":
            redone = (log_a.exp() * log_state.f + log_b.exp() * log_state.g).flatten(1).sum(1)
        else:
            redone = _transport_cost(log_state, log_a, log_b, reg)
        values = values.index_copy(0, redo, redone)
        error = error.index_fill(0, redo, log_state.error)
    info = {"n_iter": n_iter, "marginal_error": float(error.max()), "log_domain": len(redo)}
    return values, info


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
        A plan stops iterating when the L1 error of its marginals is below ``tol``. On 256
        MNIST pairs at ``reg = 8`` (``benchmarks/bench_wasserstein.py``) the mean error to
        the exact W2 is 1.09 % at ``1e-3`` (as at full convergence) and 1.30 % at ``1e-2``,
        which takes half the time.
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
        ha = to_histogram(a.detach(), dtype).view(-1, hh, ww)
        hb = to_histogram(b.detach(), dtype).to(ha.device).view(-1, hh, ww)
        n = len(ha)
        if mode != "none":  # the symmetric problems in the same batch: see _sinkhorn_scaling
            ha, hb = torch.cat((ha, ha, hb)), torch.cat((hb, ha, hb))
        value, info = _entropic_values(ha, hb, reg, mode, tol, max_iter, scaling, omega)
        if mode != "none":
            value = value[:n] - 0.5 * (value[n:2 * n] + value[2 * n:])
        out = value.clamp_min(0.0).sqrt()
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
    :func:`w2_exact` on an 8 x 8 digit, about 0.1-0.3 ms each).

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
        by default, e.g. ``functools.partial(w2_sinkhorn, reg=...)`` for large images.
    generator : torch.Generator, optional
        Source of randomness.

    Returns
    -------
    MHResult
    """
    eta = check_number("eta", eta, 0.0, strict_low=True)
    n_chains = check_int("n_chains", n_chains, 1)
    n_steps = check_int("n_steps", n_steps, 1)
    xb = _as_batch("x", x)
    if xb.shape[:2] != (1, 1):
        raise ParameterError(f"x must be one single-channel image (1, H, W) or (H, W), got {tuple(x.shape)}")
    hh, ww = xb.shape[-2:]
    if hh * ww < 2:
        raise ParameterError("x must have at least 2 pixels")
    start = time.perf_counter()
    mass = xb.double().sum()
    hist = to_histogram(xb.detach().cpu(), torch.float64)            # (1, HW)
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
        accept = torch.rand(n_chains, generator=generator, dtype=torch.float64) < \
            acceptance_probability(dist, d_new, eta)
        state = torch.where(accept[:, None], prop, state)
        dist = torch.where(accept, d_new, dist)
        accepted += int(accept.sum())
        trace[step] = dist.mean()
    samples = (state * mass).view(n_chains, 1, hh, ww).to(device=xb.device, dtype=xb.dtype)
    return MHResult(samples, dist, accepted / (n_chains * n_steps), trace,
                    time.perf_counter() - start)
