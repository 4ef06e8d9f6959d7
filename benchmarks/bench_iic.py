"""IIC training throughput and time to 95 % accuracy on mnist5k.

1. Throughput: image pairs (x, g x) per second of training (forward, loss of every
   sub-head, backward, Adam step, and g itself) for a trunk at 24 x 24 with the paper's
   batches of 140 images x 5 repeats. Timed over the second epoch of ``IIC.fit`` on random
   images, so that warm-up (cuDNN autotuning, allocator) is excluded. The authors' 2018 log
   shows about 1,270 pairs/s for the VGG trunk on one GPU.
   With ``--nproc N`` the throughput is measured for 1 and for N data-parallel processes
   (:mod:`infoclust.distributed`: gloo with ``cores / N`` threads each on the CPU, NCCL with
   one GPU each), both started the same way, and their ratio is printed.
2. Time to 95 %: trains the CPU recipe of chapters 3 or 9 (``--recipe``) on all of mnist5k
   for ``--epochs`` epochs, once per seed, and reads off the per-epoch history the training
   seconds until the lowest-loss sub-head first reaches 95 % accuracy. On a shared machine
   wall time says little, so each run is also timed in CPU seconds of its process: with
   ``--threads 1`` (the default; chapter 9's worker processes train that way) the CPU time
   is what the run takes on a quiet core, and the time to 95 % is converted with the run's
   own ratio of CPU to wall time.
3. Efficiency (``--efficiency``): the FLOPs of one training pair of a chapter's CPU recipe
   (convolutions and matrix products, forward and backward; torch's FLOP counter) and the
   fraction of the CPU's measured peak (float32 1024 x 1024 matrix products) that training
   reaches, per wall second and, on the CPU, per CPU second of this process (robust to load).
4. Collapses (``--collapses N``): normal IIC alone, trained as chapter 9 trains it
   (:func:`~infoclust.experiment.run_arms`, the paper's g, ``--recipe`` for ``--epochs``
   epochs, one thread per run, two runs at a time) on the held-out seeds 2000 to 2000 + N - 1:
   each seed's accuracy and the runs more than 5 points below their median (chapter 9's
   ``collapse_drop``), i.e. how often IIC collapses without any perturbation.

Usage::

    .venv/bin/python benchmarks/bench_iic.py                     # both, on device "auto"
    .venv/bin/python benchmarks/bench_iic.py --skip-accuracy --trunk vgg small
    .venv/bin/python benchmarks/bench_iic.py --device cuda --images 14000
    .venv/bin/python benchmarks/bench_iic.py --skip-accuracy --trunk small --nproc 2
    .venv/bin/python benchmarks/bench_iic.py --skip-throughput --recipe 09 --seeds 0 1 2 3 4
    .venv/bin/python benchmarks/bench_iic.py --skip-throughput --skip-accuracy --efficiency --epochs 1
    .venv/bin/python benchmarks/bench_iic.py --skip-throughput --skip-accuracy --collapses 20 --epochs 7

Results are printed and written to ``_build/benchmarks/bench_iic.json``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from _common import best_time, write_results
import infoclust as ic
from infoclust import distributed
from infoclust.augment import crop_resize
from infoclust.iic import IIC, preset

# the default profiles of the chapters (12 x 12 inputs, IIC's "cpu" preset): chapter 3 trains the paper's
# three devices, chapter 9 drops the overclustering head (a third less work per epoch, no slower per epoch
# on digits)
CPU_RECIPES = {
    "03": preset("cpu", n_overclusters=50),
    "09": {**preset("cpu"), "n_overclusters": None},
}
CPU_INPUT = 12


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
    res = distributed.spawn(
        throughput, world, trunk, device, images, amp, backend="nccl" if cuda else "gloo", threads=threads
    )[0]
    return {**res, "processes": world, "threads_per_process": threads}


def time_to_accuracy(device: str, epochs: int, target: float, seed: int, recipe: dict) -> dict:
    """Training seconds until the lowest-loss sub-head first reaches ``target`` on mnist5k (wall and CPU)."""
    x, y = ic.load_dataset("mnist5k")
    x = crop_resize(x, 20, CPU_INPUT)
    model = IIC(**recipe, epochs=epochs, seed=seed, device=device, verbose=False)
    cpu, wall = time.process_time(), time.perf_counter()
    model.fit(x, y)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    reached = next((rec for rec in model.history_ if rec["acc"][rec["subhead"]] >= target), None)
    last = model.history_[-1]
    share = cpu / wall  # the part of a core (per thread) that this process got from the machine
    return {
        "seed": seed,
        "target": target,
        "epochs_to_target": None if reached is None else reached["epoch"],
        "seconds_to_target": None if reached is None else reached["seconds"],
        "cpu_seconds_to_target": None if reached is None else reached["seconds"] * share,
        "final_accuracy": last["acc"][last["subhead"]],
        "train_seconds": model.train_seconds_,
        "fit_seconds": wall,
        "process_seconds": cpu,
        "threads": torch.get_num_threads(),
        "pairs": last["pairs"],
    }


def matmul_peak(n: int = 1024, repeats: int = 5, process_time: bool = False) -> float:
    """The CPU's measured peak, GFLOP/s: the best of ``repeats`` float32 n x n matrix products
    (per wall second, or per CPU second of this process with ``process_time``)."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    seconds, _ = best_time(lambda: a @ b, repeats, warmup=1, process_time=process_time)
    return 2 * n**3 / seconds / 1e9


