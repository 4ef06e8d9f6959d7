"""Classifiers (infoclust.classifiers): the small CNN, its training, the random classifier."""

import pytest
import torch

from infoclust.classifiers import (
    SmallCNN,
    accuracy,
    predict,
    random_classifier,
    train_classifier,
    train_small_cnn,
)
from infoclust.data import load_dataset
from infoclust.utils import ParameterError, TrainingDivergedError


@pytest.mark.parametrize("size, channels, classes", [(28, 1, 10), (8, 1, 3), (32, 3, 50)])
def test_small_cnn_shapes(size, channels, classes):
    out = SmallCNN(channels, classes)(torch.rand(4, channels, size, size))
    assert out.shape == (4, classes)


def test_small_cnn_rejects_bad_sizes():
    with pytest.raises(ParameterError, match="n_classes"):
        SmallCNN(1, 1)
    with pytest.raises(ParameterError, match="in_channels"):
        SmallCNN(0, 10)


def test_training_learns_digits_and_is_reproducible():
    x, y = load_dataset("digits")
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x_tr, y_tr, x_te, y_te = x[perm[:1400]], y[perm[:1400]], x[perm[1400:]], y[perm[1400:]]
    torch.manual_seed(0)
    a = train_classifier(
        SmallCNN(1, 10, width=8),
        x_tr,
        y_tr,
        epochs=6,
        max_shift=0,
        device="cpu",
        generator=torch.Generator().manual_seed(1),
        verbose=False,
    )
    torch.manual_seed(0)
    b = train_classifier(
        SmallCNN(1, 10, width=8),
        x_tr,
        y_tr,
        epochs=6,
        max_shift=0,
        device="cpu",
        generator=torch.Generator().manual_seed(1),
        verbose=False,
    )
    assert not a.training
    assert accuracy(a, x_te, y_te) > 0.9
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_training_rejects_bad_parameters():
    x, y = torch.rand(8, 1, 8, 8), torch.zeros(8, dtype=torch.long)
    with pytest.raises(ParameterError, match="epochs"):
        train_classifier(SmallCNN(), x, y, epochs=0)
    with pytest.raises(ParameterError, match="lr"):
        train_classifier(SmallCNN(), x, y, lr=0.0)
    with pytest.raises(ParameterError, match="y"):
        train_classifier(SmallCNN(), x, y[:4])


def test_accuracy_and_predict_on_a_fixed_model():
    class Brightness(torch.nn.Module):  # class 1 iff the mean pixel exceeds 0.5
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor(1.0))

        def forward(self, x):
            m = self.w * (x.mean((1, 2, 3)) - 0.5)
            return torch.stack([-m, m], 1)

    x = torch.cat([torch.zeros(3, 1, 4, 4), torch.ones(2, 1, 4, 4)])
    assert predict(Brightness(), x, batch_size=2).tolist() == [0, 0, 0, 1, 1]
    assert accuracy(Brightness(), x, torch.tensor([0, 0, 1, 1, 1])) == pytest.approx(0.8)


def test_random_classifier_is_frozen_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = random_classifier(1, 17, seed=5, device="cpu")
    after = torch.rand(1)
    assert torch.equal(before, after)
    b = random_classifier(1, 17, seed=5, device="cpu")
    c = random_classifier(1, 17, seed=6, device="cpu")
    assert not a.training
    assert all(not p.requires_grad for p in a.parameters())
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))
    # still differentiable with respect to its input (what the attacks need)
    x = torch.rand(3, 1, 28, 28, requires_grad=True)
    a(x).logsumexp(1).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert a(x).shape == (3, 17)


def test_inputs_are_converted_or_named():
    x, y = load_dataset("digits", n=64, seed=0)
    a = train_classifier(
        _seeded_cnn(),
        x.double().numpy(),
        y.numpy(),
        epochs=1,
        device="cpu",
        verbose=False,
        generator=torch.Generator().manual_seed(0),
    )
    b = train_classifier(
        _seeded_cnn(), x, y, epochs=1, device="cpu", verbose=False, generator=torch.Generator().manual_seed(0)
    )
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert torch.equal(predict(a, x.numpy()), predict(a, x))
    with pytest.raises(TypeError, match="y has dtype torch.float32"):
        train_classifier(_seeded_cnn(), x, y.float(), epochs=1, verbose=False)
    with pytest.raises(TypeError, match="x has dtype torch.uint8"):
        train_classifier(_seeded_cnn(), (x * 255).to(torch.uint8), y, epochs=1, verbose=False)
    with pytest.raises(ParameterError, match="x is an empty batch"):
        predict(a, x[:0])
    with pytest.raises(ParameterError, match="y must have shape"):
        accuracy(a, x, y[:3])


def test_diverging_training_names_epoch_step_and_lr():
    x, y = load_dataset("digits", n=64, seed=0)
    model = _seeded_cnn()
    with torch.no_grad():
        model.head[-1].weight.fill_(float("inf"))
    with pytest.raises(TrainingDivergedError, match=r"diverged.*epoch 1, step 1; lower lr"):
        train_classifier(model, x, y, epochs=1, device="cpu", verbose=False)


def test_train_small_cnn_is_chapter_six_recipe_and_leaves_the_global_rng_alone(one_thread):
    x, y = load_dataset("digits", n=40, seed=0)
    torch.manual_seed(7)
    state = torch.get_rng_state()
    x_tr, y_tr, x_te, y_te = x[:32], y[:32], x[32:], y[32:]
    model, acc = train_small_cnn(x_tr, y_tr, x_te, y_te, seed=3, epochs=1, device="cpu", verbose=False)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(3)  # what chapter 6 wrote by hand before the helper
    ref = train_classifier(
        SmallCNN(1, int(y.max()) + 1),
        x_tr,
        y_tr,
        epochs=1,
        device="cpu",
        generator=torch.Generator().manual_seed(3),
        verbose=False,
    )
    assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), ref.state_dict().values()))
    assert acc == accuracy(ref, x_te, y_te)
    other, _ = train_small_cnn(x_tr, y_tr, x_te, y_te, seed=4, epochs=1, device="cpu", verbose=False)
    assert not torch.equal(other.head[-1].weight, model.head[-1].weight)


def test_train_small_cnn_names_its_bad_inputs():
    x, y = torch.rand(8, 1, 8, 8), torch.zeros(8, dtype=torch.long)
    with pytest.raises(ParameterError, match="every label is 0"):
        train_small_cnn(x[:6], y[:6], x[6:], y[6:], seed=0, verbose=False)
    with pytest.raises(ParameterError, match="y_test"):
        train_small_cnn(x[:6], y[:6], x[6:], y[:3], seed=0, verbose=False)
    with pytest.raises(ParameterError, match="seed"):
        train_small_cnn(x[:6], y[:6], x[6:], y[6:], seed=-1, verbose=False)


def _seeded_cnn():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return SmallCNN(1, 10, width=4)
