"""IIC training throughput and time to 95 % accuracy on mnist5k.

1. Throughput: image pairs (x, g x) per second of training (forward, loss of every
   sub-head, backward, Adam step, and g itself) for a trunk at 24 x 24 with the paper's
   batches of 140 images x 5 repeats. Timed over the second epoch of ``IIC.fit`` on random
   images, so that warm-up (cuDNN autotuning, allocator) is excluded. The authors' 2018 log
   shows about 1,270 pairs/s for the VGG trunk on one GPU.
   With ``--nproc N`` the throughput is measured for 1 and for N data-parallel processes
   (:mod:`infoclust.distributed`: gloo with ``cores / N`` threads each on the CPU, NCCL with
   one GPU each), both started the same way, and their ratio is printed.
2. Time to 95 %: trains the chapter's default CPU recipe (or the one given) on mnist5k for
   ``--epochs`` epochs and reads off the per-epoch history the training seconds until the
   lowest-loss sub-head first reaches 95 % accuracy.

Usage::

    .venv/bin/python benchmarks/bench_iic.py                     # both, on device "auto"
    .venv/bin/python benchmarks/bench_iic.py --skip-accuracy --trunk vgg small
    .venv/bin/python benchmarks/bench_iic.py --device cuda --images 14000
    .venv/bin/python benchmarks/bench_iic.py --skip-accuracy --trunk small --nproc 2

Results are printed and written to ``_build/benchmarks/bench_iic.json``.
"""
from __future__ import annotations

import argparse
import os

import torch

from _common import write_results
import infoclust as ic
from infoclust import distributed as D
from infoclust.augment import crop_resize
from infoclust.iic import IIC

# the default profile of notebooks/03_iic.py (16 x 16 inputs)
CPU_RECIPE = dict(n_overclusters=50, n_subheads=5, trunk="small", batch_size=32, repeats=4, lr=2e-3, lamb=1.5)
CPU_INPUT = 16


def throughput(trunk: str, device: str, images: int, amp: str | bool) -> dict:
    """Pairs per second over the second training epoch (3 passes) on random 24 x 24 images."""
    x = torch.rand(images, 1, 24, 24, generator=torch.Generator().manual_seed(0))  # the same in every process
    model = IIC(trunk=trunk, epochs=2, device=device, amp=amp, verbose=False).fit(x)
    first, second = model.history_[1], model.history_[2]
    pairs = second["pairs"] - first["pairs"]
    seconds = second["seconds"] - first["seconds"]
    return {"trunk": trunk, "pairs": pairs, "seconds": seconds, "pairs_per_s": pairs / seconds}


def throughput_processes(trunk: str, device: str, images: int, amp: str | bool, world: int) -> dict:
    """:func:`throughput` of ``world`` data-parallel local processes (rank 0's clock, all pairs)."""
    dev = ic.resolve_device(device)
    cuda = dev.type == "cuda"
    threads = None if cuda else max(1, (os.cpu_count() or 1) // world)
    res = D.spawn(throughput, world, trunk, device, images, amp, backend="nccl" if cuda else "gloo",
                  threads=threads)[0]
    return {**res, "processes": world, "threads_per_process": threads}


def time_to_accuracy(device: str, epochs: int, target: float, seed: int, recipe: dict) -> dict:
    """Training seconds until the lowest-loss sub-head first reaches ``target`` on mnist5k."""
    x, y = ic.load_dataset("mnist5k")
    x = crop_resize(x, 20, CPU_INPUT)
    model = IIC(**recipe, epochs=epochs, seed=seed, device=device, verbose=False)
    model.fit(x, y)
    reached = None
    for rec in model.history_:
        acc = rec["acc"][rec["subhead"]]
        if acc >= target:
            reached = rec["seconds"]
            break
    best = model.history_[-1]
    return {"recipe": recipe, "seed": seed, "target": target, "seconds_to_target": reached,
            "final_accuracy": best["acc"][model.best_subhead_], "train_seconds": model.train_seconds_,
            "pairs": best["pairs"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--trunk", nargs="+", default=["vgg", "small"])
    parser.add_argument("--images", type=int, default=None,
                        help="random images per epoch (default 280 on CPU, 14000 on GPU)")
    parser.add_argument("--amp", default="auto", choices=["auto", "on", "off"])
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--epochs", type=int, default=15, help="training epochs of the accuracy run")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nproc", type=int, default=None,
                        help="also measure this many data-parallel processes against one (both spawned)")
    args = parser.parse_args()
    dev = ic.resolve_device(args.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    amp = {"auto": "auto", "on": True, "off": False}[args.amp]
    images = args.images or (14_000 if dev.type == "cuda" else 280)
    out = {"device": ic.utils.device_name(dev), "torch": torch.__version__, "throughput": []}
    for trunk in args.trunk:
        runs = ([throughput(trunk, str(dev), images, amp)] if args.nproc is None else
                [throughput_processes(trunk, str(dev), images, amp, w) for w in (1, args.nproc)])
        out["throughput"] += runs
        for res in runs:
            procs = f", {res['processes']} process(es)" if "processes" in res else ""
            print(f"{trunk:>6} trunk, 24x24, {out['device']}{procs}: {res['pairs_per_s']:,.0f} pairs/s "
                  f"({res['pairs']:,} pairs in {res['seconds']:.1f} s)", flush=True)
        if args.nproc is not None:
            print(f"{trunk:>6} trunk: {args.nproc} processes / 1 process = "
                  f"{runs[1]['pairs_per_s'] / runs[0]['pairs_per_s']:.2f}", flush=True)
    if not args.skip_accuracy:
        res = time_to_accuracy(str(dev), args.epochs, args.target, args.seed, CPU_RECIPE)
        out["time_to_accuracy"] = res
        reached = "not reached" if res["seconds_to_target"] is None else f"{res['seconds_to_target']:.0f} s"
        print(f"mnist5k, {CPU_RECIPE}: {args.target:.0%} after {reached}; final accuracy "
              f"{res['final_accuracy']:.4f} after {res['train_seconds']:.0f} s", flush=True)
    write_results("bench_iic", out)


if __name__ == "__main__":
    main()
