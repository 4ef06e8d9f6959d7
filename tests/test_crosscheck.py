"""The code path recorded, the cross-path check, bit-identical numbers across code paths, seeds redrawn."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest
import torch

from infoclust.book import crosscheck as crosscheck_module
from infoclust.book.catalogue import ROOT, BuildError
from infoclust.book.crosscheck import (
    CROSSCHECK_FILE,
    code_path_markdown,
    compare_runs,
    crosscheck,
    crosscheck_markdown,
    main,
)
from infoclust.book.ledger import md_cell
from infoclust.book.pages import ledger_page
from infoclust.utils import NUM_THREADS_ENV
from infoclust.codepath import CODE_PATH_ENV, LOWER_CODE_PATH, code_path, lower_code_path

NATIVE = torch.backends.cpu.get_cpu_capability()
needs_lower = pytest.mark.skipif(
    NATIVE not in LOWER_CODE_PATH, reason=f"no lower code path is known below {NATIVE}"
)


def test_code_path_names_processor_kernels_and_overrides(monkeypatch):
    for name in CODE_PATH_ENV:
        monkeypatch.delenv(name, raising=False)
    path = code_path()
    assert path["processor"] and path["cpu_capability"] == NATIVE and path["torch"] == torch.__version__
    assert path["torch_threads"] == torch.get_num_threads() and path["overrides"] == {}
    assert all({"library", "version", "architecture", "threads"} <= set(b) for b in path["blas"])
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "SSE41")
    assert code_path()["overrides"] == {"ONEDNN_MAX_CPU_ISA": "SSE41"}
    json.dumps(path)  # goes into a results file as it is


def test_lower_code_path_is_one_level_down():
    assert lower_code_path("AVX512") == {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert lower_code_path("AVX2") == {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"}
    with pytest.raises(ValueError, match="below torch's CPU capability 'DEFAULT'"):
        lower_code_path("DEFAULT")


def _run(chapter: str, results: list[tuple[str, float, bool | None]]) -> dict:
    return {
        "chapter": chapter,
        "results": [
            {"name": n, "value": v, "holds": h, "claim": "", "unit": "%" if h is not None else ""}
            for n, v, h in results
        ],
    }


def test_compare_runs_tells_same_moved_flipped_and_missing():
    here = _run("01_a", [("a", 1.0, True), ("b", 2.0, None), ("c", 94.7, False), ("d", 3.0, None)])
    there = _run("01_a", [("a", 1.0, True), ("b", 2.0000001, None), ("c", 96.1, True), ("e", 4.0, None)])
    rows = {r["name"]: r for r in compare_runs(here, there)}
    assert [r["name"] for r in compare_runs(here, there)] == ["a", "b", "c", "d", "e"]
    assert {n: r["change"] for n, r in rows.items()} == {
        "a": "same",
        "b": "moved",
        "c": "verdict differs",
        "d": "only here",
        "e": "only there",
    }
    assert (rows["c"]["value_here"], rows["c"]["value_there"]) == (94.7, 96.1)
    assert (rows["c"]["holds_here"], rows["c"]["holds_there"]) == (False, True)
    assert rows["d"]["value_there"] is None and rows["e"]["value_here"] is None


def test_a_borderline_verdict_that_flips_depends_on_the_machine_and_does_not_fail(tmp_path, capsys):
    here = _run("01_kmeans", [("c", 94.7, False), ("d", 50.0, True), ("e", 3.0, True)])
    there = _run("01_kmeans", [("c", 96.1, True), ("d", 40.0, False), ("e", 1.0, False)])
    here["results"][0]["borderline"] = True  # marked by the build: its flip was expected
    there["results"][2]["borderline"] = True  # marked by the check only: not in advance
    rows = {r["name"]: r for r in compare_runs(here, there)}
    assert rows["c"]["change"] == rows["d"]["change"] == rows["e"]["change"] == "verdict differs"
    assert rows["c"]["borderline_here"] and not crosscheck_module.unexpected(rows["c"])
    assert not rows["d"]["borderline_here"] and crosscheck_module.unexpected(rows["d"])
    assert rows["e"]["borderline_there"] and crosscheck_module.unexpected(rows["e"])
    for folder, run, seed in ((tmp_path, here, 0), (tmp_path / "crosscheck" / "x", there, 1000)):
        _results_file(folder, "01_kmeans", seed, [])
        path = folder / "results" / "01_kmeans.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "results": run["results"]}))
    (tmp_path / "crosscheck" / "x" / CROSSCHECK_FILE).write_text(
        json.dumps(
            {
                "name": "x",
                "seed_offset": 1000,
                "chapters": {
                    "01_kmeans": {
                        "here": {"started": "seed 0"},
                        "there": {"started": "seed 1000"},
                        "rows": list(rows.values()),
                    }
                },
            }
        )
    )
    page = crosscheck_markdown(tmp_path / "results")
    assert "| c | 94.7 % | 96.1 % | does not hold | holds | depends on the machine (borderline) |" in page
    assert "| d | 50 % | 40 % | holds | does not hold | **verdict differs** |" in page
    assert "| e | 3 % | 1 % | holds | does not hold | **verdict differs** (borderline there only) |" in page
    assert "1 borderline verdicts differ (marked so in advance), **2 other verdicts differ**" in page
    assert "(borderline)" in ledger_page(tmp_path / "results", ROOT)


def test_crosscheck_refuses_before_running(tmp_path):
    with pytest.raises(BuildError, match="nothing differs"):
        crosscheck(["01_kmeans"], profile="smoke", build_dir=tmp_path, environment={})
    with pytest.raises(BuildError, match="01_kmeans.json.*build the chapter first"):
        crosscheck(["01_kmeans"], profile="smoke", build_dir=tmp_path, environment={}, threads=1)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "01_kmeans.json").write_text(
        json.dumps(
            {**_run("01_kmeans", []), "profile": "default", "device_name": "CPU", "seed": 0}
            | {"started": "now", "seconds": 1.0}
        )
    )
    with pytest.raises(BuildError, match="'default' profile's results, not 'smoke'"):
        crosscheck(["01_kmeans"], profile="smoke", build_dir=tmp_path, environment={}, seed_offset=1000)
    with pytest.raises(BuildError, match="not a chapter of _toc.yml"):
        crosscheck(["01_kmean"], profile="smoke", build_dir=tmp_path, threads=1)
    assert not (tmp_path / "crosscheck").exists()


def _results_file(folder, chapter: str, seed: int, results: list, path: dict | None = None) -> None:
    run = {**_run(chapter, results), "profile": "smoke", "device_name": "CPU", "seed": seed}
    run.update(started=f"seed {seed}", seconds=1.0, code_path=path or {})
    (folder / "results").mkdir(parents=True, exist_ok=True)
    (folder / "results" / f"{chapter}.json").write_text(json.dumps(run))


def test_crosscheck_runs_each_chapter_in_the_second_path_and_compares(tmp_path, monkeypatch, capsys):
    """The flow without kernels: what the chapter's run receives, the comparison, the exit status."""
    _results_file(tmp_path, "01_kmeans", 3, [("acc", 94.72, False), ("n", 7.0, None)])
    calls, reported = [], {"cpu_capability": "DEFAULT"}

    def execute(chapter, profile, folder, *, parameters, root, download):
        calls.append((chapter, profile, parameters, os.environ.get("ATEN_CPU_CAPABILITY"), os.environ["X_T"]))
        path = {**reported, "torch_threads": int(os.environ[NUM_THREADS_ENV])}
        _results_file(folder, chapter, parameters["seed"], [("acc", 96.06, True), ("n", 7.0, None)], path)

    monkeypatch.setattr(crosscheck_module, "execute_chapter", execute)
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    env = {"ATEN_CPU_CAPABILITY": "default", "X_T": "1"}
    out = crosscheck(
        ["01_kmeans"], profile="smoke", build_dir=tmp_path, environment=env, threads=1, seed_offset=1000
    )
    assert calls == [("01_kmeans", "smoke", {"seed": 1003}, "default", "1")]
    assert "ATEN_CPU_CAPABILITY" not in os.environ and "X_T" not in os.environ  # restored
    assert out.parent == tmp_path / "crosscheck" / "smoke_aten-default_x_t-1_threads-1_seeds+1000"
    rows = json.loads(out.read_text())["chapters"]["01_kmeans"]["rows"]
    assert [(r["change"], r["holds_here"], r["holds_there"]) for r in rows] == [
        ("verdict differs", False, True),
        ("same", None, None),
    ]
    page = crosscheck_markdown(tmp_path / "results")
    assert "| 01\\_kmeans | acc | 94.72 % | 96.06 % | does not hold | holds | **verdict differs** |" in page
    assert "Stale" not in page
    _results_file(tmp_path, "01_kmeans", 4, [("acc", 94.72, False)])  # the build reran: the check is stale
    assert "Stale: the build's results of `01_kmeans` changed" in crosscheck_markdown(tmp_path / "results")
    argv = ["--chapters", "01_kmeans", "--profile", "smoke", "--build-dir", str(tmp_path), "--threads", "1"]
    assert main([*argv, "--capability", "native", "--env", "X_T=2"]) == 1  # a verdict differs
    assert "1 verdicts differ (0 of them marked borderline in advance)" in capsys.readouterr().out
    build = tmp_path / "results" / "01_kmeans.json"
    marked = json.loads(build.read_text())
    marked["results"][0]["borderline"] = True  # the build's design marked it: its flip is expected
    build.write_text(json.dumps(marked))
    assert main([*argv, "--capability", "native", "--env", "X_T=2"]) == 0
    assert "1 verdicts differ (1 of them marked borderline in advance)" in capsys.readouterr().out
    reported["cpu_capability"] = "AVX2"  # a torch that ignores the variable
    with pytest.raises(BuildError, match="not ATEN_CPU_CAPABILITY='default'"):
        crosscheck(["01_kmeans"], profile="smoke", build_dir=tmp_path, environment=env)


