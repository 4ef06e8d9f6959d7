import pytest
import torch

import infoclust as ic
from infoclust.iic import IIC
from infoclust.transforms import PerturbationPool, compose, fingerprint


def noisy(scale):
    def g(x):
        return x + scale * torch.randn_like(x)
    return g


def test_pool_serves_copies_of_the_right_image():
    x, _ = ic.load_dataset("digits", n=300)
    calls = []

    def g(xb):
        calls.append(len(xb))
        return xb + 1000.0 * torch.arange(1, len(xb) + 1).view(-1, 1, 1, 1) / 1000.0 + 0.01 * torch.rand_like(xb)
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


def test_fingerprint_is_exact_and_batch_independent():
    x, _ = ic.load_dataset("mnist5k", n=500)
    w = torch.randint(1, 1 << 20, (784,), generator=torch.Generator().manual_seed(0))
    full = fingerprint(x, w)
    assert torch.equal(full[100:150], fingerprint(x[100:150], w))
    assert full.unique().numel() == 500


def test_compose_order():
    f = compose(lambda x: x + 1, lambda x: x * 2)
    assert torch.equal(f(torch.ones(2)), torch.full((2,), 4.0))
    with pytest.raises(ic.ParameterError):
        compose()


def test_pool_works_as_iic_g():
    x, y = ic.load_dataset("digits", n=256)
    pool = PerturbationPool(noisy(0.05), x, n_copies=2, verbose=False)
    model = IIC(n_clusters=10, n_overclusters=None, n_subheads=1, trunk=((8, 16), 3), g=pool, epochs=1, batch_size=64,
                       repeats=2, device="cpu", verbose=False).fit(x)
    assert len(model.labels_) == 256


def test_adversarial_transforms_keep_shape_and_move_images():
    from infoclust.transforms import ADefPerturbation, SinkhornPerturbation
    from infoclust.wasserstein import w2_exact
    x, _ = ic.load_dataset("mnist5k", n=8)
    x = x.clamp_min(1e-3)  # no all-zero issue for W2 histograms
    for g in (SinkhornPerturbation(eps=0.5, n_iter=3, proj_iter=20), ADefPerturbation(max_iter=5)):
        gx = g(x)
        assert gx.shape == x.shape and torch.isfinite(gx).all()
        assert (gx - x).abs().amax() > 1e-3
    gx = SinkhornPerturbation(eps=0.5, n_iter=3, proj_iter=50)(x)
    assert (w2_exact(x, gx) <= 0.5 * 1.1).all()
