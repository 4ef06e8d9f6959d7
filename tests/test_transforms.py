import pytest
import torch

import infoclust as ic
from infoclust._random_net import LazyRandomClassifier, fold_small_cnn
from infoclust.classifiers import random_classifier
from infoclust.iic import IIC
from infoclust.transforms import (
    ADefPerturbation,
    PerturbationPool,
    SinkhornPerturbation,
    compose,
    fingerprint,
)


def noisy(scale):
    def g(x):
        return x + scale * torch.randn_like(x)

    return g


def test_pool_serves_copies_of_the_right_image():
    x, _ = ic.load_dataset("digits", n=300)
    calls = []

    def g(xb):
        calls.append(len(xb))
        return (
            xb + 1000.0 * torch.arange(1, len(xb) + 1).view(-1, 1, 1, 1) / 1000.0 + 0.01 * torch.rand_like(xb)
        )

    pool = PerturbationPool(g, x, n_copies=3, batch_size=64, verbose=False)
    assert pool.copies.shape == (3, 300, 1, 8, 8)
    assert sum(calls) == 900
    idx = torch.tensor([5, 17, 17, 299, 0])
    out = pool(x[idx])
    for row, o in zip(idx, out):
        assert any(torch.equal(o, pool.copies[c, row]) for c in range(3))


def test_pool_draws_different_copies():
    x, _ = ic.load_dataset("digits", n=50)
    pool = PerturbationPool(noisy(0.1), x, n_copies=4, verbose=False)
    outs = torch.stack([pool(x[:1]) for _ in range(40)])
    assert len({tuple(o.flatten()[:5].tolist()) for o in outs}) > 1


def test_pool_views_draw_by_their_own_seed():
    x, _ = ic.load_dataset("digits", n=50)
    pool = PerturbationPool(noisy(0.1), x, n_copies=4, verbose=False)
    first = pool.with_seed(3)(x)
    for _ in range(5):  # the pool itself and other views are used in between
        pool(x)
        pool.with_seed(4)(x)
    assert torch.equal(pool.with_seed(3)(x), first)
    assert not torch.equal(pool.with_seed(4)(x), first)
    assert pool.with_seed(3).copies is pool.copies  # copies are shared, not duplicated


def test_pool_rejects_unknown_images_and_duplicates():
    x, _ = ic.load_dataset("digits", n=50)
    pool = PerturbationPool(noisy(0.1), x, n_copies=1, verbose=False)
    with pytest.raises(ic.ParameterError, match="not in the pool"):
        pool(torch.rand(2, 1, 8, 8))
    with pytest.raises(ic.ParameterError, match="duplicate"):
        PerturbationPool(noisy(0.1), torch.cat([x[:3], x[:1]]), verbose=False)
    with pytest.raises(ic.ParameterError, match="shape"):
        PerturbationPool(lambda b: b[:, :, :4], x, verbose=False)
    with pytest.raises(ic.ParameterError, match="x has images of shape"):
        pool(torch.rand(2, 1, 4, 4))


def test_pool_checks_its_arguments():
    x, _ = ic.load_dataset("digits", n=20)
    with pytest.raises(TypeError, match="g must be a callable"):
        PerturbationPool("noise", x)
    bad = x.clone()
    bad[3, 0, 0, 0] = float("nan")
    with pytest.raises(ic.ParameterError, match="x contains NaN"):
        PerturbationPool(noisy(0.1), bad, verbose=False)
    for seed in (None, -1):
        with pytest.raises(ic.ParameterError, match="seed"):
            PerturbationPool(noisy(0.1), x, seed=seed, verbose=False)
    with pytest.raises(ic.ParameterError, match="verbose"):
        PerturbationPool(noisy(0.1), x, verbose="no")
    with pytest.raises(ic.ParameterError, match="n_copies"):
        PerturbationPool(noisy(0.1), x, n_copies=0, verbose=False)
    assert PerturbationPool(noisy(0.1), x.numpy(), n_copies=1, verbose=False).copies.shape == (1, 20, 1, 8, 8)


