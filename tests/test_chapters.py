"""Every chapter in _toc.yml: skeleton, smoke run, reproducible outputs (nbval), clear errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import jupytext
import matplotlib
import nbformat
import papermill as pm
import pytest
import torch
import yaml

from infoclust.book.catalogue import PROFILES, ROOT, chapter_defaults, chapter_parameters, chapters
from infoclust.book.runs import execute_chapter, kernel_environment
from infoclust.book.chapter import INJECTED_HEADER, check_parameters, parameters_of
from infoclust.data import DATASETS
from infoclust.utils import ParameterError

CHAPTERS = chapters()
SECTIONS = (
    "What you will learn",
    "The idea",
    "Running it",
    "Results beside the paper",
    "Exercises",
    "References",
)


def _source(chapter: str) -> nbformat.NotebookNode:
    return jupytext.read(ROOT / "notebooks" / f"{chapter}.py")


def test_toc_lists_chapters():
    assert CHAPTERS[0] == "01_kmeans"
    assert CHAPTERS == sorted(CHAPTERS)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_skeleton(chapter):
    nb = _source(chapter)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    for name in ("seed", "device", "profile"):
        assert f"\n{name} = " in "\n" + params[0].source, f"parameters cell lacks {name}"
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    positions = [markdown.find(f"## {s}") for s in SECTIONS]
    assert all(p >= 0 for p in positions), dict(zip(SECTIONS, positions))
    assert positions == sorted(positions), "skeleton sections out of order"
    assert "{bibliography}" in markdown
    profiles = yaml.safe_load((ROOT / "notebooks" / "profiles.yml").read_text())[chapter]
    assert set(profiles) == {"smoke", "default", "full"}
    for cell in nb.cells:
        if cell.cell_type == "code" and "figure" in cell.metadata.get("mystnb", {}):
            name = cell.metadata["mystnb"]["figure"]["name"]
            assert cell.source.rstrip().endswith("plt.show()"), f"figure {name} does not end with plt.show()"
    checked = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("# NBVAL_CHECK_OUTPUT")]
    assert checked, "no cell marked NBVAL_CHECK_OUTPUT: nothing would be compared on rerun"
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    setup = code[code.index(params[0].source) + 1]
    assert re.search(rf'ic\.book\.start\(\s*"{chapter}",\s*globals\(\)', setup), (
        "the set-up cell must begin the run with ic.book.start(chapter, globals(), ...)"
    )
    assert "ic.check_" not in "\n".join(code), "ic.book.start checks the parameters, not ic.check_* lines"
    assert "{include} ../book/running.md" in markdown, "'Running it' must include the shared book/running.md"
    assert set(chapter_defaults(chapter)) >= {k for p in profiles.values() for k in (p or {})}, (
        "notebooks/profiles.yml sets a name that is not a parameter"
    )


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_smoke_run(chapter, smoke):
    nb = nbformat.read(smoke(chapter), as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    for cell in nb.cells:
        if cell.cell_type == "code" and "figure" in cell.metadata.get("mystnb", {}):
            images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
            name = cell.metadata["mystnb"]["figure"]["name"]
            assert len(images) == len(cell.outputs) == 1, (
                f"figure {name} has {len(images)} images and {len(cell.outputs)} outputs: a figure cell only "
                f"draws (print, glue and records go elsewhere)"
            )
    results = json.loads((smoke(chapter).parent.parent / "results" / f"{chapter}.json").read_text())
    assert results["profile"] == "smoke" and results["results"], "the chapter recorded no result"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_outputs_reproduce(chapter, smoke, tmp_path):
    """nbval reruns the executed notebook; NBVAL_CHECK_OUTPUT cells must print the same text."""
    nb_path = smoke(chapter)
    # the build's kernel environment: its thread settings (OpenBLAS and torch threads change the
    # order of sums, and so the last digits the checked cells print)
    env = kernel_environment(tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "-p",
            "no:cacheprovider",
            "-q",
            "--rootdir",
            str(tmp_path),
            str(nb_path),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def _papermill_error(chapter: str, given: dict, tmp_path) -> pm.PapermillExecutionError:
    """The error of the chapter's smoke run with ``given`` on top, executed as the build does."""
    src = tmp_path / f"{chapter}.source.ipynb"
    jupytext.write(_source(chapter), src)
    params = {**chapter_parameters(chapter, "smoke"), **given}
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(
            str(src),
            str(tmp_path / "out.ipynb"),
            parameters=params,
            cwd=str(ROOT),
            kernel_name="python3",
            progress_bar=False,
        )
    return err.value


@pytest.fixture
def in_process(monkeypatch):
    """Run a chapter's first cells in this process as papermill would, up to its set-up cell.

    The namespace gets the parameters cell, then the injected cell (papermill's ``# Parameters``
    header and plain assignments), then the set-up cell, with IPython's input history ``In``
    that ``ic.book.start`` reads. Torch's thread count and matplotlib's style are restored.
    """
    monkeypatch.chdir(ROOT)
    threads = torch.get_num_threads()

    def run(chapter: str, given: dict) -> None:
        cells = [c for c in _source(chapter).cells if c.cell_type == "code"]
        i = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
        params, setup = cells[i].source, cells[i + 1].source
        values = {**chapter_parameters(chapter, "smoke"), **given}
        injected = INJECTED_HEADER + "\n" + "\n".join(f"{k} = {v!r}" for k, v in values.items())
        namespace: dict = {"In": ["", params, injected, setup]}
        with matplotlib.rc_context():
            exec(params, namespace)
            exec(injected, namespace)
            exec(setup, namespace)

    yield run
    torch.set_num_threads(threads)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_bad_device_names_parameter(chapter, in_process):
    with pytest.raises(ParameterError, match="device"):
        in_process(chapter, {"device": "no-such-device"})


