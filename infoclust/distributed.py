"""Data-parallel training on ``torch.distributed``: the same mathematics on W processes as on one.

IIC's loss is a function of the joint matrix :math:`\\mathbf P = \\sum_i E(x_i) E(g x_i)^\\top`
summed over the *whole* batch (talk, eq. 3), and DIM's estimators score every code of the batch
against every other one (DIM, eq. 2-5). Split over W processes ("ranks"), each rank holds a
shard of the batch, so each must combine its partial result with every other rank's before the
loss, and the gradient must flow back through that combination. This module holds the pieces:

* rank and world helpers (:func:`rank`, :func:`world_size`, :func:`is_distributed`,
  :func:`is_main_process`, :func:`init_from_env` for processes launched by ``torchrun``);
* autograd-aware collectives, :func:`all_reduce_sum` and :func:`all_gather_cat`, whose backward
  passes are the adjoints of their forward passes (the gradient of a sum reaches every
  summand, the gradient of a gathered block returns to the rank that holds it);
* :func:`average_gradients`, the data-parallel gradient average;
* :class:`SyncBatchNorm`, batch normalisation with the statistics of the global batch on any
  device (PyTorch's own refuses CPU tensors), and :func:`synchronised_batchnorm`, which
  swaps it (or PyTorch's on CUDA) into a network for the duration of training;
* :func:`shard`, the contiguous block of a global batch that a rank holds, and
  :func:`gather_rows` to put blocks back together (evaluation);
* :func:`check_same_on_all_ranks`, the set-up check that every rank has the same parameters,
  seed, data and network;
* :func:`spawn`, which runs a function on W local processes, and :func:`fit_in_processes`,
  which fits an estimator that way (tests, benchmarks, the chapter).

**Why the gradients are averaged.** With the collectives above, every rank computes the loss
of the *whole* batch, :math:`L_r = L`. Their backward passes compute, on rank r, the gradient
of :math:`\\sum_{r'} L_{r'} = W L` with respect to rank r's copy of the parameters (the
collectives pass gradients between ranks), so the copies' gradients sum to
:math:`W \\nabla L`, and their *average* is :math:`\\nabla L`, exactly the gradient of one
process on the concatenated batch. A plain ``dist.all_reduce`` on P (no backward) gives the
same loss but leaves out the other ranks' share of the gradient, so the average is
:math:`\\nabla L / W`: silently W times too small (tested in ``tests/test_distributed.py``).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import queue
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .utils import ParameterError, check_int

__all__ = [
    "rank",
    "world_size",
    "is_distributed",
    "is_main_process",
    "init_from_env",
    "setup",
    "local_device",
    "check_device",
    "all_reduce_sum",
    "all_gather_cat",
    "gather_rows",
    "broadcast_object",
    "average_gradients",
    "SyncBatchNorm",
    "synchronised_batchnorm",
    "shard",
    "shard_sizes",
    "check_batch",
    "describe_params",
    "check_same_on_all_ranks",
    "spawn",
    "fit_in_processes",
]


# --------------------------------------------------------------------------- ranks


def world_size() -> int:
    """Number of processes in the default process group.

    Returns
    -------
    int
        The number of processes W, 1 when no process group is initialised.
    """
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank in the default process group.

    Returns
    -------
    int
        The rank, 0 when no process group is initialised.
    """
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_distributed() -> bool:
    """Whether a process group of more than one process is initialised.

    Returns
    -------
    bool
        True when :func:`world_size` is above 1.
    """
    return world_size() > 1


def is_main_process() -> bool:
    """Whether this is the process that prints and writes files.

    Returns
    -------
    bool
        True on rank 0, and without a process group.
    """
    return rank() == 0


def init_from_env(backend: str | None = None, timeout_s: float = 600.0) -> bool:
    """Join the process group described by ``torchrun``'s environment; True if this call joined it.

    ``torchrun`` sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
    ``MASTER_PORT``. Without them (a plain ``python`` run), with ``WORLD_SIZE=1``, or when a
    group is already initialised, nothing happens and False is returned; a True return
    means the caller may ``torch.distributed.destroy_process_group()`` when done. The
    backend defaults to NCCL when CUDA is available (each rank then uses GPU
    ``LOCAL_RANK``) and gloo otherwise.

    Parameters
    ----------
    backend : {"nccl", "gloo"} or None
        None: NCCL with CUDA, else gloo.
    timeout_s : float
        How long a collective waits for the other ranks before failing.

    Returns
    -------
    bool
        True when this call initialised the process group.
    """
    if dist.is_initialized() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return True


