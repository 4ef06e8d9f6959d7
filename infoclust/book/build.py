"""Build the book: execute every chapter with papermill, then render the site with Jupyter Book.

``python -m infoclust.book --profile default`` (what ``make book`` runs) does, in order:

1. reads the chapters from ``_toc.yml`` (files under ``notebooks/``) and each chapter's
   papermill parameters for the profile from ``notebooks/profiles.yml``; unknown chapter
   names are rejected before anything runs;
2. converts each jupytext ``py:percent`` source to a notebook and executes it with
   papermill, in a child process, into a private folder ``<build>/.running/<chapter>/``
   (notebook and results file). Only when the chapter finished without error are both
   moved into ``<build>/notebooks/`` and ``<build>/results/`` (renames, with interrupts
   held back in between). A chapter that fails or is interrupted (Ctrl-C, ``kill``) leaves
   the previous good notebook and results untouched; what it had run is kept in
   ``<build>/failed/`` for inspection, the build stops and the site is left as it was;
3. stages the book sources (``_config.yml``, ``_toc.yml``, ``book/`` and the executed
   notebooks) in ``<build>/src``, writes the generated pages there (the reproduction ledger
   from ``<build>/results/*.json``, the build environment and the API reference,
   :mod:`infoclust.book.reference`), and renders them with Sphinx
   through Jupyter Book's configuration into a new folder that replaces ``<build>/html``
   only when it rendered, warnings as errors. Jupyter Book executes nothing.

A results file that is missing, damaged, from another chapter or another profile is named
and marked on the ledger page; the rest of the ledger is built (the build then exits with
status 1). ``--site-only`` renders the site and the ledger from the notebooks and results
that are there, executing nothing.

One build at a time per build folder: a build holds ``<build>/build.lock`` (with its
process id and command) and another build in the same folder stops at once, naming it.
``<build>`` is ``_build`` unless ``--build-dir`` says otherwise (the tests use
``_build/smoke``).
"""

from __future__ import annotations

import argparse
import difflib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from ..utils import ParameterError, check_choice, thread_environment
from .chapter import parameters_of
from .ledger import HOLDS_MARK, ResultsFileError, fmt_value, markdown_table, read_results_file, write_atomic
from .reference import write_api_pages

__all__ = [
    "ROOT",
    "PROFILES",
    "BuildError",
    "BuildLocked",
    "ChapterFailed",
    "ChapterResults",
    "chapters",
    "chapter_parameters",
    "chapter_defaults",
    "check_chapter_names",
    "run_parameters",
    "kernel_environment",
    "build_lock",
    "execute_chapter",
    "scan_results",
    "ledger_page",
    "environment_page",
    "build_site",
    "build_book",
    "main",
]

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ("smoke", "default", "full")
_LOG = "[infoclust.book]"


class BuildError(RuntimeError):
    """The build cannot go on; the message says why and what to do (printed without a traceback)."""


class BuildLocked(BuildError):
    """Another build holds the build folder's lock."""


class ChapterFailed(BuildError):
    """A chapter raised an error (or its kernel died); its previous good files are unchanged."""


class Terminated(KeyboardInterrupt):
    """The build received SIGTERM (handled like Ctrl-C: the running chapter is stopped, nothing replaced)."""


def _toc_files(toc: dict[str, Any]) -> list[str]:
    files = []
    for part in toc.get("parts", [toc]):
        for entry in part.get("chapters", []):
            files.append(entry["file"])
            files.extend(sub["file"] for sub in entry.get("sections", []) if "file" in sub)  # not globs
    return files


