"""The book's API reference: one page per public module, generated from the docstrings.

A public module is a module of the package whose dotted name has no part beginning with an
underscore. :func:`public_modules` finds them by walking the package, so a new module gets
its page without a list to update; :func:`write_api_pages` writes one reStructuredText page
per module into ``book/api/`` of the staged book, which ``_toc.yml`` takes in with a glob.
Sphinx's autodoc fills a module's page from its ``__all__`` (the numpydoc sections read by
``sphinx.ext.napoleon``). A package's page (``infoclust``, ``infoclust.book``) lists the
names it re-exports with a link to the one entry of each, on the page of the module that
exports it, so that every name is documented once and a cross-reference has one target.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path
from types import ModuleType

__all__ = ["public_modules", "home_module", "api_page", "write_api_pages"]


def _is_public(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split("."))


def public_modules(package: str = "infoclust") -> list[str]:
    """The dotted names of the package and of its public modules and subpackages, sorted.

    Parameters
    ----------
    package : str
        The top-level package to walk (imported, and so are its subpackages).

    Returns
    -------
    list of str
        ``package`` itself first, then every module whose dotted name has no part beginning
        with an underscore.
    """
    root = importlib.import_module(package)
    found = pkgutil.walk_packages(root.__path__, f"{package}.")
    return [package, *sorted(m.name for m in found if _is_public(m.name))]


def _is_package(module: ModuleType) -> bool:
    return hasattr(module, "__path__")


def home_module(package: str, name: str, modules: list[str]) -> str:
    """The public module, not a package, whose ``__all__`` exports what ``package.name`` is.

    Parameters
    ----------
    package : str
        A package that re-exports ``name`` in its ``__all__``.
    name : str
        The exported name.
    modules : list of str
        The public modules to search (:func:`public_modules`).

    Returns
    -------
    str
        The dotted name of the first such module in ``modules``, where the name is documented.

    Raises
    ------
    ValueError
        When no public module exports the same object: its entry would be missing.
    """
    obj = getattr(importlib.import_module(package), name)
    for dotted in modules:
        module = importlib.import_module(dotted)
        exported = name in getattr(module, "__all__", ())
        if exported and not _is_package(module) and getattr(module, name) is obj:
            return dotted
    raise ValueError(
        f"{package}.{name} is exported by no public module's __all__, so the API reference has no "
        f"entry to link it to: add it to the __all__ of the module that defines it"
    )


def _routing_methods(module: ModuleType) -> list[str]:
    """scikit-learn's metadata-routing methods (``set_fit_request``, ...) of the module's estimators:
    scikit-learn's, documented there, not ours."""
    names = set()
    for name in getattr(module, "__all__", ()):
        obj = getattr(module, name)
        if inspect.isclass(obj):
            names.update(m for m in vars(obj) if m.startswith("set_") and m.endswith("_request"))
    return sorted(names)


def _title(text: str) -> list[str]:
    return [text, "=" * len(text), ""]


def _summary(obj: object) -> str:
    """The first paragraph of a class's or function's docstring ("" for data: its type's docstring)."""
    if not (inspect.isclass(obj) or inspect.isroutine(obj)):
        return ""
    doc = inspect.getdoc(obj) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def api_page(dotted: str, modules: list[str]) -> str:
    """The reStructuredText page of one public module.

    Parameters
    ----------
    dotted : str
        The module's dotted name.
    modules : list of str
        Every public module (:func:`public_modules`), where a package's names are looked up.

    Returns
    -------
    str
        A module's page: its docstring and an entry for every name in its ``__all__``
        (autodoc). A package's page: its docstring and a list of the names it exports, each
        linked to its entry on its module's page (:func:`home_module`).
    """
    module = importlib.import_module(dotted)
    lines = [f".. _api-{dotted}:", "", *_title(f"``{dotted}``")]
    if not _is_package(module):
        lines += [f".. automodule:: {dotted}", "   :members:"]
        routing = _routing_methods(module)
        if routing:
            lines.append(f"   :exclude-members: {', '.join(routing)}")
        return "\n".join([*lines, ""])
    lines += [f".. automodule:: {dotted}", "", "Names exported here, each documented in its module:", ""]
    for name in getattr(module, "__all__", ()):
        home = home_module(dotted, name, modules)
        summary = _summary(getattr(module, name))
        entry = f"- :py:obj:`{name} <{home}.{name}>` (:mod:`{home}`)"
        lines.append(f"{entry}: {summary}" if summary else entry)
    return "\n".join([*lines, ""])


def write_api_pages(folder: Path, package: str = "infoclust") -> list[Path]:
    """Write the page of every public module into ``folder`` (``<module>.rst``).

    Parameters
    ----------
    folder : Path
        Where the pages go (created if missing); the book's ``book/api``.
    package : str
        The package whose modules are documented.

    Returns
    -------
    list of Path
        The pages written, in the order of :func:`public_modules`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    modules = public_modules(package)
    pages = []
    for dotted in modules:
        page = folder / f"{dotted}.rst"
        page.write_text(api_page(dotted, modules))
        pages.append(page)
    return pages
