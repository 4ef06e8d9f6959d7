"""Clustering scores: accuracy under one-to-one Hungarian matching, NMI and ARI.

Cluster indices are arbitrary, so a clustering is scored against the labels after
the best one-to-one assignment of clusters to classes (IIC paper, section 4:
"Hungarian matching"). With more clusters than classes, the clusters left without
a class count as wrong; with fewer, the classes left without a cluster do.

Two training recipes are compared by :func:`paired_difference`: one score per seed and
recipe, where a seed fixes the same initial network and data order in both recipes, so
that the per-seed differences cancel what the seeds share.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from scipy import integrate, stats
from scipy.optimize import brentq, linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from .utils import ParameterError, check_number

__all__ = [
    "contingency",
    "hungarian_match",
    "cluster_accuracy",
    "nmi",
    "ari",
    "evaluate",
    "VERDICTS",
    "PairedDifference",
    "paired_difference",
    "pooled_differences",
]


def _as_labels(name: str, a: np.ndarray | torch.Tensor | list) -> np.ndarray:
    """Integer labels (n,) as int64: ``TypeError`` for other types and dtypes, ParameterError otherwise."""
    if torch.is_tensor(a):
        a = a.detach().cpu().numpy()
    if not isinstance(a, (np.ndarray, list, tuple)):
        raise TypeError(f"{name} must be an array, tensor or list of integer labels, got {type(a).__name__}")
    a = np.asarray(a)
    if a.ndim != 1:
        raise ParameterError(f"{name} must be one-dimensional (n,), got shape {a.shape}")
    if a.size and a.dtype.kind not in "iu":
        raise TypeError(f"{name} has dtype {a.dtype}; labels must be integers (e.g. {name}.astype(int))")
    if a.size and a.min() < 0:
        raise ParameterError(f"{name} must hold non-negative labels, got {a.min()}")
    return a.astype(np.int64)


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t, p = _as_labels("y_true", y_true), _as_labels("y_pred", y_pred)
    if t.shape != p.shape:
        raise ParameterError(f"y_true and y_pred differ in length: {t.size} != {p.size}")
    if t.size == 0:
        raise ParameterError("y_true is empty")
    return t, p


def _contingency(y_true, y_pred) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of (cluster, class) pairs over the clusters and classes present, and their ids."""
    t, p = _pair(y_true, y_pred)
    classes, t = np.unique(t, return_inverse=True)  # dense indices: label ids may be huge
    clusters, p = np.unique(p, return_inverse=True)
    c = np.zeros((len(clusters), len(classes)), dtype=np.int64)
    np.add.at(c, (p, t), 1)
    return c, clusters, classes


def contingency(y_true, y_pred) -> np.ndarray:
    """Counts ``C[i, j]`` of samples in the i-th cluster with the j-th class, of those present.

    Rows are the clusters that occur in ``y_pred`` and columns the classes that occur in
    ``y_true``, both in increasing order (for labels 0..k-1 that all occur, row i is cluster i).

    Parameters
    ----------
    y_true : array-like of int, shape (n,)
        The classes (non-negative integers; a tensor, array or list).
    y_pred : array-like of int, shape (n,)
        The clusters, as many as ``y_true``.

    Returns
    -------
    numpy.ndarray of int64, shape (clusters present, classes present)
        The counts.
    """
    return _contingency(y_true, y_pred)[0]


def hungarian_match(y_true, y_pred) -> dict[int, int]:
    """The one-to-one map cluster -> class that maximises the number of hits (clusters present only).

    Parameters
    ----------
    y_true : array-like of int, shape (n,)
        The classes (non-negative integers; a tensor, array or list).
    y_pred : array-like of int, shape (n,)
        The clusters, as many as ``y_true``.

    Returns
    -------
    dict of int to int
        Cluster id -> class id; with more clusters than classes, some clusters are left out.
    """
    c, clusters, classes = _contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(c, maximize=True)
    return {int(clusters[r]): int(classes[k]) for r, k in zip(rows, cols)}


def cluster_accuracy(y_true, y_pred) -> float:
    """Fraction of samples whose cluster is matched to their class (one-to-one).

    Any non-negative integer ids work: they are relabelled densely before the matching.

    Parameters
    ----------
    y_true : array-like of int, shape (n,)
        The classes (non-negative integers; a tensor, array or list).
    y_pred : array-like of int, shape (n,)
        The clusters, as many as ``y_true``.

    Returns
    -------
    float
        The accuracy in [0, 1] under the matching of :func:`hungarian_match`.
    """
    c = contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(c, maximize=True)
    return float(c[rows, cols].sum() / c.sum())


