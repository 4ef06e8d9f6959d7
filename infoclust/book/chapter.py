"""A chapter's set-up: its parameters checked against its own parameters cell, then the run begun.

Every chapter's set-up cell makes one call,

.. code-block:: python

    ledger = ic.book.start("03_iic", globals(), choices={"trunk": ("small", "vgg")},
                           bounds={"n_seeds": "[2, inf)"})

which

1. finds the chapter's ``parameters`` cell and papermill's injected cell (its source
   starts with ``# Parameters``) in IPython's input history ``In``;
2. rejects an injected name that the parameters cell does not define (a misspelt
   ``-p n_cluster 3`` would otherwise only get papermill's warning and the chapter would run
   on its defaults), naming the closest parameter and listing all of them;
3. checks every parameter's value against the type of its default and converts it in the
   chapter's namespace: a ``bool`` default takes only ``True``/``False`` (``-p download no``
   is an error, not true), an ``int`` default an integer, a ``float`` default any real number
   (converted to ``float``), a ``str`` default a string, a ``list`` default a list whose
   items have the type of the default's items, or a single item, which becomes a
   one-element list (``-p regs 8.0`` for ``regs = [2.0, 4.0]``). A ``None`` default takes
   anything, unless the parameter is annotated (``n_images: int | None = None``);
4. applies the chapter's own constraints: ``choices`` (allowed values) and ``bounds``
   (intervals such as ``"[2, inf)"`` or ``"(0, 1]"``, checked on every item of a list);
5. sets torch's thread count to a fixed number (``$INFOCLUST_NUM_THREADS``, else the
   CPUs the process may use; :func:`infoclust.utils.configure_threads`), then begins the
   run (:meth:`infoclust.book.Ledger.start <infoclust.book.ledger.Ledger.start>`: profile,
   seeds, device, plot style, the printed run line) and returns the ledger, which records the parameters.

Every violation raises :class:`~infoclust.utils.ParameterError` whose message starts with
the parameter's name. Checks that the library makes anyway (a learning rate is positive,
a data set exists) are left to it.
"""

from __future__ import annotations

import ast
import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, MutableMapping

from ..utils import ParameterError, check_bool, check_choice, check_int, check_number, configure_threads
from .catalogue import chapter_source
from .ledger import Ledger, _project_root

__all__ = ["Parameter", "parameters_of", "check_parameters", "start"]

#: The first line of the cell papermill injects after the parameters cell.
INJECTED_HEADER = "# Parameters"
_TYPES = {"bool": bool, "int": int, "float": float, "str": str}


@dataclass(frozen=True)
class Parameter:
    """One parameter of a chapter: its default and the type its values must have.

    Parameters
    ----------
    name : str
        The parameter's name.
    default : object
        Its value in the parameters cell.
    kind : type or None
        ``bool``, ``int``, ``float``, ``str``, ``list`` or None (anything).
    item : type or None
        The type of a list's items (None: anything).
    optional : bool
        Whether None is allowed.
    """

    name: str
    default: Any
    kind: type | None
    item: type | None = None
    optional: bool = False


def _annotation(name: str, node: ast.expr) -> tuple[type | None, type | None, bool]:
    """(kind, item, optional) from an annotation such as ``int | None`` or ``list[float]``."""
    parts, todo = [], [node]
    while todo:
        n = todo.pop()
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr):
            todo += [n.left, n.right]
        else:
            parts.append(n)
    optional = any(isinstance(p, ast.Constant) and p.value is None for p in parts)
    kinds = [p for p in parts if not (isinstance(p, ast.Constant) and p.value is None)]
    if len(kinds) != 1:
        raise ValueError(
            f"parameter {name}: annotate one type (optionally '| None'), not {ast.unparse(node)!r}"
        )
    k = kinds[0]
    if isinstance(k, ast.Name) and k.id in _TYPES:
        return _TYPES[k.id], None, optional
    if (
        isinstance(k, ast.Subscript)
        and isinstance(k.value, ast.Name)
        and k.value.id == "list"
        and isinstance(k.slice, ast.Name)
        and k.slice.id in _TYPES
    ):
        return list, _TYPES[k.slice.id], optional
    raise ValueError(
        f"parameter {name}: unsupported annotation {ast.unparse(node)!r} "
        f"(bool, int, float, str, list[...], optionally '| None')"
    )


