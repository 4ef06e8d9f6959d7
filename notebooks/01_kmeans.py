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
# (ch-kmeans)=
# # k-means clustering
#
# ## What you will learn
#
# - Lloyd's algorithm for k-means, as the talk states it (section 2), and the quantity it
#   decreases;
# - why k-means *degenerates*: from an unfortunate initialisation, clusters die and one
#   cluster swallows the data, the failure that IIC was designed to avoid
#   (chapter 3);
# - how well k-means clusters MNIST digits from raw pixels, beside the IIC paper's
#   baseline {cite}`ji2019iic`;
# - how k-means++ seeding {cite}`arthur2007kmeanspp` compares with uniform seeding, and
#   how our torch implementation compares with scikit-learn {cite}`pedregosa2011sklearn`.
#
# ## The idea
#
# Given points $x_1, \dots, x_n \in \mathbb{R}^d$ and a number of clusters $k$, k-means looks
# for means $\mu_1, \dots, \mu_k$ and assignments $c_i \in \{1, \dots, k\}$ that minimise the
# *inertia*
#
# $$ J(\mu, c) = \sum_{i=1}^{n} \lVert x_i - \mu_{c_i} \rVert^2 . $$ (eq-kmeans-inertia)
#
# Lloyd's algorithm {cite}`lloyd1982` — the talk's three steps — alternates the two partial
# minimisations of {eq}`eq-kmeans-inertia`:
#
# 1. initialise $k$ means (at random, or by k-means++);
# 2. assign each point to its closest mean, $c_i = \arg\min_j \lVert x_i - \mu_j \rVert^2$;
# 3. replace each mean by the average of its points,
#    $\mu_j = \frac{1}{|C_j|} \sum_{i \in C_j} x_i$ with $C_j = \{i : c_i = j\}$;
#
# and repeats steps 2 and 3 until the means stop moving. Neither step can increase $J$, so
# the algorithm stops, but only at a *local* minimum that depends on step 1. Step 3 is
# undefined when $C_j$ is empty: the plain algorithm leaves $\mu_j$ where it was, and if no
# point is ever closest to it again, the cluster is *dead*. Implementations such as
# scikit-learn's repair this by moving the mean to a far point; {py:class}`infoclust.KMeans <infoclust.kmeans.KMeans>` offers
# both (`empty="keep"` and `empty="relocate"`).
#
# A clustering is scored against the true classes by the accuracy under the best
# one-to-one matching of clusters to classes (Hungarian algorithm {cite}`kuhn1955hungarian`),
# by the normalised mutual information (NMI) {cite}`strehl2002nmi` and by the adjusted Rand
# index (ARI) {cite}`hubert1985ari`.
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
# .venv/bin/papermill 01_kmeans.ipynb out.ipynb -p dataset fashion-mnist -p seed 3
# ```

# %% tags=["parameters"]
dataset = "mnist5k"  # digits | mnist5k | fashion-mnist | mnist | cifar10 | stl10
data_root = None  # folder of torchvision's files (None: ~/.cache/infoclust)
download = False  # let torchvision download a missing data set
n_clusters = 10  # k
n_init = 10  # k-means runs per fit; the lowest inertia wins
max_iter = 300  # Lloyd iterations per run
n_seeds = 10  # seeds in the k-means++ against random comparison
seed = 0
device = "auto"
profile = "custom"

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display
from myst_nb import glue
from sklearn.cluster import KMeans as SKLearnKMeans
from sklearn.datasets import make_blobs

import infoclust as ic
from infoclust import plot as icp

ledger = ic.book.start("01_kmeans", globals(), bounds={"n_seeds": "[2, inf)"})
x, y = ic.load_dataset(dataset, root=data_root, download=download)
X = x.reshape(len(x), -1)
print(f"{dataset}: {tuple(x.shape)} images, {int(y.max()) + 1} classes")

