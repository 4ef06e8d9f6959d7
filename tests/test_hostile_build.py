"""Hostile build set-ups (issue 22, item 8): refused before any chapter runs, naming the file.

``build.lock`` as a folder and ``--build-dir`` a file failed with a bare ``OSError``; a
malformed ``_toc.yml`` with YAML's parser error and no file name; a chapter missing from
``notebooks/profiles.yml`` was found only after the chapters before it had run. Each is now
a :class:`~infoclust.book.build.BuildError` (the command prints it and exits 1) raised before
the first chapter, and the previous build's files are byte-identical. An unknown chapter or
profile, on the command line or to ``chapter_parameters``, is refused naming it (``--chapters``
without a name and an unknown name after a known one: ``test_build``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_hostile_common import kept, refused

from infoclust.book import build as book

REFUSED = (book.BuildError,)


@pytest.fixture
def project(tmp_path) -> Path:
    """Two chapters in _toc.yml and profiles.yml, and a previous build's files in _build."""
    root = tmp_path / "project"
    (root / "notebooks").mkdir(parents=True)
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nparts:\n  - caption: C\n    chapters:\n"
        "      - file: notebooks/01_a\n      - file: notebooks/02_b\n"
    )
    (root / "notebooks" / "profiles.yml").write_text(
        "01_a:\n  smoke: {}\n  default: {}\n  full: {}\n02_b:\n  smoke: {}\n  default: {}\n  full: {}\n"
    )
    for name in ("01_a", "02_b"):
        (root / "notebooks" / f"{name}.py").write_text("# %%\nraise SystemExit('no chapter may run')\n")
    for folder, name in (("notebooks", "01_a.ipynb"), ("results", "01_a.json")):
        (root / "_build" / folder).mkdir(parents=True, exist_ok=True)
        (root / "_build" / folder / name).write_text("the previous build's file")
    return root


def test_build_lock_is_a_folder(project):
    (project / "_build" / "build.lock").mkdir()
    with kept(project / "_build"), refused("build.lock", "build-dir", types=REFUSED):
        book.build_book("smoke", project / "_build", root=project, site=False)


def test_build_dir_is_a_file(project):
    path = project / "a-file"
    path.write_text("mine")
    with kept(project / "_build"), refused(str(path), "build-dir", types=REFUSED):
        book.build_book("smoke", path, root=project, site=False)
    assert path.read_text() == "mine"


@pytest.mark.parametrize("toc", ["format: [unclosed\n", "- just\n- a list\n", "parts: [{chapters: [{}]}]\n"])
def test_malformed_toc(project, toc):
    (project / "_toc.yml").write_text(toc)
    with kept(project / "_build"), refused("_toc.yml", types=REFUSED):
        book.build_book("smoke", project / "_build", root=project, site=False)


def test_a_chapter_missing_from_profiles_is_found_before_any_runs(project, capsys):
    (project / "notebooks" / "profiles.yml").write_text("01_a:\n  smoke: {}\n")
    with kept(project / "_build"):
        assert book.main(["--root", str(project), "--profile", "smoke", "--no-site"]) == 1
    out, err = capsys.readouterr()
    assert "FAILED" in err and "02_b" in err and "profiles.yml" in err, err
    assert "executing" not in out + err, "a chapter ran before the check"


def test_an_unknown_chapter_is_refused_before_any_runs(project, capsys):
    with kept(project / "_build"):
        assert book.main(["--root", str(project), "--chapters", "nosuch", "--no-site"]) == 1
    assert "nosuch" in capsys.readouterr().err


def test_an_unknown_profile_is_a_usage_error(project, capsys):
    with kept(project / "_build"), pytest.raises(SystemExit) as exit_:
        book.main(["--root", str(project), "--profile", "fast", "--chapters", "01_a"])
    assert exit_.value.code == 2 and "profile" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("chapter", "profile", "names"),
    [("nosuch", "smoke", ("chapter", "nosuch")), ("01_a", "fast", ("profile",))],
)
def test_chapter_parameters_of_an_unknown_chapter_or_profile(project, chapter, profile, names):
    with refused(*names):
        book.chapter_parameters(chapter, profile, project)


def test_an_unknown_param_is_refused_before_any_runs(project, capsys):
    (project / "notebooks" / "01_a.py").write_text(
        '# %% tags=["parameters"]\nseed = 0\n# %%\nraise SystemExit("no chapter may run")\n'
    )
    with kept(project / "_build"):
        argv = ["--root", str(project), "--chapters", "01_a", "--no-site", "-p", "sed", "1"]
        assert book.main(argv) == 1
    out, err = capsys.readouterr()
    assert "--param ['sed']: not parameters of 01_a" in err and "executing" not in out + err


def test_param_with_site_only_is_a_usage_error(project, capsys):
    with kept(project / "_build"), pytest.raises(SystemExit) as exit_:
        book.main(["--root", str(project), "--site-only", "-p", "seed", "1"])
    assert exit_.value.code == 2 and "--param" in capsys.readouterr().err
