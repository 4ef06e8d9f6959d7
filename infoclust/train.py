"""Train IIC or Deep InfoMax from the command line, on one process or on many with ``torchrun``.

For runs that do not belong in a notebook: paper-scale training that lasts hours, on one
GPU or several, resumable after a crash or a pre-emption::

    python -m infoclust.train iic --dataset fashion-mnist --epochs 50 --out runs/x
    python -m infoclust.train iic --dataset fashion-mnist --epochs 50 --out runs/x --resume
    torchrun --nproc-per-node 4 -m infoclust.train iic --dataset fashion-mnist --epochs 50 --out runs/x
    python -m infoclust.train dim --dataset mnist5k --epochs 10 --out runs/d

The options of ``iic`` are chapter 03's parameters (``--n-clusters``, ``--batch-size``,
``--repeats``, ``--lr``, ``--lamb``, ``--trunk``, ``--input-size``, ``--crop``, ...): each
given one changes the recipe that ``--preset`` names (:data:`infoclust.iic.PRESETS`; ``cpu``,
chapter 03's, by default). Those of ``dim`` are chapter 02's. Under ``torchrun`` the processes
train data-parallel (:mod:`infoclust.distributed`): ``--batch-size`` is the global batch, split
evenly, and the result is that of one process on the same data. Rank 0 shows the progress bar and writes, in
``--out``: ``checkpoint.pt`` after every epoch (atomically; ``--resume`` continues from it),
``history.json``, and ``metrics.json`` with the final scores (accuracy, NMI and ARI of IIC's
lowest-loss sub-head; the linear-probe accuracy of DIM's codes), the settings and the world
size.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from . import distributed
from .augment import crop_resize
from .checkpoint import prepare_output_dir
from .codepath import code_path
from .data import DATASETS, load_dataset
from .dim import PRESETS, DeepInfoMax, linear_probe
from .iic import IIC, TRUNKS
from .iic import PRESETS as IIC_PRESETS
from .iic import preset as iic_preset
from .metrics import evaluate
from .mi import ESTIMATORS
from .utils import ParameterError, atomic_write, check_int, device_name

__all__ = ["build_parser", "main", "default_view", "check_same_view"]


def default_view(side: int) -> tuple[int, int]:
    """The view of the images when ``--crop`` and ``--input-size`` are not given.

    Parameters
    ----------
    side : int
        The images' side, px.

    Returns
    -------
    crop, input_size : int
        The chapter's 20 px centre of 28 px digits, resized to 16 px; for other sides the
        whole image, not resized.
    """
    return (20, 16) if side == 28 else (side, side)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="mnist5k", choices=DATASETS)
    p.add_argument(
        "--data-root", default=None, help="folder of torchvision's files (default ~/.cache/infoclust)"
    )
    p.add_argument("--download", action="store_true", help="let torchvision download a missing data set")
    p.add_argument("--n-images", type=int, default=None, help="train on a random subset of this many images")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="Adam learning rate (default: the iic preset's; 1e-3 for dim)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of each process (default: torch's)")
    p.add_argument(
        "--out",
        default=None,
        help="folder for checkpoint.pt, history.json, metrics.json (default runs/MODEL-DATASET)",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if it exists")
    p.add_argument("--overwrite", action="store_true", help="start afresh in an OUT that holds a run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m infoclust.train``: sub-commands ``iic`` and ``dim``.

    Returns
    -------
    argparse.ArgumentParser
        The parser; its ``model`` attribute names the sub-command.
    """
    parser = argparse.ArgumentParser(prog="python -m infoclust.train", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="model", required=True)
    iic = sub.add_parser("iic", help="Invariant Information Clustering (chapter 03)")
    _common(iic)
    iic.add_argument(
        "--crop",
        type=int,
        default=None,
        help="centre crop, px (default: 20 of 28 px digits, else the whole image)",
    )
    iic.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="the crop is resized to this side, px (default: 16 for 28 px digits, else the crop)",
    )
    iic.add_argument(
        "--preset",
        default="cpu",
        choices=list(IIC_PRESETS),
        help="the recipe (infoclust.iic.PRESETS) that the options below change (default: cpu, chapter 03's)",
    )
    iic.add_argument("--trunk", default=None, choices=list(TRUNKS), help="default: the preset's")
    iic.add_argument("--n-clusters", type=int, default=10)
    iic.add_argument("--n-overclusters", type=int, default=50, help="0: no overclustering head")
    iic.add_argument("--n-subheads", type=int, default=None, help="default: the preset's")
    iic.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="distinct images per (global) batch; default: the preset's",
    )
    iic.add_argument("--repeats", type=int, default=None, help="default: the preset's")
    iic.add_argument("--lamb", type=float, default=None, help="default: the preset's")
    iic.add_argument("--main-passes", type=int, default=2)
    iic.add_argument("--over-passes", type=int, default=1)
    iic.add_argument("--eval-every", type=int, default=1, help="score on all the data every this many epochs")
    dim = sub.add_parser("dim", help="Deep InfoMax (chapter 02)")
    _common(dim)
    dim.add_argument("--preset", default="DIM(L)", choices=list(PRESETS))
    dim.add_argument("--estimator", default="jsd", choices=list(ESTIMATORS))
    dim.add_argument("--local-critic", default="dot", choices=["dot", "concat"])
    dim.add_argument("--code-dim", type=int, default=64)
    dim.add_argument("--batch-size", type=int, default=64)
    dim.set_defaults(lr=1e-3)
    return parser


