"""Build the book: execute every chapter with papermill, then render the site with Jupyter Book.

``python -m infoclust.book --profile default`` (what ``make book`` runs) does, in order:

1. reads the chapters from ``_toc.yml`` (files under ``notebooks/``) and each chapter's
   papermill parameters for the profile from ``notebooks/profiles.yml``;
2. converts each jupytext ``py:percent`` source to a notebook and executes it with
   papermill into ``<build>/notebooks/`` (results go to ``<build>/results/``); an error in
   any chapter stops the build with a non-zero exit;
3. stages the book sources (``_config.yml``, ``_toc.yml``, ``book/`` and the executed
   notebooks) in ``<build>/src``, writes the generated pages there (the reproduction ledger
   from ``<build>/results/*.json`` and the build environment), and renders them with Sphinx
   through Jupyter Book's configuration into ``<build>/html``, warnings as errors.
   Jupyter Book executes nothing.

``<build>`` is ``_build`` unless ``--build-dir`` says otherwise (the tests use
``_build/smoke``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from .ledger import load_results, md_cell

__all__ = ["ROOT", "PROFILES", "chapters", "chapter_parameters", "execute_chapter", "ledger_page",
           "environment_page", "build_site", "build_book"]

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ("smoke", "default", "full")


def _toc_files(toc: dict[str, Any]) -> list[str]:
    files = []
    for part in toc.get("parts", [toc]):
        for entry in part.get("chapters", []):
            files.append(entry["file"])
            files.extend(sub["file"] for sub in entry.get("sections", []))
    return files


def chapters(root: Path = ROOT) -> list[str]:
    """Chapter names (``NN_topic``) in the order of ``_toc.yml``."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    return [Path(f).name for f in _toc_files(toc) if f.startswith("notebooks/")]


def chapter_parameters(chapter: str, profile: str, root: Path = ROOT) -> dict[str, Any]:
    """Papermill parameters of ``chapter`` for ``profile``, with ``profile`` itself injected."""
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not one of {PROFILES}")
    table = yaml.safe_load((root / "notebooks" / "profiles.yml").read_text()) or {}
    if chapter not in table:
        raise KeyError(f"notebooks/profiles.yml has no entry for chapter {chapter!r}")
    params = dict(table[chapter].get(profile) or {})
    params["profile"] = profile
    return params


def execute_chapter(chapter: str, profile: str, build_dir: Path, *, parameters: dict[str, Any] | None = None,
                    root: Path = ROOT) -> Path:
    """Execute one chapter with papermill; return the executed notebook's path.

    ``parameters`` override the profile's. Raises papermill's ``PapermillExecutionError``
    when a cell fails (the chapter fails loudly).
    """
    import jupytext
    import papermill as pm

    params = chapter_parameters(chapter, profile, root)
    params.update(parameters or {})
    out_dir = build_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    source = out_dir / f"{chapter}.source.ipynb"
    output = out_dir / f"{chapter}.ipynb"
    jupytext.write(jupytext.read(root / "notebooks" / f"{chapter}.py"), source)
    env_before = os.environ.get("INFOCLUST_RESULTS_DIR")
    os.environ["INFOCLUST_RESULTS_DIR"] = str((build_dir / "results").resolve())
    try:
        pm.execute_notebook(str(source), str(output), parameters=params, cwd=str(root),
                            kernel_name="python3", progress_bar=False, log_output=False)
    finally:
        source.unlink(missing_ok=True)
        if env_before is None:
            os.environ.pop("INFOCLUST_RESULTS_DIR", None)
        else:
            os.environ["INFOCLUST_RESULTS_DIR"] = env_before
    return output


def _fmt(value: float | None, unit: str = "") -> str:
    return "–" if value is None else f"{value:.4g} {unit}".strip()


