"""Deep InfoMax (infoclust.dim): critic shapes, the adversarial prior, and a short training run."""

import copy

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from torch.nn import functional as F

from infoclust import load_dataset
from infoclust.dim import PRESETS, DeepInfoMax, Encoder, GlobalCritic, LocalCritic, linear_probe
from infoclust.utils import ParameterError, TrainingDivergedError

SMALL = {"widths": (8, 16, 32), "code_dim": 16, "critic_dim": 32, "device": "cpu", "verbose": False}


@pytest.fixture(scope="module")
def digits():
    x, y = load_dataset("digits")
    return x[:512], y[:512]


def test_encoder_and_critic_shapes():
    enc = Encoder(1, 28, (8, 16, 32), hidden=64, code_dim=64)
    y, c = enc(torch.rand(5, 1, 28, 28))
    assert y.shape == (5, 64)
    assert c.shape == (5, 16, 7, 7) and (enc.map_channels, enc.map_size) == (16, 7)
    assert GlobalCritic(16 * 49, 64, 32)(c, y).shape == (5, 5)
    for form in ("dot", "concat"):
        scores = LocalCritic(16, 64, 32, form)(c, y)
        assert scores.shape == (5, 5, 49)


@pytest.mark.parametrize("form", ["dot", "concat"])
def test_local_critic_scores_each_pair_on_its_own(form):
    """Entry [i, j, l] depends on image i's location l and code j only (not on the batch)."""
    torch.manual_seed(0)
    critic = LocalCritic(6, 4, 16, form)
    c, y = torch.randn(3, 6, 2, 2), torch.randn(3, 4)
    full = critic(c, y)
    single = critic(c[2:3], y[0:1])  # image 2 against code 0
    assert torch.allclose(full[2, 0], single[0, 0], atol=1e-5)
    g = GlobalCritic(24, 4, 16)
    assert torch.allclose(g(c, y)[1, 2], g(c[1:2], y[2:3])[0, 0], atol=1e-5)


def _prior_term(model, v, y):
    """E_V[log D(v)] + E[log(1 - D(sigmoid(y)))] with fixed prior draws v."""
    d = model.prior_.discriminator
    with torch.no_grad():
        return float(-F.softplus(-d(v)).mean() - F.softplus(d(torch.sigmoid(y))).mean())


def test_discriminator_and_encoder_move_in_opposite_directions(digits):
    """The prior term is a game: the discriminator's step raises it, the encoder's step lowers it.

    A summed loss stepped by both optimisers (the shortcut of several re-implementations)
    would lower it in both steps and fail here.
    """
    x = digits[0][:256]
    model = DeepInfoMax(alpha=0.0, beta=0.0, gamma=1.0, lr=1e-2, seed=0, **SMALL)
    model._prepare(x)
    v = torch.rand(256, 16, generator=torch.Generator().manual_seed(5))

    def codes():
        with torch.no_grad():
            return model.encoder_(x)[0]

    for _ in range(3):
        enc_before = copy.deepcopy(model.encoder_.state_dict())
        before = _prior_term(model, v, codes())
        model.prior_step(x)
        after_d = _prior_term(model, v, codes())
        assert after_d > before, "the discriminator must ascend the prior term"
        assert all(
            torch.equal(enc_before[k], t)
            for k, t in model.encoder_.state_dict().items()
            if "running" not in k and "num_batches" not in k
        ), "prior_step moved the encoder"

        disc_before = copy.deepcopy(model.prior_.discriminator.state_dict())
        model.encoder_step(x)
        after_e = _prior_term(model, v, codes())
        assert after_e < after_d, "the encoder must descend the prior term"
        disc_after = model.prior_.discriminator.state_dict()
        assert all(torch.equal(disc_before[k], t) for k, t in disc_after.items()), (
            "encoder_step moved the discriminator"
        )


def test_training_increases_jsd_estimate(digits):
    x, _ = digits
    model = DeepInfoMax(**PRESETS["DIM(L)"], estimator="jsd", epochs=6, batch_size=32, lr=1e-3, **SMALL).fit(
        x, callback=lambda m, epoch: epoch
    )
    assert [h["callback"] for h in model.history_] == [1, 2, 3, 4, 5, 6]
    assert [h["epoch"] for h in model.history_] == [1, 2, 3, 4, 5, 6]
    local = [h["local_mi"] for h in model.history_]
    assert np.isnan([h["global_mi"] for h in model.history_]).all()
    assert local[-1] > local[0] + 0.1
    assert np.isfinite([h["prior"] for h in model.history_]).all()
    seconds = [h["seconds"] for h in model.history_]  # cumulative
    assert seconds == sorted(seconds) and model.train_seconds_ == seconds[-1]
    y, c = model.encode(x)
    assert y.shape == (512, 16) and c.shape == (512, 16, 2, 2)
    assert model.transform(x[:7]).shape == (7, 16)