def _load(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    """The data set, read by rank 0 first when it may download (so that ranks do not race)."""

    def read() -> tuple[torch.Tensor, torch.Tensor]:
        return load_dataset(
            args.dataset, root=args.data_root, download=args.download, n=args.n_images, seed=args.seed
        )

    if args.download and distributed.is_distributed():
        if distributed.is_main_process():
            read()
        dist.barrier()
    return read()


def check_same_view(out: Path, view: dict[str, Any], resume: bool) -> None:
    """Record the options that choose a run's data and view in ``out/run.json``; a resume must match.

    A fresh run writes them (rank 0); ``--resume`` compares them with the recorded ones, before
    any training. The estimators check the images themselves too
    (:func:`~infoclust.checkpoint.data_fingerprint`); this names the command's option.

    Parameters
    ----------
    out : Path
        The run's folder (:func:`~infoclust.checkpoint.prepare_output_dir` checked it).
    view : dict
        Option name (``dataset``, ``n_images``, ``seed``, ``crop``, ``input_size``) -> value.
    resume : bool
        The run continues (``--resume``): compare instead of write.

    Raises
    ------
    ParameterError
        On a resume, naming the first option that differs from the recorded one and both values.
    """
    path = out / "run.json"
    if resume and path.is_file():
        saved = json.loads(path.read_text())
        for name, value in view.items():
            if saved.get(name) != value:
                option = "--" + name.replace("_", "-")
                raise ParameterError(
                    f"{option} {value} differs from the run's {option} {saved.get(name)} ({path}): "
                    f"resume with the run's data and view, or start afresh in another folder"
                )
    elif distributed.is_main_process():
        with atomic_write(path) as f:
            json.dump(view, f, indent=1)


def _iic_recipe(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe ``--preset`` names, changed by the recipe options given (absent ones are None)."""
    return iic_preset(
        args.preset,
        trunk=args.trunk,
        n_subheads=args.n_subheads,
        batch_size=args.batch_size,
        repeats=args.repeats,
        lr=args.lr,
        lamb=args.lamb,
    )


def _iic(args: argparse.Namespace, x: torch.Tensor, y: torch.Tensor) -> tuple[dict, list]:
    crop, size = default_view(x.shape[-1])
    crop = crop if args.crop is None else check_int("--crop", args.crop, 1, x.shape[-1])
    size = size if args.input_size is None else check_int("--input-size", args.input_size, 1)
    check_same_view(args.out, {**_data_options(args, x), "crop": crop, "input_size": size}, args.resume)
    x = crop_resize(x, crop, size)
    model = IIC(
        args.n_clusters,
        n_overclusters=args.n_overclusters or None,
        epochs=args.epochs,
        main_passes=args.main_passes,
        over_passes=args.over_passes,
        eval_every=args.eval_every,
        **_iic_recipe(args),
        seed=args.seed,
        device=args.device,
        verbose=not args.quiet,
        checkpoint=str(args.out / "checkpoint.pt"),
    )
    model.fit(x, y, resume=args.resume)
    last = model.history_[-1]
    scores = evaluate(y, model.labels_)
    metrics = {
        "subhead": model.best_subhead_,
        **{k: float(v) for k, v in scores.items()},
        "subhead_acc": [float(a) for a in last["acc"]],
        "subhead_loss": [float(v) for v in last["loss"]],
        "epochs": last["epoch"],
        "pairs": last["pairs"],
        "train_seconds": model.train_seconds_,
        "pairs_per_second": last["pairs"] / model.train_seconds_ if model.train_seconds_ else math.nan,
        "crop": crop,
        "input_size": size,
        "device": device_name(model.device_),
    }
    history = [{k: v for k, v in rec.items() if k != "joint"} for rec in model.history_]
    return metrics, history


def _data_options(args: argparse.Namespace, x: torch.Tensor) -> dict[str, Any]:
    """The options that choose the images: the data set and the subset (its size and seed)."""
    return {"dataset": args.dataset, "n_images": len(x), "seed": args.seed}


def _dim(args: argparse.Namespace, x: torch.Tensor, y: torch.Tensor) -> tuple[dict, dict]:
    check_same_view(args.out, _data_options(args, x), args.resume)
    model = DeepInfoMax(
        **PRESETS[args.preset],
        estimator=args.estimator,
        local_critic=args.local_critic,
        code_dim=args.code_dim,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        verbose=not args.quiet,
        checkpoint=str(args.out / "checkpoint.pt"),
    )
    model.fit(x, resume=args.resume)
    codes = model.transform(x)
    metrics = {
        "linear_probe_acc": linear_probe(codes, y, seed=args.seed),
        "train_seconds": model.train_seconds_,
        "device": device_name(model.device_),
        **{k: float(model.history_[-1][k]) for k in ("global_mi", "local_mi", "prior")},
    }
    history = [{k: v for k, v in rec.items() if k != "callback"} for rec in model.history_]
    return metrics, history


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the command line ``argv``: train, score, and write the run's files (rank 0).

    Under ``torchrun`` it joins the process group (:func:`~infoclust.distributed.init_from_env`)
    and leaves it at the end.

    Parameters
    ----------
    argv : sequence of str or None
        The arguments (:func:`build_parser`); None: ``sys.argv[1:]``.

    Returns
    -------
    dict
        The metrics, on every rank: ``model``, ``dataset``, ``images``, ``world_size``,
        ``settings`` (the parsed options), ``torch`` (its version), ``code_path``
        (:func:`~infoclust.codepath.code_path`: processor, CPU capability, BLAS) and the
        scores (e.g. ``acc``, ``nmi``, ``ari``); rank 0 also writes them to ``metrics.json``
        in the output folder, beside ``history.json``.
    """
    args = build_parser().parse_args(argv)
    args.out = Path("runs") / f"{args.model}-{args.dataset}" if args.out is None else args.out
    args.out = prepare_output_dir(args.out, resume=args.resume, overwrite=args.overwrite)
    if args.threads is not None:
        torch.set_num_threads(check_int("threads", args.threads, 1))
    joined = distributed.init_from_env()
    try:
        x, y = _load(args)
        metrics, history = (_iic if args.model == "iic" else _dim)(args, x, y)
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        out = {
            "model": args.model,
            "dataset": args.dataset,
            "images": len(x),
            "world_size": distributed.world_size(),
            "settings": settings,
            "torch": torch.__version__,
            "code_path": code_path(),
            **metrics,
        }
        if distributed.is_main_process():
            for name, content in (("history.json", history), ("metrics.json", out)):
                with atomic_write(args.out / name) as f:
                    json.dump(_jsonable(content), f, indent=1)
            shown = {k: out[k] for k in ("acc", "nmi", "ari", "linear_probe_acc") if k in out}
            scores = ", ".join(f"{k} {v:.4f}" for k, v in shown.items())
            print(
                f"{args.model} on {args.dataset} ({distributed.world_size()} process(es)): {scores}; "
                f"written to {args.out}",
                flush=True,
            )
        return out
    finally:
        if joined:
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
