"""infoclust KMeans against scikit-learn KMeans: same data, k, n_init and iteration cap.

Prints one line per data set with both times and the ratio infoclust / scikit-learn
(below 1: infoclust is faster), on the CPU, and the GPU time when CUDA is present.
Usage: ``.venv/bin/python benchmarks/bench_kmeans.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.cluster import KMeans as SKLearnKMeans

import _common
import infoclust as ic


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-init", type=int, default=3)
    parser.add_argument("--max-iter", type=int, default=100)
    args = parser.parse_args()
    small, _ = ic.load_dataset("mnist5k")
    sets = [("mnist5k", small.reshape(len(small), -1)), large_set()]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; k=10, n_init={args.n_init}, "
        f"max_iter={args.max_iter}, best of {args.repeats}"
    )
    for name, x in sets:
        xn = np.ascontiguousarray(x.numpy())
        kw = dict(n_init=args.n_init, max_iter=args.max_iter, seed=0)
        ours = best_time(lambda: ic.KMeans(10, device="cpu", **kw).fit(x), args.repeats)
        sk = best_time(
            lambda: SKLearnKMeans(
                10, n_init=args.n_init, max_iter=args.max_iter, random_state=0, algorithm="lloyd"
            ).fit(xn),
            args.repeats,
        )
        line = (
            f"{name:>22} ({len(x)} x {x.shape[1]}): infoclust {ours:.3f} s, scikit-learn {sk:.3f} s, "
            f"ratio infoclust/sklearn {ours / sk:.2f}"
        )
        if torch.cuda.is_available():
            xg = x.cuda()
            ic.KMeans(10, device="cuda", **kw).fit(xg)  # warm-up
            gpu = best_time(lambda: ic.KMeans(10, device="cuda", **kw).fit(xg), args.repeats)
            line += f"; GPU {gpu:.3f} s ({torch.cuda.get_device_name()}), sklearn/GPU {sk / gpu:.1f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()
