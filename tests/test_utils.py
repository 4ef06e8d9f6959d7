import inspect
import json
import os

import pytest
import torch
from threadpoolctl import threadpool_info, threadpool_limits

import infoclust as ic
from infoclust import deform, wasserstein
from infoclust.book.ledger import Ledger, load_results, results_dir


def test_checks_name_the_parameter():
    with pytest.raises(ic.ParameterError, match="^epochs="):
        ic.check_int("epochs", 0, 1)
    with pytest.raises(ic.ParameterError, match="^lr="):
        ic.check_number("lr", 0.0, 0.0, strict_low=True)
    with pytest.raises(ic.ParameterError, match="^lr="):
        ic.check_number("lr", float("nan"))
    with pytest.raises(ic.ParameterError, match="^dataset="):
        ic.check_choice("dataset", "imagenet", ic.DATASETS)
    with pytest.raises(ic.ParameterError, match="^k="):
        ic.check_int("k", True)
    assert ic.check_int("k", 3, 2) == 3
    assert ic.check_number("eta", 1, 0.0) == 1.0


def test_resolve_device():
    assert ic.resolve_device("cpu") == torch.device("cpu")
    assert ic.resolve_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(ic.ParameterError, match="device"):
        ic.resolve_device("no-such-device")
    if not torch.cuda.is_available():
        with pytest.raises(ic.ParameterError, match="CUDA is not available"):
            ic.resolve_device("cuda")


# every function with a device argument and no input tensor: None means "auto"; those whose
# result belongs on the CPU say so by their default, "cpu"
_DEVICE_FUNCTIONS = {
    "grid_cost": (wasserstein.grid_cost, (3, 4)),
    "local_cost": (wasserstein.local_cost, (3,)),
    "affine_field": (deform.affine_field, (3, 4, 10.0)),
    "random_field": (deform.random_field, (2, 3, 4, 1.0)),
}


class _Auto(Exception):
    """Raised where "auto" is resolved: on a machine without a GPU "auto" is the CPU, like "cpu"."""


def _auto_is_asked():
    raise _Auto


@pytest.mark.parametrize("name", sorted(_DEVICE_FUNCTIONS))
def test_device_none_means_auto_without_an_input_tensor(name, monkeypatch):
    monkeypatch.setattr(ic.utils, "_auto_device", _auto_is_asked)
    fn, args = _DEVICE_FUNCTIONS[name]
    for device in (None, "auto"):
        with pytest.raises(_Auto):
            fn(*args, device=device)
    assert fn(*args, device="cpu").device == torch.device("cpu")
    default = inspect.signature(fn).parameters["device"].default
    assert default in ("cpu", None)
    if default is None:
        with pytest.raises(_Auto):
            fn(*args)
    else:
        assert fn(*args).device == torch.device("cpu")


def test_device_none_means_the_input_tensors_device(monkeypatch):
    monkeypatch.setattr(ic.utils, "_auto_device", _auto_is_asked)
    x = torch.rand(2, 1, 3, 3)
    assert ic.utils.check_images("x", x, device=None).device == x.device
    assert ic.resolve_device(None, like=x) == x.device
    with pytest.raises(_Auto):
        ic.resolve_device(None)


def test_seed_everything_repeats_draws():
    g = ic.seed_everything(5)
    a = torch.rand(3), torch.rand(3, generator=g)
    g = ic.seed_everything(5)
    b = torch.rand(3), torch.rand(3, generator=g)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ic.ParameterError, match="seed"):
        ic.seed_everything(-1)


def test_ledger_writes_results(tmp_path, monkeypatch):
    monkeypatch.setenv("INFOCLUST_RESULTS_DIR", str(tmp_path))
    assert results_dir() == tmp_path
    ledger = Ledger.start("99_test", profile="smoke", seed=3, device="cpu")
    ledger.record("accuracy", 97.5, unit="%", paper=99.2, source="IIC, Table 1", holds=False)
    ledger.record("accuracy", 99.5, unit="%", paper=99.2, source="IIC, Table 1", holds=True)  # replaces
    data = json.loads((tmp_path / "99_test.json").read_text())
    assert data["profile"] == "smoke" and data["seed"] == 3 and data["device"] == "cpu"
    assert [r["value"] for r in data["results"]] == [99.5]
    assert load_results(tmp_path)[0]["chapter"] == "99_test"
    table = ledger.markdown()
    assert "| accuracy | 99.5 % | 99.2 % | IIC, Table 1 | yes |" in table
    with pytest.raises(ValueError, match="not finite"):
        ledger.record("bad", float("nan"))
    with pytest.raises(ic.ParameterError, match="profile"):
        Ledger.start("99_test", profile="huge", seed=0)


