"""infoclust: mutual-information clustering, from k-means to IIC with Wasserstein perturbations.

A small PyTorch library backing the notebook chapters of the book that reproduces the
talk "Maximization of Mutual Information for Information Clustering". One module per
idea; everything runs on CPU or GPU (``device="auto"``).
"""
from .data import DATASETS, DatasetUnavailable, load_dataset
from .ledger import Ledger, load_results, results_markdown
from .kmeans import KMeans
from .metrics import ari, cluster_accuracy, evaluate, nmi
from .utils import (ParameterError, check_choice, check_finite, check_int, check_number,
                    resolve_device, run_info, seed_everything, set_plot_style, timer)

__version__ = "0.1.0"
