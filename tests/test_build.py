"""The build loses nothing: interrupted, failing and concurrent builds leave the last good files as they were.

Every test here builds a throwaway two-chapter book in a temporary project root (the build
takes ``--root``), so that a chapter runs in seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infoclust.book import build as book
from infoclust.book.catalogue import ROOT
from infoclust.book.pages import ledger_page, ledger_problems, scan_results
from infoclust.book.runs import BuildLocked, build_lock, run_parameters
from infoclust.book.ledger import ResultsFileError, load_results

# One xdist worker for the module: the last good build (the ``good`` fixture, about 30 s) is made once.
pytestmark = pytest.mark.xdist_group("build")

CHAPTER = """# %% [markdown]
# # Chapter {name}

# %% tags=["parameters"]
value = 1.0  # the number recorded
{extra}seed = 0
device = "cpu"
profile = "custom"

# %%
import os
import pathlib
import time

import infoclust as ic

ledger = ic.book.start("{name}", globals())
ledger.record("value", value, claim="the value is positive", holds=value > 0)
control = pathlib.Path(os.environ.get("TINY_CONTROL", "/nonexistent"))
if (control / "pause_{name}").exists():  # the test interrupts the build here
    (control / "paused_{name}").write_text(str(os.getpid()))
    time.sleep(300)
if (control / "fail_{name}").exists():
    raise RuntimeError("told to fail")
ledger.record("second value", 2 * value)
"""


def _project(root: Path) -> Path:
    (root / "notebooks").mkdir(parents=True)
    (root / "book").mkdir()
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nparts:\n  - caption: Chapters\n    chapters:\n"
        "      - file: notebooks/01_a\n      - file: notebooks/02_b\n"
        "  - caption: Back matter\n    chapters:\n"
        "      - file: book/ledger\n      - file: book/environment\n"
    )
    (root / "_config.yml").write_text(
        'title: "Tiny"\nonly_build_toc_files: true\nexecute:\n  execute_notebooks: "off"\n'
    )
    (root / "book" / "intro.md").write_text("# Tiny book\n\nTwo chapters.\n")
    (root / "notebooks" / "profiles.yml").write_text(
        "01_a:\n  smoke: {value: 3.0}\n  default: {}\n  full: {}\n"
        "02_b:\n  smoke: {}\n  default: {}\n  full: {}\n"
    )
    (root / "notebooks" / "01_a.py").write_text(CHAPTER.format(name="01_a", extra=""))
    (root / "notebooks" / "02_b.py").write_text(
        CHAPTER.format(name="02_b", extra="download = False  # let the chapter download its data\n")
    )
    return root


def _env(control: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, TINY_CONTROL=str(control))


def _build(root: Path, *args: str, control: Path, sigint=signal.SIG_DFL, **kw) -> subprocess.Popen:
    """Start a build; ``sigint`` is its inherited SIGINT disposition (SIG_IGN: as under nohup or ``&``).

    Set explicitly, so that a test does not depend on how pytest itself was started (``make test &``
    hands every child an ignored SIGINT).
    """
    cmd = [sys.executable, "-m", "infoclust.book", "--root", str(root), "--profile", "smoke", *args]
    return subprocess.Popen(
        cmd,
        env=_env(control),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, sigint),
        **kw,
    )


def _files(root: Path) -> dict[str, bytes]:
    """Every executed notebook and results file of the build folder, by relative path."""
    build = root / "_build"
    return {
        str(p.relative_to(build)): p.read_bytes()
        for folder in ("notebooks", "results")
        for p in sorted((build / folder).glob("*"))
    }


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the build ended before {path.name}: {proc.communicate()}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError(f"{path.name} did not appear within {timeout} s")
        time.sleep(0.2)


def _gone(pid: int, timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A tiny project whose two chapters were built once, without a site: the last good build."""
    root = _project(tmp_path_factory.mktemp("good"))
    control = root / "control"
    control.mkdir()
    proc = _build(root, "--no-site", control=control)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out + err
    return root


@pytest.fixture
def project(good, tmp_path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(good, root)
    return root


# Each signal at one of the two points (Ctrl-C in the first chapter, a SIGTERM in the second):
# the build turns both into the same interruption, so the other two pairs add only minutes. Ctrl-C
# also reaches a build that inherited SIGINT as ignored (started with & from a script, or nohup).
@pytest.mark.parametrize(
    ("sig", "where", "inherited"),
    [
        (signal.SIGINT, "01_a", signal.SIG_DFL),
        (signal.SIGINT, "01_a", signal.SIG_IGN),
        (signal.SIGTERM, "02_b", signal.SIG_DFL),
    ],
    ids=["SIGINT-01_a", "SIGINT-01_a-nohup", "SIGTERM-02_b"],
)
def test_interrupt_keeps_the_last_good_files(project, where, sig, inherited):
    """Ctrl-C (SIGINT to the whole process group) or kill (SIGTERM to the build) while a chapter runs."""
    before = _files(project)
    control = project / "control"
    (control / f"pause_{where}").touch()
    proc = _build(project, "--no-site", control=control, sigint=inherited)
    _wait_for(control / f"paused_{where}", proc)
    kernel = int((control / f"paused_{where}").read_text())
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), out + err
    after = _files(project)
    for name in ("notebooks/02_b.ipynb", "results/02_b.json") + (
        ("notebooks/01_a.ipynb", "results/01_a.json") if where == "01_a" else ()
    ):
        assert after[name] == before[name], f"{name} changed"
    if where == "02_b":  # the chapter before the interrupt finished, so it was replaced
        assert after["results/01_a.json"] != before["results/01_a.json"]
    assert f"{where} interrupted" in err and f"failed/{where}.ipynb" in err, err
    partial = json.loads((project / "_build" / "failed" / f"{where}.results.json").read_text())
    assert [r["name"] for r in partial["results"]] == ["value"]  # kept for inspection, not in the ledger
    assert _gone(kernel), "the chapter's kernel survived the interrupt"
    assert not list((project / "_build" / ".running").glob("*"))
    with build_lock(project / "_build"):  # released
        pass


