"""Tests of the IIC objective, network and estimator (infoclust.iic)."""

import math

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.metrics import mutual_info_score

from infoclust.augment import MNISTTransform
from infoclust.data import load_dataset
from infoclust.iic import (
    IIC,
    ClusterNet,
    _ChannelsLastGrad,
    information,
    iic_loss,
    joint_counts,
    joint_distribution,
    loss_from_counts,
    lowest_loss_subhead,
    preset,
)
from infoclust.utils import ParameterError, TrainingDivergedError

TINY = ((8, 16), 3)  # a trunk small enough for unit tests


def _softmax(n, k, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.softmax(3 * torch.randn(n, k, generator=gen, dtype=torch.float64), 1)


def _mi_numpy(z, z_tf):
    """-I(z; z') computed independently, in NumPy, from the definition."""
    z, z_tf = z.detach().numpy(), z_tf.detach().numpy()
    p = sum(np.outer(a, b) for a, b in zip(z, z_tf))
    p = (p + p.T) / 2
    p /= p.sum()
    pi, pj = p.sum(1), p.sum(0)
    return float(np.sum(p * np.log(p / np.outer(pi, pj))))


@pytest.mark.parametrize("k, seed", [(2, 0), (5, 1), (10, 2)])
def test_loss_is_minus_mutual_information(k, seed):
    z, z_tf = _softmax(64, k, seed), _softmax(64, k, seed + 100)
    assert iic_loss(z, z_tf).item() == pytest.approx(-_mi_numpy(z, z_tf), abs=1e-6)


def test_information_matches_sklearn_on_a_handmade_joint():
    counts = np.array([[30, 2, 1], [2, 20, 5], [1, 5, 34]])
    info = information(counts)
    assert info["mi"] == pytest.approx(mutual_info_score(None, None, contingency=counts), abs=1e-12)
    p = counts / counts.sum()
    h_z = -np.sum(p.sum(1) * np.log(p.sum(1)))
    assert info["h_z"] == pytest.approx(h_z)
    assert info["mi"] == pytest.approx(info["h_z"] - info["h_z_given_z"])


def test_degenerate_joint_scores_zero_and_balanced_one_scores_ln_k():
    k, n = 6, 60
    one = torch.zeros(n, k, dtype=torch.float64)
    one[:, 0] = 1
    assert iic_loss(one, one).item() == pytest.approx(0.0, abs=1e-9)
    assert information(joint_distribution(one, one))["mi"] == pytest.approx(0.0, abs=1e-12)
    bal = torch.nn.functional.one_hot(torch.arange(n) % k, k).double()
    assert iic_loss(bal, bal).item() == pytest.approx(-math.log(k), abs=1e-9)
    info = information(joint_distribution(bal, bal))
    assert info["mi"] == pytest.approx(math.log(k))
    assert info["h_z_given_z"] == pytest.approx(0.0, abs=1e-12)


def test_loss_never_below_minus_ln_k():
    k = 4
    for seed in range(5):
        assert iic_loss(_softmax(32, k, seed), _softmax(32, k, seed + 7)).item() >= -math.log(k) - 1e-9


def test_loss_is_invariant_to_relabelling():
    z, z_tf = _softmax(50, 7, 3), _softmax(50, 7, 4)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(0))
    assert iic_loss(z[:, perm], z_tf[:, perm]).item() == pytest.approx(iic_loss(z, z_tf).item(), abs=1e-12)


def test_lamb_weighs_the_marginal_entropies():
    z, z_tf = _softmax(40, 5, 5), _softmax(40, 5, 6)
    p = joint_distribution(z, z_tf)
    h_i = -(p.sum(1) * p.sum(1).log()).sum().item()
    h_j = -(p.sum(0) * p.sum(0).log()).sum().item()
    diff = iic_loss(z, z_tf, lamb=2.0).item() - iic_loss(z, z_tf).item()
    assert diff == pytest.approx(-(h_i + h_j), abs=1e-9)


def test_empty_clusters_give_finite_loss_and_gradients():
    logits = torch.randn(30, 5)
    logits[:, 3:] = -1e4  # clusters 3 and 4 get probability exactly 0
    logits.requires_grad_(True)
    z = torch.softmax(logits, 1)
    assert (z[:, 3:] == 0).all()
    loss = iic_loss(z, z.roll(1, 0))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_clusternet_shapes():
    net = ClusterNet(1, 12, n_clusters=4, n_overclusters=9, n_subheads=3, trunk=TINY)
    x = torch.rand(5, 1, 12, 12)
    assert net(x).shape == (3, 5, 4) and net(x, "over").shape == (3, 5, 9)
    torch.testing.assert_close(net(x).sum(2), torch.ones(3, 5))
    assert "over" not in ClusterNet(1, 12, n_clusters=4, n_overclusters=None, trunk=TINY).heads


