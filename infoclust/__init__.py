"""infoclust: mutual-information clustering, from k-means to IIC with Wasserstein perturbations.

A small PyTorch library backing the notebook chapters of the book that reproduces the
talk "Maximization of Mutual Information for Information Clustering". One module per
idea; everything runs on CPU or GPU (``device="auto"``):

- ``kmeans``: :class:`KMeans` (chapter 1);
- ``mi``, ``dim``: mutual-information estimators and :class:`DeepInfoMax` (chapter 2);
- ``iic``, ``augment``: :class:`IIC` and the paper's MNIST transformation (chapter 3);
- ``wasserstein``, ``deform``: W2 between images, eq. (6), random deformations (4, 5);
- ``sinkhorn``, ``classifiers``: projected Sinkhorn, Wasserstein PGD, the random classifier (6);
- ``adef``, ``perturb``: ADef and the talk's Algorithm 1 (7, 8);
- ``transforms``: the talk's perturbations as IIC transformations, pools, composition (9);
- ``data``, ``metrics``, ``ledger``, ``utils``, ``book``: data sets, scores, results, the build.
"""
from .data import DATASETS, DatasetUnavailable, load_dataset
from .dim import DeepInfoMax
from .iic import IIC
from .kmeans import KMeans
from .ledger import Ledger, load_results, results_markdown
from .metrics import ari, cluster_accuracy, evaluate, nmi
from .utils import (ParameterError, check_choice, check_finite, check_int, check_number,
                    resolve_device, run_info, seed_everything, set_plot_style, timer)

__version__ = "0.1.0"
