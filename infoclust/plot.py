"""Figure helpers for the chapters: image grids, vector fields, signed differences, joint distributions.

Like POT's ``ot.plot``, this module is imported on its own (``from infoclust import plot as icp``),
so that ``import infoclust`` stays free of matplotlib. Every helper draws into the axes it is
given (or into a new figure) and returns the axes; figure numbers and captions stay with MyST
(the chapters' cell metadata).

One way to draw images everywhere: images live in [0, 1] and are drawn with one colour map
(:data:`IMAGE_CMAP`, ink dark on white) and the intensity range pinned to ``vmin=0, vmax=1``, so
that the same digit looks the same in every figure, without ticks or grid. Vector fields
(deformations, transport) are (2, H, W) arrays in pixels: channel 0 is the displacement along x
(columns), channel 1 along y (rows), the convention of :func:`infoclust.deform.warp`.

=========================  ===================================================================
:func:`use_style`          the book's matplotlib style (called by ``Ledger.start``)
:func:`image`              one image in one axes
:func:`image_grid`         rows of images with titles and row labels
:func:`vector_field`       arrows of a displacement field, over an image or alone
:func:`difference_map`     a signed difference (red: gained, blue: lost), symmetric range
:func:`joint_heatmap`      IIC's joint distribution P of the clusters of x and g x
=========================  ===================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes

from .utils import ParameterError, check_finite, check_int, check_number

__all__ = [
    "IMAGE_CMAP",
    "DIFFERENCE_CMAP",
    "JOINT_CMAP",
    "FIELD_BACKGROUND_ALPHA",
    "use_style",
    "image",
    "image_grid",
    "vector_field",
    "difference_map",
    "joint_heatmap",
]

#: Colour map of every image: 0 white, 1 black (MNIST's ink dark on paper).
IMAGE_CMAP = "gray_r"
#: Colour map of signed differences: positive (mass gained) red, negative (lost) blue, 0 white.
DIFFERENCE_CMAP = "bwr"
#: Colour map of joint distributions (0 dark).
JOINT_CMAP = "viridis"
#: Opacity of the image under a vector field.
FIELD_BACKGROUND_ALPHA = 0.35


def use_style() -> None:
    """One matplotlib style for every chapter: readable sizes, no top/right spines, a light grid.

    The grid is for curves; the image helpers of this module turn it off on their axes.
    """
    mpl.rcParams.update(
        {
            "figure.figsize": (6.4, 4.0),
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "font.size": 10,
            "axes.titlesize": 11,
            "legend.frameon": False,
            "image.cmap": IMAGE_CMAP,
        }
    )


# ----------------------------------------------------------------------------------------
# Inputs


def _array(name: str, x: Any) -> np.ndarray:
    """A float NumPy copy of a tensor (any device, with or without grad) or array; finite."""
    if torch.is_tensor(x):
        x = x.detach().to("cpu", torch.float64).numpy()
    elif isinstance(x, np.ndarray):
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise TypeError(f"{name} has dtype {x.dtype}; expected numbers")
        x = x.astype(np.float64)
    else:
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    check_finite(name, x)
    return x


def _one_image(name: str, x: Any) -> np.ndarray:
    """One image as (H, W) (grey) or (H, W, 3) (colour) from (H, W), (1, H, W) or (3, H, W)."""
    x = _array(name, x)
    if x.ndim == 3 and x.shape[0] == 1:
        x = x[0]
    elif x.ndim == 3 and x.shape[0] == 3:
        x = x.transpose(1, 2, 0)
    if x.ndim != 2 and not (x.ndim == 3 and x.shape[2] == 3):
        raise ParameterError(f"{name} must be one image (H, W), (1, H, W) or (3, H, W), got shape {x.shape}")
    return x


def _range(vmin: float, vmax: float) -> tuple[float, float]:
    vmin, vmax = check_number("vmin", vmin), check_number("vmax", vmax)
    if vmax <= vmin:
        raise ParameterError(f"vmax={vmax!r} must be > vmin={vmin!r}")
    return vmin, vmax


def _new_axes(ax: Axes | None, size: float = 2.2) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=(size, size), layout="constrained")
    elif not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    return ax


def _image_axes(ax: Axes) -> None:
    """No ticks and no grid; a thin light frame shows the image's extent on white paper."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_linewidth(0.5)
        spine.set_edgecolor("0.75")


