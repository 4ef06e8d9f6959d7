"""The site: the executed chapters and the generated pages rendered with Jupyter Book's configuration.

:func:`build_site` stages the book sources (``_config.yml``, ``_toc.yml``, ``book/`` and the
executed notebooks) in ``<build>/src``, writes the generated pages there (the reproduction
ledger and the build environment, :mod:`infoclust.book.pages`, and the API reference,
:mod:`infoclust.book.reference`), and renders them with Sphinx through Jupyter Book's
configuration into a new folder that replaces ``<build>/html`` only when it rendered,
warnings as errors. Jupyter Book executes nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .catalogue import ROOT, BuildError, chapters
from .pages import environment_page, ledger_page
from .reference import write_api_pages
from .runs import build_lock, interrupts_held

__all__ = ["build_site"]


def build_site(build_dir: Path, root: Path = ROOT, profile: str | None = None) -> Path:
    """Render the executed notebooks in ``build_dir`` into ``build_dir/html``.

    The site, with the API reference (:mod:`infoclust.book.reference`), the ledger
    (:func:`~infoclust.book.pages.ledger_page`) and the environment page
    (:func:`~infoclust.book.pages.environment_page`), is rendered by
    Sphinx with warnings as errors into a new folder that replaces ``html`` only when Sphinx
    succeeded.

    Parameters
    ----------
    build_dir : Path
        The build folder, with every chapter's executed notebook.
    root : Path
        The repository's root.
    profile : str or None
        The build's profile, against which the ledger marks chapters that ran with another.

    Returns
    -------
    Path
        ``build_dir/html``.

    Raises
    ------
    BuildError
        When a chapter has no executed notebook.
    subprocess.CalledProcessError
        When Sphinx fails (a warning included); the previous site is left as it was.
    """
    build_dir, root = Path(build_dir), Path(root)
    names = chapters(root)
    missing = [c for c in names if not (build_dir / "notebooks" / f"{c}.ipynb").exists()]
    if missing:
        raise BuildError(
            f"chapters not executed in {build_dir} yet: {', '.join(missing)} "
            f"(run python -m infoclust.book --chapters {' '.join(missing)})"
        )
    with build_lock(build_dir):
        src = build_dir / "src"
        if src.exists():
            shutil.rmtree(src)
        (src / "notebooks").mkdir(parents=True)
        for name in ("_config.yml", "_toc.yml"):
            shutil.copy(root / name, src / name)
        shutil.copytree(root / "book", src / "book")
        write_api_pages(src / "book" / "api")  # the API reference, one page per public module
        for chapter in names:
            shutil.copy(build_dir / "notebooks" / f"{chapter}.ipynb", src / "notebooks" / f"{chapter}.ipynb")
        (src / "book" / "ledger.md").write_text(ledger_page(build_dir / "results", root, profile))
        (src / "book" / "environment.md").write_text(environment_page(build_dir))
        jb = Path(sys.executable).with_name("jupyter-book")
        subprocess.run([str(jb), "config", "sphinx", str(src)], check=True, stdout=subprocess.DEVNULL)
        with open(src / "conf.py", "a") as conf:
            # The book has no live-code buttons; sphinx-thebe would declare THEBE_JS_URL twice
            # on every page (a console error) and point at a network address.
            conf.write('\nextensions = [e for e in extensions if e != "sphinx_thebe"]\n')
        html, new, old = build_dir / "html", build_dir / ".html-new", build_dir / ".html-old"
        for folder in (new, old):
            shutil.rmtree(folder, ignore_errors=True)
        cmd = [
            sys.executable,
            "-m",
            "sphinx",
            "-b",
            "html",
            "-W",
            "-n",
            "--keep-going",
            "-q",
            "-d",
            str(build_dir / "doctrees"),
            str(src),
            str(new),
        ]
        subprocess.run(cmd, check=True)
        with interrupts_held():
            if html.exists():
                os.replace(html, old)
            os.replace(new, html)
        shutil.rmtree(old, ignore_errors=True)
    return html
