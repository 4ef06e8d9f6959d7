"""Deep InfoMax (Hjelm et al., ICLR 2019): global and local MI maximisation with a prior.

The talk's eq. (1) (section 3.1) has three parts, weighted by :math:`\\alpha, \\beta, \\gamma`:

.. math::
    \\arg\\min_{\\omega_1,\\omega_2,\\psi} -\\Big(\\alpha \\hat I_{\\omega_1,\\psi}(X; E_\\psi(X))
    + \\frac{\\beta}{M^2} \\sum_{i=1}^{M^2} \\hat I_{\\omega_2,\\psi}(X^{(i)}; E_\\psi(X))\\Big)
    + \\arg\\min_\\psi \\arg\\max_\\phi \\gamma \\hat D_\\phi(\\mathbb V \\,\\|\\, \\mathbb U_{\\psi,\\mathbb P})

(the talk writes the MI terms inside an arg min; they are maximised). :class:`Encoder` maps an
image to a local ``M x M`` feature map :math:`C_\\psi(x)` and a global code
:math:`Y = E_\\psi(x)` (64-d). :class:`GlobalCritic` scores (feature map, code) pairs,
:class:`LocalCritic` scores (one location of the map, code) pairs, and the estimators of
:mod:`infoclust.mi` turn the N x N (x locations) score matrices into MI estimates.

The prior term (DIM eq. 7) matches the distribution of :math:`\\sigma(Y)` to
:math:`\\mathbb V = \\mathrm{Uniform}[0,1]^{64}` with a discriminator :math:`D_\\phi`:

.. math:: \\hat D_\\phi = E_{\\mathbb V}[\\log D_\\phi(v)] + E_{\\mathbb P}[\\log(1 - D_\\phi(\\sigma(E_\\psi(x))))]

which the discriminator *maximises* and the encoder *minimises*, in alternating steps
(:meth:`DeepInfoMax.encoder_step`, :meth:`DeepInfoMax.prior_step`). Several public
re-implementations instead step one summed loss with both optimisers, so that the
discriminator also descends the term and the prior is never matched; we do not.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .mi import ESTIMATORS, mi_estimate
from .utils import (ParameterError, check_choice, check_finite, check_int, check_number, resolve_device,
                    seed_everything, timer)

__all__ = ["PRESETS", "Encoder", "GlobalCritic", "LocalCritic", "PriorDiscriminator", "DeepInfoMax",
           "linear_probe"]

#: The paper's two headline settings (DIM section 4): weights of the global, local and prior terms.
PRESETS = {
    "DIM(G)": {"alpha": 1.0, "beta": 0.0, "gamma": 1.0},
    "DIM(L)": {"alpha": 0.0, "beta": 1.0, "gamma": 0.1},
}


class Encoder(nn.Module):
    """Convolutional encoder: image -> local ``M x M`` feature map -> global code ``Y``.

    The paper's CIFAR10 encoder scaled down: three 4x4 stride-2 convolutions (``widths``),
    a hidden fully connected layer and a linear ``code_dim``-d output. The local map is the
    output of the second convolution (the paper's 128-channel 8x8 layer on CIFAR10; 7x7 on
    28x28 MNIST).

    Parameters
    ----------
    in_channels, image_size : int
        Input shape ``(in_channels, image_size, image_size)``.
    widths : tuple of three int
        Channels of the three convolutions.
    hidden : int
        Width of the fully connected layer.
    code_dim : int
        Dimension of the global code ``Y``.
    """

    def __init__(self, in_channels: int, image_size: int, widths: tuple[int, int, int] = (32, 64, 128),
                 hidden: int = 512, code_dim: int = 64) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.local = nn.Sequential(
            nn.Conv2d(in_channels, w1, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(w1, w2, 4, 2, 1), nn.BatchNorm2d(w2), nn.ReLU(),
        )
        self.top = nn.Sequential(nn.Conv2d(w2, w3, 4, 2, 1), nn.BatchNorm2d(w3), nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            c = self.local(torch.zeros(2, in_channels, image_size, image_size))
            flat = self.top(c).shape[1]
        self.map_channels, self.map_size = c.shape[1], c.shape[2]
        self.head = nn.Sequential(nn.Linear(flat, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                  nn.Linear(hidden, code_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(Y, C)``: code (N, code_dim) and local map (N, channels, M, M)."""
        c = self.local(x)
        return self.head(self.top(c)), c


