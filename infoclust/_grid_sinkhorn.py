"""The entropic solver behind :func:`infoclust.wasserstein.w2_sinkhorn` (private).

Entropic optimal transport between histograms on a pixel grid with the squared Euclidean
cost, for a whole batch at once, in torch. The Gibbs kernel of that cost is separable, so
applying it costs two small matrix products per image. Two solvers, as POT keeps its own in
``ot/bregman/_sinkhorn.py``:

* :func:`_sinkhorn_scaling` -- Sinkhorn's matrix scaling (Cuturi 2013, Alg. 1), fast, in
  float32 or float64, for regularisations that are not small against the grid;
* :func:`_sinkhorn_log` -- the log-domain Sinkhorn with epsilon-scaling and
  over-relaxation in float64, stable for any regularisation.

:func:`entropic_values` runs the first and hands what it cannot resolve to the second.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def axis_cost(n: int, dtype: torch.dtype, device: torch.device | str | None) -> torch.Tensor:
    """Squared distances ``(i - j)^2`` between the ``n`` positions of one grid axis, (n, n)."""
    t = torch.arange(n, dtype=dtype, device=device)
    return (t[:, None] - t[None, :]) ** 2


_LOG_KERNEL_FLOOR = -660.0  # exp of it is a normal float64 with room to spare (> e^-708)
_EMPTY = -1e30  # log-mass of an empty pixel: exp() gives exactly 0, and no row is all -inf


def _lse_axis(h: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``out[..., p] = log sum_q exp(h[..., q] + k[p, q])``: a 1-D log-domain convolution, float64.

    When every entry of the log-kernel ``k`` is finite and above ``_LOG_KERNEL_FLOOR``, this
    is a matrix product with ``exp(k)`` after shifting each row of ``h`` by its maximum:
    the shifted sum is then at least ``exp(min k)``, a normal float, so nothing underflows
    (exponents far below that are clamped, and their share of the sum is below e^-40).
    Otherwise it is an explicit log-sum-exp over a (..., P, Q) tensor, with the same
    clamping (``exp`` making denormal floats is many times slower on x86 CPUs).
    Every row of ``h`` must hold a finite value: empty pixels carry the log-mass ``_EMPTY``
    rather than -inf.
    """
    kmin = float(k.min())
    if kmin >= _LOG_KERNEL_FLOOR:
        m = h.amax(-1, keepdim=True)
        e = (h - m).clamp_min_(kmin - 40.0).exp_()
        return (e @ k.exp().T).log_().add_(m)
    s = h[..., None, :] + k
    m = s.amax(-1, keepdim=True)
    return (s - m).clamp_min_(-80.0).exp_().sum(-1).log_().add_(m[..., 0])


def _grid_lse(
    h: torch.Tensor,
    ci: torch.Tensor,
    cj: torch.Tensor,
    eps: float,
    wi: torch.Tensor | None = None,
    wj: torch.Tensor | None = None,
) -> torch.Tensor:
    """``log sum_q exp(h[q] - C[p, q] / eps) * wi * wj`` for every pixel p of every batch row.

    ``h`` has shape (B, H, W); the kernel ``exp(-C / eps)`` of the grid cost factorises into
    a row kernel and a column kernel, so the sum over the H*W pixels q is two 1-D
    log-domain convolutions (:func:`_lse_axis`): along the columns, then along the rows --
    O(HW (H + W)) per image instead of O((HW)^2). Optional ``wi`` (H, H) and ``wj`` (W, W)
    are extra log weights of the row and column factors (used for the transport cost).
    """
    kj = -cj / eps if wj is None else wj - cj / eps
    ki = -ci / eps if wi is None else wi - ci / eps
    t = _lse_axis(h, kj)  # (B, H_q, W_p)
    return _lse_axis(t.transpose(1, 2), ki).transpose(1, 2)  # (B, H_p, W_p)


@dataclass
class _SinkhornState:
    f: torch.Tensor
    g: torch.Tensor
    n_iter: int
    error: float


def _sinkhorn_log(
    log_a: torch.Tensor,
    log_b: torch.Tensor,
    reg: float,
    tol: float,
    max_iter: int,
    scaling: float,
    omega: float,
) -> _SinkhornState:
    """Log-domain Sinkhorn on a batch of grid histograms (B, H, W).

    Epsilon-scaling (one sweep per blur value, from the grid's squared diameter down to
    ``reg``), then over-relaxed updates at ``reg`` (Thibault et al. 2017:
    ``f <- f + omega (T(g) - f)``; ``omega = 1`` is plain Sinkhorn) until the L1 error of
    both marginals of every plan is below ``tol`` (checked every 5 iterations).
    """
    dtype, device = log_a.dtype, log_a.device
    hh, ww = log_a.shape[-2:]
    ci, cj = axis_cost(hh, dtype, device), axis_cost(ww, dtype, device)
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
    ci, cj = axis_cost(hh, dtype, device), axis_cost(ww, dtype, device)
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
    e = (hb - m).clamp_min_(kmin - 40.0).exp_()  # (B, H_q, W_q)
    t0 = e @ kj.T  # (B, H_q, W_p)
    col_cost = ((e @ (kj * cj).T) / t0).transpose(1, 2)  # mean column cost
    l0 = (t0.log_() + m).transpose(1, 2)  # (B, W_p, H_q)
    m2 = l0.amax(-1, keepdim=True)
    w = (l0 - m2).clamp_min_(kmin - 40.0).exp_()
    d = w @ ki.T  # (B, W_p, H_p)
    mean_cost = (w @ (ki * ci).T + (w * col_cost) @ ki.T) / d
    log_row = (d.log_() + m2).transpose(1, 2)  # (B, H_p, W_p)
    mass = (log_a + state.f / reg + log_row).exp_()  # row marginal of the plan
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


def _sinkhorn_scaling(
    a: torch.Tensor, b: torch.Tensor, ki: torch.Tensor, kj: torch.Tensor, tol: float, max_iter: int
) -> _ScalingState:
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


def _scaling_values(
    state: _ScalingState,
    a: torch.Tensor,
    b: torch.Tensor,
    ki: torch.Tensor,
    kj: torch.Tensor,
    reg: float,
    mode: str,
) -> torch.Tensor:
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
    ci = axis_cost(ki.shape[0], ki.dtype, ki.device)
    cj = axis_cost(kj.shape[0], kj.dtype, kj.device)
    kcv = (ki * ci) @ v @ kj + ki @ v @ (kj * cj)
    return (u * kcv).flatten(1).sum(1)


def entropic_values(
    a: torch.Tensor,
    b: torch.Tensor,
    reg: float,
    mode: str,
    tol: float,
    max_iter: int,
    scaling: float,
    omega: float,
) -> tuple[torch.Tensor, dict]:
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
        ki = (-axis_cost(hh, a.dtype, a.device) / reg).exp()
        kj = (-axis_cost(ww, a.dtype, a.device) / reg).exp()
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
