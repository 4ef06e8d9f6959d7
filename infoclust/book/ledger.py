"""The results ledger: each chapter's headline numbers, written by the run that made them.

A chapter opens one :class:`Ledger` and calls :meth:`Ledger.record` for every claim it
reproduces. Each call rewrites ``<results dir>/<chapter>.json`` so that a partial run
still leaves what it measured. The book's ledger page is built from these files only.

The results directory is ``$INFOCLUST_RESULTS_DIR`` when set (the book build and the
tests set it per profile), else ``_build/results`` under the project root (the folder
holding ``_toc.yml``, searched upwards from the working directory).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..utils import check_choice, device_name, resolve_device, run_info, seed_everything

__all__ = ["Ledger", "Result", "results_dir", "load_results", "results_markdown", "md_cell"]

CHAPTER_PROFILES = ("smoke", "default", "full", "custom")


def _project_root(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / "_toc.yml").exists():
            return folder
    return start


def results_dir() -> Path:
    """Where chapters write their results (see the module docstring)."""
    env = os.environ.get("INFOCLUST_RESULTS_DIR")
    if env:
        return Path(env)
    return _project_root(Path.cwd().resolve()) / "_build" / "results"


@dataclass
class Result:
    """One measured number and, where there is one, the paper's number beside it."""

    name: str
    value: float
    unit: str = ""
    paper: float | None = None
    source: str = ""
    claim: str = ""
    holds: bool | None = None
    seconds: float | None = None


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
    """

    chapter: str
    profile: str
    device: torch.device
    seed: int
    results: list[Result] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    generator: torch.Generator | None = field(default=None, repr=False)

    @classmethod
    def start(cls, chapter: str, *, profile: str, seed: int, device: str = "auto") -> "Ledger":
        """Begin a chapter run: check the profile, seed everything, pick the device, set the
        plot style, print what makes the run reproducible, and return its ledger.

        ``ledger.device`` is the resolved device and ``ledger.generator`` a seeded CPU
        generator for the chapter's own draws.
        """
        check_choice("profile", profile, CHAPTER_PROFILES)
        generator = seed_everything(seed)
        dev = resolve_device(device)
        from ..plot import use_style  # here, so that ``import infoclust`` does not import matplotlib

        use_style()
        info = run_info(seed, dev, profile)
        print(f"{chapter}: profile {profile}, seed {seed}, device {info['device_name']}, "
              f"torch {info['torch']}, started {info['started']}")
        return cls(chapter, profile, dev, seed, generator=generator)

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
    ) -> None:
        """Add (or replace, by ``name``) one result and rewrite the chapter's JSON file.

        ``holds`` says whether the claim is reproduced; leave it ``None`` for numbers
        that are reported, not tested.
        """
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"result {name!r} is not finite: {value}")
        res = Result(name, value, unit, None if paper is None else float(paper), source, claim,
                     None if holds is None else bool(holds), seconds)
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
            "results": [asdict(r) for r in self.results],
        }

    def save(self) -> Path:
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    def markdown(self) -> str:
        """The results as a Markdown table: ours beside the paper's."""
        return results_markdown(self.results)


_MARKDOWN_SPECIAL = "\\|*_`[]<>$#"


def md_cell(text: str) -> str:
    """``text`` escaped for a cell of a Markdown table (pipes, emphasis, math, links)."""
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in str(text))


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "–"
    text = f"{v:.4g}"
    return f"{text} {unit}".strip()


def results_markdown(results: list[Result]) -> str:
    """A Markdown table of results (measured, paper, source, holds)."""
    mark = {True: "yes", False: "**no**", None: "–"}
    lines = ["| result | ours | paper | source | holds |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {md_cell(r.name)} | {md_cell(_fmt(r.value, r.unit))} | {md_cell(_fmt(r.paper, r.unit))} | "
                     f"{md_cell(r.source or '–')} | {mark[r.holds]} |")
    return "\n".join(lines)


def load_results(folder: str | Path | None = None) -> list[dict[str, Any]]:
    """Every chapter's results found in ``folder`` (default :func:`results_dir`), by chapter."""
    folder = Path(folder) if folder is not None else results_dir()
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