@needs_lower
def test_smoke_crosscheck(smoke):
    """The smoke cross-path check: chapter 01 again one code path lower, beside the smoke build.

    The smoke build's own results are only read, every result is compared, the rerun really
    computed in the lower path, and the ledger and environment pages show both.
    """
    smoke("01_kmeans")
    results = ROOT / "_build" / "smoke" / "results"
    main_results = (results / "01_kmeans.json").read_bytes()
    out = crosscheck(["01_kmeans"], profile="smoke", build_dir=results.parent)
    assert out.name == CROSSCHECK_FILE and (results / "01_kmeans.json").read_bytes() == main_results
    part = json.loads(out.read_text())["chapters"]["01_kmeans"]
    here = json.loads(main_results)
    assert [r["name"] for r in part["rows"]] == [r["name"] for r in here["results"]]
    assert part["there"]["code_path"]["cpu_capability"] == lower_code_path()["ATEN_CPU_CAPABILITY"].upper()
    assert part["there"]["code_path"]["overrides"] == {
        **part["there"]["code_path"]["overrides"],
        **lower_code_path(),
    }
    there = json.loads((out.parent / "results" / "01_kmeans.json").read_text())
    assert [r["holds_there"] for r in part["rows"]] == [r["holds"] for r in there["results"]]
    page = ledger_page(results, profile="smoke")
    assert "## Cross-path checks" in page and page.endswith(crosscheck_markdown(results) + "\n")
    assert all(md_cell(r["name"]) in crosscheck_markdown(results) for r in here["results"])
    paths = code_path_markdown(results)
    assert "01\\_kmeans" in paths and f"| {NATIVE} |" in paths


