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
import time
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from ._random_net import LazyRandomClassifier
from .adef import adef
from .augment import MNISTTransform
from .deform import RandomDeformation
from .projected_sinkhorn import wasserstein_pgd
from .utils import (
    ParameterError,
    check_bool,
    check_images,
    check_int,
    check_number,
    check_seed,
    make_generator,
)
from .w2_algorithm import W2Perturbation

__all__ = [
    "MNISTTransform",
    "RandomDeformation",
    "SinkhornPerturbation",
    "ADefPerturbation",
    "W2Perturbation",
    "PerturbationPool",
    "compose",
    "fingerprint",
]

Transform = Callable[[torch.Tensor], torch.Tensor]
_MODULUS = (1 << 61) - 1  # a Mersenne prime: products stay in int64 after the reduction below


class SinkhornPerturbation:
    """g(x): Wasserstein PGD (talk eq. (8)) against a random classifier, radius ``eps``.

    Each image is pushed by :func:`infoclust.projected_sinkhorn.wasserstein_pgd` away from the
    random classifier's own prediction on it, staying in the Wasserstein ball of radius
    ``eps`` (fixed: no growth), until the prediction changes or ``max_iter`` steps are done.
    The random classifier (:func:`infoclust.classifiers.random_classifier`) is built for the
    batch's device and size from ``seed``; the global random state is never touched.

    Parameters
    ----------
    eps : float
        Radius of the Wasserstein ball (pixels, as in the projection).
    max_iter : int
        PGD iterations (``max_iter`` of :func:`~infoclust.projected_sinkhorn.wasserstein_pgd`).
    alpha, lam, kernel_size, proj_iter
        As in :func:`infoclust.projected_sinkhorn.wasserstein_pgd`.
    n_random_classes : int
        Classes of the random classifier (any number >= 2).
    seed : int
        Seed of the random classifier's weights, in [0, 2**32 - 1].
    """

    def __init__(
        self,
        eps: float = 0.5,
        *,
        max_iter: int = 10,
        alpha: float = 0.1,
        lam: float = 1000.0,
        kernel_size: int = 5,
        proj_iter: int = 30,
        n_random_classes: int = 10,
        seed: int = 0,
    ) -> None:
        self.random_classifier = LazyRandomClassifier(n_random_classes, seed)
        self.n_random_classes, self.seed = (
            self.random_classifier.n_random_classes,
            self.random_classifier.seed,
        )
        self.eps = check_number("eps", eps, 0.0, strict_low=True)
        self.max_iter = check_int("max_iter", max_iter, 1)
        self.alpha = check_number("alpha", alpha, 0.0, strict_low=True)
        self.lam = check_number("lam", lam, 0.0, strict_low=True)
        self.kernel_size = check_int("kernel_size", kernel_size, 1)
        if self.kernel_size % 2 == 0:
            raise ParameterError(f"kernel_size={kernel_size} must be odd (a window centred on each pixel)")
        self.proj_iter = check_int("proj_iter", proj_iter, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = check_images("x", x, nonnegative=True)
        xf = x.float()
        out, _, _ = wasserstein_pgd(
            self.random_classifier.model_for(xf),
            xf,
            eps0=self.eps,
            eps_factor=1.0,
            alpha=self.alpha,
            lam=self.lam,
            kernel_size=self.kernel_size,
            max_iter=self.max_iter,
            proj_iter=self.proj_iter,
            verbose=False,
        )
        return out.to(x.dtype)

    def __repr__(self) -> str:
        return (
            f"SinkhornPerturbation(eps={self.eps}, max_iter={self.max_iter}, "
            f"n_random_classes={self.n_random_classes}, seed={self.seed})"
        )


class ADefPerturbation:
    """g(x): the ADef deformation (talk section 4.4) that flips a random classifier.

    The random classifier (:func:`infoclust.classifiers.random_classifier`) is built for the
    batch's device and size from ``seed``; the global random state is never touched.

    Parameters
    ----------
    sigma, overshoot, max_iter, max_norm
        As in :func:`infoclust.adef.adef` (``max_norm``: a cap on the T-norm, in pixels).
    candidates : int or None
        Candidate labels per step (:func:`infoclust.adef.adef`; ``None``: all). The default,
        1, tries only the random classifier's highest other class: on 250 mnist5k digits
        (16 x 16, four random classifiers) it gives the same flip rate and median T-norm as
        all nine candidates, 2.5 to 4.5 times faster (``benchmarks/bench_perturb.py``).
    n_random_classes : int
        Classes of the random classifier (any number >= 2).
    seed : int
        Seed of the random classifier's weights, in [0, 2**32 - 1].
    """

    def __init__(
        self,
        *,
        sigma: float = 0.5,
        overshoot: float = 1.2,
        max_iter: int = 20,
        candidates: int | None = 1,
        max_norm: float = float("inf"),
        n_random_classes: int = 10,
        seed: int = 0,
    ) -> None:
        self.random_classifier = LazyRandomClassifier(n_random_classes, seed)
        self.n_random_classes, self.seed = (
            self.random_classifier.n_random_classes,
            self.random_classifier.seed,
        )
        self.sigma = check_number("sigma", sigma, 0.0)
        self.overshoot = check_number("overshoot", overshoot, 1.0)
        self.max_iter = check_int("max_iter", max_iter, 1)
        self.max_norm = (
            max_norm if max_norm == float("inf") else check_number("max_norm", max_norm, 0.0, strict_low=True)
        )
        self.candidates = (
            candidates
            if candidates is None
            else check_int("candidates", candidates, 1, self.n_random_classes - 1)
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = check_images("x", x)
        res = adef(
            self.random_classifier.model_for(x),
            x,
            sigma=self.sigma,
            overshoot=self.overshoot,
            max_iter=self.max_iter,
            candidates=self.candidates,
            max_norm=self.max_norm,
        )
        return res.images.to(device=x.device, dtype=x.dtype)

    def __repr__(self) -> str:
        return (
            f"ADefPerturbation(sigma={self.sigma}, max_iter={self.max_iter}, candidates={self.candidates}, "
            f"max_norm={self.max_norm}, n_random_classes={self.n_random_classes}, seed={self.seed})"
        )


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
    x : torch.Tensor or numpy.ndarray
        The images that training will use, (N, C, H, W), on the device training will use.
    n_copies : int
        Perturbed copies stored per image.
    batch_size : int
        Images per call of ``g`` while filling the pool.
    seed : int
        Seeds the fingerprint and the choice of copy per call, in [0, 2**32 - 1].
    verbose : bool
        Show a progress bar while filling.

    Attributes
    ----------
    copies : torch.Tensor
        (n_copies, N, C, H, W), the stored perturbations.
    seconds : float
        Time spent filling the pool.
    """

    def __init__(
        self,
        g: Transform,
        x: torch.Tensor,
        n_copies: int = 4,
        *,
        batch_size: int = 256,
        seed: int = 0,
        verbose: bool = True,
    ) -> None:
        if not callable(g):
            raise TypeError(f"g must be a callable batch -> batch, got {type(g).__name__}")
        x = check_images("x", x)
        n_copies = check_int("n_copies", n_copies, 1)
        batch_size = check_int("batch_size", batch_size, 1)
        verbose = check_bool("verbose", verbose)
        self.generator = torch.Generator().manual_seed(check_seed("seed", seed))
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
                    if not torch.is_tensor(out):
                        raise TypeError(f"g must return a tensor batch, got {type(out).__name__}")
                    if out.shape != xb.shape:
                        raise ParameterError(
                            f"g changed the batch shape {tuple(xb.shape)} to {tuple(out.shape)}"
                        )
                    parts.append(out.detach())
                    bar.update(len(xb))
                copies.append(torch.cat(parts))
        self.copies = torch.stack(copies)
        self.seconds = time.perf_counter() - start

    def index(self, x: torch.Tensor) -> torch.Tensor:
        """Row of every image of ``x`` in the pool; raises if an image is not in it."""
        x = check_images("x", x)
        if x.shape[1:] != self.copies.shape[2:]:
            raise ParameterError(
                f"x has images of shape {tuple(x.shape[1:])}; the pool holds {tuple(self.copies.shape[2:])}"
            )
        keys = fingerprint(x, self.weights)
        pos = torch.searchsorted(self.keys, keys).clamp(max=len(self.keys) - 1)
        found = self.keys[pos] == keys
        if not bool(found.all()):
            raise ParameterError(
                f"{int((~found).sum())} images of the batch are not in the pool: "
                "a PerturbationPool serves only the images it was built from"
            )
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
    if not transforms:
        raise ParameterError("transforms: compose needs one or more callables batch -> batch")
    for t in transforms:
        if not callable(t):
            raise TypeError(f"transforms must be callables batch -> batch, got {type(t).__name__}")

    def chained(x: torch.Tensor) -> torch.Tensor:
        for t in transforms:
            x = t(x)
        return x

    chained.__name__ = " then ".join(getattr(t, "__name__", type(t).__name__) for t in transforms)
    return chained