def _read_yaml(path: Path) -> Any:
    """The YAML file ``path``, or :class:`BuildError` naming it (missing, unreadable, malformed)."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise BuildError(f"{path} cannot be read as YAML: {err}") from None


def chapters(root: Path = ROOT) -> list[str]:
    """The chapters of the book, in the order of its table of contents.

    Parameters
    ----------
    root : Path
        The repository's root, holding ``_toc.yml``.

    Returns
    -------
    list of str
        Chapter names (``NN_topic``).

    Raises
    ------
    BuildError
        When ``_toc.yml`` cannot be read or is not a Jupyter Book table of contents.
    """
    path = Path(root) / "_toc.yml"
    try:
        files = _toc_files(_read_yaml(path))
    except (AttributeError, KeyError, TypeError) as err:
        raise BuildError(
            f"{path} is not a Jupyter Book table of contents (parts, chapters, file: ...): "
            f"{type(err).__name__}: {err}"
        ) from None
    return [Path(f).name for f in files if f.startswith("notebooks/")]


def check_chapter_names(names: list[str] | None, root: Path = ROOT) -> list[str]:
    """Check that each of ``names`` is a chapter of ``_toc.yml``.

    Parameters
    ----------
    names : list of str or None
        Chapter names; None: all chapters.
    root : Path
        The repository's root.

    Returns
    -------
    list of str
        ``names`` without repeats (in their first order), or all chapters when None.

    Raises
    ------
    BuildError
        For an empty list, or a name that is not a chapter (with the closest one as a hint).
    """
    known = chapters(root)
    if names is None:
        return known
    if not names:
        raise BuildError(f"no chapter given; chapters: {', '.join(known)}")
    unknown = [n for n in names if n not in known]
    if unknown:
        hints = [
            f"{n!r}" + (f" (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(n, known, 1)) else "")
            for n in unknown
        ]
        raise BuildError(f"not a chapter of _toc.yml: {', '.join(hints)}; chapters: {', '.join(known)}")
    return list(dict.fromkeys(names))


def chapter_parameters(chapter: str, profile: str, root: Path = ROOT) -> dict[str, Any]:
    """Papermill parameters of ``chapter`` for ``profile``, from ``notebooks/profiles.yml``.

    Parameters
    ----------
    chapter : str
        The chapter's name (``NN_topic``).
    profile : str
        One of :data:`PROFILES`.
    root : Path
        The repository's root.

    Returns
    -------
    dict
        The profile's parameters of the chapter, with ``profile`` itself injected.

    Raises
    ------
    ParameterError
        For an unknown profile, or a chapter without an entry in ``profiles.yml``.
    BuildError
        When ``profiles.yml`` cannot be read as YAML.
    """
    check_choice("profile", profile, PROFILES)
    table = _read_yaml(Path(root) / "notebooks" / "profiles.yml") or {}
    if chapter not in table:
        raise ParameterError(f"chapter={chapter!r} has no entry in notebooks/profiles.yml")
    params = dict(table[chapter].get(profile) or {})
    params["profile"] = profile
    return params


def chapter_defaults(chapter: str, root: Path = ROOT) -> dict[str, Any]:
    """The parameters that ``chapter``'s parameters cell defines, with their defaults.

    Parameters
    ----------
    chapter : str
        The chapter's name (``NN_topic``).
    root : Path
        The repository's root.

    Returns
    -------
    dict
        Parameter name to default value.

    Raises
    ------
    BuildError
        When the chapter has no cell tagged ``parameters``, or more than one.
    """
    import jupytext

    nb = jupytext.read(Path(root) / "notebooks" / f"{chapter}.py")
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise BuildError(
            f"notebooks/{chapter}.py must have exactly one cell tagged 'parameters', it has {len(cells)}"
        )
    return {name: p.default for name, p in parameters_of(cells[0].source).items()}


# --------------------------------------------------------------------------- the lock

_held: dict[Path, tuple[int, int]] = {}  # build folder -> (lock file descriptor, depth) held by this process


@contextmanager
def build_lock(build_dir: Path) -> Iterator[Path]:
    """Hold ``<build_dir>/build.lock`` for the duration, or raise :class:`BuildLocked` at once.

    The lock is an ``flock`` on the file, which the system releases when its process dies,
    so a lock left by a killed build is stale and is taken over (with a note). The file
    names the holder (process id, start time, command) for the message another build
    prints. Re-entrant within one process.

    Parameters
    ----------
    build_dir : Path
        The build folder; created if missing.

    Yields
    ------
    Path
        The lock file.

    Raises
    ------
    BuildLocked
        When another live process holds the lock.
    BuildError
        When the lock file cannot be created (``build_dir`` a file, no permission).
    """
    build_dir = Path(build_dir).resolve()
    if build_dir in _held:
        fd, depth = _held[build_dir]
        _held[build_dir] = (fd, depth + 1)
        try:
            yield build_dir / "build.lock"
        finally:
            fd, depth = _held[build_dir]
            _held[build_dir] = (fd, depth - 1)
        return
    path = build_dir / "build.lock"
    try:
        build_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:  # --build-dir a file, build.lock a folder, no permission
        raise BuildError(
            f"cannot lock the build folder {build_dir}: {err.strerror} ({err.filename}); "
            f"give --build-dir a folder this user may write in"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = (
            os.pread(fd, 4096, 0).decode(errors="replace").strip()
            or "a process that has not written its name yet"
        )
        os.close(fd)
        raise BuildLocked(
            f"another build is using {build_dir}: {holder}. Wait for it to finish, stop it "
            f"(kill its pid), or build elsewhere with --build-dir"
        ) from None
    stale = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    if stale:
        print(
            f"{_LOG} taking over a stale lock of a build that is no longer running ({stale})", file=sys.stderr
        )
    os.ftruncate(fd, 0)
    os.pwrite(
        fd,
        (
            f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}, "
            f"command: {' '.join([Path(sys.executable).name, *sys.argv])}\n"
        ).encode(),
        0,
    )
    _held[build_dir] = (fd, 1)
    try:
        yield path
    finally:
        del _held[build_dir]
        os.ftruncate(fd, 0)
        os.close(fd)  # closing releases the flock


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back (delivered afterwards) while files are moved into place."""
    signals = {signal.SIGINT, signal.SIGTERM}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    except (AttributeError, ValueError):  # no pthread_sigmask, or not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# --------------------------------------------------------------------------- executing a chapter


