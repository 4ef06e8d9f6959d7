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
# (ch-w2-algorithm)=
# # The talk's algorithm: ADef steps inside a Wasserstein ball
#
# ## What you will learn
#
# - the talk's Algorithm 1 {cite}`hinnerichs2020talk` (section 4.5), which turns ADef
#   {cite}`alaifari2019adef` into a random perturbation $g$ for IIC {cite}`ji2019iic` that
#   never leaves a Wasserstein ball around the image;
# - what its two knobs do: the radius $\varepsilon$ of the ball and the width $\eta$ of the
#   stopping probability of eq. (6) {cite}`lin2019wdtr`;
# - that every sample lies inside its ball by the exact $W_2$ of POT {cite}`flamary2021pot`,
#   although cheap certified bounds settle most of the algorithm's tests, and what one batch
#   costs.
#
# ## The idea
#
# IIC maximises $I(E(x); E(gx))$ for a random transformation $g$ that keeps the class of $x$
# (talk, eq. 4). The talk proposes to draw $g x$ near $x$ in the Wasserstein-2 distance
# between images seen as histograms on the pixel grid (chapter 4), with the density
#
# $$ p(\xi \mid x) \propto \exp\!\big(-d_W(x, x + \xi)^2 / \eta^2\big) , $$ (eq-w2alg-density)
#
# and to move $x$ by adversarial deformations of a random, non-trainable classifier
# (chapter 7). Algorithm 1 of the talk combines the two. For every image $x$:
#
# ```text
# x' := x
# loop
#     x'' := ADefStep(x')              # one ADef step with step size alpha
#     if W2(x'', x) <= eps             # x'' inside the ball
#         x' := x''
#         with probability p(xi | x): return x'
#     else
#         return x'
# ```
#
# where the stopping probability is {eq}`eq-w2alg-density` evaluated at the accepted point,
# $\exp(-W_2(x', x)^2/\eta^2)$. `ic.w2_algorithm.w2_perturbation` runs it on a batch, one
# independent walk per image, and `ic.w2_algorithm.W2Perturbation` wraps it as IIC's $g$. The
# talk leaves a few things open; the library's choices:
#
# - **the step** is `ic.adef.adef_step` against the label that the classifier gives to $x$,
#   scaled by the step size $\alpha$, added to the accumulated field, and the *original*
#   $x$ is warped by the sum (as ADef does). The classifier is the random network unless
#   another is given;
# - **the ADef step keeps ADef's rule** for its candidate labels (chapter 7): the one whose
#   new accumulated field has the smallest T-norm;
# - **every test is exact**: both tests of the loop compare $W_2(x'', x)$ with a threshold
#   ($\varepsilon$, and for the coin $u < p$), so a bracket $L \le W_2 \le U$ settles a test
#   whenever the threshold lies outside it. $L$ is the sum of the exact 1-D distances of the
#   row and of the column marginals, $U$ the cost of a Knothe-Rosenblatt coupling (columns
#   matched monotonically, then the pixels within each pair of columns); both take a few
#   sorts. Only the tests they leave open go to POT's network simplex (chapter 4), so
#   "inside the ball" is a fact, not an approximation, and the walks are those that exact
#   distances alone would give (`bounds=False` runs them so). The returned `w2` is exact
#   where `exact` is set and a certified upper bound otherwise;
# - **no projection**: a step that would leave the ball is not projected back, neither by
#   projected Sinkhorn nor by the exact projection of chapter 6; the walk ends at its last
#   point inside. A projection would replace the deformation by some transport of mass (the
#   point of the ball nearest to $x''$ in the Euclidean norm, inside a local window), so
#   $g x$ would no longer be $x$ warped by a smooth field, and the talk's test is on the
#   exact $W_2$ of the whole grid, not on the windowed transport cost those projections
#   bound. Staying inside is then a matter of exact tests, not of a solver's accuracy;
# - **`max_iter` caps the walk**: the talk's loop stops almost surely, but after about
#   $\exp(\varepsilon^2/\eta^2)$ steps when $\eta \ll \varepsilon$. A capped walk returns its
#   last point inside the ball, like the other two exits.
#
# Two consequences of the algorithm as written are worth seeing before any number. Given the
# classifier, the path from $x$ is deterministic: only *when* it stops is random. And the
# stopping probability is *large* for small distances: a wide $\eta$ stops the walk after
# its first accepted step, a narrow one lets it run to the edge of the ball.
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
# .venv/bin/papermill 08_w2_algorithm.ipynb out.ipynb -p alpha 0.5 -p n_images 64
# ```

