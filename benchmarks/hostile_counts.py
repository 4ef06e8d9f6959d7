"""Counts of the hostile cases' outcomes: clear, correct, unclear, silent, data lost, hang.

The cases are the tables ``CASES`` of ``tests/test_hostile_*.py`` (one module per library
module). Each runs once on one thread, judged as the tests judge it (``run_strictly`` of
``tests/test_hostile_common.py``), with a time limit::

    python benchmarks/hostile_counts.py [-k SUBSTRING] [--timeout SECONDS]

A bad input refused clearly counts as ``clear``, a valid input handled as ``correct``; a failure
counts by the word its message starts with (``silent``, ``unclear``, ``data lost``), and a case
with no answer within the limit as ``hang``. The cases that fail are listed with the reason.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections import Counter
from pathlib import Path

import torch

TESTS = Path(__file__).resolve().parents[1] / "tests"
OUTCOMES = ("clear", "correct", "unclear", "silent", "data lost", "hang")


class _Hang(BaseException):
    """No answer within the time limit (a BaseException: the judge lets it through)."""


def _on_alarm(signum, frame):
    raise _Hang()


def cases() -> list:
    """Every case of the hostile test modules' tables, in module order."""
    sys.path.insert(0, str(TESTS))
    found = []
    for path in sorted(TESTS.glob("test_hostile_*.py")):
        found += getattr(importlib.import_module(path.stem), "CASES", [])
    return found


def outcome(case, seconds: int) -> tuple[str, str]:
    """The outcome of one case and, for a failure, its reason."""
    from test_hostile_common import run_strictly

    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(seconds)
    try:
        run_strictly(case)
    except _Hang:
        return "hang", f"no answer within {seconds} s"
    except Exception as err:  # the judge's AssertionError, or the judge itself failed
        said = str(err)
        return next((o for o in OUTCOMES if said.upper().startswith(o.upper())), "unclear"), said
    finally:
        signal.alarm(0)
    return ("correct" if case.expect in ("works", "either") else "clear"), ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-k", default="", help="run only the cases whose id contains this")
    parser.add_argument("--timeout", type=int, default=120, help="seconds before a case counts as a hang")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    counts: Counter[str] = Counter()
    for case in (c for c in cases() if args.k in c.id):
        result, reason = outcome(case, args.timeout)
        counts[result] += 1
        if reason:
            print(f"{result:9s} {case.id}: {reason[:200]}", flush=True)
    print(", ".join(f"{o} {counts[o]}" for o in OUTCOMES), f"({sum(counts.values())} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
