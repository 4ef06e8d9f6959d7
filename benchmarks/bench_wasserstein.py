"""Batched entropic W2 (infoclust) against a loop of POT's ``ot.emd2`` and of ``ot.sinkhorn2``.

The same ``--pairs`` random MNIST-5k pairs (28 x 28, as histograms of mass 1, squared
Euclidean pixel cost), each timed as the best of ``--repeats`` runs:

1. ``ot.emd2`` in a Python loop on the full 784-bin histograms (the plain use of POT);
2. :func:`infoclust.w2_exact` (``ot.emd2`` on the supports of the two digits only);
3. ``ot.sinkhorn2`` in a loop, same epsilon and stopping threshold, on the supports
   (with the empty pixels it divides by zero);
4. :func:`infoclust.w2_sinkhorn` on the whole batch (``debiased="cost"`` and ``False``),
   on the CPU and, when CUDA is present, on the GPU; there also on ``--gpu-pairs`` pairs
   in one batch (throughput, pairs/s).

Prints times, ratios to the ``ot.emd2`` loop and the mean / max relative error to the
exact values; writes them to ``_build/benchmarks/bench_wasserstein.json``.
Usage: ``.venv/bin/python benchmarks/bench_wasserstein.py [--pairs 256] [--reg 8]``.
"""
from __future__ import annotations

import argparse

import numpy as np
import ot
import torch

from _common import write_results
import infoclust as ic
from infoclust.wasserstein import grid_cost, to_histogram, w2_exact, w2_sinkhorn


def _errors(values: torch.Tensor | np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    rel = np.abs(np.asarray(values, dtype=np.float64) - exact) / exact
    return float(rel.mean()), float(rel.max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--reg", type=float, default=8.0, help="entropic epsilon, pixels^2")
    parser.add_argument("--tol", type=float, default=1e-3, help="marginal error threshold (both solvers)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument("--gpu-pairs", type=int, default=16384, help="pairs in the GPU throughput batch")
    args = parser.parse_args()
    x, _ = ic.load_dataset("mnist5k", n=2 * args.pairs, seed=args.seed)
    a, b = x[: args.pairs], x[args.pairs:]
    ha, hb = to_histogram(a, torch.float64).numpy(), to_histogram(b, torch.float64).numpy()
    cost = grid_cost(28, 28).numpy()
    print(f"torch {torch.__version__}, POT {ot.__version__}, {torch.get_num_threads()} CPU threads; "
          f"{args.pairs} mnist5k pairs, eps {args.reg:g} px^2, tol {args.tol:g}, best of {args.repeats}")
    rows: dict[str, dict[str, float]] = {}

    def best(fn):
        """(best time in seconds over the repeats, result of the last run)."""
        times = []
        for _ in range(args.repeats):
            with ic.timer() as t:
                result = fn()
            times.append(t["seconds"])
        return min(times), result

    def pot_sinkhorn():
        out = []
        for p, q in zip(ha, hb):
            sp, sq = p > 0, q > 0
            out.append(ot.sinkhorn2(p[sp], q[sq], cost[np.ix_(sp, sq)], args.reg, stopThr=args.tol,
                                    numItermax=10000))
        return np.sqrt(out)

    base, emd_full = best(lambda: np.sqrt([ot.emd2(p, q, cost) for p, q in zip(ha, hb)]))
    rows["ot.emd2 loop (full histograms)"] = {"seconds": base, "pairs": args.pairs}
    seconds, exact = best(lambda: w2_exact(a, b).numpy())
    rows["infoclust.w2_exact (emd2 on supports)"] = {"seconds": seconds, "pairs": args.pairs}
    assert np.allclose(exact, emd_full, rtol=1e-6), "w2_exact disagrees with ot.emd2"
    seconds, pot_sk = best(pot_sinkhorn)
    rows["ot.sinkhorn2 loop (supports)"] = {"seconds": seconds, "pairs": args.pairs,
                                            "errors": _errors(pot_sk, exact)}

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        name = ic.utils.device_name(torch.device(dev))
        ad, bd = a.to(dev), b.to(dev)
        w2_sinkhorn(ad[:4], bd[:4], reg=args.reg)  # warm-up (CUDA context, kernels)
        for mode in ("cost", False):
            seconds, vals = best(lambda: w2_sinkhorn(ad, bd, reg=args.reg, debiased=mode, tol=args.tol).cpu())
            rows[f"infoclust.w2_sinkhorn debiased={mode!r} on {dev} ({name})"] = {
                "seconds": seconds, "pairs": args.pairs, "errors": _errors(vals, exact)}
        if dev == "cuda":
            pool, _ = ic.load_dataset("mnist5k")
            g = torch.Generator().manual_seed(args.seed)
            idx = torch.randint(len(pool), (2, args.gpu_pairs), generator=g)
            big_a, big_b = pool[idx[0]].to(dev), pool[idx[1]].to(dev)
            w2_sinkhorn(big_a, big_b, reg=args.reg, tol=args.tol)  # warm-up at this size
            seconds, _ = best(lambda: w2_sinkhorn(big_a, big_b, reg=args.reg, tol=args.tol))
            rows[f"infoclust.w2_sinkhorn debiased='cost' on {dev}, {args.gpu_pairs} pairs in one batch"] = {
                "seconds": seconds, "pairs": args.gpu_pairs}

    for label, row in rows.items():
        row["pairs/s"] = row["pairs"] / row["seconds"]
        row["speed-up vs ot.emd2 loop"] = row["pairs/s"] / (args.pairs / base)
        err = row.get("errors")
        extra = f", rel. error to exact: mean {100 * err[0]:.2f} %, max {100 * err[1]:.2f} %" if err else ""
        print(f"{label:>72}: {row['seconds']:7.3f} s, {row['pairs/s']:9.1f} pairs/s, "
              f"x{row['speed-up vs ot.emd2 loop']:6.2f} vs ot.emd2 loop{extra}", flush=True)
    write_results("bench_wasserstein", {"args": vars(args), "results": rows})


if __name__ == "__main__":
    main()
