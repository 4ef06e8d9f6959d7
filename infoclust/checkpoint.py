"""Checkpoints for runs of hours to days: atomic files that a ``kill -9`` cannot leave half written.

The IIC authors trained CIFAR-10 for about 12 days on one GPU and restarted by hand in the
middle. A checkpoint here holds everything a run needs to continue as if it had never
stopped: the networks, the optimisers, the history, the epoch, and the random states of
every process (the estimator's generators and the global ones of torch, CUDA, NumPy and
Python, in case a user's g draws from them). On the CPU, a run resumed from a checkpoint
reaches bit-identical parameters to one that was never interrupted (tested).

* :func:`save_checkpoint` writes a temporary file in the target's folder, flushes it to disk
  and renames it over the target (``os.replace`` is atomic on POSIX and Windows), so the file
  on disk is always the previous checkpoint or the new one, never a torn mix.
* :func:`load_checkpoint` reads it with ``torch.load(weights_only=True)`` (no code is run);
  NumPy arrays travel as tagged tensors.
* :func:`rng_states` collects the random states of every rank (a collective under
  ``torch.distributed``); :func:`restore_rng_states` gives each rank its own back.
"""

from __future__ import annotations

import os
import random
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from . import distributed
from .utils import ParameterError, atomic_write, check_bool

__all__ = [
    "FORMAT",
    "save_checkpoint",
    "load_checkpoint",
    "rng_states",
    "restore_rng_states",
    "check_compatible",
    "write_training_state",
    "read_training_state",
    "data_fingerprint",
    "RUN_FILES",
    "prepare_output_dir",
]

#: The ``format`` entry of every checkpoint written here (checked when loading).
FORMAT = "infoclust-checkpoint-1"


def _encode(obj: Any) -> Any:
    """Make ``obj`` loadable with ``weights_only=True``: arrays become tagged tensors."""
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(obj)).clone()}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Mapping):
        return {k: _encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_encode(v) for v in obj)
    return obj


def _decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__"}:
            return obj["__ndarray__"].numpy()
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_decode(v) for v in obj)
    return obj


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically; return the path.

    The file is first written to a temporary file in the same folder, flushed and synced to
    disk, then renamed over ``path``; a process killed at any moment leaves either the old
    checkpoint or the new one. Under ``torch.distributed`` only rank 0 should call this
    (the estimators do so).

    Parameters
    ----------
    path : str or Path
        Target file; its folder is created if missing.
    state : mapping
        Tensors, state dicts, NumPy arrays, numbers, strings, lists, tuples and dicts of them.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    with atomic_write(path, "wb") as f:  # temporary file, fsync, rename, folder fsync
        torch.save({"format": FORMAT, **_encode(dict(state))}, f)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors land on the CPU).

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file.

    Returns
    -------
    dict
        The ``state`` that was saved, its tensors on the CPU.

    Raises
    ------
    FileNotFoundError
        For a missing file.
    ParameterError
        For a file that cannot be read or is not an infoclust checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ParameterError(f"checkpoint {path} could not be read ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ParameterError(f"checkpoint {path} is not an infoclust checkpoint ({FORMAT})")
    return _decode(state)


def _local_rng_state(generators: Mapping[str, torch.Generator]) -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "generators": {name: g.get_state() for name, g in generators.items()},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "python": random.getstate(),
    }


def rng_states(generators: Mapping[str, torch.Generator]) -> list[dict[str, Any]]:
    """The random states of every rank, in rank order (a collective: every rank must call it).

    Each entry holds the states of ``generators`` (the estimator's own) and of torch's global
    CPU and CUDA generators, NumPy's and Python's. The library draws only from its own
    generators; the global ones are kept for a user's ``g`` that draws from them.

    Parameters
    ----------
    generators : mapping
        The estimator's own generators, by name.

    Returns
    -------
    list of dict
        One entry per rank, in rank order (one entry outside ``torch.distributed``).
    """
    mine = _local_rng_state(generators)
    if not distributed.is_distributed():
        return [mine]
    everyone: list[Any] = [None] * distributed.world_size()
    dist.all_gather_object(everyone, mine)
    return everyone


