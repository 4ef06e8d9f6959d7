"""The training base (infoclust._training): a new torch estimator writes only its mathematics.

``_LinearAutoencoder`` is the worked example of the base's contract: a linear autoencoder in
a few lines (build, one epoch, evaluate, state). The base gives it the checks, the shape
lock, the epoch loop, the history, checkpoints and a bit-identical resume.
"""

import numpy as np
import pytest
import torch
from sklearn.base import TransformerMixin, clone
from torch import nn
from torch.nn import functional as F

from infoclust import checkpoint as C
from infoclust._training import _TorchEstimator
from infoclust.utils import ParameterError, check_int, forked_global_rng


class _LinearAutoencoder(TransformerMixin, _TorchEstimator):
    """Images -> ``n_components`` numbers -> images, trained by Adam on the squared error."""

    _progress_name = "AE"

    def __init__(
        self,
        n_components=2,
        *,
        epochs=3,
        batch_size=16,
        lr=0.05,
        seed=0,
        device="cpu",
        verbose=False,
        checkpoint=None,
    ):
        self.n_components = n_components
        self.epochs, self.batch_size, self.lr, self.seed = epochs, batch_size, lr, seed
        self.device, self.verbose, self.checkpoint = device, verbose, checkpoint

    def _check_params(self):
        check_int("n_components", self.n_components, 1)
        self._check_training_params()

    def _build(self, x):
        self._order = torch.Generator().manual_seed(self.seed)
        with forked_global_rng(self.seed):
            d, k = x[0].numel(), self.n_components
            net = nn.Sequential(nn.Flatten(), nn.Linear(d, k), nn.Linear(k, d))
        self.net_ = net.to(self.device_)
        self._opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr)

    def _networks(self):
        return {"autoencoder": self.net_}

    def _generators(self):
        return {"order": self._order}

    def _train_epoch(self, x, epoch, progress):
        order = torch.randperm(len(x), generator=self._order)
        for b in range(len(x) // self.batch_size):
            xb = x[order[b * self.batch_size : (b + 1) * self.batch_size]]
            loss = F.mse_loss(self.net_(xb), xb.flatten(1))
            self._opt.zero_grad()
            loss.backward()
            self._opt.step()
        progress()

    @torch.no_grad()
    def _evaluate(self, x, y, epoch):
        return {"loss": F.mse_loss(self.net_(x), x.flatten(1)).item()}

    def _state(self):
        return {"net": self.net_.state_dict(), "optimizer": self._opt.state_dict()}

    def _load_state(self, state):
        self.net_.load_state_dict(state["net"])
        self._opt.load_state_dict(state["optimizer"])

    def fit(self, x, y=None, *, resume=False, callback=None):
        self._fit(x, y, resume=resume, callback=callback)
        return self

    @torch.no_grad()
    def transform(self, x):
        return self.net_[:2](self._check_x(x).to(self.device_)).cpu().numpy()


@pytest.fixture(scope="module")
def x():
    return torch.rand(64, 1, 6, 6, generator=torch.Generator().manual_seed(0))


def test_a_subclass_of_the_base_trains_and_records_one_history_shape(x):
    model = _LinearAutoencoder(epochs=3).fit(x, callback=lambda m, epoch: 10 * epoch)
    assert [h["epoch"] for h in model.history_] == [0, 1, 2, 3]  # epoch 0: before training
    assert model.history_[-1]["loss"] < model.history_[0]["loss"]
    seconds = [h["seconds"] for h in model.history_]
    assert seconds[0] == 0.0 and seconds == sorted(seconds) and model.train_seconds_ == seconds[-1]
    assert [h.get("callback") for h in model.history_] == [None, 10, 20, 30]
    assert model.transform(x).shape == (64, 2) and model.image_shape_ == (1, 6, 6)


def test_checkpoint_and_resume_equal_an_uninterrupted_run(x, tmp_path):
    whole = _LinearAutoencoder(epochs=3).fit(x)
    _LinearAutoencoder(epochs=2, checkpoint=str(tmp_path / "ae.pt")).fit(x)  # as if killed in epoch 3
    assert C.load_checkpoint(tmp_path / "ae.pt")["epoch"] == 2
    resumed = _LinearAutoencoder(epochs=3, checkpoint=str(tmp_path / "ae.pt")).fit(x, resume=True)
    for k, t in whole.net_.state_dict().items():
        assert torch.equal(t, resumed.net_.state_dict()[k]), k
    assert [h["loss"] for h in resumed.history_] == [h["loss"] for h in whole.history_]
    with pytest.raises(ParameterError, match="lr"):  # a checkpoint of other parameters
        _LinearAutoencoder(epochs=3, lr=0.1, checkpoint=str(tmp_path / "ae.pt")).fit(x, resume=True)


def test_the_base_checks_inputs_locks_the_shape_and_refits_from_scratch(x):
    model = _LinearAutoencoder(epochs=1)
    with pytest.raises(ParameterError, match="resume=True needs checkpoint"):
        model.fit(x, resume=True)
    with pytest.raises(ParameterError, match="epochs"):
        _LinearAutoencoder(epochs=0).fit(x)
    with pytest.raises(ParameterError, match="x"):
        model.fit(x[:, 0])  # not (N, C, H, W)
    first = model.fit(x).transform(x)
    with pytest.raises(ParameterError, match=r"fitted on \(1, 6, 6\)"):
        model.transform(torch.rand(4, 1, 5, 5))
    np.testing.assert_array_equal(model.fit(x).transform(x), first)
    np.testing.assert_array_equal(clone(model).fit(x).transform(x), first)
