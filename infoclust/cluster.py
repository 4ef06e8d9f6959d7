"""Cluster a folder of one's own images with IIC: reading, the recipe, the choice of k, the outputs.

The library behind ``infoclust cluster DIR`` (:mod:`infoclust.__main__`), usable from Python:

* :func:`read_image_folder` reads every PNG and JPEG image under a folder with Pillow (grey or
  colour, any size: centre-cropped to a square and resized), names and counts the files it
  cannot read, and takes class labels from the first level of sub-folders when every image
  lies in one (used only to score the clustering, never to train);
* :class:`NamedG` builds IIC's transformation g from the names of :data:`G_PARTS`, composed
  with ``+`` (``"crop+rotate"``), from the library's transformations;
* :func:`default_recipe` gives IIC's settings for an image size and a number of images (the
  CPU recipe of chapter 03);
* :func:`cluster_folder` trains IIC for one k, or for several and keeps the one of lowest IIC
  loss, -I(z; z') (the label-free criterion of the IIC paper, section 4, there used to pick a
  sub-head), with an overclustering head (IIC paper, section 3.2); it writes ``labels.csv``,
  montages, ``history.json``, ``metrics.json`` (with labels) and one checkpoint per k, from
  which ``resume=True`` continues.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import math
import os
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .checkpoint import prepare_output_dir
from .deform import RandomDeformation
from .iic import IIC, PRESETS, preset
from .metrics import evaluate
from .train import _jsonable
from .transforms import MNISTTransform, Transform, compose
from .utils import (
    ParameterError,
    atomic_write,
    check_images,
    check_int,
    check_labels,
    check_number,
    check_seed,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "G_PARTS",
    "DEFAULT_G",
    "DEFAULT_KS",
    "DEFAULT_IMAGE_SIZE",
    "default_image_size",
    "ImageFolder",
    "find_images",
    "read_image",
    "read_image_folder",
    "write_image_folder",
    "NamedG",
    "default_recipe",
    "candidate_ks",
    "tile",
    "write_labels",
    "write_montages",
    "cluster_folder",
]

#: File name endings read as images (any case).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

#: The named parts of g, each built for an image side ``s`` (pixels) by the library's transformations:
#: random crops of 70 to 100 % of the side, rotations up to 25 degrees (half of the images), colour
#: jitter (brightness, contrast, saturation, hue: the IIC paper's), a smooth random deformation
#: of up to s/14 px (chapter 05), and the IIC paper's whole MNIST g (for a centre crop of digits).
G_PARTS: dict[str, Callable[[int], Callable[[torch.Tensor], torch.Tensor]]] = {
    "crop": lambda s: MNISTTransform(0.0, scales=(0.7, 0.85, 1.0), extent=1.0, jitter=(0, 0, 0, 0)),
    "rotate": lambda s: MNISTTransform(25.0, scales=(1.0,), extent=1.0, jitter=(0, 0, 0, 0)),
    "jitter": lambda s: MNISTTransform(0.0, scales=(1.0,), extent=1.0),
    "deform": lambda s: RandomDeformation((0.0, s / 14), sigma=3 * s / 28),
    "paper": lambda s: MNISTTransform(),
}
#: g when none is named.
DEFAULT_G = "crop+rotate+jitter"
#: Largest default side of the images, pixels: chapter 03's CPU scale (12 to 16 px for digits).
DEFAULT_IMAGE_SIZE = 16
#: The k tried when none is given (those up to the number of images).
DEFAULT_KS = (5, 10, 15, 20)
#: Files of a run in its output folder, removed by ``overwrite=True`` (and nothing else).
OUTPUT_FILES = ("labels.csv", "montage.png", "history.json", "metrics.json", "skipped.txt")
OUTPUT_DIRS = ("montages", "checkpoints")


@dataclass
class ImageFolder:
    """The images of a folder (:func:`read_image_folder`).

    Attributes
    ----------
    images : torch.Tensor
        (N, C, S, S) float32 in [0, 1]; C is 1 when every image is grey, else 3.
    files : list of str
        The images' paths relative to the folder, in the order of ``images``.
    labels : numpy.ndarray or None
        Class index of each image (its first-level sub-folder), or None.
    classes : list of str or None
        The class folders, in the order of the labels.
    skipped : list of (str, str)
        Files that could not be read, with the reason.
    """

    images: torch.Tensor
    files: list[str]
    labels: np.ndarray | None
    classes: list[str] | None
    skipped: list[tuple[str, str]]


def find_images(root: str | os.PathLike, exclude: str | os.PathLike | None = None) -> tuple[list[Path], int]:
    """Image files under ``root`` (recursive, sorted, hidden files and folders left out).

    Parameters
    ----------
    root : path
        The folder.
    exclude : path, optional
        A folder whose files are left out (an output folder inside ``root``).

    Returns
    -------
    files : list of Path
        Files ending in one of :data:`IMAGE_SUFFIXES`.
    others : int
        Other (not hidden) files, which are not read.

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder of images")
    skip = Path(exclude).resolve() if exclude is not None else None
    files, others = [], 0
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (here / d).resolve() != skip)
        for name in filenames:
            if name.startswith("."):
                continue
            if name.lower().endswith(IMAGE_SUFFIXES):
                files.append(here / name)
            else:
                others += 1
    return sorted(files), others


