"""Invariant Information Clustering (Ji, Henriques, Vedaldi, ICCV 2019; talk section 3.2).

A network E maps an image to a distribution over k clusters. For pairs (x, g x), where g
is a random perturbation that keeps the class, IIC maximises the mutual information of the
two cluster assignments (talk, eq. 2 and 4),

    max_psi I(z; z'),   z = E_psi(x),   z' = E_psi(g x),

computed exactly from the k x k joint P = 1/n sum_i E(x_i) E(g x_i)^T (talk, eq. 3).
Because I(z; z') = H(z) - H(z | z'), a degenerate clustering (one cluster for all) scores
0 and a confident, balanced one scores ln k.

Contents: :func:`joint_distribution`, :func:`iic_loss` and :func:`information` (the
objective); :class:`ClusterNet` (trunk, main head and overclustering head, each with
several sub-heads); :class:`IIC` (a scikit-learn-like estimator that trains it).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .augment import MNISTTransform
from .metrics import cluster_accuracy
from .utils import (ParameterError, check_choice, check_finite, check_int, check_number,
                    resolve_device, seed_everything)

__all__ = ["joint_distribution", "iic_loss", "information", "ClusterNet", "TRUNKS", "IIC"]


# --------------------------------------------------------------------------- objective


def joint_distribution(z: torch.Tensor, z_tf: torch.Tensor) -> torch.Tensor:
    """The symmetric joint distribution P of the cluster assignments of x and g x.

    IIC paper, eq. (3) (talk, eq. 3): P = 1/n sum_i z_i z'_i^T, then symmetrised,
    (P + P^T) / 2, since the pair (x, g x) is as likely as (g x, x).

    Parameters
    ----------
    z, z_tf : torch.Tensor
        (n, k) cluster probabilities (rows sum to 1) of x and of g x, same head.

    Returns
    -------
    torch.Tensor
        (k, k) non-negative, sums to 1, symmetric.
    """
    if z.dim() != 2 or z.shape != z_tf.shape:
        raise ParameterError(f"z and z_tf must be (n, k) of equal shape, got {tuple(z.shape)} "
                             f"and {tuple(z_tf.shape)}")
    p = z.t() @ z_tf
    p = (p + p.t()) / 2
    return p / p.sum()


#: The clamp of the reference code: double machine epsilon, whatever the tensor's dtype.
EPS = float(np.finfo(np.float64).eps)


def _loss_from_joint(p: torch.Tensor, lamb: float) -> torch.Tensor:
    eps = EPS
    p_i = p.sum(1, keepdim=True).clamp_min(eps)  # marginal of z, column vector
    p_j = p.sum(0, keepdim=True).clamp_min(eps)  # marginal of z', row vector
    p = p.clamp_min(eps)  # out of place: never writes into a broadcast view
    return -(p * (p.log() - lamb * p_i.log() - lamb * p_j.log())).sum()


def iic_loss(z: torch.Tensor, z_tf: torch.Tensor, lamb: float = 1.0) -> torch.Tensor:
    """The IIC loss of the reference code; with ``lamb = 1`` it is -I(z; z').

    IIC paper, eq. (1) and (3):
    loss = - sum_ij P_ij (ln P_ij - lamb ln P_i - lamb ln P_j), with P from
    :func:`joint_distribution` and its marginals P_i (row sums) and P_j (column sums).
    Entries below :data:`EPS` (double machine epsilon) are clamped before the logarithm (to avoid log 0);
    the clamp makes new tensors instead of writing into the expanded marginals, which
    the reference code does in place. The loss is bounded below by -ln k; ``lamb > 1``
    weighs the marginal entropies more and pushes harder against degenerate clusterings.

    Parameters
    ----------
    z, z_tf : torch.Tensor
        (n, k) softmax outputs of the same head on x and on g x.
    lamb : float
        Weight of the marginal entropy terms (1 in the paper).

    Returns
    -------
    torch.Tensor
        A scalar, differentiable with respect to ``z`` and ``z_tf``.
    """
    lamb = check_number("lamb", lamb, 0)
    dtype = torch.promote_types(z.dtype, torch.float32)  # no log of half-precision numbers
    return _loss_from_joint(joint_distribution(z.to(dtype), z_tf.to(dtype)), lamb)


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
    if p.dim() != 2 or p.shape[0] != p.shape[1] or (p < 0).any() or p.sum() <= 0:
        raise ParameterError("p must be a square, non-negative matrix with a positive sum")
    p = p / p.sum()

    def entropy(q: torch.Tensor) -> float:
        q = q[q > 0]
        return float(-(q * q.log()).sum())

    h_z, h_z2, h_joint = entropy(p.sum(1)), entropy(p.sum(0)), entropy(p.flatten())
    h_cond = h_joint - h_z2
    return {"mi": h_z - h_cond, "h_z": h_z, "h_z_given_z": h_cond}


# --------------------------------------------------------------------------- network

#: Trunks: conv channels, kernel size. ``vgg`` is the paper's MNIST trunk (5x5 convs
#: 64-128-256-512, batch norm, max-pooling; IIC paper, supplementary material); ``small``
#: is a narrower one that trains on a laptop CPU in minutes.
TRUNKS: dict[str, tuple[tuple[int, ...], int]] = {
    "vgg": ((64, 128, 256, 512), 5),
    "small": ((16, 32, 64), 3),
}


class ClusterNet(nn.Module):
    """A convolutional trunk and two clustering heads with several sub-heads each.

    The main head has ``k`` clusters (the number of classes); the overclustering head
    ``k_over`` (many more, to absorb distractor and fine-grained structure; IIC paper,
    section 3.2 "auxiliary overclustering"). Every sub-head is a linear layer on the
    trunk's features followed by a softmax; sub-heads differ only by their random
    initialisation (the paper's remedy against bad initialisations).

    Parameters
    ----------
    in_channels, input_size : int
        Shape of the images (C, input_size, input_size).
    k : int
        Clusters of the main head.
    k_over : int or None
        Clusters of the overclustering head; None for no such head.
    n_subheads : int
        Sub-heads per head.
    trunk : str or (channels, kernel_size)
        A key of :data:`TRUNKS` or its value: conv-BN-ReLU blocks with max-pooling
        after every block but the last.
    """

    def __init__(self, in_channels: int, input_size: int, k: int, k_over: int | None = 50,
                 n_subheads: int = 5, trunk: str | tuple = "vgg") -> None:
        super().__init__()
        channels, ksize = TRUNKS[trunk] if isinstance(trunk, str) else trunk
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, c in enumerate(channels):
            layers += [nn.Conv2d(c_in, c, ksize, padding=ksize // 2, bias=False),
                       nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            if i < len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
            c_in = c
        self.trunk = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            n_feat = self.trunk(torch.zeros(2, in_channels, input_size, input_size)).shape[1]
        self.heads = nn.ModuleDict({"main": nn.ModuleList(nn.Linear(n_feat, k) for _ in range(n_subheads))})
        if k_over:
            self.heads["over"] = nn.ModuleList(nn.Linear(n_feat, k_over) for _ in range(n_subheads))

    def cluster(self, h: torch.Tensor, head: str = "main") -> torch.Tensor:
        """Cluster probabilities of ``head`` from trunk features ``h``, (n_subheads, N, k)."""
        return torch.stack([F.softmax(lin(h).float(), dim=1) for lin in self.heads[head]])

    def forward(self, x: torch.Tensor, head: str = "main") -> torch.Tensor:
        """Cluster probabilities of ``head`` for images ``x``, shape (n_subheads, N, k)."""
        return self.cluster(self.trunk(x), head)


# --------------------------------------------------------------------------- estimator


class IIC:
    """Invariant Information Clustering, trained end to end (scikit-learn-like).

    Training maximises I(E(x); E(g x)) (talk, eq. 4) with :func:`iic_loss`, averaged over
    the sub-heads of a head. Heads are trained alternately (IIC paper, section 4: in each
    epoch ``over_passes`` passes over the data with the overclustering head, then
    ``main_passes`` with the main head). Each batch holds ``batch_size`` images, each
    repeated ``repeats`` times with its own g (sample repeats). The reported clustering is
    the main-head sub-head with the lowest loss on the training data: no labels are used
    to choose it.

    Parameters
    ----------
    k : int
        Clusters of the main head (>= 2).
    k_over : int or None
        Clusters of the overclustering head (>= 2), or None to train without one.
    n_subheads : int
        Sub-heads per head.
    trunk : str or (channels, kernel_size)
        See :class:`ClusterNet`; ``"vgg"`` is the paper's MNIST network.
    g : callable, optional
        The random perturbation: maps a batch (N, C, H, W) to a batch of the same shape
        on the same device, with fresh randomness per call. Default :class:`MNISTTransform`.
    epochs : int or None
        Largest number of epochs; None trains until ``max_time`` runs out.
    max_time : float or None
        Time budget in seconds of training (evaluation excluded): training stops after
        the batch that uses it up, even mid-epoch, and the model is scored as it is then.
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
    seed : int
        Seeds initialisation, shuffling and g.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    amp : bool or "auto"
        Mixed precision (bfloat16 autocast); ``"auto"`` uses it on CUDA only.
    verbose : bool
        Show a tqdm progress bar.

    Attributes
    ----------
    net_ : ClusterNet
    labels_ : np.ndarray
        Clusters of the training images by the chosen sub-head.
    best_subhead_ : int
        The main-head sub-head with the lowest training loss.
    best_subheads_ : dict
        The lowest-loss sub-head of each head, ``{"main": ..., "over": ...}``.
    subhead_losses_ : np.ndarray
        That loss for each main-head sub-head, at the end of training.
    history_ : list of dict
        One record per epoch (and one before training, epoch 0): ``epoch``, ``seconds``
        (training time so far), ``pairs`` (pairs seen), ``train_loss`` (mean batch loss
        of the main head in the epoch), ``loss`` and ``loss_over`` (full-data loss per
        sub-head), ``mi`` and ``mi_over`` (I(z; z') per sub-head, nats), ``joint`` (the
        main head's P per sub-head, (n_subheads, k, k)), and, when ``y`` was given to
        :meth:`fit`, ``acc`` (accuracy per sub-head; reporting only).
    stopped_by_ : str
        ``"epochs"`` or ``"time"``.
    train_seconds_ : float
    """

    def __init__(self, k: int = 10, k_over: int | None = 50, n_subheads: int = 5,
                 trunk: str | tuple = "vgg", g: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 epochs: int | None = 10, max_time: float | None = None, batch_size: int = 140,
                 repeats: int = 5, main_passes: int = 2, over_passes: int = 1, lr: float = 1e-4,
                 lamb: float = 1.0, seed: int = 0, device: str = "auto", amp: bool | str = "auto",
                 verbose: bool = True) -> None:
        self.k, self.k_over, self.n_subheads, self.trunk, self.g = k, k_over, n_subheads, trunk, g
        self.epochs, self.max_time, self.batch_size, self.repeats = epochs, max_time, batch_size, repeats
        self.main_passes, self.over_passes, self.lr, self.lamb = main_passes, over_passes, lr, lamb
        self.seed, self.device, self.amp, self.verbose = seed, device, amp, verbose

    # ---------------------------------------------------------------- checks

    def _check_params(self) -> None:
        check_int("k", self.k, 2)
        if self.k_over is not None:
            check_int("k_over", self.k_over, 2)
        check_int("n_subheads", self.n_subheads, 1)
        if isinstance(self.trunk, str):
            check_choice("trunk", self.trunk, TRUNKS)
        if self.g is not None and not callable(self.g):
            raise ParameterError(f"g={self.g!r} must be a callable batch -> batch")
        if self.epochs is None and self.max_time is None:
            raise ParameterError("epochs=None needs a time budget max_time")
        if self.epochs is not None:
            check_int("epochs", self.epochs, 1)
        if self.max_time is not None:
            check_number("max_time", self.max_time, 0, strict_low=True)
        check_int("batch_size", self.batch_size, 2)
        check_int("repeats", self.repeats, 1)
        check_int("main_passes", self.main_passes, 1)
        check_int("over_passes", self.over_passes, 0)
        check_number("lr", self.lr, 0, strict_low=True)
        check_number("lamb", self.lamb, 0)
        check_choice("amp", self.amp, ("auto", True, False))

    def _check_x(self, x: Any) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float32)
        if x.dim() != 4 or x.shape[-1] != x.shape[-2]:
            raise ParameterError(f"x must be square images (N, C, H, H), got shape {tuple(x.shape)}")
        check_finite("x", x)
        return x

    def _perturb(self, x: torch.Tensor) -> torch.Tensor:
        out = self.g_(x)
        if not torch.is_tensor(out) or out.shape != x.shape or out.device != x.device:
            got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
            raise ParameterError(f"g must map a batch {tuple(x.shape)} on {x.device} to one of the "
                                 f"same shape and device, got {got}")
        return out

    # ---------------------------------------------------------------- training

    def _heads(self) -> list[str]:
        over = ["over"] * self.over_passes if self.k_over is not None else []
        return over + ["main"] * self.main_passes

    def _autocast(self):
        use = self.amp is True or (self.amp == "auto" and self.device_.type == "cuda")
        return torch.autocast(self.device_.type, dtype=torch.bfloat16) if use else nullcontext()

    def _step(self, xb: torch.Tensor, head: str, opt: torch.optim.Optimizer) -> float:
        # x is the same for every repeat, so E(x) is computed once per image and repeated;
        # batch-norm statistics of the repeated batch equal those of the distinct images.
        x_tf = self._perturb(xb.repeat_interleave(self.repeats, 0))
        with self._autocast():
            z = self.net_(xb, head).repeat_interleave(self.repeats, 1)
            z_tf = self.net_(x_tf, head)
        loss = torch.stack([iic_loss(a, b, self.lamb) for a, b in zip(z, z_tf)]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    @torch.no_grad()
    def _score(self, x: torch.Tensor, y: np.ndarray | None) -> dict[str, Any]:
        """Full-data joints, losses per sub-head (label-free) and, with y, accuracies."""
        self.net_.eval()
        rec: dict[str, Any] = {}
        joints: dict[str, torch.Tensor] = {head: 0.0 for head in self.net_.heads}
        pred = []
        for xb in x.split(1000):
            with self._autocast():
                h, h_tf = self.net_.trunk(xb), self.net_.trunk(self._perturb(xb))
                z = {head: (self.net_.cluster(h, head), self.net_.cluster(h_tf, head)) for head in joints}
            for head, (zh, zh_tf) in z.items():  # the joints in float32, outside the autocast
                joints[head] = joints[head] + torch.einsum("snk,snl->skl", zh.float(), zh_tf.float())
            pred.append(z["main"][0].argmax(2).cpu())
        for head, joint in joints.items():
            joint = (joint + joint.transpose(1, 2)) / 2
            joint = joint / joint.sum((1, 2), keepdim=True)
            suffix = "" if head == "main" else "_over"
            rec["loss" + suffix] = [_loss_from_joint(p, self.lamb).item() for p in joint]
            rec["mi" + suffix] = [information(p)["mi"] for p in joint]
            if head == "main":
                rec["joint"] = joint.cpu().numpy()
        rec["pred"] = torch.cat(pred, 1).numpy()
        if y is not None:
            rec["acc"] = [cluster_accuracy(y, p) for p in rec["pred"]]
        self.net_.train()
        return rec

    def fit(self, x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray | None = None) -> "IIC":
        """Train on images ``x`` (N, C, H, H) in any range; ``y`` only for the history.

        Raises :class:`~infoclust.utils.ParameterError` for bad parameters, NaN or
        infinity in ``x``, or a ``g`` that changes the batch's shape or device.
        """
        self._check_params()
        x = self._check_x(x)
        if y is not None:
            y = torch.as_tensor(y).cpu().numpy()
            if y.shape != (len(x),):
                raise ParameterError(f"y must have shape ({len(x)},), got {y.shape}")
        if len(x) < self.batch_size:
            raise ParameterError(f"batch_size={self.batch_size} exceeds the {len(x)} images")
        gen = seed_everything(self.seed)
        self.device_ = resolve_device(self.device)
        self.g_ = self.g if self.g is not None else MNISTTransform()
        self.net_ = ClusterNet(x.shape[1], x.shape[-1], self.k, self.k_over, self.n_subheads,
                               self.trunk).to(self.device_)
        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr)
        x_dev = x.to(self.device_)
        heads, n_batches = self._heads(), len(x) // self.batch_size
        self.history_ = [{"epoch": 0, "seconds": 0.0, "pairs": 0, "train_loss": math.nan,
                          **self._score(x_dev, y)}]
        seconds, pairs, epoch, self.stopped_by_ = 0.0, 0, 0, "epochs"
        bar = tqdm(total=self.epochs, disable=not self.verbose, desc="IIC", unit="epoch")
        while self.epochs is None or epoch < self.epochs:
            epoch += 1
            main_losses = []
            for head in heads:
                order = torch.randperm(len(x), generator=gen).to(self.device_)
                for b in range(n_batches):
                    start = time.perf_counter()
                    loss = self._step(x_dev[order[b * self.batch_size:(b + 1) * self.batch_size]], head, opt)
                    seconds += time.perf_counter() - start
                    pairs += self.batch_size * self.repeats
                    if not math.isfinite(loss):
                        raise FloatingPointError(f"IIC loss became {loss} in epoch {epoch}; lower lr")
                    if head == "main":
                        main_losses.append(loss)
                    if self.max_time is not None and seconds >= self.max_time:
                        self.stopped_by_ = "time"
                        break
                if self.stopped_by_ == "time":
                    break
            rec = self._score(x_dev, y)
            self.history_.append({"epoch": epoch, "seconds": seconds, "pairs": pairs,
                                  "train_loss": float(np.mean(main_losses)) if main_losses else math.nan,
                                  **rec})
            bar.update(1)
            chosen = int(np.argmin(rec["loss"]))  # the label-free choice, as reported at the end
            bar.set_postfix(loss=f"{rec['loss'][chosen]:.3f}",
                            **({"acc": f"{rec['acc'][chosen]:.3f}"} if y is not None else {}))
            if self.stopped_by_ == "time":
                break
        bar.close()
        last = self.history_[-1]
        self.subhead_losses_ = np.asarray(last["loss"])
        self.best_subheads_ = {head: int(np.argmin(last[key]))
                               for head, key in (("main", "loss"), ("over", "loss_over")) if key in last}
        self.best_subhead_ = self.best_subheads_["main"]
        self.labels_ = last["pred"][self.best_subhead_]
        self.train_seconds_, self.n_epochs_ = seconds, epoch
        for rec in self.history_:
            del rec["pred"]
        return self

    # ---------------------------------------------------------------- inference

    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise RuntimeError("this IIC instance is not fitted yet; call fit(x) first")

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor | np.ndarray, head: str = "main",
                      subhead: int | None = None) -> np.ndarray:
        """Cluster probabilities (N, k) of one sub-head (default: the head's lowest-loss one)."""
        self._check_fitted()
        check_choice("head", head, list(self.net_.heads))
        sub = (self.best_subheads_[head] if subhead is None
               else check_int("subhead", subhead, 0, self.n_subheads - 1))
        x = self._check_x(x)
        self.net_.eval()
        with self._autocast():
            out = torch.cat([self.net_(xb.to(self.device_), head)[sub].cpu() for xb in x.split(1000)])
        return out.float().numpy()

    def predict(self, x: torch.Tensor | np.ndarray, head: str = "main",
                subhead: int | None = None) -> np.ndarray:
        """Cluster of each image: argmax of :meth:`predict_proba`."""
        return self.predict_proba(x, head, subhead).argmax(1)

    def fit_predict(self, x: torch.Tensor | np.ndarray, y: Sequence | None = None) -> np.ndarray:
        """Fit, then return :attr:`labels_`."""
        return self.fit(x, y).labels_
