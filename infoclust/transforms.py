"""Every transformation g for IIC (talk eq. (4)), from one module: ``from infoclust.transforms import ...``.

==================================  ===========================  ==========================
g                                   talk                         defined in
==================================  ===========================  ==========================
:class:`MNISTTransform`             the IIC paper's g (3.2)      :mod:`infoclust.augment`
:class:`RandomDeformation`          random deformation (4.2)     :mod:`infoclust.deform`
:class:`SinkhornPerturbation`       projected Sinkhorn (4.3)     here
:class:`ADefPerturbation`           ADef (4.4)                   here
:class:`W2Perturbation`             Algorithm 1 (4.5)            :mod:`infoclust.w2_algorithm`
:class:`PerturbationPool`           precomputed copies of any g  here
:func:`compose`                     g2(g1(x))                    here
==================================  ===========================  ==========================

Every g is a callable from a batch (N, C, H, W) to a batch of the same shape on the same
device. :class:`SinkhornPerturbation` and :class:`ADefPerturbation` are the talk's
proposals of sections 4.3 and 4.4: a Wasserstein PGD attack and an ADef deformation
against a *random, non-trainable* classifier, which stands in for the labels that
clustering does not have.

IIC (talk, eq. (4)) draws a fresh perturbation g(x) for every image in every batch. ADef,
projected Sinkhorn and the talk's Algorithm 1 cost far more than a random crop, so
:class:`PerturbationPool` runs such a g once, ``n_copies`` times per training image, and then
serves as g itself: for each image of a batch it returns one of that image's stored copies,
drawn at random. It finds an image's copies by a fingerprint of its pixels (integer
arithmetic, exact), so it works with any trainer that calls ``g(batch)`` on rows of the
training set, without passing indices. :func:`compose` chains transformations, e.g. a pool
followed by the paper's augmentations.
"""
from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from .adef import adef
from .augment import MNISTTransform
from .classifiers import random_classifier
from .deform import RandomDeformation
from .projected_sinkhorn import wasserstein_pgd
from .utils import ParameterError, check_int, check_number, make_generator
from .w2_algorithm import W2Perturbation

__all__ = ["MNISTTransform", "RandomDeformation", "SinkhornPerturbation", "ADefPerturbation",
           "W2Perturbation", "PerturbationPool", "compose", "fingerprint"]

Transform = Callable[[torch.Tensor], torch.Tensor]
_MODULUS = (1 << 61) - 1  # a Mersenne prime: products stay in int64 after the reduction below


class _RandomClassifierAttack:
    """Holds the talk's random classifier, built on first use on the batch's device."""

    def __init__(self, n_classes: int, seed: int) -> None:
        self.n_classes = check_int("n_classes", n_classes, 2)
        self.seed = check_int("seed", seed, 0)
        self._model: tuple[str, torch.nn.Module] | None = None

    def model_for(self, x: torch.Tensor) -> torch.nn.Module:
        if self._model is None or self._model[0] != str(x.device):
            self._model = (str(x.device), random_classifier(x.shape[1], self.n_classes, self.seed, device=x.device))
        return self._model[1]