def read_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """One image file as (3, size, size) ``uint8`` RGB: centre-cropped to a square, then resized.

    Pillow reads PNG and JPEG of any mode: palette and grey images are converted to RGB, an
    alpha channel is dropped, 16-bit grey is scaled to 8 bits, and a JPEG's EXIF orientation
    is applied. Downsampling uses Lanczos filtering.

    Parameters
    ----------
    path : path
        The image file.
    size : int
        Side of the output, pixels.

    Returns
    -------
    numpy.ndarray
        (3, size, size) ``uint8``.

    Raises
    ------
    OSError
        (or another Pillow error) for a file that is not a readable image, e.g. truncated.
    """
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im.load()  # decodes now: a truncated file raises here
        im = ImageOps.exif_transpose(im)
        if im.mode.startswith("I;16"):
            im = Image.fromarray((np.asarray(im, dtype=np.float64) / 257).round().astype(np.uint8))
        im = im.convert("RGB")
        side = min(im.size)
        left, top = (im.width - side) // 2, (im.height - side) // 2
        im = im.resize((size, size), Image.Resampling.LANCZOS, box=(left, top, left + side, top + side))
        return np.asarray(im).transpose(2, 0, 1).copy()


def _labels_from_folders(files: list[str]) -> tuple[np.ndarray | None, list[str] | None]:
    """Class of each file: its first-level folder, when every file has one and there are >= 2."""
    parts = [Path(f).parts for f in files]
    if not parts or any(len(p) < 2 for p in parts):
        return None, None
    classes = sorted({p[0] for p in parts})
    if len(classes) < 2:
        return None, None
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[p[0]] for p in parts], dtype=np.int64), classes


def default_image_size(paths: Sequence[str | os.PathLike], largest: int = DEFAULT_IMAGE_SIZE) -> int:
    """``largest``, or the median shorter side of the images if smaller (read from the headers).

    Unreadable files are left out here (:func:`read_image_folder` names them); at least 4 px,
    the small trunk's smallest input.

    Parameters
    ----------
    paths : sequence of path
        The image files.
    largest : int
        The side to use unless the images are smaller.

    Returns
    -------
    int
        Side of the square images, pixels.
    """
    from PIL import Image

    sides = []
    for path in paths:
        try:
            with Image.open(path) as im:
                sides.append(min(im.size))
        except Exception:  # named by read_image_folder
            continue
    return int(max(4, min(largest, np.median(sides)))) if sides else largest