# %% [markdown]
# ## Lloyd's iterations, drawn
#
# Four Gaussian blobs in the plane, k = 4, initialised uniformly at random: every panel of
# {numref}`fig-kmeans-iterations` is one pass of steps 2 and 3, with the means as crosses.

# %% tags=["hide-input"]
pts, blob = make_blobs(n_samples=400, centers=4, cluster_std=1.0, random_state=seed)
pts = torch.tensor(pts, dtype=torch.float32)
demo = ic.KMeans(4, init="random", n_init=1, seed=seed, device="cpu", keep_history=True).fit(pts)
steps = demo.history_[: min(len(demo.history_) - 1, 4) + 1]
glue("kmeans_demo_iter", demo.n_iter_, display=False)
glue("kmeans_demo_inertia", demo.inertia_, display=False)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Lloyd's iterations on four Gaussian blobs (k = 4, uniform initialisation). Colours: step 2's assignment; black crosses: the means before step 3; red crosses: after it.", "name": "fig-kmeans-iterations"}}
fig, axes = plt.subplots(1, len(steps) - 1, figsize=(3.0 * (len(steps) - 1), 3.0), squeeze=False)
for t, ax in enumerate(axes[0]):
    d = torch.cdist(pts, torch.from_numpy(steps[t])).argmin(1)
    ax.scatter(pts[:, 0], pts[:, 1], c=d, s=6, cmap="tab10", vmin=0, vmax=9)
    ax.scatter(steps[t][:, 0], steps[t][:, 1], marker="x", s=80, c="k")
    ax.scatter(steps[t + 1][:, 0], steps[t + 1][:, 1], marker="x", s=80, c="r")
    ax.set_title(f"iteration {t + 1}")
    ax.set_xticks([])
    ax.set_yticks([])
plt.tight_layout()
plt.show()

# %% [markdown]
# Lloyd's iterations stopped after {glue:text}`kmeans_demo_iter` passes, at inertia
# {glue:text}`kmeans_demo_inertia:.1f`.
#
# ## A degenerate run
#
# Now the unfortunate initialisation: all four means start together, far to one side of the
# data. The mean nearest to the data takes every point in step 2; the other three receive
# none, stay where they are in step 3, and never win a point again. With `empty="keep"` (the
# plain algorithm) three clusters die and one holds everything
# ({numref}`fig-kmeans-degenerate`, left). The repair of `empty="relocate"` moves each dead
# mean onto the point farthest from its cluster's mean, so no cluster stays empty (right);
# whether the blobs are then found depends on where those far points lie: the repair fixes
# the symptom, not the dependence on the initialisation.

# %% tags=["hide-input"]
corner = pts.min(0).values - 10.0
bad_init = corner + torch.arange(4, dtype=torch.float32).unsqueeze(1) * torch.tensor([[0.5, 0.0]])
runs = {
    "keep": ic.KMeans(4, init=bad_init, empty="keep", device="cpu").fit(pts),
    "relocate": ic.KMeans(4, init=bad_init, empty="relocate", device="cpu").fit(pts),
}
dead = runs["keep"].n_empty_
ledger.record(
    "dead clusters from an unfortunate start (2-D blobs, k=4)",
    dead,
    claim="k-means degenerates from an unfortunate initialisation (talk, section 3.2.1)",
    source="talk, section 3.2.1",
    holds=dead > 0,
)
glue("kmeans_dead", dead, display=False)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The same data and the same unfortunate initialisation (all means far to the lower left, black crosses; final means in red). Left: plain Lloyd iterations, where clusters die. Right: with empty clusters relocated to the farthest points.", "name": "fig-kmeans-degenerate"}}
fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.4))
for ax, (mode, km) in zip(axes, runs.items()):
    ax.scatter(pts[:, 0], pts[:, 1], c=km.labels_, s=6, cmap="tab10", vmin=0, vmax=9)
    ax.scatter(bad_init[:, 0], bad_init[:, 1], marker="x", c="k", s=60)
    ax.scatter(km.cluster_centers_[:, 0], km.cluster_centers_[:, 1], marker="x", c="r", s=80)
    acc = ic.cluster_accuracy(torch.as_tensor(blob), km.labels_)
    ax.set_title(f'empty="{mode}": {km.n_empty_} dead, accuracy {acc:.2f}')
