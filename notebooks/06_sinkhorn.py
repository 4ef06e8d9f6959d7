# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-sinkhorn)=
# # Projected Sinkhorn: Wasserstein adversarial examples
#
# ## What you will learn
#
# - how Wong, Schmidt and Kolter {cite}`wong2019projected` project an image onto a
#   Wasserstein ball (talk section 4.3) with a Sinkhorn-like algorithm, and what the
#   projection does to a digit;
# - why the reference implementation overflows and how a log-domain version with its own
#   Lambert W function {cite}`corless1996lambertw` avoids it;
# - how far Wasserstein PGD brings a small CNN on MNIST digits, beside the paper's numbers;
# - how projected Sinkhorn compares with the exact projection and the Frank-Wolfe attack of
#   Wu, Wang and Yu {cite}`wu2020stronger`, at equal radius and equal iteration budget;
# - the talk's proposal: the same attack against a *random, non-trainable* classifier,
#   which needs no label and so can perturb images for clustering.
#
# ## The idea
#
# An image $x$ is a histogram on the pixel grid (divided by its total mass). The
# Wasserstein ball of radius $\varepsilon$ around it holds the images reachable by moving
# mass at a total cost of at most $\varepsilon$, the cost of moving a unit mass from pixel
# $i$ to pixel $j$ being $C_{ij} = \lVert i - j\rVert^2$ (so $\varepsilon = 1$ moves all of
# the mass by one pixel). The talk's projection of a point $w$ onto the ball,
#
# $$ \operatorname{proj}_{\mathcal{B}(x, \varepsilon)}(w) = \arg\min_{z \in \mathcal{B}(x, \varepsilon)}
#    \lVert w - z \rVert_2^2 , $$ (eq-sinkhorn-proj)
#
# is made tractable by an entropy term with weight $1/\lambda$ on the transport plan $\Pi$
# and by letting mass move only inside a $k \times k$ window around each pixel:
#
# $$ \min_{z,\, \Pi \ge 0}\; \tfrac12 \lVert w - z\rVert^2 + \tfrac1\lambda \sum_{ij} \Pi_{ij} \log \Pi_{ij}
#    \quad \text{s.t.}\quad \Pi 1 = x,\; \Pi^T 1 = z,\; \langle \Pi, C \rangle \le \varepsilon . $$ (eq-sinkhorn-entropic)
#
# Its dual has three blocks of variables, $\alpha$ (rows), $\beta$ (columns) and
# $\psi \ge 0$ (the budget), with the plan $\Pi_{ij} = e^{-\alpha_i} e^{-\psi C_{ij} - 1} e^{-\beta_j}$.
# Maximising over one block at a time gives closed forms for two of them,
#
# $$ \alpha = \log\big(K e^{-\beta}\big) - \log x, \qquad
#    \beta = W_0\big(\lambda e^{\lambda w} \odot K^T e^{-\alpha}\big) - \lambda w, \qquad K = e^{-\psi C - 1}, $$ (eq-sinkhorn-updates)
#
# where $W_0$ is the principal branch of the Lambert W function ($W e^W = y$), and a Newton
# step for $\psi$. The projection is $z = w + \beta / \lambda$.
#
# The attack of the talk's eq. (8) is projected gradient ascent on the loss $l$:
#
# $$ x^{(t+1)} = \operatorname{proj}_{\mathcal{B}(x, \varepsilon)}\big(x^{(t)} + \alpha\, \operatorname{sign} \nabla l(x^{(t)}, y)\big), $$ (eq-sinkhorn-pgd)
#
# clipped to $[0, 1]$, with $\varepsilon$ grown by a factor every few iterations for each
# image that is still classified correctly. Clustering has no label $y$: the talk replaces
# it by the prediction of a random, non-trainable classifier with any number of classes.
#
# **What we do differently from the reference code** (`locuslab/projected_sinkhorn`):
# every update is computed from logarithms, with our own $W_0(e^s)$ from $s$ (the
# reference forms $\lambda e^{\lambda w}$, which overflows at $\lambda = 1000$, and takes
# $\log x$ of zero pixels); the dual objective of the stopping test is evaluated with its
# arguments in the right order (the reference swaps two of them); and the output is the
# column sums of a plan whose rows sum exactly to $x$, so it conserves mass at any
# iteration count; where that plan still costs more than $\varepsilon$ (stopped before
# $\psi$ converged) we mix it with "leave every pixel in place", which scales its cost
# down to $\varepsilon$, so the output is always inside the ball. The projection is
# `infoclust.projected_sinkhorn.project_wasserstein_ball`, the attack
# `infoclust.attacks.wasserstein_pgd`.
#
# ## Running it
#
# % Shared by every chapter (in Jupyter: read book/running.md):
# ```{include} ../book/running.md
# ```
#
# This chapter, for example:
#
# ```bash
# .venv/bin/papermill 06_sinkhorn.ipynb out.ipynb -p lam 1000 -p n_attack 200
# ```

# %% tags=["parameters"]
dataset = "mnist5k"  # mnist5k | mnist | fashion-mnist (28 x 28 grey images)
data_root = None  # folder of torchvision's files (None: ~/.cache/infoclust)
download = False  # let torchvision download a missing data set
n_images: int | None = None  # use a random subset of this many images (None: all)
test_fraction = 0.2  # share of the images held out for testing and attacking
epochs = 15  # training epochs of the small CNN
n_attack = 100  # test digits attacked (the first ones of the shuffled test set)
eps0 = 0.7  # initial radius (paper, MNIST: 0.7)
eps_factor = 1.1  # radius growth (paper: 1.1)
eps_every = 10  # iterations between growths (paper: 10)
alpha = 0.1  # sign-step size on the pixels (paper: 0.1)
kernel_size = 7  # transport window (paper, MNIST: 7)
n_iter = 40  # PGD iterations (paper: 200; 40 reach every radius up to 1.0)
lam = 10000.0  # entropic lambda of our attack (the log domain allows it)
lam_paper = 1000.0  # the paper's lambda, run on fewer digits for comparison
n_attack_paper = 30  # digits attacked with lam_paper
proj_iter = 100  # most projection iterations per PGD step
fw_gamma = 1e-3  # entropic smoothing of Frank-Wolfe's oracle (Wu et al., MNIST: 1e-3)
n_attack_wu = 20  # digits attacked at Wu et al.'s MNIST settings (up to 300 iterations each: fewer digits)
wu_eps = 0.5  # Wu et al.'s MNIST radius, fixed (cost d: W1 in pixels)
wu_p = 1.0  # exponent of their ground cost d^p
wu_kernel_size = 5  # their transport window
wu_iter = 300  # their iterations
n_random_classes = 10  # classes of the random, non-trainable classifier
random_eps = 0.5  # radius of the random-classifier perturbations
random_iter = 10  # PGD iterations against the random classifier
n_random = 40  # digits perturbed with the random classifier
seed = 0
device = "auto"
profile = "custom"

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import scipy.special
import torch
from IPython.display import Markdown, display
from myst_nb import glue

