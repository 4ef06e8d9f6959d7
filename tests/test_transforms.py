import doctest
import importlib
import pickle
import sys
import types

import pytest
import torch

import infoclust as ic
from infoclust import transforms
from infoclust._random_net import LazyRandomClassifier, fold_small_cnn
from infoclust.classifiers import random_classifier
from infoclust.cluster import NamedG
from infoclust.iic import IIC
from infoclust.transforms import (
    ADefPerturbation,
    Compose,
    MNISTTransform,
    PerturbationPool,
    RandomDeformation,
    SinkhornPerturbation,
    Transform,
    W2Perturbation,
    compose,
    fingerprint,
    for_run,
)
from infoclust.utils import stream_seed


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


class Noise(Transform):
    """A cheap seeded g for the pool tests."""

    def __init__(self, scale: float = 0.1, *, seed: int = 0) -> None:
        self.scale = scale
        self._seed(seed)

    def _apply(self, x):
        return x + self.scale * torch.randn(x.shape, generator=self.generator)


def test_a_redrawing_pool_redraws_every_random_factor_per_seed():
    """Issue 24: paired seeds of a pooled attack use different random classifiers (not one draw for all)."""
    x, _ = ic.load_dataset("digits", n=12)
    attack = PerturbationPool(SinkhornPerturbation(0.5, seed=0), x, verbose=False, redraw=True)
    assert attack.copies is None and attack.seconds is None  # filled on first use, by the seed that uses it
    net_a, net_b = (for_run(attack, s).perturbation.random_classifier.model_for(x) for s in (0, 1))
    assert not torch.equal(net_a[0].weight, net_b[0].weight)
    with torch.no_grad():  # where IIC's training first calls its g: the attack still gets its gradients
        one_step = SinkhornPerturbation(0.5, max_iter=1, proj_iter=2)
        PerturbationPool(one_step, x[:2], verbose=False, redraw=True)(x[:2])
    pool = PerturbationPool(Noise(), x, n_copies=2, verbose=False, redraw=True)
    a, b, a_again = (for_run(pool, s) for s in (0, 1, 0))
    a(x[:3]), b(x[:3]), a_again(x[:3])
    assert not torch.equal(a.copies, b.copies)
    assert torch.equal(a.copies, a_again.copies)  # a function of the seed alone
    assert a.seconds > 0 and pool.copies is None  # the views filled their own copies, not the pool's
    shared = PerturbationPool(Noise(), x, n_copies=1, verbose=False)  # redraw=False: one draw for every seed
    assert for_run(shared, 0).copies is for_run(shared, 1).copies
    with pytest.raises(ic.ParameterError, match="redraw"):
        PerturbationPool(noisy(0.1), x, verbose=False, redraw=True)


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
    # the attacks' input gradients too (the folded network runs channels-last)
    grads = [torch.autograd.grad(m(x.requires_grad_(True))[:, 1].sum(), x)[0] for m in (folded, net)]
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


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


# --------------------------------------------------------------------------- the g contract

#: A tiny IIC for the tests that train with a g.
TINY = dict(
    n_clusters=3,
    n_overclusters=None,
    n_subheads=1,
    trunk=((4,), 3),
    batch_size=16,
    repeats=1,
    device="cpu",
    verbose=False,
)


def _every_g(x):
    """One of every g of the table, small enough for a test."""
    return [
        MNISTTransform(seed=1),
        RandomDeformation((0.5, 1.0), sigma=1.0, seed=1),
        SinkhornPerturbation(0.3, max_iter=1, proj_iter=2, seed=1),
        ADefPerturbation(max_iter=1, seed=1),
        W2Perturbation(0.3, 0.2, max_iter=1, redraw=True, seed=1),
        PerturbationPool(RandomDeformation(0.5), x, 2, seed=1, verbose=False),
        Compose(RandomDeformation(0.5), MNISTTransform()),
        NamedG("crop+deform", x.shape[-1], seed=1),
    ]


def test_the_table_lists_every_g_where_it_lives():
    for name, (module, _) in transforms.TABLE.items():
        cls = getattr(transforms, name)
        assert issubclass(cls, Transform) and cls.__module__ == module and name in transforms.__all__
        assert f"~{module}.{name}" in transforms.__doc__  # the docstring's table is made from it

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    in_library = {c.__name__ for c in subclasses(Transform) if c.__module__.startswith("infoclust.")}
    assert in_library <= set(transforms.TABLE), (
        f"a g without its row in TABLE: {in_library - set(transforms.TABLE)}"
    )
    with pytest.raises(AttributeError, match="NoSuchG"):
        transforms.NoSuchG  # noqa: B018


