"""Properties that must hold for every input, checked on inputs that hypothesis draws.

W2 is a metric on histograms (symmetric, zero on the diagonal), moves a translated image by
exactly the length of the translation and is unchanged when both images move alike; the
projected-Sinkhorn projection lands inside its ball with the mass it started with; a warp by
a constant integer field is a shift; cluster accuracy does not depend on the names of the
clusters.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from infoclust.deform import warp
from infoclust.metrics import cluster_accuracy
from infoclust.projected_sinkhorn import project_wasserstein_ball
from infoclust.wasserstein import w2_exact

SETTINGS = settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
CANVAS = 12
PATCH = 5


pytestmark = pytest.mark.usefixtures("one_thread")


def patches(side: int = PATCH):
    """Non-negative side x side patches with some mass, values on a 1/8 grid (exact sums)."""
    return arrays(np.float64, (side, side), elements=st.integers(0, 8).map(lambda v: v / 8)).filter(
        lambda a: a.sum() > 0
    )


def place(patch: np.ndarray, top: int, left: int, canvas: int = CANVAS) -> torch.Tensor:
    """The patch on an empty canvas x canvas image at (top, left), as (1, 1, H, W)."""
    img = np.zeros((canvas, canvas))
    img[top : top + patch.shape[0], left : left + patch.shape[1]] = patch
    return torch.from_numpy(img)[None, None]


offsets = st.integers(0, CANVAS - PATCH)


@SETTINGS
@given(patches(), patches(), offsets, offsets, offsets, offsets)
def test_w2_is_symmetric_and_zero_on_the_diagonal(p, q, i, j, k, m):
    a, b = place(p, i, j), place(q, k, m)
    assert w2_exact(a, b).item() == pytest.approx(w2_exact(b, a).item(), abs=1e-9)
    assert w2_exact(a, a).item() == pytest.approx(0.0, abs=1e-7)


@SETTINGS
@given(patches(), offsets, offsets, offsets, offsets)
def test_w2_of_a_translation_is_its_length(p, i, j, k, m):
    """Moving all the mass by (k - i, m - j) is optimal for the squared distance (and costs its length)."""
    assert w2_exact(place(p, i, j), place(p, k, m)).item() == pytest.approx(
        math.hypot(k - i, m - j), abs=1e-6
    )


inner = st.integers(3, 8)  # on a 16 x 16 canvas a patch there may move by up to 3 pixels
shift = st.integers(-3, 3)


@SETTINGS
@given(patches(), patches(), inner, inner, inner, inner, shift, shift)
def test_w2_is_unchanged_when_both_images_move_alike(p, q, i, j, k, m, di, dj):
    base = w2_exact(place(p, i, j, 16), place(q, k, m, 16)).item()
    moved = w2_exact(place(p, i + di, j + dj, 16), place(q, k + di, m + dj, 16)).item()
    assert moved == pytest.approx(base, abs=1e-6)


@SETTINGS
@given(
    patches(CANVAS),
    arrays(np.float64, (CANVAS, CANVAS), elements=st.floats(-0.5, 0.5)),
    st.floats(0.05, 2.0),
    st.sampled_from([3, 5]),
)
def test_projection_stays_in_the_ball_with_the_same_mass(x, noise, eps, kernel_size):
    x = torch.from_numpy(x)[None, None]
    w = x + torch.from_numpy(noise)[None, None]
    z, info = project_wasserstein_ball(w, x, eps, kernel_size=kernel_size, max_iter=50, return_info=True)
    assert torch.isfinite(z).all()
    assert z.sum().item() == pytest.approx(x.sum().item(), rel=1e-9)
    assert z.min().item() >= -1e-12
    mass = x.sum().item()
    assert info.cost.item() <= eps * (1 + 1e-9)
    # the plan moves mass within the window at squared-distance cost: exact W2^2 (per unit mass) is lower
    assert w2_exact(x, z.clamp_min(0)).item() ** 2 <= eps * (1 + 1e-6) + 1e-9, (mass, eps)


@SETTINGS
@given(patches(CANVAS), st.integers(-3, 3), st.integers(-3, 3))
def test_warp_by_a_constant_integer_field_is_a_shift(x, dx, dy):
    img = torch.from_numpy(x)[None, None]
    field = torch.empty(1, 2, CANVAS, CANVAS, dtype=img.dtype)
    field[:, 0], field[:, 1] = dx, dy
    out = warp(img, field)
    want = torch.zeros_like(img)  # out(p) = img(p + (dx, dy)), zero outside
    rows, cols = slice(max(0, -dy), CANVAS - max(0, dy)), slice(max(0, -dx), CANVAS - max(0, dx))
    src_rows, src_cols = slice(rows.start + dy, rows.stop + dy), slice(cols.start + dx, cols.stop + dx)
    want[..., rows, cols] = img[..., src_rows, src_cols]
    assert torch.allclose(out, want, atol=1e-9)


@SETTINGS
@given(st.lists(st.integers(0, 5), min_size=2, max_size=60), st.permutations(range(6)))
def test_cluster_accuracy_ignores_cluster_names(labels, perm):
    y = np.asarray(labels)
    renamed = np.asarray(perm)[y]
    assert cluster_accuracy(y, renamed) == 1.0
    pred = np.roll(y, 1)
    assert cluster_accuracy(y, np.asarray(perm)[pred]) == pytest.approx(cluster_accuracy(y, pred))
