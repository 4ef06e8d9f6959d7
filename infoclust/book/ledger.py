"""The results ledger: each chapter's headline numbers, written by the run that made them.

A chapter opens one :class:`Ledger` (through
:func:`infoclust.book.start <infoclust.book.chapter.start>`) and calls :meth:`Ledger.record`
for every claim it reproduces. Each call rewrites
``<results dir>/<chapter>.json`` atomically (a temporary file renamed over the old one), so
the file is never half written. The book's ledger page is built from these files only.

The results directory is ``$INFOCLUST_RESULTS_DIR`` when set. The book build sets it to a
private folder for each chapter run and moves the file into ``_build/results`` only when
the chapter finished without error (:mod:`infoclust.book.runs`), so an interrupted or
failed run never replaces good results. A chapter run by hand (Jupyter, papermill) writes
to ``_build/scratch/results`` under the project root (the folder holding ``_toc.yml``,
searched upwards from the working directory), never into the book's results.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from ..codepath import code_path
from ..utils import (
    ParameterError,
    atomic_write,
    check_choice,
    device_name,
    resolve_device,
    run_info,
    seed_everything,
)
from .catalogue import RUN_PROFILES

__all__ = [
    "Ledger",
    "Result",
    "ResultsFileError",
    "results_dir",
    "load_results",
    "read_results_file",
    "result_fault",
    "RESULT_SCHEMA",
    "results_markdown",
    "markdown_table",
    "md_cell",
    "write_atomic",
]


def _project_root(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / "_toc.yml").exists():
            return folder
    return start


def results_dir() -> Path:
    """Where chapters write their results (see the module docstring).

    Returns
    -------
    Path
        ``$INFOCLUST_RESULTS_DIR`` when set, else the scratch folder of runs by hand.
    """
    env = os.environ.get("INFOCLUST_RESULTS_DIR")
    if env:
        return Path(env)
    return _project_root(Path.cwd().resolve()) / "_build" / "scratch" / "results"


def write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`infoclust.utils.atomic_write`).

    Parameters
    ----------
    path : Path
        The file to write (its folder is created if missing).
    text : str
        Its new content.

    Returns
    -------
    Path
        ``path``.
    """
    with atomic_write(path) as fh:
        fh.write(text)
    return Path(path)


@dataclass
class Result:
    """One measured number and, where there is one, the paper's number beside it.

    ``paper`` is only a number that measures the same thing as ``value`` (same data, same
    protocol); a paper's number from another setting goes into ``context`` as text, shown
    beside the result but never compared with it.

    Parameters
    ----------
    name : str
        What was measured.
    value : float
        Our number.
    unit : str
        Its unit ("" for none).
    paper : float or None
        The paper's number for the same measurement, if any.
    source : str
        Where ``paper`` (or the claim) comes from: a paper's table or section.
    claim : str
        The claim that ``holds`` tests ("" for a number only reported).
    holds : bool or None
        Whether the claim holds; None when there is no claim.
    seconds : float or None
        The time the measurement took.
    context : str
        Numbers from other settings, as text, never compared.
    borderline : bool or None
        Whether the claim's verdict is borderline by a margin its design stated before the
        run (:func:`infoclust.book.report.borderline`): the number that decides it lies so
        close to its threshold that another code path or other seeds may flip it. None when
        no margin was stated (or there is no claim).
    """

    name: str
    value: float
    unit: str = ""
    paper: float | None = None
    source: str = ""
    claim: str = ""
    holds: bool | None = None
    seconds: float | None = None
    context: str = ""
    borderline: bool | None = None


class ResultsFileError(ValueError):
    """A results file that cannot be used: the message names the file and what is wrong."""


