"""infoclust: mutual-information clustering, from k-means to IIC with Wasserstein perturbations.

A small PyTorch library backing the chapters of the book that reproduces the talk
"Maximization of Mutual Information for Information Clustering". One module per idea of
the talk; everything runs on CPU or GPU (``device="auto"``).

======================  ====================================  ===============================================
talk section            module                                entry points
======================  ====================================  ===============================================
2 k-means               :mod:`~infoclust.kmeans`              :class:`~infoclust.kmeans.KMeans`
3.1 Deep InfoMax        :mod:`~.mi`, :mod:`~.dim`             :class:`~infoclust.dim.DeepInfoMax`
3.2 IIC                 :mod:`~.iic`, :mod:`~.augment`        :class:`~infoclust.iic.IIC`, ``MNISTTransform``
4.1 Wasserstein         :mod:`~infoclust.wasserstein`         :func:`~infoclust.wasserstein.w2_exact`
4.2 deformation         :mod:`~infoclust.deform`              ``warp``, ``RandomDeformation``
4.3 projected Sinkhorn  :mod:`~infoclust.projected_sinkhorn`  ``project_wasserstein_ball``
4.3 the attacks         :mod:`~infoclust.attacks`             ``wasserstein_pgd``, Frank-Wolfe
4.4 ADef                :mod:`~infoclust.adef`                ``adef``, ``adef_step``
4.5 Algorithm 1         :mod:`~infoclust.w2_algorithm`        ``W2Perturbation``
4 as IIC's g            :mod:`~infoclust.transforms`          every transformation g
======================  ====================================  ===============================================

Around them: :mod:`~infoclust.data` (data sets), :mod:`~infoclust.metrics` (scores and
paired comparisons), :mod:`~infoclust.classifiers` (the attacked CNN, the random
classifier), :mod:`~infoclust.utils` (checks, randomness, devices), :mod:`infoclust.plot`
(figures; imported on its own) and :mod:`infoclust.book` (chapter runs, ledger, site).
Beyond one machine: :mod:`~infoclust.distributed` (IIC and DIM data-parallel under
``torchrun``), :mod:`~infoclust.checkpoint` (resumable runs) and ``python -m
infoclust.train`` (training without a notebook).
"""

from .book.ledger import Ledger, load_results, results_markdown
from .data import DATASETS, DatasetUnavailable, load_dataset
from .dim import DeepInfoMax
from .iic import IIC
from .kmeans import KMeans
from .metrics import ari, cluster_accuracy, evaluate, nmi
from .utils import (
    ConvergenceWarning,
    ParameterError,
    TrainingDivergedError,
    check_bool,
    check_choice,
    check_finite,
    check_int,
    check_number,
    make_generator,
    resolve_device,
    run_info,
    seed_everything,
    timer,
)

__version__ = "0.1.0"

__all__ = [
    "DATASETS",
    "DatasetUnavailable",
    "load_dataset",
    "KMeans",
    "DeepInfoMax",
    "IIC",
    "ari",
    "cluster_accuracy",
    "evaluate",
    "nmi",
    "Ledger",
    "load_results",
    "results_markdown",
    "ConvergenceWarning",
    "ParameterError",
    "TrainingDivergedError",
    "check_bool",
    "check_choice",
    "check_finite",
    "check_int",
    "check_number",
    "make_generator",
    "resolve_device",
    "run_info",
    "seed_everything",
    "timer",
]