def step_rate(model: IIC, x: torch.Tensor, steps: int = 60) -> float:
    """Pairs per CPU second of ``steps`` training steps (g, forward, loss, backward, Adam) of the
    main head on batches of ``x``: the rate on a quiet core, whatever else shares the machine."""
    batches = x[: (len(x) // model.batch_size) * model.batch_size].split(model.batch_size)
    model._step(batches[0], "main", model._opt)  # warm-up
    start = time.process_time()
    for i in range(steps):
        model._step(batches[i % len(batches)], "main", model._opt)
    return steps * model.batch_size * model.repeats / (time.process_time() - start)


def flops_per_pair(model: IIC, x: torch.Tensor) -> float:
    """FLOPs of one training pair, averaged over an epoch's head schedule (torch's FLOP counter).

    Counts one Adam step of each head on a batch of ``x`` (matrix products and convolutions,
    forward and backward); the element-wise work (batch norm, g, Adam) is left out.
    """
    opt = torch.optim.Adam(model.net_.parameters(), lr=model.lr)
    flops = []
    for head in model._heads():
        with FlopCounterMode(display=False) as counter:
            model._step(x[: model.batch_size], head, opt)
        flops.append(counter.get_total_flops())
    return float(np.mean(flops)) / (model.batch_size * model.repeats)


def efficiency(device: str, recipe: str, epochs: int) -> dict:
    """Pairs/s of a chapter's CPU recipe on mnist5k at 12 px, its FLOPs per pair and the fraction
    of the measured matrix-product peak that it reaches."""
    x, y = ic.load_dataset("mnist5k")
    x = crop_resize(x, 20, CPU_INPUT)
    model = IIC(**CPU_RECIPES[recipe], epochs=epochs, device=device, verbose=False).fit(x, y)
    pairs_per_s = model.history_[-1]["pairs"] / model.train_seconds_
    x = x.to(model.device_)
    flops = flops_per_pair(model, x)
    peak = matmul_peak()
    out = {
        "recipe": recipe,
        "threads": torch.get_num_threads(),
        "pairs_per_s": pairs_per_s,
        "flops_per_pair": flops,
        "peak_gflops": peak,
        "fraction_of_peak": pairs_per_s * flops / 1e9 / peak,
    }
    if model.device_.type == "cpu":  # the same in CPU seconds: robust to a loaded machine
        cpu_rate, cpu_peak = step_rate(model, x), matmul_peak(process_time=True)
        out |= {
            "pairs_per_cpu_s": cpu_rate,
            "peak_gflops_per_cpu_s": cpu_peak,
            "fraction_of_peak_cpu": cpu_rate * flops / 1e9 / cpu_peak,
        }
    return out


def collapses(n_seeds: int, recipe: str, epochs: int, drop: float = 5.0) -> dict:
    """Normal IIC on the held-out seeds 2000, 2001, ...: accuracies and the runs that collapsed."""
    from infoclust.augment import MNISTTransform
    from infoclust.experiment import Arm, collapsed, run_arms

    _, x, y = ic.data.load_first_available(["mnist5k"], seed=0)
    x = crop_resize(x, 20, CPU_INPUT)
    spec = {**CPU_RECIPES[recipe], "n_clusters": 10, "epochs": epochs, "eval_every": epochs, "device": "cpu"}
    seeds = list(range(2000, 2000 + n_seeds))
    wall = time.perf_counter()
    runs = run_arms(x, y, [Arm("normal IIC", MNISTTransform())], seeds, spec, verbose=False)
    fell = collapsed(runs, "normal IIC", drop)["normal IIC"]
    acc = [100 * r.acc for r in runs["normal IIC"]]
    return {
        "seeds": seeds,
        "accuracy": acc,
        "median": float(np.median(acc)),
        "drop": drop,
        "collapsed": fell,
        "seconds": time.perf_counter() - wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--trunk", nargs="+", default=["vgg", "small"])
    parser.add_argument(
        "--images", type=int, default=None, help="random images per epoch (default 280 on CPU, 14000 on GPU)"
    )
    parser.add_argument("--amp", default="auto", choices=["auto", "on", "off"])
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument(
        "--efficiency",
        action="store_true",
        help="also train --recipe on mnist5k at 12 px (--epochs) and report FLOPs/pair and the fraction "
        "of the matrix-product peak reached, with --threads threads",
    )
    parser.add_argument(
        "--recipe", default="09", choices=sorted(CPU_RECIPES), help="the chapter whose recipe to time"
    )
    parser.add_argument(
        "--collapses", type=int, default=0, help="train normal IIC on this many held-out seeds (2000, ...)"
    )
    parser.add_argument("--epochs", type=int, default=5, help="training epochs of the accuracy runs")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the accuracy runs")
    parser.add_argument(
        "--nproc",
        type=int,
        default=None,
        help="also measure this many data-parallel processes against one (both spawned)",
    )
    args = parser.parse_args()
    dev = ic.resolve_device(args.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    amp = {"auto": "auto", "on": True, "off": False}[args.amp]
    images = args.images or (14_000 if dev.type == "cuda" else 280)
    out = {"device": ic.utils.device_name(dev), "torch": torch.__version__, "throughput": []}
    for trunk in [] if args.skip_throughput else args.trunk:
        runs = (
            [throughput(trunk, str(dev), images, amp)]
            if args.nproc is None
            else [throughput_processes(trunk, str(dev), images, amp, w) for w in (1, args.nproc)]
        )
        out["throughput"] += runs
        for res in runs:
            procs = f", {res['processes']} process(es)" if "processes" in res else ""
            print(
                f"{trunk:>6} trunk, 24x24, {out['device']}{procs}: {res['pairs_per_s']:,.0f} pairs/s "
                f"({res['pairs']:,} pairs in {res['seconds']:.1f} s)",
                flush=True,
            )
        if args.nproc is not None:
            print(
                f"{trunk:>6} trunk: {args.nproc} processes / 1 process = "
                f"{runs[1]['pairs_per_s'] / runs[0]['pairs_per_s']:.2f}",
                flush=True,
            )
    if args.efficiency:
        torch.set_num_threads(args.threads)
        eff = out["efficiency"] = efficiency(str(dev), args.recipe, args.epochs)
        print(
            f"chapter {eff['recipe']} recipe, 12 px, {eff['threads']} thread(s): "
            f"{eff['pairs_per_s']:,.0f} pairs/s, "
            f"{eff['flops_per_pair'] / 1e6:.2f} MFLOP/pair (convolutions and matrix products) = "
            f"{eff['pairs_per_s'] * eff['flops_per_pair'] / 1e9:.1f} GFLOP/s, "
            f"{eff['fraction_of_peak']:.0%} of the measured peak ({eff['peak_gflops']:.1f} GFLOP/s, "
            f"float32 1024 x 1024 matrix products)",
            flush=True,
        )
        if "pairs_per_cpu_s" in eff:
            print(
                f"  per CPU second (training steps; the matrix products likewise): "
                f"{eff['pairs_per_cpu_s']:,.0f} pairs = "
                f"{eff['pairs_per_cpu_s'] * eff['flops_per_pair'] / 1e9:.1f} GFLOP, "
                f"{eff['fraction_of_peak_cpu']:.0%} of {eff['peak_gflops_per_cpu_s']:.1f} GFLOP",
                flush=True,
            )
    if not args.skip_accuracy:
        torch.set_num_threads(args.threads)
        recipe = CPU_RECIPES[args.recipe]
        runs = [time_to_accuracy(str(dev), args.epochs, args.target, seed, recipe) for seed in args.seeds]
        out["time_to_accuracy"] = {
            "recipe": recipe,
            "chapter": args.recipe,
            "input_size": CPU_INPUT,
            "runs": runs,
            "mean_final_accuracy": float(np.mean([r["final_accuracy"] for r in runs])),
        }
        for r in runs:
            reached = (
                "not reached"
                if r["seconds_to_target"] is None
                else f"epoch {r['epochs_to_target']}, {r['seconds_to_target']:.0f} s wall, "
                f"{r['cpu_seconds_to_target']:.0f} CPU s"
            )
            print(
                f"chapter {args.recipe} recipe, seed {r['seed']}, {r['threads']} thread(s): "
                f"{args.target:.0%} at "
                f"{reached}; after {args.epochs} epochs {r['final_accuracy']:.4f}",
                flush=True,
            )
        print(f"mean final accuracy {out['time_to_accuracy']['mean_final_accuracy']:.4f}", flush=True)
    if args.collapses:
        col = out["collapses"] = collapses(args.collapses, args.recipe, args.epochs)
        print(
            f"normal IIC, chapter {args.recipe} recipe, {args.epochs} epochs, seeds {col['seeds'][0]}-"
            f"{col['seeds'][-1]}: {len(col['collapsed'])} of {len(col['seeds'])} runs more than "
            f"{col['drop']:g} points below the median {col['median']:.2f} % (seeds {col['collapsed']}); "
            f"accuracies {[round(a, 2) for a in col['accuracy']]}; {col['seconds']:.0f} s",
            flush=True,
        )
    write_results("bench_iic", out)


if __name__ == "__main__":
    main()
