"""The benchmarks' own helpers run at tiny sizes (the benchmarks themselves are not tests)."""

from __future__ import annotations

import importlib.util
import json
import sys
import time

import pytest

from infoclust.book.catalogue import ROOT

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


def test_algorithm1_reach_reports_how_far_the_walks_went():
    import torch

    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    (r,) = _load("bench_perturb").algorithm1_reach(x, settings=((1.0, 0.2, 3),))
    assert 0 <= r["median_w2"] <= r["q90_w2"] <= 1.0 and sum(r["ends"].values()) == 3
    assert r["median_steps"] <= 3 and r["images_per_cpu_second"] > 0


@pytest.mark.filterwarnings("ignore::infoclust.utils.ConvergenceWarning")  # 20 projection iterations
def test_chapter9_pools_report_a_rate_per_g():
    import torch

    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    out = _load("bench_perturb").chapter9_pools(x, 1, torch.device("cpu"))
    assert set(out) == {"ADef", "Algorithm 1", "projected Sinkhorn"}
    for r in out.values():
        assert r["images_per_second"] > 0 and r["cpu_seconds_per_1000"] > 0 and r["before"] > 0


def test_common_best_time_and_results_file(tmp_path):
    common = _load("_common")
    calls = []
    seconds, result = common.best_time(lambda: calls.append(1) or len(calls), repeats=3, warmup=1)
    assert seconds >= 0 and result == 4 and len(calls) == 4
    path = common.write_results("bench_x", {"rate": 1.5}, folder=tmp_path)
    assert json.loads(path.read_text()) == {"rate": 1.5}


def test_hostile_counts_judges_as_the_tests_do():
    from test_hostile_common import Case

    from infoclust.utils import check_int

    judged = [
        Case("refused", lambda: check_int("n", "3", 1), names=("n",)),
        Case("accepted", lambda: 1, names=("n",)),
        Case("valid", lambda: 1.0, expect="works"),
        Case("nan", lambda: float("nan"), expect="works"),
        Case("other", lambda: [][0], names=("n",)),
        Case("slow", lambda: time.sleep(3), expect="works"),
    ]
    got = [_load("hostile_counts").outcome(c, seconds=1)[0] for c in judged]
    assert got == ["clear", "silent", "correct", "silent", "unclear", "hang"]


def test_peer_table_values_against_exact_w2():
    """Every peer of bench_wasserstein's table, at its finest default setting, on 3 digit pairs:
    the exact solvers agree with w2_exact to rounding, the entropic ones within 10 %; the table
    picks per tier only runs that meet it (a unit slip, e.g. GeomLoss's |x - y|^2 / 2, fails here)."""
    import torch

    import infoclust as ic
    from infoclust.wasserstein import w2_exact

    bench = _load("bench_wasserstein")
    x, _ = ic.load_dataset("mnist5k", n=6, seed=0)
    a, b = x[:3], x[3:]
    exact = w2_exact(a, b).numpy()
    ladders = {name: solver[2][-1:] for name, solver in bench.SOLVERS.items()}
    if not bench._has_geomloss():
        ladders.pop("geomloss SamplesLoss (tensorized)")
    deformed = bench.deformation_pairs(a, magnitudes=(1.0,))[1.0]
    assert deformed.shape == a.shape and (deformed >= 0).all() and not torch.equal(deformed, a)
    small = {1.0: (a, deformed, w2_exact(a, deformed).numpy())}
    table = bench.peer_table(a, b, exact, ladders=ladders, small=small)
    assert {r["solver"] for r in table["runs"]} == set(ladders)
    for run in table["runs"]:
        tol = 1e-6 if run["solver"] in bench.EXACT else 0.10
        assert run["max error"] <= tol, run
        assert run["pairs/s"] > 0
    for tier, (above, limit) in bench.TIERS.items():
        for run in table["tiers"][tier].values():
            key = "mean error" if above == 0 else "mean error W2 > 2 px"
            assert run is None or run[key] <= limit
    assert set(table["small"]) == set(ladders)
    for name in bench.EXACT:
        assert table["small"][name]["mean error"][1.0] <= 1e-6


def test_iic_flops_per_pair_match_a_hand_count():
    """The small trunk at 12 px, chapter 3's batches: convolutions (conv1 has no input gradient),
    sub-heads and joint counts, forward and backward, per pair, over one over- and two main passes."""
    import torch

    from infoclust.iic import IIC

    bench = _load("bench_iic")
    x = torch.rand(32, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    model = IIC(**bench.CPU_RECIPES["03"], epochs=1, device="cpu", verbose=False).fit(x)
    per_image = 1 + 1 / 4  # E(x) once per image, E(g x) for each of the 4 repeats
    convs = [(1, 16, 12), (16, 32, 6), (32, 64, 3)]  # in, out channels, side; 3 x 3 kernels
    macs = [i * o * 9 * s * s for i, o, s in convs]
    trunk = 2 * per_image * (sum(macs) + macs[0] + 2 * sum(macs[1:]))  # forward, weight and input grads
    heads = [2 * per_image * 3 * 576 * 5 * k + 2 * 3 * 5 * k * k for k in (50, 10, 10)]  # schedule
    expected = trunk + sum(heads) / 3
    assert bench.flops_per_pair(model, x) == pytest.approx(expected, rel=0.01)
    assert bench.matmul_peak(64, 1) > 0
