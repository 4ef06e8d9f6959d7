"""The cross-path check: the chapters re-executed in a second code path, each claim compared with the build.

The book's numbers repeat on one machine, but another processor computes with other kernels
(:mod:`infoclust.codepath`), and a verdict that flips with the rounding is not a finding.
``python -m infoclust.book.crosscheck`` (what ``make crosscheck`` runs) re-executes the
chapters (all, or ``--chapters``) on the same machine in a second code path:

- ``--capability lower`` (the default): torch's kernels and oneDNN's one level below the
  processor's (:func:`infoclust.codepath.lower_code_path`; on an AVX2 processor
  ``ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41``), ``native`` to keep them;
- ``--threads N``: another thread count (``INFOCLUST_NUM_THREADS``);
- ``--seed-offset K`` (``--held-out`` is ``--seed-offset 1000``): each chapter's seed plus
  ``K``. Seeds from :data:`HELD_OUT_SEED` up are never used to choose a setting of the book,
  so a target met on the build's seeds is checked on seeds it was not tuned on;
- ``--env NAME=VALUE``: any further variable (e.g. ``MKL_ENABLE_INSTRUCTIONS=SSE4_2``).

The chapters run into a build folder of their own, ``<build>/crosscheck/<name>/``, with the
build's machinery (:func:`infoclust.book.runs.execute_chapter`), so the main build's last
good notebooks and results are only read. Every result of each chapter is then compared with
the main build's (``<build>/results``): value here and there, verdict here and there
(``holds``), and the table is written to ``<build>/crosscheck/<name>/crosscheck.json``, from
which the ledger page shows it (:func:`crosscheck_markdown`; ``make site`` re-renders it).
The command exits with status 1 when a verdict differs that the build did not mark
borderline (:func:`unexpected`); a borderline one is shown as "depends on the machine", with
both values.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..codepath import lower_code_path
from ..utils import NUM_THREADS_ENV, check_int
from .catalogue import PROFILES, ROOT, BuildError, check_chapter_names
from .ledger import ResultsFileError, fmt_value, markdown_table, read_results_file, write_atomic
from .runs import execute_chapter

__all__ = [
    "HELD_OUT_SEED",
    "CROSSCHECK_FILE",
    "crosscheck_name",
    "compare_runs",
    "unexpected",
    "crosscheck",
    "crosscheck_markdown",
    "code_path_markdown",
    "main",
]

#: The first held-out seed: seeds from here up never choose a setting of the book.
HELD_OUT_SEED = 1000
#: The comparison's file in each cross-check folder.
CROSSCHECK_FILE = "crosscheck.json"
_LOG = "[infoclust.crosscheck]"
VERDICT = {True: "holds", False: "does not hold", None: "reported"}


def crosscheck_name(profile: str, environment: dict[str, str], threads: int | None, seed_offset: int) -> str:
    """The cross-check folder's name, from what differs from the build.

    Parameters
    ----------
    profile : str
        The chapters' profile.
    environment : dict
        The code-path variables set, name to value (``ATEN_CPU_CAPABILITY`` is shortened
        to ``aten``, ``ONEDNN_MAX_CPU_ISA`` to ``onednn``).
    threads : int or None
        The thread count, when it differs.
    seed_offset : int
        The offset added to the seeds; 0: the same seeds.

    Returns
    -------
    str
        The parts joined by ``_``, e.g. ``default_aten-default_threads-2_seeds+1000``, with
        no ``/`` or space.
    """
    parts = [profile]
    short = {"ATEN_CPU_CAPABILITY": "aten", "ONEDNN_MAX_CPU_ISA": "onednn"}
    parts += [f"{short.get(k, k.lower())}-{v}" for k, v in sorted(environment.items())]
    if threads is not None:
        parts.append(f"threads-{threads}")
    if seed_offset:
        parts.append(f"seeds+{seed_offset}")
    return "_".join(parts).replace("/", "-").replace(" ", "-")


def _row(name: str, here: dict | None, there: dict | None) -> dict[str, Any]:
    """One result compared: values, verdicts and what changed."""
    value_here = None if here is None else here["value"]
    value_there = None if there is None else there["value"]
    holds_here = None if here is None else here["holds"]
    holds_there = None if there is None else there["holds"]
    if here is None or there is None:
        change = "only here" if there is None else "only there"
    elif holds_here != holds_there:
        change = "verdict differs"
    elif value_here == value_there:
        change = "same"
    else:
        change = "moved"
    shown = here or there
    return {
        "name": name,
        "claim": shown["claim"],
        "unit": shown["unit"],
        "value_here": value_here,
        "value_there": value_there,
        "holds_here": holds_here,
        "holds_there": holds_there,
        "borderline_here": bool(here and here.get("borderline")),
        "borderline_there": bool(there and there.get("borderline")),
        "change": change,
    }


def unexpected(row: dict[str, Any]) -> bool:
    """Whether a compared result is a verdict that differs without the build having marked it borderline.

    A claim whose design marked it borderline in the build (its deciding number within the
    margin stated before the run, :func:`infoclust.book.report.borderline`) may flip with the
    code path or the seeds: its flip is reported as "depends on the machine", not as a failure.
    A mark that only the check's run carries does not count: it was not made in advance.

    Parameters
    ----------
    row : dict
        One compared result (a row of :func:`compare_runs`).

    Returns
    -------
    bool
        True for a verdict that differs and that the build did not mark borderline.
    """
    return row["change"] == "verdict differs" and not row.get("borderline_here")


def compare_runs(here: dict[str, Any], there: dict[str, Any]) -> list[dict[str, Any]]:
    """Every result of two runs of one chapter, compared by name.

    Parameters
    ----------
    here, there : dict
        The two runs' results files, as read.

    Returns
    -------
    list of dict
        One row per result, in the order of ``here`` then those only ``there`` has:
        ``name``, ``claim``, ``unit``, ``value_here``, ``value_there``, ``holds_here``,
        ``holds_there``, ``borderline_here`` and ``borderline_there`` (marked so by that run)
        and ``change``: ``"same"``
        (the same number, to the bit), ``"moved"`` (another number, the same verdict),
        ``"verdict differs"``, ``"only here"`` or ``"only there"``.
    """
    mine = {r["name"]: r for r in here["results"]}
    theirs = {r["name"]: r for r in there["results"]}
    names = list(mine) + [n for n in theirs if n not in mine]
    return [_row(n, mine.get(n), theirs.get(n)) for n in names]


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set for the block (the chapters' kernels inherit it)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _took_effect(chapter: str, run: dict[str, Any], environment: dict[str, str], threads: int | None) -> None:
    """Raise :class:`~infoclust.book.catalogue.BuildError` if the run did not compute in the path asked."""
    path = run.get("code_path") or {}
    asked = environment.get("ATEN_CPU_CAPABILITY")
    if asked and str(path.get("cpu_capability", "")).upper() != asked.upper():
        raise BuildError(
            f"{chapter} ran with torch's CPU capability {path.get('cpu_capability')!r}, not "
            f"ATEN_CPU_CAPABILITY={asked!r}: this torch or processor ignores it"
        )
    if threads is not None and path.get("torch_threads") != threads:
        raise BuildError(f"{chapter} ran on {path.get('torch_threads')} threads, not {threads}")


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and isinstance(data.get("chapters"), dict) else {}


def crosscheck(
    chapters: list[str] | None = None,
    *,
    profile: str = "default",
    build_dir: Path | None = None,
    environment: dict[str, str] | None = None,
    threads: int | None = None,
    seed_offset: int = 0,
    name: str | None = None,
    root: Path = ROOT,
    download: bool = False,
) -> Path:
    """Re-execute ``chapters`` in a second code path and compare every result with the build's.

    Parameters
    ----------
    chapters : list of str, optional
        Chapters to re-execute (default: all of ``_toc.yml``); each must have results of
        ``profile`` in ``<build_dir>/results``.
    profile : str
        The profile of the build compared with, and of the re-execution.
    build_dir : Path, optional
        The main build folder (default ``<root>/_build``); only read.
    environment : dict, optional
        Variables of the second code path (default :func:`infoclust.codepath.lower_code_path`;
        ``{}`` keeps the kernels and changes only ``threads`` or the seeds).
    threads : int, optional
        Thread count of the second run (``INFOCLUST_NUM_THREADS``); default: the build's rule.
    seed_offset : int
        Added to each chapter's seed (:data:`HELD_OUT_SEED` for the held-out seeds).
    name : str, optional
        The cross-check folder's name (default :func:`crosscheck_name`).
    root : Path
        The project folder.
    download : bool
        Let the chapters download missing data sets.

    Returns
    -------
    Path
        The comparison's file, ``<build_dir>/crosscheck/<name>/crosscheck.json``, rewritten
        after each chapter.

    Raises
    ------
    BuildError
        A chapter without results of ``profile`` in the build, nothing that differs from the
        build, a second path that did not take effect, or a chapter that failed
        (:class:`~infoclust.book.runs.ChapterFailed`).
    """
    root = Path(root)
    build_dir = Path(build_dir) if build_dir is not None else root / "_build"
    environment = lower_code_path() if environment is None else dict(environment)
    if threads is not None:
        check_int("threads", threads, 1)
    check_int("seed_offset", seed_offset, 0)
    if not environment and threads is None and not seed_offset:
        raise BuildError("nothing differs from the build: give a code path, a thread count or seeds")
    names = check_chapter_names(chapters, root)
    references = {}
    for chapter in names:
        path = build_dir / "results" / f"{chapter}.json"
        try:
            references[chapter] = read_results_file(path)
        except ResultsFileError as err:
            raise BuildError(f"{err}; build the chapter first (make book PROFILE={profile})") from None
        if references[chapter]["profile"] != profile:
            raise BuildError(
                f"{path} holds the {references[chapter]['profile']!r} profile's results, not {profile!r}"
            )
    name = name or crosscheck_name(profile, environment, threads, seed_offset)
    folder = build_dir / "crosscheck" / name
    out = folder / CROSSCHECK_FILE
    settings = {
        "profile": profile,
        "environment": environment,
        "threads": threads,
        "seed_offset": seed_offset,
    }
    record = _read_file(out)  # the chapters checked before with the same settings are kept
    if any(record.get(k) != v for k, v in settings.items()):
        record = {}
    record = {"name": name, **settings, "chapters": record.get("chapters", {})}
    overrides = {**environment, **({NUM_THREADS_ENV: str(threads)} if threads is not None else {})}
    for chapter in names:
        here = references[chapter]
        seed = here["seed"] + seed_offset
        shown = " ".join(f"{k}={v}" for k, v in overrides.items())
        print(f"{_LOG} {chapter}: seed {seed}" + (f", {shown}" if shown else ""), flush=True)
        start = time.perf_counter()
        with _environment(overrides):
            execute_chapter(chapter, profile, folder, parameters={"seed": seed}, root=root, download=download)
        there = read_results_file(folder / "results" / f"{chapter}.json")
        _took_effect(chapter, there, environment, threads)
        changed = sorted(
            k
            for k in {**here.get("parameters", {}), **there.get("parameters", {})}
            if k != "seed" and here.get("parameters", {}).get(k) != there.get("parameters", {}).get(k)
        )
        if here.get("parameters") and changed:
            raise BuildError(
                f"{chapter}: the build ran with other parameters than the check ({', '.join(changed)}): "
                f"the chapter or its profile changed since; rebuild it (make book PROFILE={profile})"
            )
        rows = compare_runs(here, there)
        record["chapters"][chapter] = {
            "here": {k: here.get(k) for k in ("seed", "started", "code_path")},
            "there": {k: there.get(k) for k in ("seed", "started", "code_path")},
            "seconds": round(time.perf_counter() - start, 1),
            "rows": rows,
        }
        write_atomic(out, json.dumps(record, indent=2))
        counts = {c: sum(r["change"] == c for r in rows) for c in ("same", "moved", "verdict differs")}
        print(f"{_LOG} {chapter}: {', '.join(f'{n} {c}' for c, n in counts.items())}", flush=True)
    return out


def _capability(path: dict[str, Any] | None) -> str:
    if not path:
        return "not recorded"
    overrides = " ".join(f"{k}={v}" for k, v in path.get("overrides", {}).items())
    return f"{path.get('cpu_capability')}, {path.get('torch_threads')} threads" + (
        f" ({overrides})" if overrides else ""
    )


def _relative(row: dict[str, Any]) -> str:
    """The relative change of a moved value (empty when the build's value is 0)."""
    if not row["value_here"]:
        return ""
    return f"{abs(row['value_there'] - row['value_here']) / abs(row['value_here']):.1e} relative"


def _change(row: dict[str, Any]) -> str:
    if row["change"] == "moved":
        return f"moved ({_relative(row)})" if _relative(row) else "moved"
    if row["change"] == "verdict differs":
        if not unexpected(row):
            return "depends on the machine (borderline)"
        return (
            "**verdict differs** (borderline there only)"
            if row.get("borderline_there")
            else "**verdict differs**"
        )
    return row["change"]


def crosscheck_markdown(results_dir: Path) -> str:
    """The cross-path checks next to a build's results (``<results_dir>/../crosscheck/*``) as Markdown.

    One section per check: what differed (variables, threads, seeds), the code path of each
    side, and every result's value and verdict here (the build) and there (the check). A
    chapter whose build results changed since its check is named as stale.

    Parameters
    ----------
    results_dir : Path
        The build's results folder.

    Returns
    -------
    str
        A Markdown section; empty when no check has run.
    """
    results_dir = Path(results_dir)
    checks = [
        (p, _read_file(p)) for p in sorted((results_dir.parent / "crosscheck").glob(f"*/{CROSSCHECK_FILE}"))
    ]
    checks = [(p, c) for p, c in checks if c.get("chapters")]
    if not checks:
        return ""
    lines = [
        "## Cross-path checks",
        "",
        "Each table compares the build's results with the same chapters re-executed on the same machine "
        "in a second code path (`make crosscheck`: torch's and oneDNN's kernels one level lower, "
        "another thread count, or the held-out seeds from "
        f"{HELD_OUT_SEED}). *same*: the same number to the bit; *moved*: another number, the same "
        "verdict; *depends on the machine*: a verdict that differs on a claim the build marked "
        "borderline (its deciding number within a margin of the threshold stated before the run); "
        "*borderline there only*: a flip that only the check's run marks, not one marked in advance.",
        "",
    ]
    for path, check in checks:
        what = [f"`{k}={v}`" for k, v in check.get("environment", {}).items()]
        if check.get("threads") is not None:
            what.append(f"{check['threads']} threads")
        if check.get("seed_offset"):
            what.append(f"seeds + {check['seed_offset']}")
        rows, stale, paths = [], [], set()
        for chapter, part in sorted(check["chapters"].items()):
            try:
                current = read_results_file(results_dir / f"{chapter}.json")["started"]
            except ResultsFileError:
                current = None
            if current != part["here"].get("started"):
                stale.append(chapter)
            paths.add(
                (_capability(part["here"].get("code_path")), _capability(part["there"].get("code_path")))
            )
            rows += [
                [
                    chapter,
                    r["name"],
                    fmt_value(r["value_here"], r["unit"]),
                    fmt_value(r["value_there"], r["unit"]),
                    VERDICT[r["holds_here"]] if r["value_here"] is not None else "–",
                    VERDICT[r["holds_there"]] if r["value_there"] is not None else "–",
                    _change(r),
                ]
                for r in part["rows"]
            ]
        changes = [r[-1] for r in rows]
        lines += [
            f"### `{check.get('name', path.parent.name)}`",
            "",
            f"Second code path: {', '.join(what) or 'as the build'}; profile `{check.get('profile')}`. "
            + "; ".join(f"here {a}, there {b}" for a, b in sorted(paths))
            + f". {len(rows)} results: {sum(c == 'same' for c in changes)} the same, "
            f"{sum(c.startswith('moved') for c in changes)} moved, "
            f"{sum(c.startswith('depends') for c in changes)} borderline verdicts differ (marked so "
            f"in advance), **{sum(c.startswith('**verdict') for c in changes)} other verdicts differ**.",
            "",
        ]
        if stale:
            lines += [
                f"Stale: the build's results of {', '.join(f'`{c}`' for c in stale)} changed since this "
                "check ran; rerun `make crosscheck`.",
                "",
            ]
        lines += [
            markdown_table(
                ["chapter", "result", "here", "there", "verdict here", "verdict there", "change"],
                rows,
                raw=["change"],
            ),
            "",
        ]
    return "\n".join(lines)


def code_path_markdown(results_dir: Path) -> str:
    """The code paths the chapters in ``results_dir`` ran in, as a Markdown table.

    Parameters
    ----------
    results_dir : Path
        A folder of chapters' results files; files that are not one, and results without a
        code path, are passed over.

    Returns
    -------
    str
        A table with one row per code path (processor, torch's CPU capability, torch and its
        threads, oneDNN, the BLAS libraries, the code-path overrides) and the chapters that
        ran in it; empty when none has a code path.
    """
    by_path: dict[str, list[str]] = {}
    cells: dict[str, list[str]] = {}
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            run = read_results_file(path)
        except ResultsFileError:
            continue
        cp = run.get("code_path")
        if not cp:
            continue
        blas = "; ".join(
            f"{b['library']} {b['version']} ({b['architecture']}), {b['threads']} threads" for b in cp["blas"]
        )
        row = [
            cp["processor"],
            cp["cpu_capability"],
            f"{cp['torch']}, {cp['torch_threads']} threads",
            cp["onednn"] or "none",
            cp["torch_blas"] or "none",
            blas or "none loaded",
            " ".join(f"{k}={v}" for k, v in cp["overrides"].items()) or "none",
        ]
        key = json.dumps(row)
        cells[key] = row
        by_path.setdefault(key, []).append(run["chapter"])
    if not by_path:
        return ""
    rows = [[", ".join(chapters), *cells[key]] for key, chapters in by_path.items()]
    return markdown_table(
        [
            "chapters",
            "processor",
            "torch's CPU capability",
            "torch",
            "oneDNN",
            "torch's BLAS",
            "other BLAS",
            "code-path overrides",
        ],
        rows,
    )


def _parse_env(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BuildError(f"--env {item!r}: give NAME=VALUE")
        out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    """The command line ``python -m infoclust.book.crosscheck`` (what ``make crosscheck`` runs).

    Parameters
    ----------
    argv : list of str or None
        The arguments (``--help`` lists them); None: ``sys.argv[1:]``.

    Returns
    -------
    int
        The process's exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m infoclust.book.crosscheck", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--chapters", nargs="+", metavar="CHAPTER", default=None, help="default: all")
    parser.add_argument("--profile", choices=PROFILES, default="default")
    parser.add_argument(
        "--build-dir", type=Path, default=None, help="the main build (default: <root>/_build)"
    )
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument(
        "--capability",
        choices=("lower", "native"),
        default="lower",
        help="torch's and oneDNN's kernels one level lower (default) or the processor's",
    )
    parser.add_argument("--threads", type=int, default=None, help="thread count of the second run")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed-offset", type=int, default=0, help="added to each chapter's seed")
    seeds.add_argument(
        "--held-out", action="store_true", help=f"the held-out seeds: --seed-offset {HELD_OUT_SEED}"
    )
    parser.add_argument("--env", nargs="+", default=[], metavar="NAME=VALUE", help="further variables")
    parser.add_argument("--name", default=None, help="the check's folder under <build>/crosscheck")
    parser.add_argument("--download", action="store_true", help="let chapters download missing data sets")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        environment = lower_code_path() if args.capability == "lower" else {}
        environment.update(_parse_env(args.env))
        out = crosscheck(
            args.chapters,
            profile=args.profile,
            build_dir=args.build_dir,
            environment=environment,
            threads=args.threads,
            seed_offset=HELD_OUT_SEED if args.held_out else args.seed_offset,
            name=args.name,
            root=root,
            download=args.download,
        )
    except (BuildError, ValueError) as err:
        print(f"{_LOG} FAILED: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{_LOG} stopped (the main build is untouched)", file=sys.stderr)
        return 130
    record = json.loads(out.read_text())
    rows = [(c, r) for c, part in record["chapters"].items() for r in part["rows"]]
    flipped = [(c, r) for c, r in rows if r["change"] == "verdict differs"]
    moved = [(c, r) for c, r in rows if r["change"] == "moved"]
    failed = [(c, r) for c, r in flipped if unexpected(r)]
    print(
        f"{_LOG} {len(rows)} results compared in {out}: {len(moved)} moved, {len(flipped)} verdicts differ "
        f"({len(flipped) - len(failed)} of them marked borderline in advance)"
    )
    for c, r in moved + flipped:
        print(
            f"  {c}: {r['name']}: {r['value_here']!r} -> {r['value_there']!r} {_relative(r)}"
            + (
                f", {VERDICT[r['holds_here']]} -> {VERDICT[r['holds_there']]}"
                if r["change"] != "moved"
                else ""
            )
            + (" (borderline)" if r["change"] != "moved" and not unexpected(r) else "")
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
