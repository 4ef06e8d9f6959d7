"""Every chapter's exercises: each says what the reader should see and has a hidden, executed solution.

An exercise is a Markdown paragraph of the chapter's ``## Exercises`` section that begins with
``**N.`` and says ``*You should see*``; its solution is the next cell, a code cell tagged
``hide-cell`` (the book shows it behind a toggle) that begins with ``# Solution N``. The
chapter's smoke run executes the solutions with the rest of the chapter (a solution that
breaks fails the build and ``test_chapters.py``); here each one must also have printed its
answer.
"""

from __future__ import annotations

import re

import jupytext
import nbformat
import pytest

from infoclust.book.catalogue import ROOT, chapters

CHAPTERS = chapters()


def _exercise_cells(cells: list) -> list:
    """The cells from the one that opens ``## Exercises`` to the one before ``## References``."""
    start = next(i for i, c in enumerate(cells) if c.cell_type == "markdown" and "## Exercises" in c.source)
    end = next(i for i, c in enumerate(cells) if c.cell_type == "markdown" and "## References" in c.source)
    return cells[start : end + 1]


def _exercises(cells: list) -> list[tuple[int, str, object]]:
    """(number, statement, the cell after it) for every exercise of the section."""
    found = []
    for i, cell in enumerate(cells):
        if cell.cell_type != "markdown":
            continue
        for match in re.finditer(r"^\*\*(\d+)\. (.*?)(?=^\*\*\d+\. |\Z)", cell.source, re.M | re.S):
            found.append((int(match.group(1)), match.group(2), cells[i + 1] if i + 1 < len(cells) else None))
    return found


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_exercise_says_what_to_see_and_has_a_hidden_solution(chapter):
    nb = jupytext.read(ROOT / "notebooks" / f"{chapter}.py")
    exercises = _exercises(_exercise_cells(nb.cells))
    assert len(exercises) >= 3, f"{chapter}: {len(exercises)} exercises"
    assert [n for n, _, _ in exercises] == list(range(1, len(exercises) + 1)), "exercises numbered 1, 2, ..."
    for n, statement, solution in exercises:
        where = f"{chapter}, exercise {n}"
        said = " ".join(statement.split())
        assert "*You should see*" in said, f"{where}: it must say what the reader should see"
        assert solution is not None and solution.cell_type == "code", f"{where}: no solution cell after it"
        assert solution.source.startswith(f"# Solution {n}"), f"{where}: its solution is not the next cell"
        assert "hide-cell" in solution.metadata.get("tags", []), f"{where}: its solution is not hidden"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_solution_ran_and_printed_its_answer(chapter, smoke):
    nb = nbformat.read(smoke(chapter), as_version=4)
    solutions = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("# Solution ")]
    assert solutions, f"{chapter}: no solution cell in the executed notebook"
    for cell in solutions:
        name = cell.source.splitlines()[0]
        assert not [o for o in cell.outputs if o.get("output_type") == "error"], f"{chapter}: {name} failed"
        text = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
        assert text.strip(), f"{chapter}: {name} printed nothing"
