"""Hostile inputs of the clustering metrics and the paired comparisons (:mod:`infoclust.metrics`).

Issue 22, item 6: a ``power`` of :func:`~infoclust.metrics.paired_difference` beyond what its
integral resolves.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_hostile_common import case, collect, works, strict_test, refused

from infoclust.metrics import ari, cluster_accuracy, evaluate, hungarian_match, nmi, paired_difference

A, B = [0.97, 0.95, 0.96, 0.96, 0.94], [0.95, 0.94, 0.93, 0.94, 0.93]


@pytest.mark.parametrize("power", [1 - 1e-12, 1 - 1e-9, 1.0, 1.5, float("nan"), 0.01, "0.8"])
def test_power_beyond_what_the_integral_resolves(power):
    with refused("power"):
        paired_difference(A, B, power=power)


pytestmark = pytest.mark.usefixtures("one_thread")


def _cases() -> None:
    acc = lambda *a: cluster_accuracy(*a)  # noqa: E731
    case("metrics-length-mismatch", lambda: acc([0, 1, 1], [0, 1]), "y_true y_pred")
    case("metrics-empty", lambda: acc([], []), "y_true y_pred ~EMPTY")
    case(
        "metrics-float-labels",
        lambda: acc(np.array([0.5, 1.0]), np.array([0, 1])),
        "y_true",
        exc="TypeError",
    )
    case(
        "metrics-float-tensor-labels",
        lambda: acc(torch.tensor([0.0, 1.0]), torch.tensor([0, 1])),
        "y_true",
        exc="TypeError",
    )
    case("metrics-negative", lambda: acc([0, -1], [0, 1]), "y_true")
    case("metrics-2d", lambda: acc(np.zeros((2, 2), int), np.zeros((2, 2), int)), "y_true")
    case("metrics-strings", lambda: acc(["a", "b"], ["a", "b"]), "y_true", exc="TypeError")
    works(
        "metrics-huge-ids-pred",
        lambda: acc(np.array([0, 0, 1]), np.array([10**9, 10**9, 7])),
        check=lambda r: None if r == 1.0 else f"accuracy {r}, expected 1.0",
        memory=True,
    )
    works(
        "metrics-huge-ids-true",
        lambda: acc(np.array([10**9, 3, 3]), np.array([0, 1, 1])),
        check=lambda r: None if r == 1.0 else f"accuracy {r}, expected 1.0",
        memory=True,
    )
    works(
        "metrics-huge-ids-hungarian",
        lambda: hungarian_match(np.array([0, 1]), np.array([5 * 10**8, 2])),
        memory=True,
    )
    works(
        "metrics-huge-ids-nmi",
        lambda: nmi(np.array([0, 1]), np.array([10**12, 2])),
        memory=True,
    )
    works(
        "metrics-int32-tensor",
        lambda: acc(torch.tensor([0, 1, 1], dtype=torch.int32), torch.tensor([1, 0, 0], dtype=torch.int32)),
        check=lambda r: None if r == 1.0 else f"accuracy {r}",
    )
    case("metrics-nmi-length", lambda: nmi([0, 1], [0]), "y_true y_pred")
    case("metrics-ari-float", lambda: ari([0.0, 1.0], [0, 1]), "y_true", exc="TypeError")
    case("metrics-evaluate-empty", lambda: evaluate([], []), "y_true ~EMPTY")

    case("metrics-compare-one-run", lambda: paired_difference([0.5], [0.4, 0.6]), "a")
    case("metrics-compare-nan", lambda: paired_difference([0.5, float("nan")], [0.4, 0.6]), "a")
    case("metrics-compare-strings", lambda: paired_difference(["a", "b"], [0.4, 0.6]), "a", exc="TypeError")
    case(
        "metrics-compare-confidence-one",
        lambda: paired_difference([0.5, 0.6], [0.4, 0.6], confidence=1.0),
        "confidence",
    )
    case(
        "metrics-compare-unpaired",
        lambda: paired_difference([0.5, 0.6], [0.4, 0.6, 0.7]),
        "a b",
    )


CASES = collect(_cases)
test_hostile_input = strict_test(CASES)
