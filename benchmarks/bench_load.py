"""How torch's CPU threads behave when other processes load the machine, and whether results move.

Each setting (thread count, OpenMP wait policy) runs one workload in a fresh process, first
on the machine as it is and then with ``--load`` extra busy-loop processes (plain Python
``while True: pass`` at the same priority), and prints the wall time of both and their ratio,
and a checksum of the workload's result: equal checksums mean bit-identical numbers.

Workloads: ``train`` (a small convolutional network like chapter 3's CPU trunk, Adam steps
on seeded random batches; the checksum is the sum of its final weights), ``kmeans``
(:class:`infoclust.KMeans` on mnist5k pixels; the checksum is the inertia) and
``chapter:NAME[:PROFILE]`` (a chapter executed with papermill, as the book build does; the
checksum is its results file's numbers).

The settings compared are torch's default (as many threads as cores, libgomp's default
spin-then-sleep barrier), the same with ``OMP_WAIT_POLICY=PASSIVE`` (what the book build
sets for its chapter kernels), and one thread.

Usage::

    .venv/bin/python benchmarks/bench_load.py                        # train and kmeans, load 2
    .venv/bin/python benchmarks/bench_load.py --workloads chapter:01_kmeans:smoke --load 2

Run it on a machine that is otherwise quiet (``uptime`` before and after): the quiet column
is only quiet then. Results are printed and written to ``_build/benchmarks/bench_load.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import write_results

ROOT = Path(__file__).resolve().parents[1]


def settings(cores: int) -> dict[str, dict[str, str]]:
    """Environment of each setting (a fresh process reads it before torch starts its threads)."""
    threads = str(cores)
    return {
        f"default ({threads} threads, libgomp spin-then-sleep)": {"OMP_NUM_THREADS": threads},
        f"{threads} threads, OMP_WAIT_POLICY=PASSIVE": {
            "OMP_NUM_THREADS": threads,
            "OMP_WAIT_POLICY": "PASSIVE",
        },
        "1 thread": {"OMP_NUM_THREADS": "1"},
    }


# --------------------------------------------------------------------------- workloads (child process)


def _train() -> str:
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64 * 16, 10),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        x = torch.rand(128, 1, 16, 16, generator=gen)
        loss = net(x).log_softmax(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return repr(sum(float(p.double().sum()) for p in net.parameters()))


def _kmeans() -> str:
    import infoclust as ic

    x, _ = ic.load_dataset("mnist5k")
    km = ic.KMeans(10, n_init=3, max_iter=100, seed=0, device="cpu").fit(x.reshape(len(x), -1))
    return repr(float(km.inertia_))


def _chapter(name: str, profile: str) -> str:
    import jupytext
    import papermill as pm

    sys.path.insert(0, str(ROOT))
    from infoclust.book.catalogue import chapter_parameters

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["INFOCLUST_RESULTS_DIR"] = tmp
        src = Path(tmp) / "source.ipynb"
        jupytext.write(jupytext.read(ROOT / "notebooks" / f"{name}.py"), src)
        pm.execute_notebook(
            str(src),
            str(Path(tmp) / "out.ipynb"),
            parameters=chapter_parameters(name, profile),
            cwd=str(ROOT),
            kernel_name="python3",
            progress_bar=False,
        )
        run = json.loads((Path(tmp) / f"{name}.json").read_text())
    # the chapter's numbers without its timings (which differ from run to run by nature)
    numbers = [
        (r["name"], r["value"])
        for r in run["results"]
        if "time" not in r["name"]
        and r["unit"] != "s"
        and "speed" not in r["name"]
        and "throughput" not in r["name"]
    ]
    return hashlib.sha256(repr(numbers).encode()).hexdigest()[:16]


def _child(workload: str) -> None:
    start = time.perf_counter()
    if workload == "train":
        checksum = _train()
    elif workload == "kmeans":
        checksum = _kmeans()
    else:
        _, name, *profile = workload.split(":")
        checksum = _chapter(name, profile[0] if profile else "smoke")
    print(json.dumps({"seconds": time.perf_counter() - start, "checksum": checksum}))


# --------------------------------------------------------------------------- driver


def _run(workload: str, env: dict[str, str]) -> dict:
    full = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    full.update(env, PYTHONPATH=os.pathsep.join([str(ROOT), full.get("PYTHONPATH", "")]))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [sys.executable, __file__, "--child", workload], env=full, capture_output=True, text=True, check=True
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # CPU seconds of the process and its children (a kernel's too), imports included: threads that
    # spin while they wait burn CPU time that does no work
    result["cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


def _busy_loops(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", nargs="+", default=["train", "kmeans"])
    parser.add_argument("--load", type=int, default=2, help="busy-loop processes of the loaded runs")
    parser.add_argument(
        "--cores",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="thread count of the multi-threaded settings (default: the CPUs this process may use)",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    print(
        f"{len(os.sched_getaffinity(0))} CPUs; load average before: {os.getloadavg()[0]:.2f}; "
        f"loaded runs add {args.load} busy loops",
        flush=True,
    )
    rows = []
    for workload in args.workloads:
        for name, env in settings(args.cores).items():
            quiet = _run(workload, env)
            loops = _busy_loops(args.load)
            try:
                time.sleep(0.5)
                loaded = _run(workload, env)
            finally:
                for p in loops:
                    p.kill()
                    p.wait()
            row = {
                "workload": workload,
                "setting": name,
                "env": env,
                "quiet_s": round(quiet["seconds"], 2),
                "loaded_s": round(loaded["seconds"], 2),
                "slowdown": round(loaded["seconds"] / quiet["seconds"], 2),
                "quiet_cpu_s": round(quiet["cpu"], 2),
                "loaded_cpu_s": round(loaded["cpu"], 2),
                "checksum": quiet["checksum"],
                "same_when_loaded": quiet["checksum"] == loaded["checksum"],
            }
            rows.append(row)
            print(
                f"{workload:>8} | {name:<48} | quiet {row['quiet_s']:7.2f} s "
                f"(CPU {row['quiet_cpu_s']:7.2f} s) | loaded {row['loaded_s']:7.2f} s "
                f"(CPU {row['loaded_cpu_s']:7.2f} s) | x{row['slowdown']:5.2f} "
                f"| checksum {row['checksum']}"
                + ("" if row["same_when_loaded"] else " (differs when loaded!)"),
                flush=True,
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    write_results("bench_load", {"args": vars(args), "cpus": len(os.sched_getaffinity(0)), "results": rows})


if __name__ == "__main__":
    main()
