"""Paired IIC experiments: does a transformation g (or a recipe change) help IIC, seed by seed?

The talk's open question (section 4) is whether IIC (talk, eq. 4) gains from perturbations
that are small in the Wasserstein distance, used as its transformation g. This module runs
that comparison as a designed experiment and measures why a g helps or not.

* :func:`run_arms` trains IIC once per *arm* (a transformation g and/or changed IIC
  parameters, :class:`Arm`) and per seed. The seed is the pairing: every arm run with seed
  ``s`` starts from the same initial network and sees the images in the same order (IIC's
  own seeded generators), and each arm's g is seeded afresh for the run from the same seed
  (:func:`infoclust.transforms.for_run`), so a run never depends on what ran before it.
* :func:`compare_arms` turns the runs into paired differences against a reference arm
  (:func:`infoclust.metrics.paired_difference`: mean, t-interval, verdict, smallest
  detectable effect); :func:`collapsed` counts the runs that ended in a degenerate
  clustering, which ``compare_arms(..., drop=...)`` leaves out of the differences.
* :func:`cluster_change_rate` is the invariance of a trained model to a g: how often the
  cluster of ``g(x)`` differs from that of ``x``.
* :func:`w2_shift` is the exact Wasserstein distance ``W2(x, g(x))`` per image, the quantity
  in the talk's density p(xi | x) ~ exp(-d_W(x, x + xi)^2 / eta^2) (talk, eq. 6).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .iic import IIC
from .metrics import PairedDifference, evaluate, paired_difference, pooled_differences
from .transforms import Compose, PerturbationPool, Transform
from .utils import (
    ParameterError,
    check_generator,
    check_images,
    check_int,
    check_number,
    check_seed,
    num_threads,
    resolve_device,
)
from .wasserstein import w2_exact

__all__ = [
    "Arm",
    "Run",
    "run_arms",
    "compare_arms",
    "collapsed",
    "collapse_floor",
    "near_collapse",
    "cluster_change_rate",
    "w2_shift",
]

BatchMap = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Arm:
    """One recipe of a paired comparison.

    Attributes
    ----------
    name : str
        Label in tables and figures.
    g : Transform or None
        The transformation g (:mod:`infoclust.transforms`); the run with seed ``s`` trains
        with its copy ``for_run(g, s)``, seeded from ``s`` (:func:`~infoclust.transforms.for_run`).
        None keeps IIC's default g.
    params : mapping
        IIC parameters that differ from the common recipe (e.g. ``{"n_subheads": 1}``).
    """

    name: str
    g: Transform | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.g is not None and not isinstance(self.g, Transform):
            raise TypeError(
                f"Arm {self.name!r}: g must be a Transform of infoclust.transforms (seeded per run), "
                f"got {type(self.g).__name__}"
            )


@dataclass
class Run:
    """One IIC run of :func:`run_arms`.

    Attributes
    ----------
    arm, seed
        Which arm, which seed.
    acc, nmi, ari : float
        Scores of the lowest-loss sub-head at the end (labels used only to score).
    seconds : float
        Training time (scoring excluded).
    epochs, times, curve : np.ndarray
        The scored epochs of the history, their training time so far, and the accuracy of
        the sub-head that had the lowest loss at that epoch.
    model : IIC or None
        The fitted estimator, when the arm was listed in ``keep``.
    pool_seconds : float
        Time spent filling the run's own perturbation pools (a
        :class:`~infoclust.transforms.PerturbationPool` with ``redraw=True`` fills its
        copies for the run's seed when training first calls it, so ``seconds`` includes it).
    pool_images : int
        Perturbations those pools computed.
    pool_changed : float
        Fraction of those perturbations that differ from their image (NaN without such a pool).
    pool_w2 : np.ndarray
        Exact ``W2(x, copy)`` in pixels (:func:`w2_shift`'s convention) of a random sample of
        the copies (``pool_sample`` of :func:`run_arms`; empty when not measured).
    """

    arm: str
    seed: int
    acc: float
    nmi: float
    ari: float
    seconds: float
    epochs: np.ndarray
    times: np.ndarray
    curve: np.ndarray
    model: IIC | None = None
    pool_seconds: float = 0.0
    pool_images: int = 0
    pool_changed: float = float("nan")
    pool_w2: np.ndarray = field(default_factory=lambda: np.zeros(0))


def _own_pools(g: Any) -> list[PerturbationPool]:
    """The redrawing pools of a run's g (in a :class:`~infoclust.transforms.Compose` too) that it filled."""
    parts = g.transforms if isinstance(g, Compose) else (g,)
    return [t for t in parts if isinstance(t, PerturbationPool) and t.redraw and t.copies is not None]


#: What the worker processes of :func:`run_arms` read: set before they are forked, cleared after.
_JOB: dict[str, Any] = {}


def _fit(arm_index: int, seed: int) -> Run:
    """One run of :func:`run_arms` (in this process or a forked worker, on one CPU thread)."""
    x, y, arm, recipe = _JOB["x"], _JOB["y"], _JOB["arms"][arm_index], _JOB["recipe"]
    model = IIC(**{**recipe, **arm.params}, g=arm.g, seed=seed, verbose=False).fit(x, y)
    hist = model.history_
    scores = evaluate(y, model.labels_)
    keep = arm.name in _JOB["keep"]
    pools = _own_pools(model.g_)
    changed, w2 = _pool_shift(pools, _JOB["pool_sample"], seed)
    if keep and _JOB["worker"]:  # a g can be large (a pool's copies): it does not travel back
        model.g = model.g_ = None
    return Run(
        arm.name,
        seed,
        scores["acc"],
        scores["nmi"],
        scores["ari"],
        model.train_seconds_,
        np.array([h["epoch"] for h in hist]),
        np.array([h["seconds"] for h in hist]),
        np.array([h["acc"][h["subhead"]] for h in hist]),
        model if keep else None,
        sum(p.seconds for p in pools),
        sum(p.copies.shape[0] * p.copies.shape[1] for p in pools),
        changed,
        w2,
    )


def _pool_shift(pools: list[PerturbationPool], n: int, seed: int) -> tuple[float, np.ndarray]:
    """Fraction of changed copies over the pools, and exact W2 of ``n`` copies drawn with ``seed``."""
    if not pools:
        return float("nan"), np.zeros(0)
    pairs = [(p.images.expand_as(p.copies).flatten(0, 1), p.copies.flatten(0, 1)) for p in pools]
    x, gx = (torch.cat(part) for part in zip(*pairs))
    changed = float((x != gx).flatten(1).any(1).float().mean())
    if n == 0:
        return changed, np.zeros(0)
    rows = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return changed, w2_shift(x[rows], lambda _: gx[rows])


def _import_before_fork() -> None:
    """Import what a first Adam step imports lazily (``torch._dynamo``, sympy: seconds of CPU).

    Forked workers inherit the parent's imports; without this, every worker of every
    :func:`run_arms` call would pay for them again. Touches no random generator.
    """
    weight = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.Adam([weight])
    weight.sum().backward()
    optimizer.step()


def _worker_start(parent: int) -> None:
    torch.set_num_threads(1)
    _JOB["worker"] = True
    _die_with(parent)


def _die_with(parent: int) -> None:
    """End this worker when ``parent`` ends (Linux): a stopped build kills its kernel, and the
    kernel's forked workers must not go on training as orphans for an hour.

    ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` asks the kernel to signal this process when its
    parent exits; if the parent is already gone (a race at start-up), the worker exits now.
    Elsewhere (macOS, Windows) nothing is set.
    """
    if not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


@contextmanager
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_arms(
    x: torch.Tensor,
    y: torch.Tensor | np.ndarray,
    arms: Sequence[Arm],
    seeds: Sequence[int],
    recipe: Mapping[str, Any],
    *,
    keep: Sequence[str] = (),
    n_jobs: int | None = None,
    pool_sample: int = 0,
    verbose: bool = True,
) -> dict[str, list[Run]]:
    """Train IIC on ``x`` for every arm and seed; runs with the same seed are paired.

    For each seed and arm: ``IIC(**recipe, **arm.params, g=arm.g, seed=seed).fit(x, y)``.
    IIC draws its initial network, its batch order and its g's draws from its seed
    (:func:`~infoclust.transforms.for_run`), so the arms of one seed share all three where
    they share a g, and no run's randomness depends on the runs before it.

    On the CPU every run uses one thread, and ``n_jobs`` runs go in parallel in forked
    worker processes: small networks use two cores better as two runs than as one run on
    two threads, and a run's numbers then do not depend on the machine's core count (sums
    split over threads are added in another order, and training amplifies the last bits).
    A run is reproduced bit for bit by rerunning it alone. On a GPU the runs go one after
    the other in this process.

    Parameters
    ----------
    x : torch.Tensor
        Training images (N, C, H, H).
    y : array-like
        Labels, used only to score (accuracy, NMI, ARI) and for the curves.
    arms : sequence of Arm
        Distinct names.
    seeds : sequence of int
        One run per seed and arm.
    recipe : mapping
        IIC parameters common to all arms (``seed`` and ``g`` excluded).
    keep : sequence of str
        Names of the arms whose fitted models are kept in :attr:`Run.model` (a model
        trained in a worker process comes back without its g: ``g`` and ``g_`` are None).
    n_jobs : int or None
        Worker processes on the CPU; None: :func:`infoclust.utils.num_threads` (``$INFOCLUST_NUM_THREADS``,
        else the CPUs this process may use). Ignored on a GPU.
    pool_sample : int
        Copies per run whose exact W2 to their image is measured (:attr:`Run.pool_w2`), for
        the runs whose g fills its own pools (``PerturbationPool(..., redraw=True)``).
    verbose : bool
        A progress bar over the runs.

    Returns
    -------
    dict
        ``{arm name: [Run per seed, in the order of seeds]}``.
    """
    names = [arm.name for arm in arms]
    if not arms or len(set(names)) != len(names):
        raise ParameterError(f"arms must have distinct names, got {names}")
    seeds = [check_seed("seeds", s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ParameterError(f"seeds must be distinct, got {seeds}")
    for key in ("seed", "g"):
        if key in recipe or any(key in arm.params for arm in arms):
            raise ParameterError(f"recipe and Arm.params must not set {key!r}: run_arms sets it per run")
    if any(params.get("checkpoint") is not None for params in (recipe, *(arm.params for arm in arms))):
        raise ParameterError(
            "recipe and Arm.params must not set 'checkpoint': every run would write over the same file"
        )
    unknown = sorted(set(keep) - set(names))
    if unknown:
        raise ParameterError(f"keep names arms that are not run: {unknown}")
    n_jobs = num_threads() if n_jobs is None else check_int("n_jobs", n_jobs, 1)
    pool_sample = check_int("pool_sample", pool_sample, 0)
    on_cpu = resolve_device(recipe.get("device", "auto")).type == "cpu"
    tasks = [(i, seed) for seed in seeds for i in range(len(arms))]
    _JOB.update(
        x=x,
        y=np.asarray(torch.as_tensor(y).cpu()),
        arms=list(arms),
        recipe=dict(recipe),
        keep=set(keep),
        pool_sample=pool_sample,
        worker=False,
    )
    done: dict[tuple[int, int], Run] = {}
    try:
        with tqdm(total=len(tasks), desc="IIC runs", disable=not verbose) as bar:
            if on_cpu and n_jobs > 1 and len(tasks) > 1:
                _import_before_fork()
                context = multiprocessing.get_context("fork")
                with ProcessPoolExecutor(
                    min(n_jobs, len(tasks)),
                    mp_context=context,
                    initializer=_worker_start,
                    initargs=(os.getpid(),),
                ) as pool:
                    futures = {pool.submit(_fit, *task): task for task in tasks}
                    for future in as_completed(futures):
                        done[futures[future]] = future.result()
                        bar.update(1)
            else:
                with _one_thread() if on_cpu else nullcontext():
                    for task in tasks:
                        done[task] = _fit(*task)
                        bar.update(1)
    finally:
        _JOB.clear()
    return {arm.name: [done[(i, seed)] for seed in seeds] for i, arm in enumerate(arms)}


def _scores(arm_runs: Sequence[Run], metric: str, scale: float) -> dict[int, float]:
    """``{seed: scale * score}`` of one arm's runs."""
    return {r.seed: scale * getattr(r, metric) for r in arm_runs}


def _check_comparison(runs: Mapping[str, Sequence[Run]], reference: str, metric: str, scale: float) -> float:
    if reference not in runs:
        raise ParameterError(f"reference={reference!r} is not one of the arms {list(runs)}")
    if metric not in ("acc", "nmi", "ari", "seconds"):
        raise ParameterError(f"metric={metric!r} is not one of ['acc', 'nmi', 'ari', 'seconds']")
    for name, arm_runs in runs.items():
        seeds = [r.seed for r in arm_runs]
        twice = sorted({s for s in seeds if seeds.count(s) > 1})
        if twice:
            raise ParameterError(f"arm {name!r} has seeds {twice} more than once: one run per seed and arm")
    return check_number("scale", scale, 0, strict_low=True)  # a negative scale flips the verdicts


def collapsed(
    runs: Mapping[str, Sequence[Run]],
    reference: str,
    drop: float,
    *,
    metric: str = "acc",
    scale: float = 100.0,
) -> dict[str, list[int]]:
    """The seeds of each arm whose run *collapsed*: it scored more than ``drop`` below the reference's median.

    IIC (talk, eq. 4) can end in a degenerate clustering, two classes in one cluster, on a
    single seed: such a run scores far below the others (at 96 % on ten equal digit classes,
    losing half a class's cluster costs about 5 points, merging two classes about 10). One
    such run dominates a mean over five seeds and widens its interval until no verdict is
    possible, and whether a set of seeds holds one is chance; so a design counts the collapses
    of each arm on their own and compares the scores of the runs that did not collapse
    (:func:`compare_arms` with ``drop``). The floor, ``median(reference) - drop``, is the
    reference's median so that a collapse of the reference itself does not move it.

    Parameters
    ----------
    runs : mapping
        As returned by :func:`run_arms`.
    reference : str
        The arm whose median score sets the floor.
    drop : float
        How far below that median a run counts as collapsed, > 0, in the scaled units
        (points of accuracy with the defaults). State it before the runs.
    metric : {"acc", "nmi", "ari", "seconds"}
        The score.
    scale : float
        Factor applied to the scores (100: accuracy in points), positive.

    Returns
    -------
    dict
        ``{arm name: sorted seeds of its collapsed runs}`` for every arm, the reference
        included (empty lists where none collapsed).
    """
    floor = collapse_floor(runs, reference, drop, metric=metric, scale=scale)
    return _seeds_where(runs, metric, scale, lambda v: v < floor)


def near_collapse(
    runs: Mapping[str, Sequence[Run]],
    reference: str,
    drop: float,
    band: float,
    *,
    metric: str = "acc",
    scale: float = 100.0,
) -> dict[str, list[int]]:
    """The seeds of each arm whose score lies within ``band`` of the collapse floor of :func:`collapsed`.

    Whether such a run counts as collapsed may change on another code path or with other
    seeds (the floor moves with the reference's median too), and with it the pairs a
    comparison keeps: a report marks the arm's verdict borderline in advance.

    Parameters
    ----------
    runs, reference, drop, metric, scale
        As in :func:`collapsed`.
    band : float
        Half-width of the band around the floor, >= 0, in the scaled units.

    Returns
    -------
    dict
        ``{arm name: sorted seeds within the band}`` for every arm, the reference included.
    """
    floor = collapse_floor(runs, reference, drop, metric=metric, scale=scale)
    band = check_number("band", band, 0)
    return _seeds_where(runs, metric, scale, lambda v: abs(v - floor) <= band)


def collapse_floor(
    runs: Mapping[str, Sequence[Run]],
    reference: str,
    drop: float,
    *,
    metric: str = "acc",
    scale: float = 100.0,
) -> float:
    """The score below which a run collapsed (:func:`collapsed`): the reference's median less ``drop``.

    Parameters
    ----------
    runs, reference, drop, metric, scale
        As in :func:`collapsed`.

    Returns
    -------
    float
        ``median(scale * score of the reference's runs) - drop``.
    """
    scale = _check_comparison(runs, reference, metric, scale)
    drop = check_number("drop", drop, 0, strict_low=True)
    return float(np.median(list(_scores(runs[reference], metric, scale).values()))) - drop


def _seeds_where(
    runs: Mapping[str, Sequence[Run]], metric: str, scale: float, keep: Callable[[float], bool]
) -> dict[str, list[int]]:
    """``{arm name: sorted seeds whose scaled score passes keep}`` for every arm."""
    return {
        name: sorted(s for s, v in _scores(arm_runs, metric, scale).items() if keep(v))
        for name, arm_runs in runs.items()
    }


def compare_arms(
    runs: Mapping[str, Sequence[Run]],
    reference: str,
    *,
    metric: str = "acc",
    scale: float = 100.0,
    confidence: float = 0.95,
    drop: float | None = None,
    pooled: bool = False,
) -> dict[str, PairedDifference]:
    """Paired difference of every arm against ``reference``, seed by seed.

    Parameters
    ----------
    runs : mapping
        As returned by :func:`run_arms`.
    reference : str
        The arm every other arm is compared with.
    metric : {"acc", "nmi", "ari", "seconds"}
        The score compared.
    scale : float
        Factor applied to the scores (100: accuracy in points), positive.
    confidence : float
        Coverage of the intervals.
    drop : float or None
        None: every seed both arms ran is a pair. A number: a pair in which either run
        collapsed (:func:`collapsed` with this ``drop``) is left out, and an arm left with
        fewer than two pairs (one, with ``pooled``) is left out of the result
        (:func:`collapsed` names its seeds; a report must say so, as it must count the
        collapses).
    pooled : bool
        False: each arm's interval from its own differences
        (:func:`~infoclust.metrics.paired_difference`). True: from one standard deviation
        pooled over all the arms' differences (:func:`~infoclust.metrics.pooled_differences`),
        so that an arm with few pairs left, or one unusual run, gets an interval as steady
        as the others'.

    Returns
    -------
    dict
        ``{arm name: PairedDifference(arm - reference)}`` for every arm but the reference,
        over the seeds that both ran (and, with ``drop``, on which neither collapsed).
    """
    scale = _check_comparison(runs, reference, metric, scale)
    out_seeds = collapsed(runs, reference, drop, metric=metric, scale=scale) if drop is not None else {}
    ref = _scores(runs[reference], metric, scale)
    pairs = {}
    for name, arm_runs in runs.items():
        if name == reference:
            continue
        mine = _scores(arm_runs, metric, scale)
        both = [s for s in ref if s in mine]
        if len(both) < 2:
            raise ParameterError(
                f"arm {name!r} shares {len(both)} seeds with {reference!r}; a paired "
                f"comparison needs at least two"
            )
        fell = set(out_seeds.get(name, ())) | set(out_seeds.get(reference, ()))
        shared = [s for s in both if s not in fell]
        if len(shared) >= (1 if pooled else 2):  # else too many collapses: counted by collapsed()
            pairs[name] = ([mine[s] for s in shared], [ref[s] for s in shared])
    if not pooled:
        return {name: paired_difference(*ab, confidence=confidence) for name, ab in pairs.items()}
    if sum(len(a) - 1 for a, _ in pairs.values()) < 1:
        return {}  # no arm kept two pairs: no spread to pool; every arm counted by collapsed()
    return pooled_differences(pairs, confidence=confidence)


@torch.no_grad()
def cluster_change_rate(model: IIC, x: torch.Tensor, g: BatchMap, *, n_draws: int = 1) -> float:
    """Fraction of images whose cluster changes under g: mean of ``[c(g(x_i)) != c(x_i)]``.

    ``c`` is the model's reported clustering (the main head's lowest-loss sub-head). IIC
    trains for ``c(g x) = c(x)`` with its own g (talk, eq. 4); the rate for another g says
    how far the invariance learnt with the first extends to the second (0: fully invariant;
    about ``1 - 1/k`` for balanced clusters assigned at random).

    Parameters
    ----------
    model : IIC
        A fitted estimator.
    x : torch.Tensor
        Images of the shape it was trained on.
    g : callable
        Batch -> batch of the same shape.
    n_draws : int
        Independent draws of ``g(x)`` averaged over.

    Returns
    -------
    float
        The rate, in [0, 1].
    """
    n_draws = check_int("n_draws", n_draws, 1)
    x = check_images("x", x, dtype=torch.float32)
    base = model.predict(x)
    changed = 0.0
    for _ in range(n_draws):
        gx = torch.cat([g(xb.to(model.device_)).cpu() for xb in x.split(1000)])
        changed += float(np.mean(model.predict(gx) != base))
    return changed / n_draws


@torch.no_grad()
def w2_shift(
    x: torch.Tensor, g: BatchMap, *, generator: torch.Generator | None = None, n: int | None = None
) -> np.ndarray:
    """Exact ``W2(x_i, g(x_i))`` per image, in pixels (talk, eq. 5 with q = 2).

    Each image and its transform are normalised to histograms of mass 1
    (:func:`infoclust.wasserstein.w2_exact`), so W2 measures how far g moves the ink, not
    how it changes the total brightness. An image that g empties (no ink left in the
    frame) gets ``inf``.

    Parameters
    ----------
    x : torch.Tensor
        Non-negative images (N, C, H, W).
    g : callable
        Batch -> batch of the same shape.
    generator : torch.Generator or None
        Draws the random subset when ``n`` is given (None: torch's global generator).
    n : int or None
        Use a random subset of this many images; None: all.

    Returns
    -------
    np.ndarray
        Shape (n,), float64.
    """
    generator = check_generator("generator", generator)
    x = check_images("x", x, dtype=torch.float32, nonnegative=True)
    if n is not None:
        n = check_int("n", n, 1, len(x))
        x = x[torch.randperm(len(x), generator=generator)[:n].to(x.device)]
    gx = g(x).clamp_min(0)
    out = np.full(len(x), np.inf)
    ok = (gx.flatten(1).sum(1) > 0).cpu().numpy()
    if ok.any():
        out[ok] = w2_exact(x[ok], gx[ok]).cpu().numpy()
    return out