plt.tight_layout()
plt.show()

# %% [markdown]
# In this run {glue:text}`kmeans_dead` of the four clusters died. Degeneration is not an
# exotic corner case for clustering in general: any method whose objective is satisfied by
# putting everything into one cluster can end there. The IIC chapter shows an objective,
# mutual information, whose value is zero for such a clustering.
#
# ## k-means on MNIST pixels
#
# Each image becomes the vector of its pixels, and k-means with k-means++ seeding and
# `n_init` restarts clusters them. {numref}`fig-kmeans-centres` shows the learnt means as
# images, each titled with the class that the Hungarian matching assigns to it.

# %% tags=["hide-input"]
with ic.timer() as t_fit:
    km = ic.KMeans(n_clusters, n_init=n_init, max_iter=max_iter, seed=seed, device=device).fit(X)
scores = ic.evaluate(y, km.labels_)
match = ic.metrics.hungarian_match(y, km.labels_)

# %%
# NBVAL_CHECK_OUTPUT
print(f"k-means on {dataset} pixels (k={n_clusters}, n_init={n_init}, seed={seed}):")
print(
    f"  accuracy {scores['acc']:.4f}  NMI {scores['nmi']:.4f}  ARI {scores['ari']:.4f}  inertia {km.inertia_:.1f}"
)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The k-means means on the data set's pixels, drawn as images and titled with the class matched to each cluster (Hungarian matching).", "name": "fig-kmeans-centres"}}
centres = km.cluster_centers_.reshape(n_clusters, *x.shape[1:])
icp.image_grid(
    centres, ncols=min(n_clusters, 10), titles=[f"class {match.get(j, '-')}" for j in range(n_clusters)]
)
plt.show()

# %% tags=["hide-input"]
paper_acc = {"mnist": 57.2, "mnist5k": 57.2, "cifar10": 22.9, "stl10": 19.2}.get(dataset)
ledger.record(
    f"k-means accuracy on {dataset} pixels",
    100 * scores["acc"],
    unit="%",
    paper=paper_acc,
    source="IIC paper, Table 1 (k-means, full MNIST)" if paper_acc else "",
    claim="k-means on raw pixels reaches the IIC paper's baseline (within 5 points)" if paper_acc else "",
    holds=None if paper_acc is None else abs(100 * scores["acc"] - paper_acc) <= 5.0,
    seconds=t_fit["seconds"],
)
ledger.record(f"k-means NMI on {dataset} pixels", scores["nmi"])
ledger.record(f"k-means ARI on {dataset} pixels", scores["ari"])
glue("kmeans_acc", 100 * scores["acc"], display=False)
glue("kmeans_nmi", scores["nmi"], display=False)
print(f"fit took {t_fit['seconds']:.2f} s on {ledger.device}")

# %% [markdown]
# The paper's 57.2 % is for all 70,000 MNIST digits; `mnist5k` is a 5,000-digit subset of the
# same images, so the numbers are comparable but not identical (the `full` profile runs on all
# of MNIST when its files are available). Our accuracy is {glue:text}`kmeans_acc:.1f` %, with
# NMI {glue:text}`kmeans_nmi:.3f`.
#
# ## k-means++ against uniform seeding
#
# One run per seed (`n_init=1`), `n_seeds` seeds, each seeding method: k-means++ gives lower
# inertia and less spread ({numref}`fig-kmeans-seeding`).

# %% tags=["hide-input"]
seeding = {"k-means++": [], "random": []}
for s in range(n_seeds):
    for init in seeding:
        run = ic.KMeans(n_clusters, init=init, n_init=1, max_iter=max_iter, seed=s, device=device).fit(X)
        seeding[init].append((run.inertia_, ic.cluster_accuracy(y, run.labels_), run.n_iter_))