def test_fingerprint_is_exact_and_batch_independent():
    x, _ = ic.load_dataset("mnist5k", n=500)
    w = torch.randint(1, 1 << 20, (784,), generator=torch.Generator().manual_seed(0))
    full = fingerprint(x, w)
    assert torch.equal(full[100:150], fingerprint(x[100:150], w))
    assert full.unique().numel() == 500


def test_compose_order():
    f = compose(lambda x: x + 1, lambda x: x * 2)
    assert torch.equal(f(torch.ones(2)), torch.full((2,), 4.0))
    with pytest.raises(ic.ParameterError, match="transforms"):
        compose()
    with pytest.raises(TypeError, match="transforms"):
        compose(lambda x: x, 3)


def test_pool_works_as_iic_g():
    x, y = ic.load_dataset("digits", n=256)
    pool = PerturbationPool(noisy(0.05), x, n_copies=2, verbose=False)
    model = IIC(
        n_clusters=10,
        n_overclusters=None,
        n_subheads=1,
        trunk=((8, 16), 3),
        g=pool,
        epochs=1,
        batch_size=64,
        repeats=2,
        device="cpu",
        verbose=False,
    ).fit(x)
    assert len(model.labels_) == 256


def test_adversarial_transforms_keep_shape_and_move_images():
    from infoclust.wasserstein import w2_exact

    x, _ = ic.load_dataset("mnist5k", n=8)
    x = x.clamp_min(1e-3)  # no all-zero issue for W2 histograms
    state = torch.get_rng_state()
    for g in (
        SinkhornPerturbation(eps=0.5, max_iter=3, proj_iter=20),
        ADefPerturbation(max_iter=5, candidates=2),
    ):
        gx = g(x)
        assert gx.shape == x.shape and torch.isfinite(gx).all()
        assert (gx - x).abs().amax() > 1e-3
        assert g(x.double()).dtype == torch.float64
        assert g(x.repeat(1, 3, 1, 1)).shape == (8, 3, 28, 28)  # a random classifier for RGB
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is untouched
    gx = SinkhornPerturbation(eps=0.5, max_iter=3, proj_iter=50)(x)
    assert (w2_exact(x, gx) <= 0.5 * 1.1).all()


def test_adversarial_transforms_check_their_arguments():
    x, _ = ic.load_dataset("mnist5k", n=4)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("inf")
    for make in (SinkhornPerturbation, ADefPerturbation):
        with pytest.raises(ic.ParameterError, match="x contains NaN or infinite"):
            make()(bad)
        with pytest.raises(ic.ParameterError, match="x is an empty batch"):
            make()(x[:0])
        with pytest.raises(ic.ParameterError, match="n_random_classes"):
            make(n_random_classes=1)
        with pytest.raises(ic.ParameterError, match="max_iter"):
            make(max_iter=0)
        for seed in (None, -1, 2**32):
            with pytest.raises(ic.ParameterError, match="seed"):
                make(seed=seed)
    with pytest.raises(ic.ParameterError, match="candidates"):
        ADefPerturbation(candidates=10, n_random_classes=10)


@pytest.mark.parametrize("channels, size", [(1, 8), (1, 16), (3, 24), (1, 28)])
def test_folded_random_classifier_computes_the_same_logits(channels, size):
    net = random_classifier(channels, 7, seed=3, device="cpu")
    folded = fold_small_cnn(net, size, size)
    x = torch.rand(5, channels, size, size, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(folded(x), net(x), rtol=1e-4, atol=1e-6)
    assert not any(p.requires_grad for p in folded.parameters()) and not folded.training


def test_lazy_random_classifier_builds_per_shape_and_draw():
    lazy = LazyRandomClassifier(10, seed=5)
    x = torch.rand(2, 1, 16, 16)
    first = lazy.model_for(x)
    assert lazy.model_for(x) is first
    torch.testing.assert_close(
        first(x), random_classifier(1, 10, seed=5, device="cpu")(x), rtol=1e-4, atol=1e-6
    )
    torch.testing.assert_close(
        lazy.model_for(x, draw=2)(x), random_classifier(1, 10, seed=7, device="cpu")(x), rtol=1e-4, atol=1e-6
    )
    assert lazy.model_for(torch.rand(2, 1, 24, 24)) is not first
