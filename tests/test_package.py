"""The library as a package: an sdist and a wheel build, the wheel asks for the library's dependencies
only, and installed into a fresh virtual environment it gives ``import infoclust`` and the ``infoclust``
command, which clusters a tiny folder.

Offline and fast, without a second copy of torch: the fresh environment is made with ``venv`` (no pip,
no packages), the wheel is installed into it by this environment's pip (``pip --python FRESH install
--no-deps --no-index``), and only then does the fresh environment get its dependencies, by a ``.pth``
file naming a folder of symbolic links to the packages of exactly the distributions the wheel requires
(its ``Requires-Dist`` without extras, followed transitively through this environment's metadata). So
the command runs with the library's dependencies and nothing else (no book, test or bench extra, and
not this checkout, whose editable install is not linked); the fresh environment's own site-packages
comes first on ``sys.path``, so ``import infoclust`` is the wheel's. (``venv --system-site-packages``
would not help: it exposes the base interpreter's packages, not this environment's.)

The build runs on a copy of the checkout's files (``git ls-files``, untracked ones included), so that
``build/`` and the egg-info stay out of the working tree; ``python -m build --no-isolation`` makes the
sdist and then the wheel from the sdist, which checks that the sdist holds everything the wheel needs.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from PIL import Image

import infoclust

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: Distributions of the extras (book, tests, benchmarks) that the library itself must not require.
EXTRAS_ONLY = {
    "pytest",
    "jupyter-book",
    "papermill",
    "ipykernel",
    "jupytext",
    "geomloss",
    "selenium",
    "pyyaml",
}


#: Run in the fresh environment: the file infoclust is imported from, the extras' modules found (none),
#: and ``python -m infoclust --version``.
PROBE = """
import importlib.util, runpy, sys
import infoclust
print(infoclust.__file__)
print([m for m in ("yaml", "pytest", "papermill", "jupytext") if importlib.util.find_spec(m)])
sys.argv = ["infoclust", "--version"]
runpy.run_module("infoclust", run_name="__main__")
"""


def _run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env={**env, "INFOCLUST_NUM_THREADS": "1"}, **kwargs
    )
    assert proc.returncode == 0, (
        f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    """The sdist and the wheel, built from a copy of the checkout's files."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("the build copies the checkout's files with git ls-files: not a git checkout here")
    tmp = tmp_path_factory.mktemp("package")
    listed = _run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT).stdout
    src = tmp / "src"
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "dist"), str(src)])
    (sdist,) = (tmp / "dist").glob("infoclust-*.tar.gz")
    (wheel,) = (tmp / "dist").glob("infoclust-*.whl")
    return {"sdist": sdist, "wheel": wheel, "tmp": tmp}


def _metadata(wheel: Path) -> tuple[str, str]:
    with zipfile.ZipFile(wheel) as z:
        info = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        points = next(n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt"))
        return z.read(info).decode(), z.read(points).decode()


def _requirements(metadata: str) -> list[Requirement]:
    """The wheel's Requires-Dist that hold without any extra."""
    reqs = [
        Requirement(line.split(":", 1)[1].strip())
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    ]
    return [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]


def test_wheel_requires_the_library_dependencies_only_and_has_the_command(dist):
    metadata, points = _metadata(dist["wheel"])
    assert re.search(rf"^Version: {re.escape(infoclust.__version__)}$", metadata, re.M)
    required = {canonicalize_name(r.name) for r in _requirements(metadata)}
    declared = {canonicalize_name(Requirement(d).name) for d in PYPROJECT["project"]["dependencies"]}
    assert required == declared and not required & EXTRAS_ONLY
    assert {"book", "test", "bench"} <= set(re.findall(r"^Provides-Extra: (\S+)$", metadata, re.M))
    assert re.search(r"^infoclust = infoclust\.__main__:main$", points, re.M)
    assert dist["wheel"].name.startswith(f"infoclust-{infoclust.__version__}-py3-none-any")


def test_sdist_holds_the_package_the_readme_and_the_version(dist):
    with tarfile.open(dist["sdist"]) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
        pkg_info = t.extractfile(f"infoclust-{infoclust.__version__}/PKG-INFO").read().decode()
    assert {"pyproject.toml", "README.md", "infoclust/__init__.py", "infoclust/cluster.py"} <= names
    assert f"Version: {infoclust.__version__}" in pkg_info


def _closure(requirements: list[Requirement]) -> list[md.Distribution]:
    """The installed distributions that ``requirements`` need, transitively (markers evaluated)."""
    seen: dict[str, md.Distribution] = {}
    todo = list(requirements)
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen[name] = md.distribution(name)
        todo += [
            r
            for r in map(Requirement, seen[name].requires or [])
            if r.marker is None or r.marker.evaluate({"extra": ""})
        ]
    return list(seen.values())


def _link_dependencies(dists: list[md.Distribution], folder: Path) -> None:
    """Symbolic links in ``folder`` to the top-level files and packages of ``dists``, metadata included."""
    folder.mkdir()
    for d in dists:
        site = Path(d.locate_file(""))
        for top in {f.parts[0] for f in d.files or [] if f.parts and f.parts[0] != ".."}:
            if not (folder / top).exists() and (site / top).exists():
                (folder / top).symlink_to(site / top)


def test_wheel_in_a_fresh_environment_runs_the_command(dist):
    tmp = dist["tmp"]
    fresh = tmp / "fresh"
    venv.create(fresh, with_pip=False)
    python, command = fresh / "bin" / "python", fresh / "bin" / "infoclust"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(dist["wheel"]),
        ]
    )
    site = fresh / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    metadata, _ = _metadata(dist["wheel"])
    _link_dependencies(_closure(_requirements(metadata)), tmp / "deps")
    (site / "infoclust_test_dependencies.pth").write_text(f"{tmp / 'deps'}\n")
    # one interpreter (each start imports torch): where infoclust comes from, no extra, and the version
    # from python -m infoclust --version (the console script below runs the same main)
    probe = _run([str(python), "-c", PROBE], cwd=tmp).stdout.splitlines()
    assert Path(probe[0]).is_relative_to(site) and probe[1] == "[]"
    assert probe[2] == f"infoclust {infoclust.__version__}"
    folder = tmp / "images"
    folder.mkdir()
    for i in range(6):
        Image.new("L", (10, 10), 40 * i).save(folder / f"{i}.png")
    args = ["--k", "2", "--epochs", "1", "--image-size", "8", "--device", "cpu", "--threads", "1", "--quiet"]
    _run([str(command), "cluster", str(folder), "--out", str(tmp / "out"), *args], cwd=tmp)
    assert len((tmp / "out" / "labels.csv").read_text().splitlines()) == 7


def test_the_book_environment_page_shows_the_version(tmp_path):
    from infoclust.book.pages import environment_page

    page = environment_page(tmp_path)
    assert f"| infoclust | {infoclust.__version__} |" in page


def test_environment_yml_installs_what_make_venv_installs():
    """conda is not on the test machines, so environment.yml cannot be solved here; what it asks pip for
    must be the Makefile's install line (which ``make test`` resolves), on the Makefile's Python."""
    import yaml

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    makefile = (ROOT / "Makefile").read_text()
    python = re.search(r"^PYTHON\s*\?=\s*python(\S+)", makefile, re.M).group(1)
    install = re.search(r"pip install --quiet --no-compile (.*)$", makefile, re.M).group(1).replace("'", "")
    (pip,) = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert f"python={python}" in env["dependencies"] and "pip" in env["dependencies"]
    assert " ".join(pip) == install
