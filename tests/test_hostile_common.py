"""What every hostile test module shares: a strict refusal and a check that nothing was lost.

The tests of issue 22's cases (``tests/test_hostile_*.py``, one module per library module)
judge each bad input strictly and say which way it failed, so that a run of them on an old
commit counts the outcomes (``grep -o "SILENT\\|UNCLEAR\\|DATA LOST" log``):

* :func:`refused`: the block must raise ``ParameterError`` or ``TypeError`` (or the types
  given) with a message naming each of ``names``; ``SILENT`` when it raises nothing,
  ``UNCLEAR`` when it raises something else or does not name them;
* :func:`kept`: the files of the given folders must be byte-identical after the block
  (``DATA LOST`` otherwise), the previous good outputs of a run, a build or a ledger.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

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