def _blank(ax: Axes) -> None:
    """An empty grid cell: nothing drawn, but a row label (the y label) stays visible."""
    _image_axes(ax)
    ax.set_frame_on(False)


# ----------------------------------------------------------------------------------------
# Images


def image(
    img: Any,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    vmin: float = 0.0,
    vmax: float = 1.0,
    cmap: str = IMAGE_CMAP,
    fontsize: float = 8,
) -> Axes:
    """Draw one image with the intensity range pinned to ``[vmin, vmax]``.

    Parameters
    ----------
    img : torch.Tensor or numpy.ndarray
        Shape (H, W), (1, H, W) or (3, H, W); values outside ``[vmin, vmax]`` are drawn as the
        range's ends.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when None.
    title : str, optional
        Drawn above the image in ``fontsize``.
    vmin, vmax : float
        The intensity range (``vmin`` white, ``vmax`` black for grey images). Keep the default
        [0, 1] for images so that the same image looks the same in every figure.
    cmap : str
        Colour map of grey images (colour images are drawn as RGB).
    fontsize : float
        Size of the title.

    Returns
    -------
    matplotlib.axes.Axes
        The axes, without ticks or grid; the image is ``ax.images[-1]``.
    """
    x = _one_image("img", img)
    ax = _new_axes(ax)
    _draw_image(ax, x, *_range(vmin, vmax), cmap)
    if title is not None:
        ax.set_title(title, fontsize=fontsize)
    return ax


def _draw_image(ax: Axes, x: np.ndarray, vmin: float, vmax: float, cmap: str, alpha: float = 1.0) -> None:
    if x.ndim == 3:  # RGB: matplotlib takes floats in [0, 1] and ignores vmin/vmax
        ax.imshow(np.clip((x - vmin) / (vmax - vmin), 0.0, 1.0), alpha=alpha)
    else:
        ax.imshow(x, cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha)
    _image_axes(ax)


def _rows(images: Any, ncols: int | None) -> list[list[Any]]:
    """Split ``images`` into rows of single images (see :func:`image_grid`)."""
    if torch.is_tensor(images) or isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise ParameterError(
                f"images must be (N, C, H, W) or a list of rows, got shape {tuple(images.shape)}"
            )
        flat = list(images)
        width = len(flat) if ncols is None else ncols
        return [flat[i : i + width] for i in range(0, len(flat), max(width, 1))] or [[]]
    if not isinstance(images, (list, tuple)):
        raise TypeError(f"images must be a tensor, an array or a list of rows, got {type(images).__name__}")
    rows = []
    for r, row in enumerate(images):
        if (torch.is_tensor(row) or isinstance(row, np.ndarray)) and row.ndim != 4:
            raise ParameterError(
                f"images[{r}] must be a batch (N, C, H, W) or a list of images, got shape {tuple(row.shape)}"
            )
        rows.append(list(row))
    return rows


def _titles(titles: Any, rows: list[list[Any]]) -> list[list[str | None]]:
    """Titles in the layout of ``rows``, from a flat sequence (reading order) or one per row."""
    if titles is None:
        return [[None] * len(row) for row in rows]
    titles = list(titles)
    if not any(isinstance(t, (list, tuple, np.ndarray)) for t in titles):  # flat: one per image
        n = sum(len(row) for row in rows)
        if len(titles) != n:
            raise ParameterError(f"titles has {len(titles)} entries for {n} images")
        it = iter(titles)
        return [[next(it) for _ in row] for row in rows]
    if len(titles) != len(rows):
        raise ParameterError(f"titles has {len(titles)} rows for {len(rows)} rows of images")
    out = []
    for r, (t, row) in enumerate(zip(titles, rows)):
        t = [None] * len(row) if t is None else list(t)
        if len(t) != len(row):
            raise ParameterError(f"titles[{r}] has {len(t)} entries for {len(row)} images")
        out.append(t)
    return out