def nmi(y_true, y_pred) -> float:
    """Normalised mutual information (arithmetic mean normalisation, as scikit-learn).

    Parameters
    ----------
    y_true : array-like of int, shape (n,)
        The classes (non-negative integers; a tensor, array or list).
    y_pred : array-like of int, shape (n,)
        The clusters, as many as ``y_true``.

    Returns
    -------
    float
        :math:`I(Y; C) / \\tfrac12 (H(Y) + H(C))` in [0, 1], independent of the cluster ids.
    """
    t, p = _pair(y_true, y_pred)
    return float(normalized_mutual_info_score(t, p))


def ari(y_true, y_pred) -> float:
    """Adjusted Rand index.

    Parameters
    ----------
    y_true : array-like of int, shape (n,)
        The classes (non-negative integers; a tensor, array or list).
    y_pred : array-like of int, shape (n,)
        The clusters, as many as ``y_true``.

    Returns
    -------
    float
        The Rand index corrected for chance: 1 for identical partitions, about 0 for random ones.
    """
    t, p = _pair(y_true, y_pred)
    return float(adjusted_rand_score(t, p))


def evaluate(y_true, y_pred) -> dict[str, float]:
    """The three scores of one clustering.

    Parameters
    ----------
    y_true : array-like of int, shape (n,)
        The classes (non-negative integers; a tensor, array or list).
    y_pred : array-like of int, shape (n,)
        The clusters, as many as ``y_true``.

    Returns
    -------
    dict of str to float
        ``{"acc": ..., "nmi": ..., "ari": ...}``: :func:`cluster_accuracy`, :func:`nmi`, :func:`ari`.
    """
    return {"acc": cluster_accuracy(y_true, y_pred), "nmi": nmi(y_true, y_pred), "ari": ari(y_true, y_pred)}


#: The verdicts of :func:`paired_difference`, from the sign of its confidence interval.
VERDICTS = ("improves", "hurts", "cannot tell")


class PairedDifference(NamedTuple):
    """A paired comparison of two recipes, in the units of the scores compared.

    Attributes
    ----------
    mean : float
        Mean of the per-seed differences ``a - b``.
    low, high : float
        Its t-based confidence interval.
    sd : float
        Sample standard deviation of the differences (``ddof=1``).
    n : int
        Number of pairs (seeds).
    confidence : float
        Coverage of ``[low, high]``.
    detectable : float
        Smallest true difference that this design (``n`` pairs with this ``sd``) would
        call significant with probability ``power``; 0 when every difference is equal.
    power : float
        The power that ``detectable`` refers to.
    verdict : str
        One of :data:`VERDICTS`: ``"improves"`` when the whole interval lies above 0,
        ``"hurts"`` when it lies below, else ``"cannot tell"``.
    df : int
        Degrees of freedom of ``sd``: ``n - 1``, or more when it is pooled over several
        arms (:func:`pooled_differences`).
    """

    mean: float
    low: float
    high: float
    sd: float
    n: int
    confidence: float
    detectable: float
    power: float
    verdict: str
    df: int


def _open_unit(name: str, value, low: float) -> float:
    value = check_number(name, value, low, 1.0, strict_low=True)
    if value == 1.0:
        raise ParameterError(f"{name}={value!r} must be < 1")
    return value


def _scores(name: str, v, least: int = 2) -> np.ndarray:
    try:
        v = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must hold numbers, one score per seed, got {v!r}") from None
    if v.ndim != 1 or len(v) < least or not np.isfinite(v).all():
        raise ParameterError(
            f"{name} must be a 1-d array of at least {least} finite score{'s' * (least > 1)}, "
            f"got {v.tolist()}"
        )
    return v


#: The largest ``power`` of :func:`paired_difference`: its miss probability, 1 - power, must stay well
#: above the error of the power integral (``scipy.integrate.quad``, about 1e-10 here).
MAX_POWER = 1.0 - 1e-6


