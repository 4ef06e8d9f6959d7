"""The book's generated pages: the reproduction ledger and the build environment.

- :func:`ledger_page`: every chapter's results file of the build, read leniently
  (:func:`scan_results`): a results file that is missing, damaged, from another chapter or
  another profile is named and marked on the page, and the rest of the ledger is built
  (:func:`ledger_problems` lists what keeps it from being whole);
- :func:`environment_page`: date, machine, device, package versions, the chapters' CPU code
  paths and each chapter's run time.

Both are Markdown, written into the staged book by :func:`infoclust.book.site.build_site`;
nothing on them is typed by hand.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .catalogue import ROOT, chapters
from .crosscheck import code_path_markdown, crosscheck_markdown
from .ledger import ResultsFileError, holds_mark, fmt_value, markdown_table, read_results_file
from .runs import read_timings

__all__ = ["ChapterResults", "scan_results", "ledger_page", "ledger_problems", "environment_page"]


@dataclass
class ChapterResults:
    """What the results folder holds for one chapter (an entry of :func:`scan_results`).

    Parameters
    ----------
    chapter : str
        The chapter's name (``NN_topic``), or a stray file's stem.
    run : dict or None
        The chapter's results file as read (:func:`~infoclust.book.ledger.read_results_file`);
        None when it is missing, unreadable or stray.
    status : str
        ``"ok"``, ``"other profile"``, ``"missing"``, ``"unreadable"`` or ``"stray"``.
    problem : str
        What is wrong, for the ledger page's warning ("" when ``status`` is ``"ok"``).
    """

    chapter: str
    run: dict[str, Any] | None
    status: str  # "ok", "other profile", "missing", "unreadable", "stray"
    problem: str = ""


def scan_results(results_dir: Path, names: list[str], profile: str | None = None) -> list[ChapterResults]:
    """Read every chapter's results file leniently: one entry per chapter, then one per stray file.

    A missing file, a damaged one (not JSON, not a results file, another chapter's) and a
    run of another profile than ``profile`` are marked with what is wrong; nothing raises.

    Parameters
    ----------
    results_dir : Path
        The build's results folder.
    names : list of str
        The chapters, in order.
    profile : str or None
        The build's profile; None: any profile is ``"ok"``.

    Returns
    -------
    list of ChapterResults
        One entry per chapter of ``names``, then one per stray file (``status="stray"``).
    """
    results_dir = Path(results_dir)
    out = []
    for chapter in names:
        path = results_dir / f"{chapter}.json"
        if not path.exists():
            out.append(
                ChapterResults(
                    chapter,
                    None,
                    "missing",
                    f"no results file {path}: the chapter has not "
                    f"run in this build folder, or recorded nothing",
                )
            )
            continue
        try:
            run = read_results_file(path)
        except ResultsFileError as err:
            out.append(ChapterResults(chapter, None, "unreadable", str(err)))
            continue
        if profile is not None and run["profile"] != profile:
            out.append(
                ChapterResults(
                    chapter,
                    run,
                    "other profile",
                    f"results of the {run['profile']!r} profile, this build's is {profile!r}",
                )
            )
        else:
            out.append(ChapterResults(chapter, run, "ok"))
    for path in sorted(results_dir.glob("*.json")):
        if path.stem not in names:
            out.append(
                ChapterResults(
                    path.stem,
                    None,
                    "stray",
                    f"{path}: not a chapter of _toc.yml (a stray file?); ignored, remove it",
                )
            )
    return out


def ledger_page(results_dir: Path, root: Path = ROOT, profile: str | None = None) -> str:
    """The reproduction ledger as MyST Markdown, built only from the chapters' result files.

    One table of the runs (profile, device, seed, run time, claims held, status: chapters
    whose results are missing, unreadable or of another profile than ``profile`` are
    marked there and listed in a warning) and one of every result (claim, ours, the paper's
    number for the same measurement with its source, numbers from other settings as
    context, whether the claim holds), then the cross-path checks
    (:func:`~infoclust.book.crosscheck.crosscheck_markdown`).

    Parameters
    ----------
    results_dir : Path
        The build's results folder, read leniently (:func:`scan_results`).
    root : Path
        The repository's root (its ``_toc.yml`` gives the chapters).
    profile : str or None
        The build's profile: chapters that ran with another are marked.

    Returns
    -------
    str
        The page, as MyST Markdown.
    """
    scanned = scan_results(results_dir, chapters(root), profile)
    usable = [c for c in scanned if c.run is not None]
    runs, rows, tested, held, n_border = [], [], 0, 0, 0
    for c in scanned:
        if c.status == "stray":
            continue
        if c.run is None:
            runs.append([c.chapter, "–", "–", "–", "–", "–", "–", f"**{c.status}**"])
            continue
        run = c.run
        run_tested = [r for r in run["results"] if r["holds"] is not None]
        run_held = sum(bool(r["holds"]) for r in run_tested)
        n_border += sum(bool(r["borderline"]) for r in run_tested)
        tested, held = tested + len(run_tested), held + run_held
        status = "ok" if c.status == "ok" else f"**{run['profile']} profile**"
        runs.append(
            [
                run["chapter"],
                run["profile"],
                run["device_name"],
                run["seed"],
                f"{run['seconds']:.0f} s",
                run["started"],
                f"{run_held} of {len(run_tested)}",
                status,
            ]
        )
        for r in run["results"]:
            rows.append(
                [
                    run["chapter"],
                    r["claim"] or "–",
                    r["name"],
                    fmt_value(r["value"], r["unit"]),
                    fmt_value(r["paper"], r["unit"]),
                    r["source"] or "–",
                    r["context"] or "–",
                    holds_mark(r["holds"], r["borderline"]) if r["holds"] is not None else "reported",
                ]
            )
    problems = [c for c in scanned if c.status != "ok"]
    lines = [
        "(ledger)=",
        "# Reproduction ledger",
        "",
        "This page is generated by the build from the results that the chapters recorded while "
        "they ran (`results/*.json` of this build): every claim the book tests, our number, the "
        "paper's number where it measures the same thing (same data and protocol) with its source, "
        "numbers from other settings as context only, and the run that produced them. Nothing on it "
        "is typed by hand.",
        "",
        f"**{held} of {tested} tested claims hold**"
        + (
            f" ({n_border} of the {tested} marked *borderline*: the number that decides the claim lies "
            "within a margin stated before the run of its threshold, so another code path or other "
            "seeds may flip the verdict; `make crosscheck` checks them)"
            if n_border
            else ""
        )
        + "; "
        f"{sum(len(c.run['results']) for c in usable) - tested} further numbers are reported without a "
        f"claim. Chapters with results: {len([c for c in usable])} of {len(chapters(root))}"
        + (f" (this build's profile: `{profile}`)." if profile else "."),
        "",
    ]
    if problems:
        lines += [":::{warning}", "Not every chapter's results are complete results of this build:", ""]
        lines += [f"- `{c.chapter}` ({c.status}): {c.problem}" for c in problems]
        lines += [":::", ""]
    lines += [
        "## The runs",
        "",
        markdown_table(
            ["chapter", "profile", "device", "seed", "run time", "started (UTC)", "claims held", "status"],
            runs,
            raw=["status"],
        ),
        "",
        "## Every result",
        "",
        "The *paper* column holds a paper's number only where it measures what we measure; "
        "*context* holds a paper's number from another setting (another data set or protocol), "
        "which is not compared with ours.",
        "",
        markdown_table(
            ["chapter", "claim", "result", "ours", "paper", "source", "context", "holds"], rows, raw=["holds"]
        ),
        "",
        crosscheck_markdown(results_dir),  # the cross-path checks' tables, if any ran
    ]
    return "\n".join(lines) + "\n"


def ledger_problems(results_dir: Path, root: Path = ROOT) -> list[str]:
    """What keeps the ledger from being whole: missing, unreadable and stray results files.

    Parameters
    ----------
    results_dir : Path
        The build's results folder, read leniently (:func:`scan_results`).
    root : Path
        The repository's root (its ``_toc.yml`` gives the chapters).

    Returns
    -------
    list of str
        One line per such file, ``"<chapter> (<status>): <problem>"``; empty when the ledger
        is whole.
    """
    return [
        f"{c.chapter} ({c.status}): {c.problem}"
        for c in scan_results(results_dir, chapters(root))
        if c.status in ("missing", "unreadable", "stray")
    ]


def environment_page(build_dir: Path) -> str:
    """The build's environment page: date, machine, device, package versions, code paths, times.

    Parameters
    ----------
    build_dir : Path
        The build folder (its ``timings.json`` and ``results/``).

    Returns
    -------
    str
        The page, as Markdown.
    """
    import importlib.metadata as md
    import platform

    import torch

    packages = [
        "infoclust",  # its version: infoclust.__version__ (pyproject's dynamic version)
        "torch",
        "torchvision",
        "numpy",
        "scipy",
        "scikit-learn",
        "pot",
        "mlxtend",
        "matplotlib",
        "tqdm",
        "jupyter-book",
        "sphinx",
        "myst-nb",
        "jupytext",
        "papermill",
        "nbval",
    ]
    versions = []
    for name in packages:
        try:
            versions.append([name, md.version(name)])
        except md.PackageNotFoundError:
            versions.append([name, "not installed"])
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    timings = read_timings(Path(build_dir))
    lines = [
        "# Build environment",
        "",
        f"Built {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with the "
        f"`{timings['profile'] or 'unknown'}` "
        f"profile on {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPU cores, "
        f"GPU: {gpu}.",
        "",
        markdown_table(["package", "version"], versions),
        "",
        "The CPU code path each chapter's run computed with (torch and oneDNN choose their kernels by "
        "the processor; another one can round differently, see the ledger's cross-path checks):",
        "",
        code_path_markdown(Path(build_dir) / "results") or "No chapter's results record it.",
        "",
    ]
    if timings["chapters"]:
        rows = [[name, t["profile"], f"{t['seconds']:.1f}"] for name, t in timings["chapters"].items()]
        total = sum(t["seconds"] for t in timings["chapters"].values())
        lines += [
            "Execution time of each chapter's last run in this build folder (seconds):",
            "",
            markdown_table(["chapter", "profile", "seconds"], [*rows, ["all chapters", "", f"{total:.1f}"]]),
            "",
        ]
    return "\n".join(lines)