def test_every_g_keeps_the_contract():
    x = ic.load_dataset("digits", n=4)[0].clamp_min(1e-3)  # 8 px: quick for the attacks
    state = torch.get_rng_state()
    for g in _every_g(x):
        name = type(g).__name__
        a, b = g.with_seed(5), pickle.loads(pickle.dumps(g.with_seed(5)))  # workers receive g's pickled
        assert a is not g and a.generators().keys() == g.generators().keys()
        assert all(a.generators()[k] is not g.generators()[k] for k in a.generators()), name
        assert torch.equal(a(x), b(x)), name  # a seed decides every draw
        out = g.with_seed(5)(x.double())
        assert out.dtype == torch.float64 and out.shape == x.shape, name  # the input's dtype
        assert repr(g).startswith(f"{name}(") and " at 0x" not in repr(g), name
    assert torch.equal(torch.get_rng_state(), state)  # no g touches the global generator
    with pytest.raises(ic.ParameterError, match="x contains NaN"):
        MNISTTransform()(x * float("nan"))  # checked at the door, once
    with pytest.raises(ic.ParameterError, match="seed"):
        MNISTTransform().with_seed(-1)


def test_repr_follows_the_constructor():
    assert (
        repr(RandomDeformation(2.0, sigma=1.0, seed=3))
        == "RandomDeformation(magnitude=2.0, sigma=1.0, norm='max', integer=False, per_batch=False, "
        "unit=1.0, seed=3)"
    )
    assert repr(Compose(MNISTTransform(max_angle=10.0))).startswith("Compose(MNISTTransform(max_angle=10.0, ")
    x = ic.load_dataset("digits", n=20)[0]
    pool = PerturbationPool(RandomDeformation(0.5), x, 1, verbose=False)
    assert repr(pool).startswith("PerturbationPool(g=RandomDeformation(") and "n_copies=1" in repr(pool)


def test_compose_seeds_the_last_g_from_stream_one():
    paper, deform = MNISTTransform(), RandomDeformation(1.0)
    seeded = Compose(deform, paper).with_seed(4)
    assert [t.seed for t in seeded.transforms] == [stream_seed(4, 2), stream_seed(4, 1)]
    assert for_run(paper, 4).seed == stream_seed(4, 1)  # so a g alone draws as it does last in a chain
    assert for_run(Compose(paper), 4).transforms[0].seed == stream_seed(4, 1)
    assert paper.seed == deform.seed == 0  # copies: the originals are untouched
    plain = lambda b: b  # noqa: E731
    assert for_run(plain, 4) is plain and Compose(plain, paper).with_seed(1).transforms[0] is plain
    assert set(seeded.generators()) == {"0", "1"}


def test_iic_checkpoints_every_generator_of_a_composed_g(tmp_path):
    x, _ = ic.load_dataset("digits", n=64)
    kw = dict(TINY, g=Compose(RandomDeformation(0.5), MNISTTransform()), seed=2)
    whole = IIC(**kw, epochs=2).fit(x)
    assert set(whole._generators()) == {"order", "g.0", "g.1"}
    IIC(**kw, epochs=1, checkpoint=str(tmp_path / "iic.pt")).fit(x)
    resumed = IIC(**kw, epochs=2, checkpoint=str(tmp_path / "iic.pt")).fit(x, resume=True)
    assert [h["loss"] for h in resumed.history_] == [h["loss"] for h in whole.history_]


def test_the_worked_example_of_a_new_g_runs(monkeypatch):
    """The module docstring's example: a new g is one class, and one row makes it one of the table's."""
    (example,) = [t for t in doctest.DocTestFinder().find(transforms) if t.name == transforms.__name__]
    runner = doctest.DocTestRunner()
    result = runner.run(example, clear_globs=False)
    assert result.attempted >= 5 and result.failed == 0
    globs = example.globs
    shift = types.ModuleType("infoclust_example_shift")
    shift.RandomShift = globs["RandomShift"]
    shift.RandomShift.__module__ = shift.__name__
    monkeypatch.setitem(sys.modules, shift.__name__, shift)
    monkeypatch.setitem(transforms.TABLE, "RandomShift", (shift.__name__, "a random shift"))
    g = importlib.import_module("infoclust.transforms").RandomShift(1)
    x, y = ic.load_dataset("digits", n=64)
    model = IIC(**TINY, g=g, epochs=1, seed=6).fit(x, y)
    assert model.g_.seed == stream_seed(6, 1) and g.seed == 0  # IIC's seed decides its draws