def ledger_page(results_dir: Path) -> str:
    """The reproduction ledger as MyST Markdown, built only from the chapters' result files.

    One table of every result (claim, paper's number and source, ours, whether it holds)
    and one of the runs that produced them (profile, device, seed, run time).
    """
    runs = load_results(results_dir)
    rows, run_rows, tested, held = [], [], 0, 0
    for run in runs:
        run_tested = [r for r in run["results"] if r["holds"] is not None]
        run_held = sum(bool(r["holds"]) for r in run_tested)
        tested, held = tested + len(run_tested), held + run_held
        run_rows.append("| " + " | ".join(md_cell(c) for c in (
            run["chapter"], run["profile"], run["device_name"], run["seed"], f"{run['seconds']:.0f} s",
            run["started"], f"{run_held} of {len(run_tested)}")) + " |")
        for r in run["results"]:
            mark = {True: "yes", False: "**no**", None: "reported"}[r["holds"]]
            cells = [run["chapter"], r["claim"] or "–", r["name"], _fmt(r["paper"], r["unit"]),
                     r["source"] or "–", _fmt(r["value"], r["unit"])]
            rows.append("| " + " | ".join(md_cell(c) for c in cells) + f" | {mark} |")
    lines = [
        "(ledger)=",
        "# Reproduction ledger",
        "",
        "This page is generated by the build from the results that the chapters recorded while "
        "they ran (`results/*.json` of this build): every claim the book tests, the paper's "
        "number with its source, our number, and the run that produced it. Nothing on it is "
        "typed by hand.",
        "",
        f"**{held} of {tested} tested claims hold**; {sum(len(r['results']) for r in runs) - tested} "
        f"further numbers are reported without a claim. Chapters: {len(runs)}.",
        "",
        "## The runs",
        "",
        "| chapter | profile | device | seed | run time | started (UTC) | claims held |",
        "|---|---|---|---|---|---|---|",
        *run_rows,
        "",
        "## Every result",
        "",
        "| chapter | claim | result | paper | source | ours | holds |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    return "\n".join(lines) + "\n"


def environment_page(build_dir: Path) -> str:
    """The build's environment: date, machine, device and package versions, and chapter times."""
    import importlib.metadata as md
    import platform

    import torch

    packages = ["torch", "torchvision", "numpy", "scipy", "scikit-learn", "pot", "mlxtend", "matplotlib",
                "tqdm", "jupyter-book", "sphinx", "myst-nb", "jupytext", "papermill", "nbval"]
    versions = []
    for name in packages:
        try:
            versions.append(f"| {name} | {md.version(name)} |")
        except md.PackageNotFoundError:
            versions.append(f"| {name} | not installed |")
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    timings_file = build_dir / "timings.json"
    timing_rows = []
    if timings_file.exists():
        t = json.loads(timings_file.read_text())
        timing_rows = [f"| {k} | {v:.1f} |" for k, v in t["seconds"].items()]
        profile = t["profile"]
    else:
        profile = "unknown"
    lines = [
        "# Build environment",
        "",
        f"Built {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with the `{profile}` profile on "
        f"{platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPU cores, GPU: {gpu}.",
        "",
        "| package | version |", "|---|---|", *versions, "",
    ]
    if timing_rows:
        lines += ["Execution time of each chapter in this build (seconds):", "",
                  "| chapter | seconds |", "|---|---|", *timing_rows, ""]
    return "\n".join(lines)


def build_site(build_dir: Path, root: Path = ROOT) -> Path:
    """Render the executed notebooks in ``build_dir`` into ``build_dir/html``; return it."""
    src = build_dir / "src"
    if src.exists():
        shutil.rmtree(src)
    (src / "notebooks").mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(root / name, src / name)
    shutil.copytree(root / "book", src / "book")
    missing = []
    for chapter in chapters(root):
        nb = build_dir / "notebooks" / f"{chapter}.ipynb"
        if not nb.exists():
            missing.append(chapter)
            continue
        shutil.copy(nb, src / "notebooks" / nb.name)
    if missing:
        raise FileNotFoundError(f"chapters not executed yet: {missing} (run execute_chapter first)")
    (src / "book" / "ledger.md").write_text(ledger_page(build_dir / "results"))
    (src / "book" / "environment.md").write_text(environment_page(build_dir))
    jb = Path(sys.executable).with_name("jupyter-book")
    subprocess.run([str(jb), "config", "sphinx", str(src)], check=True, stdout=subprocess.DEVNULL)
    with open(src / "conf.py", "a") as conf:
        # The book has no live-code buttons; sphinx-thebe would declare THEBE_JS_URL twice
        # on every page (a console error) and point at a network address.
        conf.write('\nextensions = [e for e in extensions if e != "sphinx_thebe"]\n')
    html = build_dir / "html"
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "-n", "--keep-going", "-q",
           "-d", str(build_dir / "doctrees"), str(src), str(html)]
    subprocess.run(cmd, check=True)
    return html


def build_book(profile: str = "default", build_dir: Path | None = None, only: list[str] | None = None,
               root: Path = ROOT) -> Path:
    """Execute the chapters (all, or ``only``) and render the site; print the time of each step."""
    build_dir = Path(build_dir) if build_dir is not None else root / "_build"
    timings: dict[str, float] = {}
    timings_file = build_dir / "timings.json"
    if only and timings_file.exists():  # keep the times of the chapters not rerun
        earlier = json.loads(timings_file.read_text())
        if earlier["profile"] == profile:
            timings = {k: v for k, v in earlier["seconds"].items() if k != "all chapters"}
    for chapter in only or chapters(root):
        start = time.perf_counter()
        print(f"[infoclust.book] executing {chapter} (profile {profile})", flush=True)
        execute_chapter(chapter, profile, build_dir, root=root)
        timings[chapter] = round(time.perf_counter() - start, 1)
        print(f"[infoclust.book] {chapter} done in {timings[chapter]} s", flush=True)
    timings["all chapters"] = round(sum(timings.values()), 1)
    timings_file.write_text(json.dumps({"profile": profile, "seconds": timings}, indent=2))
    start = time.perf_counter()
    html = build_site(build_dir, root)
    print(f"[infoclust.book] site in {html}; chapters {timings}, rendering "
          f"{time.perf_counter() - start:.1f} s", flush=True)
    return html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infoclust.book", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="default", choices=PROFILES)
    parser.add_argument("--build-dir", type=Path, default=None, help="default: _build")
    parser.add_argument("--chapters", nargs="*", default=None, help="execute only these (others must exist)")
    args = parser.parse_args(argv)
    try:
        build_book(args.profile, args.build_dir, args.chapters)
    except subprocess.CalledProcessError as err:
        print(f"[infoclust.book] FAILED: {' '.join(map(str, err.cmd[:4]))} ... exited with {err.returncode}",
              file=sys.stderr)
        return 1
    except Exception as err:  # papermill's execution error names the chapter's failing cell
        print(f"[infoclust.book] FAILED: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    return 0

