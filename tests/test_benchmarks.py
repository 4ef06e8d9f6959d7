"""The benchmarks' own helpers run at tiny sizes (the benchmarks themselves are not tests)."""
from __future__ import annotations

import importlib.util
import json
import sys

from infoclust.book.build import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))  # where the scripts import _common from


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_projections_per_second_reports_a_rate():
    out = _load("bench_perturb").projections_per_second(4, 12, eps=0.3, max_iter=5, repeats=1, device="cpu")
    assert out["images_per_second"] > 0 and out["seconds"] > 0
    assert 1 <= out["n_iter"] <= 5 and out["device"] == "cpu"


def test_common_best_time_and_results_file(tmp_path):
    common = _load("_common")
    calls = []
    seconds, result = common.best_time(lambda: calls.append(1) or len(calls), repeats=3, warmup=1)
    assert seconds >= 0 and result == 4 and len(calls) == 4
    path = common.write_results("bench_x", {"rate": 1.5}, folder=tmp_path)
    assert json.loads(path.read_text()) == {"rate": 1.5}


def test_hostile_battery_table_counts_both_runs(tmp_path):
    battery = _load("hostile_battery")
    row = lambda i, area, outcome, detail="": {"id": i, "area": area, "owner": "build", "outcome": outcome,  # noqa: E731
                                                "detail": detail}
    before = {"summary": {"commit": "aaa"}, "cases": [row("a", "utils", "silent"), row("b", "utils", "unclear",
                                                      "no answer within 60 s"), row("c", "chapters", "lost")]}
    after = {"summary": {"commit": "bbb"}, "cases": [row("a", "utils", "clear"), row("b", "utils", "clear"),
                                                     row("c", "chapters", "lost")]}
    chapters = {"summary": {"commit": "ccc"}, "cases": [row("c", "chapters", "correct")]}
    paths = []
    for name, data in (("before", before), ("after", after), ("chapters", chapters)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(data))
    table = battery.write_table(*paths, out=tmp_path / "table.json")
    assert json.loads((tmp_path / "table.json").read_text()) == table
    assert {"commit": "aaa", "tried": 3, "silent": 1, "unclear": 1, "lost": 1, "hang": 1}.items() <= \
        table["runs"]["before"].items()
    assert table["runs"]["after"]["chapters_from"] == "ccc"
    assert (table["runs"]["after"]["clear"], table["runs"]["after"]["correct"], table["runs"]["after"]["lost"]) == \
        (2, 1, 0)
    assert table["cases"] == {"a": ["silent", "clear"], "b": ["unclear", "clear"], "c": ["lost", "correct"]}