def test_clusternet_fast_paths_match_the_plain_layers():
    """Pooling before the ReLU is bit-identical to after; the stacked sub-heads and features()
    agree with one layer (and one trunk call) at a time, batch norm per batch included."""
    torch.manual_seed(0)
    net = ClusterNet(1, 12, n_clusters=4, n_overclusters=9, n_subheads=3, trunk="small")
    a, b = torch.rand(5, 1, 12, 12), torch.rand(7, 1, 12, 12)
    layers = list(net.trunk)
    for i in [i for i, layer in enumerate(layers) if isinstance(layer, torch.nn.MaxPool2d)]:
        layers[i], layers[i + 1] = layers[i + 1], layers[i]  # each pool is followed by its ReLU
    plain = torch.nn.Sequential(*layers)  # conv, BN, ReLU, pool: the order of the paper
    assert torch.equal(net.trunk(a), plain(a))
    h = net.trunk(a)
    for head in ("main", "over"):
        one_by_one = torch.stack([torch.softmax(lin(h), 1) for lin in net.heads[head]])
        torch.testing.assert_close(net.cluster(h, head), one_by_one)
    torch.testing.assert_close(net.features(a, b), torch.cat([net.trunk(a), net.trunk(b)]))
    with pytest.raises(AssertionError):  # one batch-norm batch for both would differ
        torch.testing.assert_close(net.features(a, b), net.trunk(torch.cat([a, b])))


def test_features_hand_back_channels_last_gradients_bit_identical(monkeypatch):
    """The flattening of a channels-last trunk returns its gradient channels-last, unchanged."""
    h = torch.rand(2, 4, 4, 3).permute(0, 3, 1, 2).requires_grad_()  # a channels-last map
    seen = []
    h.register_hook(seen.append)  # the gradient as it arrives
    out = _ChannelsLastGrad.apply(h)
    assert torch.equal(out, h)
    (out.flatten(1) * torch.arange(48.0)).sum().backward()
    assert seen[0].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(seen[0], torch.arange(48.0).view(1, 3, 4, 4).expand(2, -1, -1, -1))
    torch.manual_seed(0)
    net = ClusterNet(1, 12, n_clusters=4, n_overclusters=None, n_subheads=2, trunk=TINY)
    net = net.to(memory_format=torch.channels_last)
    a, b = torch.rand(3, 1, 12, 12), torch.rand(6, 1, 12, 12)
    grads = []
    for fast in (True, False):
        if not fast:  # the gradient as the flattening returns it: channel-major
            monkeypatch.setattr(_ChannelsLastGrad, "apply", lambda h: h)
        net.zero_grad()
        net.cluster(net.features(a, b)).square().sum().backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    assert all(torch.equal(g, g_plain) for g, g_plain in zip(*grads))


@pytest.fixture(scope="module")
def digits():
    x, y = load_dataset("digits", n=600, seed=0)
    return x, y


def _fit(x, y=None, **kw):
    args = dict(
        n_clusters=10,
        n_overclusters=20,
        n_subheads=2,
        trunk=TINY,
        epochs=2,
        batch_size=100,
        repeats=2,
        lr=3e-3,
        verbose=False,
    )
    return IIC(**{**args, **kw}).fit(x, y)


def test_training_raises_mutual_information(digits):
    x, y = digits
    gentle = MNISTTransform(max_angle=10, scales=(0.9, 1.0, 1.1), extent=1.1)  # 8 px digits
    m = _fit(x, y, epochs=6, n_overclusters=None, lr=5e-3, g=gentle)
    start, end = -min(m.history_[0]["loss"]), -min(m.history_[-1]["loss"])
    assert start < 0.05 and end > 0.5  # nats; ln 10 = 2.30
    assert m.labels_.shape == (len(x),) and len(m.history_) == 7
    assert m.best_subhead_ == int(np.argmin(m.history_[-1]["loss"]))
    np.testing.assert_allclose(m.history_[-1]["mi"], -np.asarray(m.history_[-1]["loss"]), atol=1e-5)
    np.testing.assert_array_equal(m.predict(x), m.labels_)
    assert max(m.history_[-1]["acc"]) > max(m.history_[0]["acc"]) + 0.1


def test_equal_seeds_give_equal_results_on_cpu(digits):
    x, _ = digits
    a, b = _fit(x, epochs=1, device="cpu"), _fit(x, epochs=1, device="cpu")
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert a.history_[-1]["loss"] == b.history_[-1]["loss"]
    assert _fit(x, epochs=1, device="cpu", seed=1).history_[-1]["loss"] != a.history_[-1]["loss"]