def _error_of(notebook: Path) -> str:
    """The first error output of an executed notebook, as ``Name: message`` (or "")."""
    try:
        nb = json.loads(notebook.read_text())
    except (OSError, ValueError):
        return ""
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"cell {i} raised {out.get('ename')}: {out.get('evalue')}"
    return ""


def _keep_failed(stage: Path, chapter: str, build_dir: Path) -> list[Path]:
    """Move what a failed run left in ``stage`` to ``<build>/failed/``; return the kept files."""
    failed = build_dir / "failed"
    failed.mkdir(parents=True, exist_ok=True)
    kept = []
    for src, name in (
        (stage / f"{chapter}.ipynb", f"{chapter}.ipynb"),
        (stage / "results" / f"{chapter}.json", f"{chapter}.results.json"),
        (stage / "papermill.log", f"{chapter}.log"),
    ):
        (failed / name).unlink(missing_ok=True)
        if src.exists():
            os.replace(src, failed / name)
            kept.append(failed / name)
    _remove_stage(stage)
    return kept


def _remove_stage(stage: Path) -> None:
    shutil.rmtree(stage, ignore_errors=True)
    try:
        stage.parent.rmdir()  # .running, when no other chapter's folder is left in it
    except OSError:
        pass


def _commit(stage: Path, chapter: str, build_dir: Path) -> Path:
    """Move a finished run's notebook and results into place (the old ones are replaced together)."""
    notebook, results = (
        build_dir / "notebooks" / f"{chapter}.ipynb",
        build_dir / "results" / f"{chapter}.json",
    )
    notebook.parent.mkdir(parents=True, exist_ok=True)
    results.parent.mkdir(parents=True, exist_ok=True)
    others = sorted(p.name for p in (stage / "results").glob("*.json") if p.stem != chapter)
    if others:
        print(
            f"{_LOG} {chapter} also wrote results named {others}: ignored (a chapter records only its own)",
            file=sys.stderr,
        )
    with _interrupts_held():
        new_results = stage / "results" / f"{chapter}.json"
        if new_results.exists():
            os.replace(new_results, results)
        else:  # the old results belonged to the notebook being replaced
            results.unlink(missing_ok=True)
        os.replace(stage / f"{chapter}.ipynb", notebook)
    _remove_stage(stage)
    for old in (build_dir / "failed").glob(f"{chapter}.*"):  # superseded by this good run
        old.unlink()
    return notebook


