"""Transformations g for IIC that are too expensive to compute in every batch, and chains of g.

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

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from .utils import ParameterError, check_int

__all__ = ["PerturbationPool", "compose", "fingerprint"]

Transform = Callable[[torch.Tensor], torch.Tensor]
_MODULUS = (1 << 61) - 1  # a Mersenne prime: products stay in int64 after the reduction below


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
