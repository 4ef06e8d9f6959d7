"""Seeding, device resolution, parameter checks, timing and the plot style.

Every chapter and every estimator goes through these few helpers so that a run is
reproducible (:func:`seed_everything`), lands on the best device available
(:func:`resolve_device`) and rejects bad parameters with an error that names the
parameter (:class:`ParameterError` and the ``check_*`` functions).
"""
from __future__ import annotations

import os
import platform
import random
import time
from collections.abc import Iterable
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch

__all__ = [
    "ParameterError",
    "check_choice",
    "check_int",
    "check_number",
    "check_finite",
    "seed_everything",
    "resolve_device",
    "run_info",
    "timer",
    "set_plot_style",
]


class ParameterError(ValueError):
    """A parameter has a value outside its documented range.

    The message always starts with the parameter's name, so that a user who ran a
    chapter with papermill sees at once which ``-p name value`` to correct.
    """


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise :class:`ParameterError`."""
    choices = list(choices)
    if value not in choices:
        raise ParameterError(f"{name}={value!r} is not one of {choices}")
    return value


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an ``int`` if it is an integer in ``[low, high]``."""
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

    ``strict_low=True`` makes the lower bound exclusive (e.g. a positive step size).
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


def check_finite(name: str, x: torch.Tensor | np.ndarray) -> None:
    """Raise :class:`ParameterError` if the array or tensor ``x`` holds NaN or infinity."""
    finite = torch.isfinite(x).all().item() if torch.is_tensor(x) else np.isfinite(x).all()
    if not finite:
        raise ParameterError(f"{name} contains NaN or infinite values")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices) and return a CPU generator.

    The returned generator is what library code should draw from, so that one seed
    fixes one run whatever else the session has drawn before.
    """
    seed = check_int("seed", seed, 0, 2**32 - 1)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"`` into the best device present (CUDA, then MPS, then CPU).

    An explicit device that is not available raises :class:`ParameterError`
    instead of failing later inside a kernel.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise ParameterError(f"device={device!r} must be a string such as 'auto', 'cpu', 'cuda'")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ParameterError(f"device={device!r} is not a device name ({err})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device={device!r} but CUDA is not available here; use 'auto' or 'cpu'")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ParameterError(f"device={device!r} but MPS is not available here; use 'auto' or 'cpu'")
    return dev


def device_name(device: torch.device) -> str:
    """A human-readable name of ``device`` (the GPU model, or the CPU and its thread count)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def run_info(seed: int, device: torch.device, profile: str = "") -> dict[str, Any]:
    """What made this run: seed, device, versions and the start time (UTC, ISO 8601)."""
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


def set_plot_style() -> None:
    """One matplotlib style for every chapter: readable sizes, no top/right spines."""
    import matplotlib as mpl

    mpl.rcParams.update(
        {
            "figure.figsize": (6.4, 4.0),
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "font.size": 10,
            "axes.titlesize": 11,
            "legend.frameon": False,
            "image.cmap": "gray_r",
        }
    )
