"""The book's catalogue: its chapters and profiles, declared once, and each chapter's settings.

- the chapters are those of ``_toc.yml`` under ``notebooks/`` (:func:`chapters`), in its
  order, each a jupytext ``py:percent`` source ``notebooks/<chapter>.py``
  (:func:`chapter_source`) with one cell tagged ``parameters`` (:func:`chapter_defaults`);
- the profiles are :data:`PROFILES`; each chapter's papermill parameters for each profile
  are in ``notebooks/profiles.yml`` (:func:`chapter_parameters`). A run by hand may also
  call itself ``custom`` (:data:`RUN_PROFILES`, what a chapter's ledger accepts).

Everything else of the build (:mod:`infoclust.book.runs`, :mod:`infoclust.book.pages`,
:mod:`infoclust.book.site`, :mod:`infoclust.book.crosscheck`) and the chapters' ledger
(:mod:`infoclust.book.ledger`) take the chapters and profiles from here. PyYAML and jupytext
(the ``book`` extra) are imported only when a file is read.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from ..utils import ParameterError, check_choice

__all__ = [
    "ROOT",
    "PROFILES",
    "RUN_PROFILES",
    "BuildError",
    "chapters",
    "chapter_source",
    "chapter_parameters",
    "chapter_defaults",
    "check_chapter_names",
]

#: The repository's root (the folder holding ``_toc.yml``).
ROOT = Path(__file__).resolve().parents[2]
#: The book's profiles, the settings of ``notebooks/profiles.yml`` a build runs the chapters with.
PROFILES = ("smoke", "default", "full")
#: The profiles a chapter's run may record, the book's and ``custom`` for a run by hand.
RUN_PROFILES = (*PROFILES, "custom")


class BuildError(RuntimeError):
    """The build cannot go on; the message says why and what to do (printed without a traceback)."""


def _toc_files(toc: dict[str, Any]) -> list[str]:
    files = []
    for part in toc.get("parts", [toc]):
        for entry in part.get("chapters", []):
            files.append(entry["file"])
            files.extend(sub["file"] for sub in entry.get("sections", []) if "file" in sub)  # not globs
    return files


def _read_yaml(path: Path) -> Any:
    """The YAML file ``path``, or :class:`BuildError` naming it (missing, unreadable, malformed)."""
    import yaml

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


def chapter_source(chapter: str, root: Path = ROOT) -> Path:
    """The jupytext source of ``chapter``: ``<root>/notebooks/<chapter>.py``.

    Parameters
    ----------
    chapter : str
        The chapter's name (``NN_topic``).
    root : Path
        The repository's root.

    Returns
    -------
    Path
        The source file (which may not exist).
    """
    return Path(root) / "notebooks" / f"{chapter}.py"


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

    from .chapter import parameters_of  # here: the chapter module's ledger takes the profiles from this one

    nb = jupytext.read(chapter_source(chapter, root))
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise BuildError(
            f"notebooks/{chapter}.py must have exactly one cell tagged 'parameters', it has {len(cells)}"
        )
    return {name: p.default for name, p in parameters_of(cells[0].source).items()}
