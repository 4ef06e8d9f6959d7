"""Parameter and input checks, randomness, device resolution and timing.

Every chapter and every estimator goes through these few helpers so that a run is
reproducible, lands on the best device available (:func:`resolve_device`) and rejects bad
parameters and inputs with an error that names them (:class:`ParameterError`, the
``check_*`` functions, :func:`check_images`, :func:`check_labels`).

One rule for randomness: classes take ``seed`` and own their generator; functions take
``generator`` (a :class:`torch.Generator`, or None for torch's global one);
:func:`make_generator` makes a generator from either. Only a chapter's set-up seeds the
global generators (:func:`seed_everything`); library code never does.

One rule for devices (:func:`resolve_device`): ``device=None`` is the device of the input
tensor where a function has one, and otherwise ``"auto"``, the best device present; a result
that belongs on the CPU says so by the default ``device="cpu"``.

One rule for checks: a public function checks its inputs once, where they enter, and calls
private kernels (``_name``) that trust them; the library's own callers call the kernels.
"""

from __future__ import annotations

import math
import os
import platform
import random
import tempfile
import time
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

__all__ = [
    "ParameterError",
    "ConvergenceWarning",
    "TrainingDivergedError",
    "check_choice",
    "check_int",
    "check_number",
    "check_bool",
    "check_seed",
    "check_finite",
    "check_not_diverged",
    "check_images",
    "check_labels",
    "check_generator",
    "make_generator",
    "stream_seed",
    "forked_global_rng",
    "draw_seed",
    "seed_everything",
    "resolve_device",
    "device_name",
    "run_info",
    "timer",
    "atomic_write",
    "NUM_THREADS_ENV",
    "num_threads",
    "configure_threads",
    "thread_environment",
]

#: Seeds are integers in [0, SEED_MAX] (NumPy's and torch's common range).
SEED_MAX = 2**32 - 1


class ParameterError(ValueError):
    """A parameter has a value outside its documented range.

    The message always starts with the parameter's name, so that a user who ran a
    chapter with papermill sees at once which ``-p name value`` to correct.
    """


