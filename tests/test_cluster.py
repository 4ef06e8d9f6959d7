"""``infoclust cluster DIR``: the outputs on a tiny folder of two shapes, the choice of k, the unhappy
paths, Ctrl-C and --resume, and a small Fashion-MNIST folder. Every run: an epoch or two of a few dozen
images."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from infoclust import __version__
from infoclust.__main__ import main
from infoclust.checkpoint import load_checkpoint
from infoclust.cluster import (
    DEFAULT_KS,
    NamedG,
    candidate_ks,
    cluster_folder,
    default_recipe,
    read_image_folder,
    write_image_folder,
)
from infoclust.data import DEBIAN_FASHION_MNIST, read_idx
from infoclust.iic import IIC, PRESETS
from infoclust.utils import ParameterError

FAST = ["--epochs", "1", "--image-size", "8", "--device", "cpu", "--threads", "1", "--quiet"]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def draw_shapes(root: Path, per_class: int = 12, side: int = 12, seed: int = 0) -> Path:
    """``root/circle/*.png`` and ``root/square/*.png``: white shapes of random size and place on black."""
    rng = np.random.default_rng(seed)
    for cls in ("circle", "square"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            im = Image.new("L", (side, side))
            c, r = rng.integers(side // 3, side - side // 3, 2), int(rng.integers(side // 5, side // 3))
            box = [int(c[0]) - r, int(c[1]) - r, int(c[0]) + r, int(c[1]) + r]
            (ImageDraw.Draw(im).ellipse if cls == "circle" else ImageDraw.Draw(im).rectangle)(box, fill=255)
            im.save(root / cls / f"{i:02d}.png")
    return root


@pytest.fixture
def shapes(tmp_path) -> Path:
    return draw_shapes(tmp_path / "shapes")


def read_labels(out: Path) -> list[dict[str, str]]:
    with open(out / "labels.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_cluster_writes_labels_montages_history_metrics_checkpoint(shapes, tmp_path):
    out = tmp_path / "out"
    assert main(["cluster", str(shapes), "--out", str(out), "--k", "2", *FAST]) == 0
    rows = read_labels(out)
    files = sorted(p.relative_to(shapes).as_posix() for p in shapes.rglob("*.png"))
    assert [r["file"] for r in rows] == files
    assert {r["cluster"] for r in rows} <= {"0", "1"}
    confidence = np.array([float(r["confidence"]) for r in rows])
    assert ((confidence >= 0.5 - 1e-4) & (confidence <= 1)).all()  # the larger of two probabilities
    assert (out / "montage.png").stat().st_size > 0
    assert {p.name for p in (out / "montages").iterdir()} <= {"cluster_00.png", "cluster_01.png"}
    history = json.loads((out / "history.json").read_text())
    assert history["settings"]["ks"] == [2] and history["settings"]["image_shape"] == [1, 8, 8]
    (run,) = history["runs"]
    assert [rec["epoch"] for rec in run["history"]] == [0, 1]
    assert run["iic_loss"] == pytest.approx(-run["history"][-1]["mi"][run["subhead"]])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["classes"] == ["circle", "square"] and metrics["k"] == 2 and metrics["images"] == 24
    # accuracy of the written labels, recomputed here from labels.csv
    truth = np.array([r["file"].startswith("square") for r in rows])
    pred = np.array([r["cluster"] == "1" for r in rows])
    assert metrics["acc"] == pytest.approx(max((truth == pred).mean(), (truth != pred).mean()))
    assert load_checkpoint(out / "checkpoints" / "k2.pt")["epoch"] == 1


def test_k_chosen_by_the_lowest_iic_loss(shapes, tmp_path):
    summary = cluster_folder(shapes, tmp_path / "out", epochs=1, image_size=8, device="cpu", verbose=False)
    losses = {r["k"]: r["iic_loss"] for r in summary["runs"]}
    assert list(losses) == [k for k in DEFAULT_KS if k <= 24]
    assert summary["k"] == min(losses, key=losses.get)
    assert max(int(r["cluster"]) for r in read_labels(tmp_path / "out")) < summary["k"]
    assert candidate_ks(None, 3) == [2] and candidate_ks(4, 4) == [4]


def test_default_recipe_is_the_cpu_preset_sized_to_the_folder():
    small, large = default_recipe(16, 2000), default_recipe(64, 24)
    assert {k: v for k, v in small.items() if k != "epochs"} == PRESETS["cpu"]
    assert small["epochs"] == 11  # ceil(2000 / (3 passes x 62 batches of 32))
    assert large["trunk"] == ((16, 32, 64, 128), 3) and large["batch_size"] == 24 and large["epochs"] == 60


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"infoclust {__version__}"


def test_mixed_sizes_and_modes_become_one_batch(tmp_path):
    root = tmp_path / "mixed"
    root.mkdir()
    Image.new("L", (30, 20), 200).save(root / "grey.png")
    Image.new("RGB", (16, 40), (255, 0, 0)).save(root / "red.JPG")
    Image.new("P", (9, 9)).save(root / "palette.png")
    Image.new("RGBA", (12, 12), (0, 0, 255, 100)).save(root / "alpha.png")
    Image.fromarray(np.full((10, 10), 65535, np.uint16)).save(root / "deep.png")  # 16-bit grey
    (root / "notes.txt").write_text("not an image")
    data = read_image_folder(root, 8, verbose=False)
    assert data.images.shape == (5, 3, 8, 8) and data.labels is None and data.skipped == []
    by_name = dict(zip(data.files, data.images))
    assert torch.allclose(by_name["red.JPG"][:, 4, 4], torch.tensor([1.0, 0, 0]), atol=0.02)
    assert torch.allclose(by_name["deep.png"], torch.ones(3, 8, 8))
    assert read_image_folder(draw_shapes(tmp_path / "g", 2), None, verbose=False).images.shape[1:] == (
        1,
        12,
        12,
    )


def test_write_and_read_image_folder_round_trip(tmp_path):
    x = torch.rand(6, 1, 5, 5)
    write_image_folder(x, tmp_path / "f", [0, 1, 0, 1, 1, 0], ["a", "b"])
    data = read_image_folder(tmp_path / "f", 5, verbose=False)
    assert data.classes == ["a", "b"] and data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    order = [int(Path(f).stem) for f in data.files]
    assert torch.allclose(data.images, x[order], atol=0.5 / 255 + 1e-6)


def test_class_folders_only_when_every_image_has_one(shapes):
    Image.new("L", (12, 12)).save(shapes / "loose.png")
    data = read_image_folder(shapes, 8, verbose=False)
    assert data.labels is None and data.classes is None and len(data.files) == 25


def test_unreadable_images_are_named_counted_and_skipped(shapes, tmp_path):
    good = (shapes / "circle" / "00.png").read_bytes()
    (shapes / "circle" / "truncated.png").write_bytes(good[: len(good) // 2])
    (shapes / "square" / "text.jpg").write_text("not a jpeg")
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match=r"skipped 2 of 26 .*truncated\.png.*text\.jpg"):
        summary = cluster_folder(shapes, out, k=2, epochs=1, image_size=8, device="cpu", verbose=False)
    assert summary["images"] == 24 and summary["skipped"] == 2
    skipped = (out / "skipped.txt").read_text()
    assert "circle/truncated.png" in skipped and "square/text.jpg" in skipped
    assert len(read_labels(out)) == 24
    with pytest.raises(ParameterError, match=r"2 of the 26 .*max_unreadable=0\.05"):
        read_image_folder(shapes, 8, max_unreadable=0.05, verbose=False)


@pytest.mark.parametrize(
    "case, match",
    [
        ("empty", "holds no image"),
        ("one", "1 readable image"),
        ("k", "k=30 exceeds the 24 images"),
        ("g", "unknown part"),
        ("size", "image_size"),
    ],
)
def test_bad_input_fails_clearly_and_writes_nothing(shapes, tmp_path, capsys, case, match):
    folder, extra = shapes, []
    if case == "empty":
        folder = tmp_path / "empty"
        folder.mkdir()
        (folder / "readme.txt").write_text("x")
    elif case == "one":
        folder = tmp_path / "one"
        folder.mkdir()
        Image.new("L", (8, 8)).save(folder / "a.png")
    extra = {"k": ["--k", "30"], "g": ["--g", "crop+blur"], "size": ["--image-size", "2"]}.get(case, [])
    out = tmp_path / "out"
    assert main(["cluster", str(folder), "--out", str(out), *FAST, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("infoclust cluster: error:") and match in err
    assert not (out / "labels.csv").exists() and not (out / "checkpoints").exists()


def test_missing_folder(tmp_path, capsys):
    assert main(["cluster", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"), *FAST]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_output_folder_with_a_run_is_refused_unless_resume_or_overwrite(shapes, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["cluster", str(shapes), "--out", str(out), "--k", "2", *FAST]
    assert main(args) == 0
    before = (out / "labels.csv").read_bytes()
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err and (out / "labels.csv").read_bytes() == before
    (out / "montages" / "cluster_07.png").write_bytes(b"from an earlier run with more clusters")
    (out / "mine.txt").write_text("the user's file")
    assert main([*args, "--overwrite"]) == 0
    assert not (out / "montages" / "cluster_07.png").exists() and (out / "mine.txt").exists()
    assert main([*args, "--seed", "1", "--resume"]) == 2  # another seed is another run
    assert "seed = 1 differs" in capsys.readouterr().err


def test_ctrl_c_keeps_the_checkpoint_and_resume_continues_bit_identically(
    shapes, tmp_path, monkeypatch, capsys
):
    args = [str(shapes), "--k", "2", *FAST[2:], "--epochs", "2"]
    assert main(["cluster", *args, "--out", str(tmp_path / "whole")]) == 0
    train_epoch = IIC._train_epoch

    def interrupted(self, x, epoch, progress):
        if epoch == 2:
            raise KeyboardInterrupt
        return train_epoch(self, x, epoch, progress)

    monkeypatch.setattr(IIC, "_train_epoch", interrupted)
    out = tmp_path / "cut"
    assert main(["cluster", *args, "--out", str(out)]) == 130
    assert "--resume" in capsys.readouterr().err
    assert load_checkpoint(out / "checkpoints" / "k2.pt")["epoch"] == 1 and not (out / "labels.csv").exists()
    monkeypatch.setattr(IIC, "_train_epoch", train_epoch)
    assert main(["cluster", *args, "--out", str(out), "--resume"]) == 0
    assert read_labels(out) == read_labels(tmp_path / "whole")


def test_named_g_parts_compose_and_share_one_generator():
    g = NamedG("crop + rotate+deform", 8, seed=3)
    x = torch.rand(4, 1, 8, 8)
    y = g(x)
    assert y.shape == x.shape and not torch.equal(x, y)
    assert torch.equal(NamedG("crop+rotate+deform", 8, seed=3)(x), y)
    assert repr(g) == "NamedG(spec='crop+rotate+deform', image_size=8, seed=3)"
    # a Transform: with_seed is a copy with one generator of its own, shared by its parts only
    h = g.with_seed(3)
    assert h.generator is not g.generator and all(p.generator is h.generator for p in h._parts)
    assert torch.equal(h(x), NamedG("crop+rotate+deform", 8, seed=3)(x))
    with pytest.raises(ParameterError, match="g="):
        NamedG("", 8)


@pytest.mark.skipif(
    not (DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file(),
    reason="Fashion-MNIST is not installed (Debian: apt-get install dataset-fashion-mnist)",
)
def test_fashion_mnist_test_images_as_a_folder_of_png_files(tmp_path):
    """The first 100 test images in class folders, 1 epoch at 8 px: the path works end to end (the
    accuracy of a real run is in the README)."""
    x = torch.from_numpy(read_idx(DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz")[:100, None].copy())
    y = torch.from_numpy(read_idx(DEBIAN_FASHION_MNIST / "t10k-labels-idx1-ubyte.gz")[:100].astype(np.int64))
    write_image_folder(x.float() / 255, tmp_path / "fashion", y)
    out = tmp_path / "out"
    assert main(["cluster", str(tmp_path / "fashion"), "--out", str(out), "--k", "10", *FAST]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["classes"] == [str(c) for c in range(10)] and metrics["images"] == 100
    assert 0.1 <= metrics["acc"] <= 1  # one-to-one matching: at least the largest class's share
    assert len(read_labels(out)) == 100