def setup() -> None:
    """What an estimator's ``fit`` does first: join ``torchrun``'s group (:func:`init_from_env`).

    Under NCCL each rank is put on its own GPU before the first collective (the set-up
    checks already communicate through it).
    """
    init_from_env()
    if is_distributed() and dist.get_backend() == "nccl":
        local_device(torch.device("cuda"))


def local_device(device: torch.device) -> torch.device:
    """The GPU of this rank when ``device`` is CUDA without an index: ``cuda:LOCAL_RANK``.

    Under ``torchrun`` with one process per GPU, ``device="auto"`` must land each rank on its
    own GPU. The index is ``LOCAL_RANK`` (set by ``torchrun``), else the rank modulo the
    number of GPUs; that GPU becomes the current CUDA device.

    Parameters
    ----------
    device : torch.device
        The device asked for.

    Returns
    -------
    torch.device
        ``cuda:index`` for CUDA without an index under a process group; otherwise ``device``.
    """
    if device.type != "cuda" or device.index is not None or not is_distributed():
        return device
    index = int(os.environ.get("LOCAL_RANK", rank() % max(torch.cuda.device_count(), 1)))
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def check_device(device: torch.device) -> torch.device:
    """Return ``device`` if the process group's backend can reduce tensors there (NCCL: CUDA only).

    Parameters
    ----------
    device : torch.device
        The device an estimator would train on.

    Returns
    -------
    torch.device
        ``device``, unchanged.

    Raises
    ------
    ParameterError
        For a device other than CUDA in an NCCL process group.
    """
    if is_distributed() and dist.get_backend() == "nccl" and device.type != "cuda":
        raise ParameterError(
            f"device={str(device)!r} cannot train in an NCCL process group (GPUs only); use "
            f"device='auto' or 'cuda', or the gloo backend for CPU processes"
        )
    return device


# --------------------------------------------------------------------------- collectives


class _AllReduceSum(torch.autograd.Function):
    """y = sum over ranks of x; its adjoint: the gradient of x is the sum over ranks of dy."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = x.detach().clone().contiguous()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.detach().clone().contiguous()
        dist.all_reduce(grad)
        return grad


class _AllGatherCat(torch.autograd.Function):
    """y = the ranks' blocks x concatenated on dim 0; adjoint: rank r's block of the summed dy."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().contiguous()
        parts = [torch.empty_like(x) for _ in range(world_size())]
        dist.all_gather(parts, x)
        ctx.rows = x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.detach().clone().contiguous()
        dist.all_reduce(grad)  # gloo has no reduce_scatter; the blocks are small (codes, scores)
        return grad.narrow(0, rank() * ctx.rows, ctx.rows)


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over all ranks, differentiable: the gradient flows back to every rank's ``x``.

    The backward pass sums the incoming gradients of all ranks (the adjoint of a sum). This
    is what IIC needs for its joint matrix: ``torch.distributed.all_reduce`` alone gives the
    same value but, having no backward, leaves each rank with 1/W of the gradient (see the
    module docstring). (Written on ``dist.all_reduce`` rather than
    ``torch.distributed.nn.functional.all_reduce``, which does the same but is deprecated in
    the pinned torch and warns on every call.)

    Parameters
    ----------
    x : torch.Tensor
        This rank's tensor, of the same shape on every rank.

    Returns
    -------
    torch.Tensor
        :math:`\\sum_r x_r` over the ranks r; ``x`` itself without a process group.
    """
    return _AllReduceSum.apply(x) if is_distributed() else x


def all_gather_cat(x: torch.Tensor) -> torch.Tensor:
    """The ranks' tensors ``x`` concatenated along dim 0 in rank order, differentiable.

    Every rank must pass the same shape (the training batches are split evenly: see
    :func:`check_batch`). Gradients of the gathered rows return to the rank that holds them,
    summed over the ranks that used them.

    Parameters
    ----------
    x : torch.Tensor
        This rank's tensor, of the same shape on every rank.

    Returns
    -------
    torch.Tensor
        The concatenation, W times as many rows; ``x`` itself without a process group.
    """
    return _AllGatherCat.apply(x) if is_distributed() else x


def gather_rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """Undo :func:`shard`: concatenate every rank's block of a set of ``n`` rows (no gradient).

    Blocks may differ in length by one (``n`` not a multiple of the world size); they are
    padded for the collective and trimmed again.

    Parameters
    ----------
    x : torch.Tensor
        This rank's block, ``shard_sizes(n)[rank()]`` rows.
    n : int
        The number of rows of all blocks together.

    Returns
    -------
    torch.Tensor
        The ``n`` rows in rank order; ``x`` itself without a process group.

    Raises
    ------
    ParameterError
        When ``x`` does not have this rank's number of rows.
    """
    if not is_distributed():
        return x
    sizes = shard_sizes(n)
    if x.shape[0] != sizes[rank()]:
        raise ParameterError(
            f"x holds {x.shape[0]} rows, but rank {rank()}'s block of {n} rows has {sizes[rank()]}"
        )
    padded = x.new_zeros((max(sizes),) + tuple(x.shape[1:]))
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:s] for p, s in zip(parts, sizes)])


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (a collective: every rank must call it).

    Parameters
    ----------
    obj : object
        A picklable object; only rank ``src``'s is sent, the others' are ignored.
    src : int
        The sending rank.

    Returns
    -------
    object
        Rank ``src``'s ``obj``; ``obj`` itself without a process group.
    """
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


