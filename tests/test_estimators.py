"""KMeans, IIC and DeepInfoMax as scikit-learn estimators, and the one rule for randomness.

KMeans takes 2-D data, so it gets scikit-learn's whole estimator check suite. IIC and
DeepInfoMax take images (N, C, H, W) and declare it (``input_tags.two_d_array = False``):
every scikit-learn check that fits them draws 2-D data (blobs, iris, ``uniform(size=(n, d))``)
and so does not apply; they get the checks that do not fit (:data:`API_CHECKS`), and the
tests below check on tiny images what the fitting checks check (fit returns self,
NotFittedError, NumPy outputs, refits and clones give the same numbers, pickling,
Pipeline and grid search).
"""

import pickle
import random

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import adjusted_rand_score, make_scorer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils import estimator_checks as checks
from sklearn.utils.estimator_checks import parametrize_with_checks

import infoclust as ic
from infoclust.classifiers import SmallCNN, train_classifier
from infoclust.dim import DeepInfoMax
from infoclust.iic import IIC
from infoclust.mi import mi_training_curve

TINY_TRUNK = ((8, 16), 3)


def _tiny_iic(**kw):
    return IIC(
        10,
        **{
            **dict(
                n_overclusters=12,
                n_subheads=2,
                trunk=TINY_TRUNK,
                epochs=1,
                batch_size=50,
                repeats=2,
                lr=3e-3,
                device="cpu",
                verbose=False,
            ),
            **kw,
        },
    )


def _tiny_dim(**kw):
    return DeepInfoMax(
        **{
            **dict(
                widths=(4, 8, 8),
                code_dim=8,
                critic_dim=8,
                epochs=1,
                batch_size=32,
                lr=1e-3,
                device="cpu",
                verbose=False,
            ),
            **kw,
        }
    )


@pytest.fixture(scope="module")
def digits():
    x, y = ic.load_dataset("digits", n=100, seed=0)
    return x, y


# ---------------------------------------------------------------- scikit-learn's checks


def _kmeans_expected_failures(estimator):
    return {
        "check_n_features_in_after_fitting": "the message names the argument as the library does (x), "
        "the check wants an upper-case X"
    }


@parametrize_with_checks([ic.KMeans(3, device="cpu")], expected_failed_checks=_kmeans_expected_failures)
def test_kmeans_passes_sklearn_checks(estimator, check):
    check(estimator)


#: The checks of scikit-learn's API suite that never fit on 2-D data, so apply to image estimators.
API_CHECKS = [
    checks.check_estimator_cloneable,
    checks.check_estimator_repr,
    checks.check_no_attributes_set_in_init,
    checks.check_parameters_default_constructible,
    checks.check_get_params_invariance,
    checks.check_set_params,
    checks.check_do_not_raise_errors_in_init_or_set_params,
    checks.check_estimator_tags_renamed,
    checks.check_valid_tag_types,
    checks.check_mixin_order,
]