class TrainingDivergedError(FloatingPointError):
    """Training produced a non-finite loss: the message says where and which setting to lower.

    :class:`ConvergenceWarning` (scikit-learn's class, re-exported here) is its mild sibling:
    a solver that stopped at its iteration cap before reaching its tolerance warns with it,
    so that ``warnings.simplefilter("error", ConvergenceWarning)`` turns it into an error.
    """


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise :class:`ParameterError`.

    Parameters
    ----------
    name : str
        The argument's name, for the error message.
    value : object
        The value given.
    choices : iterable
        The allowed values (the message lists them).

    Returns
    -------
    object
        ``value`` itself.
    """
    choices = list(choices)
    if value not in choices:
        raise ParameterError(f"{name}={value!r} is not one of {choices}")
    return value


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an ``int`` if it is an integer in ``[low, high]``.

    Parameters
    ----------
    name : str
        The argument's name, for the error message.
    value : object
        The value given: an ``int`` or a NumPy integer (not a bool, not a float).
    low, high : int or None
        Inclusive bounds; None: unbounded on that side.

    Returns
    -------
    int
        ``value`` as a Python ``int``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ParameterError(f"{name}={value!r} must be an integer")
    if low is not None and value < low:
        raise ParameterError(f"{name}={value!r} must be >= {low}")
    if high is not None and value > high:
        raise ParameterError(f"{name}={value!r} must be <= {high}")
    return int(value)


def check_number(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    strict_low: bool = False,
) -> float:
    """Return ``value`` as a ``float`` if it is a finite number in the given range.

    Parameters
    ----------
    name : str
        The argument's name, for the error message.
    value : object
        The value given: a real number (not a bool), finite.
    low, high : float or None
        Bounds, inclusive (the lower one exclusive with ``strict_low``); None: unbounded.
    strict_low : bool
        Make the lower bound exclusive (e.g. a positive step size).

    Returns
    -------
    float
        ``value`` as a Python ``float``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ParameterError(f"{name}={value!r} must be a number")
    value = float(value)
    if not np.isfinite(value):
        raise ParameterError(f"{name}={value!r} must be finite")
    if low is not None and (value <= low if strict_low else value < low):
        raise ParameterError(f"{name}={value!r} must be {'>' if strict_low else '>='} {low}")
    if high is not None and value > high:
        raise ParameterError(f"{name}={value!r} must be <= {high}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a real boolean (``True``/``False``), else raise.

    Strings such as ``"no"`` (what ``papermill -p download no`` passes) are rejected
    instead of counting as true.

    Parameters
    ----------
    name : str
        The argument's name, for the error message.
    value : object
        The value given.

    Returns
    -------
    bool
        ``value`` itself.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterError(f"{name}={value!r} must be True or False (papermill: -p {name} True)")
    return bool(value)


def check_seed(name: str, value: Any) -> int:
    """Return ``value`` if it is an integer seed in ``[0, SEED_MAX]``, else raise.

    Parameters
    ----------
    name : str
        The argument's name, for the error message.
    value : object
        The value given.

    Returns
    -------
    int
        The seed.
    """
    if value is None:
        raise ParameterError(
            f"{name}=None: give an integer seed in [0, {SEED_MAX}] (runs must be reproducible)"
        )
    return check_int(name, value, 0, SEED_MAX)


def stream_seed(seed: int, stream: int) -> int:
    """An independent seed for random stream ``stream`` of something seeded with ``seed``.

    Where one seed must drive several generators (an estimator's default g beside its
    batch order; in one training run, a pool's choice of copy and then the paper's g),
    seeding each with ``seed`` itself would give them the same random numbers. NumPy's
    ``SeedSequence([seed, stream])`` decorrelates them.

    Parameters
    ----------
    seed : int
        The seed of the whole.
    stream : int
        The index of the stream (0, 1, ...), one per generator.

    Returns
    -------
    int
        A seed in ``[0, SEED_MAX]``.
    """
    seed = check_seed("seed", seed)
    stream = check_int("stream", stream, 0)
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


def make_generator(seed_or_generator: int | torch.Generator, name: str = "seed") -> torch.Generator:
    """A :class:`torch.Generator` from a seed (a new CPU generator) or a generator (itself).

    Library functions take ``generator=`` and classes ``seed=``; this is the one place
    where either becomes a generator. The global random state is never touched.

    Parameters
    ----------
    seed_or_generator : int or torch.Generator
        A seed in ``[0, SEED_MAX]``, or a generator.
    name : str
        The argument's name, for the error message.

    Returns
    -------
    torch.Generator
        A new CPU generator seeded with the seed, or the generator given.
    """
    if isinstance(seed_or_generator, torch.Generator):
        return seed_or_generator
    return torch.Generator().manual_seed(check_seed(name, seed_or_generator))


def check_generator(name: str, value: Any) -> torch.Generator | None:
    """Return ``value`` if it is a :class:`torch.Generator` or None, else raise ``TypeError``.

    Parameters
    ----------
    name : str
        The argument's name, for the error message.
    value : object
        The value given.

    Returns
    -------
    torch.Generator or None
        ``value`` itself.
    """
    if value is not None and not isinstance(value, torch.Generator):
        raise TypeError(
            f"{name} must be a torch.Generator or None, got {type(value).__name__} "
            f"(for a seed n, pass torch.Generator().manual_seed(n))"
        )
    return value


@contextmanager
def forked_global_rng(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Run a block with torch's global generators seeded with ``seed``, restored afterwards.

    For what only draws from the global generator: torch's default initialisation of a
    network (build it on the CPU inside the block, then move it), or a user's callable.
    The CPU generator is forked, and the generator of ``device`` when it is a CUDA device;
    no other generator is seeded (``torch.manual_seed`` would seed every CUDA device, even
    lazily before CUDA starts, and that would outlive the block).

    Parameters
    ----------
    seed : int
        The seed of the generators inside the block.
    device : torch.device or str
        A CUDA device whose generator is forked and seeded too; the CPU's always is.

    Yields
    ------
    None
        Nothing: the block runs with the seeded generators, which are restored when it ends.
    """
    seed = check_seed("seed", seed)
    device = torch.device(device)
    cuda = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if device.type == "cuda"
        else []
    )
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield


def draw_seed(generator: torch.Generator | None) -> int:
    """A seed in [0, SEED_MAX] drawn from ``generator`` (None: torch's global generator).

    How a function that takes ``generator`` seeds what only draws from the global generator
    (a network's default initialisation, under :func:`forked_global_rng`).

    Parameters
    ----------
    generator : torch.Generator or None
        The generator to draw from.

    Returns
    -------
    int
        The seed.
    """
    generator = check_generator("generator", generator)
    return int(torch.randint(0, SEED_MAX + 1, (1,), generator=generator))


def check_finite(name: str, x: torch.Tensor | np.ndarray) -> None:
    """Raise :class:`ParameterError` if the array or tensor ``x`` holds NaN or infinity.

    Parameters
    ----------
    name : str
        The argument's name, for the error message.
    x : torch.Tensor or numpy.ndarray
        The values to check.
    """
    finite = torch.isfinite(x).all().item() if torch.is_tensor(x) else np.isfinite(x).all()
    if not finite:
        raise ParameterError(f"{name} contains NaN or infinite values")


#: A training loss or estimate beyond this magnitude has diverged: the library's losses are a few
#: nats while training works, and a value of a million means the weights have blown up.
DIVERGENCE_BOUND = 1e6


def check_not_diverged(
    what: str, quantity: str, value: float, *, epoch: int | None, step: int, lower: str
) -> float:
    """Return ``value`` unless it is non-finite or beyond :data:`DIVERGENCE_BOUND`; then raise.

    Parameters
    ----------
    what : str
        What is being trained (the error says that it diverged).
    quantity : str
        What ``value`` is, e.g. ``"the loss"``.
    value : float
        The value to check.
    epoch : int or None
        The epoch at which it was computed; None where epochs are not counted.
    step : int
        The step at which it was computed.
    lower : str
        The setting to lower, named in the error, e.g. ``"lr"``.

    Returns
    -------
    float
        ``value``, unchanged.

    Raises
    ------
    TrainingDivergedError
        When ``value`` is NaN, infinite, or larger than :data:`DIVERGENCE_BOUND` in absolute
        value; the message gives ``quantity``'s value, the epoch and step, and ``lower``.
    """
    if math.isfinite(value) and abs(value) <= DIVERGENCE_BOUND:
        return value
    when = (f"epoch {epoch}, " if epoch is not None else "") + f"step {step}"
    raise TrainingDivergedError(f"{what} diverged: {quantity} became {value:.4g} in {when}; lower {lower}")


def check_images(
    name: str,
    x: Any,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    channels: int | None = None,
    min_size: int = 1,
    square: bool = False,
    nonnegative: bool = False,
) -> torch.Tensor:
    """Check a batch of images where it enters the library and return it as a usable tensor.

    Parameters
    ----------
    name : str
        The argument's name, for the error messages.
    x : torch.Tensor or numpy.ndarray
        Images of shape (N, C, H, W) with a floating dtype.
    dtype : torch.dtype or None
        Convert to this dtype; None keeps ``x``'s.
    device : torch.device or str or None
        Move to this device; None keeps ``x``'s (the rule of :func:`resolve_device`).
    channels : int or None
        The required channel count C; None accepts any.
    min_size : int
        The least height and width, in pixels.
    square : bool
        Require H == W.
    nonnegative : bool
        Refuse negative pixels.

    Returns
    -------
    torch.Tensor
        ``x`` as a contiguous tensor, of ``dtype`` and on ``device`` when given.

    Raises
    ------
    TypeError
        For another type than a tensor or an array, and for integer or boolean images
        (``uint8`` images in 0..255 must be scaled: ``x.float() / 255``).
    ParameterError
        Naming ``name``, for an empty batch, another rank, a wrong channel count, images
        smaller than ``min_size`` pixels or not square when ``square``, negative pixels when
        ``nonnegative``, and NaN or infinity.
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not torch.is_tensor(x):
        raise TypeError(
            f"{name} must be a torch.Tensor or numpy array of images (N, C, H, W), got {type(x).__name__}"
        )
    if not x.is_floating_point():
        raise TypeError(
            f"{name} has dtype {x.dtype}; images must be floating point in [0, 1] "
            f"(for uint8 images in 0..255 use x.float() / 255)"
        )
    if x.dim() != 4:
        raise ParameterError(f"{name} must have shape (N, C, H, W), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ParameterError(f"{name} is an empty batch (shape {tuple(x.shape)})")
    if channels is not None and x.shape[1] != channels:
        raise ParameterError(
            f"{name} has {x.shape[1]} channels, expected {channels} (shape {tuple(x.shape)})"
        )
    if min(x.shape[-2:]) < min_size:
        raise ParameterError(
            f"{name} images are {x.shape[-2]} x {x.shape[-1]} pixels; at least "
            f"{min_size} x {min_size} are needed"
        )
    if square and x.shape[-1] != x.shape[-2]:
        raise ParameterError(f"{name} must be square images (N, C, H, H), got {tuple(x.shape)}")
    x = x.to(device=device if device is not None else x.device, dtype=dtype or x.dtype)
    check_finite(name, x)
    if nonnegative and bool((x < 0).any()):
        raise ParameterError(f"{name} has negative pixels (min {x.min().item():.3g}); images must be >= 0")
    return x.contiguous()


def check_labels(name: str, y: Any, n: int, n_classes: int | None = None) -> torch.Tensor:
    """Check the integer labels of ``n`` samples where they enter the library.

    Parameters
    ----------
    name : str
        The argument's name, for the error messages.
    y : torch.Tensor or numpy.ndarray or sequence of int
        The labels, of shape (n,).
    n : int
        The number of samples.
    n_classes : int or None
        When given, every label must be in ``[0, n_classes)``; otherwise ``>= 0``.

    Returns
    -------
    torch.Tensor
        The labels as int64 on the CPU.

    Raises
    ------
    TypeError
        For another type, or labels that are not integers (floating, complex or boolean).
    ParameterError
        Naming ``name``, for another shape than (n,) or a label out of range.
    """
    if isinstance(y, (list, tuple)):
        y = np.asarray(y)
    if isinstance(y, np.ndarray):
        y = torch.from_numpy(np.ascontiguousarray(y))
    if not torch.is_tensor(y):
        raise TypeError(f"{name} must be a tensor or array of integer labels, got {type(y).__name__}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} has dtype {y.dtype}; labels must be integers (e.g. y.long())")
    if y.shape != (n,):
        raise ParameterError(f"{name} must have shape ({n},), got {tuple(y.shape)}")
    if n and (bool((y < 0).any()) or (n_classes is not None and bool((y >= n_classes).any()))):
        bound = f"[0, {n_classes})" if n_classes is not None else ">= 0"
        raise ParameterError(
            f"{name} must hold labels in {bound}, got values from {int(y.min())} to {int(y.max())}"
        )
    return y.to(device="cpu", dtype=torch.long)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices) and return a CPU generator.

    Only a chapter's set-up calls this (through
    :func:`infoclust.book.start <infoclust.book.chapter.start>`): library code takes ``seed``
    or ``generator`` instead and leaves the global state alone.

    Parameters
    ----------
    seed : int
        The seed, in ``[0, SEED_MAX]``.

    Returns
    -------
    torch.Generator
        A CPU generator seeded with ``seed``, for the chapter's own draws.
    """
    seed = check_seed("seed", seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _auto_device() -> torch.device:
    """The best device present: CUDA, then MPS, then the CPU (what ``"auto"`` means)."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(
    device: str | torch.device | None = "auto", like: torch.Tensor | None = None
) -> torch.device:
    """Turn a device argument into the device to compute on; the one meaning of ``device=None``.

    Every ``device`` argument of the library follows this rule: ``None`` is the device of
    the input tensor where the function has one (``like``), and otherwise ``"auto"``, the
    best device present (CUDA, then MPS, then CPU). A function whose result belongs on the
    CPU (a cost matrix for POT, a field drawn once) says so with the default ``"cpu"``,
    never with ``None``. An explicit device that is not available raises
    :class:`ParameterError` instead of failing later inside a kernel.

    Parameters
    ----------
    device : str or torch.device or None
        ``"auto"``, ``None``, or a device such as ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
    like : torch.Tensor or None
        The function's input tensor, whose device ``None`` means.

    Returns
    -------
    torch.device
        The device to compute on.
    """
    if device is None:
        return like.device if like is not None else _auto_device()
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise ParameterError(f"device={device!r} must be a string such as 'auto', 'cpu', 'cuda'")
    if device == "auto":
        return _auto_device()
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ParameterError(f"device={device!r} is not a device name ({err})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device={device!r} but CUDA is not available here; use 'auto' or 'cpu'")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ParameterError(f"device={device!r} but MPS is not available here; use 'auto' or 'cpu'")
    if dev.type not in ("cpu", "cuda", "mps"):  # e.g. "meta": tensors without data
        raise ParameterError(
            f"device={device!r} is not one the library computes on: 'auto', 'cpu', 'cuda', 'mps'"
        )
    return dev


def device_name(device: torch.device) -> str:
    """A human-readable name of ``device`` (the GPU model, or the CPU and its thread count).

    Parameters
    ----------
    device : torch.device
        A resolved device (:func:`resolve_device`).

    Returns
    -------
    str
        Its name, for the run line and the results ledger.
    """
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def run_info(seed: int, device: torch.device, profile: str = "") -> dict[str, Any]:
    """What made this run: seed, device, versions and the start time (UTC, ISO 8601).

    Parameters
    ----------
    seed : int
        The run's seed.
    device : torch.device
        The device it computes on.
    profile : str
        The chapter profile it runs with ("" outside the book).

    Returns
    -------
    dict
        The run's description, by name (written into the results file).
    """
    return {
        "seed": seed,
        "device": str(device),
        "device_name": device_name(device),
        "profile": profile,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host_cpus": os.cpu_count(),
    }


@contextmanager
def timer() -> Iterator[dict[str, float]]:
    """Measure wall time: ``with timer() as t: ...`` then ``t["seconds"]``.

    CUDA work is synchronised at both ends so that GPU times are real.

    Yields
    ------
    dict
        Its ``"seconds"`` entry is set when the block ends.
    """
    out: dict[str, float] = {}
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    try:
        yield out
    finally:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out["seconds"] = time.perf_counter() - start


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """Write a file so that it is never seen half written: ``with atomic_write(p) as f: f.write(...)``.

    The block writes to a temporary file in the target's folder, which is flushed and synced
    to disk and then renamed over ``path`` (``os.replace``, atomic on POSIX and Windows); the
    folder is synced too, so that the rename survives a crash. If the block raises, or the
    process is killed, ``path`` keeps its previous content and the temporary file is removed
    (killed: left as a hidden ``.name.*.tmp``).

    Parameters
    ----------
    path : str or os.PathLike
        The file to write; its folder is created if missing.
    mode : {"w", "wb"}
        Text or binary.

    Yields
    ------
    file object
        The open temporary file, to write to.

    Raises
    ------
    ValueError
        When ``mode`` is neither ``"w"`` nor ``"wb"``.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode={mode!r} must be 'w' or 'wb'")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # the permissions of a plainly created file, not mkstemp's 0600
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


#: The environment variable that fixes the number of CPU threads of chapters and the build.
NUM_THREADS_ENV = "INFOCLUST_NUM_THREADS"


def num_threads() -> int:
    """The CPU thread count for torch: ``$INFOCLUST_NUM_THREADS``, else the CPUs this process may use.

    Never derived from the machine's current load: results can depend on the thread count
    (the order of floating-point sums in parallel reductions and BLAS), so a run must not
    choose it by how busy the machine happens to be.

    Returns
    -------
    int
        The number of threads, at least 1.
    """
    value = os.environ.get(NUM_THREADS_ENV)
    if value is None or value.strip() == "":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        n = int(value)
    except ValueError:
        raise ParameterError(f"{NUM_THREADS_ENV}={value!r} must be a whole number of threads") from None
    return check_int(NUM_THREADS_ENV, n, 1)


def configure_threads() -> int:
    """Set the thread count of torch and of the BLAS libraries loaded (numpy's and scipy's
    OpenBLAS) to :func:`num_threads` and return it (chapters' set-up).

    The BLAS count matters too: it sets the order of the sums in a matrix product, so a reader
    who reruns a chapter in Jupyter (without the build's :func:`thread_environment`) gets the
    build's numbers from the same ``$INFOCLUST_NUM_THREADS``.

    Returns
    -------
    int
        The thread count set, :func:`num_threads`.
    """
    n = num_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    threadpool_limits(n, user_api="blas")
    return n


def thread_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a process that runs torch (a chapter's kernel): fixed threads, passive waits.

    ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``/``OPENBLAS_NUM_THREADS`` and ``INFOCLUST_NUM_THREADS`` become
    :func:`num_threads`, and ``OMP_WAIT_POLICY=PASSIVE`` unless ``environ`` (default
    ``os.environ``) sets it: torch's OpenMP threads then sleep at a barrier instead of spinning,
    which on a machine whose cores other processes also use makes the waiting thread hand its
    core to the one it waits for, instead of burning it (see ``benchmarks/bench_load.py``).
    These variables are read when the OpenMP runtime starts, so they must be set before torch
    is imported: the book build sets them for its chapters.

    Parameters
    ----------
    environ : dict or None
        The environment the process would inherit, read for ``OMP_WAIT_POLICY``; default
        ``os.environ``.

    Returns
    -------
    dict
        The variables to set (to add to the process's environment), name to value.
    """
    environ = dict(os.environ if environ is None else environ)
    n = str(num_threads())
    out = {NUM_THREADS_ENV: n, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}
    out["OMP_WAIT_POLICY"] = environ.get("OMP_WAIT_POLICY") or "PASSIVE"
    return out
