"""The chapter runs: one build per build folder, each chapter executed by papermill in a stage of its own.

- :func:`build_lock`: one build at a time per build folder; a build holds
  ``<build>/build.lock`` (with its process id and command) and another build in the same
  folder stops at once, naming it;
- :func:`execute_chapter`: converts the chapter's jupytext ``py:percent`` source to a
  notebook and executes it with papermill, in a child process, into a private folder
  ``<build>/.running/<chapter>/`` (notebook and results file). Only when the chapter
  finished without error are both moved into ``<build>/notebooks/`` and
  ``<build>/results/`` (renames, with interrupts held back in between). A chapter that
  fails or is interrupted (Ctrl-C, ``kill``) leaves the previous good notebook and results
  untouched; what it had run is kept in ``<build>/failed/`` for inspection;
- :func:`interrupts_raise` and :func:`interrupts_held`: SIGTERM handled like Ctrl-C while a
  build runs, and both held back while files are moved into place;
- :func:`read_timings`: the seconds of each chapter's last run, from ``<build>/timings.json``.

The chapters and their parameters come from the catalogue (:mod:`infoclust.book.catalogue`).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml

from ..utils import thread_environment
from .catalogue import ROOT, BuildError, chapter_defaults, chapter_parameters, chapter_source

__all__ = [
    "LOG",
    "BuildLocked",
    "ChapterFailed",
    "Terminated",
    "build_lock",
    "interrupts_held",
    "interrupts_raise",
    "kernel_environment",
    "run_parameters",
    "execute_chapter",
    "read_timings",
]

#: What the build's messages start with.
LOG = "[infoclust.book]"


class BuildLocked(BuildError):
    """Another build holds the build folder's lock."""


class ChapterFailed(BuildError):
    """A chapter raised an error (or its kernel died); its previous good files are unchanged."""


class Terminated(KeyboardInterrupt):
    """The build received SIGTERM (handled like Ctrl-C: the running chapter is stopped, nothing replaced)."""


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
            f"{LOG} taking over a stale lock of a build that is no longer running ({stale})", file=sys.stderr
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
def interrupts_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back (delivered afterwards) while files are moved into place.

    Yields
    ------
    None
        Nothing: the block runs with both signals blocked (in the main thread; elsewhere,
        or without ``pthread_sigmask``, unblocked).
    """
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
            f"{LOG} {chapter} also wrote results named {others}: ignored (a chapter records only its own)",
            file=sys.stderr,
        )
    with interrupts_held():
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
        One of :data:`~infoclust.book.catalogue.PROFILES`.
    root : Path
        The repository's root.
    parameters : dict or None
        Parameters over the profile's.
    download : bool
        Pass ``download=True`` when the chapter has a ``download`` parameter.

    Returns
    -------
    dict
        The profile's parameters (:func:`~infoclust.book.catalogue.chapter_parameters`),
        ``parameters`` over them, and ``download=True`` when asked and the chapter has a
        ``download`` parameter.
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
        One of :data:`~infoclust.book.catalogue.PROFILES`.
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
        jupytext.write(jupytext.read(chapter_source(chapter, root)), source)
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
                    f"{LOG} {chapter} interrupted; its previous notebook and results are unchanged"
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
    with interrupts_held():
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


def read_timings(build_dir: Path) -> dict[str, Any]:
    """The build folder's record of its chapter runs, ``<build_dir>/timings.json``.

    Parameters
    ----------
    build_dir : Path
        The build folder.

    Returns
    -------
    dict
        ``{"profile": last, "chapters": {name: {"profile", "seconds"}}}``; with no profile
        and no chapters when the file is missing or unreadable.
    """
    path = build_dir / "timings.json"
    try:
        data = json.loads(path.read_text())
        if isinstance(data.get("chapters"), dict):
            return data
    except (OSError, ValueError, AttributeError):
        pass
    return {"profile": None, "chapters": {}}


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated("terminated (SIGTERM)")


@contextmanager
def interrupts_raise() -> Iterator[None]:
    """For the block, SIGTERM raises :class:`Terminated` and SIGINT ``KeyboardInterrupt``.

    SIGINT too: a build started with ``&`` from a script or under ``nohup`` inherits SIGINT
    as ignored, and Python then leaves it ignored, so Ctrl-C or ``kill -INT`` would never
    stop it. The previous handlers are restored afterwards.

    Yields
    ------
    None
        Nothing: the block runs with these handlers.
    """
    handlers = {signal.SIGTERM: _on_sigterm, signal.SIGINT: signal.default_int_handler}
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
