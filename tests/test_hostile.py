"""Hostile inputs across the public API: each must fail with an error that names the argument, or work.

The cases are those of ``benchmarks/hostile_battery.py`` (one table serves the battery, which
counts outcomes on any commit, and these tests, which hold main to them). A case runs here once
the library handles it; here it is judged strictly:

* a bad input raises the exception the convention asks for (``ParameterError`` or ``TypeError``
  for a bad value or type, ``NotFittedError``, ``TrainingDivergedError``, ``DatasetUnavailable``)
  and the message names the argument (the cause, where no argument is to blame);
* a solver stopped at its cap warns with :class:`infoclust.ConvergenceWarning`;
* an awkward but valid input (non-contiguous, NumPy, float64) gives the right result.

The chapter cases of the battery start a Jupyter kernel each and stay in the battery.
"""

from __future__ import annotations

import contextlib
import importlib.util
import resource
import sys
import warnings

import pytest
from sklearn.exceptions import ConvergenceWarning

from infoclust.book.build import ROOT


def _load_battery():
    path = ROOT / "benchmarks" / "hostile_battery.py"
    spec = importlib.util.spec_from_file_location("hostile_battery", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


battery = _load_battery()
CASES = {c.id: c for c in battery.all_cases()}

#: The battery's cases that main handles (add a case here when its fix lands).
PASSING = """
utils-check_int-str utils-check_int-float utils-check_int-bool utils-check_number-str
utils-check_number-nan utils-check_choice-case utils-check_bool-no utils-seed_everything-none
utils-seed_everything-negative utils-seed_everything-huge utils-seed_everything-float
utils-seed_everything-max utils-resolve_device-gpu utils-resolve_device-int utils-check_finite-nan
data-name-case data-name-unknown data-n-zero data-n-negative data-n-float data-n-string data-n-too-many
data-mnist-missing data-mnist-label-file-missing data-mnist-idx-files data-root-is-a-file
data-read_idx-missing data-read_idx-not-idx data-seed-none data-seed-negative data-seed-string
data-download-string data-mnist-truncated-images data-mnist-truncated-labels data-read_idx-truncated
data-read_idx-empty
metrics-length-mismatch metrics-empty metrics-float-labels metrics-float-tensor-labels metrics-negative
metrics-2d metrics-strings metrics-huge-ids-nmi metrics-int32-tensor metrics-nmi-length metrics-ari-float
metrics-evaluate-empty metrics-compare-one-run metrics-compare-nan metrics-compare-confidence-one
metrics-compare-unpaired metrics-compare-strings
metrics-huge-ids-pred metrics-huge-ids-true metrics-huge-ids-hungarian
kmeans-n_clusters-zero kmeans-n_clusters-float kmeans-n_clusters-too-many kmeans-n_init-zero
kmeans-max_iter-zero kmeans-tol-negative kmeans-tol-nan kmeans-empty-unknown kmeans-init-misspelt
kmeans-init-wrong-shape kmeans-init-nan kmeans-init-with-n_init kmeans-seed-none kmeans-seed-negative
kmeans-seed-float kmeans-device-gpu kmeans-fit-1d kmeans-fit-nan kmeans-fit-inf kmeans-fit-uint8
kmeans-fit-numpy-float64 kmeans-fit-noncontiguous kmeans-fit-float16 kmeans-fit-list
kmeans-predict-other-size kmeans-predict-nan kmeans-predict-noncontiguous kmeans-predict-numpy
kmeans-plusplus-generator-int kmeans-seed-huge kmeans-fit-empty kmeans-max_iter-cap
kmeans-predict-unfitted kmeans-predict-empty iic-n_clusters-one iic-n_clusters-float
iic-n_overclusters-one iic-n_subheads-zero iic-trunk-unknown iic-g-string iic-epochs-zero iic-epochs-none
iic-batch_size-one iic-batch_size-too-big iic-repeats-zero iic-main_passes-zero iic-over_passes-negative
iic-lr-zero iic-lr-nan iic-lamb-negative iic-seed-none iic-seed-negative iic-seed-string iic-amp-string
iic-device-gpu iic-fit-rank3 iic-fit-nan iic-fit-inf iic-fit-y-length iic-fit-y-2d iic-g-changes-shape
iic-g-returns-numpy iic-fit-uint8 iic-fit-numpy-float64 iic-fit-float16 iic-fit-noncontiguous
iic-fit-non-square iic-predict-nan iic-predict-rank3 iic-predict-head iic-predict-subhead
iic-predict-numpy iic-predict-noncontiguous iic-predict_proba-float64 iic-loss-shape-mismatch
iic-loss-lamb-negative iic-joint-1d iic-information-negative iic-information-nonsquare iic-verbose-string
iic-fit-empty iic-fit-too-small iic-fit-y-float iic-g-returns-nan iic-predict-unfitted
iic-predict-other-size iic-predict-other-channels iic-predict-empty iic-predict-uint8
iic-clusternet-trunk-unknown kmeans-fit-list-of-strings kmeans-plusplus-zero kmeans-plusplus-too-many
kmeans-pairwise-mismatch iic-clusternet-too-small iic-loss-nan iic-loss-numpy iic-information-nan
iic-clusternet-channels-zero
dim-alpha-negative dim-all-zero dim-estimator-unknown dim-local_critic-unknown dim-code_dim-zero
dim-widths-two dim-widths-zero dim-critic_dim-zero dim-epochs-zero dim-batch_size-one dim-lr-zero
dim-seed-none dim-seed-negative dim-device-gpu dim-fit-empty dim-fit-rank3 dim-fit-nan dim-fit-inf
dim-fit-one-image dim-fit-uint8 dim-fit-numpy dim-fit-float64 dim-fit-noncontiguous dim-transform-nan
dim-transform-numpy-float64 dim-transform-noncontiguous dim-probe-test_size dim-fit-too-small
dim-transform-unfitted dim-transform-other-size dim-transform-other-channels dim-transform-empty
dim-partial_fit-other-size mi-jsd-1d mi-jsd-one-sample mi-dv-nonsquare mi-nce-numpy mi-estimate-unknown
mi-gaussian-dim-zero mi-gaussian-rho-one mi-gaussian-rho-two mi-correlated-n-zero
mi-correlated-generator-int mi-correlated-device-gpu mi-curve-estimator mi-curve-true_mi-empty
mi-curve-true_mi-negative mi-curve-steps-zero mi-curve-batch-one mi-curve-generator-int mi-curve-dim-zero
dim-diverges-lr dim-partial_fit-one-image dim-probe-nan dim-probe-length dim-probe-float-labels
dim-probe-one-class mi-jsd-nan mi-curve-true_mi-string
classifiers-cnn-channels-zero classifiers-cnn-classes-one classifiers-cnn-width-zero
classifiers-train-rank3 classifiers-train-y-length classifiers-train-epochs-zero
classifiers-train-batch-zero classifiers-train-lr-nan classifiers-train-generator-int
classifiers-train-max_shift-negative classifiers-train-noncontiguous classifiers-predict-noncontiguous
classifiers-random-classes-one classifiers-random-seed-none classifiers-random-seed-negative
classifiers-random-device-gpu classifiers-random-seed-max
classifiers-train-y-float classifiers-train-y-negative classifiers-train-x-nan classifiers-train-x-empty
classifiers-train-channels classifiers-train-diverges classifiers-train-uint8 classifiers-train-numpy
classifiers-train-float64 classifiers-train-int32-labels classifiers-predict-rank3
classifiers-predict-nan classifiers-predict-empty classifiers-predict-channels classifiers-predict-numpy
classifiers-predict-float64 classifiers-accuracy-y-length classifiers-accuracy-y-float
classifiers-train-y-out-of-range classifiers-train-too-small
augment-crop-too-big augment-crop-zero augment-size-zero augment-crop-uint8 augment-crop-noncontiguous
augment-transform-max_angle-negative augment-transform-p_rotate-two augment-transform-scales-empty
augment-transform-scales-zero augment-transform-extent-small augment-transform-jitter-short
augment-transform-noncontiguous augment-transform-float64
augment-crop-rank3 augment-crop-nan augment-crop-empty augment-crop-numpy
augment-jitter-brightness-negative augment-jitter-brightness-big augment-jitter-nan
augment-affine-angle-length augment-transform-scales-number augment-transform-nan augment-transform-rank3
augment-transform-empty augment-transform-uint8
w2-histogram-negative w2-histogram-nan w2-histogram-zero-mass w2-histogram-5d w2-grid_cost-zero
w2-grid_cost-float w2-exact-size-mismatch w2-exact-count-mismatch w2-exact-negative w2-exact-max_iter-zero
w2-exact-numpy w2-exact-noncontiguous w2-exact-uint8 w2-exact-float16 w2-exact-hw w2-sinkhorn-reg-zero
w2-sinkhorn-reg-negative w2-sinkhorn-reg-nan w2-sinkhorn-tol-zero w2-sinkhorn-max_iter-zero
w2-sinkhorn-scaling-one w2-sinkhorn-omega-two w2-sinkhorn-debiased-string w2-sinkhorn-dtype-half
w2-sinkhorn-size-mismatch w2-sinkhorn-noncontiguous w2-sinkhorn-numpy w2-sinkhorn-float64
w2-sinkhorn-near-exact w2-density-eta-zero w2-acceptance-eta-nan w2-mh-eta-zero w2-mh-chains-zero
w2-mh-steps-zero w2-mh-two-channels w2-mh-generator-int w2-mh-noncontiguous
proj-shape-mismatch proj-rank3 proj-lam-zero proj-lam-nan proj-max_iter-zero proj-tol-zero proj-x-negative
proj-x-nan proj-w-nan proj-eps-negative proj-eps-length proj-eps-nan proj-kernel-even proj-kernel-zero
proj-p-zero proj-x-zero-mass proj-float64 proj-float16 proj-lam-1e+02 proj-lam-1e+03 proj-lam-1e+04
proj-lam-1e+07 proj-lam-1e+08 proj-lambertw-negative proj-local_cost-even proj-local_cost-p-negative
pgd-labels-length pgd-x-rank3 pgd-x-nan pgd-eps0-zero pgd-eps_factor-small pgd-eps_every-zero
pgd-alpha-zero pgd-iter-negative pgd-lam-zero pgd-kernel-even
w2-histogram-empty w2-exact-nan w2-exact-zero-mass w2-exact-empty w2-exact-max_iter-cap w2-sinkhorn-nan
w2-sinkhorn-empty w2-sinkhorn-reg-0.01 w2-sinkhorn-max_iter-cap w2-density-dist-nan w2-mh-negative w2-mh-nan
w2-mh-zero-mass proj-empty proj-numpy proj-noncontiguous proj-max_iter-cap proj-lam-1e+05 proj-lam-1e+06
proj-lam-monotone pgd-labels-1-based pgd-labels-float pgd-x-empty pgd-x-channels pgd-proj_iter-zero
pgd-x-float64 pgd-x-numpy pgd-x-noncontiguous pgd-robust-length pgd-robust-radii-nan
adef-rank3 adef-sigma-negative adef-overshoot-zero adef-max_iter-zero adef-candidates-zero
adef-candidates-too-many adef-tol-negative adef-numpy adef-noncontiguous adef-step-labels-shape
adef-step-sigma-nan adef-g-sigma-negative adef-g-overshoot-small adef-g-max_iter-zero adef-g-classes-one
adef-g-seed-none adef-g-seed-negative adef-nan adef-inf adef-empty adef-channels adef-too-small adef-uint8
adef-float64 adef-step-labels-float adef-step-labels-range adef-step-nan adef-g-nan
deform-warp-rank3 deform-warp-field-channels deform-warp-field-size deform-warp-numpy deform-warp-float64
deform-warp-noncontiguous deform-filter-sigma-negative deform-filter-sigma-nan deform-filter-rank3
deform-filter-noncontiguous deform-gradient-1px deform-t_norm-channels deform-field_norm-unknown
deform-affine-h-zero deform-affine-scale-zero deform-affine-angle-nan deform-affine-device-gpu
deform-random-n-zero deform-random-magnitude-negative deform-random-magnitude-length
deform-random-sigma-negative deform-random-norm-unknown deform-g-magnitude-negative
deform-g-magnitude-triple deform-g-magnitude-reversed deform-g-sigma-negative deform-g-norm-unknown
deform-g-rank3 deform-g-noncontiguous deform-g-float64 deform-warp-nan deform-warp-field-nan
deform-warp-empty deform-warp-uint8 deform-filter-nan deform-affine-shift-one deform-random-generator-int
deform-g-nan deform-g-inf deform-g-empty deform-g-uint8 deform-g-seed-none deform-g-seed-negative
w2alg-rank3 w2alg-eps-negative w2alg-eta-zero w2alg-alpha-zero w2alg-max_iter-zero w2alg-generator-int
w2alg-candidates-zero w2alg-numpy w2alg-noncontiguous w2alg-g-eps-negative w2alg-g-eta-zero
w2alg-g-seed-none w2alg-g-seed-negative w2alg-g-classes-one w2alg-g-candidates-zero w2alg-g-noncontiguous
w2alg-nan w2alg-inf w2alg-negative w2alg-zero-mass w2alg-empty w2alg-channels w2alg-uint8 w2alg-float64
w2alg-g-seed-max w2alg-g-redraw-string w2alg-g-nan w2alg-g-rank3 w2alg-g-empty
transforms-sinkhorn-eps-zero transforms-sinkhorn-iter-zero transforms-sinkhorn-lam-zero
transforms-sinkhorn-proj_iter-zero transforms-sinkhorn-classes-one transforms-sinkhorn-seed-none
transforms-sinkhorn-nan transforms-pool-g-string transforms-pool-duplicates transforms-pool-copies-zero
transforms-pool-batch-zero transforms-pool-g-shape transforms-compose-empty transforms-compose-number
transforms-sinkhorn-kernel-even transforms-sinkhorn-noncontiguous transforms-pool-g-numpy
transforms-pool-seed-none transforms-pool-x-nan transforms-pool-x-empty transforms-pool-unknown-image
build-chapters-unknown build-profile-unknown build-chapters-no-names build-chapters-unknown-after-known
build-chapter_parameters-unknown build-chapter_parameters-profile
""".split()


pytestmark = pytest.mark.usefixtures("one_thread")


@contextlib.contextmanager
def _memory_cap(extra_gib: float = 3.0):
    """Let a runaway allocation fail with MemoryError instead of exhausting the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as status:
        used = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    cap = used + int(extra_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _expected_types(case) -> set[str]:
    wanted = set(case.exc.split("|"))
    if wanted & {"ParameterError", "TypeError"}:
        wanted |= {"ParameterError", "TypeError"}
    return wanted


def assert_clear_error(case, err: BaseException) -> None:
    types = {k.__name__ for k in type(err).__mro__}
    assert types & _expected_types(case), f"{type(err).__name__}: {err} (expected {case.exc})"
    message = str(err)
    args = tuple(n for n in case.names if not n.startswith("~"))
    assert battery.names_it(message, args or case.names), f"the message does not name {case.names}: {message}"
    for word in case.also:
        assert word.lower() in message.lower(), f"the message does not say {word!r}: {message}"


def assert_right(case, result) -> None:
    if isinstance(result, battery.Verdict):
        assert result.outcome in ("clear", "correct"), result.detail
        return
    wrong = battery.nonfinite(result)
    if wrong is None and case.check is not None:
        wrong = case.check(result)
    assert wrong is None, wrong


def run_strictly(case) -> None:
    """Run one case and assert what the convention asks of it (AssertionError otherwise)."""
    with (
        _memory_cap() if case.memory else contextlib.nullcontext(),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        try:
            result = case.run()
        except (Exception, SystemExit) as err:  # judged below, whatever it is
            if case.expect in ("works", "warn"):
                raise AssertionError(f"{type(err).__name__}: {err}") from err
            assert_clear_error(case, err)
            return
    if isinstance(result, battery.Verdict) or case.expect in ("works", "either"):
        assert_right(case, result)
    elif case.expect == "error":
        raise AssertionError(f"no error; result {result!r:.200}")
    else:
        assert any(issubclass(w.category, ConvergenceWarning) for w in caught), (
            f"no ConvergenceWarning (warnings: {[str(w.message)[:80] for w in caught]})"
        )


def test_passing_cases_exist():
    assert set(PASSING) <= set(CASES), sorted(set(PASSING) - set(CASES))


@pytest.mark.parametrize("case_id", PASSING)
def test_hostile_input(case_id):
    run_strictly(CASES[case_id])