@dataclass
class Ledger:
    """The results of one chapter run.

    Parameters
    ----------
    chapter : str
        The chapter's file stem, e.g. ``"01_kmeans"``; names the JSON file.
    profile : str
        The papermill profile the chapter ran with (``smoke``, ``default``, ``full``
        or ``custom``).
    device : torch.device
        Where the run computed.
    seed : int
        The run's seed.
    parameters : dict
        The chapter's parameters as the run used them (written to the results file).
    code_path : dict
        The CPU code path the run computes with (:func:`infoclust.codepath.code_path`:
        processor, torch's CPU capability, oneDNN, BLAS, threads, overrides in force).
    """

    chapter: str
    profile: str
    device: torch.device
    seed: int
    results: list[Result] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    generator: torch.Generator | None = field(default=None, repr=False)
    parameters: dict[str, Any] = field(default_factory=dict)
    code_path: dict[str, Any] = field(default_factory=code_path)

    @classmethod
    def start(
        cls,
        chapter: str,
        *,
        profile: str,
        seed: int,
        device: str = "auto",
        parameters: dict[str, Any] | None = None,
    ) -> "Ledger":
        """Begin a chapter run: check the profile, seed everything, pick the device, set the
        plot style, print what makes the run reproducible, and return its ledger.

        ``ledger.device`` is the resolved device and ``ledger.generator`` a seeded CPU
        generator for the chapter's own draws. Chapters call
        :func:`infoclust.book.start <infoclust.book.chapter.start>`, which checks their
        parameters first and then calls this.
        """
        check_choice("profile", profile, RUN_PROFILES)
        generator = seed_everything(seed)
        dev = resolve_device(device)
        from ..plot import use_style  # here, so that ``import infoclust`` does not import matplotlib

        use_style()
        info = run_info(seed, dev, profile)
        print(
            f"{chapter}: profile {profile}, seed {seed}, device {info['device_name']}, "
            f"torch {info['torch']}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
            f"started {info['started']}"
        )
        return cls(chapter, profile, dev, seed, generator=generator, parameters=dict(parameters or {}))

    @property
    def path(self) -> Path:
        return results_dir() / f"{self.chapter}.json"

    def record(
        self,
        name: str,
        value: float,
        *,
        unit: str = "",
        paper: float | None = None,
        source: str = "",
        claim: str = "",
        holds: bool | None = None,
        seconds: float | None = None,
        context: str = "",
        borderline: bool | None = None,
    ) -> None:
        """Add (or replace, by ``name``) one result and rewrite the chapter's JSON file.

        ``paper`` is the paper's number for the same measurement (same data and protocol),
        with its ``source``; a paper's number from another setting belongs in ``context``
        (text, e.g. ``"DIM paper: 43.2 % (CIFAR10, non-linear probe on Y)"``). ``holds`` says whether
        the claim is reproduced; leave it ``None`` for numbers that are reported, not tested.
        ``borderline`` marks a tested claim whose deciding number lies within a margin, stated
        before the run, of its threshold (:mod:`infoclust.book.report` computes it).
        """
        value, paper, holds, seconds, borderline = (
            _plain(v) for v in (value, paper, holds, seconds, borderline)
        )
        if borderline is not None and holds is None:
            raise ParameterError(f"result {name!r}: borderline={borderline!r} needs a tested claim (holds)")
        res = Result(name, value, unit, paper, source, claim, holds, seconds, context, borderline)
        fault = result_fault(asdict(res))
        if fault is not None:
            raise ParameterError(f"result {name!r}: {fault}")
        res.value, res.paper = float(value), None if paper is None else float(paper)
        self.results = [r for r in self.results if r.name != name] + [res]
        self.save()

    def to_dict(self) -> dict[str, Any]:
        return {
            "chapter": self.chapter,
            "profile": self.profile,
            "device": str(self.device),
            "device_name": device_name(self.device),
            "seed": self.seed,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "seconds": round(time.time() - self.started, 2),
            "torch": torch.__version__,
            "parameters": self.parameters,
            "code_path": self.code_path,
            "results": [asdict(r) for r in self.results],
        }

    def save(self) -> Path:
        return write_atomic(self.path, json.dumps(self.to_dict(), indent=2, default=str))

    def markdown(self) -> str:
        """The results as a Markdown table: ours beside the paper's."""
        return results_markdown(self.results)


