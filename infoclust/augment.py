"""Batched random image transformations g, computed on the batch's own device.

IIC maximises I(E(x); E(g x)) (talk, eq. 4), where g is a random perturbation that keeps
the class of x. The trainer in :mod:`infoclust.iic` accepts any callable that maps a batch
(N, C, H, W) to a perturbed batch of the same shape on the same device; this module ships
the paper's MNIST g as :class:`MNISTTransform`, with per-sample random parameters drawn in
one call and applied with a single ``affine_grid``/``grid_sample`` (no per-image loop).

Random parameters are drawn on the CPU (from :class:`MNISTTransform`'s own generator, or
the ``generator`` given to :func:`colour_jitter`) and then moved to the batch's device, so
that a seed gives the same perturbations on every device.

Coordinates follow :func:`torch.nn.functional.affine_grid` with ``align_corners=False``:
the image spans [-1, 1] on both axes, pixel centres at (2i + 1)/W - 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .transforms import Transform
from .utils import (
    ParameterError,
    check_choice,
    check_generator,
    check_images,
    check_int,
    check_number,
)

__all__ = ["crop_resize", "random_affine", "colour_jitter", "MNISTTransform", "CIFARTransform"]


def crop_resize(x: torch.Tensor, crop: int, size: int) -> torch.Tensor:
    """Centre crop ``crop`` x ``crop`` pixels out of each image and resize it to ``size``.

    The paper's evaluation view of MNIST: the centre 20 px of the 28 px digit, resized to
    24 px (IIC paper, supplementary material, MNIST settings).

    Parameters
    ----------
    x : torch.Tensor
        Images (N, C, H, W) with H, W >= ``crop``.
    crop, size : int
        Crop side and output side, in pixels.

    Returns
    -------
    torch.Tensor
        (N, C, size, size), bilinear resampling, on ``x.device``.
    """
    x = check_images("x", x)
    crop = check_int("crop", crop, 1, min(x.shape[-2:]))
    size = check_int("size", size, 1)
    top, left = (x.shape[-2] - crop) // 2, (x.shape[-1] - crop) // 2
    out = x[..., top : top + crop, left : left + crop]
    return F.interpolate(out, size=(size, size), mode="bilinear", align_corners=False, antialias=crop > size)


def random_affine(
    x: torch.Tensor, angle: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor
) -> torch.Tensor:
    """Warp each image of ``x`` by its own rotation, zoom and translation.

    Output pixel p samples the input at ``R(angle) (scale * p) + shift`` (normalised
    coordinates); ``scale < 1`` zooms in (a crop smaller than the image, resized to the
    image size). Points outside the input read as 0.

    Parameters
    ----------
    x : torch.Tensor
        (N, C, H, W).
    angle : torch.Tensor
        (N,) rotation angles in radians.
    scale : torch.Tensor
        (N,) side of the sampled window relative to the image.
    shift : torch.Tensor
        (N, 2) centre of the sampled window, (x, y) in [-1, 1] units.

    Returns
    -------
    torch.Tensor
        The warped images, (N, C, H, W).
    """
    x = check_images("x", x)
    n = len(x)
    for name, value, shape in (("angle", angle, (n,)), ("scale", scale, (n,)), ("shift", shift, (n, 2))):
        if not torch.is_tensor(value) or tuple(value.shape) != shape:
            got = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
            raise ParameterError(f"{name} must be a tensor of shape {shape} (one per image of x), got {got}")
    return _affine(x, *(t.to(device=x.device) for t in (angle, scale, shift)))


def _affine(
    x: torch.Tensor, angle: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, padding: str = "zeros"
) -> torch.Tensor:
    """:func:`random_affine` on checked inputs (points outside read as ``padding``: grid_sample's mode)."""
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    ).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def _uniform(
    n: int, low: float, high: float, like: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """``n`` uniform draws in [low, high), drawn on the CPU and moved to ``like``'s device and dtype."""
    return torch.empty(n).uniform_(low, high, generator=generator).to(device=like.device, dtype=like.dtype)


def colour_jitter(
    x: torch.Tensor,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.125,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-image random brightness, contrast, saturation and hue, like torchvision's ColorJitter.

    Factors are drawn uniformly from [1 - b, 1 + b] (brightness, contrast, saturation) and
    the hue shift from [-hue, hue] turns of the colour wheel. Brightness scales the image,
    contrast blends it with its mean grey level, saturation with its grey image; the hue
    shift is a rotation of the chroma plane (YIQ). Saturation and hue leave greyscale
    images unchanged, as in torchvision. Values are clamped to [0, 1].

    With the grey level :math:`Y = 0.299 R + 0.587 G + 0.114 B` (the mean over channels for
    images without three), each step, clamped to [0, 1], is :math:`x \\leftarrow b x`, then
    :math:`x \\leftarrow c x + (1 - c) \\bar Y` with :math:`\\bar Y` the image's mean grey,
    then :math:`x \\leftarrow s x + (1 - s) Y`, then the rotation of YIQ's (I, Q) by
    :math:`2 \\pi h`.

    Parameters
    ----------
    x : torch.Tensor
        Images (N, C, H, W) in [0, 1].
    brightness, contrast, saturation : float
        The spread b of each factor, drawn from [1 - b, 1 + b]; in [0, 1].
    hue : float
        The spread of the hue shift h, drawn from [-hue, hue] turns; in [0, 0.5].
    generator : torch.Generator or None
        A CPU generator the factors are drawn from, whatever the device of ``x``; None:
        torch's global CPU generator.

    Returns
    -------
    torch.Tensor
        The jittered images, of the shape, dtype and device of ``x``.

    Raises
    ------
    TypeError
        For a ``generator`` that is not one, or images that are not floating point.
    ParameterError
        For images :func:`~infoclust.utils.check_images` refuses, or a spread out of its range.
    """
    generator = check_generator("generator", generator)
    x = check_images("x", x)
    for name, value, high in (
        ("brightness", brightness, 1),
        ("contrast", contrast, 1),
        ("saturation", saturation, 1),
        ("hue", hue, 0.5),
    ):
        check_number(name, value, 0, high)
    return _jitter(x, brightness, contrast, saturation, hue, generator)


def _jitter(
    x: torch.Tensor,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """:func:`colour_jitter` on checked inputs."""
    n = x.shape[0]
    per_image = (n,) + (1,) * (x.dim() - 1)
    out = x * _uniform(n, 1 - brightness, 1 + brightness, x, generator).view(per_image)
    out = out.clamp(0, 1)
    grey = (
        out.mean(1, keepdim=True)
        if x.shape[1] != 3
        else (0.299 * out[:, :1] + 0.587 * out[:, 1:2] + 0.114 * out[:, 2:3])
    )
    c = _uniform(n, 1 - contrast, 1 + contrast, x, generator).view(per_image)
    out = (c * out + (1 - c) * grey.mean((1, 2, 3), keepdim=True)).clamp(0, 1)
    if x.shape[1] == 3:
        grey = 0.299 * out[:, :1] + 0.587 * out[:, 1:2] + 0.114 * out[:, 2:3]
        s = _uniform(n, 1 - saturation, 1 + saturation, x, generator).view(per_image)
        out = (s * out + (1 - s) * grey).clamp(0, 1)
        out = _rotate_hue(out, _uniform(n, -hue, hue, x, generator) * 2 * math.pi)
    return out


_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def _rotate_hue(x: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    to_yiq = _RGB2YIQ.to(x.device, x.dtype)
    yiq = torch.einsum("ij,njhw->nihw", to_yiq, x)
    cos, sin = torch.cos(phi).view(-1, 1, 1), torch.sin(phi).view(-1, 1, 1)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], 1)
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(to_yiq), yiq).clamp(0, 1)


class MNISTTransform(Transform):
    """The paper's MNIST perturbation g, batch-wise with per-sample parameters.

    IIC paper, supplementary material: g(x) = rotation by up to 25 degrees with
    probability 0.5, a random crop of side 16, 20 or 24 px of the 28 px digit resized to
    the input size, and colour jitter (0.4, 0.4, 0.4, 0.125). The unperturbed view x is
    the centre 20 px resized to 24 px (:func:`crop_resize`), so a crop of side s is a
    window of relative side s/20 around a random centre inside the 28 px original, i.e.
    ``scales = (0.8, 1.0, 1.2)`` and ``extent = 28/20 = 1.4``. Rotation, crop and resize
    are composed into one affine map per image.

    Parameters
    ----------
    max_angle : float
        Largest rotation, in degrees.
    p_rotate : float
        Probability that an image is rotated.
    scales : tuple of float
        Window sides (relative to the input's field of view) to choose from uniformly.
    extent : float
        Side of the original image relative to the input's field of view; the window
        centre is drawn so that the window stays inside it.
    jitter : tuple of 4 floats
        Brightness, contrast, saturation, hue of :func:`colour_jitter`.
    p_flip : float
        Probability of a horizontal flip (0 for digits, as the paper; its colour images
        are flipped, :class:`CIFARTransform`). Drawn only when positive, so that the
        digits' draws do not depend on it.
    padding : {"zeros", "border"}
        What a window reads outside the image: black (digits on a black ground), or the
        nearest edge pixel (photographs, whose window reaches the edge's last half pixel).
    seed : int
        Seed of the transform's own CPU generator: every call draws fresh parameters from
        it (on the CPU, then moved to the batch's device), so a seed gives the same
        sequence of perturbations on every device and the global random state is untouched.

    Examples
    --------
    >>> g = MNISTTransform(seed=0)
    >>> x = torch.rand(8, 1, 24, 24)
    >>> g(x).shape
    torch.Size([8, 1, 24, 24])
    """

    def __init__(
        self,
        max_angle: float = 25.0,
        p_rotate: float = 0.5,
        scales: tuple[float, ...] = (0.8, 1.0, 1.2),
        extent: float = 1.4,
        jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.125),
        p_flip: float = 0.0,
        padding: str = "zeros",
        *,
        seed: int = 0,
    ) -> None:
        self.max_angle = check_number("max_angle", max_angle, 0, 180)
        self.p_flip = check_number("p_flip", p_flip, 0, 1)
        self.padding = check_choice("padding", padding, ("zeros", "border"))
        self.p_rotate = check_number("p_rotate", p_rotate, 0, 1)
        if not isinstance(scales, (tuple, list)) or not scales:
            raise ParameterError(f"scales={scales!r} must be a non-empty tuple of window sides")
        self.scales = tuple(check_number("scales", s, 0, strict_low=True) for s in scales)
        self.extent = check_number("extent", extent, max(self.scales))
        if not isinstance(jitter, (tuple, list)) or len(jitter) != 4:
            raise ParameterError(f"jitter={jitter!r} must hold 4 numbers")
        self.jitter = tuple(check_number("jitter", j, 0, 1) for j in jitter)
        check_number("jitter", self.jitter[3], 0, 0.5)  # the hue shift, in turns
        self._seed(seed)

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        n, gen = x.shape[0], self.generator
        angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(self.max_angle)
        angle = angle * (torch.rand(n, generator=gen) < self.p_rotate)
        scale = torch.tensor(self.scales)[torch.randint(len(self.scales), (n,), generator=gen)]
        shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * (self.extent - scale).unsqueeze(1)
        angle, scale, shift = (t.to(device=x.device, dtype=x.dtype) for t in (angle, scale, shift))
        out = _jitter(_affine(x, angle, scale, shift, self.padding), *self.jitter, gen)
        if self.p_flip > 0:
            flip = (torch.rand(n, generator=gen) < self.p_flip).to(x.device).view(-1, 1, 1, 1)
            out = torch.where(flip, out.flip(-1), out)
        return out


class CIFARTransform(MNISTTransform):
    """The paper's g for CIFAR-10, batch-wise: a random crop, a horizontal flip, colour jitter.

    IIC paper's CIFAR-10 recipe (its commands, model 640, and its transforms): a random crop of
    20 px of the 32 px image resized to the input size, a horizontal flip with probability
    0.5, colour jitter (0.4, 0.4, 0.4, 0.125); the network sees the Sobel gradients of the
    grey result (:class:`~infoclust.iic.SobelInput`, ``IIC(sobel=True)``). A departure: the
    paper's x is itself a 20 px crop (random in training, central for evaluation); here x is
    the whole image (``crop_resize(x, 32, 32)``), so g's window has the relative side
    ``20 / 32`` and lies inside the image (``extent`` 1; the edge's last half pixel repeats
    it, ``padding="border"``). The parameters are :class:`MNISTTransform`'s with these
    defaults.

    Parameters
    ----------
    max_angle, p_rotate, scales, extent, jitter, p_flip, padding, seed
        As in :class:`MNISTTransform`; the defaults are the paper's CIFAR-10 g (no rotation,
        one window of side 20/32, flips with probability 0.5, the edge repeated).

    Examples
    --------
    >>> g = CIFARTransform(seed=0)
    >>> g(torch.rand(4, 3, 32, 32)).shape
    torch.Size([4, 3, 32, 32])
    """

    def __init__(
        self,
        max_angle: float = 0.0,
        p_rotate: float = 0.0,
        scales: tuple[float, ...] = (20 / 32,),
        extent: float = 1.0,
        jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.125),
        p_flip: float = 0.5,
        padding: str = "border",
        *,
        seed: int = 0,
    ) -> None:
        super().__init__(max_angle, p_rotate, scales, extent, jitter, p_flip, padding, seed=seed)
