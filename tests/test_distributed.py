"""Data-parallel training (infoclust.distributed): W gloo processes on 127.0.0.1 against one process.

Each world size (2, and 3 for uneven blocks) is spawned once per module: every scenario runs
inside the same processes and returns its numbers; the references are computed here, in one
process on the concatenated batch, in float64.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from torch import nn

from infoclust import distributed
from infoclust.augment import MNISTTransform
from infoclust.dim import DeepInfoMax
from infoclust.iic import IIC, ClusterNet
from infoclust.mi import ESTIMATORS
from infoclust.utils import ParameterError

# One xdist worker for the module: the spawned groups are module fixtures, made once there.
pytestmark = pytest.mark.xdist_group("distributed")

RTOL = 1e-6
N_ROWS = 7  # not a multiple of 2 or 3: uneven blocks


def _bn_net() -> nn.Module:
    gen_state = torch.random.fork_rng()
    with gen_state:
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(2, 3, 3, padding=1),
            nn.BatchNorm2d(3),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(3 * 16, 5),
            nn.BatchNorm1d(5, momentum=None),
        ).double()


def _bn_data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return (
        torch.randn(N_ROWS, 2, 4, 4, generator=gen, dtype=torch.float64),
        torch.randn(N_ROWS, 5, generator=gen, dtype=torch.float64),
    )


def _bn_run(net: nn.Module, x: torch.Tensor, weight: torch.Tensor) -> dict:
    """Two training steps' forward/backward of ``sum(weight * net(x))`` (no optimiser)."""
    x = x.clone().requires_grad_(True)
    for _ in range(2):
        out = net(x)
    (weight * out).sum().backward()
    return {
        "out": out.detach(),
        "x_grad": x.grad,
        "grads": {n: p.grad for n, p in net.named_parameters()},
        "buffers": {n: b.clone() for n, b in net.named_buffers()},
    }


# ------------------------------------------------------------------ IIC and DIM, one step and 20 steps

BATCH, STEPS = 6, 20  # 6 images divide among 2 and 3 processes


def _images(n: int = 4 * BATCH) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


def _iic() -> IIC:
    """A tiny IIC in float64, built as fit builds it (2 sub-heads, both heads)."""
    model = IIC(
        3,
        n_overclusters=5,
        n_subheads=2,
        trunk=((4, 8), 3),
        batch_size=BATCH,
        repeats=2,
        lr=1e-2,
        lamb=1.2,
        device="cpu",
        amp=False,
        verbose=False,
    )
    model.device_ = torch.device("cpu")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model.net_ = ClusterNet(1, 8, 3, 5, 2, ((4, 8), 3)).double()
    model.g_ = MNISTTransform(seed=1)
    return model


def _grads(params) -> dict:
    return {name: p.grad.clone() for name, p in params if p.grad is not None}


