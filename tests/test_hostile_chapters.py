"""Hostile chapter parameters (``-p name value`` of a build, papermill's injected cell): refused at set-up.

Each chapter's set-up cell runs in this process as papermill would run it (``in_process`` of
``test_chapters``), so no kernel starts. The misspelt name, the string boolean, the scalar for a
list and chapter 4 on digits are tested in ``test_chapters``; MNIST missing offline in
``test_hostile_data`` (``data-mnist-missing``: the chapter calls ``load_dataset``).
"""

from __future__ import annotations

import pytest
from test_chapters import in_process  # noqa: F401 (the fixture)
from test_hostile_common import refused


@pytest.mark.parametrize(
    ("chapter", "given", "name"),
    [
        ("01_kmeans", {"n_init": "3"}, "n_init"),
        ("01_kmeans", {"seed": None}, "seed"),
        ("02_dim", {"epochs": 1.5}, "epochs"),
        ("06_sinkhorn", {"dataset": "digits"}, "dataset"),
        ("07_adef", {"test_fraction": 1.0}, "test_fraction"),
    ],
)
def test_a_bad_parameter_is_named_at_set_up(in_process, chapter, given, name):  # noqa: F811
    with refused(name):
        in_process(chapter, given)
