"""Projected Sinkhorn: projection onto a Wasserstein ball (the attacks are in :mod:`infoclust.attacks`).

Wong, Schmidt and Kolter (ICML 2019) project a point ``w`` onto the ball
:math:`\\{z : W(x, z) \\le \\varepsilon\\}` around an image ``x`` (talk eq. (7)) by solving
the entropy-regularised problem

.. math::

    \\min_{z,\\, \\Pi \\ge 0} \\tfrac12 \\|w - z\\|_2^2 + \\tfrac1\\lambda \\sum_{ij} \\Pi_{ij}\\log\\Pi_{ij}
    \\quad \\text{s.t.} \\quad \\Pi 1 = x,\\; \\Pi^T 1 = z,\\; \\langle \\Pi, C\\rangle \\le \\varepsilon

by block-coordinate ascent on its dual (their "projected Sinkhorn iterations"; the
updates are written out in :func:`project_wasserstein_ball`). Images are histograms:
``x`` is divided by its total mass (``w`` by the same factor) so that ``eps`` is the
transport cost of a unit mass, as in the reference code. The plan only moves mass
inside a ``k x k`` window around each pixel, with cost :math:`C = (d_i^2 + d_j^2)^{p/2}`
(p = 2: squared pixel distance, so the exact :math:`W_2^2` of
:func:`infoclust.wasserstein.w2_exact` is at most the plan's cost), and never across
channels.

Differences from the reference implementation (``locuslab/projected_sinkhorn``):

* every update is done in the log domain with our own :func:`lambertw_exp`, which returns
  :math:`W_0(e^s)` from ``s``; the reference forms :math:`\\lambda e^{\\lambda w}` and
  overflows at :math:`\\lambda = 1000`;
* zero pixels of ``x`` give :math:`\\alpha = +\\infty` (no mass leaves them) instead of
  ``log 0`` NaNs;
* the dual objective is evaluated with its arguments in the right order (the reference
  swaps :math:`\\beta` and :math:`e^{-\\alpha}`), and iteration stops on a certified
  duality gap instead of a small change of that objective (which stops far from the
  converged projection, the earlier the larger lambda);
* the output conserves ``x``'s mass exactly and lies in the ball (its plan costs at most
  ``eps``), whatever the iteration count (see :func:`project_wasserstein_ball`).

"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from .utils import (
    ConvergenceWarning,
    ParameterError,
    check_images,
    check_int,
    check_number,
)
from .wasserstein import local_cost

__all__ = [
    "lambertw",
    "lambertw_exp",
    "project_wasserstein_ball",
    "ProjectionInfo",
]


# ----------------------------------------------------------------------------------------
# Lambert W and an exp without the slow underflow path
# ----------------------------------------------------------------------------------------


def _log_tiny(dtype: torch.dtype) -> float:
    """A log below which exp is treated as 0: just above the smallest normal number.
    (x86 exp takes a slow path, 10-30x, for results that underflow to subnormals.)"""
    return math.log(torch.finfo(dtype).tiny) + 8.0


def _exp(a: torch.Tensor) -> torch.Tensor:
    """``exp(a)`` with arguments below :func:`_log_tiny` clipped there (error < 1e-304
    in float64 per entry) so that the fast vectorised path is always taken."""
    return torch.exp(a.clamp_min(_log_tiny(a.dtype)))


def lambertw_exp(s: torch.Tensor, tol: float | None = None, max_iter: int = 20) -> torch.Tensor:
    """:math:`W_0(e^s)`, the principal branch of Lambert W at :math:`e^s`, for any real ``s``.

    With :math:`v = \\log W_0(e^s)` the defining equation :math:`W e^W = e^s` reads
    :math:`g(v) = e^v + v - s = 0`, a convex increasing function of ``v``; Halley's
    iteration :math:`v \\leftarrow v - 2 g g' / (2 g'^2 - g g'')` solves it from
    :math:`v_0 = \\log(s - \\log s)` (``s > 1``, the asymptotic expansion) or
    :math:`v_0 = s` (``s <= 1``, where :math:`W_0(y) \\approx y`). Working with ``s``
    instead of :math:`e^s` never overflows: ``s = 1000`` gives ``W = 993.1...``.

    Parameters
    ----------
    s : torch.Tensor
        Real exponents; ``-inf`` gives 0.
    tol : float, optional
        Stop when every Halley step is below ``tol`` (default: 4 machine epsilons of the
        dtype, relative to ``max(1, |v|)``).
    max_iter : int
        Most Halley iterations (cubic convergence: 3 or 4 are used in practice).

    Returns
    -------
    torch.Tensor
        :math:`W_0(e^s)`, same shape and dtype as ``s``.
    """
    if not s.is_floating_point():
        s = s.double()
    eps = torch.finfo(s.dtype).eps
    tol = 4 * eps if tol is None else check_number("tol", tol, 0.0, strict_low=True)
    floor = _log_tiny(s.dtype)
    s = s.clamp(floor, torch.finfo(s.dtype).max / 4)
    # 1 where s > floor, 0 where W_0(e^s) = e^s (1 - e^s + ...) underflows: sign(s - floor) in {0, 1}
    # exactly (arithmetic instead of boolean masks, which cost several additions each)
    kept = torch.sign(s - floor)
    big = s > 1
    # s > 1: s - log s >= 1, untouched by the clamp, which keeps the others' unused log off the
    # slow paths of log(0) and log(x < 0)
    v = torch.where(big, torch.log((s - torch.log(s.abs())).clamp_min_(0.5)), s)
    for _ in range(max_iter):
        ev = torch.exp(v)
        g = (ev + v).sub_(s)
        g1 = ev + 1.0
        # Halley, 2 g / (2 g' - g g'' / g') with g' = e^v + 1, g'' = e^v (divided through by g': no overflow)
        step = g.mul(2).div_((g1 * 2).sub_(g * ev.div_(g1)))
        v = v.sub_(step)
        # every |step| <= tol max(1, |v|), as the largest difference <= 0 (exact for floats; NaN: no)
        if bool(step.abs_().sub_(v.abs().clamp_min_(1.0).mul_(tol)).amax() <= 0):
            break
    return torch.exp(v).mul_(kept)


def lambertw(x: torch.Tensor) -> torch.Tensor:
    """Principal branch :math:`W_0(x)` for ``x >= 0`` (the branch used by projected Sinkhorn).

    Solves :math:`W e^W = x` as ``lambertw_exp(log x)``. Agrees with
    ``scipy.special.lambertw(x).real`` (see ``tests/test_sinkhorn.py``).

    Parameters
    ----------
    x : torch.Tensor
        Non-negative values.

    Returns
    -------
    torch.Tensor
        :math:`W_0(x)`, of the shape and dtype of ``x``.

    Raises
    ------
    ParameterError
        If ``x`` has negative entries (the projection never needs them).
    """
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        x = x.double()
    if (x < 0).any():
        raise ParameterError("x must be >= 0: only the principal branch on [0, inf) is implemented")
    return lambertw_exp(torch.log(x))


# ----------------------------------------------------------------------------------------
# Local transport on the pixel grid
# ----------------------------------------------------------------------------------------


def _windows(a: torch.Tensor, k: int, fill: float) -> torch.Tensor:
    """The k x k windows of ``a`` (N, C, H, W) as (N, C, k*k, H*W), ``fill`` outside the image
    (the layout of ``F.unfold``, from strided views of the padded images: one copy)."""
    n, c, h, w = a.shape
    r = k // 2
    padded = F.pad(a, (r, r, r, r), value=fill)
    win = padded.unfold(2, k, 1).unfold(3, k, 1)  # (N, C, H, W, k, k)
    return win.permute(0, 1, 4, 5, 2, 3).reshape(n, c, k * k, h * w)


def _window_exp(a: torch.Tensor, logk: torch.Tensor, k: int):
    """Shifted exponentials of the k x k windows: ``exp(log K_o - a_{q+o} - top_q)``.

    ``a`` is (N, C, H, W), ``logk`` (N, k*k, 1). Offsets outside the image and pixels where
    ``a = +inf`` carry nothing. Returns the buffer (N, C, k*k, H*W), whose largest entry per
    pixel q is exactly 1 (the shift ``top_q`` is the window's largest term, so that no
    argument falls into the slow subnormal range, :func:`_exp`; clipped terms are below
    1e-34 relative to the largest), its sums over the window (N, C, H*W) and the log-sum-exp
    ``L_q = log sum_o exp(log K_o - a_{q+o})`` (``-inf`` where the whole window is empty).
    """
    win = _windows(-a, k, float("-inf")).add_(logk[:, None])
    top = win.amax(2, keepdim=True)
    top0 = torch.where(torch.isfinite(top), top, 0.0)
    win.sub_(top0).clamp_min_(_log_tiny(win.dtype)).exp_()
    total = win.sum(2)  # (N, C, HW)
    lse = torch.where(torch.isfinite(top[:, :, 0]), top0[:, :, 0] + torch.log(total), float("-inf"))
    return win, total, lse


def _window_plan(beta: torch.Tensor, logk: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Wong et al.'s alpha block as a plan: the window weights
    :math:`\\pi_{q,o} = K_o e^{-\\beta_{q+o}} / \\sum_{o'} K_{o'} e^{-\\beta_{q+o'}}` (rows sum
    to 1), shape (N, C, k*k, H*W), and :math:`L_q` of :func:`_window_exp`."""
    win, total, lse = _window_exp(beta, logk, k)
    return win.div_(total[:, :, None].clamp_min(torch.finfo(win.dtype).tiny)), lse


