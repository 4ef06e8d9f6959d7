import sys
import types

import numpy as np
import pytest
import torch

from infoclust.book import Ledger, report
from infoclust.experiment import Run
from infoclust.metrics import paired_difference


def _run(arm, seed, acc, seconds=2.0):
    epochs = np.arange(2)
    return Run(arm, seed, acc, 0.5, 0.4, seconds, epochs, epochs * 1.0, np.array([0.1, acc]))


@pytest.fixture
def ledger(tmp_path, monkeypatch):
    monkeypatch.setenv("INFOCLUST_RESULTS_DIR", str(tmp_path))
    return Ledger("99_test", "custom", torch.device("cpu"), 0)


UP = paired_difference([3.0, 4.0, 5.0], [1.0, 1.5, 2.0])  # above 0 on every seed: improves
FLAT = paired_difference([1.0, 2.0, 0.5], [1.2, 1.4, 1.0])


def test_comparison_table_has_one_row_per_difference():
    table = report.comparison_table({"up": UP, "flat": FLAT}, label="vs base (points)")
    lines = table.splitlines()
    assert lines[0] == "| vs base (points) | mean | 95 % CI | verdict | detectable (80 % power) |"
    ci = f"\\[{UP.low:+.2f}, {UP.high:+.2f}\\]"  # brackets escaped in a Markdown cell
    assert lines[2] == f"| up | {UP.mean:+.2f} | {ci} | **improves** | {UP.detectable:.2f} |"
    assert "**cannot tell**" in lines[3] and len(lines) == 4
    with_context = report.comparison_table({"up": UP}, context={"up": "paper: +1"}, context_label="paper")
    assert with_context.splitlines()[0].endswith("| paper |") and "paper: +1" in with_context
    with pytest.raises(ValueError, match="empty"):
        report.comparison_table({})


def test_scores_table_gives_mean_and_sd_over_seeds():
    runs = {"a": [_run("a", 0, 0.9), _run("a", 1, 0.8)], "b": [_run("b", 0, 0.5, seconds=7.0)]}
    lines = report.scores_table(runs).splitlines()
    assert lines[0] == "| arm | accuracy % (mean ± sd) | NMI | train s |"
    assert lines[2] == f"| a | 85.00 ± {100 * np.std([0.9, 0.8], ddof=1):.2f} | 0.500 | 2 |"
    assert lines[3] == "| b | 50.00 ± 0.00 | 0.500 | 7 |"  # one seed: no spread


def test_verdict_sentence_follows_the_interval():
    up = report.verdict_sentence("*x*", UP, reference="the base")
    assert up == f"*x* improves on the base ({UP.mean:+.2f} points, 95 % CI [{UP.low:+.2f}, {UP.high:+.2f}])"
    flat = report.verdict_sentence("*y*", FLAT, words={"improves": "+", "hurts": "-", "cannot tell": "?"})
    assert flat.startswith("*y* ? (") and f"a true effect of {FLAT.detectable:.2f} points" in flat
    with pytest.raises(ValueError, match="missing"):
        report.verdict_sentence("z", UP, words={"improves": "+"})


def test_record_difference_writes_a_tested_claim(ledger):
    report.record_difference(ledger, "gain", UP, claim="it helps", source="talk")
    report.record_difference(ledger, "loss", UP, claim="it hurts", expect="hurts", context="other data")
    gain, loss = ledger.results
    assert (gain.value, gain.unit, gain.holds, gain.source) == (UP.mean, "points", True, "talk")
    assert gain.claim == f"it helps (95 % CI above 0; measured [{UP.low:+.2f}, {UP.high:+.2f}], improves)"
    assert loss.holds is False and "95 % CI below 0" in loss.claim and loss.context == "other data"
    with pytest.raises(ValueError, match="expect"):
        report.record_difference(ledger, "x", UP, claim="c", expect="cannot tell")


