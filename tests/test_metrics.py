import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from infoclust import ParameterError, ari, cluster_accuracy, evaluate, nmi
from infoclust.metrics import compare_runs, contingency, hungarian_match


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


@pytest.mark.parametrize("y, pred, match", [
    ([0, 1], [0, 1, 1], "differ in length"),
    ([0.5, 1.0], [0, 1], "integer"),
    ([[0, 1]], [[0, 1]], "one-dimensional"),
    ([], [], "empty"),
    ([0, -1], [0, 1], "non-negative"),
])
def test_bad_inputs(y, pred, match):
    with pytest.raises(ParameterError, match=match):
        cluster_accuracy(np.array(y), np.array(pred))


def test_compare_runs_difference_standard_error_and_verdict():
    a, b = [0.80, 0.82, 0.84], [0.70, 0.71, 0.72]
    diff, se, word = compare_runs(a, b)
    assert diff == pytest.approx(0.11)
    assert se == pytest.approx(np.sqrt(0.02 ** 2 / 3 + 0.01 ** 2 / 3))  # sample sds 0.02 and 0.01
    assert word == "helps" and compare_runs(b, a)[2] == "hurts"
    assert compare_runs(a, b, k=20.0)[2] == "no clear effect"
    with pytest.raises(ParameterError, match="at least two"):
        compare_runs([0.5], b)
    with pytest.raises(ParameterError, match="k="):
        compare_runs(a, b, k=0.0)
