"""infoclust KMeans against scikit-learn KMeans: same data, k, n_init and iteration cap.

Prints one line per data set and thread count with both times and the ratio infoclust /
scikit-learn (below 1: infoclust is faster), on the CPU, beside the ratio before issue 25's
speed-ups, and the GPU time when CUDA is present. Both libraries get the same number of threads
(torch's and OpenMP's, ``--threads``), and their runs alternate (infoclust, scikit-learn,
infoclust, ...), so that a machine shared with other work slows both alike; the best of
``--repeats`` wall times counts, with the ratio of CPU seconds (``time.process_time``) beside,
and the load average of the machine at the start and the end.
Usage: ``.venv/bin/python benchmarks/bench_kmeans.py [--repeats 3] [--threads 1 2]``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from sklearn.cluster import KMeans as SKLearnKMeans
from threadpoolctl import threadpool_limits

import _common
import infoclust as ic

#: Ratio infoclust / scikit-learn before issue 25's speed-ups (k=10, n_init=3, max_iter=100),
#: by (data set, threads): the issue's numbers (2 threads) and a session's under heavy load (1).
PREVIOUS = {
    ("mnist5k", 1): 1.40,
    ("mnist5k", 2): 1.09,
    ("fashion-mnist 70k", 1): 1.26,
    ("fashion-mnist 70k", 2): 1.10,
}


def large_set() -> tuple[str, torch.Tensor]:
    """70,000 x 784: Fashion-MNIST when its files are here, else MNIST-5k tiled with noise."""
    try:
        x, _ = ic.load_dataset("fashion-mnist")
        return "fashion-mnist 70k", x.reshape(len(x), -1)
    except ic.DatasetUnavailable:
        x, _ = ic.load_dataset("mnist5k")
        x = x.reshape(len(x), -1).repeat(14, 1)
        g = torch.Generator().manual_seed(0)
        return "mnist5k x14 + noise", (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)


def best_time(fn, repeats: int) -> float:
    return _common.best_time(fn, repeats)[0]


def alternating_times(fns: dict, repeats: int) -> dict[str, tuple[float, float]]:
    """Best wall time and best CPU time of each function, their calls alternating ``repeats`` times."""
    wall = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: (min(wall[name]), min(cpu[name])) for name in fns}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    parser.add_argument("--n-init", type=int, default=3)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--sets", nargs="+", choices=("small", "large"), default=["small", "large"])
    args = parser.parse_args()
    sets = []
    if "small" in args.sets:
        small, _ = ic.load_dataset("mnist5k")
        sets.append(("mnist5k", small.reshape(len(small), -1)))
    if "large" in args.sets:
        sets.append(large_set())
    print(
        f"torch {torch.__version__}, threads {args.threads}; k=10, n_init={args.n_init}, "
        f"max_iter={args.max_iter}, best of {args.repeats}, alternating; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    kw = dict(n_init=args.n_init, max_iter=args.max_iter, seed=0)
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name, x in sets:
            xn = np.ascontiguousarray(x.numpy())
            fns = {
                "infoclust": lambda: ic.KMeans(10, device="cpu", **kw).fit(x),
                "sklearn": lambda: SKLearnKMeans(
                    10, n_init=args.n_init, max_iter=args.max_iter, random_state=0, algorithm="lloyd"
                ).fit(xn),
            }
            with threadpool_limits(threads):
                times = alternating_times(fns, args.repeats)
            (ours, ours_cpu), (sk, sk_cpu) = times["infoclust"], times["sklearn"]
            before = PREVIOUS.get((name, threads))
            line = (
                f"{name:>22} ({len(x)} x {x.shape[1]}), {threads} thread(s): infoclust {ours:.3f} s, "
                f"scikit-learn {sk:.3f} s, ratio infoclust/sklearn {ours / sk:.2f} (CPU seconds "
                f"{ours_cpu / sk_cpu:.2f}; before: {f'{before:.2f}' if before else 'not measured'}), "
                f"load {os.getloadavg()[0]:.1f}"
            )
            if torch.cuda.is_available():
                xg = x.cuda()
                ic.KMeans(10, device="cuda", **kw).fit(xg)  # warm-up
                gpu = best_time(lambda: ic.KMeans(10, device="cuda", **kw).fit(xg), args.repeats)
                line += f"; GPU {gpu:.3f} s ({torch.cuda.get_device_name()}), sklearn/GPU {sk / gpu:.1f}x"
            print(line, flush=True)


if __name__ == "__main__":
    main()