@pytest.mark.parametrize("check", API_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("estimator", [IIC(), DeepInfoMax()], ids=["IIC", "DeepInfoMax"])
def test_image_estimators_pass_the_api_checks(estimator, check):
    check(type(estimator).__name__, estimator)


def test_image_estimators_declare_image_input():
    for est in (IIC(), DeepInfoMax()):
        assert not est.__sklearn_tags__().input_tags.two_d_array


def test_arguments_after_the_first_are_keyword_only():
    with pytest.raises(TypeError):
        ic.KMeans(3, "random")
    with pytest.raises(TypeError):
        IIC(10, 50)
    assert IIC(7).n_clusters == 7 and ic.KMeans(4).n_clusters == 4


def test_repr_and_get_params_name_the_parameters():
    est = IIC(5, n_overclusters=None, eval_every=3)
    assert repr(est) == "IIC(eval_every=3, n_clusters=5, n_overclusters=None)"
    assert est.get_params()["n_overclusters"] is None
    assert "verbose" in DeepInfoMax().get_params() and "progress" not in DeepInfoMax().get_params()


# ---------------------------------------------------------------- fitted state and outputs


def test_unfitted_estimators_raise_not_fitted(digits):
    x = digits[0]
    for call in (
        lambda: IIC().predict(x),
        lambda: IIC().predict_proba(x),
        lambda: DeepInfoMax().transform(x),
        lambda: DeepInfoMax().encode(x),
        lambda: ic.KMeans().predict(x.flatten(1)),
    ):
        with pytest.raises(NotFittedError):
            call()


def test_outputs_are_numpy(digits):
    x, _ = digits
    km = ic.KMeans(10, device="cpu").fit(x)
    assert isinstance(km.cluster_centers_, np.ndarray) and isinstance(km.labels_, np.ndarray)
    assert km.labels_.dtype == np.int64 and isinstance(km.predict(x), np.ndarray)
    assert km.device_ == torch.device("cpu") and km.n_features_in_ == 64
    iic = _tiny_iic().fit(x)
    assert isinstance(iic.labels_, np.ndarray) and isinstance(iic.predict(x), np.ndarray)
    assert iic.predict_proba(x).shape == (len(x), 10) and iic.device_ == torch.device("cpu")
    dim = _tiny_dim().fit(x)
    assert isinstance(dim.transform(x), np.ndarray) and dim.transform(x).shape == (len(x), 8)


def test_partial_fit_returns_self_and_keeps_the_terms(digits):
    x = digits[0][:32]
    dim = _tiny_dim()
    assert dim.partial_fit(x) is dim and dim.n_steps_ == 1
    assert set(dim.last_terms_) == {"local_mi", "prior"} and all(np.isfinite(list(dim.last_terms_.values())))
    assert dim.partial_fit(x).n_steps_ == 2


def test_pickled_estimators_predict_the_same(digits):
    x, _ = digits
    for est, method in (
        (_tiny_iic().fit(x), "predict"),
        (_tiny_dim().fit(x), "transform"),
        (ic.KMeans(10, device="cpu").fit(x), "predict"),
    ):
        again = pickle.loads(pickle.dumps(est))
        np.testing.assert_array_equal(getattr(again, method)(x), getattr(est, method)(x))


def test_clones_and_refits_give_the_same_numbers(digits):
    """What grid searches rely on: clone(est).fit(x) equals est.fit(x), and a refit equals the first fit."""
    x, _ = digits
    iic = _tiny_iic()
    first = iic.fit(x).history_[-1]["loss"]
    assert iic.fit(x).history_[-1]["loss"] == first
    assert clone(iic).fit(x).history_[-1]["loss"] == first
    dim = _tiny_dim()
    codes = dim.fit_transform(x)
    np.testing.assert_array_equal(clone(dim).fit(x).transform(x), codes)


def test_pipeline_and_grid_search(digits):
    x, y = digits
    pipe = Pipeline([("dim", _tiny_dim()), ("kmeans", ic.KMeans(10, device="cpu"))]).fit(x)
    assert pipe.named_steps["kmeans"].labels_.shape == (len(x),)
    assert pipe.predict(x[:5]).shape == (5,)
    search = GridSearchCV(
        ic.KMeans(device="cpu"), {"n_clusters": [5, 10]}, cv=2, scoring=make_scorer(adjusted_rand_score)
    ).fit(x.flatten(1).numpy(), y.numpy())
    assert search.best_params_["n_clusters"] in (5, 10)


# ---------------------------------------------------------------- one rule for randomness


def _global_state():
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state()[1].copy(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _assert_same_state(before, after):
    assert torch.equal(before["torch"], after["torch"]), "the torch CPU generator moved"
    assert np.array_equal(before["numpy"], after["numpy"]), "NumPy's global generator moved"
    assert before["python"] == after["python"], "Python's random moved"
    if "cuda" in before:
        assert torch.equal(before["cuda"], after["cuda"]), "the CUDA generator moved"


def _global_noise(batch):
    """A g that draws from torch's global generator."""
    return (batch + 0.05 * torch.rand(batch.shape)).clamp(0, 1)


def _small_cnn():
    """A SmallCNN whose initialisation neither depends on nor moves the global state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return SmallCNN(1, 10, width=4)


FITS = {
    "KMeans": lambda x, y: ic.KMeans(10, init="random", n_init=2, device="cpu").fit(x).inertia_,
    "IIC": lambda x, y: _tiny_iic().fit(x).history_[-1]["loss"],
    "IIC, g from the global generator": lambda x, y: _tiny_iic(g=_global_noise).fit(x).history_[-1]["loss"],
    "DeepInfoMax": lambda x, y: _tiny_dim().fit(x).transform(x[:10]).tolist(),
    "train_classifier": lambda x, y: (
        train_classifier(
            _small_cnn(),
            x,
            y,
            epochs=1,
            device="cpu",
            verbose=False,
            generator=torch.Generator().manual_seed(0),
        )
        .head[-1]
        .weight.sum()
        .item()
    ),
    "mi_training_curve": lambda x, y: mi_training_curve(
        "nce",
        true_mi=(1.0,),
        dim=2,
        steps_per_level=5,
        batch_size=8,
        device="cpu",
        verbose=False,
        generator=torch.Generator().manual_seed(0),
    )["nce"].tolist(),
}


@pytest.mark.parametrize("name", FITS)
def test_fit_leaves_the_global_random_state_alone_and_repeats_itself(digits, name):
    x, y = digits
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    before = _global_state()
    first = FITS[name](x, y)
    _assert_same_state(before, _global_state())
    torch.manual_seed(456)  # another global state: the same numbers all the same
    assert FITS[name](x, y) == first


def test_the_seed_changes_the_numbers(digits):
    x, _ = digits
    a = _tiny_iic().fit(x).history_[-1]["loss"]
    assert _tiny_iic(seed=1).fit(x).history_[-1]["loss"] != a
    b = _tiny_iic(g=_global_noise).fit(x).history_[-1]["loss"]
    assert _tiny_iic(g=_global_noise, seed=1).fit(x).history_[-1]["loss"] != b
    np.testing.assert_raises(
        AssertionError,
        np.testing.assert_array_equal,
        _tiny_dim(seed=1).fit(x).transform(x),
        _tiny_dim().fit(x).transform(x),
    )


@pytest.mark.parametrize("make", [ic.KMeans, IIC, DeepInfoMax], ids=lambda m: m.__name__)
@pytest.mark.parametrize("seed", [None, -1, 2**32, 1.5])
def test_bad_seeds_are_named(digits, make, seed):
    quiet = {} if make is ic.KMeans else {"verbose": False}
    with pytest.raises(ic.ParameterError, match="seed"):
        make(seed=seed, device="cpu", **quiet).fit(digits[0])


def test_functions_reject_integer_generators(digits):
    x, y = digits
    with pytest.raises(TypeError, match="generator"):
        train_classifier(_small_cnn(), x, y, epochs=1, generator=0, verbose=False)
    with pytest.raises(TypeError, match="generator"):
        mi_training_curve("nce", steps_per_level=1, generator=0, verbose=False)
