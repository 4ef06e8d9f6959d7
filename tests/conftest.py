"""Shared fixtures: chapters executed once per session with the smoke profile."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from infoclust.book import build as book

SMOKE_DIR = book.ROOT / "_build" / "smoke"
_executed: dict[str, Path | BaseException] = {}


def execute_smoke(chapter: str) -> Path:
    """Execute ``chapter`` with the smoke profile once per session; re-raise its failure."""
    if chapter not in _executed:
        try:
            _executed[chapter] = book.execute_chapter(chapter, "smoke", SMOKE_DIR)
        except Exception as err:  # remembered, so that every test that needs it fails
            _executed[chapter] = err
    result = _executed[chapter]
    if isinstance(result, BaseException):
        raise result
    return result


@pytest.fixture(scope="session")
def smoke() -> Callable[[str], Path]:
    return execute_smoke