summary = {init: np.array(v) for init, v in seeding.items()}
pp, rnd = summary["k-means++"][:, 0].mean(), summary["random"][:, 0].mean()
ledger.record(
    "mean inertia, k-means++ / random seeding",
    pp / rnd,
    claim="k-means++ seeding reaches lower inertia than uniform seeding on average",
    source="Arthur & Vassilvitskii (2007)",
    holds=bool(pp <= rnd),
)

# %%
# NBVAL_CHECK_OUTPUT
for init, v in summary.items():
    print(
        f"{init:>9}: inertia {v[:, 0].mean():.1f} +- {v[:, 0].std():.1f}, "
        f"accuracy {v[:, 1].mean():.4f} +- {v[:, 1].std():.4f}, iterations {v[:, 2].mean():.1f}"
    )

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Final inertia (left) and clustering accuracy (right) of single k-means runs over seeds, for k-means++ and uniform seeding.", "name": "fig-kmeans-seeding"}}
fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.0))
for ax, col, label in zip(axes, (0, 1), ("inertia", "accuracy")):
    ax.boxplot([summary[i][:, col] for i in summary], tick_labels=list(summary))
    ax.set_ylabel(label)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Against scikit-learn
#
# The same data, the same number of clusters, restarts and iteration cap, run by
# scikit-learn's `KMeans` (Lloyd). Started from the same centres, the two must reach the same
# inertia; the time ratio is this run's (the benchmark `benchmarks/bench_kmeans.py` measures
# it properly).

# %% tags=["hide-input"]
start = X[torch.randperm(len(X), generator=ledger.generator)[:n_clusters]]
ours = ic.KMeans(n_clusters, init=start, n_init=1, max_iter=max_iter, device="cpu").fit(X)
theirs = SKLearnKMeans(n_clusters, init=start.numpy(), n_init=1, max_iter=max_iter, algorithm="lloyd").fit(
    X.numpy()
)
rel = abs(ours.inertia_ - theirs.inertia_) / theirs.inertia_
ledger.record(
    "relative inertia difference to scikit-learn (same start)",
    rel,
    claim="infoclust KMeans matches scikit-learn's inertia within 0.1 % from the same centres",
    source="scikit-learn KMeans",
    holds=rel <= 1e-3,
)
with ic.timer() as t_ours:
    ic.KMeans(n_clusters, n_init=n_init, max_iter=max_iter, seed=seed, device="cpu").fit(X)
with ic.timer() as t_sk:
    SKLearnKMeans(n_clusters, n_init=n_init, max_iter=max_iter, random_state=seed).fit(X.numpy())
ledger.record(
    "time, infoclust / scikit-learn (CPU, this run)",
    t_ours["seconds"] / t_sk["seconds"],
    seconds=t_ours["seconds"] + t_sk["seconds"],
)
print(
    f"same start: inertia {ours.inertia_:.2f} (infoclust) vs {theirs.inertia_:.2f} (scikit-learn), "
    f"relative difference {rel:.2e}"
)
print(f"time with n_init={n_init}: infoclust {t_ours['seconds']:.2f} s, scikit-learn {t_sk['seconds']:.2f} s")

# %% [markdown]
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
# **1. What do the means average over?** Look at the means of {numref}`fig-kmeans-centres`.
# For each cluster, find the share of its images that belong to its most frequent class (its
# *purity*) and that class. *You should see* the blurred means, which look like two digits
# laid over each other, belong to the least pure clusters: a mean averages over every image of
# its cluster, whatever their class.

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
# Solution 1: purity of each cluster from the counts of (cluster, class) pairs
counts = ic.metrics.contingency(y, km.labels_)
purity = counts.max(1) / counts.sum(1)
for j in np.argsort(purity):
    print(
        f"cluster {j}: {counts[j].sum():>5} images, purity {purity[j]:.2f} (mostly class {counts[j].argmax()})"
    )
print(
    f"least pure cluster: {int(np.argmin(purity))}; compare its mean in the figure with the purest, {int(np.argmax(purity))}"
)