def _iic_runs() -> dict:
    """IIC: one step of each head (loss, gradients), then 20 Adam steps (parameters)."""
    model, x, out = _iic(), _images(), {}
    with distributed.synchronised_batchnorm(model.net_):
        for i, head in enumerate(("main", "over")):
            record = torch.optim.SGD(model.net_.parameters(), lr=0.0)  # a step that moves nothing
            loss = model._step(x[i * BATCH : (i + 1) * BATCH], head, record)
            out[head] = {"loss": loss, "grads": _grads(model.net_.named_parameters())}
        adam = torch.optim.Adam(model.net_.parameters(), lr=model.lr)
        for s in range(STEPS):
            b = s % (len(x) // BATCH)
            model._step(x[b * BATCH : (b + 1) * BATCH], "over" if s % 3 == 0 else "main", adam)
    out["params"] = {n: p.detach().clone() for n, p in model.net_.named_parameters()}
    return out


def _dim(estimator: str) -> DeepInfoMax:
    model = DeepInfoMax(
        alpha=1.0,
        beta=1.0,
        gamma=1.0,
        estimator=estimator,
        widths=(4, 8, 8),
        code_dim=6,
        critic_dim=8,
        batch_size=BATCH,
        lr=1e-2,
        seed=2,
        device="cpu",
        verbose=False,
    )
    model._prepare(_images(BATCH).float())
    for net in model._networks().values():
        net.double()  # same parameter objects: the optimisers follow
    return model


def _dim_runs(estimator: str) -> dict:
    """DIM with all three terms: one alternation (terms, gradients), then 20 with Adam (parameters)."""
    model, x = _dim(estimator), _images()
    adam, adam_prior = model._opt, model.prior_.optimizer
    model._opt = torch.optim.SGD([p for g in adam.param_groups for p in g["params"]], lr=0.0)
    model.prior_.optimizer = torch.optim.SGD(model.prior_.discriminator.parameters(), lr=0.0)
    nets = model._networks()
    terms = model._encoder_step(x[:BATCH])
    mi_grads = {
        f"{k}.{n}": p.grad.clone()
        for k in ("encoder", "global_critic", "local_critic")
        for n, p in nets[k].named_parameters()
    }
    model.prior_.step(model._last_codes)
    disc_grads = _grads(nets["discriminator"].named_parameters())
    out = {"terms": terms, "grads": {**mi_grads, **{f"discriminator.{n}": g for n, g in disc_grads.items()}}}
    model._opt, model.prior_.optimizer = adam, adam_prior
    for s in range(STEPS):
        b = s % (len(x) // BATCH)
        model._alternation(x[b * BATCH : (b + 1) * BATCH])
    out["params"] = {
        f"{k}.{n}": p.detach().clone() for k, net in nets.items() for n, p in net.named_parameters()
    }
    return out


def _plain_all_reduce(x: torch.Tensor) -> torch.Tensor:
    """The common bug: ``dist.all_reduce(P)``, which autograd does not see (value summed, gradient local)."""
    total = x.detach().clone()
    dist.all_reduce(total)
    return x + (total - x.detach())


def _scenarios() -> dict:
    """Everything the tests check, run on every rank of a spawned group."""
    r, w = distributed.rank(), distributed.world_size()
    out: dict = {"rank": r, "world": w}
    out["iic"] = _iic_runs()
    out["dim"] = {e: _dim_runs(e) for e in ESTIMATORS}
    right = distributed.all_reduce_sum
    distributed.all_reduce_sum = _plain_all_reduce  # what IIC's step would be with the plain collective
    try:
        out["iic_plain"] = _iic_runs()
    finally:
        distributed.all_reduce_sum = right

    # batch norm on the global batch, blocks of uneven length
    net = _bn_net()
    x, weight = _bn_data()
    rows = distributed.shard(N_ROWS)
    with distributed.synchronised_batchnorm(net):
        out["bn_types"] = sorted({type(m).__name__ for m in net.modules() if "Norm" in type(m).__name__})
        out["bn"] = _bn_run(net, x[rows], weight[rows])
    out["bn_types_after"] = sorted({type(m).__name__ for m in net.modules() if "Norm" in type(m).__name__})

    # the collectives' gradients, with the loss of the whole batch on every rank
    gen = torch.Generator().manual_seed(2)
    full = torch.randn(3 * w, 4, generator=gen, dtype=torch.float64)
    mine = full[distributed.shard(3 * w)].clone().requires_grad_(True)
    gathered = distributed.all_gather_cat(mine * 2)
    joint = distributed.all_reduce_sum(mine.t() @ mine)
    (gathered.pow(3).sum() + joint.exp().sum()).backward()
    out["gathered"], out["joint"], out["grad"] = gathered.detach(), joint.detach(), mine.grad

    # uneven evaluation blocks back together
    out["rows"] = distributed.gather_rows(
        torch.arange(N_ROWS)[distributed.shard(N_ROWS)].unsqueeze(1), N_ROWS
    ).squeeze(1)

    # set-up checks
    try:
        distributed.check_same_on_all_ranks({"batch_size": 8, "seed": 3 + (r == w - 1), "x": full})
    except ParameterError as err:
        out["seed_error"] = str(err)
    try:
        distributed.check_same_on_all_ranks({"x": full + r})
    except ParameterError as err:
        out["x_error"] = str(err)
    distributed.check_same_on_all_ranks({"seed": 3, "x": full})  # equal everywhere: no error
    try:
        distributed.check_batch(w + 1, 100)
    except ParameterError as err:
        out["batch_error"] = str(err)
    try:
        distributed.check_batch(2 * w, 2 * w - 1)
    except ParameterError as err:
        out["images_error"] = str(err)
    out["per_rank"] = distributed.check_batch(2 * w, 2 * w)
    x = _images().float()
    try:  # each process with its own seed
        IIC(
            3,
            n_overclusters=None,
            n_subheads=1,
            trunk=((4,), 3),
            epochs=1,
            batch_size=2 * w,
            seed=r,
            device="cpu",
            verbose=False,
        ).fit(x)
    except ParameterError as err:
        out["iic_seed_error"] = str(err)
    try:
        DeepInfoMax(
            widths=(4, 8, 8),
            code_dim=6,
            critic_dim=8,
            epochs=1,
            batch_size=w + 1,
            device="cpu",
            verbose=False,
        ).fit(x)
    except ParameterError as err:
        out["dim_batch_error"] = str(err)
    return out


@pytest.fixture(scope="module", params=[2, 3], ids=["world2", "world3"])
def ranks(request):
    return distributed.spawn(_scenarios, request.param)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, rtol=RTOL, atol=1e-12)


@pytest.fixture(scope="module")
def one_process():
    return {"iic": _iic_runs(), "dim": {e: _dim_runs(e) for e in ESTIMATORS}}


def _worst(got: dict, ref: dict) -> float:
    """Largest relative difference over a dict of tensors, each scaled by its largest entry.

    The scale is at least 1e-8: a bias followed by batch norm has a gradient that is zero in
    exact arithmetic and about 1e-16 in float64, which is compared in absolute terms.
    """
    assert got.keys() == ref.keys()
    return max(float((got[k] - ref[k]).abs().max() / ref[k].abs().max().clamp_min(1e-8)) for k in ref)


@pytest.mark.parametrize("head", ["main", "over"])
def test_iic_step_equals_one_process_on_the_concatenated_batch(ranks, one_process, head):
    ref = one_process["iic"][head]
    assert len(ref["grads"]) == 2 + 2 * 2 + 2 * 2  # 2 convolutions, 2 batch norms, this head's 2 sub-heads
    for r in ranks:
        assert r["iic"][head]["loss"] == pytest.approx(ref["loss"], rel=RTOL)
        assert _worst(r["iic"][head]["grads"], ref["grads"]) < RTOL


def test_iic_twenty_adam_steps_equal_one_process(ranks, one_process):
    for r in ranks:
        assert _worst(r["iic"]["params"], one_process["iic"]["params"]) < 1e-5


def test_the_plain_all_reduce_scales_gradients_by_one_over_world_size_and_is_caught(ranks, one_process):
    """``dist.all_reduce`` on the joint gives the right loss and gradients W times too small."""
    w, ref = len(ranks), one_process["iic"]["main"]
    for r in ranks:
        plain = r["iic_plain"]["main"]
        assert plain["loss"] == pytest.approx(ref["loss"], rel=RTOL)
        assert _worst({k: w * g for k, g in plain["grads"].items()}, ref["grads"]) < RTOL
        assert _worst(plain["grads"], ref["grads"]) > 0.3  # the equality test above would fail
        assert _worst(r["iic_plain"]["params"], one_process["iic"]["params"]) > 1e-3


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_dim_step_and_twenty_steps_equal_one_process(ranks, one_process, estimator):
    ref = one_process["dim"][estimator]
    assert {k.split(".")[0] for k in ref["grads"]} == set(_dim("jsd")._networks())
    for r in ranks:
        got = r["dim"][estimator]
        assert got["terms"].keys() == ref["terms"].keys() == {"global_mi", "local_mi", "prior"}
        for name, value in ref["terms"].items():
            assert got["terms"][name] == pytest.approx(value, rel=RTOL), name
        assert _worst(got["grads"], ref["grads"]) < RTOL
        assert _worst(got["params"], ref["params"]) < 1e-5


def test_without_a_process_group_everything_is_one_process():
    x = torch.randn(4, 3, requires_grad=True)
    assert (
        distributed.world_size() == 1
        and distributed.rank() == 0
        and distributed.is_main_process()
        and not distributed.is_distributed()
    )
    assert (
        distributed.all_reduce_sum(x) is x
        and distributed.all_gather_cat(x) is x
        and distributed.gather_rows(x, 4) is x
    )
    assert distributed.shard(5) == slice(0, 5) and distributed.check_batch(4, 4) == 4
    assert distributed.shard_sizes(7, 3) == [3, 2, 2] and distributed.shard(7, 2, 3) == slice(5, 7)
    net = _bn_net()
    with distributed.synchronised_batchnorm(net):
        assert isinstance(net[1], nn.BatchNorm2d)
    distributed.check_same_on_all_ranks({"seed": 0})
    assert not distributed.init_from_env()


def test_batchnorm_equals_one_process_on_the_concatenated_batch(ranks):
    x, weight = _bn_data()
    ref = _bn_run(_bn_net(), x, weight)
    w = len(ranks)
    assert ranks[0]["bn_types"] == ["SyncBatchNorm"]
    assert ranks[0]["bn_types_after"] == ["BatchNorm1d", "BatchNorm2d"]
    assert _close(torch.cat([r["bn"]["out"] for r in ranks]), ref["out"])
    assert _close(torch.cat([r["bn"]["x_grad"] for r in ranks]), ref["x_grad"])
    for name, g in ref["grads"].items():  # each rank's loss is its block's share: the grads add up
        assert _close(sum(r["bn"]["grads"][name] for r in ranks), g), name
    for r in ranks:
        for name, b in ref["buffers"].items():
            assert (
                torch.equal(r["bn"]["buffers"][name], b)
                if "num_batches" in name
                else _close(r["bn"]["buffers"][name], b)
            ), name
    assert [len(r["bn"]["out"]) for r in ranks] == distributed.shard_sizes(N_ROWS, w)


def test_collectives_are_differentiable_with_the_adjoint_gradient(ranks):
    w = len(ranks)
    full = torch.randn(3 * w, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x = full.clone().requires_grad_(True)
    ((x * 2).pow(3).sum() + (x.t() @ x).exp().sum()).backward()
    for r in ranks:
        assert _close(r["gathered"], full * 2) and _close(r["joint"], full.t() @ full)
    # every rank's loss is the whole batch's: each block's gradient arrives W times, once per rank
    assert _close(torch.cat([r["grad"] for r in ranks]), w * x.grad)


def test_gather_rows_undoes_uneven_shards(ranks):
    for r in ranks:
        assert torch.equal(r["rows"], torch.arange(N_ROWS))


def test_bad_setups_fail_on_every_rank_with_a_clear_error(ranks):
    w = len(ranks)
    for r in ranks:
        assert r["seed_error"].startswith("seed differs between processes")
        assert f"rank {w - 1}: 4" in r["seed_error"] and "rank 0: 3" in r["seed_error"]
        assert r["x_error"].startswith("x differs between processes") and "sha256" in r["x_error"]
        assert r["batch_error"].startswith(f"batch_size={w + 1} does not divide among the {w} processes")
        assert "exceeds the" in r["images_error"] and r["per_rank"] == 2
        assert r["iic_seed_error"].startswith("seed differs between processes (rank 0: 0; rank 1: 1")
        assert r["dim_batch_error"].startswith(f"batch_size={w + 1} does not divide among the {w} processes")


def _fail() -> None:
    raise ValueError(f"boom on rank {distributed.rank()} of {distributed.world_size()}")


def test_spawn_raises_a_rank_s_error():
    with pytest.raises(Exception, match="boom on rank 0 of 1"):  # one process: each costs an import of torch
        distributed.spawn(_fail, 1)
