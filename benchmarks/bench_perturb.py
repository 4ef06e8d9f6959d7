"""Throughput of the perturbations of talk section 4: projections, ADef and Algorithm 1.

1. Projections per second: :func:`projections_per_second` (Wong et al.'s projected Sinkhorn
   onto a Wasserstein ball, 28 x 28 images).
2. ADef images per second: :func:`infoclust.adef.adef` with the paper's MNIST settings
   (sigma 0.5, overshoot 1.2, all candidates) against the talk's random classifier on
   mnist5k digits, a fixed number of iterations per image (``--adef-iter``, no early stop is
   possible for a digit the random net cannot flip, so the count is reported too).
3. Algorithm 1 images per second: :func:`infoclust.w2_algorithm.w2_perturbation` on the same
   digits (eps 0.5, eta 0.25, alpha 0.25, at most 15 steps), with the mean number of
   accepted steps; its exact W2 runs on the CPU whatever the device.

Every measurement runs once to warm up and then ``--repeats`` times; the best time counts.
Runs on the CPU and, when one is present, on the GPU.

Usage::

    .venv/bin/python benchmarks/bench_perturb.py
    .venv/bin/python benchmarks/bench_perturb.py --batch 256 --devices cpu

Results are printed and written to ``_build/benchmarks/bench_perturb.json``.
"""
from __future__ import annotations

import argparse

import torch

import _common
from _common import write_results
import infoclust as ic
from infoclust.adef import adef
from infoclust.classifiers import random_classifier
from infoclust.w2_algorithm import w2_perturbation
from infoclust.projected_sinkhorn import project_wasserstein_ball


def best_time(fn, repeats: int) -> tuple[float, object]:
    """One warm-up call, then the shortest of ``repeats`` timed ones, and its result."""
    return _common.best_time(fn, repeats, warmup=1)


def projections_per_second(
    batch_size: int = 100,
    image_size: int = 28,
    channels: int = 1,
    *,
    eps: float = 0.5,
    lam: float = 1000.0,
    kernel_size: int = 5,
    max_iter: int = 50,
    repeats: int = 3,
    device: str | torch.device = "auto",
    seed: int = 0,
) -> dict:
    """Throughput of ``project_wasserstein_ball`` on random sparse images.

    Each image: uniform noise with 80 % of the pixels zeroed (digit-like sparsity), and
    ``w`` = the image plus uniform noise of size 0.1. Runs once to warm up, then
    ``repeats`` times; reports the best time.

    Returns
    -------
    dict
        ``images_per_second``, ``seconds`` (best batch time), ``n_iter`` and the
        ``device`` used.
    """
    dev = ic.resolve_device(device)
    gen = torch.Generator().manual_seed(seed)
    shape = (batch_size, channels, image_size, image_size)
    x = torch.rand(shape, generator=gen) * (torch.rand(shape, generator=gen) < 0.2)
    w = x + 0.1 * torch.rand(shape, generator=gen)
    x, w = x.to(dev), w.to(dev)
    times, n_it = [], 0
    for _ in range(repeats + 1):
        with ic.timer() as tm:
            _, info = project_wasserstein_ball(w, x, eps, lam=lam, kernel_size=kernel_size,
                                               max_iter=max_iter, return_info=True)
        times.append(tm["seconds"])
        n_it = info["n_iter"]
    best = min(times[1:])
    return {"images_per_second": batch_size / best, "seconds": best, "n_iter": n_it,
            "device": str(dev)}


def bench_adef(x: torch.Tensor, model, iters: int, repeats: int) -> dict:
    seconds, res = best_time(lambda: adef(model, x, sigma=0.5, overshoot=1.2, max_iter=iters), repeats)
    return {"images_per_second": len(x) / seconds, "seconds": seconds, "batch": len(x),
            "mean_iterations": res.iterations.float().mean().item(), "changed": res.changed.float().mean().item()}


def bench_algorithm1(x: torch.Tensor, model, repeats: int) -> dict:
    def run():
        return w2_perturbation(model, x, 0.5, 0.25, alpha=0.25, sigma=0.5, max_steps=15,
                               generator=torch.Generator().manual_seed(0))
    seconds, res = best_time(run, repeats)
    return {"images_per_second": len(x) / seconds, "seconds": seconds, "batch": len(x),
            "mean_steps": res.steps.float().mean().item()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when present")
    parser.add_argument("--batch", type=int, default=64, help="digits per ADef / Algorithm 1 batch")
    parser.add_argument("--proj-batch", type=int, default=100, help="images per projection batch")
    parser.add_argument("--adef-iter", type=int, default=10, help="ADef iteration cap")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    x_cpu, _ = ic.load_dataset("mnist5k", n=args.batch, seed=0)
    out = {"torch": torch.__version__, "runs": []}
    for name in devices:
        dev = ic.resolve_device(name)
        x = x_cpu.to(dev)
        model = random_classifier(1, 10, seed=0, device=dev)
        run = {"device": str(dev), "device_name": ic.utils.device_name(dev),
               "projection": projections_per_second(args.proj_batch, device=dev, repeats=args.repeats),
               "adef": bench_adef(x, model, args.adef_iter, args.repeats),
               "algorithm1": bench_algorithm1(x, model, args.repeats)}
        out["runs"].append(run)
        print(f"{run['device_name']}:", flush=True)
        print(f"  projected Sinkhorn: {run['projection']['images_per_second']:,.1f} projections/s "
              f"(batch {args.proj_batch}, {run['projection']['n_iter']} iterations)")
        a = run["adef"]
        print(f"  ADef: {a['images_per_second']:,.1f} images/s (batch {a['batch']}, "
              f"{a['mean_iterations']:.1f} iterations on average, label changed {a['changed']:.0%})")
        b = run["algorithm1"]
        print(f"  Algorithm 1: {b['images_per_second']:,.1f} images/s (batch {b['batch']}, "
              f"{b['mean_steps']:.2f} accepted steps on average)", flush=True)
    write_results("bench_perturb", out)


if __name__ == "__main__":
    main()
