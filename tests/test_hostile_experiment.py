"""Hostile inputs of the paired-comparison API (issue 22, item 6): compare_arms and run_arms.

``compare_arms(scale=-100)`` turned "improves" into "hurts", ``scale=0`` gave "cannot tell"
with a detectable effect of 0, a seed present twice in one arm was dropped silently, and a
recipe with a ``checkpoint`` made every run write over one file: each is now refused, naming
the argument, before anything runs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_hostile_common import kept, refused

from infoclust.experiment import Arm, Run, collapse_floor, collapsed, compare_arms, near_collapse, run_arms


def _runs(name: str, accs, seeds=None) -> list[Run]:
    seeds = range(len(accs)) if seeds is None else seeds
    empty = np.zeros(0)
    return [Run(name, s, a, 0.5, 0.5, 1.0, empty, empty, empty) for s, a in zip(seeds, accs)]


RUNS = {"base": _runs("base", [0.90, 0.91, 0.92, 0.90]), "new": _runs("new", [0.95, 0.96, 0.96, 0.94])}


@pytest.mark.parametrize("scale", [-100, 0, float("nan"), float("inf"), "100", None])
def test_scale_must_be_positive(scale):
    with refused("scale"):
        compare_arms(RUNS, "base", scale=scale)


def test_a_seed_twice_in_one_arm_is_refused():
    runs = {**RUNS, "new": _runs("new", [0.95, 0.96, 0.96, 0.94, 0.5], seeds=[0, 1, 2, 3, 3])}
    with refused("new", "[3]"):
        compare_arms(runs, "base")


def test_a_seed_twice_in_the_reference_is_refused():
    runs = {**RUNS, "base": _runs("base", [0.90, 0.91, 0.92, 0.90], seeds=[0, 0, 1, 2])}
    with refused("base", "[0]"):
        compare_arms(runs, "base")


@pytest.mark.parametrize("where", ["recipe", "arm"])
def test_a_checkpoint_in_the_recipe_is_refused(tmp_path, where):
    target = tmp_path / "one.pt"
    target.write_bytes(b"a previous run's checkpoint")
    recipe = {"n_clusters": 2, "epochs": 1, "batch_size": 4, "device": "cpu", "trunk": "small"}
    params = {"checkpoint": str(target)}
    arms = [Arm("a", params=params if where == "arm" else {}), Arm("b")]
    recipe = {**recipe, **(params if where == "recipe" else {})}
    x, y = torch.rand(8, 1, 8, 8), torch.arange(8) % 2
    with kept(tmp_path), refused("checkpoint"):
        run_arms(x, y, arms, [0, 1], recipe, n_jobs=1, verbose=False)


# Collapses (chapter 09): one run far below the others is counted apart, its pair left out.
COLLAPSE = {
    "base": _runs("base", [0.96, 0.95, 0.96, 0.955, 0.96]),
    "g": _runs("g", [0.962, 0.953, 0.44, 0.957, 0.96]),  # seed 2 collapsed
    "worse": _runs("worse", [0.30, 0.31, 0.955, 0.40, 0.45]),  # four of five collapsed
}


def test_a_collapsed_run_is_counted_and_its_pair_left_out():
    assert collapsed(COLLAPSE, "base", 5.0) == {"base": [], "g": [2], "worse": [0, 1, 3, 4]}
    with_all = compare_arms(COLLAPSE, "base")
    without = compare_arms(COLLAPSE, "base", drop=5.0)
    assert with_all["g"].n == 5 and with_all["g"].low < -20  # the one run widens the interval
    assert without["g"].n == 4 and -0.5 < without["g"].low < without["g"].high < 0.5
    kept_pairs = [0, 1, 3, 4]
    g, b = ([100 * r.acc for r in COLLAPSE[a] if r.seed in kept_pairs] for a in ("g", "base"))
    assert without["g"].mean == pytest.approx(np.mean(np.subtract(g, b)))
    assert "worse" not in without  # one pair left: no interval, and collapsed() names why


def test_a_collapse_of_the_reference_leaves_its_pair_out_of_every_arm():
    runs = {**COLLAPSE, "base": _runs("base", [0.96, 0.50, 0.96, 0.955, 0.96])}
    assert collapsed(runs, "base", 5.0)["base"] == [1]  # the median is not moved by it
    assert compare_arms(runs, "base", drop=5.0)["g"].n == 3  # seeds 0, 3, 4


def test_pooled_comparison_keeps_an_arm_with_one_pair_and_shares_the_spread():
    pooled = compare_arms(COLLAPSE, "base", drop=5.0, pooled=True)
    alone = compare_arms(COLLAPSE, "base", drop=5.0)
    assert pooled["worse"].n == 1 and pooled["worse"].sd == pooled["g"].sd  # seed 2 alone is left
    assert pooled["g"].mean == alone["g"].mean
    assert pooled["worse"].mean == pytest.approx(95.5 - 96.0)
    assert pooled["g"].sd == pytest.approx(alone["g"].sd)  # the only arm with spread to pool


def test_pooled_comparison_with_no_spread_left_returns_no_interval():
    runs = {"base": COLLAPSE["base"], "worse": COLLAPSE["worse"]}
    assert compare_arms(runs, "base", drop=5.0, pooled=True) == {}
    with refused("shares 1 seeds"):
        compare_arms({"base": COLLAPSE["base"], "one": _runs("one", [0.9])}, "base", pooled=True)


def test_near_collapse_names_the_runs_within_the_band_of_the_floor():
    runs = {**COLLAPSE, "edge": _runs("edge", [0.905, 0.96, 0.96, 0.96, 0.895])}  # floor 91.0
    near = near_collapse(runs, "base", 5.0, 2.0)
    assert near["edge"] == [0, 4] and near["g"] == [] and near["base"] == []
    assert collapsed(runs, "base", 5.0)["edge"] == [0, 4]
    assert near_collapse(runs, "base", 5.0, 0.0)["edge"] == []


@pytest.mark.parametrize("drop", [0, -1, float("nan"), "5"])
def test_the_collapse_drop_must_be_positive(drop):
    with refused("drop"):
        collapsed(COLLAPSE, "base", drop)
    with refused("drop"):
        compare_arms(COLLAPSE, "base", drop=drop)


def test_the_collapse_band_must_not_be_negative():
    with refused("band"):
        near_collapse(COLLAPSE, "base", 5.0, -1.0)


def test_the_collapse_floor_is_the_reference_median_less_drop():
    assert collapse_floor(COLLAPSE, "base", 5.0) == pytest.approx(91.0)  # median 96.0
    with refused("drop"):
        collapse_floor(COLLAPSE, "base", 0.0)
