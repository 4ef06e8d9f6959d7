"""Every transformation g for IIC (talk eq. (4)): the contract, the pool, composition and the table.

IIC maximises I(E(x); E(g x)), where g is a random perturbation that keeps the class of x.
Every g of this library is a :class:`Transform`, and ``from infoclust.transforms import X``
reaches each of them, although each lives beside its algorithm (the table at the end of
this docstring, :data:`TABLE`, says where).

The contract of a g
-------------------
A g is a subclass of :class:`Transform` that

1. takes its parameters as keyword arguments of ``__init__`` and keeps each under its own
   name (``self.max_shift = ...``), checked with :mod:`infoclust.utils`; the ``repr`` is
   built from them;
2. ends ``__init__`` with ``self._seed(seed)``: the g then draws only from its own CPU
   generator ``self.generator`` (never from torch's global one), so a seed gives the same
   draws on every device;
3. implements ``_apply(x)`` for a checked batch ``x`` (N, C, H, W): the public call
   ``g(x)`` checks the images once (:func:`infoclust.utils.check_images`; a class sets
   ``_image_checks = {"nonnegative": True}`` for more), calls ``_apply`` and returns the
   result on ``x``'s device and in its dtype;
4. is picklable (worker processes receive it) and is copied, never shared:
   ``g.with_seed(seed)`` returns a copy with a generator of its own. A g with more seeded
   state (a random classifier) extends ``_seed``.

IIC's ``seed`` decides every g it uses (:func:`for_run`): it trains with
``for_run(g, seed)``, which seeds the transformation applied last from stream 1 of the seed
(:func:`~infoclust.utils.stream_seed`), the one before it from stream 2, and so on. Putting a
perturbation in front of a g (``Compose(perturbation, g)``) therefore leaves g's draws as
they were: the pairing of chapter 9.

A new g: one class and one row
------------------------------
A random shift of whole pixels is a complete g; the test suite runs this example:

>>> import torch
>>> from infoclust.transforms import Transform
>>> from infoclust.utils import check_int
>>> class RandomShift(Transform):
...     '''g(x): each image moved by its own random number of pixels, at most ``max_shift``.'''
...
...     def __init__(self, max_shift: int = 2, *, seed: int = 0) -> None:
...         self.max_shift = check_int("max_shift", max_shift, 0)
...         self._seed(seed)
...
...     def _apply(self, x: torch.Tensor) -> torch.Tensor:
...         shifts = torch.randint(-self.max_shift, self.max_shift + 1, (len(x), 2), generator=self.generator)
...         return torch.stack([xi.roll(tuple(s.tolist()), dims=(-2, -1)) for xi, s in zip(x, shifts)])
>>> g = RandomShift(1, seed=3)
>>> g
RandomShift(max_shift=1, seed=3)
>>> x = torch.rand(4, 1, 8, 8)
>>> torch.equal(g.with_seed(5)(x), RandomShift(1, seed=5)(x))
True

Put the class in the module of its algorithm and add its row to :data:`TABLE`
(``"RandomShift": ("infoclust.augment", "a random shift")``): that is all. IIC, the
experiments of :mod:`infoclust.experiment`, :class:`PerturbationPool` and :class:`Compose`
take it as it is.

:class:`PerturbationPool`: IIC draws a fresh g(x) for every image in every batch. ADef,
projected Sinkhorn and the talk's Algorithm 1 cost far more than a random crop, so the pool
runs such a g once, ``n_copies`` times per training image, and then serves as g itself: for
each image of a batch it returns one of that image's stored copies, drawn at random. It
finds an image's copies by a fingerprint of its pixels (integer arithmetic, exact), so it
works with any trainer that calls ``g(batch)`` on rows of the training set.
:class:`Compose` chains transformations, e.g. a pool followed by the paper's augmentations.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import time
from collections.abc import Callable
from typing import Any

import torch
from tqdm.auto import tqdm

from .utils import (
    ParameterError,
    check_bool,
    check_images,
    check_int,
    check_seed,
    make_generator,
    stream_seed,
)

#: The one table of every transformation g: class name -> (module that defines it, what it is).
TABLE: dict[str, tuple[str, str]] = {
    "MNISTTransform": ("infoclust.augment", "the IIC paper's g (talk 3.2)"),
    "CIFARTransform": ("infoclust.augment", "the IIC paper's g for colour images (CIFAR-10)"),
    "RandomDeformation": ("infoclust.deform", "random deformation (talk 4.2)"),
    "SinkhornPerturbation": ("infoclust.attacks", "projected Sinkhorn attack (talk 4.3)"),
    "ADefPerturbation": ("infoclust.adef", "ADef deformation (talk 4.4)"),
    "W2Perturbation": ("infoclust.w2_algorithm", "Algorithm 1 (talk 4.5)"),
    "PerturbationPool": ("infoclust.transforms", "precomputed copies of any g"),
    "Compose": ("infoclust.transforms", "g_n(... g_1(x)): several g's in a row"),
    "NamedG": ("infoclust.cluster", "named parts, one generator (``infoclust cluster --g``)"),
}

__all__ = ["Transform", *TABLE, "TABLE", "compose", "for_run", "fingerprint"]

_MODULUS = (1 << 61) - 1  # a Mersenne prime: products stay in int64 after the reduction below


def _table_rst() -> str:
    """:data:`TABLE` as the reStructuredText table that ends the module docstring."""
    header = ("g", "what", "defined in")
    rows = [(f":class:`~{mod}.{name}`", what, f":mod:`{mod}`") for name, (mod, what) in TABLE.items()]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    rule = "  ".join("=" * w for w in widths)
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(["", "The table", "---------", "", rule, lines[0], rule, *lines[1:], rule, ""])


if __doc__ is not None:  # python -OO strips docstrings
    __doc__ += _table_rst()


def __getattr__(name: str) -> Any:
    """``infoclust.transforms.X`` for every g of :data:`TABLE`, imported from its own module."""
    if name in TABLE:
        return getattr(importlib.import_module(TABLE[name][0]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(TABLE))


def _short(value: Any) -> str:
    """A value as ``repr`` shows it: tensors by their shape, everything else by its repr."""
    if torch.is_tensor(value):
        return f"tensor{tuple(value.shape)}"
    if isinstance(value, torch.nn.Module):
        return f"{type(value).__name__}(...)"
    return repr(value)


class Transform:
    """Base class of every transformation g (the contract: the module docstring).

    A subclass keeps its constructor's parameters under their own names, ends ``__init__``
    with ``self._seed(seed)`` and implements ``_apply``.

    Attributes
    ----------
    seed : int
        The seed of the g's randomness.
    generator : torch.Generator
        Its own CPU generator, seeded with ``seed``.
    """

    #: Extra options of :func:`~infoclust.utils.check_images` for the input batch.
    _image_checks: dict[str, Any] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """g(x) for a batch (N, C, H, W): checked once, on ``x``'s device and in its dtype."""
        x = check_images("x", x, **self._image_checks)
        return self._apply(x).to(device=x.device, dtype=x.dtype)

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        """g of a checked batch; every subclass implements it."""
        raise NotImplementedError(f"{type(self).__name__} must implement _apply(x)")

    def _seed(self, seed: int) -> None:
        """Take ``seed``: a new generator of the g's own (a subclass with more seeded state extends this)."""
        self.seed = check_seed("seed", seed)
        self.generator = make_generator(self.seed)

    def with_seed(self, seed: int) -> "Transform":
        """A copy of this g whose randomness comes from ``seed`` alone (its own generator, never shared)."""
        new = copy.copy(self)
        new._seed(seed)
        return new

    def generators(self) -> dict[str, torch.Generator]:
        """The generators this g draws from, by name ("" for its own): what a checkpoint saves."""
        gen = getattr(self, "generator", None)
        return {"": gen} if isinstance(gen, torch.Generator) else {}

    def __repr__(self) -> str:
        parts = []
        for p in inspect.signature(type(self).__init__).parameters.values():
            if p.name == "self" or not hasattr(self, p.name):
                continue
            value = getattr(self, p.name)
            if p.kind is p.VAR_POSITIONAL:
                parts += [_short(v) for v in value]
            else:
                parts.append(f"{p.name}={_short(value)}")
        return f"{type(self).__name__}({', '.join(parts)})"