# %% tags=["parameters"]
dataset = "mnist5k"  # mnist5k | mnist | fashion-mnist (28 x 28 grey images)
data_root = None  # folder of torchvision's files (None: ~/.cache/infoclust)
download = False  # let torchvision download a missing data set
n_images = 32  # digits perturbed for every setting
eps_values = [0.25, 0.5, 1.0]  # ball radii compared (pixels), at eta = eta_fixed
eta_values = [0.1, 0.25, 1.0]  # stopping widths compared (pixels), at eps = eps_fixed
eps_fixed = 0.5  # radius while eta varies
eta_fixed = 0.25  # width while eps varies
alpha = 0.25  # step size: fraction of each ADef step taken
sigma = 0.5  # Gaussian smoothing of the ADef steps (pixels)
max_iter = 15  # cap on the ADef steps per walk
n_random_classes = 10  # classes of the random, non-trainable classifier
path_steps = 6  # steps of the single walk that is drawn
n_timing = 64  # batch size of the timing
seed = 0
device = "auto"
profile = "custom"

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display
from myst_nb import glue

import infoclust as ic
from infoclust import plot as icp
from infoclust.classifiers import random_classifier
from infoclust.w2_algorithm import W2Perturbation, w2_perturbation
from infoclust.wasserstein import w2_exact

ledger = ic.book.start(
    "08_w2_algorithm",
    globals(),
    bounds={"n_images": "[1, inf)", "path_steps": "[1, inf)", "n_timing": "[1, inf)"},
)
x, y = ic.load_dataset(dataset, root=data_root, download=download, n=max(n_images, n_timing), seed=seed)
x = x.to(ledger.device)
digits = x[:n_images]
net = random_classifier(x.shape[1], n_random_classes, seed=seed, device=ledger.device)
print(
    f"{dataset}: {len(x)} images of shape {tuple(x.shape[1:])}; random classifier with "
    f"{n_random_classes} classes"
)

# %% [markdown]
# ## One walk, drawn
#
# With the stopping coin switched off ($\eta$ tiny, so $p \approx 0$) and a large ball, the
# walk of one digit is the deterministic path of ADef steps; {numref}`fig-w2alg-path` shows
# its first `path_steps` points with their exact distance to $x$. Algorithm 1 returns one
# point of this path: the first at which the coin says stop, or the last before the path
# leaves the ball.

# %% tags=["hide-input"]
path = [
    w2_perturbation(net, digits[:1], 100.0, 1e-9, alpha=alpha, sigma=sigma, max_iter=k)
    for k in range(1, path_steps + 1)
]
path_w2 = [0.0] + w2_exact(torch.cat([p.images for p in path]), digits[:1]).tolist()

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The path of Algorithm 1's ADef steps from one digit against the random classifier (no stopping): the digit after each step, titled with its exact W2 distance to the original in pixels.", "name": "fig-w2alg-path"}}
icp.image_grid(
    torch.cat([digits[:1]] + [p.images[:1] for p in path]),
    titles=["x"] + [f"{k}: {d:.2f}" for k, d in enumerate(path_w2[1:], start=1)],
    size=1.2,
)
plt.show()

# %% [markdown]
# ## Samples for several $\varepsilon$ and $\eta$
#
# Each setting perturbs the same `n_images` digits once, with the same random classifier
# and the same seed for the coins.

# %% tags=["hide-input"]
settings = list(dict.fromkeys([(e, eta_fixed) for e in eps_values] + [(eps_fixed, h) for h in eta_values]))
runs = {}
for eps, eta in settings:
    with ic.timer() as t_run:
        gen = torch.Generator().manual_seed(seed)
        r = w2_perturbation(net, digits, eps, eta, alpha=alpha, sigma=sigma, max_iter=max_iter, generator=gen)
    runs[(eps, eta)] = (r, t_run["seconds"])
