"""Hostile results files and recorded results (issue 22, item 5): one schema, checked when read and recorded.

A results file whose value is NaN showed as a claim that holds; a value that is not a number
or a ``holds`` that is not a boolean crashed ``make site`` without naming the file. Each such
file is now refused by :func:`read_results_file` naming the file, the result and the field, and
the ledger page marks it like a damaged file; the file itself is left as it was.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_hostile_common import kept, refused

from infoclust.book import pages as book
from infoclust.book.ledger import Ledger, ResultsFileError, read_results_file


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A one-chapter project whose results folder holds a good results file of chapter 01_a."""
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: notebooks/01_a\n  - file: book/ledger\n"
    )
    results = tmp_path / "results"
    monkeypatch.setenv("INFOCLUST_RESULTS_DIR", str(results))
    ledger = Ledger.start("01_a", profile="smoke", seed=0, device="cpu")
    ledger.record("accuracy", 0.9, paper=0.95, claim="it clusters", holds=True, seconds=1.0)
    return tmp_path, results


def _damage(results, **fields) -> None:
    path = results / "01_a.json"
    run = json.loads(path.read_text())
    run["results"][0].update(fields)
    path.write_text(json.dumps(run))  # json writes NaN as NaN, as json.dumps of a float nan does


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("value", float("nan")),
        ("value", float("inf")),
        ("value", "0.9"),
        ("value", None),
        ("value", True),
        ("holds", "yes"),
        ("holds", 1),
        ("paper", float("nan")),
        ("paper", "95 %"),
        ("seconds", "1 s"),
        ("name", 3),
        ("name", ""),
        ("unit", None),
    ],
)
def test_a_damaged_result_is_named_and_marked(project, field, value):
    root, results = project
    _damage(results, **{field: value})
    named = ("01_a.json", "accuracy" if field != "name" else "result 0", field)
    with kept(results):
        with refused(*named, types=(ResultsFileError,)):
            read_results_file(results / "01_a.json")
        page = book.ledger_page(results, root, "smoke")  # make site: no crash, the file marked
        assert "`01_a` (unreadable)" in page and field in page, page
        assert "| yes |" not in page, "a damaged result shows as a claim that holds"


def test_a_nan_run_time_is_damaged(project):
    root, results = project
    path = results / "01_a.json"
    run = json.loads(path.read_text())
    run["seconds"] = float("nan")
    path.write_text(json.dumps(run))
    with kept(results), refused("01_a.json", "seconds", types=(ResultsFileError,)):
        read_results_file(path)


@pytest.mark.parametrize(
    ("kw", "names"),
    [
        ({"value": float("nan")}, ("value",)),
        ({"value": "0.9"}, ("value",)),
        ({"value": 0.9, "holds": "no"}, ("holds",)),
        ({"value": 0.9, "paper": float("nan")}, ("paper",)),
        ({"value": 0.9, "seconds": "fast"}, ("seconds",)),
    ],
)
def test_record_refuses_what_the_file_could_not_hold(project, kw, names):
    _, results = project
    ledger = Ledger.start("01_a", profile="smoke", seed=0, device="cpu")
    with refused(*names):
        ledger.record("bad", **kw)


def test_record_takes_numpy_and_torch_scalars(project):
    import torch

    _, results = project
    ledger = Ledger.start("01_a", profile="smoke", seed=0, device="cpu")
    ledger.record("np", np.float32(0.5), paper=np.float64(0.25), holds=np.bool_(True), seconds=np.int64(2))
    ledger.record("torch", torch.tensor(0.75), holds=torch.tensor(False))
    rows = {r["name"]: r for r in read_results_file(results / "01_a.json")["results"]}
    assert rows["np"]["value"] == 0.5 and rows["np"]["holds"] is True and rows["np"]["paper"] == 0.25
    assert rows["torch"]["value"] == 0.75 and rows["torch"]["holds"] is False
