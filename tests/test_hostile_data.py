"""Hostile data set names (issue 22, item 8): chapter 03's ``-p dataset nope`` named the inner ``names``."""

from __future__ import annotations

from test_hostile_common import refused

from infoclust.data import load_first_available


def test_an_unknown_data_set_is_named_as_the_dataset():
    with refused("dataset='nope'", "mnist5k"):
        load_first_available(["nope"])  # what chapter 03 passes for -p dataset nope