def write_image_folder(
    images: torch.Tensor | np.ndarray,
    root: str | os.PathLike,
    labels: Sequence[int] | np.ndarray | torch.Tensor | None = None,
    class_names: Sequence[str] | None = None,
) -> list[Path]:
    """Save images in [0, 1] as PNG files under ``root``, in a folder per class when labelled.

    The inverse of :func:`read_image_folder`, for trying the command on a data set of
    :mod:`infoclust.data`: file ``i`` is ``root/CLASS/i.png`` (``root/i.png`` without labels),
    numbered with leading zeros so that the sorted files keep the order of ``images``.

    Parameters
    ----------
    images : torch.Tensor or numpy.ndarray
        (N, C, H, W) with C = 1 or 3, values in [0, 1].
    root : path
        The folder, created if missing.
    labels : sequence of int, optional
        Class of each image.
    class_names : sequence of str, optional
        Folder name of each class (default: the class number).

    Returns
    -------
    list of Path
        The files written.
    """
    from PIL import Image

    x = check_images("images", images, channels=None)
    if x.shape[1] not in (1, 3):
        raise ParameterError(f"images has {x.shape[1]} channels; PNG files take 1 (grey) or 3 (RGB)")
    pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    y = None if labels is None else check_labels("labels", labels, len(x)).numpy()
    if class_names is not None and (y is None or len(class_names) <= int(y.max())):
        raise ParameterError("class_names needs labels, and a name for every class in them")
    root, width, written = Path(root), len(str(len(x) - 1)), []
    for i, img in enumerate(pixels):
        folder = root if y is None else root / (class_names[y[i]] if class_names is not None else str(y[i]))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i:0{width}d}.png"
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(path)
        written.append(path)
    return written


def read_image_folder(
    root: str | os.PathLike,
    image_size: int | None = None,
    *,
    max_unreadable: float = 0.1,
    exclude: str | os.PathLike | None = None,
    verbose: bool = True,
) -> ImageFolder:
    """Read every image under ``root`` (:func:`find_images`, :func:`read_image`) into one batch.

    Files that cannot be read are skipped, named in a warning with their count, and returned
    in ``skipped``; more than ``max_unreadable`` of them (a fraction of the files) is an error.
    The images may differ in size and mode: each is brought to ``image_size`` pixels, and the
    batch has one channel when every image is grey (R = G = B), three otherwise. When every
    image lies in a sub-folder and there are at least two, the first-level sub-folders are
    the classes (for scoring only).

    Parameters
    ----------
    root : path
        The folder.
    image_size : int, optional
        Side of the square images, pixels (>= 2); None: :func:`default_image_size`.
    max_unreadable : float
        Largest fraction of unreadable files accepted, in [0, 1].
    exclude : path, optional
        A folder left out (:func:`find_images`).
    verbose : bool
        Show a progress bar.

    Returns
    -------
    ImageFolder

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a folder.
    ParameterError
        If it holds no image file, or too many cannot be read.
    """
    if image_size is not None:
        image_size = check_int("image_size", image_size, 2)
    max_unreadable = check_number("max_unreadable", max_unreadable, 0.0, 1.0)
    paths, others = find_images(root, exclude)
    if not paths:
        raise ParameterError(
            f"{root} holds no image: no file ending in {', '.join(IMAGE_SUFFIXES)} (any case) in it or "
            f"its sub-folders ({others} other file(s))"
        )
    image_size = image_size or default_image_size(paths)
    arrays, files, skipped = [], [], []
    for path in tqdm(paths, desc="reading images", unit="img", disable=not verbose):
        rel = path.relative_to(root).as_posix()
        try:
            arrays.append(read_image(path, image_size))
            files.append(rel)
        except Exception as err:  # Pillow raises OSError, ValueError, SyntaxError, DecompressionBombError
            skipped.append((rel, f"{type(err).__name__}: {err}"))
    if skipped:
        named = "; ".join(f"{f} ({why})" for f, why in skipped[:5])
        more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        if len(skipped) > max_unreadable * len(paths):
            raise ParameterError(
                f"{len(skipped)} of the {len(paths)} image files under {root} cannot be read, more than "
                f"max_unreadable={max_unreadable:g} of them: {named}{more}"
            )
        warnings.warn(
            f"skipped {len(skipped)} of {len(paths)} image files that cannot be read: {named}{more}",
            stacklevel=2,
        )
    x = torch.from_numpy(np.stack(arrays))
    if bool((x[:, :1] == x[:, 1:]).all()):
        x = x[:, :1]
    labels, classes = _labels_from_folders(files)
    return ImageFolder(x.float().div_(255), files, labels, classes, skipped)