def _equal(a: Any, b: Any) -> bool:
    if torch.is_tensor(a) and torch.is_tensor(b):
        return torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def restore_rng_states(states: list[dict[str, Any]], generators: Mapping[str, torch.Generator]) -> None:
    """Give this rank its random states from :func:`rng_states`'s list.

    Resuming with another number of processes is allowed when all saved ranks had the same
    states (every rank then gets them).

    Parameters
    ----------
    states : list of dict
        One entry per saved rank, as :func:`rng_states` returns them.
    generators : mapping
        The estimator's own generators, by name; each is set to its saved state, as are
        torch's global CPU (and, with as many devices, CUDA) generators, NumPy's and Python's.

    Raises
    ------
    ParameterError
        When the number of processes changed and the saved ranks' states differ, or when the
        checkpoint holds no state for one of ``generators``.
    """
    w, r = distributed.world_size(), distributed.rank()
    if len(states) != w:
        if any(not _equal(s, states[0]) for s in states[1:]):
            raise ParameterError(
                f"the checkpoint was written by {len(states)} processes with different "
                f"random states; resume it with {len(states)} processes, not {w}"
            )
        r = 0
    state = states[r]
    for name, g in generators.items():
        if name not in state["generators"]:
            raise ParameterError(f"the checkpoint holds no state for the generator {name!r}")
        g.set_state(state["generators"][name])
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    random.setstate(state["python"])


def check_compatible(
    path: str | os.PathLike,
    saved: Mapping[str, Any],
    current: Mapping[str, Any],
    ignore: tuple[str, ...] = (),
) -> None:
    """Raise :class:`ParameterError` naming the first parameter that differs from the checkpoint's.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint, named in the error.
    saved : mapping
        The checkpoint's parameters, name to ``repr``.
    current : mapping
        The resumed run's parameters, name to ``repr``.
    ignore : tuple of str
        Names that may differ (e.g. ``epochs``, which a resumed run may raise, or ``verbose``).

    Raises
    ------
    ParameterError
        At the first name (in sorted order) whose values differ, or that only one side has.
    """
    for name in sorted(set(saved) | set(current)):
        if name in ignore:
            continue
        if saved.get(name) != current.get(name):
            raise ParameterError(
                f"{name}={current.get(name)} differs from the checkpoint {path}'s "
                f"{name}={saved.get(name)}; resume with the same parameters "
                f"(or start afresh)"
            )


#: Estimator parameters that a resumed fit may change: more epochs, another device, quiet.
RESUMABLE = ("epochs", "device", "verbose", "checkpoint")


def write_training_state(
    path: str | os.PathLike, state: Mapping[str, Any], generators: Mapping[str, torch.Generator]
) -> None:
    """An estimator's checkpoint at the end of an epoch: every rank calls this, rank 0 writes.

    Adds the random states of every rank (:func:`rng_states`, a collective) and the world
    size to ``state`` (the networks, optimisers, history, epoch, parameters), then rank 0
    writes it with :func:`save_checkpoint`.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file.
    state : mapping
        The estimator's state: networks, optimisers, history, epoch, parameters.
    generators : mapping
        The estimator's own generators, by name (:func:`rng_states`).
    """
    full = {**state, "rng": rng_states(generators), "world_size": distributed.world_size()}
    if distributed.is_main_process():
        save_checkpoint(path, full)


def data_fingerprint(x: torch.Tensor, g: Any = None) -> dict[str, str]:
    """What a run was trained on, as texts a resume compares: the images and the perturbation.

    Parameters
    ----------
    x : torch.Tensor
        The images as the estimator sees them (after any crop and resize).
    g : object
        The perturbation (a callable, or None).

    Returns
    -------
    dict
        ``"x"``: the images' shape, dtype and a SHA-256 hash of their bytes; ``"g"``: the
        perturbation's ``repr`` (its class and settings, or its qualified name for a
        function), as :func:`~infoclust.distributed.describe_params` writes parameters.
    """
    return {"x": distributed._digest(x), "g": distributed.describe_params({"g": g})["g"]}


def _check_same_data(
    path: str | os.PathLike, saved: Mapping[str, str] | None, data: Mapping[str, str]
) -> None:
    if saved is None:
        warnings.warn(
            f"checkpoint {path} records no fingerprint of its training data (written by an older "
            f"infoclust): the resume cannot check that x and g are the run's",
            stacklevel=4,
        )
        return
    for name in sorted(set(saved) | set(data)):
        if saved.get(name) != data.get(name):
            what = "images" if name == "x" else "perturbation"
            raise ParameterError(
                f"{name} differs from the training data of the checkpoint {path}: its {what} were "
                f"{saved.get(name)}, now {data.get(name)}; resume on the same data and view (crop, "
                f"size, number of images) and the same {'g' if name == 'g' else 'x'}, or start afresh"
            )


