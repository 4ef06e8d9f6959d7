"""infoclust.book.start: a chapter's parameters checked against its parameters cell (no kernel needed)."""

from __future__ import annotations

import pytest

import infoclust as ic
from infoclust.book.chapter import Parameter, check_parameters, parameters_of, start

CELL = """
dataset = "mnist5k"  # which data
n_images: int | None = None  # None: all
n_clusters = 10
lr = 1e-3
download = False
regs = [2.0, 4.0]
ks = [5, 10]
data_root = None
seed = 0
device = "cpu"
profile = "custom"
"""


def _namespace(**values):
    ns = {k: p.default for k, p in parameters_of(CELL).items()}
    ns.update(values)
    return ns


def test_types_come_from_the_defaults_and_annotations():
    p = parameters_of(CELL)
    assert p["n_clusters"] == Parameter("n_clusters", 10, int)
    assert p["lr"].kind is float and p["download"].kind is bool and p["dataset"].kind is str
    assert (p["regs"].kind, p["regs"].item) == (list, float) and p["ks"].item is int
    assert (p["n_images"].kind, p["n_images"].optional) == (int, True)
    assert p["data_root"].kind is None
    with pytest.raises(ValueError, match="only assign literals"):
        parameters_of("import os\n")
    with pytest.raises(ValueError, match="must be a literal"):
        parameters_of("x = len([])\n")


def test_values_are_checked_and_converted_in_place():
    ns = _namespace(lr=1, regs=8, ks=(3,), n_images=500)
    values = check_parameters(ns, parameters_of(CELL))
    assert ns["lr"] == 1.0 and isinstance(ns["lr"], float)
    assert ns["regs"] == [8.0] and ns["ks"] == [3] and values["n_images"] == 500
    assert check_parameters(_namespace(data_root="/x"), parameters_of(CELL))["data_root"] == "/x"


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("download", "no", "^download='no' must be True or False"),
        ("n_clusters", 3.5, "^n_clusters=3.5 must be an integer"),
        ("n_clusters", True, "^n_clusters=True must be an integer"),
        ("lr", "fast", "^lr='fast' must be a number"),
        ("dataset", 3, "^dataset=3 must be a string"),
        ("regs", [1.0, "x"], r"^regs\[1\]='x' must be a number"),
        ("regs", "[1.0, 2.0]", "^regs='.*' is a string, not a list.*-y"),
        ("n_images", 2.5, "^n_images=2.5 must be an integer"),
    ],
)
def test_wrong_types_name_the_parameter(name, value, message):
    with pytest.raises(ic.ParameterError, match=message):
        check_parameters(_namespace(**{name: value}), parameters_of(CELL))


def test_unknown_injected_names_are_rejected_with_the_closest():
    with pytest.raises(
        ic.ParameterError,
        match=r"^n_cluster is not a parameter of 01_x; did you mean n_clusters\? "
        r"Its parameters: data_root, dataset, device",
    ):
        check_parameters(_namespace(), parameters_of(CELL), ["seed", "n_cluster"], chapter="01_x")


def test_choices_and_bounds():
    params = parameters_of(CELL)
    check_parameters(
        _namespace(ks=[2, 3]),
        params,
        bounds={"ks": "[2, inf)", "lr": "(0, 1)"},
        choices={"dataset": ("mnist5k", "digits")},
    )
    with pytest.raises(ic.ParameterError, match=r"^ks\[0\]=1 must be in \[2, inf\)"):
        check_parameters(_namespace(ks=[1, 3]), params, bounds={"ks": "[2, inf)"})
    with pytest.raises(ic.ParameterError, match=r"^lr=1.0 must be in \(0, 1\)"):
        check_parameters(_namespace(lr=1.0), params, bounds={"lr": "(0, 1)"})
    with pytest.raises(ic.ParameterError, match="^dataset='cifar10' is not one of"):
        check_parameters(_namespace(dataset="cifar10"), params, choices={"dataset": ("mnist5k",)})
    assert (
        check_parameters(_namespace(n_images=None), params, bounds={"n_images": "[2, inf)"})["n_images"]
        is None
    )
    with pytest.raises(ValueError, match="not a parameter"):
        check_parameters(_namespace(), params, bounds={"epochs": "[1, inf)"})
    with pytest.raises(ValueError, match="not an interval"):
        check_parameters(_namespace(), params, bounds={"lr": ">= 0"})


def test_start_reads_the_parameters_cell_and_papermills_cell_from_the_history(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INFOCLUST_RESULTS_DIR", str(tmp_path))
    injected = '# Parameters\nn_clusters = 4\nregs = 8.0\nprofile = "smoke"\n'
    ns = _namespace(n_clusters=4, regs=8.0, profile="smoke")
    ns["In"] = ["", "import infoclust as ic", CELL, injected, "ledger = ic.book.start('01_x', globals())"]
    ledger = start("01_x", ns)
    assert ledger.profile == "smoke" and ledger.parameters["regs"] == [8.0] and ns["regs"] == [8.0]
    assert "01_x: profile smoke, seed 0" in capsys.readouterr().out
    ns["In"][3] = "# Parameters\nn_cluster = 4\n"
    with pytest.raises(
        ic.ParameterError, match="^n_cluster is not a parameter of 01_x; did you mean n_clusters"
    ):
        start("01_x", ns)
    ns["In"] = ["", CELL, "x = 1", "ledger = ic.book.start('01_x', globals())"]  # by hand in Jupyter
    assert start("01_x", _namespace(In=ns["In"])).profile == "custom"
    with pytest.raises(RuntimeError, match="no parameters cell"):
        start("01_x", {"In": ["", "ledger = ..."]})


def test_without_history_the_parameters_come_from_the_chapter_file(tmp_path, monkeypatch):
    """nbval reruns cells without storing them in In: the chapter's source file serves instead."""
    (tmp_path / "_toc.yml").write_text("root: intro\n")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_x.py").write_text(
        '# %% [markdown]\n# # X\n\n# %% tags=["parameters"]\n' + CELL + "\n# %%\nimport infoclust\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INFOCLUST_RESULTS_DIR", str(tmp_path / "results"))
    ns = _namespace(regs=8.0, In=["", "ledger = ic.book.start('01_x', globals())"])
    assert start("01_x", ns).parameters["regs"] == [8.0]
    with pytest.raises(ic.ParameterError, match="^download='no'"):
        start("01_x", _namespace(download="no", In=["", "..."]))