def for_run(g: Callable[[torch.Tensor], torch.Tensor], seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The g that a run with seed ``seed`` draws from: what ``IIC(g=g, seed=seed)`` trains with.

    A :class:`Transform` is seeded from stream 1 of ``seed`` (:func:`~infoclust.utils.stream_seed`);
    a :class:`Compose` hands its last transformation stream 1, the one before it stream 2,
    and so on (:meth:`Compose.with_seed`).

    Parameters
    ----------
    g : callable
        A transformation; one that is not a :class:`Transform` brings its own randomness.
    seed : int
        The run's seed, in [0, 2**32 - 1].

    Returns
    -------
    callable
        A seeded copy of ``g`` (``g`` itself is not drawn from), or ``g`` if it is not a
        :class:`Transform`.
    """
    if isinstance(g, Compose):
        return g.with_seed(seed)
    if isinstance(g, Transform):
        return g.with_seed(stream_seed(seed, 1))
    return g


class Compose(Transform):
    """``Compose(g1, g2)(x) == g2(g1(x))``: several transformations, applied left to right.

    :meth:`with_seed` seeds the last transformation from stream 1 of the seed, the one
    before it from stream 2, and so on (:func:`~infoclust.utils.stream_seed`), so that a g
    put in front of others leaves their draws unchanged. Callables that are not a
    :class:`Transform` are applied as they are and keep their own randomness.

    Parameters
    ----------
    *transforms : callable
        Batch -> batch of the same shape; at least one.
    """

    def __init__(self, *transforms: Callable[[torch.Tensor], torch.Tensor]) -> None:
        if not transforms:
            raise ParameterError("transforms: compose needs one or more callables batch -> batch")
        for t in transforms:
            if not callable(t):
                raise TypeError(f"transforms must be callables batch -> batch, got {type(t).__name__}")
        self.transforms = tuple(transforms)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Each transformation in turn: a composition checks nothing itself, each part checks its input."""
        for t in self.transforms:
            x = t(x)
        return x

    def _seed(self, seed: int) -> None:
        self.seed = check_seed("seed", seed)
        n = len(self.transforms)
        self.transforms = tuple(
            t.with_seed(stream_seed(self.seed, n - i)) if isinstance(t, Transform) else t
            for i, t in enumerate(self.transforms)
        )

    def generators(self) -> dict[str, torch.Generator]:
        return {
            f"{i}.{name}".rstrip("."): gen
            for i, t in enumerate(self.transforms)
            if isinstance(t, Transform)
            for name, gen in t.generators().items()
        }

    def __repr__(self) -> str:
        return f"Compose({', '.join(_short(t) for t in self.transforms)})"


def compose(*transforms: Callable[[torch.Tensor], torch.Tensor]) -> Compose:
    """``compose(f, g)(x) == g(f(x))``: the transformations applied left to right.

    Parameters
    ----------
    *transforms : callable
        Batch -> batch of the same shape; at least one.

    Returns
    -------
    Compose
        ``Compose(*transforms)``.
    """
    return Compose(*transforms)


def fingerprint(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """An exact integer key per image: pixels quantised to 1/255, mixed by random weights.

    Two images get the same key when their quantised pixels agree (up to a collision of
    probability about N^2 / 2^61).

    Parameters
    ----------
    x : torch.Tensor
        Images (N, C, H, W) with values in [0, 1].
    weights : torch.Tensor
        (C * H * W,) positive integer weights, one per pixel.

    Returns
    -------
    torch.Tensor
        (N,) int64 keys in [0, 2^61 - 1), on ``x``'s device.
    """
    q = (x.detach().reshape(len(x), -1).float() * 255).round().long()
    key = torch.zeros(len(x), dtype=torch.long, device=x.device)
    for chunk_q, chunk_w in zip(q.split(256, 1), weights.to(x.device).split(256)):
        key = (key + (chunk_q * chunk_w).sum(1)) % _MODULUS
    return key


class PerturbationPool(Transform):
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
        Seeds the fingerprint and the choice of copy per call, in [0, 2**32 - 1]. One pool
        is filled once and used by many training runs: ``with_seed`` gives each run a view
        with the same copies (shared, not duplicated) and its own choice of copy, so the
        copies a run draws depend on its seed only, not on the runs before it.
    verbose : bool
        Show a progress bar while filling.
    redraw : bool
        False: the copies are made once, here, by ``g`` as given, and every seed shares them
        (the g's own random factors, such as an attack's random classifier, are then one
        draw for all runs: one sample, however many seeds). True: every seed redraws
        them: the pool of seed ``s`` is filled, on first use, by ``g.with_seed`` of a seed
        derived from ``s`` (stream 1 of :func:`~infoclust.utils.stream_seed`), so paired
        runs with different seeds see independent random classifiers and draws (``g``
        must then be a :class:`Transform`).

    Attributes
    ----------
    images : torch.Tensor
        ``x``, the images served; ``copies[c, i]`` is a perturbation of ``images[i]``.
    perturbation : callable
        The g that fills the copies: ``g``, or with ``redraw`` its copy seeded for this seed.
    copies : torch.Tensor or None
        (n_copies, N, C, H, W), the stored perturbations; None until a redrawing pool is used.
    seconds : float or None
        Time spent filling the pool (None until it is filled).
    """

    def __init__(
        self,
        g: Callable[[torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        n_copies: int = 4,
        *,
        batch_size: int = 256,
        seed: int = 0,
        verbose: bool = True,
        redraw: bool = False,
    ) -> None:
        if not callable(g):
            raise TypeError(f"g must be a callable batch -> batch, got {type(g).__name__}")
        x = check_images("x", x)
        self.redraw = check_bool("redraw", redraw)
        if self.redraw and not isinstance(g, Transform):
            raise ParameterError(
                f"redraw=True needs a Transform g (one that with_seed can redraw), got {type(g).__name__}"
            )
        self.g = g
        self.n_copies = check_int("n_copies", n_copies, 1)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.verbose = check_bool("verbose", verbose)
        self._seed(seed)
        self.weights = torch.randint(1, 1 << 20, (x[0].numel(),), generator=self.generator)
        keys = fingerprint(x, self.weights)
        self.keys, self.order = keys.sort()
        if (self.keys[1:] == self.keys[:-1]).any():
            raise ParameterError("x holds duplicate images: a pool cannot tell their copies apart")
        self.images = x
        if not self.redraw:
            self._fill(x)

    def _seed(self, seed: int) -> None:
        """The choice of copy from ``seed``; with ``redraw``, also its own perturbation and no copies yet."""
        super()._seed(seed)
        if self.redraw:
            self.perturbation = self.g.with_seed(stream_seed(self.seed, 1))
            self.copies, self.seconds = None, None
        else:
            self.perturbation = self.g

    def _fill(self, x: torch.Tensor) -> None:
        """``n_copies`` runs of the perturbation over ``x``, in batches, each checked; times them.

        Gradients are enabled: a redrawing pool is filled where training first calls it, which
        may be under ``torch.no_grad()``, and the attacks differentiate their classifier.
        """
        start = time.perf_counter()
        copies = []
        total = self.n_copies * len(x)
        with (
            torch.enable_grad(),
            tqdm(total=total, disable=not self.verbose, desc="perturbation pool", unit="img") as bar,
        ):
            for _ in range(self.n_copies):
                parts = []
                for xb in x.split(self.batch_size):
                    out = self.perturbation(xb)
                    if not torch.is_tensor(out):
                        raise TypeError(f"g must return a tensor batch, got {type(out).__name__}")
                    if out.shape != xb.shape:
                        raise ParameterError(
                            f"g changed the batch shape {tuple(xb.shape)} to {tuple(out.shape)}"
                        )
                    if not bool(torch.isfinite(out).all()):  # the pool would serve them for the whole run
                        raise ParameterError("g returned NaN or infinite pixels: a pool stores finite copies")
                    parts.append(out.detach())
                    bar.update(len(xb))
                copies.append(torch.cat(parts))
        self.copies = torch.stack(copies)
        self.seconds = time.perf_counter() - start

    def index(self, x: torch.Tensor) -> torch.Tensor:
        """Row of every image of ``x`` in the pool; raises if an image is not in it."""
        return self._index(check_images("x", x))

    def _index(self, x: torch.Tensor) -> torch.Tensor:
        if self.copies is None:
            self._fill(self.images)
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

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        rows = self._index(x)
        pick = torch.randint(len(self.copies), (len(x),), generator=self.generator).to(rows.device)
        return self.copies[pick, rows]
