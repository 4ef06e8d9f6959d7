"""k-means clustering (Lloyd's algorithm) in torch, on CPU or GPU.

The talk's section 2 states the algorithm: (1) choose k initial means, (2) assign every
point to its closest mean, (3) replace every mean by the average of its points; repeat
(2)-(3) until the means stop moving. Formally, Lloyd's iterations decrease the inertia

.. math:: J(\\mu, c) = \\sum_{i=1}^{n} \\lVert x_i - \\mu_{c_i} \\rVert^2 ,

alternating :math:`c_i = \\arg\\min_j \\lVert x_i - \\mu_j\\rVert^2` (step 2) and
:math:`\\mu_j = \\frac{1}{|C_j|}\\sum_{i \\in C_j} x_i` (step 3).

Step 3 is undefined for a cluster that received no point. The plain algorithm leaves such
a mean where it was: it is then *dead*, and this is how k-means degenerates from an
unfortunate initialisation (``empty="keep"``). ``empty="relocate"`` repairs it the way
scikit-learn does, by moving each empty cluster's mean to the point farthest from its own
mean. Initialisation is uniform (``"random"``) or greedy k-means++ (Arthur & Vassilvitskii,
2007, with ``2 + ln k`` local trials as in scikit-learn), or given centres.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from scipy import sparse
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils.validation import check_is_fitted

from .utils import (
    ConvergenceWarning,
    ParameterError,
    check_bool,
    check_choice,
    check_finite,
    check_generator,
    check_int,
    check_number,
    check_seed,
    resolve_device,
)

__all__ = ["KMeans", "kmeans_plusplus", "pairwise_sq_dists"]

_CHUNK_ELEMENTS = 2**24  # distance entries per chunk: 64 MiB of float32
_BLOCK_ELEMENTS = 2**20  # float64 differences per block of the inertia: 8 MiB, in the cache


def _as_matrix(name: str, x, device: torch.device) -> torch.Tensor:
    """``x`` (n, d) or (n, ...) as a float32 (n, d) tensor on ``device``, after checking it.

    Takes tensors (any device), NumPy arrays, lists and data frames; real numbers of any
    dtype are converted (the library computes in float32). Raises ``TypeError`` for sparse
    matrices and non-numeric entries, :class:`ParameterError` naming ``name`` for complex
    numbers, fewer than two axes, no samples or no features, NaN and infinity.
    """
    if sparse.issparse(x):
        raise TypeError(f"{name} is a sparse matrix; KMeans needs dense data ({name}.toarray())")
    if not torch.is_tensor(x):
        x = np.asarray(x)
        if np.iscomplexobj(x):
            raise ParameterError(f"{name} has complex dtype {x.dtype}: Complex data not supported")
        try:
            x = torch.from_numpy(np.array(x, dtype=np.float32))  # a writable float32 copy
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must hold real numbers ({err})") from None
    if x.is_complex():
        raise ParameterError(f"{name} has complex dtype {x.dtype}: Complex data not supported")
    if x.ndim < 2:
        raise ParameterError(
            f"{name} must have shape (n_samples, n_features, ...), got {tuple(x.shape)}. "
            f"Reshape your data: {name}.reshape(-1, 1) for one feature, "
            f"{name}.reshape(1, -1) for one sample"
        )
    if len(x) == 0:
        raise ParameterError(f"{name} holds 0 samples (shape {tuple(x.shape)}); at least 1 is required")
    x = x.detach().reshape(len(x), -1)
    if x.shape[1] == 0:
        raise ParameterError(
            f"{name} has 0 feature(s) (shape={tuple(x.shape)}) while a minimum of 1 is required."
        )
    x = x.to(device=device, dtype=torch.float32).contiguous()
    check_finite(name, x)
    largest, bound = float(x.abs().max()), math.sqrt(torch.finfo(torch.float32).max / (4 * x.shape[1]))
    if largest > bound:  # |x|^2 - 2 x.c + |c|^2 must stay finite in float32
        raise ParameterError(
            f"{name} holds values up to {largest:.3g}: their squared distances overflow float32, in which "
            f"KMeans computes (at most {bound:.3g} for {x.shape[1]} features); scale {name} down"
        )
    return x


def pairwise_sq_dists(x: torch.Tensor, c: torch.Tensor, x_sq: torch.Tensor | None = None) -> torch.Tensor:
    """Squared Euclidean distances ``||x_i - c_j||^2`` as ``|x|^2 - 2 x.c + |c|^2``, clamped at 0.

    Parameters
    ----------
    x : torch.Tensor, shape (n, d)
        The points.
    c : torch.Tensor, shape (k, d)
        The centres.
    x_sq : torch.Tensor of shape (n,), optional
        The squared norms of ``x``'s rows, if known (saves their computation).

    Returns
    -------
    torch.Tensor, shape (n, k)
        The squared distances, >= 0.
    """
    if (
        not (torch.is_tensor(x) and torch.is_tensor(c))
        or x.ndim != 2
        or c.ndim != 2
        or x.shape[1] != c.shape[1]
    ):
        shapes = [tuple(a.shape) if torch.is_tensor(a) else type(a).__name__ for a in (x, c)]
        raise ParameterError(
            f"x and c must be tensors (n, d) and (k, d) with the same d, got {shapes[0]} and {shapes[1]}"
        )
    x_sq = (x * x).sum(1) if x_sq is None else x_sq
    d = torch.addmm((c * c).sum(1).unsqueeze(0), x, c.T, alpha=-2.0)
    return d.add_(x_sq.unsqueeze(1)).clamp_(min=0.0)


def _assign(x: torch.Tensor, c: torch.Tensor, x_sq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Closest centre and its squared distance for every row, in chunks of rows (step 2)."""
    rows = max(1, _CHUNK_ELEMENTS // max(1, len(c)))
    labels = torch.empty(len(x), dtype=torch.long, device=x.device)
    dist = torch.empty(len(x), dtype=x.dtype, device=x.device)
    for s in range(0, len(x), rows):
        d = pairwise_sq_dists(x[s : s + rows], c, x_sq[s : s + rows])
        dist[s : s + rows], labels[s : s + rows] = d.min(1)
    return labels, dist


def _halving_sum(v: torch.Tensor) -> torch.Tensor:
    """Sums over the last dimension, in a fixed order: neighbours added pairwise until one is left.

    Every step is an element-wise addition, so the result does not depend on how a kernel
    orders a reduction (its vector width, the CPU code path, the thread count).
    """
    while v.shape[-1] > 1:
        if v.shape[-1] % 2:
            v = torch.nn.functional.pad(v, (0, 1))
        v = v[..., 0::2] + v[..., 1::2]
    return v[..., 0] if v.shape[-1] else v.new_zeros(v.shape[:-1])


def _inertia(x: torch.Tensor, centers: torch.Tensor, labels: torch.Tensor) -> float:
    """The inertia J (module docstring), in float64 from the differences to the assigned centres.

    The same labels and centres give the same bits on every CPU code path and thread count
    (:func:`_halving_sum`); float64 also avoids the cancellation of the expanded distances.
    On a CPU the rows go in blocks that stay in the cache (8 MiB of float64, large enough
    that two threads' fork and join per operation stay cheap; on a GPU in chunks as
    :func:`_assign`'s, fewer launches): each row's sum depends only on that row, so the block
    size changes no bit, only the time (a third of it on one thread).
    """
    rows = max(1, (_CHUNK_ELEMENTS if x.is_cuda else _BLOCK_ELEMENTS) // x.shape[1])
    c = centers.double()
    per_row = [
        _halving_sum(x[s : s + rows].double().sub_(c.index_select(0, labels[s : s + rows])).pow_(2))
        for s in range(0, len(x), rows)
    ]
    return float(_halving_sum(torch.cat(per_row)))


def _cluster_sums(
    x: torch.Tensor, labels: torch.Tensor, k: int, onehot: bool | None = None, rows: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Size and sum of the rows of each cluster (step 3), as floats: shapes (k,) and (k, d).

    ``onehot`` (default: on CUDA) sums by one-hot matrix products over chunks of ``rows``
    rows (default as in :func:`_assign`, so memory stays bounded): on a GPU, scattered
    atomic adds of every row onto only k rows serialise. Otherwise ``index_add_``, which is
    as fast on a CPU and needs no (n, k) matrix.
    """
    if onehot is None:
        onehot = x.device.type == "cuda"
    counts = torch.zeros(k, dtype=x.dtype, device=x.device)
    sums = torch.zeros(k, x.shape[1], dtype=x.dtype, device=x.device)
    if not onehot:
        return counts.index_add_(0, labels, torch.ones_like(x[:, 0])), sums.index_add_(0, labels, x)
    rows = rows or max(1, _CHUNK_ELEMENTS // k)
    for s in range(0, len(x), rows):
        hot = torch.nn.functional.one_hot(labels[s : s + rows], k).to(x.dtype)
        counts += hot.sum(0)
        sums.addmm_(hot.T, x[s : s + rows])
    return counts, sums


def kmeans_plusplus(
    x: torch.Tensor, n_clusters: int, generator: torch.Generator | None, n_local_trials: int | None = None
) -> torch.Tensor:
    """Greedy k-means++ seeding: each new centre is the best of ``2 + ln k`` D^2-samples.

    Parameters
    ----------
    x : torch.Tensor
        Data, shape (n, d).
    n_clusters : int
        Number of centres k.
    generator : torch.Generator or None
        CPU generator for the draws (reproducible on every device); None: torch's global one.
    n_local_trials : int, optional
        Candidates per centre; default ``2 + int(ln k)``.

    Returns
    -------
    torch.Tensor, shape (n_clusters, d)
        The initial centres, rows of ``x``.
    """
    if not torch.is_tensor(x) or x.ndim != 2 or not x.is_floating_point():
        got = f"{tuple(x.shape)} {x.dtype}" if torch.is_tensor(x) else type(x).__name__
        raise TypeError(f"x must be a floating-point tensor of shape (n, d), got {got}")
    n = len(x)
    check_int("n_clusters", n_clusters, 1, n)
    generator = check_generator("generator", generator)
    if n_local_trials is not None:
        check_int("n_local_trials", n_local_trials, 1)
    trials = n_local_trials or 2 + int(math.log(n_clusters))
    x_sq = (x * x).sum(1)
    first = int(torch.randint(n, (1,), generator=generator))
    centers = [x[first]]
    closest = pairwise_sq_dists(x, x[first : first + 1], x_sq)[:, 0]
    for _ in range(1, n_clusters):
        weights = closest.double().cpu()
        if weights.sum() <= 0:  # all points coincide with centres: draw uniformly
            weights = torch.ones_like(weights)
        cand = torch.multinomial(weights, trials, replacement=True, generator=generator).to(x.device)
        d = torch.minimum(closest.unsqueeze(1), pairwise_sq_dists(x, x[cand], x_sq))
        best = int(d.sum(0).argmin())
        closest = d[:, best]
        centers.append(x[cand[best]])
    return torch.stack(centers)


class KMeans(ClusterMixin, BaseEstimator):
    """k-means clustering, a scikit-learn estimator that runs on CPU or GPU.

    Parameters
    ----------
    n_clusters : int
        Number of clusters k.
    init : {"k-means++", "random"} or array of shape (k, d)
        Initial means: greedy k-means++, k distinct points drawn uniformly (the talk's
        step 1), or the given centres (then ``n_init`` must be 1).
    n_init : int
        Number of runs from different initialisations; the one with the lowest inertia wins.
    max_iter : int
        Maximum number of Lloyd iterations per run. The best run stopping there without
        converging warns :class:`~infoclust.utils.ConvergenceWarning`.
    tol : float
        Convergence when the squared shift of all centres falls to ``tol`` times the mean
        per-feature variance of the data (scikit-learn's rule), or when no label changes.
    empty : {"relocate", "keep"}
        What happens to a cluster that receives no point: moved to the farthest point
        (repair), or left where it is (the plain algorithm; the cluster dies).
    seed : int
        Seed of every random draw, in [0, 2**32 - 1]: the estimator draws from its own
        generator and leaves the global random state alone.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``...
    keep_history : bool
        Store the centres of every iteration of the best run in ``history_`` (for drawing).

    Attributes
    ----------
    cluster_centers_ : np.ndarray, (k, d), float32
    labels_ : np.ndarray, (n,), int64
    inertia_ : float
        Sum of squared distances of the points to their closest centre, computed in float64
        and summed in a fixed order: the same labels and centres give the same bits on every
        CPU code path and thread count.
    n_iter_ : int
        Lloyd iterations of the best run.
    n_empty_ : int
        Clusters without any point at the end of the best run (dead clusters).
    n_relocated_ : int
        Empty clusters repaired during the best run (``empty="relocate"``).
    history_ : list of np.ndarray
        Centres after initialisation and after each iteration (``keep_history=True``).
    n_features_in_ : int
        Features per sample seen by :meth:`fit` (pixels, for images).
    device_ : torch.device
        Where the computation ran.
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | torch.Tensor | np.ndarray = "k-means++",
        n_init: int = 1,
        max_iter: int = 300,
        tol: float = 1e-4,
        empty: str = "relocate",
        seed: int = 0,
        device: str = "auto",
        keep_history: bool = False,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.empty = empty
        self.seed = seed
        self.device = device
        self.keep_history = keep_history

    def _check_params(self, n_samples: int, n_features: int, device: torch.device) -> torch.Tensor | None:
        check_int("n_clusters", self.n_clusters, 1)
        if self.n_clusters > n_samples:
            raise ParameterError(f"n_clusters={self.n_clusters} exceeds the number of samples ({n_samples})")
        check_int("n_init", self.n_init, 1)
        check_int("max_iter", self.max_iter, 1)
        check_number("tol", self.tol, 0.0)
        check_choice("empty", self.empty, ("relocate", "keep"))
        check_seed("seed", self.seed)
        check_bool("keep_history", self.keep_history)
        if isinstance(self.init, str):
            check_choice("init", self.init, ("k-means++", "random"))
            return None
        init = _as_matrix("init", self.init, device)
        if init.shape != (self.n_clusters, n_features):
            raise ParameterError(
                f"init has shape {tuple(init.shape)}, expected ({self.n_clusters}, {n_features})"
            )
        if self.n_init != 1:
            raise ParameterError(f"n_init={self.n_init} must be 1 when init is an array of centres")
        return init

    def _initial_centers(
        self, x: torch.Tensor, given: torch.Tensor | None, gen: torch.Generator
    ) -> torch.Tensor:
        if given is not None:
            return given.clone()
        if self.init == "random":
            idx = torch.randperm(len(x), generator=gen)[: self.n_clusters].to(x.device)
            return x[idx].clone()
        return kmeans_plusplus(x, self.n_clusters, gen)

    def _lloyd(self, x: torch.Tensor, x_sq: torch.Tensor, centers: torch.Tensor, tol: float) -> dict:
        # One host-device synchronisation per iteration (the three numbers that decide what
        # comes next): on a GPU every extra one costs more than the arithmetic of a step.
        k = self.n_clusters
        history = [centers.cpu().numpy()] if self.keep_history else []
        labels = None
        relocated = 0
        converged = False
        n_iter = 0
        for n_iter in range(1, self.max_iter + 1):
            new_labels, dist = _assign(x, centers, x_sq)  # step 2
            counts, sums = _cluster_sums(x, new_labels, k)
            filled = counts > 0  # empty clusters keep their old mean...
            new_centers = torch.where(
                filled[:, None], sums / counts.clamp_min(1.0)[:, None], centers
            )  # step 3
            changed = (
                (new_labels != labels).sum() if labels is not None else torch.tensor(len(x), device=x.device)
            )
            n_empty, n_changed, shift = torch.stack(
                [(~filled).sum().to(x.dtype), changed.to(x.dtype), ((new_centers - centers) ** 2).sum()]
            ).tolist()
            if n_empty and self.empty == "relocate":  # ...unless repaired
                empty = (~filled).nonzero().flatten()
                new_centers[empty] = x[dist.topk(len(empty)).indices]
                relocated += len(empty)
                shift = ((new_centers - centers) ** 2).sum().item()
            centers, labels = new_centers, new_labels
            if self.keep_history:
                history.append(centers.cpu().numpy())
            if n_changed == 0 or shift <= tol:
                converged = True
                break
        labels, _ = _assign(x, centers, x_sq)
        n_empty = int((torch.bincount(labels, minlength=k) == 0).sum())
        return {
            "centers": centers,
            "labels": labels,
            "inertia": _inertia(x, centers, labels),
            "n_iter": n_iter,
            "n_empty": n_empty,
            "relocated": relocated,
            "history": history,
            "converged": converged,
        }

    def fit(self, x, y=None) -> "KMeans":
        """Cluster ``x`` (n, d) or (n, C, H, W), flattened per sample. ``y`` is ignored.

        ``x`` may be a tensor (on any device), a NumPy array, a list or a data frame.
        """
        device = resolve_device(self.device)
        x = _as_matrix("x", x, device)
        given = self._check_params(len(x), x.shape[1], device)
        gen = torch.Generator().manual_seed(self.seed)
        x_sq = (x * x).sum(1)
        tol = self.tol * float(x.var(0).mean()) if len(x) > 1 else 0.0
        best = None
        for _ in range(self.n_init):
            run = self._lloyd(x, x_sq, self._initial_centers(x, given, gen), tol)
            if best is None or run["inertia"] < best["inertia"]:
                best = run
        if not best["converged"]:
            warnings.warn(
                f"KMeans stopped at max_iter={self.max_iter} before converging (tol={self.tol}); "
                f"raise max_iter",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.cluster_centers_ = best["centers"].cpu().numpy()
        self.labels_ = best["labels"].cpu().numpy()
        self.inertia_ = best["inertia"]
        self.n_iter_ = best["n_iter"]
        self.n_empty_ = best["n_empty"]
        self.n_relocated_ = best["relocated"]
        self.history_ = best["history"]
        self.n_features_in_ = x.shape[1]
        self.device_ = device
        return self

    def predict(self, x) -> np.ndarray:
        """Index of the closest learnt centre for every sample (int64)."""
        check_is_fitted(self)
        x = _as_matrix("x", x, self.device_)
        if x.shape[1] != self.n_features_in_:
            raise ParameterError(
                f"x has {x.shape[1]} features, but KMeans is expecting "
                f"{self.n_features_in_} features as input (the data passed to fit)"
            )
        labels, _ = _assign(x, torch.from_numpy(self.cluster_centers_).to(x.device), (x * x).sum(1))
        return labels.cpu().numpy()
