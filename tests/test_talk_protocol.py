"""The talk's protocol ("as the talk ran it", issue 21): its random linear classifier, its
Sinkhorn attack towards binary labels, its ADef settings and its random deformation; and the
book's defaults of the same g's, unchanged."""

import pytest
import torch
from torch import nn

import infoclust as ic
from infoclust._random_net import LazyRandomClassifier
from infoclust.adef import ADefPerturbation, adef
from infoclust.attacks import SinkhornPerturbation, wasserstein_pgd
from infoclust.classifiers import random_linear_classifier
from infoclust.deform import RandomDeformation, random_field, warp
from infoclust.transforms import PerturbationPool, for_run
from infoclust.utils import ParameterError, make_generator

pytestmark = pytest.mark.filterwarnings("ignore::infoclust.utils.ConvergenceWarning")

#: The talk's Sinkhorn settings, shortened (3 steps, radius grown every step) to stay fast.
TALK_SINKHORN = dict(
    eps_factor=1.4, eps_every=1, max_iter=3, proj_iter=5, classifier="linear", labels="binary"
)


@pytest.fixture(scope="module")
def digits():
    return ic.load_dataset("digits", n=60)[0]


def _changed(x, gx):
    return (gx != x).flatten(1).any(1)


def test_random_linear_classifier_is_one_frozen_linear_layer():
    state = torch.get_rng_state()
    net = random_linear_classifier((1, 8, 8), 10, seed=3, device="cpu")
    assert torch.equal(torch.get_rng_state(), state)  # the global random state is untouched
    linear = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert len(linear) == 1 and linear[0].in_features == 64 and linear[0].out_features == 10
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert not any(isinstance(m, nn.Conv2d) for m in net.modules())
    x = torch.rand(4, 1, 8, 8)
    zero = net(torch.zeros(1, 1, 8, 8))
    torch.testing.assert_close(net(2.5 * x) - zero, 2.5 * (net(x) - zero))  # affine
    same = random_linear_classifier(64, 10, seed=3, device="cpu")
    other = random_linear_classifier(64, 10, seed=4, device="cpu")
    assert torch.equal(same(x), net(x)) and not torch.equal(other(x), net(x))
    with pytest.raises(ParameterError, match="in_shape"):
        random_linear_classifier((1, 0, 8), 10)
    with pytest.raises(ParameterError, match="n_classes"):
        random_linear_classifier(64, 1)
    with pytest.raises(ParameterError, match="kind"):
        LazyRandomClassifier(10, 0, kind="mlp")


def test_binary_labels_step_only_the_images_predicted_as_their_label(digits):
    x = digits
    g = SinkhornPerturbation(0.05, n_random_classes=2, seed=1, **TALK_SINKHORN)
    labels = torch.randint(0, 2, (len(x),), generator=make_generator(1))  # the g's first draw
    predicted = g.random_classifier.model_for(x)(x).argmax(1)
    gx = g(x)
    changed, match = _changed(x, gx), predicted == labels
    assert torch.equal(gx[~match], x[~match])  # the others come back exactly as they were
    assert not changed[~match].any()
    assert 0 < changed.float().mean() <= match.float().mean() < 1
    assert not torch.equal(g(x), gx)  # a new draw of the labels at every call
    gx64 = SinkhornPerturbation(0.05, n_random_classes=2, seed=1, **TALK_SINKHORN)(x.double())
    assert gx64.dtype == torch.float64 and torch.equal(gx64[~match], x.double()[~match])


def test_own_labels_change_every_image(digits):
    g = SinkhornPerturbation(0.05, max_iter=3, proj_iter=5, classifier="linear", seed=1)
    assert _changed(digits, g(digits)).float().mean() >= 0.95


@pytest.mark.parametrize("classifier", ["cnn", "linear"])
def test_two_seeds_use_different_random_classifiers(digits, classifier):
    x = digits[:2]
    for g in (
        SinkhornPerturbation(classifier=classifier, labels="binary"),
        ADefPerturbation(classifier=classifier, sigma=0.0, overshoot=1.0, max_iter=50),
    ):
        nets = [g.with_seed(s).random_classifier.model_for(x) for s in (0, 1)]
        nets += [for_run(g, s).random_classifier.model_for(x) for s in (0, 1)]  # what IIC trains with
        pool = PerturbationPool(g, x, 1, redraw=True, verbose=False)  # filled on first use: not here
        nets += [for_run(pool, s).perturbation.random_classifier.model_for(x) for s in (0, 1)]
        weights = [torch.cat([p.flatten() for p in net.parameters()]) for net in nets]
        assert not torch.equal(weights[0], weights[1]) and not torch.equal(weights[2], weights[3])
        assert not torch.equal(weights[4], weights[5])
        again = g.with_seed(1).random_classifier.model_for(x)
        assert torch.equal(torch.cat([p.flatten() for p in again.parameters()]), weights[1])