class NamedG(Transform):
    """IIC's g from named parts (:data:`G_PARTS`) applied left to right, one generator for all.

    A :class:`~infoclust.transforms.Transform`: ``with_seed`` gives a copy whose parts all
    draw from one new CPU generator, exposed as ``generator``, so that a checkpoint of
    :class:`~infoclust.iic.IIC` keeps g's random state and a resumed run draws what an
    uninterrupted one would.

    Parameters
    ----------
    spec : str
        Names of :data:`G_PARTS` joined by ``+``, e.g. ``"crop+rotate"``.
    image_size : int
        Side of the images g will see, pixels (the deformation scales with it).
    seed : int
        Seed of the generator, in [0, 2**32 - 1].
    """

    def __init__(self, spec: str, image_size: int, *, seed: int = 0) -> None:
        if not isinstance(spec, str):
            raise ParameterError(f"g={spec!r} must be names of {list(G_PARTS)} joined by '+'")
        names = [part.strip() for part in spec.split("+")]
        unknown = [n for n in names if n not in G_PARTS]
        if unknown:
            raise ParameterError(
                f"g={spec!r}: unknown part(s) {unknown}; join names of {list(G_PARTS)} with '+', "
                f"e.g. {DEFAULT_G!r}"
            )
        self.spec, self.image_size = "+".join(names), check_int("image_size", image_size, 2)
        self._parts = [G_PARTS[n](self.image_size) for n in names]
        self._seed(seed)

    def _seed(self, seed: int) -> None:
        """One new generator from ``seed``, shared by copies of the parts (the original keeps its own)."""
        super()._seed(seed)
        self._parts = [copy.copy(part) for part in self._parts]
        for part in self._parts:
            part.generator = self.generator
        self._g = compose(*self._parts)

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        return self._g(x)