# the exact distances of the samples, recomputed from scratch by POT (the walks kept bounds where they sufficed)
exact_w2 = {key: w2_exact(r.images, digits).cpu() for key, (r, _) in runs.items()}
solved = sum(r.solved for r, _ in runs.values()) / sum(r.tests for r, _ in runs.values())
ledger.record("share of Algorithm 1's W2 tests that needed the exact solver", 100 * solved, unit="%")
glue("w2alg_solved", 100 * solved, display=False)

# %%
# NBVAL_CHECK_OUTPUT
for (eps, eta), (r, _) in runs.items():
    ends = torch.bincount(r.end.cpu(), minlength=3).tolist()
    d = exact_w2[(eps, eta)]
    print(
        f"eps {eps:.2f} eta {eta:.2f}: W2 median {d.median().item():.4f} max {d.max().item():.4f}, "
        f"steps mean {r.steps.float().mean().item():.4f}, ends (random stop, left ball, cap) {ends}, "
        f"exact solves {r.solved} of {r.tests} tests"
    )

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Samples of Algorithm 1: the original digits (top row) and one sample per setting (eps, eta), titled with its exact W2 distance to the original (pixels).", "name": "fig-w2alg-samples"}}
cols = min(8, n_images)
icp.image_grid(
    [digits[:cols]] + [r.images[:cols] for r, _ in runs.values()],
    titles=[None] + [[f"{d:.2f}" for d in exact_w2[setting][:cols].tolist()] for setting in runs],
    row_labels=["original"] + [f"eps {eps:g}\neta {eta:g}" for eps, eta in runs],
    fontsize=7,
)
plt.show()

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Left: exact W2 distance of the samples to their originals for each setting (dots; the bar marks eps). Right: number of accepted ADef steps per walk.", "name": "fig-w2alg-distributions"}}
fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.2))
labels = [f"eps {e:g}\neta {h:g}" for e, h in runs]
rng = np.random.default_rng(seed)
for i, ((eps, eta), (r, _)) in enumerate(runs.items()):
    w = exact_w2[(eps, eta)].numpy()
    axes[0].scatter(i + rng.uniform(-0.2, 0.2, len(w)), w, s=8, alpha=0.6)
    axes[0].hlines(eps, i - 0.35, i + 0.35, color="k")
axes[0].set_xticks(range(len(runs)), labels, fontsize=7)
axes[0].set_ylabel("W2(x', x) (pixels)")
axes[1].boxplot([r.steps.cpu().numpy() for r, _ in runs.values()], tick_labels=labels)
axes[1].tick_params(axis="x", labelsize=7)
axes[1].set_ylabel("accepted steps")
plt.tight_layout()
plt.show()

# %% [markdown]
# With $\eta$ fixed, a larger ball lets the walks run longer: fewer end by leaving it, more
# reach the step cap, and the distances spread up to the radius. With $\varepsilon$ fixed, a
# narrow $\eta$ keeps the coin quiet, so the walks run until their next step would leave
# the ball (or to the cap) and the samples pile up just inside its edge; a wide $\eta$
# stops nearly every walk after its first accepted step. Note also, in
# {numref}`fig-w2alg-path`, that the increments of $W_2$ shrink along the path: each step
# takes the fraction $\alpha$ of the linearised way to the random classifier's nearest
# decision boundary, so the walk approaches that boundary without crossing it. The
# classifier, not the ball, limits how far a walk can go when $\varepsilon$ is large.
#
# ## Every sample inside its ball
#
# The walk only accepts points whose $W_2$ is certified to be at most $\varepsilon$, by the
# upper bound or by the exact solver; the exact distances recomputed from scratch (POT's
# `emd2`) check it once more. Only {glue:text}`w2alg_solved:.0f` % of the walks' tests needed
# the exact solver; the bounds settled the others.

# %% tags=["hide-input"]
checked, outside, worst = 0, 0, 0.0
for (eps, eta), d in exact_w2.items():
    checked += len(d)
    outside += int((d > eps * (1 + 1e-9)).sum())
    if eps > 0:
        worst = max(worst, float((d / eps).max()))
ledger.record(
    "Algorithm 1 samples outside their ball (exact W2, POT)",
    outside,
    claim="every output of Algorithm 1 lies inside its Wasserstein ball (exact W2)",
    source="talk, section 4.5 (Algorithm 1)",
    holds=outside == 0,
)
ledger.record("largest W2(x', x) / eps over all samples", worst)
glue("w2alg_checked", checked, display=False)
glue("w2alg_outside", outside, display=False)
glue("w2alg_worst", worst, display=False)

