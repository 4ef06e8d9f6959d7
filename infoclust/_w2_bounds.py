"""Certified lower and upper bounds of W2 between images, for decisions that need no exact value.

The talk's Algorithm 1 (:mod:`infoclust.w2_algorithm`) asks two questions of every trial
point ``x''``: is ``W2(x'', x) <= eps``, and does the stopping coin ``u < exp(-W2^2 / eta^2)``
fire. Both are threshold tests, and a bracket ``L <= W2 <= U`` settles a test whenever the
threshold lies outside it. The exact solver (:func:`infoclust.wasserstein.w2_exact`) is
then needed only inside the bracket. Both bounds cost a few sorts of 1-D histograms.

* Lower bound. The squared cost splits over the axes, ``|p - q|^2 = (p_x - q_x)^2 +
  (p_y - q_y)^2``, and a coupling of the images projects to couplings of their row and
  column marginals, so ``W2^2 >= W2^2(columns) + W2^2(rows)``, each a 1-D problem solved
  exactly by the quantile functions.
* Upper bound. The cost of any coupling bounds ``W2^2`` from above. The Knothe-Rosenblatt
  coupling matches the column marginals monotonically, then within each matched pair of
  columns the conditional distributions along the column monotonically; it is a coupling
  of the two images whatever they are. Both orders (columns first, rows first) are
  computed and the smaller cost kept.

With the two bounds (and the triangle inequality through the walk's previous point,
:mod:`infoclust.w2_algorithm`) a walk calls the exact solver only for the tests that the
bracket cannot decide; how tight the bracket was on digits, and how many tests it decided
in chapter 9's setting, are in the README, "Numbers measured once".
All arithmetic is float64; the bounds are widened by ``1e-9`` relative against rounding.
"""

from __future__ import annotations

import torch

__all__ = ["w2_bounds"]

_SAFETY = 1e-9


def _couple_1d(p: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The monotone coupling of 1-D histograms ``p, q`` (rows summing to 1) on the bins 0..n-1.

    Returns ``(mass, i, j)``, each (..., 2n): the coupling moves ``mass[k]`` from bin ``i[k]``
    of ``p`` to bin ``j[k]`` of ``q`` (the quantile functions on the pieces between the
    merged cumulative sums).
    """
    n = p.shape[-1]
    cp, cq = p.cumsum(-1).clamp_max(1.0), q.cumsum(-1).clamp_max(1.0)
    cp[..., -1] = 1.0
    cq[..., -1] = 1.0
    t = torch.cat((cp, cq), -1).sort(-1).values
    t0 = torch.cat((torch.zeros_like(t[..., :1]), t[..., :-1]), -1)
    mid = 0.5 * (t + t0)
    i = torch.searchsorted(cp, mid).clamp_max(n - 1)
    j = torch.searchsorted(cq, mid).clamp_max(n - 1)
    return (t - t0).clamp_min(0.0), i, j


def _w2_1d_sq(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Exact squared W2 between 1-D histograms on the same bins (rows sum to 1)."""
    mass, i, j = _couple_1d(p, q)
    return (mass * (i - j).to(mass.dtype) ** 2).sum(-1)


def _normalise(h: torch.Tensor) -> torch.Tensor:
    return h / h.sum(-1, keepdim=True).clamp_min(torch.finfo(h.dtype).tiny)


def _knothe_rosenblatt_sq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cost of the Knothe-Rosenblatt coupling of ``a, b`` (N, H, W): columns first, then rows within."""
    height = a.shape[1]
    mass, i, j = _couple_1d(a.sum(1), b.sum(1))  # (N, 2W)
    col_a = a.transpose(1, 2).gather(1, i.unsqueeze(-1).expand(-1, -1, height))  # (N, 2W, H)
    col_b = b.transpose(1, 2).gather(1, j.unsqueeze(-1).expand(-1, -1, height))
    inner = _w2_1d_sq(_normalise(col_a), _normalise(col_b))
    return (mass * ((i - j).to(mass.dtype) ** 2 + torch.where(mass > 0, inner, 0.0))).sum(-1)


def w2_bounds(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Certified bounds ``lower <= W2(a[i], b[i]) <= upper`` for histograms on a pixel grid.

    Parameters
    ----------
    a, b : torch.Tensor
        Histograms (N, H, W), float64, non-negative, each summing to 1 (as
        :func:`infoclust.wasserstein.to_histogram` makes them), in pixels.

    Returns
    -------
    lower, upper : torch.Tensor
        (N,) float64, in pixels.
    """
    lower = (_w2_1d_sq(a.sum(1), b.sum(1)) + _w2_1d_sq(a.sum(2), b.sum(2))).sqrt()
    upper = torch.minimum(
        _knothe_rosenblatt_sq(a, b), _knothe_rosenblatt_sq(a.transpose(1, 2), b.transpose(1, 2))
    ).sqrt()
    return lower * (1 - _SAFETY), upper * (1 + _SAFETY)
