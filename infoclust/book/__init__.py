"""The book around the library: chapter runs, their results ledger and the site build.

- :mod:`infoclust.book.ledger`: :class:`Ledger`, what a chapter run records (its results
  file) and the Markdown tables made from it;
- :mod:`infoclust.book.build`: execute the chapters with papermill and render the site
  with Jupyter Book (``python -m infoclust.book``, what ``make book`` runs).

Not imported by ``import infoclust``'s numerical modules; needs the ``book`` extra
(papermill, jupytext, Jupyter Book, PyYAML) only for the build itself.
"""
from .ledger import Ledger, Result, load_results, results_dir, results_markdown

__all__ = ["Ledger", "Result", "load_results", "results_dir", "results_markdown"]