def test_talk_adef_is_adef_on_the_linear_classifier(digits):
    x = digits[:10]
    g = ADefPerturbation(sigma=0.0, overshoot=1.0, max_iter=50, classifier="linear", seed=2)
    res = adef(g.random_classifier.model_for(x), x, sigma=0.0, overshoot=1.0, max_iter=50, candidates=1)
    assert torch.equal(g(x), res.images) and (res.t_norm > 0).all()


def _ramp(n, size=32):
    """Images whose two channels are each pixel's column and row (+100): a warp by a field
    whose samples stay inside returns the sample positions, so ``out - ramp`` is the field."""
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (torch.stack((cols, rows)).double() + 100.0).expand(n, -1, -1, -1).contiguous()


def _field_inside(g, n=3, size=32, margin=5):
    x = _ramp(n, size)
    inside = (slice(None), slice(None), slice(margin, size - margin), slice(margin, size - margin))
    return (g(x) - x)[inside]


def test_talk_deformation_one_integer_field_per_batch_within_magnitude():
    raw = _field_inside(RandomDeformation(4, integer=True, per_batch=True, seed=0))
    whole = raw.round()  # the sampling grid's float rounding is ~1e-13 px
    assert (raw - whole).abs().max() < 1e-9 and whole.abs().max() == 4  # integers, reaching 4
    assert torch.equal(raw[0], raw[1]) and torch.equal(raw[0], raw[2])  # one field for the batch
    assert len(whole.unique()) == 9  # every integer of [-4, 4] is drawn
    smooth = _field_inside(RandomDeformation(4, sigma=2.0, integer=True, per_batch=True, seed=0))
    assert torch.equal(smooth[0], smooth[2]) and 0 < smooth.abs().max() <= 4 + 1e-9
    assert (smooth - smooth.round()).abs().max() > 0.1
    each = _field_inside(RandomDeformation(4, sigma=2.0, integer=True, seed=0))
    assert not torch.equal(each[0], each[1])  # one field per image by default
    x = ic.load_dataset("digits", n=4)[0]
    twins = torch.cat([x[:1], x[:1], x[1:]])
    out = RandomDeformation(4, sigma=2.0, integer=True, per_batch=True, seed=5)(twins)
    assert torch.equal(out[0], out[1])
    scaled = _field_inside(RandomDeformation(4, integer=True, per_batch=True, unit=0.6, seed=0))
    assert torch.allclose(scaled, 0.6 * whole, atol=1e-9)  # the same integers, in steps of 0.6 px


def test_talk_deformation_bad_options():
    with pytest.raises(ParameterError, match="magnitude"):
        RandomDeformation(1.5, integer=True)
    with pytest.raises(ParameterError, match="magnitude"):
        RandomDeformation((1.0, 2.0), integer=True)
    with pytest.raises(ParameterError, match="norm"):
        RandomDeformation(2, norm="rms", integer=True)
    with pytest.raises(ParameterError, match="per_batch"):
        RandomDeformation(2, per_batch=1)
    with pytest.raises(ParameterError, match="unit"):
        RandomDeformation(2, unit=0.5)  # a unit needs integer steps
    with pytest.raises(ParameterError, match="unit"):
        RandomDeformation(2, integer=True, unit=0.0)


def test_talk_parameters_are_checked():
    for kwargs, name in [
        ({"classifier": "mlp"}, "classifier"),
        ({"labels": "random"}, "labels"),
        ({"eps_factor": 0.5}, "eps_factor"),
        ({"eps_every": 0}, "eps_every"),
    ]:
        with pytest.raises(ParameterError, match=name):
            SinkhornPerturbation(**kwargs)
    with pytest.raises(ParameterError, match="classifier"):
        ADefPerturbation(classifier="linear ")


def test_defaults_do_what_they_did_before(digits):
    """The book's defaults are the calls the g's made before the talk's options existed."""
    x = digits[:6]
    net = LazyRandomClassifier(10, 3).model_for(x)
    sk = wasserstein_pgd(
        net, x, eps0=0.5, eps_factor=1.0, kernel_size=5, max_iter=2, proj_iter=5, verbose=False
    )
    assert torch.equal(SinkhornPerturbation(max_iter=2, proj_iter=5, seed=3)(x), sk.images)
    ad = adef(net, x, sigma=0.5, overshoot=1.2, max_iter=3, candidates=1)
    assert torch.equal(ADefPerturbation(max_iter=3, seed=3)(x), ad.images)
    field = random_field(6, 8, 8, 2.0, 1.0, "max", make_generator(3), "cpu")
    assert torch.equal(RandomDeformation(2.0, 1.0, seed=3)(x), warp(x, field))
    gen = make_generator(3)
    mag = 0.5 + (2.0 - 0.5) * torch.rand(6, generator=gen)
    field = random_field(6, 8, 8, mag, 0.0, "rms", gen, "cpu")
    assert torch.equal(RandomDeformation((0.5, 2.0), 0.0, "rms", seed=3)(x), warp(x, field))
