"""Clustering scores: accuracy under one-to-one Hungarian matching, NMI and ARI.

Cluster indices are arbitrary, so a clustering is scored against the labels after
the best one-to-one assignment of clusters to classes (IIC paper, section 4:
"Hungarian matching"). With more clusters than classes, the clusters left without
a class count as wrong; with fewer, the classes left without a cluster do.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from .utils import ParameterError, check_number

__all__ = ["contingency", "hungarian_match", "cluster_accuracy", "nmi", "ari", "evaluate", "compare_runs"]


def _as_labels(name: str, a: np.ndarray | torch.Tensor | list) -> np.ndarray:
    if torch.is_tensor(a):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.ndim != 1:
        raise ParameterError(f"{name} must be one-dimensional, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ParameterError(f"{name} must hold integer labels, got dtype {a.dtype}")
    if a.size and a.min() < 0:
        raise ParameterError(f"{name} must hold non-negative labels")
    return a.astype(np.int64)


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t, p = _as_labels("y_true", y_true), _as_labels("y_pred", y_pred)
    if t.shape != p.shape:
        raise ParameterError(f"y_true and y_pred differ in length: {t.size} != {p.size}")
    if t.size == 0:
        raise ParameterError("y_true is empty")
    return t, p


def contingency(y_true, y_pred) -> np.ndarray:
    """Counts ``C[i, j]`` of samples in cluster ``i`` with class ``j``."""
    t, p = _pair(y_true, y_pred)
    c = np.zeros((p.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(c, (p, t), 1)
    return c


def hungarian_match(y_true, y_pred) -> dict[int, int]:
    """The one-to-one map cluster -> class that maximises the number of hits."""
    c = contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(c, maximize=True)
    return {int(r): int(k) for r, k in zip(rows, cols)}


def cluster_accuracy(y_true, y_pred) -> float:
    """Fraction of samples whose cluster is matched to their class (one-to-one)."""
    c = contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(c, maximize=True)
    return float(c[rows, cols].sum() / c.sum())


def nmi(y_true, y_pred) -> float:
    """Normalised mutual information (arithmetic mean normalisation, as scikit-learn)."""
    t, p = _pair(y_true, y_pred)
    return float(normalized_mutual_info_score(t, p))


def ari(y_true, y_pred) -> float:
    """Adjusted Rand index."""
    t, p = _pair(y_true, y_pred)
    return float(adjusted_rand_score(t, p))


def evaluate(y_true, y_pred) -> dict[str, float]:
    """``{"acc": ..., "nmi": ..., "ari": ...}`` for one clustering."""
    return {"acc": cluster_accuracy(y_true, y_pred), "nmi": nmi(y_true, y_pred), "ari": ari(y_true, y_pred)}


def compare_runs(a, b, k: float = 2.0) -> tuple[float, float, str]:
    """Compare the scores of two sets of runs (e.g. one per seed): is ``a`` better than ``b``?

    Returns ``(diff, se, verdict)``: the difference of the means, ``mean(a) - mean(b)``, its
    standard error :math:`\\sqrt{s_a^2 / n_a + s_b^2 / n_b}` (sample variances, as in
    Welch's t-test), and ``"helps"`` if ``diff > k se``, ``"hurts"`` if ``diff < -k se``,
    else ``"no clear effect"``.

    Parameters
    ----------
    a, b : array-like
        One score per run, at least two runs each.
    k : float
        How many standard errors make an effect (> 0).
    """
    k = check_number("k", k, 0.0, strict_low=True)
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    for name, v in (("a", a), ("b", b)):
        if len(v) < 2 or not np.isfinite(v).all():
            raise ParameterError(f"{name} must hold at least two finite scores, got {v.tolist()}")
    diff = float(a.mean() - b.mean())
    se = float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
    word = "helps" if diff > k * se else "hurts" if diff < -k * se else "no clear effect"
    return diff, se, word