def _infer(value: Any) -> tuple[type | None, type | None]:
    """(kind, item) of a default value."""
    if value is None:
        return None, None
    if isinstance(value, (list, tuple)):
        kinds = {type(v) for v in value}
        if kinds <= {int, float} and float in kinds:
            return list, float
        return list, kinds.pop() if len(kinds) == 1 and kinds <= {bool, int, float, str} else None
    return (type(value), None) if isinstance(value, (bool, int, float, str)) else (None, None)


def parameters_of(source: str) -> dict[str, Parameter]:
    """The parameters that a parameters cell's ``source`` defines, with their types.

    The cell may hold only assignments of literals to names (``name = value`` or
    ``name: type = value``), comments and blank lines; anything else is a ``ValueError``.

    Parameters
    ----------
    source : str
        The cell's Python source.

    Returns
    -------
    dict of str to Parameter
        Each parameter by name, in the cell's order.
    """
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value, annotation = node.targets[0].id, node.value, None
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value, annotation = node.target.id, node.value, node.annotation
        else:
            raise ValueError(f"a parameters cell may only assign literals to names: {ast.unparse(node)!r}")
        try:
            default = ast.literal_eval(value)
        except ValueError:
            raise ValueError(
                f"parameter {name}: the default must be a literal, not {ast.unparse(value)!r}"
            ) from None
        if annotation is not None:
            kind, item, optional = _annotation(name, annotation)
        else:
            (kind, item), optional = _infer(default), default is None
        out[name] = Parameter(name, default, kind, item, optional)
    return out


def _check_type(name: str, kind: type | None, value: Any) -> Any:
    if kind is None:
        return value
    if kind is bool:
        return check_bool(name, value)
    if kind is int:
        return check_int(name, value)
    if kind is float:
        return check_number(name, value)
    if not isinstance(value, str):
        raise ParameterError(f"{name}={value!r} must be a string")
    return value


def _coerce(p: Parameter, value: Any) -> Any:
    if value is None and (p.optional or p.kind is None):
        return None
    if p.kind is list:
        if isinstance(value, str) and p.item is not str and value.lstrip().startswith("["):
            raise ParameterError(
                f"{p.name}={value!r} is a string, not a list: papermill's -p passes text; "
                f'give a list with -y "{p.name}: {value}" (or one value with -p)'
            )
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        return [
            _check_type(f"{p.name}[{i}]" if len(items) > 1 else p.name, p.item, v)
            for i, v in enumerate(items)
        ]
    return _check_type(p.name, p.kind, value)


_INTERVAL = re.compile(r"^\s*([\[(])\s*([^,]+?)\s*,\s*([^,]+?)\s*([\])])\s*$")


def _check_interval(name: str, value: float, interval: str) -> None:
    match = _INTERVAL.match(interval)
    if not match:
        raise ValueError(f"bounds for {name}: {interval!r} is not an interval such as '[2, inf)' or '(0, 1]'")
    left, low, high, right = match.groups()
    low, high = float(low), float(high)
    if not (low < value if left == "(" else low <= value) or not (
        value < high if right == ")" else value <= high
    ):
        fmt = lambda v: "inf" if math.isinf(v) else f"{v:g}"  # noqa: E731
        raise ParameterError(f"{name}={value!r} must be in {left}{fmt(low)}, {fmt(high)}{right}")


