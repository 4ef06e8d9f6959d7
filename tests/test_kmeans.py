import warnings

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans as SKLearnKMeans
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError

from infoclust import ConvergenceWarning, KMeans, ParameterError, cluster_accuracy
from infoclust.kmeans import kmeans_plusplus


def blobs(n=600, k=5, d=6, std=0.5, seed=0):
    x, y = make_blobs(n_samples=n, centers=k, n_features=d, cluster_std=std, random_state=seed)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_planted_blobs_recovered(init):
    x, y = blobs()
    km = KMeans(5, init=init, n_init=5, seed=1, device="cpu").fit(x)
    assert cluster_accuracy(y, km.labels_) == 1.0
    assert km.n_empty_ == 0
    np.testing.assert_array_equal(km.predict(x), km.labels_)


def test_inertia_matches_sklearn_from_same_centres():
    x, _ = blobs(n=2000, k=8, d=20, std=3.0, seed=3)  # overlapping: many iterations
    init = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:8]]
    ours = KMeans(8, init=init, max_iter=300, tol=1e-6, device="cpu").fit(x)
    ref = SKLearnKMeans(8, init=init.numpy(), n_init=1, max_iter=300, tol=1e-6, algorithm="lloyd").fit(
        x.numpy()
    )
    assert ours.n_iter_ > 2
    assert abs(ours.inertia_ - ref.inertia_) / ref.inertia_ < 1e-3
    np.testing.assert_allclose(
        ours.inertia_, ((x.numpy() - ours.cluster_centers_[ours.labels_]) ** 2).sum(), rtol=1e-4
    )


def test_deterministic_for_a_seed():
    x, _ = blobs(std=2.0)
    a = KMeans(5, n_init=3, seed=7, device="cpu").fit(x)
    b = KMeans(5, n_init=3, seed=7, device="cpu").fit(x)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert a.inertia_ == b.inertia_
    c = KMeans(5, init="random", n_init=1, seed=8, device="cpu", keep_history=True).fit(x)
    d = KMeans(5, init="random", n_init=1, seed=9, device="cpu", keep_history=True).fit(x)
    assert not np.array_equal(c.history_[0], d.history_[0])  # the seed drives the initialisation


def _far_init(x, k):
    corner = x.min(0).values - 20.0
    return corner + torch.arange(k, dtype=torch.float32).unsqueeze(1) * 0.5


def test_empty_clusters_die_when_kept():
    x, y = blobs(k=4, d=2)
    km = KMeans(4, init=_far_init(x, 4), empty="keep", device="cpu").fit(x)
    assert km.n_empty_ == 3
    assert len(np.unique(km.labels_)) == 1
    assert km.n_relocated_ == 0


def test_empty_clusters_relocated():
    x, y = blobs(k=4, d=2)
    km = KMeans(4, init=_far_init(x, 4), empty="relocate", device="cpu").fit(x)
    kept = KMeans(4, init=_far_init(x, 4), empty="keep", device="cpu").fit(x)
    assert km.n_empty_ == 0
    assert km.n_relocated_ >= 3
    assert len(np.unique(km.labels_)) == 4
    assert km.inertia_ < 0.5 * kept.inertia_


def test_history_records_iterations():
    x, _ = blobs(k=3, d=2)
    km = KMeans(3, init="random", keep_history=True, seed=0, device="cpu").fit(x)
    assert len(km.history_) == km.n_iter_ + 1
    np.testing.assert_allclose(km.history_[-1], km.cluster_centers_)


def test_kmeans_plusplus_picks_data_points_spread_out():
    x, y = blobs(k=5, d=2, std=0.1)
    c = kmeans_plusplus(x, 5, torch.Generator().manual_seed(0))
    assert all((x == ci).all(1).any() for ci in c)
    nearest = torch.cdist(c, x).argmin(1)
    assert y[nearest].unique().numel() == 5  # one seed per well separated blob


def test_images_are_flattened():
    x = torch.rand(50, 1, 4, 4)
    km = KMeans(3, device="cpu").fit(x)
    assert km.cluster_centers_.shape == (3, 16)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_clusters": 11}, "n_clusters"),
        ({"n_clusters": 0}, "n_clusters"),
        ({"init": "nope"}, "init"),
        ({"empty": "drop"}, "empty"),
        ({"init": torch.zeros(2, 2)}, "init"),
        ({"init": torch.zeros(3, 2), "n_init": 2}, "n_init"),
        ({"max_iter": 0}, "max_iter"),
        ({"device": "no-such-device"}, "device"),
    ],
)
def test_bad_arguments(kwargs, match):
    kwargs = {"n_clusters": 3, **kwargs}
    with pytest.raises(ParameterError, match=match):
        KMeans(**kwargs).fit(torch.rand(10, 2))


