"""The ``infoclust`` command (also ``python -m infoclust``): cluster a folder of images with IIC.

::

    infoclust cluster photos/ --out runs/photos            # k chosen among 5, 10, 15, 20
    infoclust cluster photos/ --out runs/photos --k 8 --g crop+rotate --epochs 20
    infoclust cluster photos/ --out runs/photos --resume   # after Ctrl-C: continue
    infoclust --version

What it writes and how it chooses k: :func:`infoclust.cluster.cluster_folder`. Training a
data set by name, on one process or under ``torchrun``, is ``python -m infoclust.train``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from . import __version__
from .cluster import DEFAULT_G, DEFAULT_IMAGE_SIZE, DEFAULT_KS, G_PARTS, cluster_folder
from .utils import ParameterError, check_int

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``infoclust``: ``--version`` and the sub-command ``cluster``.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(prog="infoclust", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"infoclust {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser(
        "cluster",
        help="cluster a folder of PNG and JPEG images with IIC",
        description="Cluster the PNG and JPEG images under FOLDER with IIC; write labels.csv, montages, "
        "history.json, metrics.json (when the images lie in class folders) and checkpoints to --out.",
    )
    c.add_argument(
        "folder", type=Path, help="folder of images (class sub-folders optional, used for scoring only)"
    )
    c.add_argument("--out", type=Path, default=None, help="output folder (default runs/cluster-FOLDERNAME)")
    c.add_argument(
        "--k",
        type=int,
        default=None,
        help="number of clusters (default: the one of lowest IIC loss among "
        f"{', '.join(map(str, DEFAULT_KS))})",
    )
    c.add_argument("--epochs", type=int, default=None, help="epochs per k (default: about 2,000 batch steps)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1, mps")
    c.add_argument(
        "--image-size",
        type=int,
        default=None,
        help=f"side the images are resized to, px (default {DEFAULT_IMAGE_SIZE}, or the images' median "
        "side if smaller; 32 or more on a GPU)",
    )
    c.add_argument(
        "--g",
        default=DEFAULT_G,
        help=f"IIC's transformation: names of {', '.join(G_PARTS)} joined by '+' (default {DEFAULT_G})",
    )
    c.add_argument(
        "--resume", action="store_true", help="continue the run in --out (after Ctrl-C or a crash)"
    )
    c.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    c.add_argument(
        "--max-unreadable",
        type=float,
        default=0.1,
        help="largest fraction of unreadable image files skipped (default 0.1); more is an error",
    )
    c.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    c.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _report(summary: dict, out: Path) -> str:
    runs = "; ".join(f"k={r['k']}: loss {r['iic_loss']:.3f}" for r in summary["runs"])
    scores = (
        f", accuracy {summary['acc']:.4f}, NMI {summary['nmi']:.4f}, ARI {summary['ari']:.4f}"
        if "acc" in summary
        else ""
    )
    return (
        f"{summary['images']} images ({summary['skipped']} skipped) in {summary['k']} clusters{scores}. "
        f"IIC loss -I per k: {runs}. Written to {out}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv``.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, 2 for bad options or input (named on stderr), 130
        after Ctrl-C (the checkpoints keep each k's last finished epoch: ``--resume``
        continues).
    """
    args = build_parser().parse_args(argv)
    out = args.out if args.out is not None else Path("runs") / f"cluster-{args.folder.resolve().name}"
    try:
        if args.threads is not None:
            torch.set_num_threads(check_int("threads", args.threads, 1))
        summary = cluster_folder(
            args.folder,
            out,
            k=args.k,
            epochs=args.epochs,
            seed=args.seed,
            device=args.device,
            image_size=args.image_size,
            g=args.g,
            resume=args.resume,
            overwrite=args.overwrite,
            max_unreadable=args.max_unreadable,
            verbose=not args.quiet,
        )
    except (ParameterError, FileNotFoundError, TypeError) as err:
        print(f"infoclust cluster: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\ninfoclust cluster: interrupted; {out / 'checkpoints'} keeps each k's last finished epoch: "
            f"the same command with --resume continues",
            file=sys.stderr,
        )
        return 130
    print(_report(summary, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
