"""Hostile inputs of the classifiers (:mod:`infoclust.classifiers`).

Each case must fail with an error that names the argument, or work (see ``test_hostile_common``).
"""

from __future__ import annotations

from typing import Any

import pytest
from test_hostile_common import chan3, cnn, digits, gen, nan, noncontig, uint8, finite_model
from test_hostile_common import case, collect, either, equals, works, strict_test

from infoclust.classifiers import SmallCNN, accuracy, predict, random_classifier, train_classifier


pytestmark = pytest.mark.usefixtures("one_thread")


def train(x=None, y=None, **kw: Any):
    xs, ys = digits(48)
    args = dict(epochs=1, batch_size=16, device="cpu", verbose=False, generator=gen(0))
    args.update(kw)
    return train_classifier(SmallCNN(1, 10, 4), xs if x is None else x, ys if y is None else y, **args)


def _cases() -> None:
    xs, ys = (lambda: digits(48)[0]), (lambda: digits(48)[1])
    case("classifiers-cnn-channels-zero", lambda: SmallCNN(0, 10), "in_channels")
    case("classifiers-cnn-classes-one", lambda: SmallCNN(1, 1), "n_classes")
    case("classifiers-cnn-width-zero", lambda: SmallCNN(1, 10, 0), "width")
    case("classifiers-train-rank3", lambda: train(xs()[:, 0]), "x")
    case("classifiers-train-y-length", lambda: train(y=ys()[:10]), "y")
    case("classifiers-train-y-float", lambda: train(y=ys().float()), "y", exc="TypeError")
    case("classifiers-train-y-out-of-range", lambda: train(y=ys() + 1), "y ~classes")
    case("classifiers-train-y-negative", lambda: train(y=ys() - 1), "y")
    case("classifiers-train-x-nan", lambda: train(nan(xs())), "x ~nan")
    case("classifiers-train-x-empty", lambda: train(xs()[:0], ys()[:0]), "x ~EMPTY")
    case("classifiers-train-epochs-zero", lambda: train(epochs=0), "epochs")
    case("classifiers-train-batch-zero", lambda: train(batch_size=0), "batch_size")
    case("classifiers-train-lr-nan", lambda: train(lr=float("nan")), "lr")
    case(
        "classifiers-train-generator-int",
        lambda: train(generator=0),
        "generator",
        exc="TypeError",
    )
    case("classifiers-train-max_shift-negative", lambda: train(max_shift=-1), "max_shift")
    case("classifiers-train-too-small", lambda: train(xs()[..., :2, :2]), "x ~too small ~pixels")
    case("classifiers-train-channels", lambda: train(chan3(xs())), "x ~channel")
    case(
        "classifiers-train-diverges",
        lambda: train(lr=1e9, epochs=3, max_shift=0),
        "lr",
        exc="TrainingDivergedError",
        also=("epoch", "step"),
        check=finite_model,
    )
    either("classifiers-train-uint8", lambda: train(uint8(xs())), "x ~uint8")
    either(
        "classifiers-train-numpy",
        lambda: train(xs().numpy(), ys().numpy()),
        "x",
        exc="TypeError",
    )
    either("classifiers-train-float64", lambda: train(xs().double()), "x ~float64")
    works("classifiers-train-noncontiguous", lambda: train(noncontig(xs())))
    works("classifiers-train-int32-labels", lambda: train(y=ys().int()))
    pred = lambda x: predict(cnn(), x)  # noqa: E731
    case("classifiers-predict-rank3", lambda: pred(xs()[:, 0]), "x")
    case("classifiers-predict-nan", lambda: pred(nan(xs())), "x ~nan")
    case("classifiers-predict-empty", lambda: pred(xs()[:0]), "x ~EMPTY")
    case("classifiers-predict-channels", lambda: pred(chan3(xs())), "x ~channel")
    either(
        "classifiers-predict-numpy",
        lambda: pred(xs().numpy()),
        "x",
        equals(lambda: pred(xs())),
        exc="TypeError",
    )
    either(
        "classifiers-predict-float64",
        lambda: pred(xs().double()),
        "x ~float64",
        equals(lambda: pred(xs())),
    )
    works(
        "classifiers-predict-noncontiguous",
        lambda: pred(noncontig(xs())),
        equals(lambda: pred(xs())),
    )
    case("classifiers-accuracy-y-length", lambda: accuracy(cnn(), xs(), ys()[:5]), "y")
    case(
        "classifiers-accuracy-y-float",
        lambda: accuracy(cnn(), xs(), ys().float() + 0.5),
        "y",
        exc="TypeError",
    )
    rc = lambda *a, **k: random_classifier(*a, **k)  # noqa: E731
    case("classifiers-random-classes-one", lambda: rc(1, 1), "n_classes")
    case("classifiers-random-seed-none", lambda: rc(1, 10, None), "seed")
    case("classifiers-random-seed-negative", lambda: rc(1, 10, -1), "seed")
    case("classifiers-random-device-gpu", lambda: rc(1, 10, 0, device="gpu"), "device")
    works("classifiers-random-seed-max", lambda: rc(1, 10, 2**32 - 1, device="cpu"))


CASES = collect(_cases)
test_hostile_input = strict_test(CASES)