import infoclust as ic
from infoclust import plot as icp
from infoclust.classifiers import predict, random_classifier, train_small_cnn
from infoclust.attacks import robust_accuracy, wasserstein_frank_wolfe, wasserstein_pgd
from infoclust.projected_sinkhorn import lambertw, project_wasserstein_ball
from infoclust.wasserstein import w2_exact, wasserstein_exact

ledger = ic.book.start(
    "06_sinkhorn",
    globals(),
    choices={"dataset": ("mnist5k", "mnist", "fashion-mnist")},
    bounds={
        "n_images": "[100, inf)",
        "n_attack": "[1, inf)",
        "n_attack_paper": "[0, inf)",
        "n_attack_wu": "[1, inf)",
        "wu_iter": "[1, inf)",
        "random_iter": "[1, inf)",
        "n_random": "[1, inf)",
    },
)
if kernel_size % 2 == 0:
    raise ic.ParameterError(f"kernel_size={kernel_size} must be odd")
dev = ledger.device
x, y = ic.load_dataset(dataset, root=data_root, download=download, n=n_images, seed=seed)
x_train, x_test, y_train, y_test = ic.data.train_test_split(x, y, test_fraction, generator=ledger.generator)
print(f"{dataset}: {len(x_train)} training and {len(x_test)} test images of shape {tuple(x.shape[1:])}")

# %% [markdown]
# ## The projection, drawn
#
# Take a test digit $x$ and, as the point to project, the same digit moved two pixels to
# the right, $w$: far outside small balls around $x$ (moving all the mass by two pixels
# costs $2^2 = 4$). {numref}`fig-sinkhorn-projection` shows the projection for three
# radii and, for the middle one, the transport plan as arrows: the mean displacement of
# the mass leaving each pixel. Every projection is checked with POT's exact solver
# (`ot.emd2` {cite}`flamary2021pot` through `infoclust.wasserstein.w2_exact`): its squared
# W2 to $x$ is at most the radius, and its mass equals $x$'s.

# %% tags=["hide-input"]
x0 = x_test[:1]
w0 = torch.roll(x0, shifts=2, dims=-1)
radii_demo = [0.25, 1.0, 4.0]
demo = []
for r in radii_demo:
    z, info = project_wasserstein_ball(
        w0.double(), x0.double(), r, lam=lam, kernel_size=5, max_iter=300, tol=1e-6, return_info=True
    )
    demo.append((r, z, info, w2_exact(x0, z).item() ** 2))
mass_err = max(abs(z.sum().item() / x0.sum().item() - 1) for _, z, _, _ in demo)
inside = all(w2 <= r * 1.001 for r, _, _, w2 in demo)

# %%
# NBVAL_CHECK_OUTPUT
for r, z, info, w2 in demo:
    print(
        f"radius {r:4.2f}: plan cost {info.cost.item():.4f}, exact W2^2 (POT) {w2:.4f}, "
        f"||z - w|| / ||x - w|| = {((z - w0).norm() / (x0 - w0).norm()).item():.4f}"
    )
print(f"largest relative mass error: {mass_err:.1e}")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Top: the digit x, the target w (x moved two pixels right) and the projections of w onto Wasserstein balls around x of three radii (lambda as in the parameters, 5 x 5 window). Bottom: the radius-1 plan as the mean displacement of the mass leaving each pixel (arrows, drawn where x is bright), and the change z - x (red: mass gained, blue: lost).", "name": "fig-sinkhorn-projection"}}
_, z1, info1, _ = demo[1]
plan = info1.plan[0, 0].float()  # (k*k, H, W): mass sent by each offset
step = info1.offsets.flip(1).float()  # (k*k, 2): (dj, di), x then y
field = torch.einsum("ohw,oc->chw", plan, step) / plan.sum(0).clamp_min(1e-12)  # mean move, (2, H, W)
fig, axes = plt.subplots(2, 5, figsize=(10, 4.4), layout="constrained")
icp.image_grid(
    torch.cat([x0, w0] + [z.float() for _, z, _, _ in demo]),
    axes=axes[:1],
    titles=["x", "w"] + [f"radius {r}" for r in radii_demo],
    fontsize=10,
)
icp.vector_field(field, image=x0[0], ax=axes[1, 0], step=1, where=x0[0, 0] > 0.3).set_title(
    "transport (radius 1)"
)
icp.difference_map(z1[0] - x0[0].double(), ax=axes[1, 1]).set_title("z - x (radius 1)")
for ax in axes[1, 2:]:
    ax.axis("off")
plt.show()

# %% tags=["hide-input"]
ledger.record(
    "projections inside their ball by POT's exact W2 (3 radii)",
    float(inside),
    claim="every projected output lies in its ball by POT's exact W2 (tolerance 0.1 %)",
    source="this book's own check",
    holds=inside,
)
ledger.record(
    "largest relative mass error of a projection",
    mass_err,
    claim="the projection conserves mass (within 1e-6)",
    source="this book's own check",
    holds=mass_err <= 1e-6,
)

# %% [markdown]
# The larger the radius, the closer the projection gets to $w$; at radius 4 the whole
# digit can move by its two pixels. Every plan spends its whole budget, but at radius 4
# part of it goes to a faint haze of mass spread over the window, which the entropy term
# favours and the small quadratic term barely resists: POT's exact W2 of that projection
# is well below its plan's cost (the printed numbers). At the smaller radii the two agree.
#
# ## Numerically safe by construction
#
# The reference works with the exponentials themselves, in float32: the $\beta$ update
# forms $\lambda e^{\lambda w}$, and the $\alpha$ update $\log(K e^{-\beta})$ with
# $K = e^{-\psi C - 1}$. The first overflows once $\lambda w > 88$ (images divided by their
# mass: a digit's brightest pixels are about 0.01, so $\lambda = 10^4$ suffices, and
# $\lambda = 1000$ on sparser images); the second underflows to 0 at the window's corner
# ($C = 18$ for a 7 x 7 window) once $\psi > 4.8$, which small radii reach, and then
# $\log 0$ and $\log x$ of zero pixels give $\pm\infty$ and NaN. We never form these
# products: every update is a log-sum-exp, and $W_0(e^s)$ is computed from
# $s = \log \lambda + \lambda w + \log u$ by Halley's iteration on $e^v + v = s$ for
# $v = \log W$. Checked against SciPy's `scipy.special.lambertw` over 600 decades, and run
# on test digits at radius 0.1:

