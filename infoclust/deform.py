"""Random deformations of images by vector fields (talk section 4.2).

A deformation is a vector field :math:`\\tau` on the pixel grid; the deformed image is
:math:`I_\\tau(p) = I(p + \\tau(p))` (talk section 4.2; the same convention as ADef,
Alaifari et al. 2019, eq. (1)). Conventions used by every function here:

* images are ``(N, C, H, W)`` tensors;
* fields are ``(N, 2, H, W)`` tensors in **pixel units**; channel 0 is the horizontal
  displacement (along the width, the columns, "x"), channel 1 the vertical one (along
  the height, the rows, "y");
* warping samples bilinearly with :func:`torch.nn.functional.grid_sample` and
  ``align_corners=True``: the normalised coordinates -1 and +1 are the *centres* of the
  first and last pixels, so a displacement of ``d`` pixels is ``2 d / (W - 1)`` in
  normalised units and a constant field of one pixel shifts the image by exactly one
  pixel (``out[..., j] = in[..., j + 1]``). Outside the image the value is zero.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .utils import (
    ParameterError,
    check_bool,
    check_choice,
    check_generator,
    check_images,
    check_int,
    check_number,
    resolve_device,
)
from .transforms import Transform

__all__ = [
    "warp",
    "gaussian_filter",
    "image_gradient",
    "t_norm",
    "field_norm",
    "affine_field",
    "random_field",
    "RandomDeformation",
]


def _check_field(field) -> torch.Tensor:
    """A field (N, 2, H, W) as a contiguous float tensor: finite, two channels (dx, dy)."""
    return check_images("field", field, channels=2)


def warp(images: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """Deform ``images`` by ``field``: ``out(p) = images(p + field(p))`` (talk section 4.2).

    Parameters
    ----------
    images : torch.Tensor or numpy.ndarray
        Shape (N, C, H, W), floating point, finite.
    field : torch.Tensor or numpy.ndarray
        Shape (N, 2, H, W) (or (1, 2, H, W), shared by the batch), in pixels; channel 0
        moves along the columns (x), channel 1 along the rows (y).

    Returns
    -------
    torch.Tensor
        Shape (N, C, H, W), on the device and in the dtype of ``images``; bilinear sampling
        with ``align_corners=True`` (see the module docstring), zero outside the image.
        Differentiable in both arguments.
    """
    images = check_images("images", images)
    field = _check_field(field)
    if field.shape[2:] != images.shape[2:] or field.shape[0] not in (1, len(images)):
        raise ParameterError(
            f"field shape {tuple(field.shape)} does not match images shape {tuple(images.shape)}"
        )
    return _warp(images, field)


def _warp(images: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """:func:`warp` of checked images and a checked field of matching shape (no checks: the library's
    own callers)."""
    n, _, h, w = images.shape
    field = field.to(device=images.device, dtype=images.dtype).expand(n, -1, -1, -1)
    ys = torch.arange(h, device=images.device, dtype=images.dtype)
    xs = torch.arange(w, device=images.device, dtype=images.dtype)
    # sample positions in pixels, then to [-1, 1] with pixel centres at the ends
    px = xs.view(1, 1, w) + field[:, 0]
    py = ys.view(1, h, 1) + field[:, 1]
    gx = 2.0 * px / max(w - 1, 1) - 1.0
    gy = 2.0 * py / max(h - 1, 1) - 1.0
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def _filter_matrix(
    n: int, sigma: float, power: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """The 1-D filter of :func:`gaussian_filter` on ``n`` pixels as an (n, n) matrix, to the ``power``.

    Row ``i`` holds the kernel centred on pixel ``i`` (truncated at 4 sigma, normalised to sum
    1), cut at the border: multiplying by it is the convolution with zero padding. The
    matrix is symmetric, so the filter is a symmetric operator.
    """
    radius = max(1, int(4.0 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    offset = torch.arange(n)[None, :] - torch.arange(n)[:, None]
    m = torch.where(offset.abs() <= radius, k[(offset + radius).clamp(0, 2 * radius)], 0.0)
    return torch.linalg.matrix_power(m, power).to(device=device, dtype=dtype)


def gaussian_filter(t: torch.Tensor, sigma: float, power: int = 1) -> torch.Tensor:
    """Smooth the last two dimensions of ``t`` with a Gaussian of width ``sigma`` pixels.

    The filter :math:`S` of ADef (Alaifari et al. 2019, section 3) and of the smoothed
    random fields of talk section 4.2. Separable: ``S t = K_H t K_W`` with ``K_n`` the 1-D
    Gaussian kernel as an (n, n) matrix, truncated at 4 sigma and normalised to sum 1, with
    zero padding (the image and the field are zero outside the grid, as in :func:`warp`;
    it also makes ``K_n`` symmetric, so ``S`` is a symmetric linear operator,
    ``<S u, v> = <u, S v>``). The matrix form equals the two 1-D convolutions and is much
    faster on the CPU for digit-sized images (the run is in the README, "Numbers measured once").

    Parameters
    ----------
    t : torch.Tensor or numpy.ndarray
        Shape (N, C, H, W): images or fields, floating point, finite.
    sigma : float
        Standard deviation in pixels, >= 0; ``0`` returns ``t`` unchanged.
    power : int
        Apply the filter this many times, ``S^power t`` in one step (ADef needs ``S(S a)``).

    Returns
    -------
    torch.Tensor
        Shape (N, C, H, W), on the device and in the dtype of ``t``.
    """
    sigma = check_number("sigma", sigma, 0.0)
    power = check_int("power", power, 1)
    return _gaussian_filter(check_images("t", t), sigma, power)


def _gaussian_filter(t: torch.Tensor, sigma: float, power: int = 1) -> torch.Tensor:
    """:func:`gaussian_filter` of a checked batch ``t`` with checked ``sigma`` and ``power``."""
    if sigma == 0.0:
        return t
    h, w = t.shape[-2:]
    rows = _filter_matrix(h, sigma, power, t.dtype, t.device)
    cols = rows if w == h else _filter_matrix(w, sigma, power, t.dtype, t.device)
    return rows @ t @ cols


def image_gradient(images: torch.Tensor) -> torch.Tensor:
    """Spatial gradient of ``images`` by central differences (ADef, Alaifari et al. 2019).

    Parameters
    ----------
    images : torch.Tensor or numpy.ndarray
        Shape (N, C, H, W), at least 2 x 2 pixels, floating point, finite.

    Returns
    -------
    torch.Tensor
        Shape (N, C, 2, H, W): ``[:, :, 0]`` is d/dx (along the columns), ``[:, :, 1]``
        d/dy (along the rows), per pixel. Central differences inside, one-sided
        differences on the border (:func:`torch.gradient`).
    """
    return _image_gradient(check_images("images", images, min_size=2))


def _image_gradient(images: torch.Tensor) -> torch.Tensor:
    """:func:`image_gradient` of checked images, at least 2 x 2 pixels."""
    dy, dx = torch.gradient(images, dim=(-2, -1))
    return torch.stack((dx, dy), dim=2)


def t_norm(field: torch.Tensor) -> torch.Tensor:
    """The T-norm of ADef, :math:`\\|\\tau\\|_T = \\max_p |\\tau(p)|_2`, per sample.

    Parameters
    ----------
    field : torch.Tensor or numpy.ndarray
        Shape (N, 2, H, W), finite.

    Returns
    -------
    torch.Tensor
        Shape (N,), in pixels.
    """
    return _field_norm(_check_field(field), "max")


def field_norm(field: torch.Tensor, norm: str = "max") -> torch.Tensor:
    """Size of each field: ``"max"`` is :func:`t_norm`, ``"rms"`` the root mean square
    of :math:`|\\tau(p)|_2` over the pixels.

    Parameters
    ----------
    field : torch.Tensor, shape (N, 2, H, W)
        The fields, in pixels.
    norm : str
        ``"max"`` or ``"rms"``.

    Returns
    -------
    torch.Tensor, shape (N,)
        The size of each field, in pixels.
    """
    check_choice("norm", norm, ("max", "rms"))
    return _field_norm(_check_field(field), norm)


def _field_norm(field: torch.Tensor, norm: str) -> torch.Tensor:
    """:func:`field_norm` of a checked field, ``norm`` "max" or "rms"."""
    if norm == "max":
        return field.pow(2).sum(1).sqrt().flatten(1).amax(1)
    return field.pow(2).sum(1).flatten(1).mean(1).sqrt()


def affine_field(
    h: int,
    w: int,
    angle: float = 0.0,
    scale: float = 1.0,
    shift: tuple[float, float] = (0.0, 0.0),
    device: str | torch.device | None = "cpu",
) -> torch.Tensor:
    """The field that rotates by ``angle`` (degrees, counter-clockwise on screen), scales by
    ``scale`` about the image centre and then shifts by ``shift = (dx, dy)`` pixels.

    :func:`warp` samples the input at ``p + tau(p)``, so the field holds the *inverse*
    map: ``p + tau(p) = A^{-1} (p - c - shift) + c`` with ``A`` the rotation-scaling and
    ``c`` the centre.

    Parameters
    ----------
    h, w : int
        The image's height and width in pixels.
    angle : float
        Rotation in degrees, counter-clockwise on screen.
    scale : float
        Zoom about the centre (> 0).
    shift : tuple of float
        ``(dx, dy)`` in pixels, applied after the rotation and scaling.
    device : str or torch.device or None
        Where the field lives (:func:`warp` moves it to the images' device); ``None``
        or ``"auto"``: the best device present (:func:`~infoclust.utils.resolve_device`).

    Returns
    -------
    torch.Tensor, shape (1, 2, h, w)
        The field in pixels (x then y), float32.
    """
    h = check_int("h", h, 1)
    w = check_int("w", w, 1)
    angle = check_number("angle", angle)
    scale = check_number("scale", scale, 0.0, strict_low=True)
    if not isinstance(shift, (tuple, list)) or len(shift) != 2:
        raise ParameterError(f"shift={shift!r} must be a pair (dx, dy) of pixels")
    dx, dy = (check_number("shift", s) for s in shift)
    dev = resolve_device(device)
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    u = xs - (w - 1) / 2 - dx
    v = ys - (h - 1) / 2 - dy
    # rows grow downwards, so a counter-clockwise rotation on screen is clockwise in (x, y)
    t = math.radians(angle)
    src_x = (math.cos(t) * u - math.sin(t) * v) / scale + (w - 1) / 2
    src_y = (math.sin(t) * u + math.cos(t) * v) / scale + (h - 1) / 2
    field = torch.stack((src_x - xs, src_y - ys))[None]
    return field.to(device=dev, dtype=torch.float32)


def random_field(
    n: int,
    h: int,
    w: int,
    magnitude: float | torch.Tensor,
    sigma: float = 0.0,
    norm: str = "max",
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Random vector fields for a batch, one independent field per sample.

    Each field starts as i.i.d. standard normal vectors per pixel, is smoothed by
    :func:`gaussian_filter` of width ``sigma`` (talk section 4.2: "with and without
    smoothing ... Gaussian filters over the vector field"), then rescaled so that its
    ``norm`` equals ``magnitude`` exactly.

    Parameters
    ----------
    n, h, w : int
        Batch size and grid size.
    magnitude : float or torch.Tensor
        Size of each field in pixels (>= 0); a tensor of shape (n,) gives one per sample.
    sigma : float
        Smoothing width in pixels (0: i.i.d. per pixel).
    norm : {"max", "rms"}
        ``"max"``: the T-norm :math:`\\max_p |\\tau(p)|`; ``"rms"``: root mean square.
    generator : torch.Generator or None
        Source of randomness (None: torch's global generator); the noise is drawn on the
        generator's device and moved, so a CPU generator gives the same fields on every
        device.
    device : str or torch.device, optional
        Where the result lives; ``None`` or ``"auto"``: the best device present
        (:func:`~infoclust.utils.resolve_device`).

    Returns
    -------
    torch.Tensor
        Shape (n, 2, h, w), float32.
    """
    n = check_int("n", n, 1)
    h = check_int("h", h, 1)
    w = check_int("w", w, 1)
    sigma = check_number("sigma", sigma, 0.0)
    check_choice("norm", norm, ("max", "rms"))
    generator = check_generator("generator", generator)
    dev = resolve_device(device)
    if torch.is_tensor(magnitude):
        mag = magnitude.detach().to(device=dev, dtype=torch.float32).reshape(-1)
        if mag.numel() not in (1, n) or not torch.isfinite(mag).all() or (mag < 0).any():
            raise ParameterError(
                f"magnitude must hold 1 or n={n} finite values >= 0, got shape {tuple(magnitude.shape)}"
            )
    else:
        mag = torch.tensor([check_number("magnitude", magnitude, 0.0)], device=dev)
    gen_dev = generator.device if generator is not None else dev
    noise = torch.randn(n, 2, h, w, generator=generator, device=gen_dev).to(dev)
    field = _gaussian_filter(noise, sigma)
    size = _field_norm(field, norm).clamp_min(torch.finfo(field.dtype).tiny)
    return field * (mag / size).view(-1, 1, 1, 1)


class RandomDeformation(Transform):
    """The transformation g of IIC (talk eq. (4)) as a random deformation (talk 4.2).

    ``g(x) = warp(x, tau)`` with a fresh :func:`random_field` per sample (or, with the options
    below, integer fields and one field per batch). Use it wherever a batch-to-batch callable
    is expected, e.g. the IIC trainer. The fields are drawn from the transformation's own CPU
    generator and moved to the batch's device, so a seed gives the same deformations on
    every device; the global random state is never touched.

    Parameters
    ----------
    magnitude : float or (float, float)
        Size of each field in pixels (``norm``); a pair ``(low, high)`` draws it
        uniformly per sample.
    sigma : float
        Smoothing width of the field in pixels.
    norm : {"max", "rms"}
        How the size is measured (see :func:`random_field`); not used with ``integer=True``.
    integer : bool
        Draw each component of the field as an integer uniformly in
        ``[-magnitude, magnitude]`` pixels, independently per pixel, then smooth it with
        ``sigma``, without rescaling: the smoothing (weights summing to at most 1) keeps
        every component within ``magnitude``. ``magnitude`` must then be a whole number.
    unit : float
        With ``integer=True``, the size in pixels of one integer step (> 0): the field is
        ``unit`` times the integers drawn, so a field stated in the pixels of other images
        (the talk's, on 28 px digits) applies to these after a resize by ``unit``.
    per_batch : bool
        One field (and one magnitude) for the whole batch instead of one per image.
    seed : int
        Seed of the transformation's generator, in [0, 2**32 - 1].

    Notes
    -----
    The talk's random deformation (issue 21, "as the talk ran it") was described by its
    summary as an integer displacement field in [-4, 4] px, one per batch, smoothed with a
    Gaussian of sigma 2: ``RandomDeformation(4, sigma=2.0, integer=True, per_batch=True)``
    on 28 px digits; on digits resized by a factor ``s``, ``unit=s`` and ``sigma=2 * s``.
    The function committed for it returns nothing, so this follows the summary's
    description, not that code (``../shared/references.md``, "The talk's own results");
    the smoothing here pads the field with zeros at the border (:func:`gaussian_filter`).

    Examples
    --------
    >>> g = RandomDeformation(magnitude=2.0, sigma=3.0, seed=0)
    >>> gx = g(torch.rand(8, 1, 28, 28))
    """

    def __init__(
        self,
        magnitude: float | tuple[float, float],
        sigma: float = 0.0,
        norm: str = "max",
        *,
        integer: bool = False,
        per_batch: bool = False,
        unit: float = 1.0,
        seed: int = 0,
    ) -> None:
        if isinstance(magnitude, (tuple, list)):
            if len(magnitude) != 2:
                raise ParameterError(f"magnitude={magnitude!r} must be a number or a pair (low, high)")
            low = check_number("magnitude[0]", magnitude[0], 0.0)
            high = check_number("magnitude[1]", magnitude[1], low)
            self.magnitude: float | tuple[float, float] = (low, high)
        else:
            self.magnitude = check_number("magnitude", magnitude, 0.0)
        self.sigma = check_number("sigma", sigma, 0.0)
        self.norm = check_choice("norm", norm, ("max", "rms"))
        self.integer = check_bool("integer", integer)
        self.per_batch = check_bool("per_batch", per_batch)
        self.unit = check_number("unit", unit, 0.0, strict_low=True)
        if self.unit != 1.0 and not self.integer:
            raise ParameterError(f"unit={unit!r} is used only with integer=True: leave it at 1")
        if self.integer and (isinstance(self.magnitude, tuple) or not float(self.magnitude).is_integer()):
            raise ParameterError(
                f"magnitude={magnitude!r} must be a whole number of pixels with integer=True "
                "(the field's values are drawn from -magnitude .. magnitude)"
            )
        if self.integer and self.norm != "max":
            raise ParameterError(f"norm={norm!r} is not used with integer=True: leave it at 'max'")
        self._seed(seed)

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        m = 1 if self.per_batch else n
        if self.integer:
            field = _integer_field(m, h, w, int(self.magnitude), self.sigma, self.generator, x)
            return _warp(x, field if self.unit == 1.0 else self.unit * field)
        if isinstance(self.magnitude, tuple):
            low, high = self.magnitude
            u = torch.rand(m, generator=self.generator).to(x.device)
            mag: float | torch.Tensor = low + (high - low) * u
        else:
            mag = self.magnitude
        field = random_field(m, h, w, mag, self.sigma, self.norm, self.generator, x.device)
        return _warp(x, field.to(x.dtype))


def _integer_field(
    n: int, h: int, w: int, magnitude: int, sigma: float, generator: torch.Generator, like: torch.Tensor
) -> torch.Tensor:
    """``n`` fields (n, 2, h, w) of integers drawn uniformly in ``[-magnitude, magnitude]`` per pixel
    and component by ``generator`` (on the CPU), smoothed by :func:`gaussian_filter` of width
    ``sigma``; on the device and in the dtype of ``like``."""
    field = torch.randint(-magnitude, magnitude + 1, (n, 2, h, w), generator=generator)
    return _gaussian_filter(field.to(device=like.device, dtype=like.dtype), sigma)