def test_global_objective_trains(digits):
    x, _ = digits
    model = DeepInfoMax(**PRESETS["DIM(G)"], estimator="nce", epochs=4, batch_size=32, lr=1e-3, **SMALL).fit(
        x
    )
    g = [h["global_mi"] for h in model.history_]
    assert g[-1] > g[0] and g[-1] <= np.log(32) + 1e-5


def test_seed_makes_runs_reproducible(digits):
    x = digits[0][:128]
    kw = dict(epochs=1, batch_size=32, lr=1e-3, seed=3, **SMALL)
    a = DeepInfoMax(**kw).fit_transform(x)
    b = DeepInfoMax(**kw).fit_transform(x)
    assert np.array_equal(a, b)


def test_bad_parameters_raise(digits):
    x = digits[0][:64]
    for kwargs, name in [
        ({"alpha": -1.0}, "alpha"),
        ({"estimator": "mine"}, "estimator"),
        ({"local_critic": "bilinear"}, "local_critic"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 1}, "batch_size"),
        ({"alpha": 0.0, "beta": 0.0, "gamma": 0.0}, "alpha"),
    ]:
        with pytest.raises(ParameterError, match=name):
            DeepInfoMax(**{**SMALL, **kwargs}).fit(x)
    with pytest.raises(ParameterError, match="x must"):
        DeepInfoMax(**SMALL).fit(torch.rand(4, 8, 8))
    with pytest.raises(NotFittedError):
        DeepInfoMax(**SMALL).encode(x)


def test_linear_probe():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(400) % 4
    separable = F.one_hot(labels, 4).float() * 5 + 0.1 * torch.randn(400, 4, generator=g)
    noise = torch.randn(400, 4, generator=g)
    assert linear_probe(separable, labels) == 1.0
    assert linear_probe(noise, labels) < 0.5


def test_images_too_small_for_the_encoder_are_named(digits):
    with pytest.raises(ParameterError, match=r"x images are 4 x 4 pixels; at least 8 x 8"):
        DeepInfoMax(**SMALL).fit(digits[0][:64, :, :4, :4])


def test_transform_needs_the_training_image_shape(digits):
    x = digits[0][:64]
    model = DeepInfoMax(epochs=1, batch_size=32, **SMALL).fit(x)
    with pytest.raises(ParameterError, match=r"x has images of shape \(1, 12, 12\), but this DeepInfoMax"):
        model.transform(torch.rand(4, 1, 12, 12))
    with pytest.raises(ParameterError, match="x has 3 channels, expected 1"):
        model.transform(torch.rand(4, 3, 8, 8))
    with pytest.raises(ParameterError, match="x has 3 channels"):
        model.partial_fit(torch.rand(4, 3, 8, 8))
    np.testing.assert_array_equal(model.transform(x.numpy().astype(np.float64)), model.transform(x))


def test_awkward_but_valid_images_train_alike(digits):
    x = digits[0][:64]
    kw = dict(epochs=1, batch_size=32, **SMALL)
    ref = DeepInfoMax(**kw).fit_transform(x)
    for other in (x.numpy().astype(np.float64), x.transpose(-1, -2).contiguous().transpose(-1, -2)):
        np.testing.assert_array_equal(DeepInfoMax(**kw).fit(other).transform(x), ref)


def test_prior_step_without_codes_asks_for_a_batch():
    with pytest.raises(ParameterError, match="x=None"):
        DeepInfoMax(**SMALL).prior_step()


def test_diverging_training_names_epoch_step_and_lr(digits):
    with pytest.raises(
        TrainingDivergedError,
        match=r"DeepInfoMax training diverged.*epoch 1, step \d+; lower lr \(now 1000000.0\)",
    ):
        DeepInfoMax(epochs=2, batch_size=32, lr=1e6, **SMALL).fit(digits[0][:128])


def test_linear_probe_checks_its_inputs():
    labels = torch.arange(40) % 4
    with pytest.raises(TypeError, match="labels has dtype"):
        linear_probe(torch.rand(40, 3), labels.float())
    with pytest.raises(ParameterError, match="features contains NaN"):
        linear_probe(torch.full((40, 3), float("nan")), labels)
    with pytest.raises(ParameterError, match="seed"):
        linear_probe(torch.rand(40, 3), labels, seed=None)


def test_a_batch_needs_two_images(digits):
    with pytest.raises(ParameterError, match="x needs at least 2 images"):
        DeepInfoMax(**SMALL).partial_fit(digits[0][:1])
