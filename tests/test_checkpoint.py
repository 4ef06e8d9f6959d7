"""Checkpoints (infoclust.checkpoint): atomic writes, round trips, random states."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from infoclust import checkpoint
from infoclust.utils import ParameterError


def test_round_trip_keeps_tensors_arrays_and_plain_values(tmp_path):
    net = torch.nn.Linear(3, 2)
    state = {
        "net": net.state_dict(),
        "history": [{"loss": [1.5, 2.0], "joint": np.eye(3)}],
        "epoch": 4,
        "name": "IIC",
        "pair": (1, None),
        "scalar": np.float64(0.25),
    }
    path = checkpoint.save_checkpoint(tmp_path / "run" / "ckpt.pt", state)
    back = checkpoint.load_checkpoint(path)
    assert back["format"] == checkpoint.FORMAT and back["epoch"] == 4 and back["name"] == "IIC"
    assert back["pair"] == (1, None) and back["scalar"] == 0.25
    np.testing.assert_array_equal(back["history"][0]["joint"], np.eye(3))
    assert all(torch.equal(back["net"][k], v) for k, v in net.state_dict().items())


def test_a_write_that_dies_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = checkpoint.save_checkpoint(tmp_path / "ckpt.pt", {"epoch": 1})
    real_save = torch.save

    def dying_save(obj, f):
        real_save(obj, f)
        f.write(b"half")
        raise KeyboardInterrupt  # killed while writing

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_checkpoint(path, {"epoch": 2})
    monkeypatch.undo()
    assert checkpoint.load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left


def test_bad_files_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        checkpoint.load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ParameterError, match="could not be read"):
        checkpoint.load_checkpoint(tmp_path / "junk.pt")
    torch.save({"epoch": 1}, tmp_path / "other.pt")
    with pytest.raises(ParameterError, match="not an infoclust checkpoint"):
        checkpoint.load_checkpoint(tmp_path / "other.pt")


def test_random_states_are_restored(tmp_path):
    gen = torch.Generator().manual_seed(5)
    with torch.random.fork_rng():
        states = checkpoint.rng_states({"order": gen})
        np_state, py_state = np.random.get_state(), random.getstate()
        path = checkpoint.save_checkpoint(tmp_path / "ckpt.pt", {"rng": states})
        first = (torch.rand(3, generator=gen), torch.rand(3), np.random.rand(3), random.random())
        checkpoint.restore_rng_states(checkpoint.load_checkpoint(path)["rng"], {"order": gen})
        again = (torch.rand(3, generator=gen), torch.rand(3), np.random.rand(3), random.random())
        np.random.set_state(np_state)
        random.setstate(py_state)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert np.array_equal(first[2], again[2]) and first[3] == again[3]


def test_resuming_with_another_number_of_processes():
    gen = torch.Generator().manual_seed(0)
    state = checkpoint.rng_states({"order": gen})[0]
    checkpoint.restore_rng_states([state, state], {"order": gen})  # equal states: any world size
    other = checkpoint.rng_states({"order": torch.Generator().manual_seed(1)})[0]
    with pytest.raises(ParameterError, match="resume it with 2 processes, not 1"):
        checkpoint.restore_rng_states([state, other], {"order": gen})
    with pytest.raises(ParameterError, match="no state for the generator 'g'"):
        checkpoint.restore_rng_states([state], {"g": gen})


def test_check_compatible_names_the_parameter():
    checkpoint.check_compatible(
        "x.pt", {"lr": "0.1", "epochs": "5"}, {"lr": "0.1", "epochs": "9"}, ignore=("epochs",)
    )
    with pytest.raises(ParameterError, match=r"^lr=0.2 differs from the checkpoint x.pt's lr=0.1"):
        checkpoint.check_compatible("x.pt", {"lr": "0.1"}, {"lr": "0.2"})


def _dim(tmp_path, epochs):
    from infoclust.dim import DeepInfoMax

    return DeepInfoMax(
        widths=(4, 8, 8),
        code_dim=6,
        critic_dim=8,
        epochs=epochs,
        batch_size=16,
        lr=1e-2,
        gamma=1.0,
        seed=4,
        device="cpu",
        verbose=False,
        checkpoint=str(tmp_path / "dim.pt"),
    )


def test_deep_infomax_resumes_bit_identically(tmp_path):
    from infoclust.data import load_dataset

    x = load_dataset("digits", n=64, seed=0)[0]
    whole = _dim(tmp_path / "whole", 3).fit(x)
    _dim(tmp_path / "part", 2).fit(x)  # stopped after epoch 2, as if killed in epoch 3
    assert checkpoint.load_checkpoint(tmp_path / "part" / "dim.pt")["epoch"] == 2
    resumed = _dim(tmp_path / "part", 3).fit(x, resume=True)
    for name, net in whole._networks().items():
        other = resumed._networks()[name].state_dict()
        assert all(torch.equal(t, other[k]) for k, t in net.state_dict().items()), name
    local = [[h["local_mi"] for h in m.history_] for m in (resumed, whole)]
    assert local[0] == local[1] and resumed.n_steps_ == whole.n_steps_
    with pytest.warns(UserWarning, match="does not exist yet"):
        _dim(tmp_path / "fresh", 1).fit(x, resume=True)
    with pytest.raises(ParameterError, match="resume=True needs checkpoint"):
        _dim(tmp_path, 1).set_params(checkpoint=None).fit(x, resume=True)
