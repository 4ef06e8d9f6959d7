"""Deep InfoMax (Hjelm et al., ICLR 2019): global and local MI maximisation with a prior.

The talk's eq. (1) (section 3.1) has three parts, weighted by :math:`\\alpha, \\beta, \\gamma`:

.. math::
    \\arg\\min_{\\omega_1,\\omega_2,\\psi} -\\Big(\\alpha \\hat I_{\\omega_1,\\psi}(X; E_\\psi(X))
    + \\frac{\\beta}{M^2} \\sum_{i=1}^{M^2} \\hat I_{\\omega_2,\\psi}(X^{(i)}; E_\\psi(X))\\Big)
    + \\arg\\min_\\psi \\arg\\max_\\phi
    \\gamma \\hat D_\\phi(\\mathbb V \\,\\|\\, \\mathbb U_{\\psi,\\mathbb P})

(the talk writes the MI terms inside an arg min; they are maximised). :class:`Encoder` maps an
image to a local ``M x M`` feature map :math:`C_\\psi(x)` and a global code
:math:`Y = E_\\psi(x)` (64-d). :class:`GlobalCritic` scores (feature map, code) pairs,
:class:`LocalCritic` scores (one location of the map, code) pairs, and the estimators of
:mod:`infoclust.mi` turn the N x N (x locations) score matrices into MI estimates.

The prior term (DIM eq. 7) matches the distribution of :math:`\\sigma(Y)` to
:math:`\\mathbb V = \\mathrm{Uniform}[0,1]^{64}` with a discriminator :math:`D_\\phi`:

.. math::
    \\hat D_\\phi = E_{\\mathbb V}[\\log D_\\phi(v)]
    + E_{\\mathbb P}[\\log(1 - D_\\phi(\\sigma(E_\\psi(x))))]

which the discriminator *maximises* and the encoder *minimises*, in alternating steps
(:class:`PriorMatching`, used by :meth:`DeepInfoMax.encoder_step` and
:meth:`DeepInfoMax.prior_step`). Several public re-implementations instead step one summed
loss with both optimisers, so that the discriminator also descends the term and the prior
is never matched; we do not.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from sklearn.base import TransformerMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn
from torch.nn import functional as F

from . import distributed
from ._training import _TorchEstimator
from .mi import ESTIMATORS, _estimate
from .utils import (
    ParameterError,
    check_choice,
    check_finite,
    check_int,
    check_labels,
    check_not_diverged,
    check_number,
    check_seed,
    forked_global_rng,
)

__all__ = [
    "PRESETS",
    "Encoder",
    "GlobalCritic",
    "LocalCritic",
    "PriorDiscriminator",
    "PriorMatching",
    "DeepInfoMax",
    "linear_probe",
]

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
    28x28 MNIST). Each convolution halves the side (rounding down), so images need at least
    :attr:`MIN_SIZE` pixels a side.

    Parameters
    ----------
    in_channels, image_size : int
        Input shape ``(in_channels, image_size, image_size)``, ``image_size >= MIN_SIZE``.
    widths : tuple of three int
        Channels of the three convolutions.
    hidden : int
        Width of the fully connected layer.
    code_dim : int
        Dimension of the global code ``Y``.
    """

    #: Smallest image side: three halvings leave a 1 x 1 map.
    MIN_SIZE = 8

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        widths: tuple[int, int, int] = (32, 64, 128),
        hidden: int = 512,
        code_dim: int = 64,
    ) -> None:
        super().__init__()
        if image_size < self.MIN_SIZE:
            raise ParameterError(
                f"image_size={image_size}: the encoder needs images of at least "
                f"{self.MIN_SIZE} x {self.MIN_SIZE} pixels"
            )
        w1, w2, w3 = widths
        self.local = nn.Sequential(
            nn.Conv2d(in_channels, w1, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(w1, w2, 4, 2, 1),
            nn.BatchNorm2d(w2),
            nn.ReLU(),
        )
        self.top = nn.Sequential(nn.Conv2d(w2, w3, 4, 2, 1), nn.BatchNorm2d(w3), nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            c = self.local(torch.zeros(2, in_channels, image_size, image_size))
            flat = self.top(c).shape[1]
        self.map_channels, self.map_size = c.shape[1], c.shape[2]
        self.head = nn.Sequential(
            nn.Linear(flat, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, code_dim)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(Y, C)``: code (N, code_dim) and local map (N, channels, M, M)."""
        c = self.local(x)
        return self.head(self.top(c)), c


class GlobalCritic(nn.Module):
    """Global critic :math:`T_{\\omega_1}(C, Y)`: the flattened map concatenated with the code, then an MLP.

    All N x N pairings are scored without building N^2 concatenations: the first layer of
    the MLP acting on ``[c_i; y_j]`` splits into ``A c_i + B y_j``, broadcast over ``(i, j)``.

    Parameters
    ----------
    map_features : int
        Size of the flattened feature map :math:`C`.
    code_dim : int
        Dimension of the code :math:`Y`.
    hidden : int
        Width of the MLP's hidden layers.
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

    Parameters
    ----------
    map_channels : int
        Channels of the local feature map.
    code_dim : int
        Dimension of the code :math:`Y`.
    dim : int
        Width of the encodings (``"dot"``) or of the 1x1 convolutions (``"concat"``).
    form : str
        ``"dot"`` or ``"concat"``.
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
    """Discriminator :math:`D_\\phi`: logit that a vector in [0, 1]^d was drawn from the prior.

    Parameters
    ----------
    code_dim : int
        Dimension d of the vectors.
    hidden : tuple of int
        Widths of the two hidden layers.
    """

    def __init__(self, code_dim: int, hidden: tuple[int, int] = (512, 128)) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(code_dim, hidden[0]),
            nn.ReLU(),
            nn.Linear(hidden[0], hidden[1]),
            nn.ReLU(),
            nn.Linear(hidden[1], 1),
        )

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.net(u).squeeze(-1)


class PriorMatching:
    """The prior-matching game of DIM eq. (7): a discriminator, its optimiser and both players' terms.

    With :math:`D = \\sigma(\\text{logit})` the value of the game is

    .. math::
        \\hat D_\\phi = E_{\\mathbb V}[\\log D_\\phi(v)] + E_{\\mathbb P}[\\log(1 - D_\\phi(\\sigma(y)))]

    with ``log D = -sp(-logit)`` and ``log(1 - D) = -sp(logit)``; it is ``-log 4`` when ``D``
    cannot tell codes from prior draws and 0 when it tells them apart perfectly. The
    discriminator ascends it (:meth:`step`). The encoder's side (:meth:`encoder_terms`) is
    the non-saturating form of GANs (Goodfellow et al., 2014): it descends
    :math:`-E[\\log D_\\phi(\\sigma(y))]`, which moves the value down like eq. (7)'s
    :math:`\\log(1 - D)`, to the same fixed point, but whose gradient does not vanish when the
    discriminator wins (with eq. (7)'s form and ``gamma=0.1`` the discriminator won outright
    in our runs and the prior was never matched).

    Parameters
    ----------
    code_dim : int
        Dimension of the codes ``y``; the prior is :math:`\\mathrm{Uniform}[0, 1]^{code\\_dim}`.
    gamma : float
        Weight of the term (eq. 1); scales the discriminator's loss.
    lr : float
        Adam learning rate of the discriminator.
    generator : torch.Generator
        CPU generator of the prior draws (moved to the codes' device).
    """

    def __init__(self, code_dim: int, gamma: float, lr: float, generator: torch.Generator) -> None:
        self.discriminator = PriorDiscriminator(code_dim)
        self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=lr)
        self.gamma = gamma
        self.generator = generator

    def _logits(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Discriminator logits on fresh prior draws ``v ~ Uniform[0, 1]^d`` and on ``sigmoid(y)``."""
        v = torch.rand(y.shape, generator=self.generator).to(device=y.device, dtype=y.dtype)
        return self.discriminator(v), self.discriminator(torch.sigmoid(y))

    @staticmethod
    def _value(d_v: torch.Tensor, d_u: torch.Tensor) -> torch.Tensor:
        return -F.softplus(-d_v).mean() - F.softplus(d_u).mean()

    def value(self, y: torch.Tensor) -> torch.Tensor:
        """The value of eq. (7) for codes ``y`` (with fresh prior draws)."""
        return self._value(*self._logits(y))

    def encoder_terms(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(value, non_saturating)``: eq. (7)'s value and the encoder's term
        :math:`-E[\\log D(\\sigma(y))]`.

        One draw of the prior for both; differentiable with respect to ``y``.
        """
        d_v, d_u = self._logits(y)
        return self._value(d_v, d_u), F.softplus(-d_u).mean()

    def step(self, y: torch.Tensor) -> float:
        """One Adam step of the discriminator *up* the value for the (detached) codes ``y``.

        Returns the value before the step.
        """
        value = self.value(y.detach())
        self.optimizer.zero_grad(set_to_none=True)
        (-self.gamma * value).backward()
        distributed.average_gradients(
            self.discriminator.parameters()
        )  # the ranks' codes are the same gathered batch
        self.optimizer.step()
        return float(value.detach())


class DeepInfoMax(TransformerMixin, _TorchEstimator):
    """Deep InfoMax as a scikit-learn transformer: ``DeepInfoMax(...).fit(x).transform(x)``.

    Under ``torchrun`` (any ``torch.distributed`` process group) :meth:`fit` trains
    data-parallel with the mathematics of one process (:mod:`infoclust.distributed`): every
    process draws the same batch order, encodes its block of each batch, and the codes of
    the whole batch are gathered (gradient included), so that each process scores its
    images' maps against every code of the batch; the score blocks are gathered too, and
    the estimators, with their negatives from the whole batch, and the prior game see what
    one process would see. Batch norm uses the whole batch's statistics and the gradients
    are averaged. ``batch_size`` is the global batch and must be a multiple of the number
    of processes. The training methods (:meth:`partial_fit`, :meth:`encoder_step`,
    :meth:`prior_step`) take the whole batch on every process likewise.

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
        Seed of the initialisation, the batch order and the prior samples, in
        [0, 2**32 - 1]; the global random state is left as it was.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``...
    verbose : bool
        Show a tqdm progress bar (on rank 0).
    checkpoint : str or None
        File written atomically after every epoch with the networks, both optimisers, the
        history and the random states of every process (:mod:`infoclust.checkpoint`);
        ``fit(x, resume=True)`` continues from it.

    Attributes
    ----------
    encoder_, global_critic_, local_critic_ : torch.nn.Module
    prior_ : PriorMatching
        The prior game (its discriminator is ``prior_.discriminator``).
    history_ : list of dict
        One record per epoch (:mod:`infoclust._training`): ``epoch``, ``seconds`` (training
        time so far), the mean ``global_mi``, ``local_mi`` (estimates on the training
        batches) and ``prior`` (the value of the prior term :math:`\\hat D_\\phi`, before the
        discriminator step; NaN for a term of weight 0), and ``callback`` (what :meth:`fit`'s
        callback returned, if one was given).
    train_seconds_ : float
        Training time, the callback excluded.
    last_terms_ : dict of float
        The terms of the last alternation (:meth:`partial_fit`), before its steps.
    n_steps_ : int
        Alternations done since the networks were built.
    image_shape_ : tuple of int
        (C, H, W) of the training images; :meth:`transform` needs the same.
    device_ : torch.device
    """

    def __init__(
        self,
        *,
        alpha: float = 0.0,
        beta: float = 1.0,
        gamma: float = 0.1,
        estimator: str = "jsd",
        local_critic: str = "dot",
        code_dim: int = 64,
        widths: tuple[int, int, int] = (32, 64, 128),
        critic_dim: int = 128,
        epochs: int = 10,
        batch_size: int = 64,
        lr: float = 1e-4,
        seed: int = 0,
        device: str = "auto",
        verbose: bool = True,
        checkpoint: str | None = None,
    ) -> None:
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma
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
        self.verbose = verbose
        self.checkpoint = checkpoint

    _progress_name = "DIM"

    def _check_params(self) -> None:
        for name in ("alpha", "beta", "gamma"):
            check_number(name, getattr(self, name), 0.0)
        if self.alpha == self.beta == 0.0 and self.gamma == 0.0:
            raise ParameterError("alpha, beta and gamma are all 0: there is nothing to train")
        check_choice("estimator", self.estimator, ESTIMATORS)
        check_choice("local_critic", self.local_critic, ("dot", "concat"))
        check_int("code_dim", self.code_dim, 1)
        if not isinstance(self.widths, (tuple, list)) or len(self.widths) != 3:
            raise ParameterError(f"widths={self.widths!r} must hold three channel counts")
        for w in self.widths:
            check_int("widths", w, 1)
        check_int("critic_dim", self.critic_dim, 1)
        self._check_training_params()

    def _min_image_size(self) -> int:
        return Encoder.MIN_SIZE

    def _check_fit_data(self, x: torch.Tensor, y: Any) -> None:
        """At least 2 images, and a batch that divides among the processes; ``y`` is ignored."""
        if len(x) < 2:
            raise ParameterError(f"x needs at least 2 images, got {len(x)}")
        distributed.check_batch(min(self.batch_size, len(x)), len(x))

    def _build(self, x: torch.Tensor) -> None:
        """Create the networks and optimisers for images shaped like ``x`` (checked), on ``device_``."""
        self.__dict__.pop("_last_codes", None)
        self._generator = torch.Generator().manual_seed(self.seed)
        with forked_global_rng(self.seed):  # torch's default initialisation, on the CPU, from the seed
            enc = Encoder(x.shape[1], x.shape[2], tuple(self.widths), code_dim=self.code_dim)
            global_critic = GlobalCritic(enc.map_channels * enc.map_size**2, self.code_dim, self.critic_dim)
            local_critic = LocalCritic(enc.map_channels, self.code_dim, self.critic_dim, self.local_critic)
            self.prior_ = PriorMatching(self.code_dim, self.gamma, self.lr, self._generator)
        self.encoder_ = enc.to(self.device_)
        self.global_critic_ = global_critic.to(self.device_)
        self.local_critic_ = local_critic.to(self.device_)
        self.prior_.discriminator.to(self.device_)
        mi_params = [
            *self.encoder_.parameters(),
            *self.global_critic_.parameters(),
            *self.local_critic_.parameters(),
        ]
        self._opt = torch.optim.Adam(mi_params, lr=self.lr)
        self.n_steps_ = 0

    def _prepare(self, x: torch.Tensor) -> None:
        """Check the parameters and build for images like ``x``: what :meth:`partial_fit` starts from."""
        self._check_params()
        self._place()
        self._initialise(x)

    def _networks(self) -> dict[str, nn.Module]:
        """What a checkpoint keeps of the networks, by name."""
        return {
            "encoder": self.encoder_,
            "global_critic": self.global_critic_,
            "local_critic": self.local_critic_,
            "discriminator": self.prior_.discriminator,
        }

    def _generators(self) -> dict[str, torch.Generator]:
        return {"dim": self._generator}

    def _batch(self, x: Any) -> torch.Tensor:
        """A checked training batch on ``device_``; builds the networks at the first one."""
        x = self._check_x(x)
        if len(x) < 2:
            raise ParameterError(
                f"x needs at least 2 images per batch (each image's negatives are the others), got {len(x)}"
            )
        if not hasattr(self, "encoder_"):
            self._prepare(x)
        return x.to(self.device_)

    def _score_matrices(self, c: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The critics' score matrices of a batch's encodings: ``global_mi`` (N, N), ``local_mi`` (N, N, M*M).

        Only the terms with a positive weight. Scores pair every map with every code of the
        batch, so with the encodings gathered from several processes they score all pairs.
        """
        scores = {}
        if self.alpha > 0:
            scores["global_mi"] = self.global_critic_(c, y)
        if self.beta > 0:
            scores["local_mi"] = self.local_critic_(c, y)
        return scores

    def _encoder_step(self, x: torch.Tensor) -> dict[str, float]:
        self.encoder_.train()
        with distributed.synchronised_batchnorm(self.encoder_):
            y, c = self.encoder_(x[distributed.shard(len(x))])  # encode this rank's block of the batch
        y = distributed.all_gather_cat(y)  # the codes of the whole batch (gradient included)
        scores = {
            name: distributed.all_gather_cat(s) for name, s in self._score_matrices(c, y).items()
        }  # rows: maps
        terms = {name: _estimate(s, self.estimator) for name, s in scores.items()}
        loss = y.new_zeros(())
        for name, weight in (("global_mi", self.alpha), ("local_mi", self.beta)):
            if name in terms:
                loss = loss - weight * terms[name]
        if self.gamma > 0:
            terms["prior"], non_saturating = self.prior_.encoder_terms(y)
            loss = loss + self.gamma * non_saturating
        self._opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(p for group in self._opt.param_groups for p in group["params"])
        self._opt.step()
        self._last_codes = y.detach()
        return {k: float(v.detach()) for k, v in terms.items()}

    def encoder_step(self, x: torch.Tensor | np.ndarray) -> dict[str, float]:
        """One Adam step of the encoder and the MI critics on the batch ``x``; the discriminator is held.

        Descends :math:`-(\\alpha \\hat I_G + \\beta \\hat I_L) - \\gamma E[\\log D_\\phi(\\sigma(Y))]`:
        the encoder's side of the prior game in its non-saturating form
        (:meth:`PriorMatching.encoder_terms`). Returns the terms' values before the step.
        """
        return self._encoder_step(self._batch(x))

    def prior_step(self, x: torch.Tensor | np.ndarray | None = None) -> float:
        """One Adam step of the discriminator *up* the prior term (:meth:`PriorMatching.step`).

        The encoder is held.

        Uses the codes of the last :meth:`encoder_step` when ``x`` is None, else encodes ``x``.
        Returns the prior term's value before the step.
        """
        if x is None:
            if not hasattr(self, "_last_codes"):
                raise ParameterError("x=None needs a previous encoder_step (its codes); pass a batch x")
            y = self._last_codes
        else:
            x = self._batch(x)
            with torch.no_grad(), distributed.synchronised_batchnorm(self.encoder_):
                y = distributed.all_gather_cat(self.encoder_(x[distributed.shard(len(x))])[0])
        return self.prior_.step(y)

    def _alternation(self, x: torch.Tensor) -> dict[str, float]:
        """:meth:`encoder_step`, then :meth:`prior_step` if gamma > 0, on a checked batch on ``device_``."""
        terms = self._encoder_step(x)
        if self.gamma > 0:
            self.prior_.step(self._last_codes)
        self.n_steps_ += 1
        return terms

    #: The terms of eq. (1), as the history records them.
    _TERMS = ("global_mi", "local_mi", "prior")

    def _check_terms(self, terms: dict[str, float], epoch: int | None) -> None:
        for name, value in terms.items():
            check_not_diverged(
                "DeepInfoMax training",
                f"the {name} term",
                value,
                epoch=epoch,
                step=self.n_steps_,
                lower=f"lr (now {self.lr})",
            )

    def partial_fit(self, x: torch.Tensor | np.ndarray, y=None) -> "DeepInfoMax":
        """One alternation on the batch ``x`` (encoder step, then discriminator step if gamma > 0).

        Builds the networks at the first call. The terms before the steps are kept in
        :attr:`last_terms_`. ``y`` is ignored.
        """
        self.last_terms_ = self._alternation(self._batch(x))
        self._check_terms(self.last_terms_, None)
        return self

    def fit(
        self, x, y=None, *, callback: Callable[["DeepInfoMax", int], Any] | None = None, resume: bool = False
    ) -> "DeepInfoMax":
        """Train on images ``x`` (N, C, H, H) in [0, 1] for ``epochs`` epochs; ``y`` is ignored.

        ``callback(model, epoch)`` runs after every epoch (e.g. to evaluate the code as it
        trains); what it returns is the epoch's record's ``"callback"`` entry in
        :attr:`history_`. With ``resume=True`` training continues from the file
        ``checkpoint`` (if it exists; otherwise it starts afresh with a warning); on the CPU
        the result is bit-identical to a run that was never interrupted. Under
        ``torch.distributed`` (launched by ``torchrun``, whose process group ``fit`` joins) it
        trains data-parallel (class docstring). The scaffolding is the training base's
        (:mod:`infoclust._training`). Raises :class:`~infoclust.utils.TrainingDivergedError`
        when a term becomes non-finite, :class:`~infoclust.utils.ParameterError` for
        processes with different parameters, seeds, data or networks, a batch that does not
        divide among them, and a checkpoint of other parameters.
        """
        self._fit(x, y, resume=resume, callback=callback)
        return self

    # ---------------------------------------------------------------- the training base's hooks

    def _steps_per_epoch(self, x: torch.Tensor) -> int:
        """Batches per epoch: the ragged last batch is dropped (every batch has N negatives' worth)."""
        return len(x) // min(self.batch_size, len(x))

    def _train_epoch(self, x: torch.Tensor, epoch: int, progress: Callable[[], Any]) -> None:
        """One pass in a fresh order: an alternation per batch, the terms summed in ``_sums``."""
        size = min(self.batch_size, len(x))
        self._sums: dict[str, float] = {}
        order = torch.randperm(len(x), generator=self._generator).to(self.device_)
        for b in range(len(x) // size):
            self.last_terms_ = self._alternation(x[order[b * size : (b + 1) * size]])
            self._check_terms(self.last_terms_, epoch)
            for k, v in self.last_terms_.items():
                self._sums[k] = self._sums.get(k, 0.0) + v
            progress()

    def _evaluate(self, x: torch.Tensor, y: None, epoch: int) -> dict[str, float] | None:
        """The epoch's mean terms (NaN for a term with weight 0); nothing before training."""
        if epoch == 0:
            return None
        batches = self._steps_per_epoch(x)
        return {k: self._sums[k] / batches if k in self._sums else float("nan") for k in self._TERMS}

    def _postfix(self, record: dict[str, Any]) -> dict[str, str]:
        return {k: f"{record[k]:.3f}" for k in self._sums}

    def _state(self) -> dict[str, Any]:
        return {
            "n_steps": self.n_steps_,
            "optimizer": self._opt.state_dict(),
            "prior_optimizer": self.prior_.optimizer.state_dict(),
            **{name: net.state_dict() for name, net in self._networks().items()},
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        for name, net in self._networks().items():
            net.load_state_dict(state[name])
        self._opt.load_state_dict(state["optimizer"])
        self.prior_.optimizer.load_state_dict(state["prior_optimizer"])
        self.n_steps_ = state["n_steps"]

    @torch.no_grad()
    def encode(self, x, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes ``Y`` (N, code_dim) and local maps ``C`` (N, channels, M, M) of ``x``, on the CPU."""
        check_is_fitted(self)
        x = self._check_x(x)
        batch_size = check_int("batch_size", batch_size, 1)
        self.encoder_.eval()
        ys, cs = [], []
        for s in range(0, len(x), batch_size):
            y, c = self.encoder_(x[s : s + batch_size].to(self.device_))
            ys.append(y.cpu())
            cs.append(c.cpu())
        return torch.cat(ys), torch.cat(cs)

    def transform(self, x) -> np.ndarray:
        """Codes ``Y`` of ``x`` as a NumPy array (N, code_dim)."""
        return self.encode(x)[0].numpy()


def linear_probe(features, labels, *, test_size: float = 0.2, seed: int = 0) -> float:
    """Test accuracy of a logistic regression on standardised ``features`` (a linear probe).

    The features are split into train and test parts (stratified by label, ``test_size``
    held out), the probe is fitted on the train part only and scored on the test part.
    The DIM paper evaluates with (mostly non-linear) classifiers on frozen features; this
    is the linear one.

    Parameters
    ----------
    features : array-like, shape (n, d)
        The frozen features (an array or tensor).
    labels : array-like of int, shape (n,)
        The classes.
    test_size : float
        Share of the samples held out for the score, in (0, 1).
    seed : int
        Seed of the split and of the solver.

    Returns
    -------
    float
        The probe's accuracy on the held-out part, in [0, 1].
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    f = features.detach().cpu().numpy() if torch.is_tensor(features) else np.asarray(features)
    if f.ndim < 2 or len(f) == 0 or not np.issubdtype(f.dtype, np.number):
        raise ParameterError(
            f"features must be a non-empty numeric array (n, d), got shape {f.shape} {f.dtype}"
        )
    check_finite("features", f)
    t = check_labels("labels", labels, len(f)).numpy()
    classes, counts = np.unique(t, return_counts=True)
    if len(classes) < 2 or counts.min() < 2:
        raise ParameterError(
            f"labels must hold at least 2 classes of at least 2 samples each (the split is "
            f"stratified), got classes {classes.tolist()} with {counts.tolist()} samples"
        )
    check_number("test_size", test_size, 0.0, 1.0, strict_low=True)
    seed = check_seed("seed", seed)
    f_tr, f_te, t_tr, t_te = train_test_split(
        f.reshape(len(f), -1), t, test_size=test_size, random_state=seed, stratify=t
    )
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(probe.fit(f_tr, t_tr).score(f_te, t_te))
