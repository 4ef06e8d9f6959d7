"""Projected Sinkhorn: projection onto a Wasserstein ball and the Wasserstein PGD attack.

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
* the dual objective used for the stopping rule is evaluated with its arguments in the
  right order (the reference swaps :math:`\\beta` and :math:`e^{-\\alpha}`);
* the output conserves ``x``'s mass exactly and lies in the ball (its plan costs at most
  ``eps``), whatever the iteration count (see :func:`project_wasserstein_ball`).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .utils import ParameterError, check_int, check_number

__all__ = [
    "lambertw",
    "lambertw_exp",
    "local_cost",
    "project_wasserstein_ball",
    "wasserstein_pgd",
    "robust_accuracy",
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
    under = s <= floor                      # W_0(e^s) = e^s (1 - e^s + ...) underflows to 0
    s = s.clamp(floor, torch.finfo(s.dtype).max / 4)
    big = s > 1
    v = torch.where(big, torch.log(torch.where(big, s - torch.log(s.abs()), 1.0)), s)
    for _ in range(max_iter):
        ev = torch.exp(v)
        g = ev + v - s
        g1 = ev + 1.0
        step = 2 * g / (2 * g1 - g * (ev / g1))   # Halley, divided through by g' (no overflow)
        v = v - step
        if (step.abs() <= tol * v.abs().clamp_min(1.0)).all():
            break
    return torch.where(under, 0.0, torch.exp(v))


def lambertw(x: torch.Tensor) -> torch.Tensor:
    """Principal branch :math:`W_0(x)` for ``x >= 0`` (the branch used by projected Sinkhorn).

    Solves :math:`W e^W = x` as ``lambertw_exp(log x)``. Agrees with
    ``scipy.special.lambertw(x).real`` (see ``tests/test_sinkhorn.py``).

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

def local_cost(kernel_size: int = 5, p: float = 2.0, dtype: torch.dtype = torch.float64,
               device: torch.device | str | None = None) -> torch.Tensor:
    """Cost :math:`(d_i^2 + d_j^2)^{p/2}` of moving mass by each offset of a k x k window.

    Returns a flat tensor of ``k * k`` costs in the row-major order of ``F.unfold``.
    """
    kernel_size = check_int("kernel_size", kernel_size, 1)
    if kernel_size % 2 == 0:
        raise ParameterError(f"kernel_size={kernel_size} must be odd (a window centred on the pixel)")
    p = check_number("p", p, 0.0, strict_low=True)
    d = torch.arange(kernel_size, dtype=dtype, device=device) - kernel_size // 2
    return ((d[:, None] ** 2 + d[None, :] ** 2) ** (p / 2)).flatten()


def _window_lse(a: torch.Tensor, logk: torch.Tensor, k: int,
                weights: torch.Tensor | None = None, full_plan: bool = False):
    r"""Local product of the kernel with :math:`e^{-a}`, as a log, for every pixel q:

    .. math:: L_q = \log \sum_o \exp(\log K_o - a_{q+o})

    over the k x k window offsets ``o``; offsets outside the image carry nothing, nor do
    pixels where ``a = +inf``. ``a`` is (N, C, H, W), ``logk`` (N, k*k, 1); returns ``L``
    of shape (N, C, H*W) (``-inf`` where the whole window is empty).

    With ``weights`` ``u`` (N, C, H*W) it also returns the mass per offset of the plan
    :math:`P_{q,o} = u_q\, e^{\log K_o - a_{q+o} - L_q}`, summed over q and channels,
    shape (N, k*k): with ``a = beta`` and ``u = x`` this is the plan of the alpha step.
    ``full_plan=True`` returns ``P`` itself, (N, C, k*k, H*W), instead.

    The exponentials are shifted by the window's largest term, computed in place on the
    unfolded windows (one (N, C, k*k, H*W) buffer), so that the largest is exactly 1 and
    no argument falls into the slow subnormal range (:func:`_exp`; the clipped terms are
    below 1e-34 relative to the largest).
    """
    n, c, h, w = a.shape
    r = k // 2
    win = F.unfold(F.pad(-a.reshape(n * c, 1, h, w), (r, r, r, r), value=float("-inf")), k)
    win = win.view(n, c, k * k, h * w).add_(logk[:, None])
    top = win.amax(2, keepdim=True)
    top0 = torch.where(torch.isfinite(top), top, 0.0)
    win.sub_(top0).clamp_min_(_log_tiny(win.dtype)).exp_()
    total = win.sum(2)                                            # (N, C, HW)
    lse = torch.where(torch.isfinite(top[:, :, 0]), top0[:, :, 0] + torch.log(total), float("-inf"))
    if weights is None:
        return lse
    if full_plan:
        return win.mul_((weights / total)[:, :, None])
    per_offset = torch.einsum("ncoq,ncq->no", win, weights / total)
    return lse, per_offset