@dataclass
class _Rows:
    """The rows of an alpha step's plan, :math:`\\Pi_{q,o} = x_q \\pi_{q,o}`, summarised per pixel q,
    each (N, C, H*W): ``lse`` is :math:`L_q = \\log \\sum_o K_o e^{-\\beta_{q+o}}`, ``cost`` and
    ``cost2`` the means of :math:`C_o` and :math:`C_o^2` under :math:`\\pi_{q,\\cdot}`,
    ``pi_log_pi`` :math:`\\sum_o \\pi_{q,o}\\log\\pi_{q,o}` (only when asked for) and ``stay``
    the weight :math:`\\pi_{q,0}` of offset (0, 0)."""

    lse: torch.Tensor
    cost: torch.Tensor
    cost2: torch.Tensor
    stay: torch.Tensor
    pi_log_pi: torch.Tensor | None = None

    def moved(self, xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:math:`\\langle \\Pi, C\\rangle` and :math:`\\langle \\Pi, C^2\\rangle` per image, (N,)."""
        return (xs * self.cost).sum((1, 2)), (xs * self.cost2).sum((1, 2))

    def entropy(self, xs: torch.Tensor, t: torch.Tensor, x_log_x: torch.Tensor | None = None) -> torch.Tensor:
        """:math:`\\sum \\Pi \\log \\Pi` of :math:`t \\Pi + (1 - t)\\,\\mathrm{diag}(x)` per image, float64.

        Mixing only changes the entries of offset (0, 0), ``d_q = x_q \\pi_{q,0}``:
        ``sum = t (H - sum_q d_q log d_q) + t log t (1 - sum_q d_q) + sum_q m_q log m_q`` with
        ``H = sum_q x_q (log x_q + sum_o pi log pi)`` and ``m_q = t d_q + (1 - t) x_q``;
        ``x_log_x``, if given, is ``xlogy(xs, xs)`` in float64.
        """
        x64 = xs.double()
        x_log_x = torch.xlogy(x64, x64) if x_log_x is None else x_log_x
        rows = x_log_x + torch.where(x64 > 0, x64 * self.pi_log_pi.double(), 0.0)
        stay = x64 * self.stay.double()  # d_q
        t = t.double().view(-1, 1, 1)
        mixed = t * stay + (1 - t) * x64
        out = (
            t * (rows - torch.xlogy(stay, stay))
            + torch.xlogy(t, t) * (x64 - stay)
            + torch.xlogy(mixed, mixed)
        )
        return out.sum((1, 2))


class _WindowKernel:
    """The local kernel :math:`K_o = e^{-\\psi C_o - 1}` on the k x k windows, any cost ``C``:
    every window term formed explicitly (:func:`_window_exp`). The reference, and the path
    for costs that do not factorise over the axes (``p != 2``)."""

    def __init__(self, psi: torch.Tensor, cost: torch.Tensor, k: int) -> None:
        self.psi, self.cost, self.k = psi, cost, k
        self.logk = _log_kernel(psi, cost)

    def lse(self, a: torch.Tensor, support: torch.Tensor, log_reach: torch.Tensor) -> torch.Tensor:
        """:math:`\\log \\sum_o K_o e^{-a_{q+o}}`, (N, C, H*W), from ``a`` (N, C, H, W) (``support``
        and ``log_reach`` are not needed: every window is summed term by term)."""
        return _window_exp(a, self.logk, self.k)[2]

    def rows(self, beta: torch.Tensor, entropy: bool = False) -> _Rows:
        """:class:`_Rows` of the alpha step at ``beta`` (N, C, H, W)."""
        pi, lse = _window_plan(beta, self.logk, self.k)
        c = self.cost.view(1, 1, -1, 1)
        pi_log_pi = torch.xlogy(pi, pi).sum(2) if entropy else None
        return _Rows(lse, (pi * c).sum(2), (pi * c * c).sum(2), pi[:, :, self.k * self.k // 2], pi_log_pi)


_SEPARABLE_FLOOR = 1e-280  # a window sum below it may have lost terms to underflow: solved again exactly


def _padded(v: torch.Tensor, r: int, dim: int, pads: dict | None) -> torch.Tensor:
    """``v`` (N, C, H, W) with ``r`` zeros on both sides of ``dim`` (2 or 3): ``F.pad``, or where
    ``pads`` is a dict, a buffer kept there per shape whose zero borders are written once."""
    if pads is None:
        return F.pad(v, (r, r) if dim == 3 else (0, 0, r, r))
    shape = list(v.shape)
    shape[dim] += 2 * r
    key = (tuple(shape), v.dtype, v.device)
    if key not in pads:
        pads[key] = v.new_zeros(shape)
    buffer = pads[key]
    buffer.narrow(dim, r, v.shape[dim]).copy_(v)
    return buffer


def _axis_sums(
    v: torch.Tensor,
    weights: tuple[tuple[torch.Tensor, ...], ...],
    dim: int,
    powers: tuple[int, ...],
    pads: dict | None = None,
) -> list[torch.Tensor]:
    """Along ``dim`` (2 or 3) of ``v`` (N, C, H, W), the sums :math:`\\sum_{|d| \\le r} e^{-\\psi d^2}
    d^{2m} v_{i+d}` (zero outside the image) for each m in ``powers``; ``weights[m][d - 1]`` (N, 1, 1, 1)
    holds :math:`e^{-\\psi d^2} d^{2m}` for m = 0, 1, 2 and d = 1..r. The pairs +d, -d are summed first
    (``pads``: see :func:`_padded`)."""
    r, size = len(weights[0]), v.shape[dim]
    padded = _padded(v, r, dim, pads)
    pairs = [padded.narrow(dim, r + d, size) + padded.narrow(dim, r - d, size) for d in range(1, r + 1)]
    out = []
    for m in powers:
        total = v if m == 0 else pairs[0] * weights[m][0]
        for d in range(0 if m == 0 else 1, r):
            total = torch.addcmul(total, pairs[d], weights[m][d])
        out.append(total)
    return out


class _SeparableKernel:
    """The kernel of the squared pixel distance (p = 2), :math:`K_o = e^{-1} e^{-\\psi d_i^2}
    e^{-\\psi d_j^2}`: every window sum of :class:`_WindowKernel` as two passes of 1-D sums
    (:func:`_axis_sums`), on :math:`e^{-a}` scaled by its largest entry per image (float64).

    The scaled terms lie in [0, 1] and only those below about 1e-300 are lost (or clamped
    there, :func:`_exp`); where a window sum that should hold a term comes out below
    ``_SEPARABLE_FLOOR`` (``a`` spread over more than about 640 within an image), the image
    is solved again by :class:`_WindowKernel`. Elsewhere the two agree to rounding.
    """

    def __init__(self, psi: torch.Tensor, cost: torch.Tensor, k: int, pads: dict | None = None) -> None:
        self.psi, self.cost, self.k = psi, cost, k
        self.pads = {} if pads is None else pads  # padded buffers by shape (:func:`_padded`)
        d2 = torch.arange(1, k // 2 + 1, dtype=psi.dtype, device=psi.device).view(-1, 1) ** 2
        base = torch.exp(-d2 * psi.view(1, -1))  # (r, N)
        stacked = torch.stack((base, base * d2, base * d2 * d2)).view(3, len(d2), -1, 1, 1, 1)
        self.weights = tuple(tuple(by_power.unbind()) for by_power in stacked.unbind())  # views, made once

    @staticmethod
    def _scaled(a: torch.Tensor, support: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """:math:`e^{-a - s}` with the shift ``s`` (N, 1, 1, 1) of the largest term to 1; ``support``
        (float, 0 or 1) marks where ``a`` is finite (None: everywhere), the others give 0."""
        shift = a.flatten(1).amin(1).neg_()
        shift = torch.where(torch.isfinite(shift), shift, 0.0).view(-1, 1, 1, 1)
        scaled = torch.sub(-shift, a).clamp_min_(_log_tiny(a.dtype)).exp_()  # _exp(-a - shift)
        return scaled if support is None else scaled.mul_(support), shift

    def _redo(self, sums: torch.Tensor, log_reach: torch.Tensor | None) -> torch.Tensor:
        """Images (indices) where a window that holds a term (``log_reach`` 0; None: every window)
        summed below the floor (or to NaN). The usual case, none, is told by the smallest sum."""
        within = sums if log_reach is None else sums - log_reach  # +inf out of reach
        if within.numel() and bool(within.amin() >= _SEPARABLE_FLOOR):  # NaN: not
            return torch.zeros(0, dtype=torch.long, device=sums.device)
        low = ~(sums >= _SEPARABLE_FLOOR)
        if log_reach is not None:
            low &= log_reach == 0
        return low.flatten(1).any(1).nonzero().flatten()

    def lse(self, a: torch.Tensor, support: torch.Tensor, log_reach: torch.Tensor) -> torch.Tensor:
        """:math:`\\log \\sum_o K_o e^{-a_{q+o}}`, (N, C, H*W), from ``a`` (N, C, H, W), finite
        where ``support`` (float, 0 or 1) and +inf elsewhere; ``log_reach`` is 0 at the windows
        that hold some of the support, -inf at the others (their sums are 0)."""
        n, c, h, w = a.shape
        v, shift = self._scaled(a, support)
        (cols,) = _axis_sums(v, self.weights, 3, (0,), self.pads)
        (sums,) = _axis_sums(cols, self.weights, 2, (0,), self.pads)
        # log 0 = -inf where nothing is in reach, from log_reach: log(0) itself is several times
        # slower than a log of a positive number. Sums in reach below the floor are redone.
        out = torch.log(sums.clamp_min(_SEPARABLE_FLOOR)).add_(log_reach).add_(shift - 1.0).view(n, c, h * w)
        redo = self._redo(sums, log_reach)
        if len(redo):
            out[redo] = _WindowKernel(self.psi[redo], self.cost, self.k).lse(a[redo], support, log_reach)
        return out

    def rows(self, beta: torch.Tensor, entropy: bool = False) -> _Rows:
        """:class:`_Rows` of the alpha step at ``beta`` (N, C, H, W), every entry finite."""
        n, c, h, w = beta.shape
        v, shift = self._scaled(beta, None)
        c0, c1, c2 = _axis_sums(v, self.weights, 3, (0, 1, 2), self.pads)  # factors d_j^{2m}
        s00, s10, s20 = _axis_sums(c0, self.weights, 2, (0, 1, 2), self.pads)  # factors d_i^{2m} d_j^0
        s01, s11 = _axis_sums(c1, self.weights, 2, (0, 1), self.pads)
        (s02,) = _axis_sums(c2, self.weights, 2, (0,), self.pads)
        inv = s00.clamp_min(_SEPARABLE_FLOOR).reciprocal_()
        flat = (n, c, h * w)
        lse = torch.log(s00).add_(shift).sub_(1.0).view(flat)
        cost = s10.add_(s01).mul_(inv).view(flat)  # C = d_i^2 + d_j^2
        cost2 = s20.add_(s11.mul_(2)).add_(s02).mul_(inv).view(flat)
        rows = _Rows(lse, cost, cost2, (v * inv).view(flat))
        if entropy:  # sum_o pi log pi = -psi E[C] - 1 - E[beta_{q+o}] - L_q
            (vb,) = _axis_sums(v * beta, self.weights, 3, (0,), self.pads)
            (mean_beta,) = _axis_sums(vb, self.weights, 2, (0,), self.pads)
            rows.pi_log_pi = -self.psi.view(-1, 1, 1) * cost - 1.0 - (mean_beta * inv).view(flat) - lse
        redo = self._redo(s00, None)
        if len(redo):
            exact = _WindowKernel(self.psi[redo], self.cost, self.k).rows(beta[redo], entropy)
            for name in ("lse", "cost", "cost2", "stay") + (("pi_log_pi",) if entropy else ()):
                getattr(rows, name)[redo] = getattr(exact, name)
        return rows


def _kernel(
    psi: torch.Tensor, cost: torch.Tensor, k: int, p: float, pads: dict | None = None
) -> _WindowKernel | _SeparableKernel:
    """The fastest exact way to apply the local kernel of ``psi``: separable for p = 2 (``pads``:
    its buffers, :func:`_padded`)."""
    return _SeparableKernel(psi, cost, k, pads) if p == 2.0 else _WindowKernel(psi, cost, k)


def _beta_step(lse: torch.Tensor, ws: torch.Tensor, lam: float) -> torch.Tensor:
    """Wong et al.'s beta block, :math:`\\beta = W_0(\\lambda e^{\\lambda w} \\odot K^T e^{-\\alpha})
    - \\lambda w`, by :func:`lambertw_exp` on the log of its argument; ``lse`` is
    :math:`\\log K^T e^{-\\alpha}` (the kernel's ``lse`` of alpha)."""
    return lambertw_exp(math.log(lam) + lam * ws + lse) - lam * ws


def _delivered(lse: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Column sums :math:`e^{-\\beta_j} (K^T e^{-\\alpha})_j` of the plan: what it delivers to
    each pixel (0 where no source is in reach); ``lse`` as in :func:`_beta_step`."""
    return torch.where(torch.isfinite(lse), _exp(lse - beta), 0.0)


def _dual_objective(alpha, beta, psi, xs, ws, eps, lam: float) -> torch.Tensor:
    """Wong et al.'s dual :math:`g(\\alpha, \\beta, \\psi)` (of the problem multiplied by lambda)
    right after an alpha step, where the plan's total mass is that of ``x``; float64.

    :math:`-\\|\\beta\\|^2/(2\\lambda) - \\beta^T w` is evaluated as
    :math:`\\tfrac\\lambda2(\\|w\\|^2 - \\|w + \\beta/\\lambda\\|^2)`, without the cancelling
    terms of size lambda.
    """
    x64, w64 = xs.double(), ws.double()
    inner_alpha_x = torch.where(xs > 0, alpha.double() * x64, 0.0).sum((1, 2))
    z = w64 + beta.double() / lam
    sq_w, sq_z = w64.pow(2).sum((1, 2)), z.pow(2).sum((1, 2))
    return 0.5 * lam * (sq_w - sq_z) - psi.double() * eps.double() - inner_alpha_x - x64.sum((1, 2))


def _newton_psi(psi: torch.Tensor, moved: tuple[torch.Tensor, torch.Tensor], eps: torch.Tensor):
    """Wong et al.'s psi block: one Newton step on the dual, kept >= 0.

    :math:`g'(\\psi) = \\langle \\Pi, C\\rangle - \\varepsilon`,
    :math:`g''(\\psi) = -\\langle \\Pi, C^2\\rangle` (``moved``: the two products, :meth:`_Rows.moved`);
    the step is halved (at most 7 times, as the reference code) while it would make psi
    negative, then psi is clipped at 0.
    """
    slope = moved[0] - eps
    delta = slope / moved[1].clamp_min(torch.finfo(psi.dtype).tiny)
    t = torch.ones_like(psi)
    for _ in range(7):
        neg = psi + t * delta < 0
        if not neg.any():
            break
        t = torch.where(neg, t / 2, t)
    return (psi + t * delta).clamp_min(0.0)


def _as_eps(eps, n: int, like: torch.Tensor) -> torch.Tensor:
    eps = torch.as_tensor(eps, dtype=like.dtype, device=like.device).flatten()
    if eps.numel() == 1:
        eps = eps.expand(n)
    if eps.shape != (n,) or not torch.isfinite(eps).all() or (eps < 0).any():
        raise ParameterError(
            f"eps must be a number or one value per image, finite and >= 0; got shape {tuple(eps.shape)}"
        )
    return eps


def _log_kernel(psi: torch.Tensor, cost: torch.Tensor) -> torch.Tensor:
    """:math:`\\log K = -\\psi C - 1` per image and window offset, (N, k*k, 1)."""
    return -psi.view(-1, 1, 1) * cost.view(1, -1, 1) - 1.0


_CHECK_EVERY = 5  # iterations between two certificates of convergence (each costs about one iteration)


@dataclass
class _Certificate:
    """A feasible output of the projection and how far it is from the converged one."""

    z: torch.Tensor  # (N, C, H*W) unit-mass output, in the ball
    t: torch.Tensor  # (N,) mixing weight with "stay in place" (1: none needed)
    beta: torch.Tensor  # (N, C, H*W) and (N,): the dual point whose alpha step gives the plan
    psi: torch.Tensor
    cost: torch.Tensor  # (N,) transport cost of the mixed plan, per unit mass
    objective: torch.Tensor  # (N,) dual value g (lambda-scaled)
    gap: torch.Tensor  # (N,) certified distance to the converged projection, relative
    converged: torch.Tensor  # (N,) gap <= tol


@dataclass
class _Problem:
    """The data of one projection, in float64."""

    xs: torch.Tensor
    ws: torch.Tensor
    log_x: torch.Tensor
    eps: torch.Tensor
    cost: torch.Tensor
    lam: float
    k: int
    p: float
    shape: tuple
    scale: torch.Tensor  # ||w - x|| per image (unit mass), the unit of the gap
    support: torch.Tensor  # (N, C, H, W) float64: 1 where x > 0, else 0
    log_reach: torch.Tensor  # (N, C, H, W) float64: 0 within the window of some x > 0, else -inf
    tol: float = 0.0
    pads: dict = field(default_factory=dict)  # the separable kernels' padded buffers, reused
    x_log_x: torch.Tensor | None = None  # xlogy(xs, xs), for the certificates

    def kernel(self, psi: torch.Tensor) -> _WindowKernel | _SeparableKernel:
        return _kernel(psi, self.cost, self.k, self.p, self.pads)

    def certify(self, beta: torch.Tensor, psi: torch.Tensor, kernel, rows: _Rows) -> _Certificate:
        """Output and duality gap at the dual point (beta, psi); ``kernel`` is that of psi and
        ``rows`` the alpha step at beta (:meth:`_WindowKernel.rows` with the entropy).

        The alpha step gives a plan whose rows sum to x; mixed with "stay in place" where
        it costs more than eps, it is feasible, with primal value
        :math:`P = \\tfrac12\\|w - z\\|^2 + \\tfrac1\\lambda \\sum \\Pi \\log \\Pi`; the dual
        value :math:`g/\\lambda` at (alpha, beta, psi) is a lower bound of the optimum. ``P`` is
        1-strongly convex in z, so :math:`\\|z - z^\\star\\| \\le \\sqrt{2(P - g/\\lambda)}`.
        """
        n = len(self.xs)
        alpha = rows.lse - self.log_x
        objective = _dual_objective(alpha, beta, psi, self.xs, self.ws, self.eps, self.lam)
        z = _delivered(kernel.lse(alpha.view(self.shape), self.support, self.log_reach), beta)
        plan_cost = rows.moved(self.xs)[0]
        t = (self.eps / plan_cost.clamp_min(1e-300)).clamp(max=1.0)
        z = self.xs + t.view(n, 1, 1) * (z - self.xs)
        primal = 0.5 * (self.ws - z).pow(2).sum((1, 2)) + rows.entropy(self.xs, t, self.x_log_x) / self.lam
        gap = (2 * (primal - objective / self.lam).clamp_min(0.0)).sqrt() / self.scale
        return _Certificate(z, t, beta, psi, t * plan_cost, objective, gap, gap <= self.tol)


def _project(problem: _Problem, beta: torch.Tensor, psi: torch.Tensor, max_iter: int) -> tuple:
    """Wong et al.'s projected Sinkhorn iterations from (beta, psi), certified every
    ``_CHECK_EVERY`` iterations and at the last; returns the last certificate and the
    iterations run. Each iteration: the alpha step at (beta, psi) (its plan's rows), the beta
    step with that alpha and kernel, the Newton step on psi from the same plan."""
    shape = problem.shape
    kernel = problem.kernel(psi)
    rows = kernel.rows(beta.view(shape))
    for it in range(1, max_iter + 1):
        alpha = rows.lse - problem.log_x
        beta = _beta_step(
            kernel.lse(alpha.view(shape), problem.support, problem.log_reach), problem.ws, problem.lam
        )
        psi = _newton_psi(psi, rows.moved(problem.xs), problem.eps)
        check = it % _CHECK_EVERY == 0 or it == max_iter
        kernel = problem.kernel(psi)
        rows = kernel.rows(beta.view(shape), entropy=check)
        if check:
            cert = problem.certify(beta, psi, kernel, rows)
            if bool(cert.converged.all()):
                break
    return cert, it


@dataclass
class ProjectionInfo:
    """How :func:`project_wasserstein_ball` went, with ``return_info=True``; one entry per image.

    Attributes
    ----------
    n_iter : int
        Dual iterations run (the last image's count: all images iterate together).
    converged : torch.Tensor
        (N,) bool, whether the image's projection is certified within ``tol``.
    gap : torch.Tensor
        (N,) the certified bound :math:`\\sqrt{2 (P - g/\\lambda)} / \\|w - x\\|`.
    objective : torch.Tensor
        (N,) the last dual value divided by lambda, in the units of the primal objective.
    psi : torch.Tensor
        (N,) the multiplier of the cost constraint.
    cost : torch.Tensor
        (N,) the transport cost of the final plan per unit mass.
    plan : torch.Tensor
        The final plan on the original mass scale, (N, C, k*k, H, W): the mass that each
        pixel sends by each window offset; its sums over offsets are ``x``, and the output
        is what it delivers.
    offsets : torch.Tensor
        (k*k, 2), the (di, dj) of each offset.
    """

    n_iter: int
    converged: torch.Tensor
    gap: torch.Tensor
    objective: torch.Tensor
    psi: torch.Tensor
    cost: torch.Tensor
    plan: torch.Tensor
    offsets: torch.Tensor


def project_wasserstein_ball(
    w: torch.Tensor,
    x: torch.Tensor,
    eps,
    *,
    lam: float = 1000.0,
    kernel_size: int = 5,
    p: float = 2.0,
    max_iter: int = 200,
    tol: float = 1e-3,
    return_info: bool = False,
):
    """Project the images ``w`` onto the Wasserstein balls of radius ``eps`` around ``x``.

    Solves Wong et al.'s entropic projection (talk eq. (7) with the entropy term of the
    module docstring) by their projected Sinkhorn iterations: block-coordinate ascent on
    the dual (Wong et al. 2019, eq. (10) and Algorithm 1)

    .. math::

        g(\\alpha, \\beta, \\psi) = -\\tfrac{1}{2\\lambda}\\|\\beta\\|^2 - \\psi\\varepsilon
        - \\alpha^T x - \\beta^T w - \\sum_{ij} e^{-\\alpha_i} e^{-\\psi C_{ij} - 1} e^{-\\beta_j}

    of the problem multiplied by :math:`\\lambda` (the plan is
    :math:`\\Pi_{ij} = e^{-\\alpha_i} K_{ij} e^{-\\beta_j}`, :math:`K = e^{-\\psi C - 1}`),
    each block maximised in turn, in the paper's order:

    * :math:`\\alpha = \\log(K e^{-\\beta}) - \\log x` (rows of the plan sum to ``x``);
    * :math:`\\beta = W_0(\\lambda e^{\\lambda w} \\odot K^T e^{-\\alpha}) - \\lambda w`,
      by :func:`lambertw_exp` on the log of the argument;
    * one Newton step on :math:`\\psi`, :math:`\\psi \\leftarrow \\psi - t\\, g'(\\psi) / g''(\\psi)`,
      the step ``t`` halved (at most 7 times, as the reference) while it would make
      :math:`\\psi` negative, then :math:`\\psi` clipped at 0.

    Initialisation as the paper: :math:`\\beta = \\log(1/m)`, :math:`\\psi = 1`. The
    products with ``K`` are local: only offsets inside the ``kernel_size`` window carry
    mass, per channel. For p = 2 the kernel factorises over the axes,
    :math:`K_o = e^{-1} e^{-\\psi d_i^2} e^{-\\psi d_j^2}`, and each window sum is two passes of
    1-D sums along the axes (the cost weights :math:`C_o, C_o^2` split the same way), on
    :math:`e^{-\\beta}` scaled per image; an image whose scaled terms would underflow is
    summed window by window instead, as every image is for other p.

    **Output and stopping rule (ours).** After every alpha step the plan's rows sum to
    ``x`` exactly; its column sums are the candidate output. Where that plan costs more than
    ``eps`` (psi not yet converged) it is mixed with the plan that leaves every pixel in
    place, :math:`t\\Pi + (1 - t)\\,\\mathrm{diag}(x)` with
    :math:`t = \\varepsilon / \\langle \\Pi, C\\rangle`, i.e. :math:`z \\leftarrow x + t(z - x)`.
    So the output always conserves ``x``'s mass and lies in the ball, whatever the
    iteration count (at convergence ``t = 1`` and ``z = w + \\beta/\\lambda``, the paper's
    output). The primal objective :math:`P = \\tfrac12\\|w - z\\|^2 + \\tfrac1\\lambda\\sum
    \\Pi\\log\\Pi` of that feasible plan and the dual value :math:`g / \\lambda` bound the
    optimum from both sides, and :math:`P` is 1-strongly convex in ``z``, so
    :math:`\\|z - z^\\star\\| \\le \\sqrt{2 (P - g/\\lambda)}`. Iteration stops when that
    bound is below ``tol * ||w - x||`` for every image (unit-mass images): the output is
    then certified within ``tol`` (relative) of the converged entropic projection
    :math:`z^\\star`. The paper and its code stop on a small change of the dual objective
    instead, which stops far too early for large lambda (the objective is of size lambda,
    its relative change tiny long before convergence).

    Parameters
    ----------
    w, x : torch.Tensor
        Floating-point images (N, C, H, W); ``x`` non-negative (zero pixels allowed),
        ``w`` any real. Both are divided by ``x``'s total mass per image before
        projecting. Integer images are rejected (scale uint8 images: ``x.float() / 255``).
    eps : float or torch.Tensor
        Radius per image (a number or shape (N,)): the largest transport cost
        :math:`\\langle \\Pi, C\\rangle` of a unit mass, in pixels^p.
    lam : float
        Entropic regularisation :math:`\\lambda` (> 0). The converged projection gets
        closer to the exact (unregularised) one as lambda grows, and the log domain cannot
        overflow at any lambda; but the dual ascent needs more iterations for larger
        lambda, about in proportion (measured on MNIST digits: README, "Numbers measured
        once"). Beyond what ``max_iter`` allows the output is a feasible but unconverged
        point and a :class:`~infoclust.utils.ConvergenceWarning` says so.
    kernel_size : int
        Odd side ``k`` of the transport window (5 by default; the paper uses 7 on MNIST).
    p : float
        Exponent of the ground cost; 2 gives the squared Euclidean (W2) cost.
    max_iter : int
        Most dual iterations (alpha, beta, psi blocks).
    tol : float
        Certified distance to the converged projection, relative to ``||w - x||`` (see the
        stopping rule above). The bound is loose: at the default 1e-3 the distance measured
        on MNIST digits was well below it (README, "Numbers measured once"). This library's earlier rule (a
        small relative change of the objective) stopped about 1e-2 away, the authors' code
        within about 2e-4. The iterations and the certificate run in float64.
    return_info : bool
        Also return a :class:`ProjectionInfo` on the iterations, the certificate and the plan.

    Returns
    -------
    torch.Tensor
        The projections, shape and dtype of ``w``; with ``return_info`` the pair
        ``(projections, ProjectionInfo)``.

    Warns
    -----
    ConvergenceWarning
        When some image is not within ``tol`` after ``max_iter`` iterations.

    Notes
    -----
    Computation is in float64 whatever the inputs' dtype (the output takes ``w``'s). Our
    log-domain updates differ from the reference code as the module docstring says.
    """
    w = check_images("w", w)
    x = check_images("x", x, nonnegative=True)
    if w.shape != x.shape:
        raise ParameterError(
            f"w and x must both be (N, C, H, W) of one shape; got {tuple(w.shape)} and {tuple(x.shape)}"
        )
    lam = check_number("lam", lam, 0.0, strict_low=True)
    max_iter = check_int("max_iter", max_iter, 1)
    tol = check_number("tol", tol, 0.0, strict_low=True)
    eps_t = _as_eps(eps, len(x), x.to(torch.promote_types(w.dtype, torch.float32)))
    out, cert, it, problem, mass = _projection(w, x, eps_t, lam, kernel_size, p, max_iter, tol)
    n, c, h, width = x.shape
    if not bool(cert.converged.all()):
        bad = int((~cert.converged).sum())
        warnings.warn(
            f"project_wasserstein_ball: {bad} of {n} projections not within tol={tol:g} of the "
            f"converged projection after max_iter={max_iter} iterations (largest certified "
            f"distance {float(cert.gap.max()):.2g}); raise max_iter or lower lam={lam:g} (the "
            f"outputs are in the ball, but not yet the projection)",
            ConvergenceWarning,
            stacklevel=2,
        )
    if not return_info:
        return out
    k = kernel_size
    d = torch.arange(k, device=x.device) - k // 2
    offsets = torch.stack(torch.meshgrid(d, d, indexing="ij"), -1).view(-1, 2)
    t = cert.t.view(n, 1, 1)
    pi, _ = _window_plan(cert.beta.view(problem.shape), _log_kernel(cert.psi, problem.cost), k)
    full = pi * (t[..., None] * problem.xs[:, :, None])
    full[:, :, (k * k) // 2] += (1 - t) * problem.xs  # offset (0, 0)
    info = ProjectionInfo(
        n_iter=it,
        converged=cert.converged,
        gap=cert.gap,
        objective=cert.objective / lam,
        psi=cert.psi.to(w.dtype),
        cost=cert.cost,
        plan=(full * mass[..., None]).view(n, c, k * k, h, width).to(w.dtype),
        offsets=offsets,
    )
    return out, info


@torch.no_grad()
def _projection(w, x, eps: torch.Tensor, lam: float, k: int, p: float, max_iter: int, tol: float) -> tuple:
    """:func:`project_wasserstein_ball` on checked arguments (``eps`` one radius per image);
    returns the output (shape and dtype of ``w``), the last :class:`_Certificate`, the
    iterations run, the :class:`_Problem` and the images' masses (N, 1, 1), float64."""
    n, c, h, width = x.shape
    shape = (n, c, h, width)
    mass = x.double().flatten(1).sum(1)
    mass = torch.where(mass > 0, mass, torch.ones_like(mass)).view(n, 1, 1)
    xs = x.double().view(n, c, h * width) / mass
    ws = w.double().view(n, c, h * width) / mass
    x_norm = xs.flatten(1).norm(dim=1)
    scale = torch.maximum((ws - xs).flatten(1).norm(dim=1), 1e-3 * x_norm).clamp_min(1e-300)
    cost = local_cost(k, p, torch.float64, x.device)  # (k*k,)
    support = (xs > 0).double().view(shape)
    reach = F.max_pool2d(support.view(n * c, 1, h, width), k, 1, k // 2).view(shape)
    problem = _Problem(
        xs,
        ws,
        torch.log(xs),
        eps.double(),
        cost,
        lam,
        k,
        p,
        shape,
        scale,
        support,
        torch.log(reach),
        tol,
        x_log_x=torch.xlogy(xs, xs),
    )
    beta = torch.full_like(xs, -math.log(c * h * width))
    psi = torch.ones(n, dtype=torch.float64, device=x.device)
    cert, it = _project(problem, beta, psi, max_iter)
    return (cert.z * mass).view(shape).to(w.dtype), cert, it, problem, mass
