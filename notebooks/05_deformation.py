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
# (ch-deformation)=
# # Random deformations
#
# ## What you will learn
#
# - how a vector field deforms an image, $I(x + \tau(x))$ (talk, section 4.2), and how it is
#   computed by bilinear sampling, with the pixel conventions that make a one-pixel field a
#   one-pixel shift;
# - what Gaussian smoothing of a random field changes, for several widths $\sigma$ and
#   magnitudes;
# - how far deformed digits are from the originals in W2 and in L2 (chapter
#   {ref}`ch-wasserstein`);
# - how our random deformation, a transformation $g$ for IIC {cite}`ji2019iic`, differs from
#   torchvision's `ElasticTransform`, its well-known relative {cite}`simard2003elastic`.
#
# ## The idea
#
# A deformation is a vector field $\tau : \{1..W\} \times \{1..H\} \to \mathbb{R}^2$; the
# deformed image is
#
# $$ I_\tau(x) = I(x + \tau(x)) , $$ (eq-deform-warp)
#
# evaluated between pixel centres by bilinear interpolation and zero outside the image
# ({py:func}`infoclust.deform.warp`). Fields are in pixels: `grid_sample` works in normalised
# coordinates, and with `align_corners=True` the values $-1$ and $+1$ are the *centres* of
# the first and last pixels, so $d$ pixels are $2d/(W - 1)$ normalised units and a
# constant field of one pixel shifts the image by exactly one pixel (a unit test checks
# it). Half-pixel errors come from mixing this with the other convention.
#
# A random field draws an independent standard normal vector per pixel. Used as is, it
# jitters each pixel independently. Smoothed by a Gaussian filter $S_\sigma$ of width
# $\sigma$ pixels, neighbouring pixels move together and the field becomes a smooth,
# elastic-looking motion:
#
# $$ \tau = \frac{m}{\lVert S_\sigma z \rVert_T}\, S_\sigma z , \qquad
#    z(x) \sim \mathcal{N}(0, I_2) \text{ i.i.d.}, \qquad
#    \lVert \tau \rVert_T = \max_x |\tau(x)|_2 , $$ (eq-deform-field)
#
# scaled to a chosen magnitude $m$ in the T-norm of ADef {cite}`alaifari2019adef` (the
# largest displacement of any pixel; `norm="rms"` scales the root mean square instead).
# Moving every pixel's content by at most $m$ pixels looks like a transport plan of cost
# at most $m^2$, which would give $W_2(I, I_\tau) \le m$. It is not quite one: the warp
# moves *values*, not mass (there is no Jacobian factor), so a field that compresses a
# stroke makes mass and one that stretches it loses mass, and bilinear resampling blurs.
# The distances below measure how much that matters.
#
# ## Running it
#
# % Shared by every chapter (in Jupyter: read book/running.md):
# ```{include} ../book/running.md
# ```
#
# This chapter, for example (`-y` for a whole list):
#
# ```bash
# .venv/bin/papermill 05_deformation.ipynb out.ipynb -p magnitudes 2.0 -p seed 3 -y "sigmas: [0.0, 3.0]"
# ```

# %% tags=["parameters"]
dataset = "mnist5k"  # digits | mnist5k | fashion-mnist | mnist | cifar10 | stl10
data_root = None  # folder of torchvision's files (None: ~/.cache/infoclust)
download = False  # let torchvision download a missing data set
n_images = 96  # digits over which the distances are averaged
sigmas = [0.0, 1.0, 2.0, 4.0]  # widths of the Gaussian filter of the field, pixels
magnitudes = [0.5, 1.0, 2.0, 3.0]  # T-norms of the fields, pixels
norm = "max"  # max (T-norm) | rms
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
from infoclust.deform import RandomDeformation, gaussian_filter, random_field, t_norm, warp
from infoclust.wasserstein import w2_exact

ledger = ic.book.start("05_deformation", globals(), bounds={"n_images": "[2, inf)", "magnitudes": "(0, inf)"})
x, y = ic.load_dataset(dataset, root=data_root, download=download, n=n_images, seed=seed)
x = x.to(ledger.device)
print(f"{dataset}: {tuple(x.shape)} images")

