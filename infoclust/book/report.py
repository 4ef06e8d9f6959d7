"""Reporting written once: the tables, sentences and ledger entries of a paired comparison.

Chapters compare recipes seed by seed (:func:`infoclust.experiment.run_arms`,
:func:`infoclust.experiment.compare_arms`) and report every comparison the same way:

- :func:`scores_table`: every arm's score over the seeds (mean ± sd), NMI and training time;
- :func:`comparison_table`: every paired difference with its interval, verdict and the
  design's detectable effect (:class:`~infoclust.metrics.PairedDifference`);
- :func:`verdict_sentence`: one difference as prose, the verdict taken from the interval;
- :func:`record_difference`: one difference into the ledger as a tested claim, in one call;
- :func:`record_within`: a score with the claim "within a margin of the reference";
- :func:`record_at_least`: a number with the claim "at least a threshold";
- :func:`borderline`: whether a difference's verdict lies within the design's stated margin
  (:data:`BORDERLINE_SE` standard errors) of flipping; every recorded claim carries it;
- :func:`record`: :meth:`~infoclust.book.ledger.Ledger.record` that can also glue the value
  for the chapter's text (``{glue:text}`key```).

The tables are :func:`~infoclust.book.ledger.markdown_table` (cells escaped); the verdict
column is bold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..metrics import PairedDifference
from .ledger import Ledger, markdown_table

__all__ = [
    "interval",
    "scores_table",
    "comparison_table",
    "verdict_sentence",
    "record_difference",
    "within",
    "record_within",
    "record_at_least",
    "borderline",
    "BORDERLINE_SE",
    "record",
]

#: A verdict is borderline when a threshold lies within this many standard errors of the mean
#: difference (``sd / sqrt(n)``) from an end of its interval. Another code path or other seeds
#: redraw the mean with about ``sqrt(2)`` standard errors of spread between the two builds, so
#: an end further than 2 standard errors from every threshold moves across one rarely (about 8 %
#: one-sided under a normal spread, the interval's width taken as fixed).
BORDERLINE_SE = 2.0

#: The words of the default verdict sentence, ``{reference}`` filled in.
VERDICT_WORDS = {
    "improves": "improves on {reference}",
    "hurts": "does worse than {reference}",
    "cannot tell": "cannot be told apart from {reference} at this size",
}


def interval(d: PairedDifference) -> str:
    """The confidence interval of a paired difference as text.

    Parameters
    ----------
    d : PairedDifference
        The difference.

    Returns
    -------
    str
        ``[low, high]``, signed, two decimals, e.g. ``[-0.12, +0.34]``.
    """
    return f"[{d.low:+.2f}, {d.high:+.2f}]"


def _percent(p: float) -> str:
    return f"{100 * p:g} %"


def scores_table(runs: Mapping[str, Sequence[Any]], *, metric: str = "acc", label: str = "arm") -> str:
    """One row per arm: its score in percent (mean ± sd over the seeds), mean NMI, mean training seconds.

    Parameters
    ----------
    runs : mapping
        ``{arm name: [Run, ...]}`` as :func:`~infoclust.experiment.run_arms` returns.
    metric : str
        The :class:`~infoclust.experiment.Run` attribute shown in percent ("acc": accuracy).
    label : str
        Header of the first column.

    Returns
    -------
    str
        A Markdown table (:func:`~infoclust.book.ledger.markdown_table`).
    """
    rows = []
    for name, rs in runs.items():
        score = 100 * np.array([getattr(r, metric) for r in rs])
        sd = score.std(ddof=1) if len(score) > 1 else 0.0
        rows.append(
            [
                name,
                f"{score.mean():.2f} ± {sd:.2f}",
                f"{np.mean([r.nmi for r in rs]):.3f}",
                f"{np.mean([r.seconds for r in rs]):.0f}",
            ]
        )
    name = {"acc": "accuracy"}.get(metric, metric)
    return markdown_table([label, f"{name} % (mean ± sd)", "NMI", "train s"], rows)


def comparison_table(
    diffs: Mapping[str, PairedDifference],
    *,
    label: str = "arm",
    context: Mapping[str, str] | None = None,
    context_label: str = "context",
) -> str:
    """One row per paired difference: mean, confidence interval, verdict, detectable effect.

    Parameters
    ----------
    diffs : mapping
        ``{name: PairedDifference}``, e.g. from :func:`~infoclust.experiment.compare_arms`.
    label : str
        Header of the first column (what is compared with what, and the unit).
    context : mapping or None
        A text per name for a last column (e.g. a paper's number from another setting).
    context_label : str
        Header of that column.

    Returns
    -------
    str
        A Markdown table (:func:`~infoclust.book.ledger.markdown_table`), the verdicts in bold.
    """
    if not diffs:
        raise ValueError("diffs is empty: a comparison table needs at least one paired difference")
    first = next(iter(diffs.values()))
    columns = [label, "mean", f"{_percent(first.confidence)} CI", "verdict"]
    columns.append(f"detectable ({_percent(first.power)} power)")
    rows = [
        [name, f"{d.mean:+.2f}", interval(d), f"**{d.verdict}**", f"{d.detectable:.2f}"]
        for name, d in diffs.items()
    ]
    if context is not None:
        columns.append(context_label)
        rows = [row + [context.get(row[0], "")] for row in rows]
    return markdown_table(columns, rows, raw=["verdict"])


def verdict_sentence(
    subject: str,
    d: PairedDifference,
    *,
    reference: str = "the reference",
    unit: str = "points",
    words: Mapping[str, str] | None = None,
) -> str:
    """One paired difference as a clause: the verdict's words, then the numbers that decide it.

    ``"{subject} {words[verdict]} ({mean} {unit}, 95 % CI [low, high])"``; for "cannot
    tell", the clause adds the effect that the design would have found with its power.

    Parameters
    ----------
    subject : str
        What was compared (Markdown allowed), e.g. ``"*ADef + paper's g*"``.
    d : PairedDifference
        The difference subject - reference.
    reference : str
        What it was compared with, for the default words.
    unit : str
        Unit of the difference.
    words : mapping or None
        The words for each verdict (``{reference}`` is filled in); default :data:`VERDICT_WORDS`.

    Returns
    -------
    str
        The clause, without a final full stop.
    """
    words = dict(VERDICT_WORDS if words is None else words)
    missing = {"improves", "hurts", "cannot tell"} - set(words)
    if missing:
        raise ValueError(f"words must give a text for every verdict; missing {sorted(missing)}")
    text = (
        f"{subject} {words[d.verdict].format(reference=reference)} "
        f"({d.mean:+.2f} {unit}, {_percent(d.confidence)} CI {interval(d)}"
    )
    if d.verdict == "cannot tell":
        text += (
            f"; a true effect of {d.detectable:.2f} {unit} would have been found with probability {d.power:g}"
        )
    return text + ")"


def record_difference(
    ledger: Ledger,
    name: str,
    d: PairedDifference,
    *,
    claim: str,
    expect: str = "improves",
    unit: str = "points",
    source: str = "",
    context: str = "",
) -> None:
    """Record a paired difference as a tested claim: the mean, and whether the interval says ``expect``.

    The claim is written with the interval that decides it, ``"{claim} (95 % CI above 0;
    measured [low, high], verdict)"``, and holds when the verdict is ``expect``.

    Parameters
    ----------
    ledger : Ledger
        The chapter's ledger.
    name : str
        The result's name.
    d : PairedDifference
        The difference.
    claim : str
        What is claimed, e.g. ``"the talk's proposal: it improves IIC"``.
    expect : {"improves", "hurts"}
        The verdict that makes the claim hold (the interval above 0, or below).
    unit, source, context
        As in :meth:`~infoclust.book.ledger.Ledger.record`.
    """
    side = {"improves": "above", "hurts": "below"}
    if expect not in side:
        raise ValueError(f"expect={expect!r} must be 'improves' or 'hurts'")
    ledger.record(
        name,
        d.mean,
        unit=unit,
        claim=f"{claim} ({_percent(d.confidence)} CI {side[expect]} 0; measured {interval(d)}, {d.verdict})",
        source=source,
        context=context,
        holds=d.verdict == expect,
        borderline=borderline(d, 0.0),
    )


def borderline(d: PairedDifference, *thresholds: float) -> bool:
    """Whether ``d``'s verdict is borderline: an end of its interval near one of ``thresholds``.

    The margin is stated before any run, by the design's own noise: :data:`BORDERLINE_SE`
    standard errors of the mean difference, ``sd / sqrt(n)``. A verdict decided by where the
    interval's ends fall (0 for "improves"/"hurts", ``-margin`` and ``+margin`` for
    :func:`within`) flips when an end crosses a threshold; an end that lies within this margin
    of one may cross it on another code path or other seeds, and the ledger says so in advance
    instead of calling the flip a finding.

    Parameters
    ----------
    d : PairedDifference
        The difference.
    *thresholds : float
        The values where the verdict changes (at least one), in the units of ``d``.

    Returns
    -------
    bool
    """
    if not thresholds:
        raise ValueError("give at least one threshold")
    margin = BORDERLINE_SE * d.sd / np.sqrt(d.n)
    return bool(any(abs(end - t) <= margin for end in (d.low, d.high) for t in thresholds))


def record_at_least(
    ledger: Ledger,
    name: str,
    value: float,
    threshold: float,
    *,
    claim: str,
    margin: float,
    **kwargs: Any,
) -> None:
    """Record ``value`` with the claim that it reaches ``threshold``, borderline within ``margin``.

    The claim holds when ``value >= threshold``; it is marked borderline when ``value`` lies
    within ``margin`` of the threshold (a margin the chapter states before the run, e.g. the
    spread of the number across seeds or code paths seen in earlier builds): one run's number
    that close to its target may miss it on another machine.

    Parameters
    ----------
    ledger : Ledger
        The chapter's ledger.
    name, value
        The result's name and value.
    threshold : float
        The target, in the value's unit.
    claim : str
        What is claimed; the margin is added to its text.
    margin : float
        The stated margin, >= 0, in the value's unit.
    **kwargs
        The other arguments of :func:`record` (``glue``, ``unit``, ``paper``, ``source``,
        ``seconds``, ``context``).
    """
    if not margin >= 0:
        raise ValueError(f"margin={margin!r} must be >= 0")
    near = f"{margin:.3g} {kwargs.get('unit', '')}".strip()
    record(
        ledger,
        name,
        value,
        claim=f"{claim} (at least {threshold:g}; borderline within {near})",
        holds=bool(value >= threshold),
        borderline=bool(abs(value - threshold) <= margin),
        **kwargs,
    )


def within(d: PairedDifference, margin: float) -> bool:
    """Whether the whole confidence interval of ``d`` lies within ``[-margin, +margin]``.

    The claim "no difference larger than ``margin``" (an equivalence margin stated before
    the runs): it holds only when the interval excludes every difference beyond the margin,
    so a small design that cannot tell does not pass for one that shows equivalence.

    Parameters
    ----------
    d : PairedDifference
        The difference.
    margin : float
        The margin, > 0, in the units of ``d``.

    Returns
    -------
    bool
    """
    if not margin > 0:
        raise ValueError(f"margin={margin!r} must be > 0")
    return bool(-margin <= d.low and d.high <= margin)


def record_within(
    ledger: Ledger,
    name: str,
    value: float,
    d: PairedDifference,
    *,
    margin: float,
    reference: str,
    unit: str = "%",
    diff_unit: str = "points",
    source: str = "",
    context: str = "",
    condition: str = "",
    also_borderline: bool = False,
) -> None:
    """Record a score with the claim that it is within ``margin`` of ``reference`` (:func:`within`).

    Parameters
    ----------
    ledger : Ledger
        The chapter's ledger.
    name : str
        The result's name.
    value : float
        The score recorded (e.g. a mean accuracy), in ``unit``.
    d : PairedDifference
        The paired difference of that score with the reference's.
    margin : float
        The margin, in ``diff_unit``.
    reference : str
        What it is compared with, for the claim's text.
    unit, diff_unit, source, context
        Units of the value and of the difference; as in :meth:`~infoclust.book.ledger.Ledger.record`.
    condition : str
        Which pairs ``d`` is over, when not all of them, for the claim's text (e.g. ``"runs
        that did not collapse, 4 of 5 pairs"``).
    also_borderline : bool
        Another reason, stated by the design before the runs, to mark the verdict borderline
        (e.g. a run near the floor that decides which pairs ``d`` keeps,
        :func:`infoclust.experiment.near_collapse`); the interval's own :func:`borderline` is
        always applied.
    """
    over = f"; {condition}" if condition else ""
    ledger.record(
        name,
        value,
        unit=unit,
        claim=(
            f"within {margin:g} {diff_unit} of {reference} ({_percent(d.confidence)} CI of the paired "
            f"difference inside [-{margin:g}, +{margin:g}]{over}; measured {interval(d)})"
        ),
        source=source,
        context=context,
        holds=within(d, margin),
        borderline=bool(also_borderline) or borderline(d, -margin, margin),
    )


def record(ledger: Ledger, name: str, value: float, *, glue: str | None = None, **kwargs: Any) -> None:
    """:meth:`Ledger.record <infoclust.book.ledger.Ledger.record>`, and with ``glue`` the value glued too.

    Parameters
    ----------
    ledger : Ledger
        The chapter's ledger.
    name, value
        The result's name and value.
    glue : str or None
        A key: the recorded number is also glued for the chapter's text, as
        ``{glue:text}`key:.1f``` (MyST-NB's ``glue``, not displayed where it is called).
    **kwargs
        The other arguments of :meth:`~infoclust.book.ledger.Ledger.record` (``unit``,
        ``claim``, ``holds``, ...).
    """
    ledger.record(name, value, **kwargs)
    if glue is not None:
        from myst_nb import glue as myst_glue  # the book extra: only where a chapter glues

        myst_glue(glue, float(value), display=False)
