"""Exact projection onto the Wasserstein ball and the Frank-Wolfe oracle (Wu, Wang and Yu 2020).

Wu, Wang and Yu ("Stronger and Faster Wasserstein Adversarial Attacks", ICML 2020) write
the Wasserstein attack around an image ``x`` over transport plans instead of images
(their section 3): a plan :math:`\\Pi \\ge 0` with rows :math:`\\Pi 1 = x` moves the mass of
``x``, the image it makes is its column sums :math:`z = \\Pi^T 1`, and the ball is

.. math::

    \\mathcal{C}(x, \\varepsilon)
    = \\{\\Pi \\ge 0 : \\Pi 1 = x,\\; \\langle \\Pi, C\\rangle \\le \\varepsilon\\},

whose images are exactly the images within transport cost :math:`\\varepsilon` of ``x``.
As in :mod:`infoclust.projected_sinkhorn`, mass only moves inside a ``k x k`` window
around each pixel, within its channel, at cost :math:`C = (d_i^2 + d_j^2)^{p/2}`
(:func:`~infoclust.wasserstein.local_cost`), and ``eps`` is the cost per unit mass (the image's mass times
``eps`` is the budget). :class:`LocalPlan` stores such plans on the support of ``x`` only
(zero pixels send nothing), which on digits is a fifth of the pixels.

* :func:`project_plan` -- the exact Euclidean projection onto :math:`\\mathcal{C}`
  through its dual (the paper's section 4, "dual projection"): for a multiplier
  :math:`\\mu \\ge 0` of the cost constraint the minimiser is a projection of every row
  of :math:`V - \\mu C` onto the simplex of mass :math:`x_q`, and the dual is a concave
  function of the single scalar :math:`\\mu` per image, maximised by root finding;
* :func:`entropic_lmo` -- the paper's linear minimisation oracle for Frank-Wolfe
  (section 5), with entropic smoothing: every row is :math:`x_q` times a softmax, and
  again one scalar per image is found by root finding;
* the attacks built on them are in :mod:`infoclust.attacks`: PGD with the exact
  projection is :func:`~infoclust.attacks.wasserstein_pgd` with ``projection="exact"``,
  the Frank-Wolfe attack :func:`~infoclust.attacks.wasserstein_frank_wolfe`.

Where we depart from the paper and its code (``watml/fast-wasserstein-adversarial``):

* the scalar of the projection is found by a safeguarded Newton iteration on the
  piecewise-linear derivative of the dual (the paper bisects); it ends on the feasible
  side, so the returned plan's cost never exceeds the budget, and its rows sum to ``x``
  to rounding (float64 throughout);
* every image the classifier sees, and every returned image, is in the ball and in
  [0, 1]; the paper's code clips the image for the classifier and, for Frank-Wolfe, in
  its output, which can leave the ball (clipping removes mass: on MNIST Frank-Wolfe's
  first oracle plans pile up to 8 times a pixel's capacity on some pixels, and a clipped
  image that fools the classifier need not be in the ball). PGD projects onto the
  intersection of the ball and the box (:func:`project_plan_in_box`, Dykstra's
  alternating projections; the paper offers that projection as a post-processing).
  Frank-Wolfe's oracle does not see the box: its iterate is a plan of the ball, as the
  paper's, and the classifier sees the image of its projection onto the ball and the box,
  a few Dykstra steps started from the last iteration's box correction (a valid start of
  the same iterations, which then reach the projection instead of leaving most of the
  overflow to :func:`fit_in_box`).
  Sending the overflow back to its source instead (:func:`fit_in_box`, which only lowers
  the cost) spent about a third of the radius when applied to the oracle's plans, as we
  did first, and a fifth for the digits Frank-Wolfe then failed to fool when applied to
  the iterate, at the paper's MNIST settings;
* plans are stored on the support of ``x`` instead of on all pixels;
* the attacks follow Wong et al.'s protocol, as :func:`~infoclust.attacks.wasserstein_pgd`
  (the radius grows every few iterations, an image leaves the attack once fooled), so the
  three attacks compare on one schedule; the paper's code attacks at one fixed radius for
  300 iterations (MNIST: radius 0.5, 5 x 5 window, PGD step 0.1, ``gamma`` 1e-3).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import torch

from .utils import (
    ConvergenceWarning,
    ParameterError,
    check_finite,
    check_images,
    check_int,
    check_number,
)
from .wasserstein import local_cost

__all__ = [
    "LocalPlan",
    "project_plan",
    "entropic_lmo",
    "fit_in_box",
    "project_plan_in_box",
]


# ----------------------------------------------------------------------------------------
# Plans on the support of x
# ----------------------------------------------------------------------------------------


@dataclass
class LocalPlan:
    """Transport plans of a batch of images, stored on the support of the source images.

    Row ``r`` is a source pixel with mass (image ``image[r]``, flat pixel index ``source[r]``
    into the batch's ``N * C * H * W`` pixels); ``mass[r, o]`` is what it sends by window
    offset ``o`` to pixel ``target[r, o]``. Offsets that leave the image are not
    ``valid`` and carry nothing. Build one with :meth:`stay`.

    Attributes
    ----------
    mass : torch.Tensor
        (R, k*k) plan entries, float64.
    source, image : torch.Tensor
        (R,) flat source pixel and image index of every row (rows are grouped by image).
    target : torch.Tensor
        (R, k*k) flat target pixel of every entry (the source itself where not valid).
    valid : torch.Tensor
        (R, k*k) bool, the offset stays inside the image.
    cost : torch.Tensor
        (k*k,) the ground cost of each offset (:func:`~infoclust.wasserstein.local_cost`).
    shape : tuple
        (N, C, H, W) of the images.
    """

    mass: torch.Tensor
    source: torch.Tensor
    image: torch.Tensor
    target: torch.Tensor
    valid: torch.Tensor
    cost: torch.Tensor
    shape: tuple

    @classmethod
    def stay(cls, x: torch.Tensor, kernel_size: int = 5, p: float = 2.0) -> "LocalPlan":
        """The plan that leaves every pixel of ``x`` (N, C, H, W) in place (cost 0)."""
        x = check_images("x", x, nonnegative=True)
        k, (n, c, h, w) = check_int("kernel_size", kernel_size, 1), x.shape
        if k > 2 * max(h, w) - 1:  # wider windows add only offsets that leave the image (checked first:
            raise ParameterError(  # the window's costs alone would take k**2 numbers)
                f"kernel_size={k} is wider than the {h} x {w} images allow: at most {2 * max(h, w) - 1}"
            )
        cost = local_cost(k, p, torch.float64, x.device)
        flat = x.detach().double().flatten()
        source = flat.nonzero().flatten()
        pixel = source % (h * w)
        i, j = pixel // w, pixel % w
        d = torch.arange(k, device=x.device) - k // 2
        di, dj = d.repeat_interleave(k), d.repeat(k)  # row-major offsets
        ti, tj = i[:, None] + di, j[:, None] + dj
        valid = (ti >= 0) & (ti < h) & (tj >= 0) & (tj < w)
        target = torch.where(valid, source[:, None] + di * w + dj, source[:, None])
        mass = torch.zeros(len(source), k * k, dtype=torch.float64, device=x.device)
        mass[:, (k * k) // 2] = flat[source]
        return cls(mass, source, source // (c * h * w), target, valid, cost, (n, c, h, w))

    @property
    def n_images(self) -> int:
        return self.shape[0]

    def per_image(self, values: torch.Tensor) -> torch.Tensor:
        """Sum (R,) row values per image, (N,)."""
        return torch.zeros(self.n_images, dtype=values.dtype, device=values.device).index_add_(
            0, self.image, values
        )

    def per_image_max(self, values: torch.Tensor) -> torch.Tensor:
        """Largest of (R,) non-negative row values per image, (N,) (0 for an empty image)."""
        out = torch.zeros(self.n_images, dtype=values.dtype, device=values.device)
        return out.scatter_reduce_(0, self.image, values, "amax")

    def source_mass(self) -> torch.Tensor:
        """The mass each row sends, (R,): its row of ``x``."""
        return self.mass.sum(1)

    def images(self) -> torch.Tensor:
        """Column sums: the images the plans make, (N, C, H, W), float64."""
        out = self.mass.new_zeros(math.prod(self.shape))
        return out.index_add_(0, self.target.flatten(), self.mass.flatten()).view(self.shape)

    def transport_cost(self) -> torch.Tensor:
        """:math:`\\langle \\Pi, C\\rangle` per image, (N,)."""
        return self.per_image(self.mass @ self.cost)

    def gather(self, field: torch.Tensor) -> torch.Tensor:
        """``field[target]``: an image-shaped (N, C, H, W) tensor read at every entry's
        target, (R, k*k). The gradient of ``f(images())`` with respect to ``mass`` is
        ``gather(grad f)``."""
        return field.reshape(-1).double()[self.target]

    def select(self, images: torch.Tensor) -> "LocalPlan":
        """The plans of some images (a sorted index tensor), renumbered 0..len(images)-1."""
        n, c, h, w = self.shape
        rows = torch.isin(self.image, images).nonzero().flatten()
        new_index = torch.full((n,), -1, dtype=torch.long, device=images.device)
        new_index[images] = torch.arange(len(images), device=images.device)
        shift = (new_index[self.image[rows]] - self.image[rows]) * (c * h * w)
        return LocalPlan(
            self.mass[rows],
            self.source[rows] + shift,
            new_index[self.image[rows]],
            self.target[rows] + shift[:, None],
            self.valid[rows],
            self.cost,
            (len(images), c, h, w),
        )

    def rows_of(self, images: torch.Tensor) -> torch.Tensor:
        """Row indices of some images (in the order of :meth:`select`)."""
        return torch.isin(self.image, images).nonzero().flatten()


def _budget(plan: LocalPlan, eps) -> torch.Tensor:
    """The transport budget per image, ``eps`` times the image's mass, (N,) float64."""
    eps = torch.as_tensor(eps, dtype=torch.float64, device=plan.mass.device).flatten()
    if eps.numel() == 1:
        eps = eps.expand(plan.n_images)
    if eps.shape != (plan.n_images,) or not torch.isfinite(eps).all() or (eps < 0).any():
        raise ParameterError(
            f"eps must be a number or one value per image, finite and >= 0; got shape {tuple(eps.shape)}"
        )
    return eps * plan.per_image(plan.source_mass())


# ----------------------------------------------------------------------------------------
# The exact projection (Wu et al. 2020, section 4)
# ----------------------------------------------------------------------------------------


def _simplex_rows(u: torch.Tensor, total: torch.Tensor, valid: torch.Tensor):
    """Euclidean projection of every row of ``u`` onto ``{p >= 0, sum p = total}``, over the
    ``valid`` entries (the others get 0), by sorting (Held et al. 1974; Duchi et al. 2008).

    Returns the projection and the size of each row's support (its active set).
    """
    top = torch.where(valid, u, -torch.inf).amax(1, keepdim=True)
    # an invalid entry at top - total - 1 is below the threshold, so it gets exactly 0
    u = torch.where(valid, u, top - total[:, None] - 1.0)
    ranked = u.sort(1, descending=True).values
    csum = ranked.cumsum(1) - total[:, None]
    count = torch.arange(1, u.shape[1] + 1, dtype=u.dtype, device=u.device)
    support = (ranked * count > csum).sum(1, keepdim=True)  # rho: entries above theta
    theta = csum.gather(1, support - 1) / support
    return (u - theta).clamp_min_(0.0), support[:, 0]


def _find_multiplier(evaluate, budget: torch.Tensor, hi: torch.Tensor, max_iter: int, rtol: float, name: str):
    """The smallest multiplier :math:`\\mu \\ge 0` per image whose plan costs at most ``budget``.

    ``evaluate(mu)`` returns ``(mass, cost, slope)``: the plan at ``mu`` (R, k*k), its cost
    per image and the derivative of that cost in ``mu`` (<= 0; the cost is non-increasing).
    ``hi`` must be feasible. Where the plan at 0 is feasible the answer is 0; elsewhere
    Newton steps on ``cost(mu) = budget`` inside the bracket ``[lo, hi]`` (``lo`` infeasible,
    ``hi`` feasible), bisecting when a step would leave it, until the cost at ``hi`` is
    within ``rtol`` of the budget. Returns the plan at the final ``hi`` (feasible).
    """
    zero = torch.zeros_like(budget)
    mass, cost, slope = evaluate(zero)
    need = cost > budget
    if not bool(need.any()):
        return mass
    lo, mu, todo = zero.clone(), zero.clone(), need.clone()
    for _ in range(max_iter):
        newton = mu - (cost - budget) / slope.clamp_max(-1e-300)
        step = (slope < 0) & (newton > lo) & (newton < hi)
        mu = torch.where(todo, torch.where(step, newton, 0.5 * (lo + hi)), mu)
        _, cost, slope = evaluate(mu)
        above = cost > budget
        lo = torch.where(todo & above, mu, lo)
        hi = torch.where(todo & ~above, mu, hi)
        todo = todo & (above | (cost < budget * (1 - rtol))) & (hi - lo > 1e-15 * hi)
        if not bool(todo.any()):
            break
    if bool(todo.any()):
        warnings.warn(
            f"{name}: the multiplier of {int(todo.sum())} of {len(budget)} images was not found in "
            f"max_iter={max_iter} steps (their plans are feasible but not yet optimal)",
            ConvergenceWarning,
            stacklevel=3,
        )
    return evaluate(torch.where(need, hi, zero))[0]


def _cost_and_slope(plan: LocalPlan, mass: torch.Tensor, d_mass: torch.Tensor):
    """Cost per image of ``mass`` and its derivative along ``d_mass`` (both (R, k*k))."""
    return plan.per_image(mass @ plan.cost), plan.per_image(d_mass @ plan.cost)


def _check_plan_values(name: str, values: torch.Tensor, total: torch.Tensor) -> None:
    """``values`` (R, k*k) finite, and small enough that sums with each row's mass keep it.

    The simplex projection of a row sums its entries with the row's mass ``x_q``; entries
    beyond ``2**45`` times that mass (e.g. 1e300 beside 0.5) swallow it in rounding.
    """
    check_finite(name, values)
    too_large = values.abs().amax(1) * 2.0**-45 > total if values.numel() else total < 0
    if bool(too_large.any()):
        row = int(too_large.nonzero()[0, 0])
        raise ParameterError(
            f"{name} holds entries up to {float(values[row].abs().max()):.3g} in the row of a pixel of "
            f"mass {float(total[row]):.3g}: too large beside it (rounding would swallow the mass); "
            f"rescale {name}"
        )


def project_plan(
    plan: LocalPlan, values: torch.Tensor, eps, *, max_iter: int = 60, rtol: float = 1e-9
) -> LocalPlan:
    """Exact Euclidean projection of ``values`` onto the plans of the ball (Wu et al. 2020).

    Solves, for every image,

    .. math::

        \\min_{\\Pi} \\tfrac12 \\|\\Pi - V\\|_F^2 \\quad\\text{s.t.}\\quad \\Pi \\ge 0,\\;
        \\Pi 1 = x,\\; \\langle \\Pi, C\\rangle \\le \\varepsilon\\, m

    (``m`` the mass of ``x``) through the Lagrangian dual of the cost constraint (the
    paper's "dual projection", section 4): for a multiplier :math:`\\mu \\ge 0` the
    minimiser :math:`\\Pi(\\mu)` projects every row of :math:`V - \\mu C` onto the simplex
    :math:`\\{\\pi \\ge 0, \\sum \\pi = x_q\\}` (by sorting), and the dual
    :math:`q(\\mu) = \\tfrac12\\|\\Pi(\\mu) - V\\|^2 + \\mu(\\langle \\Pi(\\mu), C\\rangle - \\varepsilon m)`
    is concave with :math:`q'(\\mu) = \\langle \\Pi(\\mu), C\\rangle - \\varepsilon m`, continuous,
    piecewise linear and non-increasing. If :math:`q'(0) \\le 0` the answer is
    :math:`\\Pi(0)`; otherwise :math:`\\Pi(\\mu^\\star)` with :math:`q'(\\mu^\\star) = 0`.

    We find :math:`\\mu^\\star` by Newton's method on :math:`q'` inside a bracket (the paper
    bisects): on the active sets :math:`A_q` of the rows, :math:`\\Pi = V - \\mu C - \\theta_q`,
    so the slope of the cost is :math:`-\\sum_q (\\sum_{A_q} C^2 - (\\sum_{A_q} C)^2/|A_q|)`
    and a step is exact once it lands on the root's linear piece; steps leaving the bracket
    bisect instead. The bracket's upper end starts at :math:`2\\|V\\|_\\infty + \\|x\\|_\\infty`,
    where only the zero-cost offset is active, and always satisfies the constraint; the
    result is taken there, so its cost never exceeds the budget, and the search stops when
    that cost is within ``rtol`` of the budget (relative).

    Parameters
    ----------
    plan : LocalPlan
        Gives ``x`` (its row sums), the window and the cost; its masses are not used.
    values : torch.Tensor
        (R, k*k) the point :math:`V` to project, in the layout of ``plan.mass``.
    eps : float or torch.Tensor
        Radius per image (number or (N,)), transport cost per unit mass.
    max_iter : int
        Most Newton or bisection steps.
    rtol : float
        Relative tolerance on the cost at the budget.

    Returns
    -------
    LocalPlan
        The projection (``plan`` with new masses), float64.

    Warns
    -----
    ConvergenceWarning
        If some image's multiplier is not found within ``max_iter`` steps (its plan is
        still feasible, but not exactly the projection).
    """
    max_iter = check_int("max_iter", max_iter, 1)
    rtol = check_number("rtol", rtol, 0.0, strict_low=True)
    values = values.double()
    if values.shape != plan.mass.shape:
        raise ParameterError(
            f"values must have the plan's shape {tuple(plan.mass.shape)}, got {tuple(values.shape)}"
        )
    total = plan.source_mass()
    _check_plan_values("values", values, total)
    budget = _budget(plan, eps)

    def evaluate(mu):
        mass, _ = _simplex_rows(values - mu[plan.image, None] * plan.cost, total, plan.valid)
        active = (mass > 0).double()
        count = active.sum(1, keepdim=True).clamp_min(1.0)
        # d mass / d mu on the active set: -C + mean of C over the active set
        d_mass = active * (plan.cost - (active * plan.cost).sum(1, keepdim=True) / count)
        return (mass, *_cost_and_slope(plan, mass, -d_mass))

    hi = plan.per_image_max(torch.where(plan.valid, values.abs(), 0.0).amax(1) * 2 + total)
    return replace(plan, mass=_find_multiplier(evaluate, budget, hi, max_iter, rtol, "project_plan"))


def entropic_lmo(
    plan: LocalPlan,
    direction: torch.Tensor,
    eps,
    gamma: float = 1e-3,
    *,
    max_iter: int = 60,
    rtol: float = 1e-9,
) -> LocalPlan:
    """The linear maximisation oracle of the ball with entropic smoothing (Wu et al. 2020, section 5).

    Solves, for every image,

    .. math::

        \\max_{\\Pi} \\langle \\Pi, G\\rangle - \\gamma \\sum \\Pi \\log \\Pi \\quad\\text{s.t.}\\quad
        \\Pi \\ge 0,\\; \\Pi 1 = x,\\; \\langle \\Pi, C\\rangle \\le \\varepsilon\\, m,

    the oracle of Frank-Wolfe (``gamma -> 0`` gives the plain linear oracle, a vertex).
    For a multiplier :math:`\\mu \\ge 0` of the cost constraint every row is
    :math:`\\Pi_q = x_q\\, \\mathrm{softmax}((G_q - \\mu C)/\\gamma)` over the window; its cost
    decreases in :math:`\\mu` with slope :math:`-\\tfrac1\\gamma \\sum_q x_q \\mathrm{Var}_q(C)`,
    and the smallest :math:`\\mu` whose plan is within budget is found as in
    :func:`project_plan` (Newton in a bracket; the paper bisects). The bracket starts at
    :math:`2\\|G\\|_\\infty + \\gamma \\log(m\\, C_{max} (k^2 - 1) / (\\varepsilon m))`, where the
    plan is within budget; the result never exceeds the budget.

    Parameters
    ----------
    plan : LocalPlan
        Gives ``x``, the window and the cost.
    direction : torch.Tensor
        (R, k*k) the linear objective :math:`G` (an ascent direction of the attack's loss).
    eps : float or torch.Tensor
        Radius per image, transport cost per unit mass.
    gamma : float
        Entropic smoothing (> 0), in the units of ``direction`` (the paper: 1e-3 with ``G``
        divided by its largest entry).
    max_iter, rtol
        As in :func:`project_plan`.

    Returns
    -------
    LocalPlan
        The maximiser (``plan`` with new masses), float64.
    """
    gamma = check_number("gamma", gamma, 0.0, strict_low=True)
    max_iter = check_int("max_iter", max_iter, 1)
    rtol = check_number("rtol", rtol, 0.0, strict_low=True)
    direction = direction.double()
    if direction.shape != plan.mass.shape:
        raise ParameterError(
            f"direction must have the plan's shape {tuple(plan.mass.shape)}, got {tuple(direction.shape)}"
        )
    total = plan.source_mass()
    _check_plan_values("direction", direction, total)
    budget = _budget(plan, eps)
    cost = plan.cost

    def evaluate(mu):
        logits = torch.where(plan.valid, (direction - mu[plan.image, None] * cost) / gamma, -torch.inf)
        weights = torch.softmax(logits, 1)
        mass = total[:, None] * weights
        mean = (weights * cost).sum(1, keepdim=True)
        d_mass = mass * (cost - mean) / gamma  # minus the derivative of mass in mu
        return (mass, *_cost_and_slope(plan, mass, -d_mass))

    mass_all = plan.per_image(total)
    top = plan.per_image_max(torch.where(plan.valid, direction.abs(), 0.0).amax(1))
    spread = (mass_all * float(cost.max()) * (len(cost) - 1)).clamp_min(1e-300)
    hi = 2 * top + gamma * torch.log(spread / budget.clamp_min(1e-300)).clamp_min(0.0) + 1.0
    return replace(plan, mass=_find_multiplier(evaluate, budget, hi, max_iter, rtol, "entropic_lmo"))


def _check_upper(plan: LocalPlan, upper, name: str) -> float:
    """``upper`` as a positive float, at least the brightest pixel of ``x`` (the plan's row
    sums, which equal ``x`` to rounding): no plan of ``x`` fits a lower box."""
    upper = check_number("upper", upper, 0.0, strict_low=True)
    brightest = float(plan.source_mass().max()) if len(plan.mass) else 0.0
    if brightest > upper * (1 + 1e-9):
        raise ParameterError(
            f"upper={upper} is below the brightest pixel of x ({brightest:.6g}): {name} needs x <= upper"
        )
    return upper


def fit_in_box(plan: LocalPlan, upper: float = 1.0, max_passes: int = 100) -> LocalPlan:
    """Keep the images of ``plan`` at most ``upper`` by sending excess mass back home.

    Where a pixel receives more than ``upper - (its own mass that stays)``, every transfer
    into it from another pixel is scaled down by the same factor and the rest stays at its
    source. Staying costs nothing, so the plan only gets cheaper: a plan in the ball stays
    in the ball, its rows still sum to ``x``. A source may overflow in turn; the passes
    repeat (at most ``max_passes``; mass sent home can bounce between full pixels, its
    excess halving about every two passes: a Frank-Wolfe plan of an MNIST digit needed 37,
    and with 20 it kept 2e-7 above 1, so the mixing below moved nothing), and whatever
    still overflows is mixed with the plan
    that leaves every pixel in place, :math:`t\\Pi + (1 - t)\\,\\mathrm{diag}(x)`, with the
    largest ``t`` that fits. A pixel counts as above ``upper`` only beyond ``upper (1 + 1e-12)``:
    a pixel of ``x`` at ``upper`` that gets a rounding error back would otherwise force
    ``t = 0``, the plan that moves nothing. Our addition: the paper's code clips the images instead, which
    can leave the ball.

    Parameters
    ----------
    plan : LocalPlan
        A transport plan of images ``x`` with ``x <= upper``.
    upper : float
        The largest pixel value allowed in the images the plan makes.
    max_passes : int
        The most rescaling passes before the final mixing (they stop once nothing overflows).

    Returns
    -------
    LocalPlan
        A plan of the same ``x``, no costlier, whose images are at most ``upper``.

    Raises
    ------
    ParameterError
        When ``upper`` is not positive or is below the brightest pixel of ``x``: no plan of
        ``x`` fits that box.
    """
    upper = _check_upper(plan, upper, "fit_in_box")
    limit = upper * (1 + 1e-12)  # rounding: a pixel of x at upper that gets 1e-16 back fits
    center = plan.mass.shape[1] // 2
    mass = plan.mass.clone()
    for _ in range(max_passes):
        z = replace(plan, mass=mass).images().flatten()
        over = z > limit
        if not bool(over.any()):
            return replace(plan, mass=mass)
        stay = torch.zeros_like(z).index_add_(0, plan.source, mass[:, center])
        keep = torch.where(over, ((upper - stay) / (z - stay).clamp_min(1e-300)).clamp(0.0, 1.0), 1.0)
        factor = keep[plan.target]
        factor[:, center] = 1.0
        back = (mass * (1 - factor)).sum(1)
        mass = mass * factor
        mass[:, center] += back
    x = plan.source_mass()
    z = replace(plan, mass=mass).images().flatten()
    x_image = torch.zeros_like(z).index_add_(0, plan.source, x)
    room = torch.where(z > limit, (upper - x_image) / (z - x_image).clamp_min(1e-300), 1.0).clamp(0.0, 1.0)
    per_image = room.view(plan.n_images, -1).amin(1)[plan.image, None]
    mixed = per_image * mass
    mixed[:, center] += (1 - per_image[:, 0]) * x
    return replace(plan, mass=mixed)


def _cap_columns(plan: LocalPlan, values: torch.Tensor, upper: float) -> torch.Tensor:
    """Euclidean projection of ``values`` (R, k*k) onto the plans whose images are at most
    ``upper``: one half-space :math:`\\sum_{e \\to t} \\Pi_e \\le` ``upper`` per target pixel
    ``t`` over the valid entries sending to it. The half-spaces share no entry, so each is
    projected on its own: an over-full pixel loses its excess in equal shares from every
    entry sending to it."""
    valid = plan.valid.flatten().double()
    column = values.new_zeros(math.prod(plan.shape))
    column.index_add_(0, plan.target.flatten(), values.flatten() * valid)
    count = torch.zeros_like(column).index_add_(0, plan.target.flatten(), valid)
    share = (column - upper).clamp_min(0.0) / count.clamp_min(1.0)
    return values - torch.where(plan.valid, share[plan.target], 0.0)


def project_plan_in_box(
    plan: LocalPlan,
    values: torch.Tensor,
    eps,
    upper: float = 1.0,
    *,
    max_iter: int = 200,
    tol: float = 1e-6,
) -> LocalPlan:
    """Euclidean projection of ``values`` onto the plans of the ball whose images stay in
    ``[0, upper]``, by Dykstra's alternating projections.

    The feasible set is the intersection of two closed convex sets of plans: :math:`A`, the
    ball of :func:`project_plan` (:math:`\\Pi \\ge 0`, rows :math:`x`, cost at most
    :math:`\\varepsilon m`), and :math:`B`, the plans whose column sums (the image) are at
    most ``upper`` (:func:`_cap_columns`, exact and in closed form). Dykstra's algorithm
    (Boyle and Dykstra 1986; Bauschke and Combettes 2011, section 30.2) alternates the two
    exact projections with a correction per set,

    .. math::

        a_k = P_A(b_{k-1} + p_{k-1}),\\; p_k = b_{k-1} + p_{k-1} - a_k,\\;
        b_k = P_B(a_k + q_{k-1}),\\; q_k = a_k + q_{k-1} - b_k,

    from :math:`b_0 = V`, :math:`p_0 = q_0 = 0`, and :math:`a_k` converges to the projection
    of :math:`V` onto :math:`A \\cap B` (plain alternation would only find some point of
    it). Every :math:`a_k` is in the ball exactly (to :func:`project_plan`'s tolerance);
    the iterations stop when its image exceeds ``upper`` by at most ``tol * upper`` and no
    entry moved by more than ``tol`` times the largest pixel of ``x`` in the last step.
    What remains above ``upper`` (at most that tolerance when converged) is sent back to
    its source by :func:`fit_in_box`, which only lowers the cost: the returned plan is in
    the ball and its image in ``[0, upper]`` whether or not Dykstra converged. If
    :math:`P_A(V)` is already in the box it is the answer (one projection).

    This is the projection the paper's code offers as a post-processing
    (``dual_capacity_constrained_projection``, solved there in the dual); its attacks
    otherwise clip the image, which can leave the ball.

    Parameters
    ----------
    plan : LocalPlan
        Gives ``x`` (its row sums, at most ``upper``), the window and the cost.
    values : torch.Tensor
        (R, k*k) the point :math:`V` to project, in the layout of ``plan.mass``.
    eps : float or torch.Tensor
        Radius per image (number or (N,)), transport cost per unit mass.
    upper : float
        The largest pixel value (> 0).
    max_iter : int
        Most Dykstra steps (each one :func:`project_plan`).
    tol : float
        Tolerance of the stopping test (relative, see above).

    Returns
    -------
    LocalPlan
        The projection, float64: in the ball and with images in ``[0, upper]``.

    Warns
    -----
    ConvergenceWarning
        If Dykstra's iterations did not meet ``tol`` within ``max_iter`` steps (the plan is
        still feasible, but not exactly the projection).
    """
    upper = _check_upper(plan, upper, "project_plan_in_box")
    max_iter = check_int("max_iter", max_iter, 1)
    tol = check_number("tol", tol, 0.0, strict_low=True)
    a, _, done = _dykstra(plan, values.double(), eps, upper, None, max_iter, tol)
    if not done:
        warnings.warn(
            f"project_plan_in_box: Dykstra's iterations did not reach tol={tol:g} in max_iter={max_iter} "
            f"steps (image above upper by {done.over:.2g}, last step {done.moved:.2g}); the plan is "
            f"feasible but not exactly the projection",
            ConvergenceWarning,
            stacklevel=2,
        )
    return fit_in_box(a, upper)


@dataclass
class _DykstraEnd:
    """How Dykstra's iterations ended: false (unconverged) unless both tests passed."""

    over: float
    moved: float
    converged: bool

    def __bool__(self) -> bool:
        return self.converged


def _dykstra(plan: LocalPlan, values: torch.Tensor, eps, upper: float, box_dual, max_iter: int, tol: float):
    """Dykstra's iterations of :func:`project_plan_in_box` (checked inputs, float64 ``values``).

    ``box_dual`` is the starting correction of the box, :math:`q_0` (None: 0, the textbook
    start). The iterations keep :math:`b + p + q = V`, so a start :math:`q_0` begins at
    :math:`a_1 = P_A(V - q_0)`; Dykstra's algorithm is block-coordinate ascent on the dual
    of the projection (Gaffke and Mathar 1989; Bauschke and Combettes 2011, section 30.2),
    whose box block is :math:`q` (equal shares on the entries into each pixel, >= 0, as
    :func:`_cap_columns` leaves them), so any such :math:`q_0`, e.g. the last one of a
    nearby point, is a valid start and the limit is the same projection.

    Returns the last :math:`a` (in the ball, not yet repaired into the box), the last
    :math:`q` and a :class:`_DykstraEnd`.
    """
    x_max = float(plan.source_mass().max()) if len(plan.mass) else 0.0
    q = torch.zeros_like(values) if box_dual is None else box_dual
    a = project_plan(plan, values - q if box_dual is not None else values, eps)
    if box_dual is None and float(a.images().max()) <= upper:
        return a, q, _DykstraEnd(0.0, 0.0, True)
    p = values - q - a.mass
    b = _cap_columns(plan, a.mass + q, upper)
    q = a.mass + q - b
    over = moved = float("inf")
    for _ in range(max_iter):
        previous = a.mass
        a = project_plan(plan, b + p, eps)
        p = b + p - a.mass
        b = _cap_columns(plan, a.mass + q, upper)
        q = a.mass + q - b
        over = float((a.images() - upper).max())
        moved = float((a.mass - previous).abs().max())
        if over <= tol * upper and moved <= tol * x_max:
            return a, q, _DykstraEnd(over, moved, True)
    return a, q, _DykstraEnd(over, moved, False)