# %% [markdown]
# ## Random fields with and without smoothing
#
# The same noise, smoothed by Gaussian filters of increasing width and scaled to the same
# T-norm ({numref}`fig-deform-fields`): without smoothing, neighbouring arrows are
# unrelated; with it, they turn into a few broad swirls.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "One random field (i.i.d. normal vectors per pixel) smoothed by Gaussian filters of width sigma and scaled to a T-norm of 2 pixels, drawn every second pixel.", "name": "fig-deform-fields"}}
h, w = x.shape[-2:]
noise = torch.randn(1, 2, h, w, generator=ledger.generator)
fig, axes = plt.subplots(
    1, len(sigmas), figsize=(2.6 * len(sigmas), 2.8), squeeze=False, layout="constrained"
)
for ax, s in zip(axes[0], sigmas):
    f = gaussian_filter(noise, s)
    icp.vector_field(2.0 * f[0] / t_norm(f), ax=ax, step=2).set_title(f"sigma = {s:g}")
plt.show()

# %% [markdown]
# ## Deformed digits
#
# One digit, one field per cell ({numref}`fig-deform-digits`): rows are filter widths,
# columns magnitudes. Unsmoothed fields leave the shape in place and fray its strokes;
# smoothed fields bend and stretch the whole digit, the kind of variation handwriting has.

# %% tags=["hide-input"]
digit = x[:1]
rows, titles = [], []
for r, s in enumerate(sigmas):
    outs = [
        warp(
            digit,
            random_field(1, h, w, m, sigma=s, norm=norm, generator=ledger.generator, device=ledger.device),
        )
        for m in magnitudes
    ]
    rows.append(torch.cat([digit] + outs))
    titles.append(
        ["original" if r == 0 else None]
        + [f"m {m:g}: W2 {w2_exact(digit, o).item():.2f}" for m, o in zip(magnitudes, outs)]
    )

# %% tags=["hide-input"] mystnb={"figure": {"caption": "A digit deformed by random fields (eq. eq-deform-field) for several filter widths sigma (rows) and T-norms (columns, pixels). Titles: W2 to the original (pixels).", "name": "fig-deform-digits"}}
icp.image_grid(rows, titles=titles, row_labels=[f"sigma {s:g}" for s in sigmas], size=1.5)
plt.show()

# %% [markdown]
# ## How far do deformations move a digit?
#
# For `n_images` digits, one random field each, for every filter width and magnitude: the
# exact W2 and the L2 distance between each deformed digit and its original
# ({numref}`fig-deform-distances`).

# %% tags=["hide-input"]
w2 = np.zeros((len(sigmas), len(magnitudes)))
l2 = np.zeros_like(w2)
excess_max = -np.inf  # largest W2 - T-norm
with ic.timer() as t_dist:
    for i, s in enumerate(sigmas):
        for j, m in enumerate(magnitudes):
            field = random_field(
                n_images, h, w, m, sigma=s, norm=norm, generator=ledger.generator, device=ledger.device
            )
            out = warp(x, field)
            d = w2_exact(x, out).cpu().numpy()
            w2[i, j] = d.mean()
            l2[i, j] = (out - x).flatten(1).norm(dim=1).mean().item()
            excess_max = max(excess_max, float((d - t_norm(field).cpu().numpy()).max()))

# %%
# NBVAL_CHECK_OUTPUT
print("mean W2 (px), rows sigma, columns magnitude", magnitudes)
for s, row in zip(sigmas, w2):
    print(f"  sigma {s:4.1f}: " + " ".join(f"{v:7.4f}" for v in row))
print("mean L2")
for s, row in zip(sigmas, l2):
    print(f"  sigma {s:4.1f}: " + " ".join(f"{v:7.4f}" for v in row))
print(f"largest W2 - T-norm over all digits and settings: {excess_max:.4f} px")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Mean W2 (left, pixels) and mean L2 (right) between digits and their random deformations, against the field's magnitude, one curve per filter width sigma. Dashed: W2 = magnitude.", "name": "fig-deform-distances"}}
fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.4))
for i, s in enumerate(sigmas):
    axes[0].plot(magnitudes, w2[i], "o-", label=f"sigma {s:g}")
    axes[1].plot(magnitudes, l2[i], "o-", label=f"sigma {s:g}")
axes[0].plot(magnitudes, magnitudes, "k--", lw=1)
axes[0].set_xlabel(f"magnitude ({norm}-norm, px)")
axes[0].set_ylabel("mean W2 (px)")
axes[1].set_xlabel(f"magnitude ({norm}-norm, px)")
axes[1].set_ylabel("mean L2")
axes[0].legend()
plt.tight_layout()
plt.show()

# %% tags=["hide-input"]
for i, s in enumerate(sigmas):
    ledger.record(
        f"mean W2 / magnitude, sigma = {s:g}",
        float((w2[i] / np.array(magnitudes)).mean()),
        seconds=t_dist["seconds"] if i == 0 else None,
    )
    ledger.record(f"mean L2 at magnitude {magnitudes[-1]:g} px, sigma = {s:g}", float(l2[i, -1]))