@torch.no_grad()
def average_gradients(parameters: Iterable[nn.Parameter]) -> None:
    """Replace every parameter's gradient by its mean over the ranks (one collective per dtype).

    With the autograd-aware collectives of this module every rank's loss is the global loss,
    and the mean of the ranks' gradients is the gradient of one process on the concatenated
    batch (module docstring). Parameters without a gradient are skipped; every rank must
    have the same ones (it trains the same heads on the same schedule). This does what
    ``DistributedDataParallel`` does after ``backward``, without overlapping communication
    with the backward pass (IIC calls its network twice per step and trains its heads in
    turn, which DDP handles only with ``find_unused_parameters`` and a static graph).
    Without a process group it does nothing.

    Parameters
    ----------
    parameters : iterable of nn.Parameter
        The parameters whose gradients are averaged in place.
    """
    if not is_distributed():
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    w = world_size()
    for dtype in {g.dtype for g in grads}:
        group = [g for g in grads if g.dtype == dtype]
        flat = torch.cat([g.reshape(-1) for g in group])
        dist.all_reduce(flat)
        flat /= w
        offset = 0
        for g in group:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


# --------------------------------------------------------------------------- batch norm


class SyncBatchNorm(_BatchNorm):
    """Batch normalisation whose training statistics are those of the global batch of all ranks.

    Ioffe and Szegedy (2015): :math:`y = \\gamma (x - \\mu) / \\sqrt{\\sigma^2 + \\epsilon} + \\beta`
    with the mean :math:`\\mu` and the biased variance :math:`\\sigma^2` of each channel over
    the batch (and the spatial positions); the running variance takes the unbiased one.
    Here :math:`\\mu` and :math:`\\sigma^2` are sums over all ranks divided by the global
    count (two passes, mean first, for accuracy), built on :func:`all_reduce_sum`, so the
    gradient is that of batch normalisation on the concatenated batch. PyTorch's
    :class:`torch.nn.SyncBatchNorm` does the same with fused kernels but refuses CPU
    tensors; this one runs on any device and backend (gloo on CPU). In evaluation mode, or
    without a process group, it is plain batch normalisation. Its state dict has the same
    keys as ``nn.BatchNorm2d``'s, so checkpoints move between both.

    Parameters
    ----------
    num_features : int
        The number of channels C of an input (N, C, ...).
    eps : float
        The :math:`\\epsilon` added to the variance.
    momentum : float or None
        The weight of a batch's statistics in the running ones; None: a cumulative mean.
    affine : bool
        Learn :math:`\\gamma` and :math:`\\beta`.
    track_running_stats : bool
        Keep running statistics, which evaluation mode uses.
    device, dtype, bias
        As for :class:`torch.nn.BatchNorm2d`.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not (self.training and is_distributed()):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        count = torch.tensor(float(xf.numel() // xf.shape[1]), dtype=xf.dtype, device=xf.device)
        dist.all_reduce(count)
        mean = _AllReduceSum.apply(xf.sum(dims)) / count
        centred = xf - mean.view(shape)
        var = _AllReduceSum.apply((centred * centred).sum(dims)) / count
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), factor)
                unbiased = var.detach() * count / (count - 1).clamp_min(1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)
        return out.to(x.dtype)


@contextmanager
def synchronised_batchnorm(module: nn.Module) -> Iterator[nn.Module]:
    """Within the block, every batch norm of ``module`` uses the global batch's statistics.

    Each ``nn.BatchNorm*d`` is swapped for :class:`torch.nn.SyncBatchNorm` (CUDA) or
    :class:`SyncBatchNorm` (other devices) holding the *same* parameter and buffer tensors,
    so optimisers, checkpoints and the running statistics carry over; on exit the original
    layers are put back, and the module is again what one process would have. Without a
    process group nothing is swapped.

    Parameters
    ----------
    module : nn.Module
        The network whose batch norms are swapped for the block.

    Yields
    ------
    nn.Module
        ``module`` itself, with the synchronised layers.
    """
    swapped: list[tuple[nn.Module, str, _BatchNorm]] = []
    if is_distributed():
        first = next(module.parameters(), None)
        cls = nn.SyncBatchNorm if first is not None and first.device.type == "cuda" else SyncBatchNorm
        for parent in list(module.modules()):
            for name, bn in list(parent.named_children()):
                if isinstance(bn, _BatchNorm) and not isinstance(bn, (SyncBatchNorm, nn.SyncBatchNorm)):
                    sync = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
                    sync.weight, sync.bias = bn.weight, bn.bias
                    sync.running_mean, sync.running_var = bn.running_mean, bn.running_var
                    sync.num_batches_tracked = bn.num_batches_tracked
                    sync.train(bn.training)
                    parent.add_module(name, sync)
                    swapped.append((parent, name, bn))
    try:
        yield module
    finally:
        for parent, name, bn in swapped:
            bn.train(getattr(parent, name).training)
            parent.add_module(name, bn)


# --------------------------------------------------------------------------- sharding and checks


def shard_sizes(n: int, world: int | None = None) -> list[int]:
    """Rows of each rank's block when ``n`` rows are split into contiguous blocks.

    Parameters
    ----------
    n : int
        The number of rows.
    world : int or None
        The number of ranks W; None: :func:`world_size`.

    Returns
    -------
    list of int
        W sizes: ``n // W``, plus one on the first ``n mod W`` ranks.
    """
    w = world_size() if world is None else world
    return [n // w + (r < n % w) for r in range(w)]


def shard(n: int, rank_: int | None = None, world: int | None = None) -> slice:
    """The contiguous block of ``n`` rows (a batch, in the order every rank computes) that a rank holds.

    Every rank draws the same seeded permutation of the data; a batch is a run of ``n`` of its
    indices, and rank r keeps block r of it (with an image's transformed copies, which are
    made from the image on the same rank). Blocks differ in length by at most one row, the
    first ``n mod W`` ranks holding the longer ones; training batches are even
    (:func:`check_batch`), evaluation blocks need not be.

    Parameters
    ----------
    n : int
        The number of rows.
    rank_ : int or None
        The rank; None: this process's.
    world : int or None
        The number of ranks W; None: :func:`world_size`.

    Returns
    -------
    slice
        The rows of the rank's block, as sized by :func:`shard_sizes`.
    """
    r = rank() if rank_ is None else rank_
    sizes = shard_sizes(n, world)
    start = sum(sizes[:r])
    return slice(start, start + sizes[r])


def check_batch(batch_size: int, n_images: int, name: str = "batch_size") -> int:
    """Return the images per rank of a global batch; raise if it does not split or fit.

    One step on W ranks equals one step of one process on the concatenated batch, so
    ``batch_size`` is the global batch and must be a multiple of W, and the data must hold
    at least one batch.

    Parameters
    ----------
    batch_size : int
        The global batch: the images of one step over all W ranks.
    n_images : int
        The number of training images.
    name : str
        The argument's name, for the error messages.

    Returns
    -------
    int
        ``batch_size // W``, the images of each rank in a step.

    Raises
    ------
    ParameterError
        When ``batch_size`` is not a positive integer, not a multiple of W, or above
        ``n_images``.
    """
    w = world_size()
    batch_size = check_int(name, batch_size, 1)
    if batch_size % w:
        raise ParameterError(
            f"{name}={batch_size} does not divide among the {w} processes: use a multiple "
            f"of {w} (the batch is the global batch, split evenly across processes)"
        )
    if n_images < batch_size:
        raise ParameterError(
            f"{name}={batch_size} ({batch_size // w} images on each of {w} processes) "
            f"exceeds the {n_images} images"
        )
    return batch_size // w


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous().reshape(-1)
    raw = t.to(torch.uint8) if t.dtype == torch.bool or not t.numel() else t.view(torch.uint8)
    return raw.numpy().tobytes()


def _digest(value: Any) -> str:
    """A short text that equals across ranks iff the value does (tensors, modules: a hash of their bytes)."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if torch.is_tensor(value):
        h = hashlib.sha256(_tensor_bytes(value)).hexdigest()[:16]
        return f"{tuple(value.shape)} {value.dtype} sha256:{h}"
    if isinstance(value, nn.Module):
        h = hashlib.sha256()
        for name, t in value.state_dict().items():
            h.update(name.encode())
            h.update(_tensor_bytes(t))
        return f"{type(value).__name__} sha256:{h.hexdigest()[:16]}"
    return _text(value)