# %%
# NBVAL_CHECK_OUTPUT
print(f"{checked} samples checked, {outside} outside their ball; largest W2/eps {worst:.4f}")

# %% [markdown]
# {glue:text}`w2alg_outside` of {glue:text}`w2alg_checked` samples lie outside their ball;
# the closest any comes to the edge is {glue:text}`w2alg_worst:.3f` of the radius.
#
# ## As IIC's transformation, and its cost
#
# {py:class}`W2Perturbation(eps, eta) <infoclust.w2_algorithm.W2Perturbation>` is a callable from a batch to a batch on the same device, so it
# can replace the affine $g$ of chapter 3. With `redraw=True` it draws a new random
# classifier at every call, so that repeated calls on the same digits take different paths.
# Each step costs one forward and one backward pass per candidate label of the classifier,
# a warp, the two bounds on $W_2$, and, for the tests they leave open, one exact transport
# problem on the CPU (POT).

# %% tags=["hide-input"]
g = W2Perturbation(
    eps_fixed,
    eta_fixed,
    alpha=alpha,
    sigma=sigma,
    max_iter=max_iter,
    n_random_classes=n_random_classes,
    redraw=True,
    seed=seed,
)
batch = x[:n_timing]
with ic.timer() as t_batch:
    gx = g(batch)
steps_batch = g.last_result_.steps.float().mean().item()
solved_batch = g.last_result_.solved / g.last_result_.tests
per_image = t_batch["seconds"] / len(batch)
ledger.record(
    f"Algorithm 1 time per batch of {len(batch)} (eps {eps_fixed:g}, eta {eta_fixed:g})",
    t_batch["seconds"],
    unit="s",
    seconds=t_batch["seconds"],
)
ledger.record("Algorithm 1 images per second", len(batch) / t_batch["seconds"], unit="images/s")
glue("w2alg_batch_seconds", t_batch["seconds"], display=False)
glue("w2alg_batch_n", len(batch), display=False)
glue("w2alg_batch_steps", steps_batch, display=False)
glue("w2alg_batch_rate", len(batch) / t_batch["seconds"], display=False)
glue("w2alg_batch_solved", 100 * solved_batch, display=False)
print(
    f"g(x) on a batch of {len(batch)}: {t_batch['seconds']:.2f} s on {ledger.device} "
    f"({per_image * 1000:.0f} ms per image, {steps_batch:.2f} steps on average, "
    f"exact solver for {100 * solved_batch:.0f} % of the tests)"
)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Two calls of g = W2Perturbation(redraw=True) on the same digits (rows 2 and 3) against the originals (row 1); titles: exact W2 to the original.", "name": "fig-w2alg-g"}}
cols = min(8, len(batch))
first = (gx, w2_exact(gx[:cols], batch[:cols]))
again = g(batch[:cols])
second = (again, w2_exact(again, batch[:cols]))
icp.image_grid(
    [batch[:cols]] + [imgs[:cols] for imgs, _ in (first, second)],
    titles=[None] + [[f"{v:.2f}" for v in d.tolist()] for _, d in (first, second)],
    row_labels=["x", "g x", "g x"],
    fontsize=7,
)
plt.show()

# %% [markdown]
# One batch of {glue:text}`w2alg_batch_n` digits took {glue:text}`w2alg_batch_seconds:.1f` s,
# {glue:text}`w2alg_batch_rate:.0f` images per second
# ({glue:text}`w2alg_batch_steps:.2f` accepted steps per walk on average; the exact solver
# ran for {glue:text}`w2alg_batch_solved:.0f` % of the tests). IIC's MNIST recipe draws
# 700 transformed images per batch, so chapter 9 computes such perturbations once per
# training image, into a pool that training draws from. The exact $W_2$ is the part a GPU
# cannot accelerate (`benchmarks/bench_perturb.py` measures the rest on both).
#
# ## Results beside the paper's
#
# The talk proposes the algorithm but reports no numbers, so none stand beside ours. Every
# number below was computed by this run.

# %% tags=["hide-input"]
display(Markdown(ledger.markdown()))