def test_overclustering_head_is_trained(digits):
    x, _ = digits
    frozen = _fit(x, epochs=1, over_passes=0).net_.heads["over"][0].weight
    trained = _fit(x, epochs=1, over_passes=1).net_.heads["over"][0].weight
    assert not torch.equal(frozen, trained)
    m = _fit(x, epochs=1)
    assert m.predict(x, head="over").max() < 20 and m.predict_proba(x, "over", 1).shape == (len(x), 20)


def test_custom_g_is_used(digits):
    x, _ = digits
    calls = []

    def g(batch):
        calls.append(batch.shape[0])
        return batch.flip(3)

    _fit(x, epochs=1, g=g, n_overclusters=None)
    assert 200 in calls  # batch_size * repeats: every pair gets its own g


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_clusters": 1}, "n_clusters"),
        ({"n_overclusters": 1}, "n_overclusters"),
        ({"n_subheads": 0}, "n_subheads"),
        ({"trunk": "resnet"}, "trunk"),
        ({"epochs": None}, "epochs"),
        ({"repeats": 0}, "repeats"),
        ({"lr": 0}, "lr"),
        ({"lamb": -1}, "lamb"),
        ({"batch_size": 10_000}, "batch_size"),
        ({"g": 3}, "g"),
        ({"device": "nope"}, "device"),
    ],
)
def test_bad_parameters_are_named(digits, kwargs, name):
    with pytest.raises(ParameterError, match=name):
        _fit(digits[0], **kwargs)


def test_bad_inputs_raise(digits):
    x, y = digits
    bad = x.clone()
    bad[3, 0, 2, 2] = float("nan")
    with pytest.raises(ParameterError, match="x contains NaN"):
        _fit(bad)
    with pytest.raises(ParameterError, match="same shape"):
        _fit(x, g=lambda b: b[:, :, 1:, 1:])
    with pytest.raises(ParameterError, match="same shape"):
        _fit(x, g=lambda b: b.cpu().numpy())
    with pytest.raises(ParameterError, match="y must have shape"):
        _fit(x, y[:10])
    with pytest.raises(ParameterError, match=r"g must map a batch .* same shape, dtype and device"):
        _fit(x, g=lambda b: b.double())
    with pytest.raises(NotFittedError):
        IIC().predict(x)


def test_bf16_autocast_trains_and_scores(digits):
    """amp=True (on CUDA by default) on the CPU: bfloat16 forward passes, float32 joints.

    The GPU check found the full-data joints left in bfloat16, which numpy cannot take.
    """
    x, y = digits
    model = _fit(x, y, amp=True, epochs=1)
    assert model.history_[-1]["joint"].dtype == np.float32
    assert np.isfinite(model.history_[-1]["train_loss"])
    assert model.predict_proba(x).dtype == np.float32


def test_counts_add_up_over_batches_and_give_the_loss():
    """joint_counts is a sum over samples: the counts of two halves add up to those of the whole."""
    z, z_tf = _softmax(40, 6, 7).float(), _softmax(40, 6, 8).float()
    whole = joint_counts(z, z_tf)
    torch.testing.assert_close(joint_counts(z[:15], z_tf[:15]) + joint_counts(z[15:], z_tf[15:]), whole)
    assert loss_from_counts(whole, 1.3).item() == pytest.approx(iic_loss(z, z_tf, 1.3).item(), abs=1e-6)
    stacked = joint_counts(torch.stack([z, z_tf]), torch.stack([z_tf, z]))  # two sub-heads at once
    assert stacked.shape == (2, 6, 6)
    torch.testing.assert_close(loss_from_counts(stacked), torch.stack([iic_loss(z, z_tf), iic_loss(z_tf, z)]))


def test_lowest_loss_subhead():
    assert lowest_loss_subhead([0.3, -1.2, -0.5]) == 1
    with pytest.raises(ParameterError, match="losses"):
        lowest_loss_subhead([])


def test_history_records_the_chosen_subhead_and_eval_every(digits):
    x, y = digits
    m = _fit(x, y, epochs=3, eval_every=2)
    assert [h["epoch"] for h in m.history_] == [0, 2, 3]  # the last epoch is always scored
    for h in m.history_:
        assert h["subhead"] == lowest_loss_subhead(h["loss"])
        assert h["subhead_over"] == lowest_loss_subhead(h["loss_over"])
    assert m.best_subhead_ == m.history_[-1]["subhead"]
    assert m.history_[1]["pairs"] == 2 * 3 * 6 * 100 * 2  # epochs x passes x batches x pairs per batch


