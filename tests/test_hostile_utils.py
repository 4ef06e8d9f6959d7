"""Hostile inputs of the argument checks and seeding (:mod:`infoclust.utils`).

Each case must fail with an error that names the argument, or work (see ``test_hostile_common``).
"""

from __future__ import annotations


import pytest
import torch
from test_hostile_common import X, nan
from test_hostile_common import case, collect, works, strict_test

from infoclust.utils import (
    check_bool,
    check_choice,
    check_finite,
    check_int,
    check_number,
    resolve_device,
    seed_everything,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def _cases() -> None:
    ci, cn = (lambda *a: check_int(*a)), (lambda *a, **k: check_number(*a, **k))
    case("utils-check_int-str", lambda: ci("n", "3", 1), "n")
    case("utils-check_int-float", lambda: ci("n", 2.0, 1), "n")
    case("utils-check_int-bool", lambda: ci("n", True, 1), "n")
    case("utils-check_number-str", lambda: cn("lr", "0.1", 0.0), "lr")
    case("utils-check_number-nan", lambda: cn("lr", float("nan")), "lr")
    case(
        "utils-check_choice-case",
        lambda: check_choice("trunk", "VGG", ("vgg", "small")),
        "trunk",
    )
    case("utils-check_bool-no", lambda: check_bool("download", "no"), "download")
    case("utils-seed_everything-none", lambda: seed_everything(None), "seed")
    case("utils-seed_everything-negative", lambda: seed_everything(-1), "seed")
    case("utils-seed_everything-huge", lambda: seed_everything(2**40), "seed")
    case("utils-seed_everything-float", lambda: seed_everything(1.5), "seed")
    works("utils-seed_everything-max", lambda: seed_everything(2**32 - 1))
    case("utils-resolve_device-gpu", lambda: resolve_device("gpu"), "device")
    case("utils-resolve_device-int", lambda: resolve_device(0), "device")
    if not torch.cuda.is_available():
        case("utils-resolve_device-cuda", lambda: resolve_device("cuda"), "device ~CUDA")
    case("utils-check_finite-nan", lambda: check_finite("x", nan(X(2))), "x")


CASES = collect(_cases)
test_hostile_input = strict_test(CASES)
