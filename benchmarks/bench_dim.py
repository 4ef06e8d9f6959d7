"""Deep InfoMax training throughput (images/s) for DIM(G) and DIM(L), on the CPU and on a GPU.

Each setting trains on MNIST-5k batches of 64 (the paper's batch size): a few warm-up
alternations (encoder step + discriminator step), then ``--steps`` timed ones. Prints one
line per device, preset and estimator. The GPU is measured when CUDA is present.
Usage: ``.venv/bin/python benchmarks/bench_dim.py [--steps 20] [--estimators jsd nce]``.
"""

from __future__ import annotations

import argparse

import torch

import infoclust as ic
from infoclust.dim import PRESETS, DeepInfoMax


def throughput(
    x: torch.Tensor, preset: str, estimator: str, device: str, steps: int, batch_size: int, local_critic: str
) -> float:
    """Images per second of :meth:`DeepInfoMax.partial_fit` on batches of ``x``."""
    model = DeepInfoMax(
        **PRESETS[preset],
        estimator=estimator,
        local_critic=local_critic,
        batch_size=batch_size,
        device=device,
        verbose=False,
    )
    x = x.to(ic.resolve_device(device))
    batches = [x[i * batch_size : (i + 1) * batch_size] for i in range(len(x) // batch_size)]
    for b in batches[:3]:  # warm-up: build the networks, first kernels, allocator
        model.partial_fit(b)
    with ic.timer() as t:
        for i in range(steps):
            model.partial_fit(batches[i % len(batches)])
    return steps * batch_size / t["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--estimators", nargs="+", default=["jsd", "nce"], choices=["jsd", "dv", "nce"])
    parser.add_argument("--local-critic", default="dot", choices=["dot", "concat"])
    args = parser.parse_args()
    x, _ = ic.load_dataset("mnist5k")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; mnist5k, "
        f"batch {args.batch_size}, "
        f"{args.steps} timed steps, local critic {args.local_critic}"
    )
    for device in devices:
        name = ic.utils.device_name(torch.device(device))
        for preset in PRESETS:
            for est in args.estimators:
                ips = throughput(x, preset, est, device, args.steps, args.batch_size, args.local_critic)
                print(f"{device:>4} ({name}) {preset} {est:>3}: {ips:8.0f} images/s", flush=True)


if __name__ == "__main__":
    main()