def test_bad_device_stops_a_papermill_run(tmp_path):
    err = _papermill_error("01_kmeans", {"device": "no-such-device"}, tmp_path)
    assert err.ename == "ParameterError"
    assert "device" in err.evalue


# One cheap chapter: its set-up cell rejects what papermill would otherwise let through.
BAD_PARAMETERS = {
    "misspelt name": ({"n_image": 8}, "n_image is not a parameter of 05_deformation; did you mean n_images?"),
    "string boolean": ({"download": "no"}, "download='no' must be True or False"),
    # sigmas=2.0 is accepted (as [2.0]), so the bad device is what fails
    "scalar for a list": ({"sigmas": 2.0, "device": "no-such-device"}, "device="),
}


@pytest.mark.parametrize("case", list(BAD_PARAMETERS))
def test_bad_parameters_stop_the_setup(case, in_process):
    given, message = BAD_PARAMETERS[case]
    with pytest.raises(ParameterError) as err:
        in_process("05_deformation", given)
    assert str(err.value).startswith(message), str(err.value)


@pytest.mark.parametrize(
    ("chapter", "given", "name"),
    [
        ("01_kmeans", {"n_init": "3"}, "n_init"),
        ("01_kmeans", {"seed": None}, "seed"),
        ("02_dim", {"epochs": 1.5}, "epochs"),
        ("06_sinkhorn", {"dataset": "digits"}, "dataset"),
        ("07_adef", {"test_fraction": 1.0}, "test_fraction"),
    ],
)
def test_a_bad_parameter_is_named_at_set_up(in_process, chapter, given, name):
    """The hostile chapter cases: each chapter's own checks name the parameter before any work."""
    with pytest.raises(ParameterError, match=rf"^{name}\b"):
        in_process(chapter, given)


def test_one_ablation_seed_is_refused_before_training(in_process):
    """Chapter 3's ablation needs two paired seeds for an interval (0 skips it): said at set-up."""
    with pytest.raises(ParameterError, match=r"^ablation_seeds=1: .*0 skips the ablation"):
        in_process("03_iic", {"ablation_seeds": 1})


@pytest.mark.parametrize("given", [-1, 1, 39])
def test_too_few_distributed_images_are_refused_before_training(in_process, given):
    """Chapter 3's two-process check trains on whole batches (0 skips it): said at set-up."""
    message = r" must be in \[0, inf\)" if given < 0 else r": .* at least batch_size=40 images \(0 skips it\)"
    with pytest.raises(ParameterError, match=rf"^distributed_images={given}{message}"):
        in_process("03_iic", {"distributed_images": given, "batch_size": 40})


def test_bad_parameters_stop_a_papermill_run(tmp_path):
    """The injected cell reaches the check as papermill writes it (one case end to end)."""
    given, message = BAD_PARAMETERS["misspelt name"]
    err = _papermill_error("05_deformation", given, tmp_path)
    assert err.ename == "ParameterError"
    assert err.evalue.startswith(message), err.evalue


@pytest.mark.parametrize("chapter", CHAPTERS)
@pytest.mark.parametrize("profile", PROFILES)
def test_profiles_pass_the_parameter_checks(chapter, profile):
    """Every profile's values have the types of the parameters cell's defaults (no kernel needed)."""
    nb = _source(chapter)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    defaults = parameters_of(cell.source)
    given = chapter_parameters(chapter, profile)
    namespace = {**{k: p.default for k, p in defaults.items()}, **given}
    check_parameters(namespace, defaults, list(given), chapter=chapter)


def _listed_data_sets(chapter: str) -> list[str]:
    """The data sets the parameters cell's comment offers: ``dataset = "..."  # a | b | c (...)``."""
    source = (ROOT / "notebooks" / f"{chapter}.py").read_text()
    line = re.search(r"^dataset = .*#(.*)$", source, re.MULTILINE)
    return re.findall(r"[\w-]+", line[1].split("(")[0]) if line else []


@pytest.mark.parametrize("chapter", [c for c in CHAPTERS if _listed_data_sets(c)])
def test_listed_data_sets_are_data_sets(chapter):
    assert set(_listed_data_sets(chapter)) <= set(DATASETS), _listed_data_sets(chapter)


def test_wasserstein_chapter_runs_on_digits(tmp_path):
    """Chapter 4 offers ``dataset digits``: its smoke run on 8 x 8 digits must finish (it crashed on a
    maximum over the empty set of pairs more than 2 px apart)."""
    assert "digits" in _listed_data_sets("04_wasserstein")
    nb = nbformat.read(
        execute_chapter("04_wasserstein", "smoke", tmp_path, parameters={"dataset": "digits"}),
        as_version=4,
    )
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    results = json.loads((tmp_path / "results" / "04_wasserstein.json").read_text())
    assert results["results"]
