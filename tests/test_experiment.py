import numpy as np
import pytest
import torch

from infoclust import ParameterError
from infoclust.augment import MNISTTransform
from infoclust.deform import RandomDeformation
from infoclust.experiment import Arm, cluster_change_rate, compare_arms, run_arms, w2_shift
from infoclust.iic import IIC
from infoclust.metrics import evaluate, paired_difference
from infoclust.transforms import Compose, PerturbationPool, SinkhornPerturbation, for_run
from infoclust.utils import ConvergenceWarning, stream_seed

RECIPE = dict(
    n_clusters=3,
    n_overclusters=None,
    n_subheads=2,
    trunk=((4, 8), 3),
    epochs=2,
    batch_size=16,
    repeats=2,
    lr=1e-2,
    device="cpu",
)


@pytest.fixture(scope="module")
def data():
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(48) % 3
    x = torch.zeros(48, 1, 8, 8)
    for c in range(3):  # three blobs at different places, with noise
        x[y == c, :, 2 * c : 2 * c + 3, 1:7] = 1.0
    return (x + 0.2 * torch.rand(x.shape, generator=gen)).clamp(0, 1), y


paper = MNISTTransform()
deformed_then_paper = Compose(RandomDeformation(0.5), MNISTTransform())


def test_runs_are_paired_and_independent_of_what_ran_before(data):
    x, y = data
    arms = [Arm("paper", paper), Arm("paper again", paper), Arm("deformed", deformed_then_paper)]
    runs = run_arms(x, y, arms, [0, 1], RECIPE, keep=["paper"], verbose=False)
    assert [r.seed for r in runs["deformed"]] == [0, 1]
    # same seed, same g: same initial network, data order and draws, hence the very same run
    for a, b in zip(runs["paper"], runs["paper again"]):
        np.testing.assert_array_equal(a.curve, b.curve)
        assert a.acc == b.acc
    assert runs["paper"][0].model is not None and runs["deformed"][0].model is None
    # one (arm, seed) alone reproduces its run inside the full loop
    alone = run_arms(x, y, [arms[2]], [1], RECIPE, verbose=False)["deformed"][0]
    np.testing.assert_array_equal(alone.curve, runs["deformed"][1].curve)
    assert len(alone.curve) == len(alone.epochs) == len(alone.times) == RECIPE["epochs"] + 1


def test_worker_processes_give_the_numbers_of_one_process(data):
    """Every CPU run uses one thread, so where it runs (a forked worker or here) does not matter."""
    x, y = data
    threads = torch.get_num_threads()
    arms = [Arm("paper", paper), Arm("deformed", deformed_then_paper)]
    here = run_arms(x, y, arms, [0, 1], RECIPE, keep=["deformed"], n_jobs=1, verbose=False)
    forked = run_arms(x, y, arms, [0, 1], RECIPE, keep=["deformed"], n_jobs=2, verbose=False)
    for name in here:
        for a, b in zip(here[name], forked[name]):
            assert (a.acc, a.seed) == (b.acc, b.seed)
            np.testing.assert_array_equal(a.curve, b.curve)
    assert here["deformed"][0].model.g is not None and forked["deformed"][0].model.g is None
    np.testing.assert_array_equal(
        here["deformed"][1].model.predict(x), forked["deformed"][1].model.predict(x)
    )
    assert torch.get_num_threads() == threads  # restored after the one-thread runs