def image_grid(
    images: Any,
    *,
    axes: Any = None,
    titles: Sequence[Any] | None = None,
    row_labels: Sequence[str | None] | None = None,
    ncols: int | None = None,
    vmin: float = 0.0,
    vmax: float = 1.0,
    cmap: str = IMAGE_CMAP,
    size: float = 1.1,
    fontsize: float = 8,
) -> np.ndarray:
    """Draw images in a grid, one intensity range for all, with titles and row labels.

    Parameters
    ----------
    images : torch.Tensor, numpy.ndarray or list
        A batch (N, C, H, W), drawn in one row (or wrapped after ``ncols`` images), or a list
        of rows, each a batch (N_r, C, H, W) or a list of single images ((H, W) or (C, H, W));
        rows may differ in length (the grid is as wide as the longest; the rest stays blank).
    axes : array of matplotlib.axes.Axes, optional
        Where to draw, shape (rows, columns) (a flat sequence for one row); a new figure of
        ``size``-inch panels (constrained layout) when None. Unused axes are left blank.
    titles : sequence, optional
        One title per image (None for none): a flat sequence in reading order, or one
        sequence (or None) per row.
    row_labels : sequence of str, optional
        One label per row, written left of the row.
    ncols : int, optional
        Columns of the grid: wraps a batch after ``ncols`` images, or widens a list of rows.
    vmin, vmax : float
        The intensity range of every panel (see :func:`image`).
    cmap : str
        Colour map of grey images.
    size : float
        Panel size in inches for a new figure.
    fontsize : float
        Size of titles and row labels.

    Returns
    -------
    numpy.ndarray
        The axes, shape (rows, columns).
    """
    if ncols is not None:
        ncols = check_int("ncols", ncols, 1)
    rows = _rows(images, ncols)
    names = _titles(titles, rows)
    if row_labels is not None:
        row_labels = list(row_labels)
        if len(row_labels) != len(rows):
            raise ParameterError(f"row_labels has {len(row_labels)} entries for {len(rows)} rows")
    width = max([len(row) for row in rows] + [1])
    if axes is None:
        ncols = max(width, ncols or 1)
        extra_w = 0.9 if row_labels is not None else 0.0
        extra_h = 0.25 if titles is not None else 0.0
        _, axes = plt.subplots(
            len(rows),
            ncols,
            squeeze=False,
            layout="constrained",
            figsize=(size * ncols + extra_w, (size + extra_h) * len(rows)),
        )
    axes = np.asarray(axes, dtype=object)
    if axes.ndim == 1 and len(rows) == 1:
        axes = axes[None, :]
    if axes.ndim != 2 or axes.shape[0] != len(rows) or axes.shape[1] < width:
        raise ParameterError(
            f"axes has shape {axes.shape}; {len(rows)} rows of up to {width} images "
            f"need ({len(rows)}, >= {width})"
        )
    for r, (row, row_titles) in enumerate(zip(rows, names)):
        for c, ax in enumerate(axes[r]):
            if c < len(row):
                image(row[c], ax=ax, title=row_titles[c], vmin=vmin, vmax=vmax, cmap=cmap, fontsize=fontsize)
            else:
                _blank(ax)
        if row_labels is not None and row_labels[r] is not None:
            axes[r, 0].set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=fontsize)
    return axes


# ----------------------------------------------------------------------------------------
# Fields, differences, joints


def vector_field(
    field: Any,
    *,
    image: Any = None,
    ax: Axes | None = None,
    step: int = 2,
    where: Any = None,
    color: str = "tab:red",
    width: float = 0.01,
) -> Axes:
    """Draw a displacement field as arrows from each pixel p to p + field(p), true length in pixels.

    Displacements of a pixel or two are short beside the image: such arrows show mostly
    their heads, and a zero displacement draws nothing.

    Parameters
    ----------
    field : torch.Tensor or numpy.ndarray
        Shape (2, H, W), in pixels: channel 0 the displacement along x (columns, right
        positive), channel 1 along y (rows, down positive), as in
        :func:`infoclust.deform.warp`.
    image : torch.Tensor or numpy.ndarray, optional
        An (H, W) or (C, H, W) image in [0, 1] drawn underneath (see :func:`image`), faded
        (:data:`FIELD_BACKGROUND_ALPHA`) so that arrows on dark strokes stay visible.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when None.
    step : int
        Draw an arrow at every ``step``-th pixel along both axes (from pixel 0).
    where : torch.Tensor or numpy.ndarray, optional
        Boolean (H, W) mask: arrows only at these pixels (of the ``step`` grid).
    color : str
        Colour of the arrows.
    width : float
        Shaft width as a fraction of the axes' width.

    Returns
    -------
    matplotlib.axes.Axes
        The axes (image extent, y down, no ticks or grid); the arrows are ``ax.collections[-1]``.
    """
    f = _array("field", field)
    if f.ndim != 3 or f.shape[0] != 2:
        raise ParameterError(f"field must have shape (2, H, W) (x then y displacement), got {f.shape}")
    step = check_int("step", step, 1)
    width = check_number("width", width, 0.0, strict_low=True)
    h, w = f.shape[1:]
    mask = np.zeros((h, w), dtype=bool)
    mask[::step, ::step] = True
    if where is not None:
        keep = _array("where", where)
        if keep.shape != (h, w):
            raise ParameterError(f"where must have the field's shape ({h}, {w}), got {keep.shape}")
        mask &= keep != 0
    ax = _new_axes(ax)
    if image is not None:
        img = _one_image("image", image)
        if img.shape[:2] != (h, w):
            raise ParameterError(f"image is {img.shape[0]} x {img.shape[1]} but the field {h} x {w}")
        _draw_image(ax, img, 0.0, 1.0, IMAGE_CMAP, alpha=FIELD_BACKGROUND_ALPHA)
    yy, xx = np.nonzero(mask)
    ax.quiver(
        xx,
        yy,
        f[0][mask],
        f[1][mask],
        color=color,
        angles="xy",
        scale_units="xy",
        scale=1.0,
        width=width,
        headwidth=3,
        headlength=3,
        headaxislength=2.7,
        minlength=0,
    )
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_aspect("equal")
    _image_axes(ax)
    return ax


