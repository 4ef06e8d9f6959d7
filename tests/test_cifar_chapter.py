"""Chapter 09 on CIFAR-10 (issue 21: the talk's CIFAR-10 row with the paper's Sobel input).

CIFAR-10's files are not on this machine and are never downloaded by the tests, so a
``sitecustomize`` on the kernel's ``PYTHONPATH`` replaces torchvision's ``CIFAR10`` with 140
random 32 x 32 colour images: what is tested is the colour path of the chapter (the paper's
CIFAR g, the Sobel input, the perturbations on three channels, the talk's CIFAR-10 row),
started by the command the README gives (``python -m infoclust.book ... -p dataset cifar10``),
at smoke size with the small trunk.
"""

from __future__ import annotations

import json
import os

import nbformat

from infoclust.book import build as book

FAKE_CIFAR = """
import numpy as np
import torchvision.datasets


class FakeCIFAR10:
    def __init__(self, root, train=True, download=False, **kwargs):
        rng = np.random.default_rng(0 if train else 1)
        n = 120 if train else 20
        self.targets = [int(t) for t in rng.integers(0, 10, n)]
        self.data = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


torchvision.datasets.CIFAR10 = FakeCIFAR10
"""


def test_chapter_09_runs_the_talks_cifar_row_with_the_sobel_input(tmp_path, monkeypatch):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(FAKE_CIFAR)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])
    )
    params = {
        "dataset": "cifar10",
        "preset": "cifar",
        "trunk": "small",  # the preset's Sobel input and recipe, a trunk the CPU runs in seconds
        "n_images": "null",
        "crop": "32",
        "input_size": "16",
        "batch_size": "35",
        "talk_columns": '["projected Sinkhorn", "Algorithm 1"]',
        "alg1_radii": "[]",
        "n_seeds_alone": "0",
        "fashion_images": "0",
    }
    argv = ["--profile", "smoke", "--chapters", "09_iic_perturbations", "--build-dir", str(tmp_path / "b")]
    argv += ["--no-site", *(a for name, value in params.items() for a in ("-p", name, value))]
    assert book.main(argv) == 0
    cells = nbformat.read(tmp_path / "b" / "notebooks" / "09_iic_perturbations.ipynb", as_version=4).cells
    assert not [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    text = "".join(
        o.get("text", "") + o.get("data", {}).get("text/markdown", "")
        for c in cells
        for o in c.get("outputs", [])
    )
    assert "cifar10: 140 images, (3, 16, 16)" in text
    assert "The talk's CIFAR-10 row" in text and "| normal IIC | 57.0 |" in text
    results = json.loads((tmp_path / "b" / "results" / "09_iic_perturbations.json").read_text())
    contexts = [r.get("context") or "" for r in results["results"]]
    assert any("talk's table: 57.6 %" in c and "60,000 images" in c for c in contexts)  # Sinkhorn 0.01