# %% [markdown]
# **2. How far must the start be for clusters to die?** In the degenerate run above, the
# initial means sit 10 units beyond the corner of the data. Move them closer (0 to 10 units)
# and count the dead clusters, with `empty="keep"` and with `empty="relocate"`. *You should
# see* dead clusters once the start is far enough that one mean is closer to every point than
# the others are, and never a dead cluster with the repair, which moves an empty cluster's mean
# to a far point wherever it started.

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
# Solution 2: the same four starting means, moved towards the data
for gap in (0.0, 0.5, 1.0, 1.5, 2.0, 5.0, 10.0):
    init = (
        pts.min(0).values
        - gap
        + torch.arange(4, dtype=torch.float32).unsqueeze(1) * torch.tensor([[0.5, 0.0]])
    )
    dead_keep = ic.KMeans(4, init=init, empty="keep", device="cpu").fit(pts).n_empty_
    dead_relocate = ic.KMeans(4, init=init, empty="relocate", device="cpu").fit(pts).n_empty_
    print(
        f"start {gap:4.1f} units beyond the corner: {dead_keep} dead (keep), {dead_relocate} dead (relocate)"
    )

# %% [markdown]
# **3. More clusters than classes.** Fit k-means with twice `n_clusters` clusters. Score it
# with the one-to-one accuracy, with NMI, and with the *many-to-one* accuracy (each cluster
# votes for its most frequent class, as IIC's overclustering is scored). *You should see* the
# one-to-one accuracy fall, since half the clusters get no class, the many-to-one accuracy
# rise above the `n_clusters` fit's, and NMI move much less than either: which one you report
# must say how clusters were matched.

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
# Solution 3: one fit with 2k clusters, three scores
km2 = ic.KMeans(2 * n_clusters, n_init=1, max_iter=max_iter, seed=seed, device=device).fit(X)
many_to_one = ic.metrics.contingency(y, km2.labels_).max(1).sum() / len(y)
print(f"k = {n_clusters}: one-to-one accuracy {scores['acc']:.4f}, NMI {scores['nmi']:.4f}")
print(
    f"k = {2 * n_clusters}: one-to-one accuracy {ic.cluster_accuracy(y, km2.labels_):.4f}, "
    f"NMI {ic.nmi(y, km2.labels_):.4f}, many-to-one accuracy {many_to_one:.4f}"
)

# %% [markdown]
# **4. k-medians and outliers.** Write *k-medians*, Lloyd's loop with the coordinate-wise
# median in place of the mean, in a few lines of torch, and run it and `ic.KMeans` from the
# same start on the 2-D blobs with 20 far outliers added. *You should see* the outliers pull
# a k-means mean away from its blob (or capture a cluster of their own), while the medians
# stay inside the blobs: a median ignores how far the few outliers are.


# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
# Solution 4: k-medians in torch beside k-means, from the same start
def k_medians(points, centres, n_iter=50):
    for _ in range(n_iter):
        labels = torch.cdist(points, centres).argmin(1)
        centres = torch.stack(
            [
                points[labels == j].median(0).values if (labels == j).any() else centres[j]
                for j in range(len(centres))
            ]
        )
    return centres


far = pts.max(0).values + 30.0 + torch.randn(20, 2, generator=ledger.generator)
noisy = torch.cat([pts, far])
init4 = noisy[torch.randperm(len(pts), generator=ledger.generator)[:4]]  # four points of the blobs
means = ic.KMeans(4, init=init4, n_init=1, device="cpu").fit(noisy).cluster_centers_
medians = k_medians(noisy, init4)
blob_centres = torch.stack([pts[torch.as_tensor(blob) == j].mean(0) for j in range(4)])
for name, c in (("k-means", torch.as_tensor(means)), ("k-medians", medians)):
    off = torch.cdist(c, blob_centres).min(1).values
    print(f"{name:>9}: distance of each centre to the nearest blob's centre {np.round(off.numpy(), 2)}")

# %% [markdown]
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
