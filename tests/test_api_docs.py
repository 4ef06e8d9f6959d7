"""The API reference: a page for every public module, and numpydoc sections on every public name.

The rule for a public name (one in the ``__all__`` of a public module; a name a package
re-exports is checked once, in the module that exports it):

- a function has a ``Parameters`` section when its signature takes arguments, and a
  ``Returns`` (or, for a generator or context manager, ``Yields``) section unless its return
  annotation is ``None``;
- a class has a ``Parameters`` section when its constructor takes arguments; a record
  (``NamedTuple`` or dataclass), whose arguments are its fields, may list them under
  ``Attributes`` instead; exceptions and warnings are exempt (their argument is the message).

The build renders these docstrings with Sphinx warnings as errors (``-W -n``), which checks
their markup and cross-references; this test checks that the sections are there.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re

import pytest

from infoclust.book import reference
from infoclust.book.catalogue import ROOT

PACKAGE = ROOT / "infoclust"


def _modules_on_disk() -> list[str]:
    """The public modules, read off the files (not from the function under test)."""
    names = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not any(p.startswith("_") for p in parts):
            names.append(".".join(parts))
    return sorted(names)


def test_every_public_module_has_a_page(tmp_path):
    modules = reference.public_modules()
    assert sorted(modules) == _modules_on_disk()
    pages = reference.write_api_pages(tmp_path)
    assert [p.stem for p in pages] == modules
    for page in pages:
        text = page.read_text()
        assert f".. automodule:: {page.stem}" in text
        if not hasattr(importlib.import_module(page.stem), "__path__"):
            assert "   :members:" in text, f"{page.stem}: its names would have no entries"


def test_a_package_page_links_every_name_it_exports():
    modules = reference.public_modules()
    page = reference.api_page("infoclust", modules)
    import infoclust

    for name in infoclust.__all__:
        assert re.search(rf":py:obj:`{name} <infoclust\.[a-z_.]+\.{name}>`", page), name
    assert ":py:obj:`w2_exact" not in page  # only what infoclust exports
    assert "<infoclust.metrics.nmi>" in page and "<infoclust.iic.IIC>" in page


def test_a_name_no_module_exports_is_named(monkeypatch):
    import infoclust

    monkeypatch.setattr(infoclust, "orphan", lambda: None, raising=False)
    with pytest.raises(ValueError, match=r"infoclust\.orphan is exported by no public module"):
        reference.home_module("infoclust", "orphan", reference.public_modules())


def _sections(doc: str) -> set[str]:
    """The numpydoc section headings of a docstring (a line underlined with dashes)."""
    return set(re.findall(r"^ *(\w[\w ]*?) *\n *-{3,} *$", doc, re.M))


def _problems(obj: object) -> list[str]:
    """What ``obj``'s docstring lacks under the rule of this module's docstring."""
    doc = inspect.getdoc(obj) or ""
    if not doc:
        return ["no docstring"]
    sections = _sections(doc)
    if inspect.isclass(obj):
        if issubclass(obj, (BaseException, Warning)):
            return []
        record = dataclasses.is_dataclass(obj) or (issubclass(obj, tuple) and hasattr(obj, "_fields"))
        if inspect.signature(obj).parameters and not (
            "Parameters" in sections or (record and "Attributes" in sections)
        ):
            return ["no Parameters section"]
        return []
    signature = inspect.signature(obj)
    problems = []
    if signature.parameters and "Parameters" not in sections:
        problems.append("no Parameters section")
    if signature.return_annotation not in (None, "None") and not sections & {"Returns", "Yields"}:
        problems.append("no Returns section")
    return problems


def _public_names() -> list[tuple[str, object]]:
    """(qualified name, object) of each function and class in a public module's ``__all__``."""
    found = []
    for dotted in reference.public_modules():
        module = importlib.import_module(dotted)
        if hasattr(module, "__path__"):  # a package: its names are checked in their modules
            continue
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                found.append((f"{dotted}.{name}", obj))
    return found


def test_the_docstring_rule_catches_what_it_should():
    def documented(x: int) -> int:
        """Twice.

        Parameters
        ----------
        x : int
            A number.

        Returns
        -------
        int
            Twice ``x``.
        """

    def one_line(x: int) -> int:
        """Twice ``x``."""

    def no_return(x: int) -> None:
        """Nothing.

        Parameters
        ----------
        x : int
            Ignored.
        """

    assert _problems(documented) == [] and _problems(no_return) == []
    assert _problems(one_line) == ["no Parameters section", "no Returns section"]
    assert _problems(lambda: 0) == ["no docstring"]


def test_public_functions_and_classes_document_parameters_and_returns():
    failing = {qualified: problems for qualified, obj in _public_names() if (problems := _problems(obj))}
    undocumented = sorted(name for name, problems in failing.items() if problems == ["no docstring"])
    assert not undocumented, f"no docstring, so no entry in the book's API reference: {undocumented}"
    assert not failing, f"docstrings without their numpydoc sections (see this test's docstring): {failing}"