def test_images_too_small_for_the_trunk_are_named():
    x = torch.rand(120, 1, 3, 3)
    with pytest.raises(ParameterError, match=r"x images are 3 x 3 pixels; at least 4 x 4"):
        _fit(x, trunk="small")
    with pytest.raises(ParameterError, match=r"at least 8 x 8"):
        _fit(torch.rand(120, 1, 6, 6), trunk="vgg")


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (lambda x: x[:0], ParameterError, "x is an empty batch"),
        (lambda x: x[:, 0], ParameterError, r"x must have shape \(N, C, H, W\)"),
        (lambda x: (x * 255).to(torch.uint8), TypeError, "x has dtype torch.uint8"),
        (lambda x: x[..., :7], ParameterError, "x must be square"),
    ],
)
def test_bad_images_are_named(digits, bad, error, match):
    with pytest.raises(error, match=match):
        _fit(bad(digits[0]))


def test_awkward_but_valid_images_train_alike(digits):
    x = digits[0][:200]
    ref = _fit(x, epochs=1).history_[-1]["loss"]
    noncontig = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    for other in (x.numpy().astype(np.float64), noncontig, x.double()):
        assert _fit(other, epochs=1).history_[-1]["loss"] == ref


def test_predict_needs_the_training_image_shape(digits):
    x, y = digits
    m = _fit(x, epochs=1)
    with pytest.raises(
        ParameterError,
        match=r"x has images of shape \(1, 12, 12\), but this IIC was fitted "
        r"on \(1, 8, 8\)",
    ):
        m.predict(torch.rand(4, 1, 12, 12))
    with pytest.raises(ParameterError, match="x has 3 channels, expected 1"):
        m.predict(torch.rand(4, 3, 8, 8))
    np.testing.assert_array_equal(m.predict(x.numpy().astype(np.float16)), m.predict(x.half()))


def test_labels_are_checked(digits):
    x, y = digits
    with pytest.raises(TypeError, match="y has dtype torch.float32"):
        _fit(x, y.float())


def test_diverging_training_names_epoch_step_and_setting(digits):
    x, _ = digits
    with pytest.raises(TrainingDivergedError, match=r"IIC training diverged.*epoch 1, step 1.*lower lr"):
        _fit(x, g=lambda b: b * float("nan") if len(b) == 200 else b)  # NaN in training batches only
    with pytest.raises(ParameterError, match=r"g\(x\) contains NaN"):
        _fit(x, g=lambda b: b * float("nan"))  # caught by the scoring before training


def test_presets_are_the_recipes_of_the_chapters():
    from infoclust.iic import PRESETS, preset

    defaults = IIC().get_params()
    assert all(defaults[k] == v for k, v in PRESETS["paper"].items())  # the paper's recipe is the default
    cpu = preset("cpu", batch_size=64, lr=None, n_overclusters=None)
    assert cpu == {**PRESETS["cpu"], "batch_size": 64}  # None keeps the preset's value
    assert PRESETS["cpu"]["batch_size"] == 32  # the preset itself is not changed
    with pytest.raises(ParameterError, match="preset"):
        preset("gpu")
    with pytest.raises(ParameterError, match="not parameters of IIC"):
        preset("cpu", learning_rate=1e-3)


def test_sobel_input_is_the_grey_images_sobel_gradients():
    from scipy import ndimage

    from infoclust.iic import SobelInput

    x = torch.rand(3, 3, 10, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = SobelInput().double()(x)
    grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).numpy()
    dx = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
    for i in range(3):
        assert np.allclose(out[i, 0].numpy(), ndimage.correlate(grey[i], dx, mode="constant"))
        assert np.allclose(out[i, 1].numpy(), ndimage.correlate(grey[i], dx.T, mode="constant"))
    ramp = torch.arange(8.0).repeat(1, 1, 8, 1)  # brightness growing to the right, one channel
    d = SobelInput()(ramp)[0]
    assert torch.all(d[0, 1:-1, 1:-1] == -8) and torch.all(d[1, 1:-1, 1:-1] == 0)
    with pytest.raises(ParameterError, match="1 or 3 channels"):
        SobelInput()(torch.rand(1, 2, 8, 8))


def test_iic_with_the_sobel_input_trains_and_predicts_on_colour_images():
    x = torch.rand(64, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    model = IIC(
        4,
        n_overclusters=None,
        n_subheads=2,
        trunk="small",
        sobel=True,
        batch_size=32,
        repeats=2,
        epochs=1,
        verbose=False,
        g=lambda b: b.flip(-1),
    )
    model.fit(x)
    assert type(model.net_.trunk[0]).__name__ == "SobelInput"
    assert model.net_.trunk[1].in_channels == 2 and model.predict(x).shape == (64,)
    assert "sobel" in model.get_params() and preset("cifar")["sobel"] is True
    with pytest.raises(ParameterError, match="sobel=True takes images of 1 or 3 channels"):
        IIC(4, n_overclusters=None, trunk="small", sobel=True, batch_size=32, epochs=1, verbose=False).fit(
            torch.rand(64, 2, 12, 12)
        )
    with pytest.raises(ParameterError, match="sobel"):
        IIC(sobel="yes").fit(x)