# A computation whose bits must not depend on the code path: k-means' inertia (float64,
# summed in a fixed order) and a paired comparison (the ledger's statistics).
BITS = """
import torch
from infoclust.data import load_dataset
from infoclust.kmeans import KMeans
from infoclust.metrics import paired_difference
torch.set_num_threads(1)
x, _ = load_dataset("digits", n=600, seed=0)
km = KMeans(10, n_init=2, seed=0, device="cpu").fit(x)
d = paired_difference([0.9712, 0.9533, 0.9641, 0.9602, 0.9455], [0.9501, 0.9433, 0.9322, 0.9441, 0.9377])
numbers = [v.hex() if isinstance(v, float) else v for v in d]
bits = [torch.backends.cpu.get_cpu_capability(), km.inertia_.hex(), *numbers]
"""


@needs_lower
def test_inertia_and_paired_difference_are_bit_identical_across_code_paths(one_thread):
    """This process (native kernels) and a child one code path lower (and NumPy without AVX2)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **lower_code_path(), "NPY_DISABLE_CPU_FEATURES": "AVX2 FMA3"}
    child = subprocess.run(
        [sys.executable, "-c", BITS + "print(repr(bits))"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    lower = ast.literal_eval(child.stdout.strip().splitlines()[-1])
    here: dict = {}
    exec(BITS, here)
    assert here["bits"][0] == NATIVE and lower[0] == lower_code_path()["ATEN_CPU_CAPABILITY"].upper()
    assert here["bits"][1:] == lower[1:]


def test_two_seeds_of_a_pooled_g_use_different_random_classifiers():
    """Each paired seed redraws the random classifier that an attack g perturbs against, and so
    the copies of a pool filled by it (``g.with_seed(s)``, one pool per seed)."""
    from infoclust.transforms import PerturbationPool, SinkhornPerturbation

    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    g = SinkhornPerturbation(0.3, max_iter=1, proj_iter=2, seed=0)

    def weights(h) -> list[torch.Tensor]:
        return [p.detach().clone() for p in h.random_classifier.model_for(x).parameters()]

    for a, b in (
        (g, g.with_seed(1)),
        (g.with_seed(7), SinkhornPerturbation(0.3, max_iter=1, proj_iter=2, seed=8)),
    ):
        wa, wb = weights(a), weights(b)
        assert len(wa) == len(wb) > 0 and not all(torch.equal(p, q) for p, q in zip(wa, wb))
    assert all(torch.equal(p, q) for p, q in zip(weights(g.with_seed(5)), weights(g.with_seed(5))))
    pools = [PerturbationPool(g.with_seed(s), x, 1, verbose=False) for s in (3, 4)]
    assert not all(torch.equal(p, q) for p, q in zip(weights(pools[0].g), weights(pools[1].g)))
    assert not torch.equal(pools[0].copies, pools[1].copies)
