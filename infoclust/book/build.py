"""Build the book: execute every chapter with papermill, then render the site with Jupyter Book.

``python -m infoclust.book --profile default`` (what ``make book`` runs) does, in order:

1. reads the chapters from ``_toc.yml`` and each chapter's papermill parameters for the
   profile from ``notebooks/profiles.yml`` (:mod:`infoclust.book.catalogue`); unknown
   chapter names are rejected before anything runs;
2. executes each chapter with papermill in a stage of its own, whose notebook and results
   replace the previous good ones only when the chapter finished without error
   (:mod:`infoclust.book.runs`). A chapter that fails or is interrupted (Ctrl-C, ``kill``)
   leaves the previous good notebook and results untouched; what it had run is kept in
   ``<build>/failed/`` for inspection, the build stops and the site is left as it was;
3. renders the site (:mod:`infoclust.book.site`) with the generated pages: the
   reproduction ledger from ``<build>/results/*.json`` and the build environment
   (:mod:`infoclust.book.pages`), and the API reference (:mod:`infoclust.book.reference`).

A results file that is missing, damaged, from another chapter or another profile is named
and marked on the ledger page; the rest of the ledger is built (the build then exits with
status 1). ``--site-only`` renders the site and the ledger from the notebooks and results
that are there, executing nothing. ``-p NAME VALUE`` (repeatable) sets a papermill parameter
over the profile's for every chapter executed, e.g. chapter 09 on CIFAR-10.

One build at a time per build folder: a build holds ``<build>/build.lock`` (with its
process id and command) and another build in the same folder stops at once, naming it.
``<build>`` is ``_build`` unless ``--build-dir`` says otherwise (the tests use
``_build/smoke``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from ..utils import ParameterError
from .catalogue import PROFILES, ROOT, BuildError, chapter_defaults, chapter_parameters, check_chapter_names
from .ledger import write_atomic
from .pages import ledger_problems
from .runs import LOG, Terminated, build_lock, execute_chapter, interrupts_raise, read_timings
from .site import build_site

__all__ = ["build_book", "main"]


def build_book(
    profile: str = "default",
    build_dir: Path | None = None,
    only: list[str] | None = None,
    root: Path = ROOT,
    *,
    download: bool = False,
    site: bool = True,
    parameters: dict[str, Any] | None = None,
) -> Path | None:
    """Execute the chapters (all, or ``only``) and render the site (unless ``site=False``).

    Chapter names and their profile entries are checked before anything runs; the first
    chapter that fails stops the build before the site is touched. Prints the time of each
    step and records it in ``<build_dir>/timings.json``.

    Parameters
    ----------
    profile : str
        One of :data:`~infoclust.book.catalogue.PROFILES`: the chapters' settings in
        ``notebooks/profiles.yml``.
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
    parameters : dict or None
        Papermill parameters over the profile's, for every chapter executed (each must
        be a parameter of each of them).

    Returns
    -------
    Path or None
        The site's folder (:func:`~infoclust.book.site.build_site`); None without a site.

    Raises
    ------
    BuildError
        For an unknown profile or chapter, or a chapter without an entry for the profile.
    BuildLocked
        When another build holds ``build_dir`` (:func:`~infoclust.book.runs.build_lock`).
    ChapterFailed
        When a chapter fails (:func:`~infoclust.book.runs.execute_chapter`).
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
        unknown = sorted(set(parameters) - set(chapter_defaults(chapter, root))) if parameters else []
        if unknown:
            raise BuildError(f"--param {unknown}: not parameters of {chapter}")
    with build_lock(build_dir):
        timings = read_timings(build_dir)
        timings["profile"] = profile
        for chapter in names:
            start = time.perf_counter()
            print(f"{LOG} executing {chapter} (profile {profile})", flush=True)
            execute_chapter(chapter, profile, build_dir, parameters=parameters, root=root, download=download)
            seconds = round(time.perf_counter() - start, 1)
            timings["chapters"][chapter] = {"profile": profile, "seconds": seconds}
            write_atomic(build_dir / "timings.json", json.dumps(timings, indent=2))
            print(f"{LOG} {chapter} done in {seconds} s", flush=True)
        write_atomic(build_dir / "timings.json", json.dumps(timings, indent=2))
        if not site:
            return None
        start = time.perf_counter()
        html = build_site(build_dir, root, profile)
        print(f"{LOG} site in {html} (rendered in {time.perf_counter() - start:.1f} s)", flush=True)
        return html


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
    parser.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        default=[],
        help="a papermill parameter over the profile's, VALUE read as YAML (-p dataset cifar10); repeatable",
    )
    args = parser.parse_args(argv)
    if args.site_only and (args.no_site or args.download or args.param):
        parser.error("--site-only executes nothing: it takes neither --no-site, --download nor --param")
    parameters = {name: yaml.safe_load(value) for name, value in args.param}
    root = args.root.resolve()
    build_dir = args.build_dir if args.build_dir is not None else root / "_build"
    with interrupts_raise():  # SIGTERM stops the build as Ctrl-C does
        try:
            if args.site_only:
                profile = args.profile or read_timings(build_dir)["profile"]
                html = build_site(build_dir, root, profile)
                print(f"{LOG} site in {html} (nothing executed)", flush=True)
            else:
                build_book(
                    args.profile or "default",
                    build_dir,
                    args.chapters,
                    root,
                    download=args.download,
                    site=not args.no_site,
                    parameters=parameters,
                )
        except subprocess.CalledProcessError as err:
            print(
                f"{LOG} FAILED: {' '.join(map(str, err.cmd[:4]))} ... exited with {err.returncode}; "
                f"the previous site (if any) is unchanged",
                file=sys.stderr,
            )
            return 1
        except BuildError as err:
            print(f"{LOG} FAILED: {err}", file=sys.stderr)
            return 1
        except KeyboardInterrupt as err:
            print(f"{LOG} stopped: {err or 'interrupted (Ctrl-C)'}", file=sys.stderr)
            return 143 if isinstance(err, Terminated) else 130
    if not args.no_site:
        problems = ledger_problems(build_dir / "results", root)
        if problems:
            print(
                f"{LOG} the site was built, but the ledger is not whole (marked on its page):\n  "
                + "\n  ".join(problems),
                file=sys.stderr,
            )
            return 1
    return 0
