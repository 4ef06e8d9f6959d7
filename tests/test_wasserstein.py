"""Tests of infoclust.wasserstein: histograms, exact and entropic W2, the eq. (6) sampler."""

import math
import warnings

import numpy as np
import ot
import pytest
import torch
from scipy import stats

from infoclust.wasserstein import (
    acceptance_probability,
    distance_to_radius,
    grid_cost,
    intensity_wasserstein,
    perturbation_density,
    radius_to_distance,
    sample_perturbation,
    to_histogram,
    w2_exact,
    w2_sinkhorn,
)
from infoclust.utils import ConvergenceWarning, ParameterError
from infoclust.wasserstein import _density, _normalise, _w2_exact


def _blobs(n, h=10, w=10, seed=0):
    """Random non-negative images with some empty pixels (like digits)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, h, w, generator=g)
    return x * (torch.rand(n, 1, h, w, generator=g) < 0.4)


def _dirac(h, w, i, j):
    x = torch.zeros(1, h, w)
    x[0, i, j] = 1.0
    return x


def test_histogram_mass_and_channels():
    x = torch.rand(3, 3, 5, 4)
    hist = to_histogram(x)
    assert hist.shape == (3, 20)
    assert torch.allclose(hist.sum(1), torch.ones(3))
    assert torch.allclose(hist[0], x[0].sum(0).flatten() / x[0].sum())
    assert to_histogram(torch.ones(5, 4)).shape == (1, 20)


def test_histogram_bad_inputs():
    with pytest.raises(ParameterError, match="negative"):
        to_histogram(-torch.rand(1, 1, 4, 4))
    with pytest.raises(ParameterError, match="zero total mass"):
        to_histogram(torch.zeros(2, 1, 4, 4))
    with pytest.raises(ParameterError, match="NaN"):
        to_histogram(torch.full((1, 1, 2, 2), float("nan")))
    with pytest.raises(ParameterError, match="a contains NaN"):
        w2_sinkhorn(torch.full((1, 1, 2, 2), float("inf")), torch.ones(1, 1, 2, 2))
    with pytest.raises(ParameterError, match="b: images .0. have zero total mass"):
        w2_exact(torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))
    # integer images are histograms as they are (the scale does not matter)
    x, y = _blobs(2), _blobs(2, seed=1)
    as_uint8 = w2_exact((255 * x).round().to(torch.uint8), (255 * y).round().to(torch.uint8))
    torch.testing.assert_close(as_uint8, w2_exact(x, y), rtol=1e-2, atol=0)


def test_grid_cost():
    c = grid_cost(3, 4)
    assert c.shape == (12, 12)
    assert c[0, 11].item() == 2**2 + 3**2  # (0, 0) to (2, 3)
    assert torch.equal(c, c.T) and c.diagonal().abs().max() == 0


@pytest.mark.parametrize("d", [1, 3, 5])
def test_dirac_shift_has_w2_d(d):
    a, b, c = _dirac(8, 9, 2, 1), _dirac(8, 9, 2, 1 + d), _dirac(8, 9, 2 + d, 1)
    assert w2_exact(a, b).item() == pytest.approx(d)
    assert w2_exact(a, c).item() == pytest.approx(d)
    for mode in ("divergence", "cost"):
        assert w2_sinkhorn(a, b, reg=2.0, debiased=mode).item() == pytest.approx(d, rel=1e-4)


def test_identity_symmetry_and_broadcast():
    x = _blobs(4)
    y = _blobs(4, seed=1)
    assert torch.allclose(w2_exact(x, x), torch.zeros(4, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(w2_exact(x, y), w2_exact(y, x))
    assert torch.allclose(w2_sinkhorn(x, x), torch.zeros(4, dtype=torch.float64), atol=1e-5)
    s_xy, s_yx = w2_sinkhorn(x, y, tol=1e-6), w2_sinkhorn(y, x, tol=1e-6)
    assert torch.allclose(s_xy, s_yx, rtol=1e-3)
    single = w2_exact(x[0, 0], y)  # one (H, W) image against a batch
    assert single.shape == (4,) and single[0].item() == pytest.approx(w2_exact(x[0], y[0]).item())


def test_exact_agrees_with_pot_on_full_histograms():
    x, y = _blobs(3, 6, 7, seed=2), _blobs(3, 6, 7, seed=3)
    cost = grid_cost(6, 7).numpy()
    ref = [
        math.sqrt(ot.emd2(p, q, cost))
        for p, q in zip(to_histogram(x, torch.float64).numpy(), to_histogram(y, torch.float64).numpy())
    ]
    assert np.allclose(w2_exact(x, y).numpy(), ref, rtol=1e-9)


def test_unchecked_kernels_equal_the_checked_functions():
    # the library's own callers skip the checks, never the arithmetic: the same bits
    x, y = _blobs(3, 6, 7, seed=2), _blobs(3, 6, 7, seed=3)
    assert torch.equal(_w2_exact(x, y), w2_exact(x, y))
    assert torch.equal(_normalise(x, torch.float64), to_histogram(x, torch.float64))
    d = torch.tensor([0.0, 0.4, float("inf")], dtype=torch.float64)
    assert torch.equal(_density(d, 0.3), perturbation_density(d, 0.3))


@pytest.mark.parametrize("reg", [2.0, 0.3])  # matrix scaling; log-domain Sinkhorn
def test_entropic_plan_cost_agrees_with_pot_sinkhorn(reg):
    x, y = _blobs(3, 6, 5, seed=4), _blobs(3, 6, 5, seed=5)
    cost = grid_cost(6, 5).numpy()
    ref = [
        math.sqrt(ot.sinkhorn2(p, q, cost, reg, method="sinkhorn_log", stopThr=1e-12, numItermax=100000))
        for p, q in zip(to_histogram(x, torch.float64).numpy(), to_histogram(y, torch.float64).numpy())
    ]
    ours, info = w2_sinkhorn(x, y, reg=reg, debiased=False, tol=1e-9, max_iter=20000, return_info=True)
    assert info["marginal_error"] < 1e-9
    assert np.allclose(ours.numpy(), ref, rtol=1e-6)


def test_entropic_close_to_exact_on_digits():
    from infoclust.data import load_dataset

    x, _ = load_dataset("mnist5k", n=128, seed=3)
    exact = w2_exact(x[:64], x[64:])
    approx, info = w2_sinkhorn(x[:64], x[64:], reg=8.0, debiased="cost", return_info=True)
    assert info["log_domain"] == 0 and info["marginal_error"] < 1e-2
    rel = ((approx - exact) / exact).abs()
    # within 2 % on average; near-duplicates (W2 ~ 1 px, the pixel scale) are off by more
    assert rel.mean() < 0.02 and rel[exact > 2.0].max() < 0.05
    # the plain plan cost is biased upwards
    assert (w2_sinkhorn(x[:64], x[64:], reg=8.0, debiased=False) > exact).all()


def test_log_domain_takes_over_where_matrix_scaling_breaks_down():
    # two Diracs in opposite corners of a 40 x 40 grid: at eps = 1 px^2 the kernel between
    # them, exp(-39^2), underflows, and the matrix scaling cannot move any mass
    a, b = _dirac(40, 40, 0, 0), _dirac(40, 40, 39, 39)
    for mode in (False, "cost", "divergence"):
        value, info = w2_sinkhorn(a, b, reg=1.0, debiased=mode, return_info=True)
        assert info["log_domain"] >= 1 and info["n_iter"] < 50
        assert value.item() == pytest.approx(39 * math.sqrt(2), rel=1e-3)


def test_sinkhorn_dtypes_and_bad_parameters():
    x, y = _blobs(2), _blobs(2, seed=1)
    assert torch.allclose(
        w2_sinkhorn(x, y, dtype=torch.float32), w2_sinkhorn(x, y, dtype=torch.float64), rtol=1e-4
    )
    with pytest.raises(ParameterError, match="reg"):
        w2_sinkhorn(x, y, reg=0.0)
    with pytest.raises(ParameterError, match="debiased"):
        w2_sinkhorn(x, y, debiased="yes")
    with pytest.raises(ParameterError, match="omega"):
        w2_sinkhorn(x, y, omega=2.0)
    with pytest.raises(ParameterError, match="dtype"):
        w2_sinkhorn(x, y, dtype=torch.float16)
    with pytest.raises(ParameterError, match="same image size"):
        w2_exact(x, _blobs(2, 5, 5))
    with pytest.raises(ParameterError, match="same number"):
        w2_sinkhorn(_blobs(2), _blobs(3))
    with pytest.raises(ParameterError, match="negative"):
        w2_exact(x - 1.0, y)


def test_solvers_stopped_at_their_cap_warn():
    from infoclust.data import load_dataset

    x, _ = load_dataset("mnist5k", n=4, seed=1)
    # the network simplex stopped after 100 iterations returns a value far from the optimum
    with pytest.warns(ConvergenceWarning, match="2 of 2 pairs are not optimal.*max_iter=100"):
        capped = w2_exact(x[:2], x[2:], max_iter=100)
    assert not torch.allclose(capped, w2_exact(x[:2], x[2:]), rtol=0.05)
    # a small regularisation leaves the marginals far from the target after max_iter
    with pytest.warns(ConvergenceWarning, match="marginal error"):
        w2_sinkhorn(x[:2], x[2:], reg=0.01, max_iter=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        w2_sinkhorn(x[:2], x[2:])


def test_density_and_acceptance_rule_of_eq6():
    assert perturbation_density(0.0, 1.0).item() == 1.0
    assert perturbation_density(float("inf"), 1.0).item() == 0.0  # an unbounded distance
    for bad in (float("nan"), -1.0):
        with pytest.raises(ParameterError, match="^dist"):
            perturbation_density(bad, 1.0)
    assert perturbation_density(2.0, 1.0).item() == pytest.approx(math.exp(-4.0))
    d0, d1 = torch.tensor([1.0, 2.0]), torch.tensor([2.0, 1.0])
    acc = acceptance_probability(d0, d1, 1.5)
    ratio = perturbation_density(d1, 1.5) / perturbation_density(d0, 1.5)
    assert torch.allclose(acc, torch.clamp(ratio, max=1.0))
    assert acc[1].item() == 1.0 and acc[0].item() == pytest.approx(math.exp(-3.0 / 2.25))
    with pytest.raises(ParameterError, match="eta"):
        perturbation_density(1.0, 0.0)


def test_sampler_matches_eq6_on_two_pixels():
    """Two pixels: x = (0.3, 0.7), x + xi = (t, 1 - t). Moving |t - 0.3| of mass by one pixel
    costs W2^2 = |t - 0.3|, so eq. (6) is a Laplace density exp(-|t - 0.3| / eta^2) cut to
    [0, 1]. The sampler's t must follow it (Kolmogorov-Smirnov)."""
    eta = 0.4
    x = torch.tensor([[0.3, 0.7]])
    res = sample_perturbation(
        x,
        eta,
        n_chains=3000,
        n_steps=25,
        distance=lambda a, b: (to_histogram(b)[:, 0] - 0.3).abs().sqrt(),
        generator=torch.Generator().manual_seed(0),
    )
    t = res.samples[:, 0, 0, 0].numpy()
    scale = eta**2
    grid = np.linspace(0, 1, 20001)
    cdf = np.cumsum(np.exp(-np.abs(grid - 0.3) / scale))
    cdf /= cdf[-1]
    ks = stats.kstest(t, lambda v: np.interp(v, grid, cdf))
    assert ks.pvalue > 1e-3
    assert 0.2 < res.acceptance_rate < 0.9
    assert torch.allclose(res.samples.sum((1, 2, 3)), torch.ones(3000, dtype=res.samples.dtype))


