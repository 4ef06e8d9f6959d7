"""The book around the library: chapter runs, their results ledger and the site build.

- :mod:`infoclust.book.chapter`: :func:`start`, the one call of a chapter's set-up cell
  (its parameters checked against its parameters cell, the run begun);
- :mod:`infoclust.book.ledger`: :class:`Ledger`, what a chapter run records (its results
  file) and the Markdown tables made from it (:func:`markdown_table`);
- :mod:`infoclust.book.build`: execute the chapters with papermill and render the site
  with Jupyter Book (``python -m infoclust.book``, what ``make book`` runs), from its rooms:
  :mod:`infoclust.book.catalogue` (the chapters and profiles, declared once),
  :mod:`infoclust.book.runs` (the lock, the staged papermill runs, the signals),
  :mod:`infoclust.book.pages` (the ledger and environment pages) and
  :mod:`infoclust.book.site` (the Jupyter Book render, with the API reference);
- :mod:`infoclust.book.crosscheck`: the chapters re-executed in a second CPU code path (or
  on other seeds) and every claim compared with the build's (``make crosscheck``).

Not imported by ``import infoclust``'s numerical modules; needs the ``book`` extra
(papermill, jupytext, Jupyter Book, PyYAML) only for the build itself.
"""

from .chapter import Parameter, check_parameters, parameters_of, start
from .ledger import (
    Ledger,
    Result,
    ResultsFileError,
    load_results,
    markdown_table,
    read_results_file,
    results_dir,
    results_markdown,
)

__all__ = [
    "start",
    "Parameter",
    "check_parameters",
    "parameters_of",
    "Ledger",
    "Result",
    "ResultsFileError",
    "load_results",
    "read_results_file",
    "results_dir",
    "results_markdown",
    "markdown_table",
]