def check_parameters(
    namespace: MutableMapping[str, Any],
    defaults: Mapping[str, Parameter],
    injected: Iterable[str] = (),
    *,
    chapter: str = "this chapter",
    choices: Mapping[str, Iterable[Any]] | None = None,
    bounds: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Check the parameters in ``namespace`` and convert them in place; return them by name.

    See the module docstring for the rules.

    Parameters
    ----------
    namespace : mutable mapping
        The chapter's globals, holding the parameters' values (converted in place).
    defaults : mapping of str to Parameter
        The parameters cell's parameters (:func:`parameters_of`).
    injected : iterable of str
        The names given from outside (papermill's ``-p``); each must be one of ``defaults``.
    chapter : str
        The chapter's name, for the messages.
    choices : mapping or None
        Allowed values by parameter name.
    bounds : mapping or None
        Intervals by parameter name, as text such as ``"[2, inf)"`` (applied to each item of
        a list).

    Returns
    -------
    dict
        The checked values by name.
    """
    names = sorted(defaults)
    for name in injected:
        if name not in defaults:
            close = difflib.get_close_matches(name, names, 1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ParameterError(
                f"{name} is not a parameter of {chapter}{hint} Its parameters: {', '.join(names)}"
            )
    for name in {**(choices or {}), **(bounds or {})}:
        if name not in defaults:
            raise ValueError(f"choices/bounds name {name!r}, which is not a parameter of {chapter}")
    values = {}
    for name, p in defaults.items():
        value = _coerce(p, namespace[name])
        items = value if isinstance(value, list) else [value]
        labels = [f"{name}[{i}]" if len(items) > 1 else name for i in range(len(items))]
        if choices and name in choices:
            allowed = list(choices[name])
            for i, v in enumerate(items):
                check_choice(labels[i], v, allowed)
        if bounds and name in bounds:
            for i, v in enumerate(items):
                if v is not None:
                    _check_interval(labels[i], v, bounds[name])
        namespace[name] = values[name] = value
    return values


def _source_cell(chapter: str) -> str | None:
    """The parameters cell of ``notebooks/<chapter>.py`` under the project root (None if not found)."""
    path = chapter_source(chapter, _project_root(Path.cwd().resolve()))
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    starts = [i for i, line in enumerate(lines) if line.startswith("# %%") and '"parameters"' in line]
    if len(starts) != 1:
        return None
    body = []
    for line in lines[starts[0] + 1 :]:
        if line.startswith("# %%"):
            break
        body.append(line)
    return "\n".join(body)


def _history(namespace: Mapping[str, Any], chapter: str) -> tuple[str, list[str]]:
    """The parameters cell's source and the names papermill injected.

    From IPython's input history ``In`` (papermill, and Jupyter by hand); where the history
    is not kept (nbval reruns cells without storing them), from the chapter's source file,
    with no injected names to check (the run that made the notebook checked them).
    """
    cells = list(namespace.get("In") or [])[:-1]  # the last entry is the running set-up cell
    injected = [i for i, src in enumerate(cells) if src.lstrip().startswith(INJECTED_HEADER)]
    if injected:
        i = injected[-1]
        names = [
            n.targets[0].id
            for n in ast.parse(cells[i]).body
            if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)
        ]
        return cells[i - 1], names
    for src in reversed(cells):  # run by hand in Jupyter: the last cell assigning only literals, profile too
        try:
            if "profile" in parameters_of(src):
                return src, []
        except (SyntaxError, ValueError):
            continue
    source = _source_cell(chapter)
    if source is not None:
        return source, []
    raise RuntimeError(
        f"{chapter}: start() found no parameters cell, neither in IPython's input history nor in "
        f"notebooks/{chapter}.py; run the chapter's cells in order in Jupyter or with papermill"
    )


def start(
    chapter: str,
    namespace: MutableMapping[str, Any],
    *,
    choices: Mapping[str, Iterable[Any]] | None = None,
    bounds: Mapping[str, str] | None = None,
) -> Ledger:
    """Check a chapter's parameters (in ``namespace``, its ``globals()``) and begin its run.

    Parameters
    ----------
    chapter : str
        The chapter's file stem, e.g. ``"03_iic"``.
    namespace : dict
        The chapter's ``globals()``: read for IPython's ``In`` and the parameters, which are
        converted in place (``8.0`` becomes ``[8.0]`` for a list, ``3`` becomes ``3.0`` for a
        float).
    choices : dict, optional
        Allowed values of some parameters (of each item, for a list).
    bounds : dict, optional
        Intervals for numeric parameters, e.g. ``{"n_seeds": "[2, inf)", "test_fraction": "(0, 1)"}``.

    Returns
    -------
    Ledger
        The run's ledger (:meth:`Ledger.start`), which records the checked parameters.

    Raises
    ------
    ParameterError
        A misspelt or unknown injected name, a value of the wrong type, a value not among
        ``choices`` or outside ``bounds``, or an unavailable ``device``; the message starts
        with the parameter's name.
    """
    source, injected = _history(namespace, chapter)
    values = check_parameters(
        namespace, parameters_of(source), injected, chapter=chapter, choices=choices, bounds=bounds
    )
    for required in ("seed", "device", "profile"):
        if required not in values:
            raise ValueError(f"{chapter}: the parameters cell must define {required}")
    configure_threads()  # a fixed count ($INFOCLUST_NUM_THREADS or the CPUs), never the load's
    return Ledger.start(
        chapter, profile=values["profile"], seed=values["seed"], device=values["device"], parameters=values
    )