def test_nan_input_rejected():
    x = torch.rand(10, 2)
    x[3, 1] = float("nan")
    with pytest.raises(ParameterError, match="NaN"):
        KMeans(2, device="cpu").fit(x)


def test_predict_before_fit():
    with pytest.raises(NotFittedError):
        KMeans(2).predict(torch.rand(3, 2))


def test_inertia_blocks_change_no_bit(monkeypatch):
    import math

    from infoclust import kmeans

    g = torch.Generator().manual_seed(0)
    x = torch.rand(103, 7, generator=g) * 10
    centers = torch.rand(4, 7, generator=g)
    labels = torch.randint(4, (103,), generator=g)
    whole = kmeans._inertia(x, centers, labels)  # one block
    monkeypatch.setattr(kmeans, "_BLOCK_ELEMENTS", 7 * 10)  # 11 blocks of at most 10 rows
    assert kmeans._inertia(x, centers, labels) == whole
    exact = math.fsum(((x.double() - centers.double()[labels]) ** 2).flatten().tolist())
    assert whole == pytest.approx(exact, rel=1e-14)


def test_cluster_sums_by_one_hot_chunks_equal_index_add():
    from infoclust.kmeans import _cluster_sums

    g = torch.Generator().manual_seed(0)
    x = torch.rand(103, 5, generator=g)
    labels = torch.randint(4, (103,), generator=g)
    labels[labels == 2] = 1  # an empty cluster
    counts, sums = _cluster_sums(x, labels, 4, onehot=False)
    hot_counts, hot_sums = _cluster_sums(x, labels, 4, onehot=True, rows=10)  # 11 chunks
    torch.testing.assert_close(hot_counts, counts)
    torch.testing.assert_close(hot_sums, sums)
    assert counts[2] == 0 and counts.sum() == 103


def test_stopping_at_max_iter_warns():
    x, _ = blobs(n=2000, k=8, d=20, std=3.0, seed=3)  # overlapping: many iterations
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        KMeans(8, max_iter=2, device="cpu").fit(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        KMeans(8, max_iter=300, device="cpu").fit(x)


@pytest.mark.parametrize(
    "x, error, match",
    [
        (torch.rand(10), ParameterError, "Reshape your data"),
        (torch.rand(0, 3), ParameterError, "x holds 0 samples"),
        (torch.rand(5, 0), ParameterError, r"x has 0 feature\(s\)"),
        (np.ones((6, 2)) + 1j, ParameterError, "x has complex dtype"),
        (np.array([[1, "a"], [2, "b"]], dtype=object), TypeError, "number"),
    ],
)
def test_bad_data_named(x, error, match):
    with pytest.raises(error, match=match):
        KMeans(1, device="cpu").fit(x)


def test_sparse_data_is_refused():
    from scipy import sparse

    with pytest.raises(TypeError, match="x is a sparse matrix"):
        KMeans(2, device="cpu").fit(sparse.csr_matrix(np.eye(4)))


def test_awkward_but_valid_data_works():
    x, _ = blobs(n=100, k=3, d=4)
    ref = KMeans(3, device="cpu").fit(x)
    noncontig = x.T.contiguous().T
    assert not noncontig.is_contiguous()
    for other in (x.numpy().astype(np.float64), x.tolist(), noncontig, x.double()):
        np.testing.assert_array_equal(KMeans(3, device="cpu").fit(other).labels_, ref.labels_)
    np.testing.assert_array_equal(ref.predict(x.numpy().astype(np.float64)), ref.labels_)


def test_predict_needs_the_fitted_feature_count():
    km = KMeans(2, device="cpu").fit(torch.rand(10, 3))
    with pytest.raises(ParameterError, match="x has 2 features, but KMeans is expecting 3"):
        km.predict(torch.rand(4, 2))


def test_kmeans_plusplus_checks_its_arguments():
    x = torch.rand(10, 2)
    with pytest.raises(TypeError, match="generator"):
        kmeans_plusplus(x, 3, 0)
    with pytest.raises(ParameterError, match="n_clusters"):
        kmeans_plusplus(x, 11, None)
    with pytest.raises(TypeError, match="x must be"):
        kmeans_plusplus(x.numpy(), 3, None)
