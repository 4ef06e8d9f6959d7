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

Then the peer table (:func:`peer_table`): on ``--peer-pairs`` of the same pairs, one thread
for every solver (``--threads``, CPU seconds of this process, so that other work on a
shared machine slows no one), each solver over a ladder of its accuracy setting:

* the ``ot.emd2`` loop (exact reference) and :func:`infoclust.w2_exact`;
* POT's batched solver ``ot.batch.solve_batch`` (dense cost per pair, Sinkhorn, log-domain
  below 1 px^2), read off as the transport cost of its plan;
* GeomLoss's ``SamplesLoss("sinkhorn", backend="tensorized")`` on the pixel centres
  (GeomLoss's image solver needs pykeops); skipped with a message where GeomLoss is absent
  (``pip install infoclust[bench]``);
* :func:`infoclust.w2_sinkhorn` (``debiased="cost"``).

For each accuracy tier (:data:`TIERS`: mean relative error to exact within 2 %; within
0.5 % on the pairs with W2 > 2 px) each solver's fastest setting that meets it, its pairs/s,
and the ratio of ``w2_sinkhorn`` to the best peer; then the small-perturbation row: the
error of every solver at its 2 % setting on digits against their own random deformation
(:func:`deformation_pairs`, 0.5, 1, 2 and 4 px). GPU rows are added when CUDA is present.

Prints times, ratios and errors; writes them to ``_build/benchmarks/bench_wasserstein.json``.
Usage: ``.venv/bin/python benchmarks/bench_wasserstein.py [--pairs 256] [--reg 8] [--peer-pairs 32]``.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Callable

import numpy as np
import ot
import torch

from _common import best_time, write_results
import infoclust as ic
from infoclust.deform import RandomDeformation
from infoclust.wasserstein import grid_cost, to_histogram, w2_exact, w2_sinkhorn

#: Accuracy tiers of the peer table: name -> (pairs counted, largest mean relative error).
TIERS = {"mean error <= 2 %": (0.0, 0.02), "mean error <= 0.5 % on pairs with W2 > 2 px": (2.0, 0.005)}
#: Deformation sizes (T-norm, pixels) of the small-perturbation row.
MAGNITUDES = (0.5, 1.0, 2.0, 4.0)


def _errors(values: torch.Tensor | np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    rel = np.abs(np.asarray(values, dtype=np.float64) - exact) / exact
    return float(rel.mean()), float(rel.max())


def _grid_points(h: int, w: int, n: int, device) -> torch.Tensor:
    """Pixel centres (row, column) of an h x w grid in pixels, repeated for n problems: (n, h*w, 2)."""
    ii, jj = torch.meshgrid(
        torch.arange(h, dtype=torch.float32, device=device),
        torch.arange(w, dtype=torch.float32, device=device),
        indexing="ij",
    )
    return torch.stack((ii.flatten(), jj.flatten()), 1).expand(n, -1, -1).contiguous()


def pot_emd2_loop(a: torch.Tensor, b: torch.Tensor, setting: None = None) -> np.ndarray:
    """Exact W2 (px) by a loop of ``ot.emd2`` on the full histograms (the plain use of POT)."""
    ha, hb = to_histogram(a.cpu(), torch.float64).numpy(), to_histogram(b.cpu(), torch.float64).numpy()
    cost = grid_cost(*a.shape[-2:]).numpy()
    return np.sqrt(np.maximum([ot.emd2(p, q, cost) for p, q in zip(ha, hb)], 0.0))


def infoclust_exact(a: torch.Tensor, b: torch.Tensor, setting: None = None) -> np.ndarray:
    """Exact W2 (px) by :func:`infoclust.w2_exact` (``ot.emd2`` on the supports)."""
    return w2_exact(a.cpu(), b.cpu()).numpy()


def pot_solve_batch(a: torch.Tensor, b: torch.Tensor, reg: float, chunk: int = 16) -> np.ndarray:
    """W2 (px) as the transport cost of the entropic plan of ``ot.batch.solve_batch`` (float64,
    dense (HW)^2 cost per pair, ``chunk`` pairs per call; log-domain Sinkhorn below 1 px^2)."""
    ha, hb = to_histogram(a, torch.float64), to_histogram(b, torch.float64)
    cost = grid_cost(*a.shape[-2:], device=a.device)
    method = "sinkhorn" if reg >= 1.0 else "log_sinkhorn"
    out = []
    for i in range(0, len(ha), chunk):
        p, q = ha[i : i + chunk], hb[i : i + chunk]
        res = ot.batch.solve_batch(
            cost.expand(len(p), -1, -1), reg, p, q, method=method, max_iter=1000, tol=1e-3
        )
        out.append(res.value_linear.detach().double().cpu())
    return torch.cat(out).clamp_min(0).sqrt().numpy()


def geomloss_sinkhorn(a: torch.Tensor, b: torch.Tensor, blur: float, chunk: int = 16) -> np.ndarray:
    """W2 (px) by GeomLoss's ``SamplesLoss("sinkhorn", p=2, debias=False, backend="tensorized")`` on
    the pixel centres (its cost is |x - y|^2 / 2, so W2 = sqrt(2 value)); ``blur`` in pixels."""
    from geomloss import SamplesLoss

    loss = SamplesLoss("sinkhorn", p=2, blur=blur, scaling=0.5, debias=False, backend="tensorized")
    ha, hb = to_histogram(a, torch.float32), to_histogram(b, torch.float32)
    out = []
    for i in range(0, len(ha), chunk):
        p, q = ha[i : i + chunk], hb[i : i + chunk]
        pts = _grid_points(*a.shape[-2:], len(p), a.device)
        out.append(loss(p, pts, q, pts).detach().double().cpu())
    return (2 * torch.cat(out)).clamp_min(0).sqrt().numpy()


def infoclust_sinkhorn(a: torch.Tensor, b: torch.Tensor, reg: float) -> np.ndarray:
    """W2 (px) by :func:`infoclust.w2_sinkhorn` (``debiased="cost"``, its default)."""
    return w2_sinkhorn(a, b, reg=reg).cpu().numpy()


def _has_geomloss() -> bool:
    try:
        import geomloss  # noqa: F401
    except ImportError:
        return False
    return True


#: The solvers of the peer table: name -> (function(a, b, setting), setting's name, default ladder).
SOLVERS: dict[str, tuple[Callable, str, tuple]] = {
    "ot.emd2 loop (exact)": (pot_emd2_loop, "", (None,)),
    "infoclust.w2_exact (emd2 on supports)": (infoclust_exact, "", (None,)),
    "ot.batch.solve_batch": (pot_solve_batch, "reg (px^2)", (2.0, 1.0)),
    "geomloss SamplesLoss (tensorized)": (geomloss_sinkhorn, "blur (px)", (0.5, 0.25)),
    "infoclust.w2_sinkhorn": (infoclust_sinkhorn, "reg (px^2)", (8.0, 4.0, 2.0, 1.0)),
}
OURS = "infoclust.w2_sinkhorn"
EXACT = ("ot.emd2 loop (exact)", "infoclust.w2_exact (emd2 on supports)")


def deformation_pairs(
    x: torch.Tensor, magnitudes=MAGNITUDES, sigma: float = 3.0, seed: int = 0
) -> dict[float, torch.Tensor]:
    """Each image of ``x`` warped by its own random smooth field, per magnitude
    (:class:`infoclust.deform.RandomDeformation`: T-norm ``magnitude`` pixels, Gaussian
    smoothing ``sigma``; bilinear resampling keeps the pixels non-negative)."""
    return {m: RandomDeformation(m, sigma, seed=seed)(x) for m in magnitudes}


def _relative_errors(values: np.ndarray, exact: np.ndarray) -> np.ndarray:
    return np.abs(np.asarray(values, dtype=np.float64) - exact) / exact


def _cpu_seconds(fn: Callable[[], np.ndarray], repeats: int, device: str) -> tuple[float, np.ndarray]:
    """CPU seconds of this process on the CPU, wall seconds on a GPU (best of ``repeats``)."""
    return best_time(fn, repeats=repeats, process_time=device == "cpu")


def peer_table(
    a: torch.Tensor,
    b: torch.Tensor,
    exact: np.ndarray,
    ladders: dict[str, tuple] | None = None,
    repeats: int = 1,
    device: str = "cpu",
    small: dict[float, tuple] | None = None,
) -> dict:
    """Every solver of :data:`SOLVERS` at every setting of its ladder on the pairs (a[i], b[i]).

    Returns ``{"runs": [...], "tiers": {tier: {solver: run or None}}, "ratio": {tier: x}}``: each
    run has the solver, its setting, pairs/s, the mean relative error to ``exact`` over all
    pairs and over the pairs with W2 > 2 px, and the largest; for each tier the fastest run of
    each solver that meets it, and pairs/s of ``w2_sinkhorn`` over the best peer, infoclust's
    own ``w2_exact`` not counted (``None`` when one of them meets no setting). With
    ``small = {magnitude: (x, x_deformed, exact)}``, ``"small"``: each solver's mean relative
    error per magnitude at its setting of the first tier (its most accurate one where it meets no tier).
    """
    ladders = {k: v[2] for k, v in SOLVERS.items()} if ladders is None else ladders
    a, b = a.to(device), b.to(device)
    runs = []
    for name, settings in ladders.items():
        fn = SOLVERS[name][0]
        if name.startswith("geomloss") and not _has_geomloss():
            print(f"{name}: skipped, GeomLoss is not installed (pip install infoclust[bench])")
            continue
        if name in EXACT and device != "cpu":
            continue  # CPU-only solvers: measured in the CPU table
        for setting in settings:
            seconds, values = _cpu_seconds(lambda: fn(a, b, setting), repeats, device)
            rel = _relative_errors(values, exact)
            big = exact > 2.0
            runs.append(
                {
                    "solver": name,
                    "setting": setting,
                    "pairs/s": len(exact) / max(seconds, 1e-9),
                    "seconds": seconds,
                    "mean error": float(rel.mean()),
                    "mean error W2 > 2 px": float(rel[big].mean()) if big.any() else float("nan"),
                    "max error": float(rel.max()),
                }
            )
            print(
                f"  {name} {SOLVERS[name][1]} {setting}: {runs[-1]['pairs/s']:.1f} pairs/s, mean error "
                f"{100 * rel.mean():.2f} %",
                flush=True,
            )
    tiers, ratio = {}, {}
    for tier, (above, limit) in TIERS.items():
        key = "mean error" if above == 0 else "mean error W2 > 2 px"
        best = {}
        for name in ladders:
            ok = [r for r in runs if r["solver"] == name and r[key] <= limit]
            best[name] = max(ok, key=lambda r: r["pairs/s"]) if ok else None
        peers = [r["pairs/s"] for n, r in best.items() if not n.startswith("infoclust") and r is not None]
        ours = best.get(OURS)
        tiers[tier] = best
        ratio[tier] = ours["pairs/s"] / max(peers) if ours is not None and peers else None
    deformed = {}
    for name in ladders if small is not None else ():
        tried = [r for r in runs if r["solver"] == name]
        if not tried:
            continue
        run = next(iter(tiers.values()))[name] or min(tried, key=lambda r: r["mean error"])
        fn, setting = SOLVERS[name][0], run["setting"]
        deformed[name] = {
            "setting": setting,
            "mean error": {
                m: float(_relative_errors(fn(xs.to(device), ys.to(device), setting), ex).mean())
                for m, (xs, ys, ex) in small.items()
            },
        }
    return {"runs": runs, "tiers": tiers, "ratio": ratio, "small": deformed}


def print_peer_table(table: dict, label: str) -> None:
    """The peer table as text: one block per tier, one line per solver."""
    for tier, best in table["tiers"].items():
        ratio = table["ratio"][tier]
        print(f"{label} -- {tier}; w2_sinkhorn / best peer: " + ("n/a" if ratio is None else f"x{ratio:.2f}"))
        for name, run in best.items():
            if run is None:
                tried = [r for r in table["runs"] if r["solver"] == name]
                key = "mean error" if TIERS[tier][0] == 0 else "mean error W2 > 2 px"
                closest = min((r[key] for r in tried), default=float("nan"))
                print(f"  {name:>42}: not reached (best {key} {100 * closest:.2f} %)")
                continue
            print(
                f"  {name:>42}: {SOLVERS[name][1]} {run['setting']}, {run['pairs/s']:9.1f} pairs/s, "
                f"error mean {100 * run['mean error']:.2f} %, "
                f"W2 > 2 px {100 * run['mean error W2 > 2 px']:.2f} %, "
                f"max {100 * run['max error']:.1f} %"
            )
    print(f"{label} -- small perturbations: mean relative error, digit against its random deformation")
    for name, row in table["small"].items():
        print(
            f"  {name:>42}: {SOLVERS[name][1]} {row['setting']}: "
            + ", ".join(f"{m:g} px {100 * e:.1f} %" for m, e in row["mean error"].items())
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--reg", type=float, default=8.0, help="entropic epsilon, pixels^2")
    parser.add_argument("--tol", type=float, default=1e-3, help="marginal error threshold (both solvers)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument("--gpu-pairs", type=int, default=16384, help="pairs in the GPU throughput batch")
    parser.add_argument(
        "--peer-pairs", type=int, default=32, help="pairs of the peer table (its first pairs)"
    )
    parser.add_argument("--small-pairs", type=int, default=8, help="digits per deformation magnitude")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads for every solver (0: torch's default)"
    )
    parser.add_argument(
        "--peer-repeats", type=int, default=1, help="best of this many runs in the peer table"
    )
    parser.add_argument("--skip-classic", action="store_true", help="only the peer table")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x, _ = ic.load_dataset("mnist5k", n=2 * args.pairs, seed=args.seed)
    a, b = x[: args.pairs], x[args.pairs :]
    ha, hb = to_histogram(a, torch.float64).numpy(), to_histogram(b, torch.float64).numpy()
    cost = grid_cost(28, 28).numpy()
    print(
        f"torch {torch.__version__}, POT {ot.__version__}, {torch.get_num_threads()} CPU threads; "
        f"{args.pairs} mnist5k pairs, eps {args.reg:g} px^2, tol {args.tol:g}, best of {args.repeats}"
    )
    rows: dict[str, dict[str, float]] = {}
    if not args.skip_classic:
        classic_rows(args, a, b, ha, hb, cost, rows)
    peers = {
        "uptime": os.getloadavg(),
        "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": ic.utils.device_name(torch.device("cpu")),
        "pairs": args.peer_pairs,
        "small_pairs": args.small_pairs,
    }
    pa, pb = a[: args.peer_pairs], b[: args.peer_pairs]
    exact = w2_exact(pa, pb).numpy()
    xs = a[: args.small_pairs]
    small = {m: (xs, ys, w2_exact(xs, ys).numpy()) for m, ys in deformation_pairs(xs, seed=args.seed).items()}
    print(
        f"peer table: {args.peer_pairs} pairs (exact W2 mean {exact.mean():.2f} px, "
        f"{(exact > 2).sum()} above 2 px), "
        f"{torch.get_num_threads()} thread(s), CPU seconds of this process; load average {peers['uptime']}"
    )
    for dev in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        table = peer_table(pa, pb, exact, device=dev, small=small, repeats=args.peer_repeats)
        print_peer_table(table, f"{dev} ({ic.utils.device_name(torch.device(dev))})")
        peers[dev] = table
    write_results("bench_wasserstein", {"args": vars(args), "results": rows, "peers": peers})


def classic_rows(args, a, b, ha, hb, cost, rows) -> None:
    """The ``ot.emd2`` loop, ``w2_exact``, the ``ot.sinkhorn2`` loop and ``w2_sinkhorn`` on all
    ``--pairs`` pairs, wall time, best of ``--repeats`` (items 1-4 of the module's docstring)."""

    def best(fn):
        return best_time(fn, repeats=args.repeats)

    def pot_sinkhorn():
        out = []
        for p, q in zip(ha, hb):
            sp, sq = p > 0, q > 0
            out.append(
                ot.sinkhorn2(p[sp], q[sq], cost[np.ix_(sp, sq)], args.reg, stopThr=args.tol, numItermax=10000)
            )
        return np.sqrt(out)

    base, emd_full = best(lambda: np.sqrt([ot.emd2(p, q, cost) for p, q in zip(ha, hb)]))
    rows["ot.emd2 loop (full histograms)"] = {"seconds": base, "pairs": args.pairs}
    seconds, exact = best(lambda: w2_exact(a, b).numpy())
    rows["infoclust.w2_exact (emd2 on supports)"] = {"seconds": seconds, "pairs": args.pairs}
    assert np.allclose(exact, emd_full, rtol=1e-6), "w2_exact disagrees with ot.emd2"
    seconds, pot_sk = best(pot_sinkhorn)
    rows["ot.sinkhorn2 loop (supports)"] = {
        "seconds": seconds,
        "pairs": args.pairs,
        "errors": _errors(pot_sk, exact),
    }

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        name = ic.utils.device_name(torch.device(dev))
        ad, bd = a.to(dev), b.to(dev)
        w2_sinkhorn(ad[:4], bd[:4], reg=args.reg)  # warm-up (CUDA context, kernels)
        for mode in ("cost", False):
            seconds, vals = best(lambda: w2_sinkhorn(ad, bd, reg=args.reg, debiased=mode, tol=args.tol).cpu())
            rows[f"infoclust.w2_sinkhorn debiased={mode!r} on {dev} ({name})"] = {
                "seconds": seconds,
                "pairs": args.pairs,
                "errors": _errors(vals, exact),
            }
        if dev == "cuda":
            pool, _ = ic.load_dataset("mnist5k")
            g = torch.Generator().manual_seed(args.seed)
            idx = torch.randint(len(pool), (2, args.gpu_pairs), generator=g)
            big_a, big_b = pool[idx[0]].to(dev), pool[idx[1]].to(dev)
            w2_sinkhorn(big_a, big_b, reg=args.reg, tol=args.tol)  # warm-up at this size
            seconds, _ = best(lambda: w2_sinkhorn(big_a, big_b, reg=args.reg, tol=args.tol))
            rows[f"infoclust.w2_sinkhorn debiased='cost' on {dev}, {args.gpu_pairs} pairs in one batch"] = {
                "seconds": seconds,
                "pairs": args.gpu_pairs,
            }

    for label, row in rows.items():
        row["pairs/s"] = row["pairs"] / row["seconds"]
        row["speed-up vs ot.emd2 loop"] = row["pairs/s"] / (args.pairs / base)
        err = row.get("errors")
        extra = f", rel. error to exact: mean {100 * err[0]:.2f} %, max {100 * err[1]:.2f} %" if err else ""
        print(
            f"{label:>72}: {row['seconds']:7.3f} s, {row['pairs/s']:9.1f} pairs/s, "
            f"x{row['speed-up vs ot.emd2 loop']:6.2f} vs ot.emd2 loop{extra}",
            flush=True,
        )


if __name__ == "__main__":
    main()
