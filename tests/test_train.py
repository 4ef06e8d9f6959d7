"""The training command (infoclust.train): outputs, resume after kill -9, and 2 processes against 1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from infoclust import distributed
from infoclust.checkpoint import load_checkpoint
from infoclust.train import main

ROOT = Path(__file__).resolve().parents[1]
STEPS_PER_EPOCH = 3 * (96 // 24)  # one overclustering and two main passes of 4 batches
ARGS = [
    "iic",
    "--dataset",
    "digits",
    "--n-images",
    "96",
    "--epochs",
    "3",
    "--batch-size",
    "24",
    "--repeats",
    "2",
    "--n-subheads",
    "2",
    "--n-overclusters",
    "12",
    "--device",
    "cpu",
    "--threads",
    "1",
    "--quiet",
]

# Runs the command and kills itself with SIGKILL in the middle of epoch 2 (its 7th step).
KILLER = f"""
import os, signal, sys
from infoclust.iic import IIC
step, calls = IIC._step, [0]
def dying_step(self, *args):
    calls[0] += 1
    if calls[0] == {STEPS_PER_EPOCH} + 7:
        os.kill(os.getpid(), signal.SIGKILL)
    return step(self, *args)
IIC._step = dying_step
from infoclust.train import main
main(sys.argv[1:])
"""


def _state(out: Path) -> dict:
    return load_checkpoint(out / "checkpoint.pt")


@pytest.fixture(scope="module", autouse=True)
def _keep_threads():
    threads = torch.get_num_threads()  # main(--threads 1) sets this process's
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    metrics = main([*ARGS, "--out", str(out)])
    return out, metrics


def test_outputs(uninterrupted):
    out, metrics = uninterrupted
    written = json.loads((out / "metrics.json").read_text())
    assert written["acc"] == metrics["acc"] and written["world_size"] == 1 and written["epochs"] == 3
    assert 0 <= written["acc"] <= 1 and len(written["subhead_acc"]) == 2
    assert written["settings"]["batch_size"] == 24 and written["crop"] == 8 and written["input_size"] == 8
    assert written["code_path"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]
    assert _state(out)["epoch"] == 3


def test_resume_after_kill_9_is_bit_identical(uninterrupted, tmp_path):
    whole, metrics = uninterrupted
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [sys.executable, "-c", KILLER, *ARGS, "--out", str(out)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    assert _state(out)["epoch"] == 1 and not (out / "metrics.json").exists()  # killed during epoch 2
    resumed = main([*ARGS, "--out", str(out), "--resume"])
    a, b = _state(whole), _state(out)
    assert a["net"].keys() == b["net"].keys()
    assert all(torch.equal(a["net"][k], b["net"][k]) for k in a["net"]), "parameters differ after the resume"
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for key in ("acc", "nmi", "ari", "subhead_loss", "pairs"):
        assert resumed[key] == metrics[key], key
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


def test_resume_checks_the_parameters(uninterrupted):
    whole, _ = uninterrupted
    with pytest.raises(Exception, match="^lr=0.1 differs from the checkpoint"):
        main([*ARGS, "--out", str(whole), "--resume", "--lr", "0.1"])
    with pytest.raises(Exception, match="epochs=2 is below the checkpoint"):
        main([*ARGS, "--out", str(whole), "--resume", "--epochs", "2"])


def test_two_processes_write_the_metrics_of_one(uninterrupted, tmp_path):
    _, one = uninterrupted
    two = distributed.spawn(main, 2, [*ARGS, "--out", str(tmp_path)])
    assert two[0]["world_size"] == 2 and two[0]["acc"] == two[1]["acc"]
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["world_size"] == 2
    for key in ("acc", "nmi", "ari"):
        assert written[key] == pytest.approx(one[key], abs=0.02), key
    assert written["subhead_loss"] == pytest.approx(one["subhead_loss"], rel=1e-3)


def test_iic_recipe_is_the_preset_changed_by_the_options_given():
    """``--preset`` names the recipe (chapter 03's ``cpu`` by default); each option given changes itself."""
    from infoclust.iic import PRESETS
    from infoclust.train import _iic_recipe, build_parser

    parse = build_parser().parse_args
    assert _iic_recipe(parse(["iic"])) == PRESETS["cpu"]
    paper = _iic_recipe(parse(["iic", "--preset", "paper", "--trunk", "small", "--lr", "0.01"]))
    assert paper == {**PRESETS["paper"], "trunk": "small", "lr": 0.01}
    with pytest.raises(SystemExit):
        parse(["iic", "--preset", "nope"])