# %% tags=["hide-input"]
grid = np.logspace(-300, 300, 6001)
lw_err = float(
    np.max(
        np.abs(lambertw(torch.from_numpy(grid)).numpy() - scipy.special.lambertw(grid).real)
        / scipy.special.lambertw(grid).real
    )
)
x8 = x_test[:8]
w_step = x8 + alpha * torch.sign(torch.randn(x8.shape, generator=ledger.generator))
mass8 = x8.flatten(1).sum(1).view(-1, 1, 1, 1)
c_corner = float(2 * (kernel_size // 2) ** 2)
safety = {}
for lam_try in (1000.0, 1e4, 1e5):
    z, info = project_wasserstein_ball(
        w_step, x8, 0.1, lam=lam_try, kernel_size=kernel_size, max_iter=50, return_info=True
    )
    over = bool(torch.isinf(torch.exp(lam_try * w_step / mass8)).any())  # float32
    under = bool((torch.exp(-info.psi.float() * c_corner - 1.0) == 0).any())  # float32
    safety[lam_try] = (over, under, info.psi.max().item(), bool(torch.isfinite(z).all()))
zero_share = float((x8 == 0).float().mean())

# %%
# NBVAL_CHECK_OUTPUT
print(f"Lambert W: largest relative error against SciPy over [1e-300, 1e300]: {lw_err:.1e}")
print(f"{zero_share:.0%} of the pixels of the 8 digits are exactly 0")
for lam_try, (over, under, psi_max, ok) in safety.items():
    print(
        f"lambda {lam_try:>6g}: exp(lambda w) overflows in float32: {over!s:5}; largest psi {psi_max:.4f}, "
        f"K underflows in float32: {under!s:5}; our projection finite: {ok}"
    )

# %% tags=["hide-input"]
ledger.record(
    "Lambert W, largest relative error against SciPy",
    lw_err,
    claim="our Lambert W matches scipy.special.lambertw (within 1e-12)",
    source="scipy.special.lambertw",
    holds=lw_err <= 1e-12,
)
finite = all(v[3] for v in safety.values())
ledger.record(
    "projection finite at lambda = 1e3, 1e4, 1e5, zero pixels included",
    float(finite),
    claim="no overflow at lambda >= 1000 and no NaN from zero pixels",
    source="this book's own check (the reference code overflows there)",
    holds=finite,
)

# %% [markdown]
# ## A small CNN, then attacked
#
# The paper attacks a standard MNIST model with 99 % clean accuracy. We train the
# library's `SmallCNN` (two 5 x 5 convolution blocks with batch normalisation, random
# one-pixel translations as augmentation) on the training split for `epochs` epochs, its
# weights, batch order and augmentation drawn from `seed`
# ({py:func}`~infoclust.classifiers.train_small_cnn`, as in chapter 7).

# %% tags=["hide-input"]
with ic.timer() as t_train:
    cnn, clean = train_small_cnn(x_train, y_train, x_test, y_test, seed=seed, epochs=epochs, device=dev)

# %%
# NBVAL_CHECK_OUTPUT
print(f"SmallCNN clean test accuracy {clean:.4f} on {len(x_test)} test digits")

# %% tags=["hide-input"]
ledger.record(
    "SmallCNN clean test accuracy",
    100 * clean,
    unit="%",
    paper=99.0,
    source="Wong et al. (2019), MNIST standard model",
    claim="the attacked CNN has at least 98 % clean accuracy",
    holds=clean >= 0.98,
    seconds=t_train["seconds"],
)

# %% [markdown]
# Now Wasserstein PGD, {eq}`eq-sinkhorn-pgd`, on the first `n_attack` test digits with the
# paper's MNIST settings (radius from 0.7, times 1.1 every 10 iterations, step 0.1,
# 7 x 7 window), except for $\lambda$: ours is `lam`, and the paper's `lam_paper` runs
# on `n_attack_paper` of the same digits for comparison. Each digit keeps the radius
# at which it was first misclassified, so one run gives the whole accuracy-radius curve
# ({numref}`fig-sinkhorn-accuracy`).

# %% tags=["hide-input"]
xa, ya = x_test[:n_attack].to(dev), y_test[:n_attack].to(dev)
attack_kw = dict(
    eps0=eps0,
    eps_factor=eps_factor,
    eps_every=eps_every,
    alpha=alpha,
    kernel_size=kernel_size,
    max_iter=n_iter,
    proj_iter=proj_iter,
)
with ic.timer() as t_attack:
    run_sinkhorn = wasserstein_pgd(cnn, xa, ya, lam=lam, **attack_kw)
x_adv, eps_adv, fooled = run_sinkhorn.images, run_sinkhorn.eps, run_sinkhorn.fooled
radii = np.round(np.arange(0.0, eps0 * eps_factor ** (n_iter // eps_every) + 1e-9, 0.05), 2)
curve = robust_accuracy(eps_adv.cpu(), fooled.cpu(), radii).numpy()
acc_at_1 = float(robust_accuracy(eps_adv.cpu(), fooled.cpu(), [1.0])[0])
if n_attack_paper:
    with ic.timer() as t_paper:
        run_paper = wasserstein_pgd(cnn, xa[:n_attack_paper], ya[:n_attack_paper], lam=lam_paper, **attack_kw)
    eps_p, fooled_p = run_paper.eps, run_paper.fooled
    curve_p = robust_accuracy(eps_p.cpu(), fooled_p.cpu(), radii).numpy()
    acc_at_1_p = float(robust_accuracy(eps_p.cpu(), fooled_p.cpu(), [1.0])[0])
    acc_at_1_same = float(
        robust_accuracy(eps_adv[:n_attack_paper].cpu(), fooled[:n_attack_paper].cpu(), [1.0])[0]
    )
# the adversarial digits by POT: inside their ball after the clipping to [0, 1]?
w2_adv = w2_exact(xa[fooled].cpu(), x_adv[fooled].cpu()) ** 2
inside_adv = (
    float((w2_adv <= eps_adv[fooled].cpu().double() * 1.001).float().mean()) if fooled.any() else float("nan")
)

# %%
# NBVAL_CHECK_OUTPUT
print(f"lambda {lam:g}, {n_attack} digits: accuracy {curve[0]:.4f} clean, {acc_at_1:.4f} at radius 1.0")
if n_attack_paper:
    print(
        f"lambda {lam_paper:g}, first {n_attack_paper} digits: accuracy {acc_at_1_p:.4f} at radius 1.0 "
        f"(lambda {lam:g} on the same digits: {acc_at_1_same:.4f})"
    )
print(f"fooled digits inside their ball by POT after clipping: {inside_adv:.4f}")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Accuracy of the SmallCNN under Wasserstein PGD against the radius (a digit counts as wrong from the radius that first fooled it). Our lambda on all attacked digits, the paper's lambda on the first ones, and the paper's MNIST point (4 % at radius 1.0).", "name": "fig-sinkhorn-accuracy"}}
fig, ax = plt.subplots(figsize=(5.5, 3.4))
ax.plot(radii, 100 * curve, marker=".", label=f"ours, lambda = {lam:g} ({n_attack} digits)")
if n_attack_paper:
    ax.plot(radii, 100 * curve_p, marker=".", label=f"lambda = {lam_paper:g} ({n_attack_paper} digits)")
ax.scatter([1.0], [4.0], marker="*", s=150, c="k", zorder=3, label="paper: 4 % at radius 1.0")
ax.set_xlabel("Wasserstein radius (squared pixels per unit mass)")
ax.set_ylabel("accuracy under attack (%)")
ax.set_ylim(-2, 102)
ax.legend()
plt.show()

# %% tags=["hide-input"]
ledger.record(
    f"SmallCNN accuracy at radius 1.0, lambda {lam:g}",
    100 * acc_at_1,
    unit="%",
    paper=4.0,
    source="Wong et al. (2019), MNIST standard model at eps = 1.0",
    claim="Wasserstein PGD brings the CNN to at most 10 % accuracy at radius 1.0",
    holds=acc_at_1 <= 0.10,
    seconds=t_attack["seconds"],
)
if n_attack_paper:
    ledger.record(
        f"SmallCNN accuracy at radius 1.0, lambda {lam_paper:g} ({n_attack_paper} digits)",
        100 * acc_at_1_p,
        unit="%",
        paper=4.0,
        source="Wong et al. (2019), MNIST standard model at eps = 1.0",
        seconds=t_paper["seconds"],
    )
ledger.record("fooled digits inside their ball by POT after clipping to [0, 1]", 100 * inside_adv, unit="%")
glue("acc_at_1", 100 * acc_at_1, display=False)
glue("acc_at_1_p", 100 * acc_at_1_p if n_attack_paper else float("nan"), display=False)
glue("acc_at_1_same", 100 * acc_at_1_same if n_attack_paper else float("nan"), display=False)
glue("inside_adv", 100 * inside_adv, display=False)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Clean test digits (top), their Wasserstein adversarial examples (middle, titled with the CNN's new label and the radius that fooled it) and the change (bottom; red: mass gained, blue: lost).", "name": "fig-sinkhorn-examples"}}
show = fooled.nonzero().flatten()[:8]
new_labels = predict(cnn, x_adv[show]).tolist() if len(show) else []
fig, axes = plt.subplots(
    3, max(len(show), 1), figsize=(1.3 * max(len(show), 1), 4.2), squeeze=False, layout="constrained"
)
icp.image_grid(
    [xa[show], x_adv[show]],
    axes=axes[:2],
    titles=[
        [f"label {int(ya[i])}" for i in show],
        [f"-> {c}, eps {float(eps_adv[i]):.2f}" for i, c in zip(show, new_labels)],
    ],
)
change = x_adv[show] - xa[show]
for ax, d in zip(axes[2], change):
    icp.difference_map(d, ax=ax, limit=float(change.abs().max()))  # one range: the changes compare
plt.show()

# %% [markdown]
# With $\lambda$ = `lam` the CNN keeps {glue:text}`acc_at_1:.0f` % accuracy at radius 1.0,
# beside the paper's 4 %; with the paper's $\lambda = 1000$ it keeps
# {glue:text}`acc_at_1_p:.0f` % of the first `n_attack_paper` digits (against
# {glue:text}`acc_at_1_same:.0f` % for `lam` on the same digits). A smaller $\lambda$ makes
# a blurrier projection: the entropic plan spreads mass over the whole window, and that
# spreading is paid from the budget instead of moving mass where the gradient points.
# The reference's projection stops on an objective evaluated with swapped arguments, so
# its iterates need not be the converged projection we compute; we did not measure what
# that does to its attack. After clipping to $[0, 1]$ an adversarial digit can leave its
# ball (clipping removes mass): {glue:text}`inside_adv:.0f` % of ours are still inside by
# POT's exact W2, a check that the paper does not report.
#
# ## Exact projection and Frank-Wolfe, at equal radius and budget
#
# Projected Sinkhorn projects onto the ball only approximately: the entropy term blurs the
# plan, and clipping to $[0, 1]$ afterwards removes mass. Wu, Wang and Yu
# {cite}`wu2020stronger` attack over transport plans instead of images: the iterate is a
# plan $\Pi \ge 0$ whose rows sum to $x$ (the image is its column sums), and the ball is
# $\{\Pi : \Pi 1 = x,\ \langle \Pi, C\rangle \le \varepsilon\}$, on the same window. Two
# attacks follow (`infoclust.exact_projection`):
#
# - **PGD with the exact projection** (their section 4): a gradient step on the plan, then
#   the Euclidean projection onto the ball, exactly, through its dual: for a multiplier
#   $\mu \ge 0$ of the cost constraint every row of the plan is a projection onto a simplex
#   (by sorting), and one scalar $\mu$ per image is found by root finding
#   (`wasserstein_pgd(..., projection="exact")`);
# - **Frank-Wolfe** (their section 5): each iteration, the plan of the ball most aligned
#   with the gradient (a linear oracle, smoothed by an entropy of weight `fw_gamma`, again
#   one scalar per image), and a step $2/(t + 2)$ towards it
#   (`wasserstein_frank_wolfe`).
#
# A plan of the ball can pile more than 1 onto a pixel, and an image must stay in
# $[0, 1]$. The paper's code clips the image the classifier sees, which removes mass, so a
# clipped image that fools the classifier need not be in the ball. Here every image the
# classifier sees is in the ball *and* in $[0, 1]$. PGD projects onto the intersection of
# the two, exactly (`project_plan_in_box`: Dykstra's alternating projections between the
# exact ball projection and the cap of every pixel at 1, which converge to the projection
# onto the intersection; the paper offers the same projection as a post-processing).
# Frank-Wolfe's oracle does not see the box, so its iterate stays a plan of the ball, as
# in the paper, and the classifier sees the image of that plan's projection onto the ball
# and the box (at most 10 of Dykstra's steps per iteration, to keep its time near PGD's,
# each projection started from the box correction of the last iteration, where the
# iterate was nearly the same: from zero, 10 steps left most of the overflow to the final
# repair). That repair, `fit_in_box`, sends the mass that would raise a pixel above 1
# back to where it came from, which only lowers the cost; earlier versions relied on it
# alone, and as the oracle's plans pile mass onto few pixels, much of it went back,
# Frank-Wolfe spent only part of its radius and fooled fewer digits (the measurements are
# in `infoclust.exact_projection`).
#
# The three attacks run on the same CNN and the same `n_attack` digits, with the
# same radius schedule and the same `n_iter` iterations; the PGD step size `alpha` is the
# paper's 0.1 for both PGD variants (on the pixels for projected Sinkhorn, on the plan's
# gradient divided by its largest entry for the exact projection, as Wu et al.'s code). For
# every returned image we also check the ball independently: POT's exact $W_2^2$ to the
# clean digit over its radius, which must be at most 1; its median over the attacked
# digits is the fraction of the radius the attack *used* (an image leaves the attack once
# fooled, so a fraction below 1 can mean an early success).

# %% tags=["hide-input"]
fw_kw = dict(eps0=eps0, eps_factor=eps_factor, eps_every=eps_every, kernel_size=kernel_size, max_iter=n_iter)
with ic.timer() as t_exact:
    run_exact = wasserstein_pgd(cnn, xa, ya, projection="exact", alpha=alpha, **fw_kw)
with ic.timer() as t_fw:
    run_fw = wasserstein_frank_wolfe(cnn, xa, ya, gamma=fw_gamma, **fw_kw)
attacks = {
    "PGD + projected Sinkhorn": (run_sinkhorn, t_attack["seconds"]),
    "PGD + exact projection": (run_exact, t_exact["seconds"]),
    "Frank-Wolfe": (run_fw, t_fw["seconds"]),
}


def median_or_nan(values):
    """The median of an array, NaN for an empty one (e.g. no digit left unfooled)."""
    return float(np.median(values)) if len(values) else float("nan")


compared = {}
for name, (run, secs) in attacks.items():
    xo, eo, so = run.images, run.eps, run.fooled
    w2sq = (w2_exact(xa.cpu(), xo.cpu()) ** 2).numpy()
    radius = eo.cpu().numpy()
    attacked = radius > 0  # radius 0: misclassified before any step, left as it is
    fooled_g, steps = so.cpu().numpy(), run.iterations.cpu().numpy()
    missed = attacked & ~fooled_g
    compared[name] = {
        "curve": robust_accuracy(eo.cpu(), so.cpu(), radii).numpy(),
        "correct_at_1": ~(so.cpu() & (eo.cpu() <= 1.0 * (1 + 1e-6))).numpy(),
        "seconds": secs / len(xa),
        "ratio": float((w2sq[attacked] / radius[attacked]).max()) if attacked.any() else 0.0,
        "used": float(np.median(w2sq[attacked] / radius[attacked])) if attacked.any() else 0.0,
        "used_missed": median_or_nan(w2sq[missed] / radius[missed]),
        "steps": median_or_nan(steps[attacked & fooled_g]),
        "mass": float((xo.flatten(1).sum(1) / xa.flatten(1).sum(1) - 1).abs().max()),
    }
sinkhorn_curve = compared["PGD + projected Sinkhorn"]["curve"]
exact_names = ("PGD + exact projection", "Frank-Wolfe")
stronger = {n: bool((compared[n]["curve"] <= sinkhorn_curve + 1e-9).all()) for n in exact_names}
paired = (
    {
        n: ic.metrics.paired_difference(
            100.0 * compared[n]["correct_at_1"], 100.0 * compared["PGD + projected Sinkhorn"]["correct_at_1"]
        )
        for n in exact_names
    }
    if len(xa) >= 2
    else {}
)

# %%
# NBVAL_CHECK_OUTPUT
print(f"{n_attack} digits, {n_iter} iterations, radius {eps0} x {eps_factor} every {eps_every}:")
for name, c in compared.items():
    at = {
        r: float(c["curve"][np.isclose(radii, r)][0]) for r in (0.7, 0.85, 1.0) if np.isclose(radii, r).any()
    }
    print(
        f"  {name:25s} accuracy "
        + ", ".join(f"{a:.4f} at {r:g}" for r, a in at.items())
        + f"; W2^2 / radius median {c['used']:.4f} (not fooled {c['used_missed']:.4f}), largest {c['ratio']:.4f}"
        f"; steps to fool {c['steps']:.0f}; largest mass change {c['mass']:.1e}"
    )
for name in exact_names:
    print(f"{name} never less accurate than projected Sinkhorn at any radius: {stronger[name]}")

# %% tags=["hide-input"]
for name, c in compared.items():
    ledger.record(
        f"{name}: accuracy at radius 1.0",
        100 * float(c["correct_at_1"].mean()),
        unit="%",
        seconds=c["seconds"] * len(xa),
    )
    ledger.record(f"{name}: seconds per attacked digit", c["seconds"], unit="s")
    ledger.record(
        f"{name}: largest exact W2^2 over the radius (POT)",
        c["ratio"],
        claim="every returned image is in its ball: POT's exact W2^2 at most the radius (1 + 1e-6) "
        "and the digit's mass kept (1e-6)",
        source="this book's own check",
        holds=c["ratio"] <= 1 + 1e-6 and c["mass"] <= 1e-6,
    )
    ledger.record(f"{name}: largest relative mass change of a returned image", c["mass"])
    ledger.record(f"{name}: radius used (median exact W2^2 over the radius)", c["used"])
    for key, what in (
        ("used_missed", "radius used by the digits it did not fool (median exact W2^2 over the radius)"),
        ("steps", "iterations to fool (median over fooled digits)"),
    ):
        if np.isfinite(c[key]):  # NaN: no digit left unfooled, or none fooled
            ledger.record(f"{name}: {what}", c[key])
all_stronger = all(stronger.values())
ledger.record(
    "exact-projection attacks at least as strong as projected Sinkhorn (growing radius)",
    float(all_stronger),
    context="accuracy under PGD with the exact projection and under Frank-Wolfe never above projected "
    "Sinkhorn's at any radius of the curve (1: yes); Wong et al.'s schedule, not Wu et al.'s, so the "
    "paper's claim is tested at its own settings below",
)
for name, d in paired.items():
    ledger.record(
        f"{name} minus projected Sinkhorn: accuracy at radius 1.0 (paired)",
        d.mean,
        unit="points",
        context=f"{d.confidence:.0%} interval [{d.low:.1f}, {d.high:.1f}] over the {d.n} digits: {d.verdict}",
    )
glue("three_stronger", "holds" if all_stronger else "does not hold", display=False)
glue("exact_seconds", compared["PGD + exact projection"]["seconds"], display=False)
glue("fw_seconds", compared["Frank-Wolfe"]["seconds"], display=False)
glue("sinkhorn_seconds", compared["PGD + projected Sinkhorn"]["seconds"], display=False)
glue("sinkhorn_ratio", compared["PGD + projected Sinkhorn"]["ratio"], display=False)
glue("sinkhorn_mass", 100 * compared["PGD + projected Sinkhorn"]["mass"], display=False)
for name, key in zip(compared, ("sinkhorn", "exact", "fw")):
    glue(f"{key}_missed", 100 * compared[name]["used_missed"], display=False)
    glue(f"{key}_steps", compared[name]["steps"], display=False)
# Frank-Wolfe's iterate after the last growth of the radius: the share of it that comes from the
# oracle plans of the largest ball, 1 - prod (1 - 2 / (t + 2)) over those iterations
last_growth = ((n_iter - 1) // eps_every) * eps_every  # the first iteration at the last radius
fw_tail = 1.0 - float(np.prod([1.0 - 2.0 / (t + 2.0) for t in range(last_growth, n_iter)]))
glue("fw_tail", 100 * fw_tail, display=False)
glue("fw_last_growth", last_growth, display=False)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Accuracy of the SmallCNN against the radius under the three attacks, on the same digits with the same radius schedule and iteration budget: PGD with projected Sinkhorn (our lambda), PGD with Wu et al.'s exact projection, and Frank-Wolfe.", "name": "fig-sinkhorn-three-attacks"}}
fig, ax = plt.subplots(figsize=(5.5, 3.4))
for (name, c), marker in zip(compared.items(), ".xs"):
    ax.plot(radii, 100 * c["curve"], marker=marker, label=f"{name} ({c['seconds']:.2f} s per digit)")
ax.set_xlabel("Wasserstein radius (squared pixels per unit mass)")
ax.set_ylabel("accuracy under attack (%)")
ax.set_ylim(-2, 102)
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# On Wong et al.'s growing radius, "exact projection attacks are at least as strong as
# projected Sinkhorn at equal radius" {glue:text}`three_stronger` ({numref}`fig-sinkhorn-three-attacks`; the ledger at the
# end has the accuracy of each attack at radius 1.0 and the paired difference with its
# interval). Per attacked digit, PGD with projected Sinkhorn took
# {glue:text}`sinkhorn_seconds:.2f` s, PGD with the exact projection
# {glue:text}`exact_seconds:.2f` s and Frank-Wolfe {glue:text}`fw_seconds:.2f` s (wall
# time of this run; an image leaves an attack once it is fooled, so a stronger attack
# also stops earlier). The exact attacks return images inside their ball by construction,
# which POT confirms and their mass is kept; projected Sinkhorn's largest ratio of exact
# $W_2^2$ (between the histograms) to radius is {glue:text}`sinkhorn_ratio:.3f`, but
# clipping to $[0, 1]$ changed the mass of some of its images by up to
# {glue:text}`sinkhorn_mass:.1f` %, and an image of another mass is in no ball around $x$.
#
# Where an exact attack loses here, the output above says why: the digits each attack did
# not fool got images that used (median) {glue:text}`sinkhorn_missed:.0f` % (projected
# Sinkhorn), {glue:text}`exact_missed:.0f` % (exact PGD) and {glue:text}`fw_missed:.0f` %
# (Frank-Wolfe) of their last radius ("nan": none left), and the fooled digits needed a
# median of {glue:text}`sinkhorn_steps:.0f`, {glue:text}`exact_steps:.0f` and
# {glue:text}`fw_steps:.0f` iterations. Frank-Wolfe is made for one fixed radius: its step
# $2/(t + 2)$ shrinks while the radius grows, so after the last growth (iteration
# {glue:text}`fw_last_growth`) only {glue:text}`fw_tail:.0f` % of its final plan comes from
# the oracle plans of the largest ball, and the rest is plans of the smaller balls before.
# Wong et al.'s growing radius therefore handicaps it; Wu et al.'s own protocol fixes the
# radius, and the next section runs it.
#
# ## At Wu et al.'s own settings
#
# Wu et al. attack MNIST differently from Wong et al. (their scripts in
# `watml/fast-wasserstein-adversarial`): one fixed radius of 0.5 with the ground cost $d$
# instead of $d^2$ (so the radius is a $W_1$ in pixels), a $5 \times 5$ window, 300
# iterations, PGD step 0.1, Frank-Wolfe's smoothing $\gamma = 10^{-3}$, and for their
# projected-Sinkhorn baseline $\lambda = 1000$, Wong et al.'s (`lam_paper`). Their claim,
# that the exact attacks are stronger than projected Sinkhorn, is tested here at those
# settings: the attacks on the first `n_attack_wu` test digits of the same CNN (fewer
# digits than above: a digit that resists runs all 300 iterations). Projected Sinkhorn runs
# twice, with the paper's $\lambda$ (the claim's baseline) and with our `lam`. Two
# departures stay: a digit leaves the attack once fooled (their code runs all 300
# iterations and judges the last image), and every image the exact attacks return is in
# the ball and in $[0, 1]$ (their code clips it). For every returned image, POT's exact
# $W_1$ to the clean digit (`wasserstein_exact` with `p = 1`) over the radius gives the
# fraction of the radius it used; where an attack fails on a digit, that fraction and the
# iterations the others needed to fool tell whether it was short of budget or of steps.

# %% tags=["hide-input"]
wu_kw = dict(eps0=wu_eps, eps_factor=1.0, kernel_size=wu_kernel_size, p=wu_p, max_iter=wu_iter)
xw, yw = x_test[:n_attack_wu].to(dev), y_test[:n_attack_wu].to(dev)
wu_base = f"PGD + projected Sinkhorn, lambda {lam_paper:g}"  # the paper's baseline
wu_ours = f"PGD + projected Sinkhorn, lambda {lam:g}"
wu_attacks = {
    wu_base: lambda: wasserstein_pgd(cnn, xw, yw, alpha=alpha, lam=lam_paper, proj_iter=proj_iter, **wu_kw),
    wu_ours: lambda: wasserstein_pgd(cnn, xw, yw, alpha=alpha, lam=lam, proj_iter=proj_iter, **wu_kw),
    "PGD + exact projection": lambda: wasserstein_pgd(cnn, xw, yw, projection="exact", alpha=alpha, **wu_kw),
    "Frank-Wolfe": lambda: wasserstein_frank_wolfe(cnn, xw, yw, gamma=fw_gamma, **wu_kw),
}
wu = {}
for name, attack in wu_attacks.items():
    with ic.timer() as t_wu:
        run = attack()
    used = (wasserstein_exact(xw.cpu(), run.images.cpu(), p=wu_p) ** wu_p).numpy() / wu_eps
    fooled_w = run.fooled.cpu().numpy()
    steps = run.iterations.cpu().numpy()
    attacked = steps > 0  # no step: misclassified before the attack
    missed = attacked & ~fooled_w
    wu[name] = {
        "fooled": fooled_w,
        "used": float(np.median(used[attacked])) if attacked.any() else 0.0,
        "used_missed": median_or_nan(used[missed]),
        "largest": float(used.max()),
        "mass": float((run.images.flatten(1).sum(1) / xw.flatten(1).sum(1) - 1).abs().max()),
        "steps": median_or_nan(steps[attacked & fooled_w]),
        "seconds": t_wu["seconds"],
    }
wu_stronger = {n: bool(wu[n]["fooled"].mean() >= wu[wu_base]["fooled"].mean()) for n in exact_names}
wu_stronger_ours = {n: bool(wu[n]["fooled"].mean() >= wu[wu_ours]["fooled"].mean()) for n in exact_names}

# %%
# NBVAL_CHECK_OUTPUT
print(
    f"{n_attack_wu} digits, radius {wu_eps} fixed (cost d^{wu_p:g}), window {wu_kernel_size}, {wu_iter} iterations:"
)
print(f"  {'attack':38s} fooled  radius used: median  (not fooled)  largest  steps to fool  mass change")
for name, c in wu.items():
    print(
        f"  {name:38s} {c['fooled'].mean():.4f}  {c['used']:19.4f}  {c['used_missed']:12.4f}  {c['largest']:7.4f}"
        f"  {c['steps']:13.1f}  {c['mass']:.1e}"
    )
for name in exact_names:
    print(
        f"{name} fools at least as many digits as projected Sinkhorn: lambda {lam_paper:g} {wu_stronger[name]}, "
        f"lambda {lam:g} {wu_stronger_ours[name]}"
    )

# %% tags=["hide-input"]
for name, c in wu.items():
    ledger.record(
        f"paper's settings: {name}, digits fooled",
        100 * float(c["fooled"].mean()),
        unit="%",
        seconds=c["seconds"],
    )
    ledger.record(f"paper's settings: {name}, radius used (median exact W1 over the radius)", c["used"])
    for key, what in (
        ("used_missed", "radius used by the digits it did not fool (median exact W1 over the radius)"),
        ("steps", "iterations to fool (median over fooled digits)"),
    ):
        if np.isfinite(c[key]):  # NaN: no digit left unfooled, or none fooled
            ledger.record(f"paper's settings: {name}, {what}", c[key])
    ledger.record(
        f"paper's settings: {name}, largest exact W1 over the radius (POT)",
        c["largest"],
        context=f"largest relative mass change of a returned image {c['mass']:.1e} (clipping changes it)",
    )
wu_all = all(wu_stronger.values())
ledger.record(
    "paper's settings: exact-projection attacks at least as strong as projected Sinkhorn",
    float(wu_all),
    claim=f"at Wu et al.'s MNIST settings (radius 0.5 fixed, cost d, 5 x 5 window, 300 iterations, "
    f"gamma 1e-3, projected Sinkhorn at lambda {lam_paper:g}) PGD with the exact projection and Frank-Wolfe "
    "each fool at least as many digits as PGD with projected Sinkhorn (same CNN and digits)",
    source="Wu, Wang and Yu (2020), section 6",
    holds=wu_all,
)
ledger.record(
    f"paper's settings: exact-projection attacks at least as strong as projected Sinkhorn at lambda {lam:g}",
    float(all(wu_stronger_ours.values())),
    context=f"the same comparison against our lambda {lam:g} (1: each exact attack fools at least as many "
    "digits); not the paper's baseline",
)
if len(xw) >= 2:
    for name in exact_names:
        for base in (wu_base, wu_ours):
            d = ic.metrics.paired_difference(100.0 * wu[name]["fooled"], 100.0 * wu[base]["fooled"])
            ledger.record(
                f"paper's settings: {name} minus {base}, digits fooled (paired)",
                d.mean,
                unit="points",
                context=f"{d.confidence:.0%} interval [{d.low:.1f}, {d.high:.1f}] over the {d.n} digits: "
                f"{d.verdict}",
            )
glue("wu_claim", "holds" if wu_all else "does not hold", display=False)
for name, key in zip(wu, ("wu_base", "wu_ours", "wu_exact", "wu_fw")):
    glue(f"{key}_fooled", 100 * float(wu[name]["fooled"].mean()), display=False)
    glue(f"{key}_used", 100 * wu[name]["used"], display=False)
    glue(f"{key}_missed", 100 * wu[name]["used_missed"], display=False)
    glue(f"{key}_steps", wu[name]["steps"], display=False)

# %% [markdown]
# At Wu et al.'s settings the claim {glue:text}`wu_claim`: projected Sinkhorn with the
# paper's $\lambda$ fooled {glue:text}`wu_base_fooled:.0f` % of the digits (with our
# $\lambda$ {glue:text}`wu_ours_fooled:.0f` %), PGD with the exact projection
# {glue:text}`wu_exact_fooled:.0f` % and Frank-Wolfe {glue:text}`wu_fw_fooled:.0f` %. The
# digits projected Sinkhorn at $\lambda = 1000$ did not fool got images that used only
# {glue:text}`wu_base_missed:.0f` % of the radius (median exact $W_1$ over the radius; "nan"
# where it fooled every digit): its entropic plan spreads each pixel's mass over the
# window, which pays transport without moving mass where the gradient points, so the attack
# runs out of steps far from the boundary of its ball. That is the mechanism behind the
# paper's claim. The exact attacks fooled their digits in a median of
# {glue:text}`wu_exact_steps:.0f` (PGD) and {glue:text}`wu_fw_steps:.0f` (Frank-Wolfe)
# iterations, projected Sinkhorn in {glue:text}`wu_base_steps:.0f` ($\lambda = 1000$) and
# {glue:text}`wu_ours_steps:.0f` (ours). A fooled digit stops early, so the median image
# used less than the whole radius ({glue:text}`wu_base_used:.0f` %,
# {glue:text}`wu_ours_used:.0f` %, {glue:text}`wu_exact_used:.0f` % and
# {glue:text}`wu_fw_used:.0f` % in the order above) without being weak; an attack's budget
# matters only where it fails, and the tests check that both exact attacks spend more than
# 90 % of it at these settings on a classifier they cannot fool
# (`tests/test_attacks.py`). Frank-Wolfe's misses, where there are any, are of another
# kind: the digits it did not fool got images {glue:text}`wu_fw_missed:.0f` % of the
# radius away, yet its plans spend the whole budget. Its oracle does not see the box, so
# its iterate can pile several times a pixel's capacity onto a few pixels; the plan
# nearest to it inside the box keeps most of its transfers and sends mass back the other
# way, which costs budget without moving the image (the measurement is in
# `wasserstein_frank_wolfe`'s documentation). PGD's iterate is always inside the box.
# Projected Sinkhorn's images may exceed the radius and lose mass: clipping to $[0, 1]$
# comes after its projection.
#
# ## Perturbations from a random classifier
#
# For clustering there is no label. The talk's proposal: attack a random, non-trainable
# network with `n_random_classes` classes on its own prediction. With a fixed radius
# (`eps_factor = 1`) the result is a perturbation of $x$ inside its Wasserstein ball:
# a candidate for IIC's transformation $g$ (chapter 9 uses it).

# %% tags=["hide-input"]
rnd = random_classifier(x.shape[1], n_random_classes, seed=seed, device=dev)
xr = x_test[n_attack : n_attack + n_random].to(dev)
with ic.timer() as t_random:
    run_rnd = wasserstein_pgd(
        rnd,
        xr,
        None,
        eps0=random_eps,
        eps_factor=1.0,
        alpha=alpha,
        lam=lam,
        kernel_size=kernel_size,
        max_iter=random_iter,
        proj_iter=proj_iter,
    )
x_rnd, flipped = run_rnd.images, run_rnd.fooled
w2_rnd = (w2_exact(xr.cpu(), x_rnd.cpu()) ** 2).numpy()
cnn_same = float((predict(cnn, x_rnd) == predict(cnn, xr)).float().mean())

# %%
# NBVAL_CHECK_OUTPUT
print(
    f"random classifier ({n_random_classes} classes): label changed for {flipped.float().mean().item():.4f} "
    f"of {len(xr)} digits at radius {random_eps}"
)
print(f"exact W2^2 to x: median {np.median(w2_rnd):.4f}, largest {w2_rnd.max():.4f}")
print(f"the trained CNN keeps its label on {cnn_same:.4f} of them")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Digits (top) and their perturbations by Wasserstein PGD against a random, non-trainable classifier on its own labels (bottom, titled with the exact squared W2 to the digit by POT).", "name": "fig-sinkhorn-random"}}
m = min(8, len(xr))
icp.image_grid([xr[:m], x_rnd[:m]], titles=[None, [f"W2^2 {v:.2f}" for v in w2_rnd[:m]]], size=1.3)
plt.show()

# %% tags=["hide-input"]
ledger.record(
    f"random-classifier label changed at radius {random_eps}",
    100 * flipped.float().mean().item(),
    unit="%",
    seconds=t_random["seconds"],
)
ledger.record(
    "trained CNN label kept on random-classifier perturbations",
    100 * cnn_same,
    unit="%",
    claim="perturbations from a random classifier keep the digit's class (CNN label kept on >= 90 %)",
    source="our check of the talk's proposal (section 4.3)",
    holds=cnn_same >= 0.9,
)
ledger.record(
    "random-classifier perturbations inside their ball by POT (clipped)",
    100 * float((w2_rnd <= random_eps * 1.001).mean()),
    unit="%",
)

# %% [markdown]
# The random network's label is a meaningless class, yet the attack on it moves mass
# around each digit within the ball; a trained CNN mostly still recognises the digits,
# which is what a transformation for clustering should do.
#
# ## Results beside the paper's
#
# Every number below was computed by this run (its seed, device and time are in the first
# output of the chapter) and is also written to the book's results ledger.

# %% tags=["hide-input"]
display(Markdown(ledger.markdown()))

# %% [markdown]
# ## Exercises
#
# Each exercise says what you should see. Its worked solution follows it, hidden: the toggle
# beside it shows the code, which ran with the rest of the chapter on the objects computed
# above (so its numbers are this run's), and its output.
#
# **1. The paper's $\lambda$.** Project the target $w$ of {numref}`fig-sinkhorn-projection`
# (the digit moved two pixels right) onto the ball of radius 1 with $\lambda$ = `lam_paper`
# and with our `lam`. *You should see* the paper's smaller $\lambda$ end farther from $w$: its
# plan is more entropic, spreading each pixel's mass over the window, and a spread plan pays
# more transport for the same change, so less of the budget goes into moving towards $w$.


# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
# Solution 1: the radius-1 projection at the paper's lambda, beside the chapter's at ours
def moved_towards_w(z):
    return ((z - w0).norm() / (x0 - w0).norm()).item()


z_paper, info_paper = project_wasserstein_ball(
    w0.double(), x0.double(), 1.0, lam=lam_paper, kernel_size=5, max_iter=300, tol=1e-6, return_info=True
)
for lam_try, z_try, info_try in ((lam_paper, z_paper, info_paper), (lam, demo[1][1], demo[1][2])):
    print(
        f"lambda {lam_try:7.0f}: ||z - w|| / ||x - w|| = {moved_towards_w(z_try):.4f}, "
        f"plan cost {info_try.cost.item():.4f}, exact W2^2 {w2_exact(x0, z_try).item() ** 2:.4f}"
    )

# %% [markdown]
# **2. A window of 3 pixels.** With `kernel_size = 3` a plan moves mass at most one pixel.
# Project $w$, two pixels away from $x$, onto the ball of radius 4 of
# {numref}`fig-sinkhorn-projection` (large enough to reach it) with a window of 3 pixels, and
# compare with the figure's window of 5. *You should see* the 5-pixel window reach $w$ almost
# exactly and the 3-pixel window stop short, however large the radius: one projection cannot
# carry mass farther than its window. PGD still moves mass farther, since each of its
# iterations projects again from where the last one ended.

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
# Solution 2: the radius-4 projection with a 3-pixel window, beside the figure's 5-pixel one
z_3 = project_wasserstein_ball(w0.double(), x0.double(), 4.0, lam=lam, kernel_size=3, max_iter=300, tol=1e-6)
print(f"window 3 x 3: ||z - w|| / ||x - w|| = {moved_towards_w(z_3):.4f}")
print(f"window 5 x 5: ||z - w|| / ||x - w|| = {moved_towards_w(demo[2][1]):.4f}")

# %% [markdown]
# **3. Stopping the projection early.** Project $w$ onto the ball of radius 1 with at most 5
# iterations and compare with the converged projection of the figure. *You should see* the
# mass conserved to rounding in both and the early stop inside the ball (our iterations never
# leave it) but short of its boundary, where the converged projection of a target outside
# the ball lies: after 5 iterations the image is a point of the ball, not yet the nearest
# one to $w$.

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
# Solution 3: five iterations against the converged projection
z_5 = project_wasserstein_ball(w0.double(), x0.double(), 1.0, lam=lam, kernel_size=5, max_iter=5, tol=1e-6)
for label, z_i in (("5 iterations", z_5), ("converged", demo[1][1])):
    mass = abs(z_i.sum().item() / x0.sum().item() - 1)
    print(
        f"{label:>12}: relative mass error {mass:.1e}, exact W2^2 {w2_exact(x0, z_i).item() ** 2:.4f} (radius 1)"
    )

# %% [markdown]
# **4. A random classifier with 100 classes.** Attack a random classifier with 100 classes
# instead of `n_random_classes`, on the same digits, radius and iterations. *You should see* more
# labels flip: with ten times more classes the regions of each label are smaller, so a
# perturbation of the same size crosses a boundary more often.

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
# Solution 4: the random-classifier attack with 100 classes
rnd_100 = random_classifier(x.shape[1], 100, seed=seed, device=dev)
flipped_100 = wasserstein_pgd(
    rnd_100, xr, None, eps0=random_eps, eps_factor=1.0, alpha=alpha, lam=lam,
    kernel_size=kernel_size, max_iter=random_iter, proj_iter=proj_iter,
).fooled  # fmt: skip
print(f"label changed: {flipped.float().mean().item():.4f} with {n_random_classes} classes, ")
print(
    f"               {flipped_100.float().mean().item():.4f} with 100 classes ({len(xr)} digits, radius {random_eps})"
)

# %% [markdown]
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