# %% [markdown]
# ## Exercises
#
# Each exercise says what you should see. Its worked solution follows it, hidden: the toggle
# beside it shows the code, which ran with the rest of the chapter on the objects computed
# above (so its numbers are this run's), and its output.
#
# **1. How many steps?** Take a walk whose distance grows linearly, $W_2 = k\,c$ after $k$
# accepted steps. It stops after step $k$ with probability $q_k = \exp(-(kc)^2/\eta^2)$, so
# $P(K = k) = q_k \prod_{j<k} (1 - q_j)$, up to the last step $k_{\max}$ inside the ball
# ($k_{\max} c \le \varepsilon$) or the cap `max_iter`, which take the rest of the
# probability. Estimate $c$ from each setting's walks (median of W2 over steps) and compare
# the mean of this distribution with the measured mean number of steps. *You should see* the
# prediction get the direction right, fewer steps for a wider $\eta$ (the walk stops at
# once) and more for a narrower one (it runs to the edge of the ball), but not always the
# number: where the walks take more steps than predicted, their distance does not grow
# linearly (the first steps cover most of it, so the coins see larger distances than $kc$,
# and more walks end at the ball or at the cap than by the coin).

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
# Solution 1: mean steps predicted from a linear walk against the measured mean
for (eps, eta), (r, _) in runs.items():
    moved = r.steps > 0
    if not moved.any():
        print(f"eps {eps:.2f} eta {eta:.2f}: no walk took a step")
        continue
    c = float((exact_w2[(eps, eta)][moved.cpu()] / r.steps[moved].cpu()).median())
    k_max = max(1, min(max_iter, int(eps / c)))
    k = np.arange(1, k_max + 1)
    q = np.exp(-((k * c) ** 2) / eta**2)
    q[-1] = 1.0  # the last step inside the ball (or the cap) ends every walk that got there
    p_k = q * np.concatenate([[1.0], np.cumprod(1 - q[:-1])])
    print(
        f"eps {eps:.2f} eta {eta:.2f}: c = {c:.3f} px per step, predicted mean steps {(k * p_k).sum():.2f}, "
        f"measured {r.steps[moved].float().mean().item():.2f} (walks that took a step)"
    )

# %% [markdown]
# **2. Does the random classifier's label change?** Each walk steps towards the boundary of
# the random classifier's label of $x$. For each setting, measure how often the random
# classifier gives the sample another label than the digit. *You should see* few or no labels
# change at these radii: the walk ends (by the coin, at the edge of the ball or at the cap)
# before it reaches the boundary that a full ADef deformation would cross, so the samples
# stay on the random classifier's side of the digit. (For IIC a change would do no harm: the
# random classifier's labels are not classes.)

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
# Solution 2: share of samples whose random-classifier label differs from the digit's
with torch.no_grad():
    label_x = net(digits).argmax(1)
    for (eps, eta), (r, _) in runs.items():
        changed = (net(r.images).argmax(1) != label_x).float().mean().item()
        print(
            f"eps {eps:.2f} eta {eta:.2f}: random-classifier label changed for {changed:.4f} of the samples"
        )

# %% [markdown]
# **3. Full ADef steps.** Run Algorithm 1 at $\varepsilon$ = `eps_fixed` and $\eta$ =
# `eta_fixed` with `alpha = 1.0` and compare how the walks end with the chapter's `alpha`.
# *You should see* more walks end because their next step left the ball: a full ADef step
# heads all the way to the random classifier's boundary, often farther than $\varepsilon$,
# so the walk ends at $x$ itself or after few steps.

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
# Solution 3: end reasons with the chapter's step size and with full steps
from infoclust.w2_algorithm import END_REASONS

for step in (alpha, 1.0):
    r = w2_perturbation(
        net, digits, eps_fixed, eta_fixed, alpha=step, sigma=sigma, max_iter=max_iter,
        generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip
    ends = torch.bincount(r.end.cpu(), minlength=len(END_REASONS)).tolist()
    print(
        f"alpha {step:.2f}: " + ", ".join(f"{reason} {n}" for reason, n in zip(END_REASONS, ends))
        + f"; samples equal to x: {int((r.steps == 0).sum())}"
    )  # fmt: skip

# %% [markdown]
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
