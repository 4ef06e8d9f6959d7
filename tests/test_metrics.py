import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from infoclust import ParameterError, ari, cluster_accuracy, evaluate, nmi
from infoclust.metrics import contingency, hungarian_match, paired_difference, pooled_differences


def test_permuted_labels_score_one():
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    pred = np.array([2, 2, 0, 0, 1, 1, 1])
    assert cluster_accuracy(y, pred) == 1.0
    assert hungarian_match(y, pred) == {2: 0, 0: 1, 1: 2}
    assert evaluate(y, pred) == {"acc": 1.0, "nmi": pytest.approx(1.0), "ari": pytest.approx(1.0)}


def test_known_accuracy():
    y = np.array([0, 0, 0, 1, 1, 1])
    pred = np.array([0, 0, 1, 1, 1, 1])
    assert cluster_accuracy(y, pred) == pytest.approx(5 / 6)


def test_more_clusters_than_classes_one_to_one():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    pred = np.array([0, 0, 1, 1, 2, 2, 3, 3])  # each class split in two
    assert cluster_accuracy(y, pred) == 0.5  # only two clusters can be matched
    assert contingency(y, pred).shape == (4, 2)


def test_fewer_clusters_than_classes():
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.zeros(6, dtype=int)  # degenerate: one cluster
    assert cluster_accuracy(y, pred) == pytest.approx(1 / 3)
    assert nmi(y, pred) == pytest.approx(0.0)
    assert ari(y, pred) == pytest.approx(0.0)


def test_nmi_ari_agree_with_sklearn():
    rng = np.random.default_rng(0)
    y, pred = rng.integers(0, 5, 200), rng.integers(0, 7, 200)
    assert nmi(y, pred) == pytest.approx(normalized_mutual_info_score(y, pred))
    assert ari(y, pred) == pytest.approx(adjusted_rand_score(y, pred))


@pytest.mark.parametrize(
    "y, pred, error, match",
    [
        ([0, 1], [0, 1, 1], ParameterError, "differ in length"),
        ([0.5, 1.0], [0, 1], TypeError, "y_true has dtype float64; labels must be integers"),
        ([0, 1], [True, False], TypeError, "y_pred has dtype bool"),
        ([[0, 1]], [[0, 1]], ParameterError, "y_true must be one-dimensional"),
        ([], [], ParameterError, "empty"),
        ([0, -1], [0, 1], ParameterError, "y_true must hold non-negative"),
        ([0, 1], ["a", "b"], TypeError, "y_pred has dtype"),
    ],
)
def test_bad_inputs(y, pred, error, match):
    with pytest.raises(error, match=match):
        cluster_accuracy(np.array(y), np.array(pred))
    with pytest.raises(TypeError, match="y_pred must be"):
        cluster_accuracy(np.array([0, 1]), "01")


def test_huge_label_ids_are_relabelled_densely():
    """Ids up to 5e8 used to allocate a 5e8-row contingency table (and kill the process)."""
    y = np.array([0, 0, 1, 1, 2])
    pred = np.array([7, 7, 5 * 10**8, 5 * 10**8, 10**12])
    assert cluster_accuracy(y, pred) == 1.0
    assert hungarian_match(y, pred) == {7: 0, 5 * 10**8: 1, 10**12: 2}
    assert contingency(y, pred).shape == (3, 3)
    assert cluster_accuracy(torch.tensor([3, 3, 9]), torch.tensor([2**40, 2**40, 0])) == 1.0