def kernel_environment(results: Path) -> dict[str, str]:
    """The papermill process's (and so the kernel's) environment.

    Parameters
    ----------
    results : Path
        The folder where the chapter records its results (``$INFOCLUST_RESULTS_DIR``).

    Returns
    -------
    dict
        ``os.environ`` with the results folder and the threads and wait policy of
        :func:`~infoclust.utils.thread_environment`.
    """
    return {**os.environ, **thread_environment(), "INFOCLUST_RESULTS_DIR": str(results)}


def run_parameters(
    chapter: str,
    profile: str,
    root: Path = ROOT,
    *,
    parameters: dict[str, Any] | None = None,
    download: bool = False,
) -> dict[str, Any]:
    """What papermill passes to ``chapter``.

    Parameters
    ----------
    chapter : str
        The chapter's name (``NN_topic``).
    profile : str
        One of :data:`PROFILES`.
    root : Path
        The repository's root.
    parameters : dict or None
        Parameters over the profile's.
    download : bool
        Pass ``download=True`` when the chapter has a ``download`` parameter.

    Returns
    -------
    dict
        The profile's parameters (:func:`chapter_parameters`), ``parameters`` over them,
        and ``download=True`` when asked and the chapter has a ``download`` parameter.
    """
    params = chapter_parameters(chapter, profile, root)
    params.update(parameters or {})
    if download and "download" in chapter_defaults(chapter, root):
        params["download"] = True
    return params


def execute_chapter(
    chapter: str,
    profile: str,
    build_dir: Path,
    *,
    parameters: dict[str, Any] | None = None,
    root: Path = ROOT,
    download: bool = False,
) -> Path:
    """Execute one chapter with papermill and move it into place.

    The run happens in ``<build>/.running/<chapter>/``, in the environment of
    :func:`kernel_environment`; its notebook and results replace the previous ones only when
    it finished without error. An interrupt (``KeyboardInterrupt``) stops the papermill
    process, keeps the partial notebook in ``<build>/failed/`` and propagates. Either way
    the previous good files are left as they were.

    Parameters
    ----------
    chapter : str
        The chapter's name (``NN_topic``).
    profile : str
        One of :data:`PROFILES`.
    build_dir : Path
        The build folder.
    parameters : dict or None
        Parameters over the profile's (:func:`run_parameters`).
    root : Path
        The repository's root.
    download : bool
        Let the chapter download its data set (passed only to chapters with a ``download``
        parameter).

    Returns
    -------
    Path
        The executed notebook, ``<build>/notebooks/<chapter>.ipynb``.

    Raises
    ------
    ChapterFailed
        When the chapter fails: names the failing cell and where the partial notebook is
        kept (``<build>/failed/``).
    BuildLocked
        When another build holds ``build_dir``.
    """
    import jupytext

    root, build_dir = Path(root), Path(build_dir)
    params = run_parameters(chapter, profile, root, parameters=parameters, download=download)
    with build_lock(build_dir):
        stage = build_dir / ".running" / chapter
        shutil.rmtree(stage, ignore_errors=True)  # left by a build that was killed (we hold the lock)
        (stage / "results").mkdir(parents=True)
        source, output = stage / "source.ipynb", stage / f"{chapter}.ipynb"
        jupytext.write(jupytext.read(root / "notebooks" / f"{chapter}.py"), source)
        (stage / "parameters.yml").write_text(yaml.safe_dump(params))
        cmd = [
            sys.executable,
            "-m",
            "papermill",
            str(source),
            str(output),
            "-f",
            str(stage / "parameters.yml"),
            "--cwd",
            str(root),
            "-k",
            "python3",
            "-l",
            "python",
            "--no-progress-bar",
            "--no-log-output",
            "--log-level",
            "WARNING",
        ]
        with open(stage / "papermill.log", "w") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=kernel_environment((stage / "results").resolve()),
            )
            try:
                code = proc.wait()
            except BaseException:  # Ctrl-C or SIGTERM: papermill shuts its kernel down on SIGTERM
                _stop(proc)
                kept = [p for p in _keep_failed(stage, chapter, build_dir) if p.suffix == ".ipynb"]
                print(
                    f"{_LOG} {chapter} interrupted; its previous notebook and results are unchanged"
                    + (f"; what it had run is kept in {kept[0]}" if kept else ""),
                    file=sys.stderr,
                    flush=True,
                )
                raise
        if code != 0:
            error = _error_of(output) or _tail(stage / "papermill.log")
            kept = _keep_failed(stage, chapter, build_dir)
            where = (
                f"the notebook as far as it ran is kept in {kept[0]}"
                if kept[0].suffix == ".ipynb"
                else "no notebook was written"
            ) + f"; papermill's log: {kept[-1]}"
            raise ChapterFailed(
                f"{chapter} failed: {error}\n{where}; its previous notebook and results are unchanged"
            )
        return _commit(stage, chapter, build_dir)