class SinkhornPerturbation(_RandomClassifierAttack):
    """g(x): Wasserstein PGD (talk eq. (8)) against a random classifier, radius ``eps``.

    Each image is pushed by :func:`infoclust.projected_sinkhorn.wasserstein_pgd` away from the
    random classifier's own prediction on it, staying in the Wasserstein ball of radius
    ``eps`` (fixed: no growth), until the prediction changes or ``n_iter`` steps are done.

    Parameters
    ----------
    eps : float
        Radius of the Wasserstein ball (pixels, as in the projection).
    n_iter, alpha, lam, kernel_size, proj_iter
        As in :func:`infoclust.projected_sinkhorn.wasserstein_pgd`.
    n_classes : int
        Classes of the random classifier (any number >= 2).
    seed : int
        Seed of the random classifier's weights.
    """

    def __init__(self, eps: float = 0.5, *, n_iter: int = 10, alpha: float = 0.1, lam: float = 1000.0,
                 kernel_size: int = 5, proj_iter: int = 30, n_classes: int = 10, seed: int = 0) -> None:
        super().__init__(n_classes, seed)
        self.eps = check_number("eps", eps, 0.0, strict_low=True)
        self.n_iter = check_int("n_iter", n_iter, 1)
        self.alpha = check_number("alpha", alpha, 0.0, strict_low=True)
        self.lam = check_number("lam", lam, 0.0, strict_low=True)
        self.kernel_size = check_int("kernel_size", kernel_size, 1)
        self.proj_iter = check_int("proj_iter", proj_iter, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out, _, _ = wasserstein_pgd(self.model_for(x), x, eps0=self.eps, eps_factor=1.0, alpha=self.alpha,
                                    lam=self.lam, kernel_size=self.kernel_size, n_iter=self.n_iter,
                                    proj_iter=self.proj_iter, progress=False)
        return out.to(x.dtype)

    def __repr__(self) -> str:
        return f"SinkhornPerturbation(eps={self.eps}, n_iter={self.n_iter}, n_classes={self.n_classes})"


class ADefPerturbation(_RandomClassifierAttack):
    """g(x): the ADef deformation (talk section 4.4) that flips a random classifier.

    Parameters
    ----------
    sigma, overshoot, max_iter
        As in :func:`infoclust.adef.adef`.
    n_classes : int
        Classes of the random classifier (any number >= 2).
    seed : int
        Seed of the random classifier's weights.
    """

    def __init__(self, *, sigma: float = 0.5, overshoot: float = 1.2, max_iter: int = 20,
                 n_classes: int = 10, seed: int = 0) -> None:
        super().__init__(n_classes, seed)
        self.sigma = check_number("sigma", sigma, 0.0)
        self.overshoot = check_number("overshoot", overshoot, 1.0)
        self.max_iter = check_int("max_iter", max_iter, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        res = adef(self.model_for(x), x, sigma=self.sigma, overshoot=self.overshoot, max_iter=self.max_iter)
        return res.images.to(x.dtype)

    def __repr__(self) -> str:
        return f"ADefPerturbation(sigma={self.sigma}, max_iter={self.max_iter}, n_classes={self.n_classes})"


def fingerprint(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """An exact integer key per image: pixels quantised to 1/255, mixed by random weights.

    Two images get the same key when their quantised pixels agree (up to a collision of
    probability about N^2 / 2^61).
    """
    q = (x.detach().reshape(len(x), -1).float() * 255).round().long()
    key = torch.zeros(len(x), dtype=torch.long, device=x.device)
    for chunk_q, chunk_w in zip(q.split(256, 1), weights.to(x.device).split(256)):
        key = (key + (chunk_q * chunk_w).sum(1)) % _MODULUS
    return key


class PerturbationPool:
    """Precomputed perturbations of a fixed image set, served as an IIC transformation g.

    Parameters
    ----------
    g : callable
        The expensive transformation, batch -> batch of the same shape.
    x : torch.Tensor
        The images that training will use, (N, C, H, W), on the device training will use.
    n_copies : int
        Perturbed copies stored per image.
    batch_size : int
        Images per call of ``g`` while filling the pool.
    seed : int
        Seeds the choice of copy per call.
    verbose : bool
        Show a progress bar while filling.

    Attributes
    ----------
    copies : torch.Tensor
        (n_copies, N, C, H, W), the stored perturbations.
    seconds : float
        Time spent filling the pool.
    """

    def __init__(self, g: Transform, x: torch.Tensor, n_copies: int = 4, *, batch_size: int = 256,
                 seed: int = 0, verbose: bool = True) -> None:
        import time

        check_int("n_copies", n_copies, 1)
        check_int("batch_size", batch_size, 1)
        if not callable(g):
            raise ParameterError(f"g={g!r} must be a callable batch -> batch")
        self.generator = torch.Generator().manual_seed(seed)
        self.weights = torch.randint(1, 1 << 20, (x[0].numel(),), generator=self.generator)
        keys = fingerprint(x, self.weights)
        self.keys, self.order = keys.sort()
        if (self.keys[1:] == self.keys[:-1]).any():
            raise ParameterError("x holds duplicate images: a pool cannot tell their copies apart")
        start = time.perf_counter()
        copies = []
        with tqdm(total=n_copies * len(x), disable=not verbose, desc="perturbation pool", unit="img") as bar:
            for _ in range(n_copies):
                parts = []
                for xb in x.split(batch_size):
                    out = g(xb)
                    if out.shape != xb.shape:
                        raise ParameterError(f"g changed the batch shape {tuple(xb.shape)} to {tuple(out.shape)}")
                    parts.append(out.detach())
                    bar.update(len(xb))
                copies.append(torch.cat(parts))
        self.copies = torch.stack(copies)
        self.seconds = time.perf_counter() - start

    def index(self, x: torch.Tensor) -> torch.Tensor:
        """Row of every image of ``x`` in the pool; raises if an image is not in it."""
        keys = fingerprint(x, self.weights)
        pos = torch.searchsorted(self.keys, keys).clamp(max=len(self.keys) - 1)
        found = self.keys[pos] == keys
        if not bool(found.all()):
            raise ParameterError(f"{int((~found).sum())} images of the batch are not in the pool: "
                                 "a PerturbationPool serves only the images it was built from")
        return self.order[pos]

    def with_seed(self, seed: int) -> "PerturbationPool":
        """The same stored copies, served with a new generator seeded with ``seed``.

        One pool is filled once and then used by many training runs; each run takes its own
        view, so the copies a run draws depend on its seed only, not on the runs before it.
        """
        view = copy.copy(self)
        view.generator = make_generator(seed)
        return view

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        rows = self.index(x)
        pick = torch.randint(len(self.copies), (len(x),), generator=self.generator).to(rows.device)
        return self.copies[pick, rows]


def compose(*transforms: Transform) -> Transform:
    """``compose(f, g)(x) == g(f(x))``: apply the transformations left to right."""
    if not transforms or not all(callable(t) for t in transforms):
        raise ParameterError("compose needs one or more callables batch -> batch")

    def chained(x: torch.Tensor) -> torch.Tensor:
        for t in transforms:
            x = t(x)
        return x

    chained.__name__ = " then ".join(getattr(t, "__name__", type(t).__name__) for t in transforms)
    return chained