def paired_difference(a, b, *, confidence: float = 0.95, power: float = 0.8) -> PairedDifference:
    r"""Is recipe ``a`` better than recipe ``b``? The mean paired difference with its confidence interval.

    ``a[i]`` and ``b[i]`` are the scores of the two recipes run with the same seed ``i``
    (same initial network, same data order). With the differences
    :math:`d_i = a_i - b_i`, their mean :math:`\bar d` and sample standard deviation
    :math:`s`, the interval is the paired t-interval

    .. math:: \bar d \pm t_{1 - \alpha/2,\, n-1}\, s / \sqrt{n}, \qquad \alpha = 1 - \text{confidence},

    the one of ``scipy.stats.ttest_rel(a, b).confidence_interval(confidence)``, with
    :math:`\bar d` and :math:`s` from correctly rounded sums (``math.fsum``), so that the same
    scores give the same bits on every CPU code path, whatever NumPy's SIMD kernels. The
    smallest detectable effect is the true mean difference :math:`\delta` at which the
    two-sided paired t-test at level :math:`\alpha` rejects with probability ``power``,
    :math:`P(|T| > t_{1 - \alpha/2,\, n-1}) = \text{power}` for :math:`T` non-central t with
    :math:`n - 1` degrees of freedom and non-centrality :math:`\delta \sqrt{n} / s`
    (taking the observed :math:`s` as the true standard deviation).

    Parameters
    ----------
    a, b : array-like
        One score per seed, the same seeds in the same order, at least two.
    confidence : float
        Coverage of the interval, in (0, 1).
    power : float
        Power for :attr:`PairedDifference.detectable`, in (1 - confidence, :data:`MAX_POWER`].

    Returns
    -------
    PairedDifference

    Examples
    --------
    >>> d = paired_difference([0.97, 0.95, 0.96, 0.96, 0.94], [0.95, 0.94, 0.93, 0.94, 0.93])
    >>> round(d.mean, 4), d.verdict
    (0.018, 'improves')
    >>> paired_difference([0.97, 0.93], [0.95, 0.94]).verdict
    'cannot tell'
    """
    confidence, power = _check_levels(confidence, power)
    d = _differences("a", a, "b", b)
    n, mean, sd = len(d), *_mean_sd(d)
    return _interval(mean, sd, n, n - 1, confidence, power)


def pooled_differences(pairs, *, confidence: float = 0.95, power: float = 0.8) -> dict:
    r"""Paired differences of several arms against one reference, with one pooled standard deviation.

    Arm :math:`i` was run on :math:`n_i` seeds beside the reference, giving differences
    :math:`d_{ij} = a_{ij} - b_{ij}` with mean :math:`\bar d_i`. When every arm's differences
    scatter alike around their own mean (the chaos of training, the same whatever the arm), the
    common standard deviation is estimated from all of them at once, as the error mean square of
    a one-way layout,

    .. math:: s_p^2 = \frac{\sum_i \sum_j (d_{ij} - \bar d_i)^2}{\nu}, \qquad
              \nu = \sum_i (n_i - 1),

    and arm :math:`i` gets :math:`\bar d_i \pm t_{1 - \alpha/2,\, \nu}\, s_p / \sqrt{n_i}`
    (Montgomery, *Design and Analysis of Experiments*, the error mean square of the one-way
    analysis of variance). With a few pairs per arm the pooled interval is much narrower and far
    steadier than each arm's own: its :math:`s_p` rests on :math:`\nu` degrees of freedom, not
    :math:`n_i - 1`, so one unusual run moves it little, and an arm left with a single pair still
    gets an interval. The price is the assumption of a common spread; a report should show the
    arms' own spreads beside :math:`s_p`. The intervals are per arm (no correction for several
    arms), as :func:`paired_difference`'s; ``detectable`` uses :math:`\nu` degrees of freedom.

    Parameters
    ----------
    pairs : mapping
        ``{arm name: (a, b)}``: the arm's scores and the reference's on the same seeds, in the
        same order, at least one pair per arm and :math:`\nu \ge 1` in all.
    confidence, power : float
        As in :func:`paired_difference`.

    Returns
    -------
    dict
        ``{arm name: PairedDifference}`` with ``sd`` the pooled :math:`s_p` for every arm.

    Examples
    --------
    >>> res = pooled_differences({"x": ([96.0, 95.5, 96.1], [95.8, 95.9, 95.7]), "y": ([95.0], [95.9])})
    >>> round(res["y"].mean, 2), res["y"].n, res["y"].verdict
    (-0.9, 1, 'cannot tell')
    """
    confidence, power = _check_levels(confidence, power)
    if not hasattr(pairs, "items") or not pairs:
        raise ParameterError(f"pairs must be a non-empty mapping of arm name to (a, b), got {pairs!r}")
    diffs = {}
    for name, ab in pairs.items():
        if not isinstance(ab, (tuple, list)) or len(ab) != 2:
            raise ParameterError(f"pairs[{name!r}] must be (a, b), got {ab!r}")
        diffs[name] = _differences(f"pairs[{name!r}][0]", ab[0], f"pairs[{name!r}][1]", ab[1], least=1)
    df = sum(len(d) - 1 for d in diffs.values())
    if df < 1:
        raise ParameterError(
            f"pairs must hold at least one arm with two pairs (no degree of freedom for the spread), "
            f"got {[len(d) for d in diffs.values()]} pairs"
        )
    parts = {name: _mean_squares(d) for name, d in diffs.items()}
    sd = math.sqrt(math.fsum(squares for _, squares in parts.values()) / df)
    return {name: _interval(parts[name][0], sd, len(d), df, confidence, power) for name, d in diffs.items()}


