"""Hostile inputs of the training command (``python -m infoclust.train``) and its output folder.

Issue 22, items 1 and 4: a run's folder is checked before the first epoch (a rerun without
``--resume`` must not replace a finished run), and an option given as 0 is an error, not the
default. After every refused case the previous run's files are byte-identical.
"""

from __future__ import annotations

import os

import pytest
from test_hostile_common import kept, refused

from infoclust.checkpoint import prepare_output_dir
from infoclust.train import main

#: One epoch of IIC on 32 digits at 8 px: about 2 s of one CPU.
ARGS = [
    "iic",
    "--dataset",
    "digits",
    "--n-images",
    "32",
    "--epochs",
    "1",
    "--batch-size",
    "16",
    "--repeats",
    "1",
    "--n-subheads",
    "1",
    "--n-overclusters",
    "0",
    "--crop",
    "8",
    "--input-size",
    "8",
    "--device",
    "cpu",
    "--quiet",
]  # no --threads: it would set this process's torch threads, which conftest chose


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished run's folder: the previous good outputs every case must leave alone."""
    out = tmp_path_factory.mktemp("run")
    main([*ARGS, "--out", str(out)])
    return out


def test_the_run_wrote_its_files(run):
    assert {p.name for p in run.iterdir()} >= {"checkpoint.pt", "metrics.json", "history.json"}


def test_rerun_without_resume_is_refused_before_training(run, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("the data were loaded: the folder was not checked first")

    monkeypatch.setattr("infoclust.train.load_dataset", no_training)
    with kept(run), refused(str(run), "--resume", "--overwrite"):
        main([*ARGS, "--out", str(run)])


def test_overwrite_starts_afresh(run, tmp_path):
    out = tmp_path / "again"
    main([*ARGS, "--out", str(out)])
    main([*ARGS, "--out", str(out), "--overwrite"])  # accepted: the user asked for it
    assert (out / "checkpoint.pt").is_file()


def test_resume_and_overwrite_together(run):
    with kept(run), refused("resume", "overwrite"):
        main([*ARGS, "--out", str(run), "--resume", "--overwrite"])


def test_empty_out_is_not_the_working_folder(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with kept(run), refused("output folder", "empty"):
        main([*ARGS, "--out", ""])
    assert not list(tmp_path.iterdir()), "files were written to the working folder"


def test_out_is_a_file(run, tmp_path):
    path = tmp_path / "a-file"
    path.write_text("mine")
    with kept(tmp_path), refused(str(path), "is a file"):
        main([*ARGS, "--out", str(path)])


def test_out_is_not_writable(tmp_path):
    # /proc refuses new files even to root; a folder without write permission refuses them to others
    with refused("/proc", "not writable"):
        prepare_output_dir("/proc", resume=False, overwrite=False)
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with refused(str(locked), "not writable"):
            main([*ARGS, "--out", str(locked)])


@pytest.mark.parametrize("option", ["--crop", "--input-size"])
def test_zero_is_not_the_default(run, tmp_path, option):
    with kept(run), refused(option):
        main([*ARGS, "--out", str(tmp_path / "zero"), option, "0"])


@pytest.mark.parametrize(
    ("path", "flags", "names"),
    [
        ("", {}, ("empty",)),
        (None, {}, ("path",)),
        ("x", {"resume": "yes"}, ("resume",)),
        ("x", {"overwrite": 1}, ("overwrite",)),
    ],
)
def test_prepare_output_dir_arguments(tmp_path, path, flags, names):
    flags = {"resume": False, "overwrite": False, **flags}
    with refused(*names):
        prepare_output_dir(path if path != "x" else tmp_path / "x", **flags)


# ---------------------------------------------------------------- item 2: resume on other data


@pytest.mark.parametrize(
    ("option", "value"),
    [("--n-images", "24"), ("--dataset", "mnist5k"), ("--crop", "6"), ("--input-size", "6"), ("--seed", "1")],
)
def test_resume_on_other_data_is_refused(run, option, value):
    args = [*ARGS, "--out", str(run), "--resume", option, value]  # argparse: the last one counts
    with kept(run), refused(option, value):
        main(args)


def test_resume_with_the_same_data_is_accepted(run):
    before = (run / "checkpoint.pt").read_bytes()
    assert main([*ARGS, "--out", str(run), "--resume"])["epochs"] == 1  # finished: nothing to train
    assert (run / "checkpoint.pt").read_bytes() == before


@pytest.fixture(scope="module")
def fitted_iic(tmp_path_factory):
    """IIC fitted with a checkpoint on 32 digits (the library, without the command)."""
    from infoclust.data import load_dataset
    from infoclust.iic import IIC

    x, _ = load_dataset("digits", n=32, seed=0)
    folder = tmp_path_factory.mktemp("iic")
    kw = dict(n_subheads=1, n_overclusters=None, trunk="small", epochs=1, batch_size=16, repeats=1)
    kw.update(device="cpu", verbose=False, checkpoint=str(folder / "checkpoint.pt"))
    IIC(4, **kw).fit(x)
    return folder, x, kw


def test_iic_resume_on_fewer_images_is_refused(fitted_iic):
    from infoclust.iic import IIC

    folder, x, kw = fitted_iic
    with kept(folder), refused("x", "(16, 1, 8, 8)", "(32, 1, 8, 8)"):
        IIC(4, **kw).fit(x[:16], resume=True)


def test_iic_resume_on_other_images_of_the_same_shape_is_refused(fitted_iic):
    from infoclust.iic import IIC

    folder, x, kw = fitted_iic
    with kept(folder), refused("x", "images", "sha256"):
        IIC(4, **kw).fit(x.flip(0), resume=True)


def test_iic_resume_with_another_g_is_refused(fitted_iic):
    from infoclust.iic import IIC

    folder, x, kw = fitted_iic
    with kept(folder), refused("g", "perturbation"):
        IIC(4, g=lambda b: b.flip(-1), **kw).fit(x, resume=True)


def test_deep_infomax_on_an_iic_checkpoint_says_so(fitted_iic):
    from infoclust.dim import DeepInfoMax

    folder, x, kw = fitted_iic
    model = DeepInfoMax(epochs=1, batch_size=16, device="cpu", verbose=False, checkpoint=kw["checkpoint"])
    with kept(folder), refused("IIC", "DeepInfoMax"):
        model.fit(x, resume=True)