def difference_map(
    diff: Any, *, ax: Axes | None = None, limit: float | None = None, cmap: str = DIFFERENCE_CMAP
) -> Axes:
    """Draw a signed difference, e.g. ``after - before``: red where mass was gained, blue where lost.

    Parameters
    ----------
    diff : torch.Tensor or numpy.ndarray
        One difference image, (H, W) or (1, H, W).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when None.
    limit : float, optional
        The colour range is ``[-limit, limit]`` (0 white); by default the largest ``|diff|``.
        Pass one limit to several maps to compare them.
    cmap : str
        A diverging colour map, low blue and high red.

    Returns
    -------
    matplotlib.axes.Axes
        The axes, without ticks or grid; the map is ``ax.images[-1]``.
    """
    d = _one_image("diff", diff)
    if d.ndim != 2:
        raise ParameterError(f"diff must be one grey difference (H, W) or (1, H, W), got shape {d.shape}")
    if limit is None:
        limit = max(float(np.abs(d).max()), 1e-12)
    limit = check_number("limit", limit, 0.0, strict_low=True)
    ax = _new_axes(ax)
    _draw_image(ax, d, -limit, limit, cmap)
    return ax


def joint_heatmap(
    p: Any,
    *,
    ax: Axes | None = None,
    order: Sequence[int] | None = None,
    vmax: float | None = None,
    cmap: str = JOINT_CMAP,
) -> Axes:
    """Draw IIC's joint distribution P (clusters of x in rows, of g x in columns) as a heat map.

    Parameters
    ----------
    p : torch.Tensor or numpy.ndarray
        A (C, C') array of non-negative numbers (e.g. :func:`infoclust.iic.joint_distribution`).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when None.
    order : sequence of int, optional
        A permutation of the clusters, applied to rows and columns of a square ``p`` (e.g. the
        clusters sorted by their matched class).
    vmax : float, optional
        Top of the colour range (its bottom is 0). By default ``1 / min(C, C')``, the diagonal
        entry of a confident, balanced clustering, so that panels compare (a near-uniform P
        stays dark instead of being stretched to full colour); larger entries saturate.
    cmap : str
        The colour map.

    Returns
    -------
    matplotlib.axes.Axes
        The axes, without ticks or grid; the map is ``ax.images[-1]``.
    """
    p = _array("p", p)
    if p.ndim != 2:
        raise ParameterError(f"p must be a matrix (C, C'), got shape {p.shape}")
    if (p < 0).any():
        raise ParameterError(f"p must be non-negative (min {p.min():.3g})")
    if order is not None:
        order = [int(i) for i in order]
        if p.shape[0] != p.shape[1] or sorted(order) != list(range(p.shape[0])):
            raise ParameterError(
                f"order must be a permutation of range({p.shape[0]}) for a square p, "
                f"got {order} for shape {p.shape}"
            )
        p = p[np.ix_(order, order)]
    if vmax is None:
        vmax = 1.0 / min(p.shape)
    vmax = check_number("vmax", vmax, 0.0, strict_low=True)
    ax = _new_axes(ax)
    _draw_image(ax, p, 0.0, vmax, cmap)
    return ax