def test_compare_arms_pairs_by_seed(data):
    x, y = data
    runs = run_arms(
        x, y, [Arm("paper", paper), Arm("deformed", deformed_then_paper)], [0, 1, 2], RECIPE, verbose=False
    )
    d = compare_arms(runs, "paper")
    assert list(d) == ["deformed"]
    want = paired_difference([100 * r.acc for r in runs["deformed"]], [100 * r.acc for r in runs["paper"]])
    assert d["deformed"] == want
    with pytest.raises(ParameterError, match="reference"):
        compare_arms(runs, "nope")
    with pytest.raises(ParameterError, match="metric"):
        compare_arms(runs, "paper", metric="loss")
    with pytest.raises(ParameterError, match="at least two"):
        compare_arms({"paper": runs["paper"], "one": runs["deformed"][:1]}, "paper")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(arms=[Arm("a"), Arm("a")]), "distinct names"),
        (dict(seeds=[0, 0]), "seeds must be distinct"),
        (dict(seeds=[-1]), "seeds"),
        (dict(recipe={**RECIPE, "seed": 3}), "must not set 'seed'"),
        (dict(arms=[Arm("a", params={"g": None})]), "must not set 'g'"),
        (dict(keep=["b"]), "keep"),
        (dict(n_jobs=0), "n_jobs"),
    ],
)
def test_run_arms_bad_arguments(data, kwargs, match):
    x, y = data
    args = {**dict(arms=[Arm("a")], seeds=[0], recipe=RECIPE), **kwargs}
    with pytest.raises(ParameterError, match=match):
        run_arms(
            x,
            y,
            args["arms"],
            args["seeds"],
            args["recipe"],
            keep=args.get("keep", ()),
            n_jobs=args.get("n_jobs"),
            verbose=False,
        )


def test_cluster_change_rate(data):
    x, y = data
    model = run_arms(x, y, [Arm("paper", paper)], [0], RECIPE, keep=["paper"], verbose=False)["paper"][
        0
    ].model
    assert cluster_change_rate(model, x, lambda b: b) == 0.0
    constant = x[:1]
    share = np.mean(model.predict(x) == model.predict(constant)[0])
    rate = cluster_change_rate(model, x, lambda b: constant.expand_as(b).clone(), n_draws=2)
    assert rate == pytest.approx(1 - share)
    with pytest.raises(ParameterError, match="n_draws"):
        cluster_change_rate(model, x, lambda b: b, n_draws=0)


def test_w2_shift_is_the_exact_distance():
    x = torch.zeros(3, 1, 8, 8)
    x[0, 0, 3, 2:5] = 1.0
    x[1, 0, 1:4, 3] = 0.5
    x[2, 0, 4, 4] = 1.0
    assert np.allclose(w2_shift(x, lambda b: b), 0.0)
    shifted = w2_shift(x, lambda b: torch.roll(b, 1, -1))  # one pixel to the right: W2 = 1 px
    np.testing.assert_allclose(shifted, 1.0, atol=1e-6)
    emptied = w2_shift(x, lambda b: b * torch.tensor([1.0, 0.0, 1.0]).view(3, 1, 1, 1))
    assert np.isinf(emptied[1]) and emptied[0] == pytest.approx(0.0, abs=1e-9)
    gen = torch.Generator().manual_seed(0)
    assert w2_shift(x, lambda b: torch.roll(b, 2, -2), n=2, generator=gen).shape == (2,)
    with pytest.raises(TypeError, match="generator"):
        w2_shift(x, lambda b: b, generator=0)
    with pytest.raises(ParameterError, match="negative"):
        w2_shift(x - 1, lambda b: b)


def test_w2_shift_of_a_projected_sinkhorn_g_stays_in_its_ball():
    """w2_shift runs g under no_grad: the attack inside a SinkhornPerturbation needs its gradient."""
    x = torch.zeros(4, 1, 8, 8)
    x[:, 0, 2:6, 3:5] = 1.0
    radius = 0.5  # px^2 of W2 squared
    g = SinkhornPerturbation(radius, max_iter=3, proj_iter=10, n_random_classes=3).with_seed(0)
    with pytest.warns(ConvergenceWarning):  # 10 projection iterations: said, not hidden
        moved = w2_shift(x, g)
    assert np.isfinite(moved).all() and (moved <= np.sqrt(radius) * 1.05).all() and moved.max() > 0


def _closure(*gs):
    """A g built the way chapter 9 built it before Arm took a g: a plain function, not a Transform."""

    def chained(b):
        for g in gs:
            b = g(b)
        return b

    return chained