def default_recipe(image_size: int, n_images: int) -> dict[str, Any]:
    """IIC's settings for images of ``image_size`` px: the book's CPU recipe, ``iic.PRESETS["cpu"]``.

    Chapter 03's narrow trunk (with a fourth block above 32 px), batches of up to 32 images
    with 4 repeats, Adam at 2e-3, lamb = 1.5 and 5 sub-heads per head; epochs so that a run
    makes about 2,000 batch steps (the order of what chapter 3's MNIST runs needed, README
    "Numbers measured once"), between 5 and 60.

    Parameters
    ----------
    image_size : int
        Side of the images, pixels.
    n_images : int
        Images to cluster (>= 2).

    Returns
    -------
    dict
        Keyword arguments of :class:`~infoclust.iic.IIC` (all but ``n_clusters``, ``g``, ``seed``).
    """
    image_size = check_int("image_size", image_size, 2)
    n_images = check_int("n_images", n_images, 2)
    batch = min(PRESETS["cpu"]["batch_size"], n_images)
    steps_per_epoch = 3 * (n_images // batch)  # 1 overclustering pass and 2 main passes
    return preset(
        "cpu",
        trunk=None if image_size <= 32 else ((16, 32, 64, 128), 3),
        batch_size=batch,
        epochs=int(np.clip(math.ceil(2000 / steps_per_epoch), 5, 60)),
    )


def candidate_ks(k: int | None, n_images: int) -> list[int]:
    """The k to train: ``[k]``, or the :data:`DEFAULT_KS` up to ``n_images`` when ``k`` is None.

    Parameters
    ----------
    k : int or None
        The number of clusters asked for.
    n_images : int
        Images to cluster.

    Returns
    -------
    list of int
        ``[k]``; or the default k up to ``n_images``, ``[2]`` if none is.

    Raises
    ------
    ParameterError
        For a k below 2 or above the number of images, and for fewer than 2 images.
    """
    n_images = check_int("n_images", n_images, 0)
    if n_images < 2:
        raise ParameterError(f"the folder holds {n_images} readable image(s); clustering needs at least 2")
    if k is not None:
        k = check_int("k", k, 2)
        if k > n_images:
            raise ParameterError(f"k={k} exceeds the {n_images} images: give k <= {n_images}")
        return [k]
    return [c for c in DEFAULT_KS if c <= n_images] or [2]


def _settings(
    root: Path, data: ImageFolder, ks: list[int], g: str, seed: int, recipe: dict[str, Any]
) -> dict[str, Any]:
    """What a resumed run must share with the run it continues (epochs and device may change)."""
    return {
        "folder": str(root.resolve()),
        "images": len(data.files),
        "files_digest": _digest(data.files),
        "image_shape": list(data.images.shape[1:]),
        "ks": ks,
        "g": g,
        "seed": seed,
        "recipe": {k: repr(v) for k, v in recipe.items() if k != "epochs"},
    }


def _digest(files: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(files).encode()).hexdigest()[:16]


def _check_resumable(out: Path, settings: dict[str, Any]) -> None:
    path = out / "history.json"
    if not path.is_file():
        return
    saved = json.loads(path.read_text()).get("settings", {})
    for name, value in settings.items():
        if saved.get(name) != value:
            raise ParameterError(
                f"{name} = {value!r} differs from the run in {out} ({name} = {saved.get(name)!r}); "
                f"resume with the same folder and options, or give --overwrite"
            )


def _clear_outputs(out: Path) -> None:
    """Remove the files of a previous run (:data:`OUTPUT_FILES`, :data:`OUTPUT_DIRS`), nothing else."""
    for name in OUTPUT_FILES:
        (out / name).unlink(missing_ok=True)
    for name in OUTPUT_DIRS:
        if (out / name).is_dir():
            shutil.rmtree(out / name)


def _write_json(path: Path, content: Any) -> None:
    with atomic_write(path) as f:
        json.dump(_jsonable(content), f, indent=1)


def _run_record(model: IIC, k: int) -> dict[str, Any]:
    """One k's summary: its IIC loss -I (lamb = 1) and I of the chosen sub-head, and its history."""
    last = model.history_[-1]
    mi = float(last["mi"][model.best_subhead_])
    return {
        "k": k,
        "iic_loss": -mi,
        "mi": mi,
        "subhead": model.best_subhead_,
        "epochs": last["epoch"],
        "train_seconds": model.train_seconds_,
        "history": [{key: v for key, v in rec.items() if key != "joint"} for rec in model.history_],
    }


def write_labels(path: Path, files: Sequence[str], clusters: np.ndarray, confidence: np.ndarray) -> None:
    """Write ``labels.csv``: one row per image, ``file,cluster,confidence`` (the cluster's probability).

    Parameters
    ----------
    path : Path
        The CSV file (written atomically).
    files : sequence of str
        The images' paths.
    clusters : numpy.ndarray
        (N,) cluster of each image.
    confidence : numpy.ndarray
        (N,) probability of that cluster.
    """
    with atomic_write(path) as f:
        w = csv.writer(f)
        w.writerow(["file", "cluster", "confidence"])
        for name, c, p in zip(files, clusters, confidence):
            w.writerow([name, int(c), f"{float(p):.4f}"])


def tile(images: torch.Tensor, ncols: int, pad: int = 1) -> np.ndarray:
    """Images laid out in rows of ``ncols`` on a grey background.

    Parameters
    ----------
    images : torch.Tensor
        (N, C, S, S) in [0, 1], on the CPU.
    ncols : int
        Images per row.
    pad : int
        Grey pixels around and between the images.

    Returns
    -------
    numpy.ndarray
        (H, W, C) ``uint8``.
    """
    n, c, s, _ = images.shape
    rows = max(1, math.ceil(n / ncols))
    grid = np.full((rows * (s + pad) + pad, ncols * (s + pad) + pad, c), 128, np.uint8)
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for i, img in enumerate(pixels):
        top, left = pad + (i // ncols) * (s + pad), pad + (i % ncols) * (s + pad)
        grid[top : top + s, left : left + s] = img
    return grid


def write_montages(
    out: Path, images: torch.Tensor, clusters: np.ndarray, confidence: np.ndarray, k: int, per_row: int = 10
) -> list[Path]:
    """Montages of the clusters, most confident images first; returns the files written.

    ``montages/cluster_NN.png``: up to ``per_row ** 2`` images of cluster NN, enlarged to
    at least 32 px each (nearest neighbour); ``montage.png``: a row of ``per_row`` images per
    cluster, labelled with the cluster and its size (matplotlib, :func:`infoclust.plot.image`).
    Images are drawn as they look in their files (grey: 0 black, 1 white).

    Parameters
    ----------
    out : Path
        The output folder.
    images : torch.Tensor
        (N, C, S, S) in [0, 1], on the CPU.
    clusters, confidence : numpy.ndarray
        (N,) cluster of each image and its probability.
    k : int
        Number of clusters (a row of ``montage.png`` each, empty ones included).
    per_row : int
        Images per row.

    Returns
    -------
    list of Path
        ``montage.png``, then the montage of each non-empty cluster.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from PIL import Image

    from . import plot as icp

    def members(c: int, n: int) -> torch.Tensor:
        idx = np.flatnonzero(clusters == c)
        return images[idx[np.argsort(-confidence[idx], kind="stable")][:n]]

    zoom = max(1, math.ceil(32 / images.shape[-1]))
    (out / "montages").mkdir(exist_ok=True)
    written = [out / "montage.png"]
    for c in range(k):
        shown = members(c, per_row * per_row)
        if len(shown):
            grid = tile(shown, min(per_row, len(shown))).repeat(zoom, 0).repeat(zoom, 1)
            written.append(out / "montages" / f"cluster_{c:02d}.png")
            Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(written[-1])
    blank = torch.full((per_row, *images.shape[1:]), 0.5)  # the background's grey
    rows = [torch.cat([members(c, per_row), blank])[:per_row] for c in range(k)]
    grid, s = tile(torch.cat(rows), per_row), images.shape[-1]
    fig, ax = plt.subplots(figsize=(0.5 * per_row + 1.2, 0.5 * k + 0.3), layout="constrained")
    icp.image(grid.transpose(2, 0, 1) / 255, ax=ax, cmap="gray")
    names = [f"{c} ({int((clusters == c).sum())})" for c in range(k)]
    ax.set_yticks(1 + (s + 1) * np.arange(k) + (s - 1) / 2, names)
    ax.tick_params(length=0, labelsize=8)
    ax.set_ylabel("cluster (images)", fontsize=8)
    fig.savefig(written[0], dpi=100)
    plt.close(fig)
    return written


def cluster_folder(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    k: int | None = None,
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    image_size: int | None = None,
    g: str = DEFAULT_G,
    resume: bool = False,
    overwrite: bool = False,
    max_unreadable: float = 0.1,
    verbose: bool = True,
) -> dict[str, Any]:
    """Cluster the images under ``root`` with IIC and write the results to ``out``.

    Trains :class:`~infoclust.iic.IIC` (:func:`default_recipe`, an overclustering head of 5 k
    clusters) for each k of :func:`candidate_ks` and keeps the k of lowest IIC loss -I(z; z')
    on all the images (the lowest-loss sub-head of each run); labels never enter the choice.
    Writes to ``out``: ``labels.csv`` (file, cluster, confidence), ``montage.png`` (a row per
    cluster) and ``montages/cluster_NN.png``, ``history.json`` (the settings, and each k's
    loss and per-epoch history, rewritten after each k), ``metrics.json`` when the images lie
    in class folders (accuracy, NMI, ARI of the chosen k and of every k tried, from
    :func:`~infoclust.metrics.evaluate`), ``skipped.txt`` (unreadable files), and
    ``checkpoints/kK.pt`` (written after every epoch; an interrupted run continues from them
    with ``resume=True``).

    Parameters
    ----------
    root : path
        Folder of PNG and JPEG images (:func:`read_image_folder`).
    out : path
        Output folder; one that holds a run is refused unless ``resume`` or ``overwrite``.
    k : int, optional
        Number of clusters; None tries :data:`DEFAULT_KS`.
    epochs : int, optional
        Epochs of each run (default: :func:`default_recipe`'s).
    seed : int
        Seeds the networks, the batch order and g.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    image_size : int, optional
        Side the images are resized to, pixels (>= 4); None: :func:`default_image_size`.
    g : str
        IIC's transformation (:class:`NamedG`).
    resume, overwrite : bool
        Continue the run in ``out``, or replace it (its files only).
    max_unreadable : float
        Largest fraction of unreadable files accepted.
    verbose : bool
        Progress bars and a line per k.

    Returns
    -------
    dict
        ``k`` (chosen), ``runs`` (each k's loss and time), ``images``, ``skipped``, and, with
        class folders, ``acc``, ``nmi``, ``ari``.
    """
    root, seed = Path(root), check_seed("seed", seed)
    if image_size is not None:
        image_size = check_int("image_size", image_size, 4)
    if epochs is not None:
        epochs = check_int("epochs", epochs, 1)
    if k is not None:
        k = check_int("k", k, 2)
    NamedG(g, image_size or DEFAULT_IMAGE_SIZE)  # a bad g is refused before anything is read
    out = prepare_output_dir(out, resume=resume, overwrite=overwrite)
    data = read_image_folder(root, image_size, max_unreadable=max_unreadable, exclude=out, verbose=verbose)
    image_size = data.images.shape[-1]
    ks = candidate_ks(k, len(data.files))
    recipe = default_recipe(image_size, len(data.files))
    if epochs is not None:
        recipe["epochs"] = epochs
    settings = _settings(root, data, ks, g, seed, recipe)
    if resume:
        _check_resumable(out, settings)
    elif overwrite:
        _clear_outputs(out)
    history: dict[str, Any] = {"settings": settings, "runs": []}
    _write_json(out / "history.json", history)  # the folder holds a run from now on
    if data.skipped:
        with atomic_write(out / "skipped.txt") as f:
            f.writelines(f"{name}\t{why}\n" for name, why in data.skipped)
    models = {}
    for i, kk in enumerate(ks):
        if verbose:
            shape = tuple(data.images.shape[1:])
            print(f"k = {kk} ({i + 1} of {len(ks)}): {len(data.files)} images of {shape}", flush=True)
        ckpt = out / "checkpoints" / f"k{kk}.pt"
        ckpt.parent.mkdir(exist_ok=True)
        model = IIC(
            kk,
            n_overclusters=5 * kk,
            g=NamedG(g, image_size, seed=seed),
            seed=seed,
            device=device,
            verbose=verbose,
            checkpoint=str(ckpt),
            **recipe,
        )
        model.fit(data.images, data.labels, resume=resume and ckpt.is_file())
        models[kk] = model
        history["runs"].append(_run_record(model, kk))
        _write_json(out / "history.json", history)
    runs = history["runs"]
    best = min(runs, key=lambda r: r["iic_loss"])
    model = models[best["k"]]
    proba = model.predict_proba(data.images)
    clusters, confidence = proba.argmax(1), proba.max(1)
    write_labels(out / "labels.csv", data.files, clusters, confidence)
    write_montages(out, data.images, clusters, confidence, best["k"])
    summary = {
        "k": best["k"],
        "images": len(data.files),
        "skipped": len(data.skipped),
        "runs": [{key: r[key] for key in ("k", "iic_loss", "mi", "train_seconds")} for r in runs],
    }
    if data.labels is not None:
        for r in summary["runs"]:
            r.update(evaluate(data.labels, models[r["k"]].predict(data.images)))
        summary.update(evaluate(data.labels, clusters))
        summary["classes"] = data.classes
        _write_json(out / "metrics.json", summary)
    return summary
