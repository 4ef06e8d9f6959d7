"""Small image classifiers: a trainable CNN for attacks and the talk's random classifier.

The Wasserstein attack (:mod:`infoclust.projected_sinkhorn`) and ADef (:mod:`infoclust.adef`)
need a differentiable classifier. Two kinds are used in the book:

* :class:`SmallCNN` trained with :func:`train_classifier` — the "standard model" that
  the papers attack (Wong et al. 2019 report 99 % clean accuracy on MNIST);
  :func:`train_small_cnn` builds, trains and scores one from a single seed (chapters 6 and 7);
* :func:`random_classifier` — the talk's proposal (section 4.3): clustering has no
  label ``y``, so perturbations are driven by a random, non-trainable network with an
  arbitrary number of classes, attacked on its own predictions;
  :func:`random_linear_classifier` is the one the talk's code used: a single random linear
  layer on the flattened pixels.
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from .utils import (
    ParameterError,
    check_bool,
    check_generator,
    check_images,
    check_int,
    check_labels,
    check_not_diverged,
    check_number,
    check_seed,
    forked_global_rng,
    resolve_device,
)

__all__ = [
    "SmallCNN",
    "train_classifier",
    "train_small_cnn",
    "predict",
    "accuracy",
    "random_classifier",
    "random_linear_classifier",
]


class SmallCNN(nn.Module):
    """Two 5x5 conv blocks and a two-layer head: ``(N, C, H, W) -> (N, n_classes)`` logits.

    conv(C -> w) - BN - ReLU - maxpool 2 - conv(w -> 2w) - BN - ReLU - maxpool 2 -
    adaptive average pool to 7 x 7 - linear(98 w -> 128) - ReLU - linear(128 -> n_classes),
    all convolutions 5 x 5. On 28 x 28 inputs the adaptive pool is the identity; it lets
    the same network take any image size (the 8 x 8 ``digits`` too). Batch normalisation
    is there for the trained model's accuracy (the run that chose it is in the README,
    "Numbers measured once"); in eval mode, and untrained (the random classifier), it is
    an affine map.

    Parameters
    ----------
    in_channels : int
        Image channels ``C``.
    n_classes : int
        Number of outputs (any number >= 2; the random classifier of the talk may use
        more classes than the data set has).
    width : int
        Channels ``w`` of the first convolution.
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        in_channels = check_int("in_channels", in_channels, 1)
        n_classes = check_int("n_classes", n_classes, 2)
        width = check_int("width", width, 1)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 5, padding=2),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 5, padding=2),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(7),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * width * 49, 128), nn.ReLU(), nn.Linear(128, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _check_model_images(model: nn.Module, x) -> torch.Tensor:
    """``x`` checked as images for ``model``: its parameters' dtype, its first convolution's channels."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    channels = next((m.in_channels for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return check_images("x", x, dtype=dtype, channels=channels)


@torch.no_grad()
def _n_outputs(model: nn.Module, x: torch.Tensor) -> int:
    """The number of classes of ``model``: the width of its output on one image of ``x`` (in eval mode).

    Raises :class:`~infoclust.utils.ParameterError` naming ``x`` when the model cannot take its images.
    """
    training = model.training
    try:
        return model.eval()(x[:1]).shape[-1]
    except RuntimeError as err:
        raise ParameterError(
            f"x: the model cannot take images of shape {tuple(x.shape[1:])} ({err})"
        ) from None
    finally:
        model.train(training)


def _shift(x: torch.Tensor, max_shift: int, gen: torch.Generator | None) -> torch.Tensor:
    """Translate every image of the batch by its own random integer offset (zero fill)."""
    n, _, h, w = x.shape
    pad = nn.functional.pad(x, (max_shift,) * 4)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n), generator=gen).to(x.device)
    out = torch.empty_like(x)
    for i in range(2 * max_shift + 1):  # one slice per offset, not per image
        for j in range(2 * max_shift + 1):
            sel = (dy == i) & (dx == j)
            out[sel] = pad[sel, :, i : i + h, j : j + w]
    return out


def train_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int = 15,
    batch_size: int = 64,
    lr: float = 2e-3,
    max_shift: int = 1,
    device: str | torch.device = "auto",
    generator: torch.Generator | None = None,
    verbose: bool = True,
) -> nn.Module:
    """Train ``model`` with Adam on cross-entropy and return it (in eval mode).

    The learning rate follows a cosine schedule to zero over all steps. Each batch is
    augmented by random translations of up to ``max_shift`` pixels (0 turns this off).
    The accuracy and training time this reaches are measured by the book's chapters 6 and 7
    (their reproduction-ledger entries), not quoted here.

    Parameters
    ----------
    model : nn.Module
        Maps ``(N, C, H, W)`` images to ``(N, K)`` logits; moved to ``device``.
    x, y : torch.Tensor or np.ndarray
        Images (N, C, H, W) in [0, 1] (converted to the model's dtype) and integer labels in
        ``[0, K)``.
    epochs, batch_size, lr : int, int, float
        Passes over the data, mini-batch size and the initial Adam learning rate.
    max_shift : int
        Largest random translation in pixels.
    device : str or torch.device
        ``"auto"`` picks CUDA when present (:func:`infoclust.utils.resolve_device`).
    generator : torch.Generator or None
        CPU generator of the batch order and the augmentation; None: torch's global one.
    verbose : bool
        Show a tqdm bar over epochs.

    Returns
    -------
    nn.Module
        The same model, trained, on ``device``, in eval mode.

    Raises
    ------
    TrainingDivergedError
        When the loss becomes non-finite (say at which epoch and step; lower ``lr``).
    """
    epochs = check_int("epochs", epochs, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    lr = check_number("lr", lr, 0.0, strict_low=True)
    max_shift = check_int("max_shift", max_shift, 0)
    x = _check_model_images(model, x)
    gen = check_generator("generator", generator)
    check_bool("verbose", verbose)
    dev = resolve_device(device)
    model, x = model.to(dev), x.to(dev)
    y = check_labels("y", y, len(x), _n_outputs(model, x)).to(dev)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(x) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    bar = tqdm(range(epochs), desc="train", disable=not verbose)
    for epoch in bar:
        total = 0.0
        for step, idx in enumerate(torch.randperm(len(x), generator=gen).split(batch_size), 1):
            idx = idx.to(dev)
            xb = _shift(x[idx], max_shift, gen) if max_shift else x[idx]
            loss = nn.functional.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            value = check_not_diverged(
                "train_classifier",
                "the loss",
                loss.item(),
                epoch=epoch + 1,
                step=step,
                lower=f"lr (now {lr})",
            )
            total += value * len(idx)
        bar.set_postfix(loss=f"{total / len(x):.4f}")
    return model.eval()


def train_small_cnn(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    seed: int,
    epochs: int = 15,
    device: str | torch.device = "auto",
    verbose: bool = True,
) -> tuple[SmallCNN, float]:
    """A :class:`SmallCNN` built, trained and scored from one seed: the attacked model of chapters 6 and 7.

    ``seed`` decides everything random: the network's default initialisation (drawn on the
    CPU inside :func:`~infoclust.utils.forked_global_rng`, so the global random state is
    left as it was) and, through a CPU generator seeded with it, the batch order and the
    augmentation of :func:`train_classifier` (its other settings at their defaults).

    Parameters
    ----------
    x_train, y_train : torch.Tensor
        Training images (N, C, H, W) in [0, 1] and their integer labels.
    x_test, y_test : torch.Tensor
        Held-out images and labels, for the returned accuracy.
    seed : int
        Seed of the weights, the batch order and the augmentation, in [0, 2**32 - 1].
    epochs : int
        Passes over the training images.
    device : str or torch.device
        Where to train (``"auto"``: CUDA when present).
    verbose : bool
        Show a tqdm bar over epochs.

    Returns
    -------
    model : SmallCNN
        The trained network, on ``device``, in eval mode, with ``C`` input channels and one
        output per class ``0 .. max(y_train, y_test)``.
    test_accuracy : float
        The fraction of ``x_test`` that it labels as ``y_test``, in [0, 1].
    """
    seed = check_seed("seed", seed)
    x_train, x_test = check_images("x_train", x_train), check_images("x_test", x_test)
    labels = torch.cat(
        [check_labels("y_train", y_train, len(x_train)), check_labels("y_test", y_test, len(x_test))]
    )
    n_classes = int(labels.max()) + 1
    if n_classes < 2:
        raise ParameterError("y_train, y_test: every label is 0; a classifier needs at least two classes")
    with forked_global_rng(seed):
        model = SmallCNN(x_train.shape[1], n_classes)
    model = train_classifier(
        model,
        x_train,
        y_train,
        epochs=epochs,
        device=device,
        generator=torch.Generator().manual_seed(seed),
        verbose=verbose,
    )
    return model, accuracy(model, x_test, y_test)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Arg-max class of ``model`` for every image of ``x`` (on ``x``'s device; CPU for arrays), in batches.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier returning logits.
    x : torch.Tensor, shape (N, C, H, W)
        The images.
    batch_size : int
        Images per forward pass.

    Returns
    -------
    torch.Tensor of int64, shape (N,)
        The predicted classes.
    """
    x = _check_model_images(model, x)
    batch_size = check_int("batch_size", batch_size, 1)
    dev = next(model.parameters()).device
    out = [model(xb.to(dev)).argmax(1).to(x.device) for xb in x.split(batch_size)]
    return torch.cat(out)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Fraction of ``x`` that ``model`` labels as ``y``.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier returning logits.
    x : torch.Tensor, shape (N, C, H, W)
        The images.
    y : torch.Tensor of int, shape (N,)
        Their classes.
    batch_size : int
        Images per forward pass.

    Returns
    -------
    float
        The accuracy, in [0, 1].
    """
    pred = predict(model, x, batch_size)
    return (pred.cpu() == check_labels("y", y, len(pred))).float().mean().item()


def random_classifier(
    in_channels: int,
    n_classes: int,
    seed: int = 0,
    *,
    width: int = 16,
    device: str | torch.device = "auto",
) -> nn.Module:
    """The talk's random, non-trainable classifier (section 4.3).

    A :class:`SmallCNN` with PyTorch's default random initialisation drawn from
    ``seed``, every parameter frozen (``requires_grad=False``) and in eval mode. Its
    ``n_classes`` need not match any data set: it only supplies a differentiable
    loss (e.g. cross-entropy against its own prediction) for the attacks when
    clustering has no label ``y``.

    Parameters
    ----------
    in_channels, n_classes : int
        Image channels and number of (meaningless) classes, ``n_classes >= 2``.
    seed : int
        Seed of the weights; the global random state is left untouched.
    width : int
        Channels of the first convolution, as in :class:`SmallCNN`.
    device : str or torch.device
        Where the network lives (``"auto"``: CUDA when present).

    Returns
    -------
    nn.Module
        The frozen network.
    """
    with forked_global_rng(check_seed("seed", seed)):
        model = SmallCNN(in_channels, n_classes, width)
    model.requires_grad_(False)
    return model.to(resolve_device(device)).eval()


def random_linear_classifier(
    in_shape: int | tuple[int, ...],
    n_classes: int,
    seed: int = 0,
    *,
    device: str | torch.device = "auto",
) -> nn.Sequential:
    """The talk's random classifier as its code had it: one linear layer on the flattened pixels.

    ``nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, n_classes))`` with PyTorch's default
    random initialisation drawn from ``seed`` (the global random state is left untouched),
    every parameter frozen (``requires_grad=False``) and in eval mode; its logits are an
    affine function of the image. The talk's code (the repository behind the talk's results
    table, ``../shared/references.md``, "The talk's own results") attacked such a layer with
    10 outputs; :func:`random_classifier` is the book's convolutional one.

    Parameters
    ----------
    in_shape : int or tuple of int
        The image shape ``(C, H, W)`` (or any shape whose product is the number of inputs),
        or the number of inputs ``C * H * W`` itself.
    n_classes : int
        Number of (meaningless) classes, ``n_classes >= 2``.
    seed : int
        Seed of the weights, in [0, 2**32 - 1]; the global random state is left untouched.
    device : str or torch.device
        Where the network lives (``"auto"``: CUDA when present).

    Returns
    -------
    nn.Sequential
        The frozen network, ``(N, *in_shape) -> (N, n_classes)`` logits.
    """
    if isinstance(in_shape, (tuple, list, torch.Size)):
        if not in_shape:
            raise ParameterError("in_shape must be the image shape (C, H, W) or a number of inputs, got ()")
        in_features = 1
        for i, size in enumerate(in_shape):
            in_features *= check_int(f"in_shape[{i}]", size, 1)
    else:
        in_features = check_int("in_shape", in_shape, 1)
    n_classes = check_int("n_classes", n_classes, 2)
    with forked_global_rng(check_seed("seed", seed)):
        model = nn.Sequential(nn.Flatten(), nn.Linear(in_features, n_classes))
    model.requires_grad_(False)
    return model.to(resolve_device(device)).eval()