ledger.record(f"largest W2 - magnitude ({norm}-norm) over digits and settings", excess_max, unit="px")
glue("deform_excess", excess_max, display=False)
glue("deform_w2_rough", float(w2[0, -1]), display=False)
glue("deform_w2_smooth", float(w2[-1, -1]), display=False)

# %% [markdown]
# At the largest magnitude, unsmoothed fields move the digits by {glue:text}`deform_w2_rough:.2f`
# pixels in W2 on average and the most smoothed ones by {glue:text}`deform_w2_smooth:.2f`:
# a smooth field carries whole strokes along, an i.i.d. one mostly swaps mass between
# neighbours, which averages out. W2 stays below the magnitude on average, but single
# digits exceed it by up to {glue:text}`deform_excess:.2f` pixels: the warp creates and
# destroys mass where the field compresses or stretches the strokes (no Jacobian factor)
# and bilinear resampling blurs, and W2, which compares normalised histograms, pays for
# both even when the field is small. A deformation is therefore not a perturbation with
# a W2 budget equal to its size; the talk's Algorithm 1 ({ref}`ch-w2-algorithm`) checks
# the W2 of every step explicitly. In L2, the picture differs: any field that frays the strokes
# makes the pixels disagree, so L2 is large even when W2 is small.
#
# ## A transformation g for IIC, and torchvision's ElasticTransform
#
# {py:class}`RandomDeformation(magnitude, sigma, seed=...) <infoclust.deform.RandomDeformation>` is a ready-made $g$ for IIC's objective
# $\max I(E(x), E(gx))$ (talk eq. (4)): called on a batch, it draws one field per image
# from its own seeded generator (the same fields on every device, and the global random
# state untouched), with magnitudes fixed (or drawn uniformly from a range) in pixels.
# Its well-known relative is torchvision's `ElasticTransform` (after
# {cite}`simard2003elastic`): uniform noise in $[-1, 1]$ blurred by a Gaussian of width
# `sigma`, scaled by `alpha` in normalised coordinates, on the pixel grid of
# `align_corners=False`. It differs from ours in three ways: it draws **one field per
# call**, shared by every image of a batch tensor (so a batch gets one deformation, not one
# per image); its size is set by `alpha` before blurring, so the displacement in pixels
# depends on `sigma` and the image size, while ours is set after smoothing, exactly, in
# pixels; and it draws its noise from the global generator on the CPU. The demonstration:
# eight copies of the same digit through each ({numref}`fig-deform-g`).

# %% tags=["hide-input"]
from torchvision.transforms import v2 as tv

copies = digit.repeat(8, 1, 1, 1)
g = RandomDeformation(magnitude=(1.0, 2.5), sigma=2.0, seed=seed)
ours = g(copies)
theirs = tv.ElasticTransform(alpha=30.0, sigma=3.0)(copies.cpu())
distinct_ours = len(torch.unique(ours.flatten(1).round(decimals=5), dim=0))
distinct_theirs = len(torch.unique(theirs.flatten(1).round(decimals=5), dim=0))
batch = x[: min(len(x), 256)]
with ic.timer() as t_g:
    g(batch)

# %%
# NBVAL_CHECK_OUTPUT
print(
    f"distinct outputs among 8 copies of one digit: RandomDeformation {distinct_ours}, "
    f"torchvision ElasticTransform {distinct_theirs}"
)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Eight copies of one digit through RandomDeformation (top: one field per image, T-norm drawn from [1, 2.5] px, sigma 2) and through torchvision's ElasticTransform (bottom: alpha 30, sigma 3; one field for the whole batch).", "name": "fig-deform-g"}}
icp.image_grid([ours, theirs], row_labels=["RandomDeformation", "torchvision\nElasticTransform"])
plt.show()

# %% tags=["hide-input"]
ledger.record(
    "distinct deformations among 8 copies, RandomDeformation",
    distinct_ours,
    claim="RandomDeformation draws one field per image of a batch",
    holds=distinct_ours == 8,
)
ledger.record(
    "distinct deformations among 8 copies, torchvision ElasticTransform",
    distinct_theirs,
    claim="ElasticTransform shares one field across a batch tensor",
    source="torchvision.transforms.v2.ElasticTransform",
    holds=distinct_theirs == 1,
)
ledger.record(
    f"RandomDeformation on {len(batch)} images ({ledger.device.type})",
    t_g["seconds"],
    unit="s",
    seconds=t_g["seconds"],
)
print(f"g on {len(batch)} images: {t_g['seconds'] * 1000:.1f} ms on {ledger.device}")