def test_arms_of_transforms_draw_what_the_closures_of_before_drew(data):
    """Default numbers stay: IIC seeds the paper's g from stream 1 and the perturbation in front from 2."""
    x, y = data
    pool = PerturbationPool(RandomDeformation(0.5, seed=7), x, 2, batch_size=16, seed=0, verbose=False)
    new = {
        "paper": paper,
        "deformed": deformed_then_paper,
        "pooled": Compose(pool, MNISTTransform()),
    }
    runs = run_arms(x, y, [Arm(n, g) for n, g in new.items()], [0, 1], RECIPE, n_jobs=1, verbose=False)
    for s in (0, 1):
        old = {
            "paper": _closure(MNISTTransform(seed=stream_seed(s, 1))),
            "deformed": _closure(
                RandomDeformation(0.5, seed=stream_seed(s, 2)), MNISTTransform(seed=stream_seed(s, 1))
            ),
            "pooled": _closure(pool.with_seed(stream_seed(s, 2)), MNISTTransform(seed=stream_seed(s, 1))),
        }
        for name, g in old.items():
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # as run_arms trains on the CPU
            try:
                model = IIC(**RECIPE, g=g, seed=s, verbose=False).fit(x, y)
            finally:
                torch.set_num_threads(threads)
            assert runs[name][s].acc == evaluate(y, model.labels_)["acc"]
            np.testing.assert_array_equal(
                runs[name][s].curve, [h["acc"][h["subhead"]] for h in model.history_]
            )
    default = run_arms(x, y, [Arm("default")], [1], RECIPE, n_jobs=1, verbose=False)["default"][0]
    np.testing.assert_array_equal(default.curve, runs["paper"][1].curve)  # IIC's default g is the paper's


def test_arm_takes_a_transform_not_a_maker():
    with pytest.raises(TypeError, match="Transform"):
        Arm("maker", lambda s: MNISTTransform(seed=s))
    seeded = for_run(deformed_then_paper, 3)
    assert seeded.transforms[1].seed == stream_seed(3, 1) and seeded.transforms[0].seed == stream_seed(3, 2)
    assert deformed_then_paper.transforms[0].seed == 0  # the arm's own g is never drawn from


def test_runs_report_their_own_pools(data):
    """A redrawing pool is filled per run (its seed's draws); the run reports its time, size, changes, W2."""
    x, y = data
    pool = PerturbationPool(RandomDeformation(0.5), x, n_copies=2, verbose=False, redraw=True)
    arms = [Arm("pooled", Compose(pool, paper)), Arm("paper", paper)]
    runs = run_arms(x, y, arms, [0, 1], RECIPE, n_jobs=1, pool_sample=5, verbose=False)
    first, second = runs["pooled"]
    assert first.pool_images == 2 * len(x) and first.pool_seconds > 0 and first.pool_changed == 1.0
    assert len(first.pool_w2) == 5 and np.all(first.pool_w2 > 0)
    assert not np.array_equal(first.pool_w2, second.pool_w2)  # each seed its own copies
    plain = runs["paper"][0]
    assert plain.pool_images == 0 and np.isnan(plain.pool_changed) and len(plain.pool_w2) == 0
    with pytest.raises(ParameterError, match="pool_sample"):
        run_arms(x, y, arms, [0], RECIPE, pool_sample=-1, verbose=False)


def test_workers_end_with_the_process_that_forked_them(tmp_path):
    """A stopped build kills its kernel: run_arms' forked workers must not train on as orphans."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pids = tmp_path / "workers"
    script = f"""
import os, time, torch
from infoclust import experiment
from infoclust.experiment import Arm, run_arms
from infoclust.transforms import Transform
class Slow(Transform):
    def __init__(self, *, seed: int = 0):
        self._seed(seed)
    def _apply(self, x):
        with open({str(pids)!r}, "a") as f:
            f.write(f"{{os.getpid()}}\\n")
        time.sleep(600)
        return x
x = torch.rand(32, 1, 8, 8)
run_arms(x, torch.arange(32) % 2, [Arm("slow", Slow())], [0, 1], dict(n_clusters=2, n_overclusters=None,
    n_subheads=1, trunk=((4,), 3), epochs=1, batch_size=16, repeats=1, device="cpu"), n_jobs=2, verbose=False)
"""
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not pids.exists() or len(pids.read_text().split()) < 2):
            time.sleep(0.1)
        workers = [int(p) for p in pids.read_text().split()]
        assert len(workers) == 2
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    alive = workers
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in workers if os.path.exists(f"/proc/{p}") and "Z" not in _state(p)]
    for p in alive:
        os.kill(p, signal.SIGKILL)
    assert not alive, f"workers {alive} outlived the process that forked them"


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