def test_sampler_with_exact_w2_on_a_small_image():
    x = _blobs(1, 4, 4, seed=7)[0]
    res = sample_perturbation(x, 0.5, n_chains=4, n_steps=20, generator=torch.Generator().manual_seed(1))
    assert res.samples.shape == (4, 1, 4, 4)
    assert (res.samples >= 0).all()
    assert torch.allclose(res.distances, w2_exact(x, res.samples), atol=1e-8)
    assert torch.allclose(res.samples.sum((1, 2, 3)), x.sum().expand(4), rtol=1e-5)
    with pytest.raises(ParameterError, match="single-channel"):
        sample_perturbation(torch.rand(2, 1, 4, 4), 0.5)


def test_radius_conversion_between_cost_per_mass_and_pixels():
    """The talk's radius 0.01 (cost d^2 per unit of ink) is W2 = 0.1 px, and a digit moved by
    3 px all at once has W2 = 3 px, so its radius is 9; back and forth gives the input."""
    assert radius_to_distance(0.01) == pytest.approx(0.1)
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 2, 1] = 1.0
    w2 = float(w2_exact(x, torch.roll(x, 3, -1))[0])
    assert distance_to_radius(w2) == pytest.approx(9.0)
    assert radius_to_distance(0.25, p=1.0) == pytest.approx(0.25)
    radii = torch.tensor([0.001, 0.01, 0.1, 1.0])
    torch.testing.assert_close(distance_to_radius(radius_to_distance(radii)), radii.double())
    with pytest.raises(ParameterError, match="radius"):
        radius_to_distance(-0.1)
    with pytest.raises(ParameterError, match="distance"):
        distance_to_radius(torch.tensor([float("nan")]))
    with pytest.raises(ParameterError, match="p="):
        radius_to_distance(1.0, p=0.0)


def test_intensity_histogram_distance_does_not_see_where_the_ink_is():
    """The talk code's distance: 0 for a shifted or a 90-degree rotated digit (same pixel
    values), positive for a digit drawn with other intensities; the spatial W2 sees the
    shift and the rotation."""
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(1, 1, 12, 12)
    x[0, 0, 3:8, 4:6] = torch.rand(5, 2, generator=g)
    shifted, rotated = torch.roll(x, 3, -1), torch.rot90(x, 1, (2, 3))
    other = x * 0.5
    d = intensity_wasserstein(x, torch.cat([shifted, rotated, other]))
    assert d[0] == 0 and d[1] == 0 and d[2] > 0.01
    assert (w2_exact(x, torch.cat([shifted, rotated])) > 1.0).all()
    # scipy on the two histograms directly, for the third pair
    edges = np.linspace(0, 1, 257)
    centres = (edges[:-1] + edges[1:]) / 2
    ref = stats.wasserstein_distance(
        centres, centres, np.histogram(x.numpy(), edges)[0], np.histogram(other.numpy(), edges)[0]
    )
    assert float(d[2]) == pytest.approx(ref)
    with pytest.raises(ParameterError, match=r"\[0, 1\]"):
        intensity_wasserstein(x, x * 3)
