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

from infoclust.experiment import Arm, Run, compare_arms, run_arms


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
