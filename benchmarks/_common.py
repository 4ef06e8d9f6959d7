"""What every benchmark shares: best-of-n wall times and the results file.

Imported by the ``bench_*.py`` scripts as ``from _common import best_time, write_results``
(the scripts' own folder is on ``sys.path`` when they run).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import infoclust as ic
from infoclust.utils import atomic_write

__all__ = ["RESULTS_DIR", "best_time", "write_results"]

#: Where the benchmarks write their JSON (under the project root).
RESULTS_DIR = Path(__file__).resolve().parents[1] / "_build" / "benchmarks"


def best_time(
    fn: Callable[[], Any], repeats: int = 3, warmup: int = 0, *, process_time: bool = False
) -> tuple[float, Any]:
    """The shortest wall time of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones, and the
    last call's result. CUDA work is synchronised at both ends of each call (:func:`infoclust.timer`).

    ``process_time=True`` times the CPU seconds of this process instead (``time.process_time``,
    all its threads): a machine shared with other work slows the wall clock, not this."""
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be >= 1")
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        with ic.timer() as t:
            result = fn()
        times.append(time.process_time() - start if process_time else t["seconds"])
    return min(times), result


def write_results(name: str, data: dict[str, Any], folder: Path = RESULTS_DIR) -> Path:
    """Write ``data`` to ``<folder>/<name>.json`` (atomically) and print where."""
    path = Path(folder) / f"{name}.json"
    with atomic_write(path) as fh:
        fh.write(json.dumps(data, indent=2, default=str))
    print(f"results written to {path}")
    return path