# %% [markdown]
# ## Results beside the paper's
#
# Every number below was computed by this run (its seed, device and time are in the first
# output of the chapter) and is also written to the book's results ledger. The talk shows
# no numbers for this section; the claims are ours, made precise.

# %% tags=["hide-input"]
display(Markdown(ledger.markdown()))

# %% [markdown]
# ## Exercises
#
# Each exercise says what you should see. Its worked solution follows it, hidden: the toggle
# beside it shows the code, which ran with the rest of the chapter on the objects computed
# above (so its numbers are this run's), and its output.
#
# **1. T-norm or root mean square?** At the largest magnitude, draw the fields of every width
# again with `norm="rms"` and put their mean W2 beside the T-norm's of
# {numref}`fig-deform-distances`. *You should see* every width move the digits farther under
# the root mean square than under the T-norm of the same size (an rms of $m$ pixels moves a
# typical pixel by about $m$, a T-norm of $m$ only the largest one), and the smooth fields
# move them farther under both norms: neighbouring pixels move together, so the ink travels
# as a whole instead of being shuffled locally.

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
# Solution 1: mean W2 at the largest magnitude, fields scaled by their T-norm or by their rms
m_top = max(magnitudes)
for i, s in enumerate(sigmas):
    field_rms = random_field(
        n_images, h, w, m_top, sigma=s, norm="rms", generator=ledger.generator, device=ledger.device
    )
    w2_rms = w2_exact(x, warp(x, field_rms)).mean()
    w2_max = w2[i, magnitudes.index(m_top)] if norm == "max" else float("nan")
    print(f"sigma {s:3.1f} px, magnitude {m_top} px: mean W2 {w2_max:.3f} px (T-norm), {w2_rms:.3f} px (rms)")

# %% [markdown]
# **2. Composing two deformations.** Deforming an image by a field $\tau_1$ and the result by
# $\tau_2$ samples $I(p + \tau_2(p) + \tau_1(p + \tau_2(p)))$: the composition is the
# deformation by the field $\tau_2 + \tau_1 \circ (\mathrm{id} + \tau_2)$, which `warp` computes
# when it deforms $\tau_1$ itself by $\tau_2$. Compare that field with $\tau_1 + \tau_2$ for
# small and large smooth fields. *You should see* the two agree closely for small fields and
# drift apart in proportion to their size: they differ by
# $\tau_1(p + \tau_2(p)) - \tau_1(p) \approx \nabla\tau_1\, \tau_2$, a product of two small
# quantities. (Warping an image twice also interpolates it twice, which blurs it: compare the
# fields, not the images.)

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
# Solution 2: the field of the composition against the sum of the fields
for m in (0.25, 0.5, 1.0, 3.0):
    tau_1, tau_2 = (
        random_field(n_images, h, w, m, sigma=2.0, generator=ledger.generator, device=ledger.device)
        for _ in range(2)
    )
    composed = tau_2 + warp(tau_1, tau_2)  # x(p + tau_2(p) + tau_1(p + tau_2(p)))
    gap = t_norm(composed - (tau_1 + tau_2)) / t_norm(tau_1 + tau_2)
    print(f"T-norm {m:4.2f} px each: T-norm of the difference / T-norm of the sum = {gap.mean():.3f}")

# %% [markdown]
# **3. Uniform noise under the filter.** Draw the field's noise from the uniform distribution
# on $[-1, 1]$ (as torchvision's `ElasticTransform` does) instead of the standard normal,
# smooth it with the same filter (`gaussian_filter`, $\sigma$ = 2 px) and scale it to the same
# T-norm. *You should see* no difference in how far the two kinds move the digits (mean W2
# within each other's spread): each smoothed value is a weighted sum of many independent
# draws, which is close to Gaussian whichever distribution they come from.

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
# Solution 3: W2 of Gaussian and of uniform smoothed fields with the same T-norm
m = max(magnitudes)
gaussian_fields = random_field(n_images, h, w, m, sigma=2.0, generator=ledger.generator, device=ledger.device)
uniform = gaussian_filter(2 * torch.rand(n_images, 2, h, w, generator=ledger.generator) - 1, 2.0).to(
    ledger.device
)
uniform_fields = uniform * (m / t_norm(uniform)).view(-1, 1, 1, 1)
for label, field in (("Gaussian noise", gaussian_fields), ("uniform noise", uniform_fields)):
    d = w2_exact(x, warp(x, field))
    print(f"{label:>14}: T-norm {t_norm(field).mean():.2f} px, W2 {d.mean():.3f} +- {d.std():.3f} px")

# %% [markdown]
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