def _as_eps(eps, n: int, like: torch.Tensor) -> torch.Tensor:
    eps = torch.as_tensor(eps, dtype=like.dtype, device=like.device).flatten()
    if eps.numel() == 1:
        eps = eps.expand(n)
    if eps.shape != (n,) or not torch.isfinite(eps).all() or (eps < 0).any():
        raise ParameterError(f"eps must be a number or one value per image, finite and >= 0; "
                             f"got shape {tuple(eps.shape)}")
    return eps


def project_wasserstein_ball(
    w: torch.Tensor,
    x: torch.Tensor,
    eps,
    *,
    lam: float = 1000.0,
    kernel_size: int = 5,
    p: float = 2.0,
    max_iter: int = 100,
    tol: float = 1e-4,
    return_info: bool = False,
):
    """Project the images ``w`` onto the Wasserstein balls of radius ``eps`` around ``x``.

    Solves Wong et al.'s entropic projection (talk eq. (7) with the entropy term of the
    module docstring) by their projected Sinkhorn iterations: block-coordinate ascent on
    the dual

    .. math::

        g(\\alpha, \\beta, \\psi) = -\\tfrac{1}{2\\lambda}\\|\\beta\\|^2 - \\psi\\varepsilon
        - \\alpha^T x - \\beta^T w - \\sum_{ij} e^{-\\alpha_i} e^{-\\psi C_{ij} - 1} e^{-\\beta_j}

    of the problem multiplied by :math:`\\lambda` (the plan is
    :math:`\\Pi_{ij} = e^{-\\alpha_i} K_{ij} e^{-\\beta_j}`, :math:`K = e^{-\\psi C - 1}`),
    each block maximised in turn:

    * :math:`\\alpha = \\log(K e^{-\\beta}) - \\log x` (rows of the plan sum to ``x``);
    * :math:`\\beta = W_0(\\lambda e^{\\lambda w} \\odot K^T e^{-\\alpha}) - \\lambda w`,
      by :func:`lambertw_exp` on the log of the argument;
    * one Newton step on :math:`\\psi`, :math:`\\psi \\leftarrow \\psi - t\\, g'(\\psi) / g''(\\psi)`,
      the step ``t`` halved (at most 7 times, as the reference) while it would make
      :math:`\\psi` negative, then :math:`\\psi` clipped at 0.

    We take the blocks in the order alpha, psi, beta (the paper: alpha, beta, psi), so
    that the Newton step reuses the plan of the alpha step: one pass over the windows
    fewer per iteration, the same fixed point. Initialisation as the paper:
    :math:`\\beta = \\log(1/m)`, :math:`\\psi = 1`.

    The products with ``K`` are local: only offsets inside the ``kernel_size`` window
    carry mass (``F.unfold``), per channel. Iteration stops when the relative change of
    ``g`` (evaluated right after the alpha step, where :math:`\\sum \\Pi = \\sum x`) is
    below ``tol`` for every image, or after ``max_iter`` iterations. The output is the
    column sums of the plan after a last alpha step, so its rows sum to ``x`` exactly and
    the output has exactly ``x``'s mass; at convergence it equals the paper's
    :math:`z = w + \\beta / \\lambda`, which before convergence is off by the marginal
    error (2 % of the mass at ``tol = 1e-4`` in our tests). Finally, where that plan
    still costs more than ``eps`` (``psi`` not yet converged), it is mixed with the plan
    that leaves every pixel in place, :math:`t\\Pi + (1 - t)\\,\\mathrm{diag}(x)` with
    :math:`t = \\varepsilon / \\langle \\Pi, C\\rangle`, i.e. :math:`z \\leftarrow x + t(z - x)`:
    the output is then always in the ball (our addition; ``t = 1`` at convergence).

    Parameters
    ----------
    w, x : torch.Tensor
        Shape (N, C, H, W); ``x`` non-negative (zero pixels allowed), ``w`` any real.
        Both are divided by ``x``'s total mass per image before projecting.
    eps : float or torch.Tensor
        Radius per image (a number or shape (N,)): the largest transport cost
        :math:`\\langle \\Pi, C\\rangle` of a unit mass, in pixels^p.
    lam : float
        Entropic regularisation :math:`\\lambda` (> 0). Larger is closer to the exact
        projection; any value is safe here (the log domain cannot overflow).
    kernel_size : int
        Odd side ``k`` of the transport window (5 by default; the paper uses 7 on MNIST).
    p : float
        Exponent of the ground cost; 2 gives the squared Euclidean (W2) cost.
    max_iter : int
        Most dual iterations.
    tol : float
        Relative change of the dual objective under which an image counts as converged.
    return_info : bool
        Also return a dict with ``n_iter``, ``objective`` (the last dual value divided by
        lambda, i.e. in the units of the primal objective, (N,)), ``psi`` (N,), ``cost``
        (transport cost of the final plan per unit mass, (N,)), ``plan`` (the final plan on
        the original mass scale, shape (N, C, k*k, H, W): the mass that each pixel sends
        by each window offset; its sums over offsets are ``x``, and the output is what it
        delivers) and ``offsets`` ((k*k, 2), the (di, dj) of each offset).

    Returns
    -------
    torch.Tensor
        The projections, shape and dtype of ``w``; with ``return_info`` a pair.

    Notes
    -----
    Computation is in float32 for float32 (and half) inputs, float64 for float64 ones;
    the objective avoids the cancelling terms of size :math:`\\lambda` by writing
    :math:`-\\|\\beta\\|^2/(2\\lambda) - \\beta^T w = \\tfrac\\lambda2(\\|w\\|^2 - \\|w + \\beta/\\lambda\\|^2)`.
    """
    if w.ndim != 4 or w.shape != x.shape:
        raise ParameterError(f"w and x must both be (N, C, H, W) of one shape; got "
                             f"{tuple(w.shape)} and {tuple(x.shape)}")
    lam = check_number("lam", lam, 0.0, strict_low=True)
    max_iter = check_int("max_iter", max_iter, 1)
    tol = check_number("tol", tol, 0.0, strict_low=True)
    if (x < 0).any() or not torch.isfinite(x).all() or not torch.isfinite(w).all():
        raise ParameterError("x must be finite and >= 0, and w finite")
    n, c, h, wd = x.shape
    k = kernel_size
    dtype = torch.promote_types(w.dtype, torch.float32)
    cost = local_cost(k, p, dtype, x.device)                     # (k*k,)
    with torch.no_grad():
        mass = x.to(dtype).flatten(1).sum(1)
        mass = torch.where(mass > 0, mass, torch.ones_like(mass)).view(n, 1, 1)
        xs = x.to(dtype).view(n, c, h * wd) / mass
        ws = w.to(dtype).view(n, c, h * wd) / mass
        eps_t = _as_eps(eps, n, xs)
        log_x = torch.log(xs)                                     # -inf on zero pixels
        has_mass = xs > 0
        ww = ws.pow(2).sum((1, 2))

        def as_image(a):
            return a.view(n, c, h, wd)

        beta = torch.full_like(xs, -math.log(c * h * wd))
        psi = torch.ones(n, dtype=dtype, device=x.device)
        old = None
        for it in range(1, max_iter + 1):
            logk = (-psi.view(-1, 1, 1) * cost.view(1, -1, 1) - 1.0)         # (N, k*k, 1)
            # alpha block; its plan has row sums x, so sum(Pi) = 1 in the objective
            lse, per_offset = _window_lse(as_image(beta), logk, k, weights=xs)
            alpha = lse - log_x                                   # +inf where x = 0
            ax = torch.where(has_mass, alpha * xs, 0.0).sum((1, 2))
            zb = ws + beta / lam
            obj = 0.5 * lam * (ww - zb.pow(2).sum((1, 2))) - psi * eps_t - ax - xs.sum((1, 2))
            # psi block: Newton step (g' = <Pi, C> - eps, g'' = -<Pi, C^2>), halving search
            d1 = (per_offset * cost).sum(1)
            d2 = (per_offset * cost * cost).sum(1)
            delta = (d1 - eps_t) / d2.clamp_min(torch.finfo(dtype).tiny)
            t = torch.ones_like(psi)
            for _ in range(7):
                neg = psi + t * delta < 0
                if not neg.any():
                    break
                t = torch.where(neg, t / 2, t)
            psi = (psi + t * delta).clamp_min(0.0)
            # beta block, by Lambert W on the log of its argument
            logk = (-psi.view(-1, 1, 1) * cost.view(1, -1, 1) - 1.0)
            lw = lambertw_exp(math.log(lam) + lam * ws + _window_lse(as_image(alpha), logk, k))
            beta = lw - lam * ws
            if old is not None and ((obj - old).abs() <= tol * torch.maximum(obj.abs(), old.abs())).all():
                break
            old = obj
        # final alpha step, then z = column sums of the plan (whose row sums are x exactly)
        lse, per_offset = _window_lse(as_image(beta), logk, k, weights=xs)
        alpha = lse - log_x
        lse = _window_lse(as_image(alpha), logk, k)
        z = torch.where(torch.isfinite(lse), _exp(lse - beta), 0.0)   # 0: no source in reach
        # feasibility: mixing the plan with "stay in place" scales its cost by t <= 1
        cost_z = (per_offset * cost).sum(1)
        t = (eps_t / cost_z.clamp_min(torch.finfo(dtype).tiny)).clamp(max=1.0).view(n, 1, 1)
        z = xs + t * (z - xs)
        out = (z * mass).view(n, c, h, wd).to(w.dtype)
    if not return_info:
        return out
    d = torch.arange(k, device=x.device) - k // 2
    offsets = torch.stack(torch.meshgrid(d, d, indexing="ij"), -1).view(-1, 2)
    plan = t[..., None] * _window_lse(as_image(beta), logk, k, weights=xs, full_plan=True)
    plan[:, :, (k * k) // 2] += (1 - t) * xs                       # offset (0, 0)
    plan = plan * mass[..., None]
    info = {
        "n_iter": it,
        "objective": obj / lam,
        "psi": psi,
        "cost": t.view(n) * cost_z,
        "plan": plan.view(n, c, k * k, h, wd).to(w.dtype),
        "offsets": offsets,
    }
    return out, info


# ----------------------------------------------------------------------------------------
# The attack
# ----------------------------------------------------------------------------------------

def wasserstein_pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    eps0: float = 0.7,
    eps_factor: float = 1.1,
    eps_every: int = 10,
    alpha: float = 0.1,
    lam: float = 1000.0,
    kernel_size: int = 7,
    p: float = 2.0,
    n_iter: int = 200,
    proj_iter: int = 100,
    proj_tol: float = 1e-4,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Wasserstein PGD (Wong et al. 2019; talk eq. (8)) on a batch.

    Each iteration, for every image still classified as ``y``: a signed-gradient step of
    size ``alpha`` on the cross-entropy, :math:`w = x_t + \\alpha\\, \\mathrm{sign}\\nabla l`,
    then :func:`project_wasserstein_ball` around the clean ``x`` with the image's own
    radius, then clipping to [0, 1]. Every ``eps_every`` iterations the radius of each
    image that is still correct grows by ``eps_factor``; an image stops being attacked
    as soon as it is misclassified, so its radius is the one that fooled it. Defaults are
    the paper's MNIST settings.

    Parameters
    ----------
    model : nn.Module
        Any classifier returning logits; used in its current mode, gradients are taken
        with respect to the input only (a frozen :func:`infoclust.classifiers.random_classifier`
        works). The batch is moved to the model's device.
    x : torch.Tensor
        Clean images (N, C, H, W) in [0, 1].
    y : torch.Tensor, optional
        Labels. ``None`` uses the model's own predictions on ``x`` -- the talk's
        label-free use for clustering (then every image starts correctly "classified").
    eps0, eps_factor, eps_every : float, float, int
        Initial radius, its growth factor (>= 1) and the iterations between growths.
    alpha : float
        Size of the l-infinity step on the pixels.
    lam, kernel_size, p, proj_iter, proj_tol
        Passed to :func:`project_wasserstein_ball` (``max_iter``, ``tol``).
    n_iter : int
        PGD iterations.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    x_adv : torch.Tensor
        The attacked images (the last iterate where the attack failed).
    eps : torch.Tensor
        (N,) the radius of each image at the end: where ``success`` it is the radius at
        which it was fooled (0 for images misclassified before any step).
    success : torch.Tensor
        (N,) bool, whether the prediction differs from ``y``.
    """
    eps0 = check_number("eps0", eps0, 0.0, strict_low=True)
    eps_factor = check_number("eps_factor", eps_factor, 1.0)
    eps_every = check_int("eps_every", eps_every, 1)
    alpha = check_number("alpha", alpha, 0.0, strict_low=True)
    n_iter = check_int("n_iter", n_iter, 0)
    if x.ndim != 4:
        raise ParameterError(f"x must be (N, C, H, W), got {tuple(x.shape)}")
    dev = next(iter(model.parameters())).device
    x = x.to(dev)
    with torch.no_grad():
        pred = model(x).argmax(1)
    y = pred if y is None else y.to(dev)
    if y.shape != (len(x),):
        raise ParameterError(f"y must have shape ({len(x)},), got {tuple(y.shape)}")
    x_adv = x.clone()
    success = pred != y
    eps = torch.where(success, 0.0, eps0).to(x.dtype)
    for t in tqdm(range(n_iter), desc="W-PGD", disable=not progress):
        active = (~success).nonzero().flatten()
        if len(active) == 0:
            break
        xa = x_adv[active].requires_grad_(True)
        loss = F.cross_entropy(model(xa), y[active], reduction="sum")
        (grad,) = torch.autograd.grad(loss, xa)
        with torch.no_grad():
            z = project_wasserstein_ball(xa + alpha * grad.sign(), x[active], eps[active],
                                         lam=lam, kernel_size=kernel_size, p=p,
                                         max_iter=proj_iter, tol=proj_tol).clamp_(0.0, 1.0)
            x_adv[active] = z
            success[active] = model(z).argmax(1) != y[active]
            if (t + 1) % eps_every == 0:
                eps = torch.where(success, eps, eps * eps_factor)
    return x_adv, eps, success


def robust_accuracy(eps: torch.Tensor, success: torch.Tensor, radii) -> torch.Tensor:
    """Accuracy under attack at each radius in ``radii``, from :func:`wasserstein_pgd`.

    An image counts as correct at radius ``r`` unless the attack fooled it with a radius
    ``<= r``. Because the attack grows the radius per image, one run gives the whole
    curve, as in Wong et al.'s figures.
    """
    radii = torch.as_tensor(radii, dtype=eps.dtype, device=eps.device).flatten()
    fooled = success[None, :] & (eps[None, :] <= radii[:, None] * (1 + 1e-6))
    return 1.0 - fooled.float().mean(1)