def test_paired_difference_matches_scipy_paired_t():
    rng = np.random.default_rng(1)
    b = rng.normal(0.9, 0.02, 7)
    a = b + rng.normal(0.01, 0.01, 7)
    d = paired_difference(a, b, confidence=0.9)
    ci = stats.ttest_rel(a, b).confidence_interval(0.9)
    assert d.mean == pytest.approx(np.mean(a - b))
    assert (d.low, d.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert d.sd == pytest.approx(np.std(a - b, ddof=1)) and d.n == 7 and d.confidence == 0.9
    # the interval excludes 0 exactly when scipy's paired t-test rejects at 1 - confidence
    assert (d.verdict != "cannot tell") == (stats.ttest_rel(a, b).pvalue < 0.1)


def test_paired_difference_verdicts():
    b = np.array([0.70, 0.72, 0.71, 0.69, 0.73])
    up = b + np.array([0.05, 0.06, 0.04, 0.05, 0.07])
    assert paired_difference(up, b).verdict == "improves"
    assert paired_difference(b, up).verdict == "hurts"
    noisy = b + np.array([0.05, -0.06, 0.04, -0.05, 0.01])
    assert paired_difference(noisy, b).verdict == "cannot tell"
    same = paired_difference(b + 0.01, b)  # identical differences: a point interval
    assert same.low == pytest.approx(0.01) and same.verdict == "improves" and same.detectable == 0.0


def test_paired_difference_pairing_removes_shared_seed_noise():
    """Seeds that move both recipes alike widen an unpaired interval, not the paired one."""
    seed_effect = np.array([0.10, -0.08, 0.03, -0.05, 0.12, -0.02])
    b = 0.8 + seed_effect
    a = b + np.array([0.011, 0.009, 0.010, 0.012, 0.008, 0.010])
    assert paired_difference(a, b).verdict == "improves"
    assert stats.ttest_ind(a, b).pvalue > 0.5


def test_paired_difference_detectable_effect_has_the_stated_power():
    rng = np.random.default_rng(2)
    n, sd = 5, 0.02
    d = paired_difference(rng.normal(0, sd, n), np.zeros(n))
    t_crit = stats.t.ppf(0.975, n - 1)
    nc = d.detectable * np.sqrt(n) / d.sd
    assert stats.nct(n - 1, nc).sf(t_crit) + stats.nct(n - 1, nc).cdf(-t_crit) == pytest.approx(0.8, abs=1e-6)
    # Monte Carlo: paired t-tests of samples with that true effect and sd reject about 80 % of the time
    trials = rng.normal(d.detectable, d.sd, (20000, n))
    rejected = stats.ttest_1samp(trials, 0.0, axis=1).pvalue < 0.05
    assert rejected.mean() == pytest.approx(0.8, abs=0.015)
    assert paired_difference(rng.normal(0, sd, 20), np.zeros(20)).detectable < d.detectable  # more seeds


def test_paired_difference_detectable_effect_with_two_seeds():
    """One degree of freedom, where scipy's non-central t returns NaN at some arguments."""
    d = paired_difference([0.80, 0.74], [0.70, 0.71])
    t_crit = stats.t.ppf(0.975, 1)
    assert np.isfinite(d.detectable) and d.verdict == "cannot tell"
    trials = np.random.default_rng(3).normal(d.detectable, d.sd, (40000, 2))
    rejected = np.abs(trials.mean(1) / (trials.std(1, ddof=1) / np.sqrt(2))) > t_crit
    assert rejected.mean() == pytest.approx(0.8, abs=0.01)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(a=[0.5], b=[0.4]), "a must be"),
        (dict(a=[0.5, np.nan], b=[0.4, 0.4]), "a must be"),
        (dict(a=[0.5, 0.6], b=[0.4, 0.4, 0.4]), "one score per seed"),
        (dict(a=[0.5, 0.6], b=[0.4, 0.4], confidence=1.0), "confidence"),
        (dict(a=[0.5, 0.6], b=[0.4, 0.4], confidence=0.0), "confidence"),
        (dict(a=[0.5, 0.6], b=[0.4, 0.4], power=0.01), "power"),
    ],
)
def test_paired_difference_bad_inputs(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        paired_difference(**kwargs)
    with pytest.raises(TypeError, match="a must hold numbers"):
        paired_difference(["x", "y"], [0.4, 0.5])


def test_pooled_differences_of_one_arm_are_its_paired_difference():
    a, b = [96.0, 95.5, 96.1, 95.2], [95.8, 95.9, 95.7, 95.0]
    assert tuple(pooled_differences({"x": (a, b)})["x"]) == pytest.approx(tuple(paired_difference(a, b)))


def test_pooled_differences_use_the_one_way_error_mean_square():
    rng = np.random.default_rng(4)
    d = {"x": rng.normal(0.3, 0.4, 5), "y": rng.normal(-0.2, 0.4, 3), "z": rng.normal(0.0, 0.4, 1)}
    res = pooled_differences({k: (v, np.zeros(len(v))) for k, v in d.items()})
    df = 4 + 2 + 0
    sd = np.sqrt((np.var(d["x"], ddof=1) * 4 + np.var(d["y"], ddof=1) * 2) / df)  # z adds no spread
    for name, v in d.items():
        half = stats.t.ppf(0.975, df) * sd / np.sqrt(len(v))
        r = res[name]
        assert (r.sd, r.n, r.mean) == pytest.approx((sd, len(v), v.mean()))
        assert (r.low, r.high) == pytest.approx((v.mean() - half, v.mean() + half))
    assert np.isfinite(res["z"].detectable)  # one pair, yet an interval and a power


@pytest.mark.parametrize(
    "pairs, match",
    [
        ({}, "non-empty mapping"),
        ([([1.0, 2.0], [1.0, 2.0])], "non-empty mapping"),
        ({"x": ([1.0], [2.0])}, "no degree of freedom"),
        ({"x": ([1.0, 2.0], [1.0])}, "one score per seed"),
        ({"x": ([1.0, np.inf], [1.0, 2.0])}, r"pairs\['x'\]\[0\] must be"),
        ({"x": ([], [])}, "at least 1 finite score"),
        ({"x": [1.0, 2.0, 3.0]}, r"pairs\['x'\] must be \(a, b\)"),
    ],
)
def test_pooled_differences_bad_inputs(pairs, match):
    with pytest.raises(ParameterError, match=match):
        pooled_differences(pairs)
