"""The CUDA path of every GPU-capable piece of the library, against its CPU result.

Skipped where CUDA is absent (CI has no GPU). On a GPU machine run them, with the GPU
benchmarks, by ``bash benchmarks/gpu_check.sh``.
"""

import numpy as np
import pytest
import torch

import infoclust as ic
from infoclust.adef import adef
from infoclust.classifiers import random_classifier
from infoclust.deform import RandomDeformation, warp
from infoclust.w2_algorithm import w2_perturbation
from infoclust.projected_sinkhorn import project_wasserstein_ball
from infoclust.wasserstein import w2_exact, w2_sinkhorn

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def mnist():
    x, y = ic.load_dataset("mnist5k", n=400, seed=0)
    return x, y


def test_auto_device_is_the_gpu():
    assert ic.resolve_device("auto").type == "cuda"


def test_kmeans_gpu_matches_cpu_from_the_same_start(mnist):
    x = mnist[0].reshape(400, -1)
    init = x[:10].clone()
    cpu = ic.KMeans(10, init=init, max_iter=50, device="cpu").fit(x)
    gpu = ic.KMeans(10, init=init, max_iter=50, device="cuda").fit(x.cuda())
    assert (cpu.labels_ == gpu.labels_).mean() > 0.99
    assert gpu.inertia_ == pytest.approx(cpu.inertia_, rel=1e-4)


def test_entropic_w2_gpu_matches_cpu(mnist):
    x = mnist[0]
    a, b = x[:64], x[64:128]
    for reg in (8.0, 0.5):  # matrix scaling; log-domain solver
        cpu = w2_sinkhorn(a, b, reg=reg)
        gpu = w2_sinkhorn(a.cuda(), b.cuda(), reg=reg)
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-3)
    exact = w2_exact(a, b)
    rel = ((w2_sinkhorn(a.cuda(), b.cuda()).cpu() - exact) / exact).abs()
    assert rel.mean() < 0.02


def test_deformations_stay_on_the_gpu(mnist):
    x = mnist[0][:32].cuda()
    torch.testing.assert_close(warp(x, torch.zeros(32, 2, 28, 28, device="cuda")), x)
    gx = RandomDeformation(magnitude=2.0, sigma=3.0)(x)
    assert gx.device.type == "cuda" and gx.shape == x.shape and torch.isfinite(gx).all()
    assert not torch.equal(gx, x)


def test_projection_gpu_matches_cpu(mnist):
    x = mnist[0][:8].double()
    w = (x + 0.3 * torch.rand(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)).clamp(0, 1)
    cpu = project_wasserstein_ball(w, x, 0.5, lam=1000.0, max_iter=200, tol=1e-6)
    gpu = project_wasserstein_ball(w.cuda(), x.cuda(), 0.5, lam=1000.0, max_iter=200, tol=1e-6)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-6, atol=1e-8)


def test_adef_and_algorithm_1_on_the_gpu(mnist):
    x = mnist[0][:16].cuda()
    model = random_classifier(1, 10, seed=1, device="cuda")
    res = adef(model, x, max_iter=20)
    assert res.images.device.type == "cuda" and res.fooled.float().mean() > 0.5
    eps = 0.45
    pert = w2_perturbation(
        model, x, eps=eps, eta=0.1, alpha=1.0, max_iter=6, generator=torch.Generator().manual_seed(0)
    )
    assert pert.images.device.type == "cuda" and (pert.steps > 0).any()
    d = w2_exact(pert.images.cpu(), x.cpu())
    assert (d <= eps * (1 + 1e-9)).all(), d


def test_iic_trains_on_the_gpu_with_bf16_autocast(mnist):
    x, y = mnist
    model = ic.IIC(
        n_clusters=10,
        n_overclusters=20,
        n_subheads=2,
        trunk="small",
        epochs=3,
        batch_size=50,
        repeats=2,
        lr=2e-3,
        lamb=1.5,
        verbose=False,
    ).fit(x)
    assert model.device_.type == "cuda"
    losses = [h["train_loss"] for h in model.history_[1:]]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    acc = ic.metrics.cluster_accuracy(y.numpy(), np.asarray(model.predict(x)))
    assert acc > 0.2  # 10 % is chance; three short epochs on 400 digits


def test_dim_trains_on_the_gpu(mnist):
    from infoclust.dim import PRESETS, DeepInfoMax

    x = mnist[0]
    model = DeepInfoMax(
        **PRESETS["DIM(L)"],
        widths=(8, 16, 32),
        code_dim=16,
        critic_dim=32,
        epochs=2,
        batch_size=64,
        lr=1e-3,
        verbose=False,
    ).fit(x)
    code = model.transform(x)
    assert code.shape == (400, 16) and np.isfinite(code).all()