def test_within_needs_the_whole_interval_inside_the_margin(ledger):
    assert report.within(FLAT, 2.0) and not report.within(FLAT, 0.5)  # FLAT: about [-1.45, +1.38]
    assert not report.within(UP, 1.0)
    with pytest.raises(ValueError, match="margin"):
        report.within(FLAT, 0.0)
    report.record_within(ledger, "cell", 95.0, FLAT, margin=2.0, reference="normal IIC", context="talk: 97.5")
    (cell,) = ledger.results
    assert (cell.value, cell.unit, cell.holds, cell.context) == (95.0, "%", True, "talk: 97.5")
    assert cell.claim.startswith("within 2 points of normal IIC (95 % CI of the paired difference inside")


def test_borderline_when_an_end_of_the_interval_lies_within_two_standard_errors_of_a_threshold(ledger):
    se = UP.sd / np.sqrt(UP.n)
    assert UP.low > 2 * se  # UP's interval ends far from 0 on both sides
    assert not report.borderline(UP, 0.0)
    assert report.borderline(UP, UP.low + 1.9 * se) and not report.borderline(UP, UP.low + 2.1 * se)
    assert report.borderline(UP, 0.0, UP.high - 1.9 * se)  # any of several thresholds
    near = paired_difference([0.2, 0.4, 0.3], [0.0, 0.0, 0.0])  # improves, its low end next to 0
    assert near.verdict == "improves" and report.borderline(near, 0.0)
    with pytest.raises(ValueError, match="threshold"):
        report.borderline(UP)
    report.record_difference(ledger, "far", UP, claim="helps")
    report.record_difference(ledger, "near", near, claim="helps")
    report.record_within(ledger, "cell", 1.0, FLAT, margin=1.5, reference="base")  # about [-1.45, +1.38]
    far, near_r, cell = ledger.results
    assert (far.holds, far.borderline) == (True, False) and (near_r.holds, near_r.borderline) == (True, True)
    assert cell.holds is True and cell.borderline is True  # an end within 2 se of -1.5


def test_record_within_says_which_pairs_and_takes_the_design_s_own_borderline(ledger):
    report.record_within(ledger, "plain", 95.0, FLAT, margin=4.0, reference="base")
    report.record_within(
        ledger,
        "kept",
        95.0,
        FLAT,
        margin=4.0,
        reference="base",
        condition="4 of 5 pairs",
        also_borderline=True,
    )
    plain, kept = ledger.results
    assert (plain.holds, plain.borderline) == (True, False)  # FLAT's ends lie far from +-4
    assert (kept.holds, kept.borderline) == (True, True)
    assert "; 4 of 5 pairs; measured" in kept.claim and "pairs" not in plain.claim


def test_record_at_least_marks_a_number_near_its_target(ledger):
    report.record_at_least(ledger, "acc", 95.7, 95.0, claim="reaches 95 %", margin=1.5, unit="%")
    report.record_at_least(ledger, "far", 99.0, 95.0, claim="reaches 95 %", margin=1.5, unit="%")
    report.record_at_least(ledger, "miss", 94.0, 95.0, claim="reaches 95 %", margin=0.5, unit="%")
    acc, far, miss = ledger.results
    assert (acc.holds, acc.borderline) == (True, True) and (far.holds, far.borderline) == (True, False)
    assert (miss.holds, miss.borderline) == (False, False)
    assert acc.claim == "reaches 95 % (at least 95; borderline within 1.5 %)" and acc.unit == "%"
    with pytest.raises(ValueError, match="margin"):
        report.record_at_least(ledger, "x", 1.0, 0.0, claim="c", margin=-1.0)
    with pytest.raises(ValueError, match="borderline=True needs a tested claim"):
        ledger.record("untested", 1.0, borderline=True)
    md = ledger.markdown()
    assert "| yes (borderline) |" in md and "| **no** |" in md


def test_record_can_glue(ledger, monkeypatch):
    glued = []
    fake = types.ModuleType("myst_nb")
    fake.glue = lambda key, value, display: glued.append((key, value, display))
    monkeypatch.setitem(sys.modules, "myst_nb", fake)
    report.record(ledger, "accuracy", np.float64(97.5), glue="acc", unit="%")
    report.record(ledger, "time", 3.0)
    assert glued == [("acc", 97.5, False)]
    assert [(r.name, r.value, r.unit) for r in ledger.results] == [("accuracy", 97.5, "%"), ("time", 3.0, "")]