def _text(value: Any) -> str:
    """``repr(value)``, or the qualified name of a function or class where the repr holds an address."""
    text = repr(value)
    if " at 0x" in text:
        kind = value if hasattr(value, "__qualname__") else type(value)
        text = f"{kind.__module__}.{kind.__qualname__}"
    return text


def describe_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Parameters as texts that are equal in two processes exactly when the values are.

    The ``repr`` of each value, except where it holds a memory address (functions, objects
    without their own ``repr``): there the qualified name of the function or class. Used to
    compare estimators across ranks and with a checkpoint.

    Parameters
    ----------
    params : mapping
        Name to value, e.g. an estimator's ``get_params(deep=False)``.

    Returns
    -------
    dict
        Name to text.
    """
    return {name: _text(value) for name, value in params.items()}


def check_same_on_all_ranks(values: Mapping[str, Any]) -> None:
    """Raise :class:`ParameterError` on every rank if any value differs between ranks.

    ``values`` maps a name (an estimator parameter, "seed", "x", "the initial network") to a
    value: tensors, arrays and modules (their state) are compared by a hash of their bytes,
    other values by their ``repr`` (functions and objects by their qualified name, as in
    :func:`describe_params`). Every rank receives every rank's digests, so all ranks
    raise the same error at once instead of some waiting forever in a collective. Call it
    before anything that can fail differently on different ranks. Without a process group it
    does nothing.

    Parameters
    ----------
    values : mapping
        Name to value, on every rank the same names.

    Raises
    ------
    ParameterError
        On every rank, naming the first value that differs and each rank's digest of it.
    """
    if not is_distributed():
        return
    mine = {name: _digest(v) for name, v in values.items()}
    everyone: list[Any] = [None] * world_size()
    dist.all_gather_object(everyone, mine)
    for name in mine:
        seen = [d.get(name) for d in everyone]
        if any(s != seen[0] for s in seen):
            shown = "; ".join(f"rank {r}: {s}" for r, s in enumerate(seen))
            raise ParameterError(
                f"{name} differs between processes ({shown}); every process must run "
                f"the same estimator, seed and data"
            )


# --------------------------------------------------------------------------- local processes


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(
    rank_: int,
    fn: Callable,
    world: int,
    port: int,
    backend: str,
    threads: int | None,
    results: Any,
    args: tuple,
) -> None:
    if threads is not None:
        torch.set_num_threads(threads)
    dist.init_process_group(
        backend,
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank_,
        world_size=world,
        timeout=timedelta(seconds=120),
    )
    try:
        buf = io.BytesIO()  # bytes, not tensors: shared-memory handles die with this process
        torch.save(fn(*args), buf)
        results.put((rank_, buf.getvalue()))
    finally:
        dist.destroy_process_group()


def _fit_copy(estimator: Any, x: Any, y: Any, fit_params: dict) -> Any:
    from sklearn.base import clone

    model = clone(estimator).fit(x, y, **fit_params)
    return model if is_main_process() else None


def fit_in_processes(
    estimator: Any, x: Any, y: Any = None, *, world: int = 2, threads: int | None = 1, **fit_params: Any
) -> Any:
    """Fit a copy of ``estimator`` on ``(x, y)`` in ``world`` local processes; return rank 0's fitted copy.

    Every process gets the whole data and fits an unfitted clone (same parameters, same
    seed), so they train data-parallel as under ``torchrun``; CPU processes, gloo, ``threads``
    threads each (see :func:`spawn`). For checking that W processes reproduce one, and for
    measuring them, on one machine.

    Parameters
    ----------
    estimator : estimator
        A scikit-learn style estimator (with ``fit`` and ``get_params``), e.g.
        :class:`~infoclust.iic.IIC`; it is not modified.
    x, y
        The arguments of ``estimator.fit``; ``y`` may be None.
    world : int
        The number of processes.
    threads : int or None
        CPU threads of each process (None: torch's default).
    **fit_params
        Other keyword arguments of ``estimator.fit``.

    Returns
    -------
    estimator
        Rank 0's fitted copy.

    Raises
    ------
    TypeError
        Here, before any process starts, for an ``estimator`` that is not a scikit-learn
        estimator.
    ParameterError
        Here, before any process starts, for a parameter of ``estimator`` that cannot be
        sent to a process (e.g. a lambda ``g``: processes are spawned, so everything travels
        pickled), and for bad ``world`` or ``threads``.
    """
    if not (callable(getattr(estimator, "fit", None)) and callable(getattr(estimator, "get_params", None))):
        raise TypeError(
            "estimator must be a scikit-learn estimator (with fit and get_params), "
            f"got {type(estimator).__name__}"
        )
    for name, value in estimator.get_params(deep=False).items():
        _check_picklable(name, value)
    return spawn(_fit_copy, world, estimator, x, y, fit_params, threads=threads)[0]


def _check_picklable(name: str, value: Any) -> None:
    """Raise :class:`ParameterError` naming ``name`` if ``value`` cannot be sent to a spawned process."""
    if torch.is_tensor(value) or isinstance(value, np.ndarray):
        return
    try:
        pickle.dumps(value)
    except Exception as err:  # pickling raises several types (PicklingError, AttributeError, TypeError)
        raise ParameterError(
            f"{name}={value!r:.80} cannot be sent to the spawned processes ({type(err).__name__}: {err}); "
            f"define it at a module's top level (not a lambda or a function inside a function)"
        ) from None


def spawn(
    fn: Callable[..., Any], world: int, *args: Any, backend: str = "gloo", threads: int | None = 1
) -> list[Any]:
    """Run ``fn(*args)`` in ``world`` new processes forming a process group; return their results.

    A stand-in for ``torchrun --nproc-per-node world`` on one machine, for tests, benchmarks
    and the book: processes are started with the ``spawn`` method (``fn`` must be importable,
    i.e. defined at a module's top level), meet on 127.0.0.1 at a free port and run with
    ``threads`` CPU threads each (None: torch's default).

    Parameters
    ----------
    fn : callable
        Defined at a module's top level; called as ``fn(*args)`` in every process.
    world : int
        The number of processes.
    *args
        Picklable arguments of ``fn``.
    backend : str
        The process group's backend.
    threads : int or None
        CPU threads of each process; None: torch's default.

    Returns
    -------
    list
        ``fn``'s (picklable) results, in rank order.

    Raises
    ------
    ParameterError
        Before any process starts, for bad ``world`` or ``threads``, or an ``fn`` or argument
        that cannot be pickled.
    torch.multiprocessing.ProcessRaisedException
        When ``fn`` raises in any process; the message holds its traceback.
    """
    world = check_int("world", world, 1)
    if threads is not None:
        check_int("threads", threads, 1)
    _check_picklable("fn", fn)
    for i, arg in enumerate(args):
        _check_picklable(f"args[{i}]", arg)
    ctx = torch.multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = torch.multiprocessing.start_processes(
        _worker,
        args=(fn, world, _free_port(), backend, threads, results, args),
        nprocs=world,
        join=False,
        start_method="spawn",
    )
    out: dict[int, Any] = {}

    def drain() -> None:
        while True:
            try:
                r, value = results.get_nowait()
            except queue.Empty:
                return
            out[r] = torch.load(io.BytesIO(value), weights_only=False)  # our own processes' results

    while not procs.join(timeout=0.05):
        drain()
    drain()
    while len(out) < world:  # results still in the pipe after the processes exited
        r, value = results.get(timeout=30)
        out[r] = torch.load(io.BytesIO(value), weights_only=False)
    return [out[r] for r in range(world)]
