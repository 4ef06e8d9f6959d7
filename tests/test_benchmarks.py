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