class GlobalCritic(nn.Module):
    """Global critic :math:`T_{\\omega_1}(C, Y)`: the flattened map concatenated with the code, then an MLP.

    All N x N pairings are scored without building N^2 concatenations: the first layer of
    the MLP acting on ``[c_i; y_j]`` splits into ``A c_i + B y_j``, broadcast over ``(i, j)``.
    """

    def __init__(self, map_features: int, code_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.from_map = nn.Linear(map_features, hidden)
        self.from_code = nn.Linear(code_dim, hidden, bias=False)
        self.rest = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, c: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Scores (N, N): ``[i, j] = T(C_i, Y_j)``."""
        h = self.from_map(c.flatten(1)).unsqueeze(1) + self.from_code(y).unsqueeze(0)
        return self.rest(h).squeeze(-1)


class _Shortcut(nn.Module):
    """Two-layer net with a linear shortcut: ``W2 relu(W1 z) + W0 z`` on the last axis."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim_in, dim_out), nn.ReLU(), nn.Linear(dim_out, dim_out))
        self.skip = nn.Linear(dim_in, dim_out)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z) + self.skip(z)


class LocalCritic(nn.Module):
    """Local critic :math:`T_{\\omega_2}(C^{(l)}, Y)` in the paper's two forms.

    ``form="dot"`` (encode-and-dot-product): the local vectors and the code each pass a small
    net with a linear shortcut (1x1 convolutions on the map), and the score is their dot
    product. ``form="concat"`` (concatenate-and-convolve): the code is tiled over the map,
    concatenated with the local vectors and scored by 1x1 convolutions (its first layer split
    as in :class:`GlobalCritic`; it costs N^2 x locations x ``dim`` activations).
    """

    def __init__(self, map_channels: int, code_dim: int, dim: int = 256, form: str = "dot") -> None:
        super().__init__()
        self.form = check_choice("local_critic", form, ("dot", "concat"))
        if form == "dot":
            self.local, self.code = _Shortcut(map_channels, dim), _Shortcut(code_dim, dim)
        else:
            self.from_map = nn.Linear(map_channels, dim)
            self.from_code = nn.Linear(code_dim, dim, bias=False)
            self.rest = nn.Sequential(nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 1))

    def forward(self, c: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Scores (N, N, M*M): ``[i, j, l] = T(C_i^{(l)}, Y_j)``."""
        loc = c.flatten(2).transpose(1, 2)  # (N, L, channels): a 1x1 convolution is a Linear here
        if self.form == "dot":
            return torch.einsum("ild,jd->ijl", self.local(loc), self.code(y))
        h = self.from_map(loc).unsqueeze(1) + self.from_code(y)[None, :, None, :]
        return self.rest(h).squeeze(-1)


class PriorDiscriminator(nn.Module):
    """Discriminator :math:`D_\\phi`: logit that a vector in [0, 1]^d was drawn from the prior."""

    def __init__(self, code_dim: int, hidden: tuple[int, int] = (512, 128)) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(code_dim, hidden[0]), nn.ReLU(), nn.Linear(hidden[0], hidden[1]),
                                 nn.ReLU(), nn.Linear(hidden[1], 1))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.net(u).squeeze(-1)


def _as_images(x) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=torch.float32)
    if x.ndim != 4 or x.shape[2] != x.shape[3]:
        raise ParameterError(f"x must be square images of shape (N, C, H, H), got {tuple(x.shape)}")
    check_finite("x", x)
    return x


class DeepInfoMax:
    """Deep InfoMax with a scikit-learn-like interface: ``DeepInfoMax(...).fit(x).transform(x)``.

    Parameters
    ----------
    alpha, beta, gamma : float
        Weights of the global MI, local MI and prior terms of eq. (1). Defaults: DIM(L)
        (``PRESETS["DIM(L)"]``); DIM(G) is ``alpha=1, beta=0, gamma=1``.
    estimator : {"jsd", "dv", "nce"}
        MI estimator of both MI terms (:mod:`infoclust.mi`).
    local_critic : {"dot", "concat"}
        Form of the local critic (:class:`LocalCritic`).
    code_dim : int
        Dimension of the global code ``Y`` (64 in the paper).
    widths : tuple of three int
        Channels of the encoder's convolutions.
    critic_dim : int
        Width of the critics' hidden layers (and of the dot-product critic's embedding).
    epochs : int
        Passes over the data.
    batch_size : int
        N: every other image of the batch is a negative.
    lr : float
        Adam learning rate of the encoder, the critics and the discriminator (paper: 1e-4).
    seed : int
        Seed of the initialisation, the batch order and the prior samples.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``...
    progress : bool
        Show a tqdm progress bar.

    Attributes
    ----------
    encoder_, global_critic_, local_critic_, discriminator_ : torch.nn.Module
    history_ : dict of list of float
        Per epoch: mean ``global_mi``, ``local_mi`` (estimates on the training batches) and
        ``prior`` (the value of the prior term :math:`\\hat D_\\phi`, before the
        discriminator step); ``seconds``; ``callback`` (what :meth:`fit`'s callback returned).
    device_ : torch.device
    """

    def __init__(self, *, alpha: float = 0.0, beta: float = 1.0, gamma: float = 0.1, estimator: str = "jsd",
                 local_critic: str = "dot", code_dim: int = 64, widths: tuple[int, int, int] = (32, 64, 128),
                 critic_dim: int = 128, epochs: int = 10, batch_size: int = 64, lr: float = 1e-4,
                 seed: int = 0, device: str = "auto", progress: bool = True) -> None:
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.estimator = estimator
        self.local_critic = local_critic
        self.code_dim = code_dim
        self.widths = widths
        self.critic_dim = critic_dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.device = device
        self.progress = progress

    def _check_params(self) -> None:
        for name in ("alpha", "beta", "gamma"):
            check_number(name, getattr(self, name), 0.0)
        if self.alpha == self.beta == 0.0 and self.gamma == 0.0:
            raise ParameterError("alpha, beta and gamma are all 0: there is nothing to train")
        check_choice("estimator", self.estimator, ESTIMATORS)
        check_choice("local_critic", self.local_critic, ("dot", "concat"))
        check_int("code_dim", self.code_dim, 1)
        if len(self.widths) != 3:
            raise ParameterError(f"widths={self.widths!r} must hold three channel counts")
        for w in self.widths:
            check_int("widths", w, 1)
        check_int("critic_dim", self.critic_dim, 1)
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 2)
        check_number("lr", self.lr, 0.0, strict_low=True)

    def _build(self, x: torch.Tensor) -> None:
        """Create the networks and optimisers for images shaped like ``x``."""
        self._check_params()
        self.device_ = resolve_device(self.device)
        self._gen = seed_everything(self.seed)
        enc = Encoder(x.shape[1], x.shape[2], tuple(self.widths), code_dim=self.code_dim)
        self.encoder_ = enc.to(self.device_)
        self.global_critic_ = GlobalCritic(enc.map_channels * enc.map_size**2, self.code_dim,
                                           self.critic_dim).to(self.device_)
        self.local_critic_ = LocalCritic(enc.map_channels, self.code_dim, self.critic_dim,
                                         self.local_critic).to(self.device_)
        self.discriminator_ = PriorDiscriminator(self.code_dim).to(self.device_)
        mi_params = [*self.encoder_.parameters(), *self.global_critic_.parameters(),
                     *self.local_critic_.parameters()]
        self._opt = torch.optim.Adam(mi_params, lr=self.lr)
        self._opt_prior = torch.optim.Adam(self.discriminator_.parameters(), lr=self.lr)
        self.history_ = {"global_mi": [], "local_mi": [], "prior": [], "seconds": [], "callback": []}

    def _ensure_built(self, x: torch.Tensor) -> None:
        if not hasattr(self, "encoder_"):
            self._build(x)

    def _prior_logits(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Discriminator logits on fresh prior draws ``v ~ Uniform[0, 1]^d`` and on ``sigmoid(y)``."""
        v = torch.rand(y.shape, generator=self._gen).to(y.device)
        return self.discriminator_(v), self.discriminator_(torch.sigmoid(y))

    def prior_value(self, y: torch.Tensor) -> torch.Tensor:
        """The prior term (DIM eq. 7) for codes ``y``: :math:`E_V[\\log D(v)] + E[\\log(1 - D(\\sigma(y)))]`.

        With ``D = sigmoid(logit)``, ``log D = -sp(-logit)`` and ``log(1 - D) = -sp(logit)``.
        The discriminator ascends this value (:meth:`prior_step`); the encoder descends it
        (:meth:`encoder_step`). Its value is ``-log 4`` when ``D`` cannot tell codes from prior
        draws and 0 when it tells them apart perfectly.
        """
        d_v, d_u = self._prior_logits(y)
        return -F.softplus(-d_v).mean() - F.softplus(d_u).mean()

    def encoder_step(self, x: torch.Tensor) -> dict[str, float]:
        """One Adam step of the encoder and the MI critics on the batch ``x``; the discriminator is held.

        Descends :math:`-(\\alpha \\hat I_G + \\beta \\hat I_L) - \\gamma E[\\log D_\\phi(\\sigma(Y))]`:
        the encoder's side of the prior game in the non-saturating form of GANs (Goodfellow
        et al., 2014). It moves the prior term down like eq. (7)'s
        :math:`\\log(1 - D)`, to the same fixed point, but its gradient does not vanish when the
        discriminator wins (with eq. (7)'s form and ``gamma=0.1`` the discriminator won outright
        in our runs and the prior was never matched). Returns the terms' values before the step.
        """
        x = _as_images(x)
        self._ensure_built(x)
        self.encoder_.train()
        y, c = self.encoder_(x.to(self.device_))
        loss, out = y.new_zeros(()), {}
        if self.alpha > 0:
            out["global_mi"] = mi_estimate(self.global_critic_(c, y), self.estimator)
            loss = loss - self.alpha * out["global_mi"]
        if self.beta > 0:
            out["local_mi"] = mi_estimate(self.local_critic_(c, y), self.estimator)
            loss = loss - self.beta * out["local_mi"]
        if self.gamma > 0:
            d_v, d_u = self._prior_logits(y)
            out["prior"] = -F.softplus(-d_v).mean() - F.softplus(d_u).mean()
            loss = loss + self.gamma * F.softplus(-d_u).mean()
        self._opt.zero_grad(set_to_none=True)
        loss.backward()
        self._opt.step()
        self._last_codes = y.detach()
        return {k: float(v.detach()) for k, v in out.items()}

    def prior_step(self, x: torch.Tensor | None = None) -> float:
        """One Adam step of the discriminator *up* the prior term; the encoder is held.

        Uses the codes of the last :meth:`encoder_step` when ``x`` is None, else encodes ``x``.
        Returns the prior term's value before the step.
        """
        if x is None:
            y = self._last_codes
        else:
            x = _as_images(x)
            self._ensure_built(x)
            with torch.no_grad():
                y = self.encoder_(x.to(self.device_))[0]
        value = self.prior_value(y.detach())
        self._opt_prior.zero_grad(set_to_none=True)
        (-self.gamma * value).backward()
        self._opt_prior.step()
        return float(value.detach())

    def partial_fit(self, x: torch.Tensor) -> dict[str, float]:
        """One alternation on the batch ``x``: :meth:`encoder_step`, then :meth:`prior_step` if gamma > 0."""
        out = self.encoder_step(x)
        if self.gamma > 0:
            self.prior_step()
        return out

    def fit(self, x, y=None, *, callback: Callable[["DeepInfoMax", int], Any] | None = None) -> "DeepInfoMax":
        """Train on images ``x`` (N, C, H, H) in [0, 1] for ``epochs`` epochs; ``y`` is ignored.

        ``callback(model, epoch)`` runs after every epoch (e.g. to evaluate the code as it
        trains); what it returns is appended to ``history_["callback"]``.
        """
        from tqdm.auto import tqdm

        x = _as_images(x)
        self._build(x)
        n = len(x)
        if n < 2:
            raise ParameterError("x needs at least 2 images")
        size = min(self.batch_size, n)
        batches = n // size  # drop the ragged last batch: every batch has N negatives' worth
        bar = tqdm(total=self.epochs * batches, desc="DIM", disable=not self.progress)
        for epoch in range(1, self.epochs + 1):
            sums: dict[str, float] = {}
            with timer() as t:
                order = torch.randperm(n, generator=self._gen)
                for b in range(batches):
                    for k, v in self.partial_fit(x[order[b * size:(b + 1) * size]]).items():
                        sums[k] = sums.get(k, 0.0) + v
                    bar.update()
            for k in ("global_mi", "local_mi", "prior"):
                self.history_[k].append(sums[k] / batches if k in sums else float("nan"))
            self.history_["seconds"].append(t["seconds"])
            if callback is not None:
                self.history_["callback"].append(callback(self, epoch))
            bar.set_postfix({k: f"{v / batches:.3f}" for k, v in sums.items()})
        bar.close()
        return self

    @torch.no_grad()
    def encode(self, x, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes ``Y`` (N, code_dim) and local maps ``C`` (N, channels, M, M) of ``x``, on the CPU."""
        if not hasattr(self, "encoder_"):
            raise ParameterError("this DeepInfoMax is not fitted yet: call fit(x) first")
        x = _as_images(x)
        self.encoder_.eval()
        ys, cs = [], []
        for s in range(0, len(x), batch_size):
            y, c = self.encoder_(x[s:s + batch_size].to(self.device_))
            ys.append(y.cpu())
            cs.append(c.cpu())
        return torch.cat(ys), torch.cat(cs)

    def transform(self, x) -> np.ndarray:
        """Codes ``Y`` of ``x`` as a NumPy array (N, code_dim)."""
        return self.encode(x)[0].numpy()

    def fit_transform(self, x, y=None) -> np.ndarray:
        """:meth:`fit` then :meth:`transform` on the same images."""
        return self.fit(x).transform(x)


def linear_probe(features, labels, *, test_size: float = 0.2, seed: int = 0) -> float:
    """Test accuracy of a logistic regression on standardised ``features`` (a linear probe).

    The features are split into train and test parts (stratified by label, ``test_size``
    held out), the probe is fitted on the train part only and scored on the test part.
    The DIM paper evaluates with (mostly non-linear) classifiers on frozen features; this
    is the linear one.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    f = features.detach().cpu().numpy() if torch.is_tensor(features) else np.asarray(features)
    t = labels.detach().cpu().numpy() if torch.is_tensor(labels) else np.asarray(labels)
    check_number("test_size", test_size, 0.0, 1.0, strict_low=True)
    f_tr, f_te, t_tr, t_te = train_test_split(f.reshape(len(f), -1), t, test_size=test_size,
                                              random_state=seed, stratify=t)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(probe.fit(f_tr, t_tr).score(f_te, t_te))
