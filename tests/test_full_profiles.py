"""The full (paper-scale) profile's code paths run, on tiny data, so that they cannot crash unseen.

Each chapter runs with its ``full`` profile from ``notebooks/profiles.yml`` as the build runs it
(``execute_chapter``, papermill), with only the sizes made small: counts of images, pairs,
seeds and steps, epochs. Everything that changes the code path stays as the profile has it:
the data set (``mnist``, read by torchvision from MNIST's IDX files, here a tiny set written
into a temporary ``data_root`` in torchvision's folder layout), the network, the input size,
the batch sizes, the regularisations.

Which chapters: a chapter costs a kernel and its imports (about 15 s of CPU) before it
computes anything, and ``make test`` has about two minutes for this file, so it runs the two
whose full profile takes another path than the default beyond the data set: 04 (the entropic
regularisations down to 1.2 px^2, where ``w2_sinkhorn`` hands problems to its log-domain solver;
MNIST read by torchvision) and 08 (Algorithm 1 timed on a batch of 700 images). The others
differ from their default only in the data set, which 04 covers, and in sizes, except 02
(a toy batch of 128) and 03 and 09 (the paper's VGG trunk on 24 px inputs, 140 images x 5
repeats per batch: one epoch on 140 images alone costs about 50 s of CPU), which
``tests/test_full_profile_iic.py`` runs with the same tiny MNIST (``mnist_root`` in conftest).
"""

from __future__ import annotations

import json

import nbformat
import pytest

from infoclust.book.catalogue import chapter_defaults, chapter_parameters
from infoclust.book.runs import execute_chapter
from infoclust.data import load_dataset

from conftest import N_TEST, N_TRAIN

#: What a test may shrink: sizes only. A name here must not be a structural setting.
SIZES = {
    "04_wasserstein": {"n_pairs": 4, "n_deform": 2, "n_chains": 2, "n_steps": 5, "n_transform": 3},
    "08_w2_algorithm": {"n_images": 4, "max_iter": 3},
}
#: Settings that choose a code path; the full profile's values must reach the chapter.
STRUCTURAL = {
    "dataset",
    "trunk",
    "input_size",
    "crop",
    "batch_size",
    "repeats",
    "n_subheads",
    "regs",
    "reg",
    "toy_batch",
    "estimator",
    "local_critic",
    "kernel_size",
    "lam",
    "n_timing",
}


def test_the_tiny_mnist_is_read_by_torchvision(mnist_root):
    x, y = load_dataset("mnist", root=mnist_root)
    assert tuple(x.shape) == (N_TRAIN + N_TEST, 1, 28, 28) and len(y) == N_TRAIN + N_TEST
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


@pytest.mark.parametrize("chapter", SIZES)
def test_sizes_leave_the_full_profile_structure(chapter):
    full = chapter_parameters(chapter, "full")
    assert full.get("dataset") == "mnist"
    defaults = chapter_defaults(chapter)
    assert set(SIZES[chapter]) <= set(defaults), "a size that is no parameter of the chapter"
    assert not set(SIZES[chapter]) & STRUCTURAL


@pytest.mark.parametrize("chapter", SIZES)
def test_full_profile_runs_on_tiny_data(chapter, mnist_root, tmp_path):
    params = {**SIZES[chapter], "data_root": str(mnist_root)}
    notebook = execute_chapter(chapter, "full", tmp_path, parameters=params)
    run = json.loads((tmp_path / "results" / f"{chapter}.json").read_text())
    assert run["profile"] == "full" and run["results"]
    injected = [
        c
        for c in nbformat.read(notebook, as_version=4).cells
        if "injected-parameters" in c.metadata.get("tags", [])
    ]
    assert len(injected) == 1, "papermill's injected parameters cell"
    ran_with: dict = {}
    exec(injected[0].source, {}, ran_with)  # papermill writes plain assignments
    full = chapter_parameters(chapter, "full")
    assert {k: ran_with[k] for k in set(full) & STRUCTURAL} == {k: full[k] for k in set(full) & STRUCTURAL}
    assert ran_with["data_root"] == str(mnist_root)
