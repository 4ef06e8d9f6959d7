"""The smoke book renders: every chapter page, its numbered figures, and the bibliography."""
from __future__ import annotations

import re

from conftest import SMOKE_DIR

from infoclust import book


def test_book_renders(smoke):
    for chapter in book.chapters():
        smoke(chapter)
    html = book.build_site(SMOKE_DIR)
    assert (html / "index.html").exists()
    intro = (html / "book" / "intro.html").read_text()
    assert "infomax" in intro
    for chapter in book.chapters():
        page = (html / "notebooks" / f"{chapter}.html").read_text()
        assert "Traceback" not in page
        assert re.search(r"Fig\. \d+", page), f"{chapter}: no numbered figure"
        for src in re.findall(r'<img[^>]+src="([^"]+)"', page):
            if not src.startswith("data:"):
                assert (html / "notebooks" / src).resolve().exists(), f"{chapter}: missing image {src}"
    assert "Lloyd" in (html / "book" / "bibliography.html").read_text()