_MARKDOWN_SPECIAL = "\\|*_`[]<>$#"


def md_cell(text: Any) -> str:
    """``text`` escaped for a cell of a Markdown table (pipes, emphasis, math, links).

    Parameters
    ----------
    text : object
        The cell's content (converted with ``str``).

    Returns
    -------
    str
        The escaped text, on one line.
    """
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in str(text))


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, raw: Iterable[str] = ()) -> str:
    """A Markdown table with a header row; every cell is escaped (:func:`md_cell`).

    Parameters
    ----------
    columns : sequence of str
        The header.
    rows : iterable of sequences
        One sequence of cells per row, as many as ``columns``.
    raw : iterable of str
        The columns whose cells are Markdown already (emphasis, links), written as they are.

    Returns
    -------
    str
        The table, one line per row.
    """
    raw = set(raw)
    lines = ["| " + " | ".join(md_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        row = list(row)
        if len(row) != len(columns):
            raise ValueError(f"a row has {len(row)} cells, the table {len(columns)} columns: {row}")
        lines.append(
            "| " + " | ".join(str(v) if c in raw else md_cell(v) for c, v in zip(columns, row)) + " |"
        )
    return "\n".join(lines)


def fmt_value(v: float | None, unit: str = "") -> str:
    """A number with 4 significant digits and its unit; a dash for None."""
    return "–" if v is None else f"{v:.4g} {unit}".strip()


HOLDS_MARK = {True: "yes", False: "**no**", None: "–"}


def holds_mark(holds: bool | None, borderline: bool | None = None) -> str:
    """The ledger's cell for a verdict: yes, **no** or a dash, and "(borderline)" where marked."""
    return HOLDS_MARK[holds] + (" (borderline)" if borderline and holds is not None else "")


def results_markdown(results: list[Result]) -> str:
    """A Markdown table of results (ours, the paper's for the same measurement, its source,
    whether the claim holds); a column of other settings' numbers when any result has one.

    Parameters
    ----------
    results : list of Result
        The results, in the order of the rows.

    Returns
    -------
    str
        The table.
    """
    with_context = any(r.context for r in results)
    columns = [
        "result",
        "ours",
        "paper",
        "source",
        *(["context (not comparable)"] if with_context else []),
        "holds",
    ]
    rows = [
        [
            r.name,
            fmt_value(r.value, r.unit),
            fmt_value(r.paper, r.unit),
            r.source or "–",
            *([r.context or "–"] if with_context else []),
            holds_mark(r.holds, r.borderline),
        ]
        for r in results
    ]
    return markdown_table(columns, rows, raw=["holds"])


_RUN_FIELDS = {
    "chapter": str,
    "profile": str,
    "device_name": str,
    "seed": int,
    "started": str,
    "seconds": (int, float),
    "results": list,
}
_RESULT_FIELDS = {f.name for f in fields(Result)}

#: The one schema of a recorded result: what each field may hold (checked when recorded and read).
_NUMBER, _TEXT = "a finite number", "a text"
RESULT_SCHEMA = {
    "name": (_TEXT, False),
    "value": (_NUMBER, False),
    "unit": (_TEXT, False),
    "paper": (_NUMBER, True),
    "source": (_TEXT, False),
    "claim": (_TEXT, False),
    "holds": ("true or false", True),
    "seconds": (_NUMBER, True),
    "context": (_TEXT, False),
    "borderline": ("true or false", True),
}


def _plain(value: Any) -> Any:
    """A NumPy or one-element torch scalar as the Python number or bool it holds; else ``value``."""
    if isinstance(value, np.generic) or (torch.is_tensor(value) and value.numel() == 1):
        return value.item()
    return value


def _fits(kind: str, value: Any) -> bool:
    if kind == _TEXT:
        return isinstance(value, str)
    if kind == _NUMBER:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, bool)


def result_fault(result: dict[str, Any]) -> str | None:
    """What is wrong with one recorded result (a dict of :class:`Result`'s fields), or None.

    Every field must hold what :data:`RESULT_SCHEMA` says: ``name`` a non-empty text, ``value``
    a finite number (never NaN: a NaN shown beside a claim reads as a number), ``paper`` and
    ``seconds`` a finite number or null, ``holds`` true, false or null, the others texts.

    Parameters
    ----------
    result : dict
        One result as read from a chapter's results file.

    Returns
    -------
    str or None
        The first fault found, e.g. ``"value=nan is not finite"``; None when there is none.
    """
    for key, (kind, nullable) in RESULT_SCHEMA.items():
        value = result.get(key)
        if not (value is None and nullable) and not _fits(kind, value):
            if kind == _NUMBER and isinstance(value, float):
                return f"{key}={value!r} is not finite"
            return f"{key}={value!r} is not {kind}{' or null' if nullable else ''}"
    if not result["name"].strip():
        return "its name is empty"
    return None


def read_results_file(path: str | Path) -> dict[str, Any]:
    """One chapter's results file, checked; :class:`ResultsFileError` names the file and the fault.

    The file must be JSON written by :meth:`Ledger.save`: an object with the run's fields
    (``chapter`` equal to the file's name, ``profile``, ``seed``, ...) and a list of results.

    Parameters
    ----------
    path : str or Path
        The results file (``<chapter>.json``).

    Returns
    -------
    dict
        The run's fields and its ``results``, as written.
    """
    path = Path(path)
    try:
        run = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ResultsFileError(
            f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); "
            f"the file is damaged, e.g. cut off: rerun the chapter"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ResultsFileError(f"{path}: cannot be read ({err})") from None
    if not isinstance(run, dict):
        raise ResultsFileError(f"{path}: holds a JSON {type(run).__name__}, not a chapter's results")
    missing = [k for k in _RUN_FIELDS if k not in run]
    if missing:
        raise ResultsFileError(f"{path}: not a chapter's results file (no {', '.join(missing)})")
    wrong = [k for k, t in _RUN_FIELDS.items() if not isinstance(run[k], t) or isinstance(run[k], bool)]
    if wrong:
        raise ResultsFileError(f"{path}: wrong type of {', '.join(f'{k}={run[k]!r}' for k in wrong)}")
    if run["chapter"] != path.stem:
        raise ResultsFileError(f"{path}: holds the results of chapter {run['chapter']!r}, not {path.stem!r}")
    if not math.isfinite(run["seconds"]):
        raise ResultsFileError(f"{path}: seconds={run['seconds']!r} is not a finite number")
    for i, r in enumerate(run["results"]):
        if not isinstance(r, dict) or not {"name", "value"} <= set(r) or not set(r) <= _RESULT_FIELDS:
            raise ResultsFileError(f"{path}: result {i} is not a recorded result: {r!r}")
        for key in _RESULT_FIELDS - set(r):  # files written before a field existed
            r[key] = Result.__dataclass_fields__[key].default
        fault = result_fault(r)
        if fault is not None:
            raise ResultsFileError(f"{path}: result {i} ({str(r['name'])[:60]!r}) is damaged: {fault}")
    return run


def load_results(folder: str | Path | None = None) -> list[dict[str, Any]]:
    """Every chapter's results found in ``folder`` (default :func:`results_dir`), by chapter.

    Raises :class:`ResultsFileError`, naming the file, for a file that is not a chapter's
    results; the book's ledger page reads the folder leniently instead
    (:func:`infoclust.book.pages.ledger_page`).

    Parameters
    ----------
    folder : str or Path or None
        The results folder; None: :func:`results_dir`.

    Returns
    -------
    list of dict
        One run per chapter (:func:`read_results_file`), in the order of their file names.
    """
    folder = Path(folder) if folder is not None else results_dir()
    return [read_results_file(p) for p in sorted(folder.glob("*.json"))]
