"""Invariant Information Clustering (Ji, Henriques, Vedaldi, ICCV 2019; talk section 3.2).

A network E maps an image to a distribution over k clusters. For pairs (x, g x), where g
is a random perturbation that keeps the class, IIC maximises the mutual information of the
two cluster assignments (talk, eq. 2 and 4),

    max_psi I(z; z'),   z = E_psi(x),   z' = E_psi(g x),

computed exactly from the k x k joint P = 1/n sum_i E(x_i) E(g x_i)^T (talk, eq. 3).
Because I(z; z') = H(z) - H(z | z'), a degenerate clustering (one cluster for all) scores
0 and a confident, balanced one scores ln k.

Contents: the objective in two steps, :func:`joint_counts` (the unnormalised joint, a sum
over samples) and :func:`loss_from_counts` (symmetrise, normalise, loss), with
:func:`joint_distribution`, :func:`iic_loss` and :func:`information` built on them;
:func:`lowest_loss_subhead` (the label-free choice of a sub-head); :class:`ClusterNet`
(trunk, main head and overclustering head, each with several sub-heads); :class:`IIC`
(the scikit-learn estimator that trains it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import ClusterMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from . import checkpoint
from . import distributed
from ._training import _TorchEstimator
from .augment import MNISTTransform
from .metrics import cluster_accuracy
from .transforms import Transform, for_run
from .utils import (
    ParameterError,
    check_choice,
    check_finite,
    check_int,
    check_labels,
    check_not_diverged,
    check_number,
    forked_global_rng,
)

__all__ = [
    "joint_counts",
    "loss_from_counts",
    "joint_distribution",
    "iic_loss",
    "information",
    "lowest_loss_subhead",
    "SobelInput",
    "ClusterNet",
    "TRUNKS",
    "trunk_min_size",
    "PRESETS",
    "preset",
    "IIC",
]


# --------------------------------------------------------------------------- objective


def joint_counts(z: torch.Tensor, z_tf: torch.Tensor) -> torch.Tensor:
    """Unnormalised joint of the cluster assignments of x and g x: ``sum_i z_i z'_i^T``.

    IIC paper, eq. (3) before its factor 1/n, for every leading index (e.g. every
    sub-head). A sum over samples: the counts of several batches, or of the shards of
    several processes, add up to the counts of their union, so they can be summed (an
    all-reduce) before :func:`loss_from_counts`.

    Parameters
    ----------
    z, z_tf : torch.Tensor
        (..., n, k) cluster probabilities (rows sum to 1) of x and of g x, same head.

    Returns
    -------
    torch.Tensor
        (..., k, k), non-negative.
    """
    if z.dim() < 2 or z.shape != z_tf.shape:
        raise ParameterError(
            f"z and z_tf must be (..., n, k) of equal shape, got {tuple(z.shape)} and {tuple(z_tf.shape)}"
        )
    return z.transpose(-2, -1) @ z_tf


def _symmetric_joint(counts: torch.Tensor) -> torch.Tensor:
    """``(C + C^T) / 2`` normalised to sum 1 over its last two axes: the joint P of eq. (3)."""
    p = (counts + counts.transpose(-2, -1)) / 2
    return p / p.sum((-2, -1), keepdim=True)


#: The clamp of the reference code: double machine epsilon, whatever the tensor's dtype.
EPS = float(np.finfo(np.float64).eps)


def loss_from_counts(counts: torch.Tensor, lamb: float = 1.0) -> torch.Tensor:
    """The IIC loss of joint counts (:func:`joint_counts`); with ``lamb = 1`` it is -I(z; z').

    IIC paper, eq. (1) and (3): the counts are symmetrised, (C + C^T) / 2, since the pair
    (x, g x) is as likely as (g x, x), and normalised to the joint P; then
    loss = - sum_ij P_ij (ln P_ij - lamb ln P_i - lamb ln P_j), with the marginals P_i (row
    sums) and P_j (column sums). Entries below :data:`EPS` (double machine epsilon) are
    clamped before the logarithm (to avoid log 0); the clamp makes new tensors instead of
    writing into the expanded marginals, which the reference code does in place. The loss
    is bounded below by -ln k; ``lamb > 1`` weighs the marginal entropies more and pushes
    harder against degenerate clusterings.

    Parameters
    ----------
    counts : torch.Tensor
        (..., k, k) non-negative joint counts.
    lamb : float
        Weight of the marginal entropy terms (1 in the paper).

    Returns
    -------
    torch.Tensor
        (...): one loss per leading index, differentiable.
    """
    p = _symmetric_joint(counts)
    p_i = p.sum(-1, keepdim=True).clamp_min(EPS)  # marginal of z, column vector
    p_j = p.sum(-2, keepdim=True).clamp_min(EPS)  # marginal of z', row vector
    p = p.clamp_min(EPS)  # out of place: never writes into a broadcast view
    return -(p * (p.log() - lamb * p_i.log() - lamb * p_j.log())).sum((-2, -1))


def joint_distribution(z: torch.Tensor, z_tf: torch.Tensor) -> torch.Tensor:
    """The symmetric joint distribution P of the cluster assignments of x and g x.

    IIC paper, eq. (3) (talk, eq. 3): P = 1/n sum_i z_i z'_i^T, then symmetrised,
    (P + P^T) / 2.

    Parameters
    ----------
    z, z_tf : torch.Tensor
        (n, k) cluster probabilities (rows sum to 1) of x and of g x, same head.

    Returns
    -------
    torch.Tensor
        (k, k) non-negative, sums to 1, symmetric.
    """
    if z.dim() != 2:
        raise ParameterError(
            f"z and z_tf must be (n, k) of equal shape, got {tuple(z.shape)} and {tuple(z_tf.shape)}"
        )
    return _symmetric_joint(joint_counts(z, z_tf))


def iic_loss(z: torch.Tensor, z_tf: torch.Tensor, lamb: float = 1.0) -> torch.Tensor:
    """The IIC loss of the reference code; with ``lamb = 1`` it is -I(z; z').

    :func:`loss_from_counts` of :func:`joint_counts`, computed in at least float32.

    Parameters
    ----------
    z, z_tf : torch.Tensor
        (..., n, k) softmax outputs of the same head on x and on g x.
    lamb : float
        Weight of the marginal entropy terms (1 in the paper).

    Returns
    -------
    torch.Tensor
        (...): a scalar for (n, k) inputs, differentiable with respect to ``z`` and ``z_tf``.
    """
    lamb = check_number("lamb", lamb, 0)
    for name, value in (("z", z), ("z_tf", z_tf)):
        if not torch.is_tensor(value) or not value.is_floating_point():
            got = value.dtype if torch.is_tensor(value) else type(value).__name__
            raise TypeError(f"{name} must be a floating-point tensor of cluster probabilities, got {got}")
        check_finite(name, value)
    dtype = torch.promote_types(z.dtype, torch.float32)  # no log of half-precision numbers
    return loss_from_counts(joint_counts(z.to(dtype), z_tf.to(dtype)), lamb)


def information(p: torch.Tensor | np.ndarray) -> dict[str, float]:
    """Mutual information and entropies of a joint distribution, in nats.

    I(z; z') = H(z) - H(z | z') (talk, section 3.2.1): H(z) is largest for balanced
    clusters, H(z | z') is 0 when one assignment predicts the other.

    Parameters
    ----------
    p : array (k, k)
        A joint distribution of (z, z'): non-negative; normalised here.

    Returns
    -------
    dict
        ``{"mi": I(z; z'), "h_z": H(z), "h_z_given_z": H(z | z')}``.
    """
    p = torch.as_tensor(p, dtype=torch.float64)
    check_finite("p", p)
    if p.dim() != 2 or p.shape[0] != p.shape[1] or (p < 0).any() or p.sum() <= 0:
        raise ParameterError("p must be a square, non-negative matrix with a positive sum")
    p = p / p.sum()

    def entropy(q: torch.Tensor) -> float:
        q = q[q > 0]
        return float(-(q * q.log()).sum())

    h_z, h_z2, h_joint = entropy(p.sum(1)), entropy(p.sum(0)), entropy(p.flatten())
    h_cond = h_joint - h_z2
    return {"mi": h_z - h_cond, "h_z": h_z, "h_z_given_z": h_cond}


def lowest_loss_subhead(losses: Sequence[float] | np.ndarray) -> int:
    """The label-free choice of a sub-head: the one with the lowest loss on the training data.

    IIC paper, section 4 (Table 1's "lowest loss sub-head"): no label is used to pick it.

    Parameters
    ----------
    losses : sequence of float
        Each sub-head's IIC loss on the training data.

    Returns
    -------
    int
        The index of the sub-head with the lowest loss.
    """
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim != 1 or len(losses) == 0:
        raise ParameterError(f"losses must be a non-empty 1-D sequence, got shape {losses.shape}")
    return int(np.argmin(losses))


# --------------------------------------------------------------------------- network


def _at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32, or float64 if it is (never the bfloat16 of an autocast)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


#: Trunks: conv channels, kernel size. ``vgg`` is the paper's MNIST trunk (5x5 convs
#: 64-128-256-512, batch norm, max-pooling; IIC paper, supplementary material); ``small``
#: is a narrower one that trains on a laptop CPU in minutes.
TRUNKS: dict[str, tuple[tuple[int, ...], int]] = {
    "vgg": ((64, 128, 256, 512), 5),
    "small": ((16, 32, 64), 3),
}


def _trunk_spec(trunk: str | tuple) -> tuple[tuple[int, ...], int]:
    """``(channels, kernel_size)`` of a trunk name or spec, checked."""
    if isinstance(trunk, str):
        return TRUNKS[check_choice("trunk", trunk, TRUNKS)]
    try:
        channels, ksize = trunk
        channels = tuple(check_int("trunk", c, 1) for c in channels)
    except (TypeError, ValueError):
        raise ParameterError(
            f"trunk={trunk!r} must be one of {list(TRUNKS)} or a pair "
            f"(channels, kernel_size), e.g. ((16, 32), 3)"
        ) from None
    if not channels:
        raise ParameterError(f"trunk={trunk!r} needs at least one convolution")
    return channels, check_int("trunk", ksize, 1)


def trunk_min_size(trunk: str | tuple) -> int:
    """Smallest image side the trunk accepts: each of its max-poolings halves the side.

    Parameters
    ----------
    trunk : str or tuple
        A trunk as :class:`IIC` takes it (a name or a tuple of layer specifications).

    Returns
    -------
    int
        The smallest height and width, in pixels, that leave every pooling at least one pixel.
    """
    channels, _ = _trunk_spec(trunk)
    return 2 ** (len(channels) - 1)


class _ChannelsLastGrad(torch.autograd.Function):
    """The identity, whose backward hands the gradient on in channels-last memory order.

    Flattening a channels-last map copies it into channel-major order, and the copy's gradient
    comes back in that order; without this, the last ReLU and batch norm of the trunk would run
    their backward passes on operands of two memory orders (a slower kernel). A change of memory
    order moves numbers without arithmetic, so the gradients are bit-identical.
    """

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor) -> torch.Tensor:
        return h.view_as(h)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous(memory_format=torch.channels_last)


class SobelInput(nn.Module):
    """The IIC paper's Sobel input for colour images: greyscale, then the two Sobel gradients.

    IIC paper, section 4.1 and its CIFAR-10 / STL10 code: colour images are turned to grey
    (ITU-R 601-2 luma, ``0.299 R + 0.587 G + 0.114 B``, as PIL's greyscale conversion) and
    filtered with the horizontal and vertical 3 x 3 Sobel kernels (zero padding), so that the
    network sees edges, not colour, and cannot cluster by colour alone. A fixed layer with no
    parameters: it maps (N, C, H, W) to (N, 2, H, W); a one-channel image is its own grey.
    The paper's code applies it to x and g(x) before the network, here it is the network's
    first layer, so that :meth:`IIC.predict` applies it too (the same numbers).
    """

    def __init__(self) -> None:
        super().__init__()
        dx = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
        self.register_buffer("kernel", torch.stack([dx, dx.T]).unsqueeze(1), persistent=False)
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 3:
            grey = torch.einsum("nchw,c->nhw", x, self.luma.to(x.dtype)).unsqueeze(1)
        elif x.shape[1] == 1:
            grey = x
        else:
            raise ParameterError(f"the Sobel input takes 1 or 3 channels, got {x.shape[1]}")
        return F.conv2d(grey, self.kernel.to(x.dtype), padding=1)


class ClusterNet(nn.Module):
    """A convolutional trunk and two clustering heads with several sub-heads each.

    The main head has ``n_clusters`` clusters (the number of classes); the overclustering
    head ``n_overclusters`` (many more, to absorb distractor and fine-grained structure;
    IIC paper, section 3.2 "auxiliary overclustering"). Every sub-head is a linear layer on
    the trunk's features followed by a softmax; sub-heads differ only by their random
    initialisation (the paper's remedy against bad initialisations).

    Parameters
    ----------
    in_channels, input_size : int
        Shape of the images (C, input_size, input_size); ``input_size`` at least
        :func:`trunk_min_size`.
    n_clusters : int
        Clusters of the main head.
    n_overclusters : int or None
        Clusters of the overclustering head; None for no such head.
    n_subheads : int
        Sub-heads per head.
    trunk : str or (channels, kernel_size)
        A key of :data:`TRUNKS` or its value: conv-BN-ReLU blocks with max-pooling
        after every block but the last.
    sobel : bool
        Start the trunk with :class:`SobelInput` (the paper's input for colour images).
    """

    def __init__(
        self,
        in_channels: int,
        input_size: int,
        n_clusters: int,
        n_overclusters: int | None = 50,
        n_subheads: int = 5,
        trunk: str | tuple = "vgg",
        sobel: bool = False,
    ) -> None:
        super().__init__()
        channels, ksize = _trunk_spec(trunk)
        check_int("in_channels", in_channels, 1)
        check_int("input_size", input_size, trunk_min_size(trunk))
        check_int("n_clusters", n_clusters, 2)
        if n_overclusters is not None:
            check_int("n_overclusters", n_overclusters, 2)
        check_int("n_subheads", n_subheads, 1)
        check_choice("sobel", sobel, (True, False))
        if sobel and in_channels not in (1, 3):
            raise ParameterError(f"sobel=True takes images of 1 or 3 channels, got in_channels={in_channels}")
        layers: list[nn.Module] = [SobelInput()] if sobel else []
        c_in = 2 if sobel else in_channels
        for i, c in enumerate(channels):
            layers += [nn.Conv2d(c_in, c, ksize, padding=ksize // 2, bias=False), nn.BatchNorm2d(c)]
            # max-pooling before the ReLU: the two commute (max(relu(a)) = relu(max(a)), and the
            # gradients agree), so the ReLU runs on a quarter of the values; no parameter moves
            if i < len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
            layers.append(nn.ReLU(inplace=True))
            c_in = c
        self.trunk = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            n_feat = self.trunk(torch.zeros(2, in_channels, input_size, input_size)).shape[1]
        self.heads = nn.ModuleDict(
            {"main": nn.ModuleList(nn.Linear(n_feat, n_clusters) for _ in range(n_subheads))}
        )
        if n_overclusters:
            self.heads["over"] = nn.ModuleList(nn.Linear(n_feat, n_overclusters) for _ in range(n_subheads))

    def cluster(self, h: torch.Tensor, head: str = "main") -> torch.Tensor:
        """Cluster probabilities of ``head`` from trunk features ``h``, (n_subheads, N, k).

        The sub-heads' layers are applied as one: their weights stacked into a single matrix
        product and one softmax (per sub-head, the same numbers up to rounding).
        """
        subheads = self.heads[head]
        weight = torch.cat([lin.weight for lin in subheads])
        bias = torch.cat([lin.bias for lin in subheads])
        logits = _at_least_float32(F.linear(h, weight, bias)).view(len(h), len(subheads), -1)
        return F.softmax(logits, dim=2).transpose(0, 1)

    def forward(self, x: torch.Tensor, head: str = "main") -> torch.Tensor:
        """Cluster probabilities of ``head`` for images ``x``, shape (n_subheads, N, k)."""
        return self.cluster(self.trunk(x), head)

    def features(self, *batches: torch.Tensor) -> torch.Tensor:
        """Trunk features of several batches, concatenated: ``cat([trunk(b) for b in batches])``.

        Batch norm normalises each batch with its own statistics (and updates its running
        statistics batch after batch), as separate calls would; every other layer runs
        once on all the images, which saves the fixed cost of a call on small images. A
        channels-last map gets its gradient back channels-last through the flattening
        (:class:`_ChannelsLastGrad`; the same numbers, a faster backward pass).
        """
        sizes = [len(b) for b in batches]
        h = torch.cat(batches)
        for layer in self.trunk:
            if isinstance(layer, _BatchNorm):  # also the synchronised one of distributed training
                h = torch.cat([layer(part) for part in h.split(sizes)])
            else:
                if isinstance(layer, nn.Flatten) and h.is_contiguous(memory_format=torch.channels_last):
                    h = _ChannelsLastGrad.apply(h)
                h = layer(h)
        return h


# --------------------------------------------------------------------------- estimator

#: IIC's recipes by name: the network and its optimisation (``n_overclusters`` is a choice of its
#: own). ``"paper"`` is the paper's MNIST recipe (IIC paper, supplementary material; the
#: estimator's defaults), for 24 px inputs on a GPU; ``"cpu"`` the book's CPU recipe for 12 px
#: inputs (chapter 3 explains each change: a narrow trunk, smaller batches with more steps, a
#: larger learning rate, ``lamb = 1.5``); ``"cifar"`` the paper's CIFAR-10 recipe (its commands, model
#: 640: the Sobel input, batches of 660 pairs = 220 images x 3 repeats, lr 1e-4; the paper's trunk
#: there is a ResNet, this one the VGG trunk of its MNIST recipe, a departure; with
#: ``n_overclusters=70``).
PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(trunk="vgg", n_subheads=5, batch_size=140, repeats=5, lr=1e-4, lamb=1.0),
    "cpu": dict(trunk="small", n_subheads=5, batch_size=32, repeats=4, lr=2e-3, lamb=1.5),
    "cifar": dict(trunk="vgg", sobel=True, n_subheads=5, batch_size=220, repeats=3, lr=1e-4, lamb=1.0),
}


def preset(name: str, **overrides: Any) -> dict[str, Any]:
    """The recipe ``PRESETS[name]`` with every override that is not None (None keeps the preset's value).

    What a chapter or a command line passes to :class:`IIC`: its parameters default to None,
    and those given replace the preset's, e.g. ``preset("cpu", batch_size=64, lr=None)``.
    A parameter whose None means something (``n_overclusters=None``: no such head) is set
    apart.

    Parameters
    ----------
    name : str
        A key of :data:`PRESETS`.
    **overrides
        :class:`IIC` parameters; unknown names are refused.

    Returns
    -------
    dict
        Keyword arguments for :class:`IIC`.
    """
    check_choice("preset", name, PRESETS)
    unknown = sorted(set(overrides) - set(IIC().get_params()))
    if unknown:
        raise ParameterError(f"{unknown} are not parameters of IIC")
    return {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}


class IIC(ClusterMixin, _TorchEstimator):
    """Invariant Information Clustering, trained end to end (a scikit-learn estimator).

    Training maximises I(E(x); E(g x)) (talk, eq. 4) with :func:`iic_loss`, averaged over
    the sub-heads of a head. Heads are trained alternately (IIC paper, section 4: in each
    epoch ``over_passes`` passes over the data with the overclustering head, then
    ``main_passes`` with the main head). Each batch holds ``batch_size`` images, each
    repeated ``repeats`` times with its own g (sample repeats). The reported clustering is
    the main-head sub-head with the lowest loss on the training data
    (:func:`lowest_loss_subhead`): no labels are used to choose it.

    Training is bounded by ``epochs``; for time-to-accuracy, read ``seconds`` and ``acc``
    off :attr:`history_`.

    Under ``torchrun`` (any ``torch.distributed`` process group) :meth:`fit` trains
    data-parallel with the mathematics of one process (:mod:`infoclust.distributed`): every
    process draws the same batch order and the same g for the whole batch, feeds its block
    of the batch's images (with their copies) to the network, sums its sub-heads' joint
    counts with every other process's, gradient included, before the loss, normalises batch
    norm with the whole batch's statistics and averages the gradients. ``batch_size`` is the
    global batch and must be a multiple of the number of processes. Only rank 0 shows
    progress and writes the checkpoint.

    Parameters
    ----------
    n_clusters : int
        Clusters of the main head (>= 2).
    n_overclusters : int or None
        Clusters of the overclustering head (>= 2), or None to train without one.
    n_subheads : int
        Sub-heads per head.
    trunk : str or (channels, kernel_size)
        See :class:`ClusterNet`; ``"vgg"`` is the paper's MNIST network.
    sobel : bool
        Feed the trunk the Sobel gradients of the grey image (:class:`SobelInput`), as the
        paper does for colour images (CIFAR-10, STL10); images of 1 or 3 channels.
    g : callable, optional
        The random perturbation: maps a batch (N, C, H, W) to a batch of the same shape,
        dtype and device, with fresh randomness per call. Default
        :class:`~infoclust.augment.MNISTTransform`. A g of :mod:`infoclust.transforms` (a
        :class:`~infoclust.transforms.Transform`) is seeded from ``seed``: :meth:`fit` trains
        with ``for_run(g, seed)`` (:func:`~infoclust.transforms.for_run`), a copy, so ``g``
        itself is never drawn from. Any other callable is used as it is; one that draws from
        torch's global generator is reproducible too: :meth:`fit` runs with the global
        generator seeded from ``seed`` and restores it afterwards.
    epochs : int
        Number of epochs.
    batch_size : int
        Distinct images per batch (the pairs per batch are ``batch_size * repeats``).
    repeats : int
        Sample repeats: copies of each image per batch, each with its own g.
    main_passes, over_passes : int
        Passes over the data per epoch with the main and the overclustering head.
    lr : float
        Adam learning rate.
    lamb : float
        Weight of the marginal entropies in :func:`iic_loss`.
    eval_every : int
        Score the model on all the training data (loss and I per sub-head, the chosen
        sub-head, accuracy with ``y``) before training and after every ``eval_every``-th
        epoch; the last epoch is always scored. Scoring draws g too, so changing
        ``eval_every`` changes the draws of later epochs.
    seed : int
        Seeds initialisation, batch order and every g of :mod:`infoclust.transforms`, in
        [0, 2**32 - 1]; the global random state is left as it was.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    amp : bool or "auto"
        Mixed precision (bfloat16 autocast); ``"auto"`` uses it on CUDA only.
    verbose : bool
        Show a tqdm progress bar (on rank 0).
    checkpoint : str or None
        File written atomically after every epoch with the network, the optimiser, the
        history and the random states of every process (:mod:`infoclust.checkpoint`);
        ``fit(x, resume=True)`` continues from it. Every g of :mod:`infoclust.transforms`
        keeps its random state across a resume (:meth:`~infoclust.transforms.Transform.generators`);
        another callable does if it draws from torch's global generator or exposes its
        :class:`torch.Generator` as ``g.generator``.

    Attributes
    ----------
    net_ : ClusterNet
    g_ : callable
        The perturbation used: ``for_run(g, seed)``, or ``g`` itself if it is not a
        :class:`~infoclust.transforms.Transform`.
    device_ : torch.device
        Where the network lives.
    image_shape_ : tuple of int
        (C, H, W) of the training images; :meth:`predict` needs the same.
    labels_ : np.ndarray
        Clusters of the training images by the chosen sub-head.
    best_subhead_ : int
        The main-head sub-head with the lowest training loss.
    best_subheads_ : dict
        The lowest-loss sub-head of each head, ``{"main": ..., "over": ...}``.
    subhead_losses_ : np.ndarray
        That loss for each main-head sub-head, at the end of training.
    history_ : list of dict
        One record per scored epoch (epoch 0 is before training): ``epoch``, ``seconds``
        (training time so far, scoring excluded), ``pairs`` (pairs seen), ``train_loss``
        (mean batch loss of the main head since the previous record), ``loss`` and
        ``loss_over`` (full-data loss per sub-head), ``subhead`` and ``subhead_over`` (the
        lowest-loss sub-head, :func:`lowest_loss_subhead`), ``mi`` and ``mi_over``
        (I(z; z') per sub-head, nats), ``joint`` (the main head's P per sub-head,
        (n_subheads, k, k)), and, when ``y`` was given to :meth:`fit`, ``acc`` (accuracy
        per sub-head; reporting only).
    train_seconds_ : float
        Training time, scoring excluded.
    """

    def __init__(
        self,
        n_clusters: int = 10,
        *,
        n_overclusters: int | None = 50,
        n_subheads: int = 5,
        trunk: str | tuple = "vgg",
        sobel: bool = False,
        g: Callable[[torch.Tensor], torch.Tensor] | None = None,
        epochs: int = 10,
        batch_size: int = 140,
        repeats: int = 5,
        main_passes: int = 2,
        over_passes: int = 1,
        lr: float = 1e-4,
        lamb: float = 1.0,
        eval_every: int = 1,
        seed: int = 0,
        device: str = "auto",
        amp: bool | str = "auto",
        verbose: bool = True,
        checkpoint: str | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.n_overclusters = n_overclusters
        self.n_subheads = n_subheads
        self.trunk = trunk
        self.sobel = sobel
        self.g = g
        self.epochs = epochs
        self.batch_size = batch_size
        self.repeats = repeats
        self.main_passes = main_passes
        self.over_passes = over_passes
        self.lr = lr
        self.lamb = lamb
        self.eval_every = eval_every
        self.seed = seed
        self.device = device
        self.amp = amp
        self.verbose = verbose
        self.checkpoint = checkpoint

    # ---------------------------------------------------------------- checks

    _progress_name, _progress_unit = "IIC", "epoch"

    def _check_params(self) -> None:
        check_int("n_clusters", self.n_clusters, 2)
        if self.n_overclusters is not None:
            check_int("n_overclusters", self.n_overclusters, 2)
        check_int("n_subheads", self.n_subheads, 1)
        _trunk_spec(self.trunk)
        check_choice("sobel", self.sobel, (True, False))
        if self.g is not None and not callable(self.g):
            raise ParameterError(f"g={self.g!r} must be a callable batch -> batch")
        self._check_training_params()
        check_int("repeats", self.repeats, 1)
        check_int("main_passes", self.main_passes, 1)
        check_int("over_passes", self.over_passes, 0)
        check_number("lamb", self.lamb, 0)
        check_int("eval_every", self.eval_every, 1)
        check_choice("amp", self.amp, ("auto", True, False))

    def _min_image_size(self) -> int:
        return trunk_min_size(self.trunk)

    def _check_fit_data(self, x: torch.Tensor, y: Any) -> np.ndarray | None:
        y = None if y is None else check_labels("y", y, len(x)).numpy()
        distributed.check_batch(self.batch_size, len(x))
        return y

    def _perturb(self, x: torch.Tensor) -> torch.Tensor:
        out = self.g_(x)
        if not torch.is_tensor(out) or out.shape != x.shape or out.device != x.device or out.dtype != x.dtype:
            got = (
                f"{tuple(out.shape)} {out.dtype} on {out.device}"
                if torch.is_tensor(out)
                else type(out).__name__
            )
            raise ParameterError(
                f"g must map a batch {tuple(x.shape)} {x.dtype} on {x.device} to one of the "
                f"same shape, dtype and device, got {got}"
            )
        return out

    # ---------------------------------------------------------------- training

    def _heads(self) -> list[str]:
        over = ["over"] * self.over_passes if self.n_overclusters is not None else []
        return over + ["main"] * self.main_passes

    def _autocast(self):
        use = self.amp is True or (self.amp == "auto" and self.device_.type == "cuda")
        return torch.autocast(self.device_.type, dtype=torch.bfloat16) if use else nullcontext()

    def _pass_order(self, n: int) -> torch.Tensor:
        """The order of the images in one pass over the data: the one source of batch order.

        A permutation of ``range(n)`` (on the CPU) drawn from the estimator's own generator;
        the pass has ``len(order) // batch_size`` batches.
        """
        return torch.randperm(n, generator=self._order_generator)

    def _step(self, xb: torch.Tensor, head: str, opt: torch.optim.Optimizer) -> float:
        """One Adam step of ``head``'s sub-heads (and the trunk) on the batch ``xb``; returns the loss.

        Under ``torch.distributed`` every rank passes the whole batch: g perturbs all of it (the
        draws of one process), each rank runs its block (:func:`~infoclust.distributed.shard`),
        and the joint counts are summed over the ranks before the loss.
        """
        # x is the same for every repeat, so E(x) is computed once per image and repeated;
        # batch-norm statistics of the repeated batch equal those of the distinct images.
        x_tf = self._perturb(xb.repeat_interleave(self.repeats, 0))
        mine = distributed.shard(len(xb))
        xb, x_tf = xb[mine], x_tf[mine.start * self.repeats : mine.stop * self.repeats]
        with self._autocast():  # batch norm normalises x and g x apart (features); one head call for both
            h = self.net_.features(xb, x_tf)
            z, z_tf = self.net_.cluster(h, head).split([len(xb), len(x_tf)], 1)
        counts = joint_counts(z.repeat_interleave(self.repeats, 1), z_tf)  # (n_subheads, k, k): a sum
        loss = loss_from_counts(
            distributed.all_reduce_sum(counts), self.lamb
        ).mean()  # the whole batch's, every rank
        opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(
            self.net_.parameters()
        )  # = one process's gradient (distributed module docstring)
        opt.step()
        return loss.item()

    def _train_epoch(self, x: torch.Tensor, epoch: int, progress: Callable[[], Any]) -> None:
        """One epoch (the head schedule of :meth:`_heads`); counts the pairs, keeps the main head's losses.

        Raises :class:`~infoclust.utils.TrainingDivergedError` at the first non-finite loss.
        """
        step = 0
        for head in self._heads():
            order = self._pass_order(len(x)).to(x.device)
            for b in range(len(order) // self.batch_size):
                step += 1
                loss = self._step(x[order[b * self.batch_size : (b + 1) * self.batch_size]], head, self._opt)
                check_not_diverged(
                    "IIC training",
                    f"the {head} head's loss",
                    loss,
                    epoch=epoch,
                    step=step,
                    lower=f"lr (now {self.lr}), or check that g returns finite images",
                )
                self._pairs += self.batch_size * self.repeats
                if head == "main":
                    self._losses.append(loss)
        progress()

    def _evaluate(self, x: torch.Tensor, y: np.ndarray | None, epoch: int) -> dict[str, Any] | None:
        """:meth:`_score` every ``eval_every`` epochs (0 too) and at the last; pairs seen, mean loss."""
        if epoch % self.eval_every != 0 and epoch != self.epochs:
            return None
        rec, self._pred = self._score(x, y)
        losses, self._losses = self._losses, []
        return {"pairs": self._pairs, "train_loss": float(np.mean(losses)) if losses else math.nan, **rec}

    def _postfix(self, record: dict[str, Any]) -> dict[str, str]:
        best = record["subhead"]
        return {
            "loss": f"{record['loss'][best]:.3f}",
            **({"acc": f"{record['acc'][best]:.3f}"} if "acc" in record else {}),
        }

    @torch.no_grad()
    def _score(self, x: torch.Tensor, y: np.ndarray | None) -> tuple[dict[str, Any], np.ndarray]:
        """Full-data loss, I, chosen sub-head of each head (label-free), with y accuracies; clusters."""
        self.net_.eval()
        counts: dict[str, Any] = {head: 0.0 for head in self.net_.heads}
        pred = []
        for xb in x.split(1000):
            xb_tf, mine = (
                self._perturb(xb),
                distributed.shard(len(xb)),
            )  # g of the whole chunk; this rank's block
            check_finite("g(x)", xb_tf)  # training checks its loss; scoring (from epoch 0) checks g
            with self._autocast():
                h, h_tf = self.net_.trunk(xb[mine]), self.net_.trunk(xb_tf[mine])
                z = {head: (self.net_.cluster(h, head), self.net_.cluster(h_tf, head)) for head in counts}
            for head, (zh, zh_tf) in z.items():  # the counts in float32, outside the autocast
                counts[head] = counts[head] + joint_counts(_at_least_float32(zh), _at_least_float32(zh_tf))
            pred.append(distributed.gather_rows(z["main"][0].argmax(2).t(), len(xb)).t().cpu())
        rec: dict[str, Any] = {}
        for head, c in counts.items():
            c = distributed.all_reduce_sum(c)
            suffix = "" if head == "main" else "_over"
            joint = _symmetric_joint(c)
            rec["loss" + suffix] = loss_from_counts(c, self.lamb).tolist()
            rec["subhead" + suffix] = lowest_loss_subhead(rec["loss" + suffix])
            rec["mi" + suffix] = [information(p)["mi"] for p in joint]
            if head == "main":
                rec["joint"] = joint.cpu().numpy()
        pred = torch.cat(pred, 1).numpy()
        if y is not None:
            rec["acc"] = [cluster_accuracy(y, p) for p in pred]
        self.net_.train()
        return rec, pred

    def fit(
        self,
        x: torch.Tensor | np.ndarray,
        y: torch.Tensor | np.ndarray | None = None,
        *,
        resume: bool = False,
    ) -> "IIC":
        """Train on square images ``x`` (N, C, H, H); ``y`` (integer labels) only for the history.

        With ``resume=True``, training continues from the file ``checkpoint`` (if it exists;
        otherwise it starts afresh with a warning) up to ``epochs``; on the CPU the result
        is bit-identical to a run that was never interrupted. Under ``torch.distributed``
        (launched by ``torchrun``, whose process group ``fit`` joins) it trains
        data-parallel (class docstring). The scaffolding is the training base's
        (:mod:`infoclust._training`).

        Raises :class:`~infoclust.utils.ParameterError` for bad parameters or images (NaN,
        wrong rank, too small for the trunk), ``TypeError`` for integer images,
        :class:`~infoclust.utils.ParameterError` for a ``g`` that changes the batch's shape,
        dtype or device, for processes with different parameters, seeds, data or networks, a
        ``batch_size`` that does not divide among them, and a checkpoint of other parameters;
        and :class:`~infoclust.utils.TrainingDivergedError` if the loss becomes non-finite.
        """
        self._fit(x, y, resume=resume)
        last = self.history_[-1]
        self.subhead_losses_ = np.asarray(last["loss"])
        self.best_subheads_ = {
            head: last[key] for head, key in (("main", "subhead"), ("over", "subhead_over")) if key in last
        }
        self.best_subhead_ = self.best_subheads_["main"]
        self.labels_ = self._pred[self.best_subhead_]
        return self

    # ---------------------------------------------------------------- the training base's hooks

    def _random_scope(self):
        """Building and training run with torch's global generator seeded (a g may draw from it)."""
        return forked_global_rng(self.seed, self.device_)

    def _build(self, x: torch.Tensor) -> None:
        """The network (seeded, on the CPU, then moved), g, the batch order's generator, Adam."""
        net = ClusterNet(
            x.shape[1],
            x.shape[-1],
            self.n_clusters,
            self.n_overclusters,
            self.n_subheads,
            self.trunk,
            self.sobel,
        )
        # channels-last convolutions: 1.4x faster on the CPU for the small trunk at 12 px (and the
        # layout cuDNN prefers under bf16); the inputs need no conversion while they have one channel
        self.net_ = net.to(self.device_, memory_format=torch.channels_last)
        self.g_ = for_run(self.g if self.g is not None else MNISTTransform(), self.seed)
        self._order_generator = torch.Generator().manual_seed(self.seed)
        # fused Adam where torch has the kernel: the same update in one pass per tensor (rounding aside)
        fused = self.device_.type in ("cpu", "cuda")
        self._opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr, fused=fused, foreach=not fused)
        self._pairs, self._losses, self._pred = 0, [], None

    def _networks(self) -> dict[str, nn.Module]:
        return {"network": self.net_}

    def _fingerprint(self, x: torch.Tensor) -> dict[str, str]:
        return checkpoint.data_fingerprint(x, self.g_)  # a resume must be on the same x and g

    def _training_scope(self):
        return distributed.synchronised_batchnorm(self.net_)

    def _state(self) -> dict[str, Any]:
        return {
            "pairs": self._pairs,
            "losses": self._losses,
            "pred": self._pred,
            "net": self.net_.state_dict(),
            "optimizer": self._opt.state_dict(),
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self.net_.load_state_dict(state["net"])
        self._opt.load_state_dict(state["optimizer"])
        self._pairs, self._losses, self._pred = state["pairs"], state["losses"], state["pred"]

    def _generators(self) -> dict[str, torch.Generator]:
        """The generators a checkpoint keeps: the batch order's and g's ("g"; "g.0", ... of a Compose)."""
        if isinstance(self.g_, Transform):
            own = self.g_.generators()
        else:
            gen = getattr(self.g_, "generator", None)
            own = {"": gen} if isinstance(gen, torch.Generator) else {}
        return {"order": self._order_generator, **{f"g.{name}".rstrip("."): gen for name, gen in own.items()}}

    # ---------------------------------------------------------------- inference

    @torch.no_grad()
    def predict_proba(
        self, x: torch.Tensor | np.ndarray, head: str = "main", subhead: int | None = None
    ) -> np.ndarray:
        """Cluster probabilities (N, k) of one sub-head (default: the head's lowest-loss one)."""
        check_is_fitted(self)
        check_choice("head", head, list(self.net_.heads))
        sub = (
            self.best_subheads_[head]
            if subhead is None
            else check_int("subhead", subhead, 0, self.n_subheads - 1)
        )
        x = self._check_x(x)
        self.net_.eval()
        with self._autocast():
            out = torch.cat([self.net_(xb.to(self.device_), head)[sub].float().cpu() for xb in x.split(1000)])
        return out.numpy()

    def predict(
        self, x: torch.Tensor | np.ndarray, head: str = "main", subhead: int | None = None
    ) -> np.ndarray:
        """Cluster of each image: argmax of :meth:`predict_proba`."""
        return self.predict_proba(x, head, subhead).argmax(1)

    def fit_predict(self, x: torch.Tensor | np.ndarray, y: Sequence | None = None) -> np.ndarray:
        """Fit (``y`` for the history only, as in :meth:`fit`), then return :attr:`labels_`."""
        return self.fit(x, y).labels_
