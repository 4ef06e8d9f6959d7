"""The talk's random classifier as the attacks use it: one helper for every perturbation g.

:class:`~infoclust.transforms.SinkhornPerturbation`, :class:`~infoclust.transforms.ADefPerturbation`
and :class:`~infoclust.w2_algorithm.W2Perturbation` attack a random, non-trainable network
(:func:`infoclust.classifiers.random_classifier`, talk section 4.3) that they build for
whatever batch comes. :class:`LazyRandomClassifier` builds it on first use, for the batch's
device, channels and image size, and keeps the latest one.

The network it returns by default (``kind="cnn"``) is :func:`fold_small_cnn` of the random
:class:`~infoclust.classifiers.SmallCNN`: the same function, rewritten for fast input
gradients (``kind="linear"`` gives the talk's code's one linear layer instead,
:func:`~infoclust.classifiers.random_linear_classifier`). The attacks take one backward pass
per candidate label, and in eval mode two layers of the CNN are affine maps that cost more
than they compute: batch normalisation (a per-channel scale and shift) and the adaptive
average pool (a fixed linear map from the last feature map to 7 x 7). Folding the first
into the convolution before it and the second into the linear layer after it removes
their cost from every pass (the time saved on small digits is in the README, "Numbers
measured once").
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import skip_init

from .classifiers import SmallCNN, random_classifier, random_linear_classifier
from .utils import check_choice, check_int, check_seed

__all__ = ["fold_small_cnn", "LazyRandomClassifier"]


def _fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """``bn(conv(x))`` in eval mode as one convolution."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    out = skip_init(
        nn.Conv2d,
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=True,
    )
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    out.weight.data = conv.weight * scale.view(-1, 1, 1, 1)
    out.bias.data = (bias - bn.running_mean) * scale + bn.bias
    return out.to(conv.weight.device)


@torch.no_grad()
def fold_small_cnn(model: SmallCNN, height: int, width: int) -> nn.Sequential:
    """A frozen :class:`~infoclust.classifiers.SmallCNN` in eval mode, folded for one image size.

    Returns an ``nn.Sequential`` of convolutions, ReLUs, max pools and linear layers that
    computes the same logits as ``model`` on ``(N, C, height, width)`` images (to float
    rounding): each eval-mode batch normalisation is folded into the convolution before it,
    and the adaptive average pool with the first linear layer into one linear layer for the
    feature map of this size. Parameters are frozen; the result is in eval mode. No random
    number is drawn (the new layers skip their initialisation).

    Parameters
    ----------
    model : SmallCNN
        In eval mode (batch normalisation uses its running statistics).
    height, width : int
        The image size the folded network will take.
    """
    check_int("height", height, 1)
    check_int("width", width, 1)
    conv1, bn1, relu1, pool1, conv2, bn2, relu2, pool2, adaptive = model.features
    flatten, linear1, relu3, linear2 = model.head
    trunk = nn.Sequential(
        _fold_conv_bn(conv1, bn1), nn.ReLU(), pool1, _fold_conv_bn(conv2, bn2), nn.ReLU(), pool2
    )
    device = conv1.weight.device
    channels, h, w = trunk(torch.zeros(1, conv1.in_channels, height, width, device=device)).shape[1:]
    basis = torch.eye(channels * h * w, device=device).view(-1, channels, h, w)
    pooled = adaptive(basis).flatten(1)  # (C h w, C 7 7): the pool as a matrix
    head = skip_init(nn.Linear, channels * h * w, linear1.out_features, device=device)
    head.weight.data = (pooled @ linear1.weight.T).T.contiguous()
    head.bias.data = linear1.bias.clone()
    folded = nn.Sequential(*trunk, nn.Flatten(), head, nn.ReLU(), linear2)
    # channels-last convolutions and max pools: oneDNN's fast layout for them on the CPU
    return folded.to(memory_format=torch.channels_last).requires_grad_(False).eval()


class LazyRandomClassifier:
    """The talk's random classifier, built on first use for each batch's device and shape.

    Parameters
    ----------
    n_random_classes : int
        Classes of the random classifier (any number >= 2).
    seed : int
        Seed of its weights, in [0, 2**32 - 1]; draw ``k`` (see :meth:`model_for`) uses
        ``seed + k`` modulo 2**32. The global random state is never touched.
    kind : {"cnn", "linear"}
        ``"cnn"``: :func:`fold_small_cnn` of :func:`~infoclust.classifiers.random_classifier`
        (the book's); ``"linear"``: :func:`~infoclust.classifiers.random_linear_classifier`,
        one linear layer on the flattened pixels (the talk's code).
    """

    def __init__(self, n_random_classes: int, seed: int, kind: str = "cnn") -> None:
        self.n_random_classes = check_int("n_random_classes", n_random_classes, 2)
        self.seed = check_seed("seed", seed)
        self.kind = check_choice("kind", kind, ("cnn", "linear"))
        self._latest: tuple[tuple, nn.Module] | None = None

    def model_for(self, x: torch.Tensor, draw: int = 0) -> nn.Module:
        """The random classifier (float32, folded if a CNN) for batches shaped like ``x`` on ``x.device``.

        ``draw`` numbers independent classifiers (0: the one of ``seed``). Only the latest
        classifier is kept, so alternating shapes or draws rebuilds it (a few ms).
        """
        key = (str(x.device), *x.shape[1:], draw)
        if self._latest is None or self._latest[0] != key:
            seed = (self.seed + draw) % 2**32
            if self.kind == "linear":
                net = random_linear_classifier(x.shape[1:], self.n_random_classes, seed, device=x.device)
            else:
                cnn = random_classifier(x.shape[1], self.n_random_classes, seed, device=x.device)
                net = fold_small_cnn(cnn, *x.shape[-2:])
            self._latest = (key, net)
        return self._latest[1]

    def __repr__(self) -> str:
        kind = "" if self.kind == "cnn" else f", kind={self.kind!r}"
        return f"LazyRandomClassifier(n_random_classes={self.n_random_classes}, seed={self.seed}{kind})"