def read_training_state(
    path: str | os.PathLike,
    params: Mapping[str, str],
    epochs: int,
    *,
    estimator: str,
    data: Mapping[str, str],
) -> dict[str, Any] | None:
    """The checkpoint an estimator's resumed ``fit`` continues from, or None when there is none yet.

    Rank 0 reads the file and sends it to every rank (on several nodes only rank 0's node
    needs it). A missing file warns and returns None: the fit starts afresh (the first run
    of a job that is restarted with ``--resume`` after every pre-emption).

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file.
    params : mapping
        The resumed run's parameters, name to ``repr`` (:func:`~infoclust.distributed.describe_params`).
    epochs : int
        The resumed run's number of epochs, which must not be below the checkpoint's epoch.
    estimator : str
        The estimator's class name, which must be the checkpoint's.
    data : mapping
        What the resumed run trains on, :func:`data_fingerprint`.

    Returns
    -------
    dict or None
        The checkpoint's state (:func:`load_checkpoint`), or None when the file does not exist.

    Raises
    ------
    ParameterError
        When the checkpoint is another estimator's (its ``estimator`` entry is not
        ``estimator``), when it was trained on other data (its ``data`` entry differs from
        ``data``), when its parameters differ from ``params`` (other than
        :data:`RESUMABLE`'s), or when it is past ``epochs``.
    """
    if not distributed.broadcast_object(Path(path).is_file() if distributed.is_main_process() else None):
        if distributed.is_main_process():
            warnings.warn(
                f"checkpoint={str(path)!r} does not exist yet: training starts afresh", stacklevel=3
            )
        return None
    state = distributed.broadcast_object(load_checkpoint(path) if distributed.is_main_process() else None)
    if state.get("estimator") != estimator:
        raise ParameterError(
            f"checkpoint {path} was written by {state.get('estimator')}, not by {estimator}: "
            f"resume it with {state.get('estimator')}, or give {estimator} another checkpoint path"
        )
    _check_same_data(path, state.get("data"), data)
    check_compatible(path, state["params"], params, ignore=RESUMABLE)
    if state["epoch"] > epochs:
        raise ParameterError(
            f"epochs={epochs} is below the checkpoint {path}'s epoch {state['epoch']}; "
            f"resume with epochs >= {state['epoch']}"
        )
    return state


#: The files of a run in its output folder: a folder holding any of them holds a run.
RUN_FILES = ("checkpoint.pt", "metrics.json", "history.json", "run.json")


def prepare_output_dir(path: str | os.PathLike, *, resume: bool, overwrite: bool) -> Path:
    """Check a run's output folder before its first epoch, create it if missing; return it.

    A command that trains for hours checks here, at the door, what would otherwise fail or
    destroy data only at the end of its first epoch: an empty path (not the working
    folder), a path that is a file, a folder where no file can be created, and a folder that
    already holds a run (one of :data:`RUN_FILES`), whose checkpoint and metrics a fresh run
    would replace. Such a folder is accepted only with ``resume`` (continue the run) or
    ``overwrite`` (start afresh and replace it); nothing is deleted here.

    Parameters
    ----------
    path : str or Path
        The output folder.
    resume : bool
        The run continues from the folder's checkpoint (``--resume``).
    overwrite : bool
        A fresh run may replace the folder's run (``--overwrite``).

    Returns
    -------
    Path
        The folder, which exists and is writable.

    Raises
    ------
    ParameterError
        For each case above, naming the folder and, for a folder holding a run, the
        options ``--resume`` and ``--overwrite``.
    """
    check_bool("resume", resume)
    check_bool("overwrite", overwrite)
    if resume and overwrite:
        raise ParameterError(
            "resume and overwrite exclude each other: give --resume or --overwrite, not both"
        )
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"the output folder must be a path (str), got {type(path).__name__}")
    if not os.fspath(path).strip():
        raise ParameterError("the output folder is an empty path (''): give a folder, e.g. --out runs/x")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ParameterError(f"the output folder {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):  # the files of the run can be created here
            pass
    except OSError as err:
        raise ParameterError(
            f"the output folder {path} is not writable ({type(err).__name__}: {err.strerror or err})"
        ) from None
    held = [name for name in RUN_FILES if (path / name).exists()]
    if held and not (resume or overwrite):
        raise ParameterError(
            f"the output folder {path} holds a run ({', '.join(held)}): give --resume to continue it, "
            f"--overwrite to replace it, or another folder"
        )
    return path
