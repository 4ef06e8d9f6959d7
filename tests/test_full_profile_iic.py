"""The full (GPU) profile of the IIC chapters 03 and 09, run on the CPU at tiny size.

The full profile is the paper's scale (its VGG trunk on 24 px inputs, batches of 140 images
x 5 repeats, all of MNIST and of Fashion-MNIST, ten seeds): hours on a GPU. These runs keep
every structural setting of it (``STRUCTURAL`` of ``tests/test_full_profiles.py``, which
runs the other chapters' full profiles the same way) and shrink only sizes: one batch of
images, one epoch, two seeds, one perturbation; no ablation, two-processes check, strength
sweep, perturbations alone, Fashion-MNIST or rerun check (the smoke profile runs them all, and
at full size they take the code path of the runs kept: a VGG run on 140 images costs about
35 s of one CPU core). MNIST is the tiny IDX set of the ``mnist_root`` fixture, read by
torchvision as the full profile reads the real one.
"""

from __future__ import annotations

import json

import nbformat
import pytest

from infoclust import iic
from infoclust.book.catalogue import chapter_defaults, chapter_parameters
from infoclust.book.runs import execute_chapter

from test_full_profiles import STRUCTURAL

SIZES = {
    # the ablation reruns the main fit's code path eight times (four arms, two seeds): skipped here
    # (the two-processes check: the distributed code is the trunk's, tested in test_distributed.py,
    # and in the smoke profile; here it costs two more VGG epochs and two process start-ups)
    "03_iic": dict(n_images=140, epochs=1, ablation_epochs=1, ablation_seeds=0, distributed_images=0),
    "09_iic_perturbations": dict(
        n_images=140,
        epochs=1,
        n_seeds=2,
        n_seeds_alone=0,  # the perturbations alone take the combined arms' code path
        talk_columns=["Algorithm 1"],  # the other columns are other g's on the same code path (smoke)
        pool_copies=1,
        attack_iter=2,
        proj_iter=5,
        alg1_radii=[],  # the sweep reruns the Algorithm 1 arm's code at other radii
        pool_sample=4,
        n_check=8,
        judge_epochs=1,
        fashion_images=0,  # Fashion-MNIST takes MNIST's code path (28 px grey images); tested in smoke
        check_rerun=False,  # the rerun is one more run of the baseline arm, whose runs are kept
    ),
}


@pytest.mark.parametrize("chapter", sorted(SIZES))
def test_full_profile_runs_on_tiny_data(chapter, mnist_root, tmp_path):
    full = chapter_parameters(chapter, "full")
    trunk = full.get("trunk") or iic.preset(full["preset"])["trunk"]
    assert (full["dataset"], trunk, full["input_size"]) == ("mnist", "vgg", 24), "the paper's setting"
    assert set(SIZES[chapter]) <= set(chapter_defaults(chapter)) and not set(SIZES[chapter]) & STRUCTURAL
    params = {**SIZES[chapter], "data_root": str(mnist_root)}
    notebook = execute_chapter(chapter, "full", tmp_path, parameters=params)
    cells = nbformat.read(notebook, as_version=4).cells
    assert not [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    run = json.loads((tmp_path / "results" / f"{chapter}.json").read_text())
    assert run["profile"] == "full" and run["results"]
    injected = [c for c in cells if "injected-parameters" in c.metadata.get("tags", [])]
    ran_with: dict = {}
    exec(injected[0].source, {}, ran_with)  # papermill writes plain assignments
    assert {k: ran_with[k] for k in set(full) & STRUCTURAL} == {k: full[k] for k in set(full) & STRUCTURAL}
    printed = "".join(o.get("text", "") for c in cells for o in c.get("outputs", []))
    assert "mnist: " in printed and "instead" not in printed, "MNIST itself, not the mnist5k stand-in"