def test_failing_rerun_keeps_the_last_good_files(project):
    before = _files(project)
    (project / "control" / "fail_01_a").touch()
    proc = _build(project, control=project / "control")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    assert "01_a failed: cell" in err and "RuntimeError: told to fail" in err, err
    assert "failed/01_a.ipynb" in err
    assert _files(project) == before
    assert not (project / "_build" / "html").exists(), "a failed build must not render the site"
    nb = json.loads((project / "_build" / "failed" / "01_a.ipynb").read_text())
    assert any(o.get("ename") == "RuntimeError" for c in nb["cells"] for o in c.get("outputs", []))


def test_second_build_in_the_same_folder_stops_at_once(project):
    control = project / "control"
    (control / "pause_01_a").touch()
    first = _build(project, "--no-site", control=control)
    try:
        _wait_for(control / "paused_01_a", first)
        before = _files(project)
        start = time.monotonic()
        second = _build(project, "--no-site", "--chapters", "02_b", control=control)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 1 and time.monotonic() - start < 60
        assert "another build is using" in err and f"pid {first.pid}" in err, err
        assert _files(project) == before
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)


def test_lock_taken_over_when_its_build_died(tmp_path, capsys):
    (tmp_path / "build.lock").write_text(
        "pid 999999999, started long ago, command: python -m infoclust.book\n"
    )
    with build_lock(tmp_path):
        with build_lock(tmp_path):  # re-entrant in one process
            pass
        assert f"pid {os.getpid()}" in (tmp_path / "build.lock").read_text()
    assert "stale lock" in capsys.readouterr().err
    fd = os.open(tmp_path / "build.lock", os.O_RDWR)
    try:  # held by "another process": an flock on another open file description
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)
        os.pwrite(fd, b"pid 4242, started now, command: other build\n", 0)
        with pytest.raises(BuildLocked, match="pid 4242"):
            with build_lock(tmp_path):
                pass
    finally:
        os.close(fd)


def test_damaged_and_stray_results_are_named_and_marked(project):
    results = project / "_build" / "results"
    text = (results / "01_a.json").read_text()
    (results / "01_a.json").write_text(text[: len(text) // 2])  # cut off, like a killed writer
    (results / "notes.json").write_text('{"note": "not a chapter"}')
    with pytest.raises(ResultsFileError, match="01_a.json: not valid JSON"):
        load_results(results)
    page = ledger_page(results, project, "smoke")
    assert "`01_a` (unreadable)" in page and "not valid JSON (line" in page
    assert "`notes` (stray)" in page and "notes.json" in page
    assert "| 02\\_b | smoke |" in page and "| 01\\_a | – |" in page  # the rest of the ledger is there
    problems = ledger_problems(results, project)
    assert len(problems) == 2
    (results / "01_a.json").write_text(json.dumps({"chapter": "01_a", "results": []}))
    assert "not a chapter's results file (no profile" in ledger_page(results, project)
    (results / "01_a.json").unlink()
    assert "`01_a` (missing)" in ledger_page(results, project)


def test_results_of_another_profile_are_marked(project):
    """A smoke run's results in a default build's ledger: marked in the runs table and the warning."""
    results = project / "_build" / "results"
    page = ledger_page(results, project, "default")
    assert "- `01_a` (other profile): results of the 'smoke' profile, this build's is 'default'" in page
    assert page.count("**smoke profile**") == 2
    assert [c.status for c in scan_results(results, ["01_a", "02_b"], "default")] == ["other profile"] * 2
    assert "**smoke profile**" not in ledger_page(results, project, "smoke")


def test_site_only_renders_the_ledger_from_what_is_there(project):
    """No chapter executes; a damaged results file is marked on the page and the exit status is 1."""
    before = _files(project)
    results = project / "_build" / "results"
    (results / "01_a.json").write_text("{")
    proc = _build(project, "--site-only", control=project / "control")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, out + err
    assert "01_a (unreadable)" in err and "nothing executed" in out
    page = (project / "_build" / "html" / "book" / "ledger.html").read_text()
    assert "01_a.json: not valid JSON" in page and "02_b" in page
    before["results/01_a.json"] = b"{"
    assert _files(project) == before


def test_command_line_rejects_bad_chapter_names_before_running(project, capsys):
    before = _files(project)
    with pytest.raises(SystemExit) as exc:
        book.main(["--root", str(project), "--chapters"])
    assert exc.value.code == 2
    assert book.main(["--root", str(project), "--chapters", "02_b", "01_aa"]) == 1
    err = capsys.readouterr().err
    assert "not a chapter of _toc.yml: '01_aa' (did you mean '01_a'?)" in err
    assert _files(project) == before and not (project / "_build" / ".running").exists()


def test_download_goes_only_to_chapters_that_take_it(project):
    assert run_parameters("02_b", "full", project, download=True) == {
        "profile": "full",
        "download": True,
    }
    assert run_parameters("01_a", "full", project, download=True) == {"profile": "full"}
    assert run_parameters("01_a", "smoke", project) == {"value": 3.0, "profile": "smoke"}