def _stop(proc: subprocess.Popen, grace: float = 30.0) -> None:
    """Ask papermill to stop (it shuts its kernel down on SIGTERM); kill it if it does not."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    with _interrupts_held():
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text().strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


# --------------------------------------------------------------------------- the ledger page


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
    from .crosscheck import crosscheck_markdown  # here: crosscheck imports this module

    scanned = scan_results(results_dir, chapters(root), profile)
    usable = [c for c in scanned if c.run is not None]
    runs, rows, tested, held = [], [], 0, 0
    for c in scanned:
        if c.status == "stray":
            continue
        if c.run is None:
            runs.append([c.chapter, "–", "–", "–", "–", "–", "–", f"**{c.status}**"])
            continue
        run = c.run
        run_tested = [r for r in run["results"] if r["holds"] is not None]
        run_held = sum(bool(r["holds"]) for r in run_tested)
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
                    HOLDS_MARK[r["holds"]] if r["holds"] is not None else "reported",
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
        f"**{held} of {tested} tested claims hold**; "
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
    """What keeps the ledger from being whole (missing, unreadable and stray files), one line each."""
    return [
        f"{c.chapter} ({c.status}): {c.problem}"
        for c in scan_results(results_dir, chapters(root))
        if c.status in ("missing", "unreadable", "stray")
    ]


# --------------------------------------------------------------------------- the site


def _read_timings(build_dir: Path) -> dict[str, Any]:
    """``{"profile": last, "chapters": {name: {"profile", "seconds"}}}`` (empty if none or unreadable)."""
    path = build_dir / "timings.json"
    try:
        data = json.loads(path.read_text())
        if isinstance(data.get("chapters"), dict):
            return data
    except (OSError, ValueError, AttributeError):
        pass
    return {"profile": None, "chapters": {}}


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

    from .crosscheck import code_path_markdown  # here: crosscheck imports this module

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
    timings = _read_timings(Path(build_dir))
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


def build_site(build_dir: Path, root: Path = ROOT, profile: str | None = None) -> Path:
    """Render the executed notebooks in ``build_dir`` into ``build_dir/html``.

    The site, with the API reference (:mod:`infoclust.book.reference`), the ledger
    (:func:`ledger_page`) and the environment page (:func:`environment_page`), is rendered
    by Sphinx with warnings as errors into a new folder that replaces ``html`` only when
    Sphinx succeeded.

    Parameters
    ----------
    build_dir : Path
        The build folder, with every chapter's executed notebook.
    root : Path
        The repository's root.
    profile : str or None
        The build's profile, against which the ledger marks chapters that ran with another.

    Returns
    -------
    Path
        ``build_dir/html``.

    Raises
    ------
    BuildError
        When a chapter has no executed notebook.
    subprocess.CalledProcessError
        When Sphinx fails (a warning included); the previous site is left as it was.
    """
    build_dir, root = Path(build_dir), Path(root)
    names = chapters(root)
    missing = [c for c in names if not (build_dir / "notebooks" / f"{c}.ipynb").exists()]
    if missing:
        raise BuildError(
            f"chapters not executed in {build_dir} yet: {', '.join(missing)} "
            f"(run python -m infoclust.book --chapters {' '.join(missing)})"
        )
    with build_lock(build_dir):
        src = build_dir / "src"
        if src.exists():
            shutil.rmtree(src)
        (src / "notebooks").mkdir(parents=True)
        for name in ("_config.yml", "_toc.yml"):
            shutil.copy(root / name, src / name)
        shutil.copytree(root / "book", src / "book")
        write_api_pages(src / "book" / "api")  # the API reference, one page per public module
        for chapter in names:
            shutil.copy(build_dir / "notebooks" / f"{chapter}.ipynb", src / "notebooks" / f"{chapter}.ipynb")
        (src / "book" / "ledger.md").write_text(ledger_page(build_dir / "results", root, profile))
        (src / "book" / "environment.md").write_text(environment_page(build_dir))
        jb = Path(sys.executable).with_name("jupyter-book")
        subprocess.run([str(jb), "config", "sphinx", str(src)], check=True, stdout=subprocess.DEVNULL)
        with open(src / "conf.py", "a") as conf:
            # The book has no live-code buttons; sphinx-thebe would declare THEBE_JS_URL twice
            # on every page (a console error) and point at a network address.
            conf.write('\nextensions = [e for e in extensions if e != "sphinx_thebe"]\n')
        html, new, old = build_dir / "html", build_dir / ".html-new", build_dir / ".html-old"
        for folder in (new, old):
            shutil.rmtree(folder, ignore_errors=True)
        cmd = [
            sys.executable,
            "-m",
            "sphinx",
            "-b",
            "html",
            "-W",
            "-n",
            "--keep-going",
            "-q",
            "-d",
            str(build_dir / "doctrees"),
            str(src),
            str(new),
        ]
        subprocess.run(cmd, check=True)
        with _interrupts_held():
            if html.exists():
                os.replace(html, old)
            os.replace(new, html)
        shutil.rmtree(old, ignore_errors=True)
    return html


def build_book(
    profile: str = "default",
    build_dir: Path | None = None,
    only: list[str] | None = None,
    root: Path = ROOT,
    *,
    download: bool = False,
    site: bool = True,
) -> Path | None:
    """Execute the chapters (all, or ``only``) and render the site (unless ``site=False``).

    Chapter names and their profile entries are checked before anything runs; the first
    chapter that fails stops the build before the site is touched. Prints the time of each
    step and records it in ``<build_dir>/timings.json``.

    Parameters
    ----------
    profile : str
        One of :data:`PROFILES`: the chapters' settings in ``notebooks/profiles.yml``.
    build_dir : Path or None
        Where the executed notebooks, results and site go; None: ``<root>/_build``.
    only : list of str or None
        The chapters to execute, in this order; None: all of them.
    root : Path
        The repository's root.
    download : bool
        Let the chapters download their data sets.
    site : bool
        Render the site after the chapters.

    Returns
    -------
    Path or None
        The site's folder (:func:`build_site`); None without a site.

    Raises
    ------
    BuildError
        For an unknown profile or chapter, or a chapter without an entry for the profile.
    BuildLocked
        When another build holds ``build_dir`` (:func:`build_lock`).
    ChapterFailed
        When a chapter fails (:func:`execute_chapter`).
    """
    root = Path(root)
    build_dir = Path(build_dir) if build_dir is not None else root / "_build"
    if profile not in PROFILES:
        raise BuildError(f"profile={profile!r} is not one of {PROFILES}")
    names = check_chapter_names(only, root)
    for chapter in names:  # every chapter's profile entry, before the first chapter runs
        try:
            chapter_parameters(chapter, profile, root)
        except ParameterError as err:
            raise BuildError(str(err)) from None
    with build_lock(build_dir):
        timings = _read_timings(build_dir)
        timings["profile"] = profile
        for chapter in names:
            start = time.perf_counter()
            print(f"{_LOG} executing {chapter} (profile {profile})", flush=True)
            execute_chapter(chapter, profile, build_dir, root=root, download=download)
            seconds = round(time.perf_counter() - start, 1)
            timings["chapters"][chapter] = {"profile": profile, "seconds": seconds}
            write_atomic(build_dir / "timings.json", json.dumps(timings, indent=2))
            print(f"{_LOG} {chapter} done in {seconds} s", flush=True)
        write_atomic(build_dir / "timings.json", json.dumps(timings, indent=2))
        if not site:
            return None
        start = time.perf_counter()
        html = build_site(build_dir, root, profile)
        print(f"{_LOG} site in {html} (rendered in {time.perf_counter() - start:.1f} s)", flush=True)
        return html


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated("terminated (SIGTERM)")


def main(argv: list[str] | None = None) -> int:
    """The command line ``python -m infoclust.book`` (what ``make book`` and ``make site`` run).

    Parameters
    ----------
    argv : list of str or None
        The arguments (``--help`` lists them); None: ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0 when the site was built and the ledger is whole, 1 on a failure
        (printed without a traceback), 130 after Ctrl-C and 143 after SIGTERM.
    """
    parser = argparse.ArgumentParser(prog="python -m infoclust.book", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default=None,
        help="papermill profile (default: default; with --site-only: the last build's)",
    )
    parser.add_argument("--build-dir", type=Path, default=None, help="default: <root>/_build")
    parser.add_argument("--root", type=Path, default=ROOT, help="the project folder (holding _toc.yml)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--chapters",
        nargs="+",
        metavar="CHAPTER",
        default=None,
        help="execute only these chapters (the others' notebooks must exist)",
    )
    what.add_argument(
        "--site-only",
        action="store_true",
        help="execute nothing: render the site and ledger from the notebooks and results there",
    )
    parser.add_argument(
        "--no-site", action="store_true", help="execute the chapters, leave the site as it is"
    )
    parser.add_argument(
        "--download",
        action="store_true",
        help="let chapters download missing data sets (passes download=True)",
    )
    args = parser.parse_args(argv)
    if args.site_only and (args.no_site or args.download):
        parser.error("--site-only executes nothing: it takes neither --no-site nor --download")
    root = args.root.resolve()
    build_dir = args.build_dir if args.build_dir is not None else root / "_build"
    # SIGINT too: a build started with & from a script or under nohup inherits SIGINT as ignored,
    # and Python then leaves it ignored, so Ctrl-C or kill -INT would never stop it
    handlers = {signal.SIGTERM: _on_sigterm, signal.SIGINT: signal.default_int_handler}
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        if args.site_only:
            profile = args.profile or _read_timings(build_dir)["profile"]
            html = build_site(build_dir, root, profile)
            print(f"{_LOG} site in {html} (nothing executed)", flush=True)
        else:
            build_book(
                args.profile or "default",
                build_dir,
                args.chapters,
                root,
                download=args.download,
                site=not args.no_site,
            )
    except subprocess.CalledProcessError as err:
        print(
            f"{_LOG} FAILED: {' '.join(map(str, err.cmd[:4]))} ... exited with {err.returncode}; "
            f"the previous site (if any) is unchanged",
            file=sys.stderr,
        )
        return 1
    except BuildError as err:
        print(f"{_LOG} FAILED: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        print(f"{_LOG} stopped: {err or 'interrupted (Ctrl-C)'}", file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not args.no_site:
        problems = ledger_problems(build_dir / "results", root)
        if problems:
            print(
                f"{_LOG} the site was built, but the ledger is not whole (marked on its page):\n  "
                + "\n  ".join(problems),
                file=sys.stderr,
            )
            return 1
    return 0