def test_timer_measures():
    with ic.timer() as t:
        sum(range(10000))
    assert t["seconds"] > 0


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "sub" / "r.json"
    with ic.utils.atomic_write(target) as f:
        f.write("old")
    with pytest.raises(RuntimeError, match="half way"):
        with ic.utils.atomic_write(target) as f:
            f.write("new, cut")
            raise RuntimeError("half way")
    assert target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]  # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # readable like any file, not mkstemp's 0600
    with ic.utils.atomic_write(target, "wb") as f:
        f.write(b"new")
    assert target.read_bytes() == b"new"


def test_thread_count_is_fixed_by_the_variable_not_the_load(monkeypatch):
    monkeypatch.setenv("INFOCLUST_NUM_THREADS", "1")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    before, blas = torch.get_num_threads(), threadpool_limits(None, user_api="blas")  # the latter restores
    try:
        assert ic.utils.configure_threads() == 1 == torch.get_num_threads()
        infos = threadpool_info()
        assert [i for i in infos if i["user_api"] == "blas"], "numpy's BLAS is loaded"
        assert all(i["num_threads"] == 1 for i in infos if i["user_api"] == "blas"), infos
    finally:
        torch.set_num_threads(before)
        blas.restore_original_limits()
    env = ic.utils.thread_environment()
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "1"
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert ic.utils.thread_environment({"OMP_WAIT_POLICY": "ACTIVE"})["OMP_WAIT_POLICY"] == "ACTIVE"
    monkeypatch.delenv("INFOCLUST_NUM_THREADS")
    assert ic.utils.num_threads() >= 1
    for bad in ("two", "0"):
        monkeypatch.setenv("INFOCLUST_NUM_THREADS", bad)
        with pytest.raises(ic.ParameterError, match="^INFOCLUST_NUM_THREADS="):
            ic.utils.num_threads()


def test_stream_seed_decorrelates_streams():
    stream_seed = ic.utils.stream_seed
    assert len({stream_seed(0, 1), stream_seed(0, 2), stream_seed(1, 1)}) == 3
    assert stream_seed(5, 1) == stream_seed(5, 1)
    with pytest.raises(ic.ParameterError, match="seed"):
        stream_seed(-1, 0)
    with pytest.raises(ic.ParameterError, match="stream"):
        stream_seed(0, -1)


def test_forked_global_rng_seeds_inside_and_restores_after():
    torch.manual_seed(7)
    before = torch.get_rng_state()
    with ic.utils.forked_global_rng(3):
        inside = torch.rand(2)
    assert torch.equal(torch.get_rng_state(), before)
    with ic.utils.forked_global_rng(3):
        assert torch.equal(torch.rand(2), inside)
    with pytest.raises(ic.ParameterError, match="seed"):
        with ic.utils.forked_global_rng(None):
            pass


def test_draw_seed_takes_a_generator_or_the_global_one():
    one = ic.utils.draw_seed(torch.Generator().manual_seed(1))
    assert one == ic.utils.draw_seed(torch.Generator().manual_seed(1))
    assert 0 <= ic.utils.draw_seed(None) <= ic.utils.SEED_MAX
    with pytest.raises(TypeError, match="generator"):
        ic.utils.draw_seed(5)


def test_check_not_diverged_names_where_and_what_to_lower():
    assert ic.utils.check_not_diverged("training", "the loss", 2.5, epoch=1, step=3, lower="lr") == 2.5
    for value in (float("nan"), float("inf"), 1e7):
        with pytest.raises(
            ic.TrainingDivergedError,
            match="training diverged: the loss became .* in epoch 2, step 5; lower lr",
        ):
            ic.utils.check_not_diverged("training", "the loss", value, epoch=2, step=5, lower="lr")
    with pytest.raises(ic.TrainingDivergedError, match="in step 5;"):
        ic.utils.check_not_diverged("training", "the loss", float("nan"), epoch=None, step=5, lower="lr")