def _check_levels(confidence, power) -> tuple[float, float]:
    """``confidence`` in (0, 1) and ``power`` in (1 - confidence, MAX_POWER], checked."""
    confidence = _open_unit("confidence", confidence, 0.0)
    power = _open_unit("power", power, 1.0 - confidence)
    if power > MAX_POWER:
        raise ParameterError(
            f"power={power!r} is above {MAX_POWER}: the power integral is accurate to about 1e-10, "
            f"too coarse for a miss probability of {1 - power:.1g}"
        )
    return confidence, power


def _differences(name_a: str, a, name_b: str, b, least: int = 2) -> np.ndarray:
    """``a - b`` of two checked score arrays of one score per seed each."""
    a, b = _scores(name_a, a, least), _scores(name_b, b, least)
    if a.shape != b.shape:
        raise ParameterError(
            f"{name_a} and {name_b} must hold one score per seed each, got {len(a)} and {len(b)}"
        )
    return a - b


def _interval(mean: float, sd: float, n: int, df: int, confidence: float, power: float) -> PairedDifference:
    """The t-interval ``mean +- t_{df} sd / sqrt(n)``, its verdict and its smallest detectable effect."""
    t_crit = float(stats.t.ppf(0.5 + confidence / 2, df))
    half = t_crit * sd / np.sqrt(n)
    low, high = mean - half, mean + half
    verdict = VERDICTS[0] if low > 0 else VERDICTS[1] if high < 0 else VERDICTS[2]
    return PairedDifference(
        mean, low, high, sd, n, confidence, _detectable(n, df, sd, t_crit, power), power, verdict, df
    )


def _mean_squares(d: np.ndarray) -> tuple[float, float]:
    """Mean and sum of squared deviations from it, from correctly rounded sums (``math.fsum``).

    They do not depend on the order of the additions, so the same scores give the same bits
    on every machine and code path (NumPy's sums follow its SIMD kernels).
    """
    mean = math.fsum(d.tolist()) / len(d)
    return mean, math.fsum(((d - mean) ** 2).tolist())


def _mean_sd(d: np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``), the same bits on every code path."""
    mean, squares = _mean_squares(d)
    return mean, math.sqrt(squares / (len(d) - 1))


def _t_test_power(nc: float, df: int, t_crit: float) -> float:
    """P(|T| > t_crit) for T non-central t(df, nc), as an integral over the chi-square quantiles.

    T = (Z + nc) / S with S = sqrt(V / df), V ~ chi2(df): P = E_S[Phi(nc - t S) + Phi(-nc - t S)].
    (scipy's ``nct`` returns NaN at some arguments for small df; this integral does not.)
    """

    def at(u: float) -> float:
        s = np.sqrt(stats.chi2.ppf(u, df) / df)
        return float(stats.norm.sf(t_crit * s - nc) + stats.norm.cdf(-t_crit * s - nc))

    return integrate.quad(at, 0.0, 1.0, limit=200)[0]


def _detectable(n: int, df: int, sd: float, t_crit: float, power: float) -> float:
    """Smallest delta whose t-test (``df`` degrees of freedom) rejects with probability ``power``:
    nc = delta sqrt(n) / sd."""
    if sd == 0.0:
        return 0.0
    high = 1.0
    while _t_test_power(high, df, t_crit) < power:
        high *= 2.0
    nc = brentq(lambda nc: _t_test_power(nc, df, t_crit) - power, 0.0, high, xtol=1e-10)
    return nc * sd / np.sqrt(n)
