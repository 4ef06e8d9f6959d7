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
# (ch-iic)=
# # Invariant Information Clustering
#
# ## What you will learn
#
# - the objective of IIC {cite}`ji2019iic`: the mutual information between the clusters of
#   an image and of a randomly perturbed copy of it (talk, section 3.2);
# - why that objective cannot be satisfied by a degenerate clustering, read off the joint
#   distribution $\mathbf{P}$ of the two cluster assignments, and where k-means (chapter 1)
#   degenerates on the same images and IIC does not;
# - how IIC is trained: sub-heads, an overclustering head, sample repeats and the
#   label-free choice of the reported sub-head; and how far a 2-core CPU gets in about a
#   minute beside the paper's 99.2 % on MNIST;
# - which of the paper's ingredients matter on digits, in an ablation with paired seeds and
#   confidence intervals, and how that compares in direction with the paper's on STL10.
#
# ## The idea
#
# A network $E_\psi$ with a softmax output maps an image $x$ to a distribution over $C$
# clusters, $P(z = c \mid x) = E_{\psi, c}(x)$. For a pair of images $(x, x')$ that show the
# same thing, IIC maximises the mutual information of their cluster assignments (talk,
# eq. 2),
#
# $$ \max_\psi \; I\big(E_\psi(x), E_\psi(x')\big) . $$ (eq-iic-objective)
#
# Over a batch of $n$ pairs, the joint distribution of $(z, z')$ is the $C \times C$ matrix
# (talk, eq. 3)
#
# $$ \mathbf{P} = \frac{1}{n} \sum_{i=1}^{n} E_\psi(x_i)\, E_\psi(x'_i)^\top , $$ (eq-iic-joint)
#
# symmetrised, $(\mathbf{P} + \mathbf{P}^\top)/2$, because the pair $(x, x')$ is as likely
# as $(x', x)$. Its row and column sums are the marginals $P_c$ and $P_{c'}$, and because the
# output space is discrete and small, the mutual information is computed exactly:
#
# $$ I(z; z') = \sum_{c, c'} \mathbf{P}_{cc'} \ln \frac{\mathbf{P}_{cc'}}{P_c P_{c'}}
#    = H(z) - H(z \mid z') . $$ (eq-iic-mi)
#
# Unlabelled data have no pairs, so the pair is made: $x' = g x$ for a random
# perturbation $g$ that keeps the class (rotation, scaling, cropping, colour jitter), and
# the objective becomes (talk, eq. 4)
#
# $$ \max_\psi \; I\big(E_\psi(x), E_\psi(g x)\big) . $$ (eq-iic-invariant)
#
# The decomposition in {eq}`eq-iic-mi` is the whole argument against degeneration:
# $H(z)$ is largest when all clusters are equally used, and $H(z \mid z')$ is zero when the
# cluster of $g x$ predicts that of $x$. A clustering that puts every image into one
# cluster has $H(z) = 0$ and so $I = 0$, the worst possible value, while a confident,
# balanced one reaches the maximum $\ln C$. The loss of the reference code,
#
# $$ \mathcal{L} = -\sum_{c, c'} \mathbf{P}_{cc'} \big(\ln \mathbf{P}_{cc'}
#    - \lambda \ln P_c - \lambda \ln P_{c'}\big) , $$ (eq-iic-loss)
#
# equals $-I(z; z')$ for $\lambda = 1$ (`infoclust.iic.iic_loss`); entries below machine
# epsilon are clamped before the logarithm. The reference implementation writes that clamp
# into broadcast (expanded) views of the marginals, which recent PyTorch versions reject;
# ours builds new tensors instead.
#
# Three training devices of the paper appear below. *Sub-heads*: each head is several
# linear layers on the same trunk, trained together from different initialisations; the
# one with the lowest loss is reported, which needs no labels. *Overclustering*: a second
# head with many more clusters ($k_\text{over} = 50$ for MNIST) is trained in alternation
# with the main head ($k = 10$), to shape the trunk with finer structure. *Sample
# repeats*: each image appears $r$ times per batch, each time with its own $g$. The
# reference MNIST script has a bug that silences the second device: its network ignores the
# head argument in the forward pass, so the "overclustering" passes train the main head
# again and the $k = 50$ head is never trained. Here the heads are separate modules and the
# overclustering head is trained; {numref}`fig-iic-overclusters` shows what it learns.
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
# .venv/bin/papermill 03_iic.ipynb out.ipynb -p epochs 3 -p seed 3
# ```

# %% tags=["parameters"]
dataset = "mnist5k"  # digits | mnist5k | fashion-mnist | mnist | cifar10 | stl10
data_root = None  # folder of torchvision's files (None: ~/.cache/infoclust)
download = False  # let torchvision download a missing data set
n_images: int | None = None  # train on a random subset of this many images (None: all)
crop = 20  # centre crop of the original images, px (the paper's MNIST view)
input_size = 12  # the crop is resized to this side, px (24 in the paper)
preset = "cpu"  # IIC's recipe (infoclust.iic.PRESETS): "cpu" (small trunk, 32 x 4, 2e-3, lamb 1.5) or "paper"
trunk: str | None = None  # "small" (CPU) or "vgg" (the paper's network); None: the preset's
n_clusters = 10  # k, clusters of the main head
n_overclusters: int | None = 50  # clusters of the overclustering head (None: no such head)
n_subheads: int | None = None  # sub-heads per head (None: the preset's, 5)
epochs = 6  # training epochs (one epoch: 1 overclustering + 2 main passes)
batch_size: int | None = None  # distinct images per batch (None: the preset's; 32 "cpu", 140 "paper")
repeats: int | None = None  # sample repeats: each image r times per batch, own g each (None: preset's)
lr: float | None = None  # Adam learning rate (None: the preset's; 2e-3 "cpu", 1e-4 "paper")
lamb: float | None = None  # weight of the marginal entropies (None: preset's; 1.5 "cpu", 1: exactly -I)
ablation_epochs = 4  # epochs of each run of the ablation
ablation_seeds = 5  # paired seeds of each ablation arm (0: skip the ablation)
distributed_images = 256  # images of the one-versus-two-processes check (0: skip the check)
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
from infoclust.augment import MNISTTransform, crop_resize
from infoclust.book import report
from infoclust.experiment import Arm, compare_arms, run_arms
from infoclust.iic import IIC, information, joint_distribution

ledger = ic.book.start(
    "03_iic",
    globals(),
    choices={"preset": tuple(ic.iic.PRESETS)},
    bounds={"ablation_epochs": "[1, inf)", "ablation_seeds": "[0, inf)", "distributed_images": "[0, inf)"},
)
# The run's accuracy is marked borderline for a 95 % target within this many points, fixed before
# the run (one seed, two processors: 94.7 % and 96.1 %).
BORDERLINE = 1.5
if ablation_seeds == 1:
    raise ic.ParameterError(
        "ablation_seeds=1: a paired interval needs 2 or more seeds (0 skips the ablation)"
    )
iic_recipe = ic.iic.preset(
    preset, trunk=trunk, n_subheads=n_subheads, batch_size=batch_size, repeats=repeats, lr=lr, lamb=lamb
)
if 0 < distributed_images < iic_recipe["batch_size"]:
    raise ic.ParameterError(
        f"distributed_images={distributed_images}: the check trains on whole batches, so it needs "
        f"at least batch_size={iic_recipe['batch_size']} images (0 skips it)"
    )
dataset, x_raw, y = ic.data.load_first_available(
    [dataset, "mnist5k"] if dataset == "mnist" else [dataset],
    root=data_root,
    download=download,
    n=n_images,
    seed=seed,
)
x = crop_resize(x_raw, crop, input_size)
recipe = dict(
    n_clusters=n_clusters,
    n_overclusters=n_overclusters,
    **iic_recipe,
    epochs=epochs,
    seed=seed,
    device=str(ledger.device),
)
print(
    f"{dataset}: {tuple(x_raw.shape)} images, centre {crop} px resized to {input_size} px, "
    f"{int(y.max()) + 1} classes"
)

# %% [markdown]
# ## Why mutual information does not degenerate
#
# Five joint distributions $\mathbf{P}$ for $C = 5$ clusters, made from hand-written
# cluster probabilities of 100 pairs ({numref}`fig-iic-joints`): everything in one
# cluster; every image spread uniformly over the clusters; confident and balanced;
# confident but unbalanced; balanced but with $g x$ often in the neighbouring cluster.
# The titles give $I$, $H(z)$ and $H(z \mid z')$ of {eq}`eq-iic-mi`.

# %% tags=["hide-input"]
n_demo, c_demo = 100, 5
eye = torch.eye(c_demo, dtype=torch.float64)
balanced = eye[torch.arange(n_demo) % c_demo]
unbalanced = eye[torch.tensor([0] * 70 + [1] * 15 + [2] * 8 + [3] * 5 + [4] * 2)]
noisy = eye[(torch.arange(n_demo) % c_demo + (torch.arange(n_demo) % 3 == 0)) % c_demo]
demos = {
    "one cluster": (eye[[0] * n_demo], eye[[0] * n_demo]),
    "uniform, unsure": (torch.full((n_demo, c_demo), 1 / c_demo, dtype=torch.float64),) * 2,
    "confident, balanced": (balanced, balanced),
    "confident, unbalanced": (unbalanced, unbalanced),
    "balanced, g x confused": (balanced, noisy),
}
demo_info = {name: information(joint_distribution(a, b)) for name, (a, b) in demos.items()}

# %%
# NBVAL_CHECK_OUTPUT
print(f"ln C = {np.log(c_demo):.4f}")
for name, info in demo_info.items():
    print(f"{name:>24}: I = {info['mi']:.4f}  H(z) = {info['h_z']:.4f}  H(z|z') = {info['h_z_given_z']:.4f}")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Joint distributions P of the clusters of x (rows) and g x (columns) for five hand-made clusterings of 100 pairs into C = 5 clusters, with their mutual information I = H(z) - H(z|z') in nats. The degenerate and the unsure clustering score 0; the confident, balanced one scores the maximum ln 5.", "name": "fig-iic-joints"}}
fig, axes = plt.subplots(1, len(demos), figsize=(2.2 * len(demos), 2.8), layout="constrained")
for ax, (name, (a, b)) in zip(axes, demos.items()):
    info = demo_info[name]
    icp.joint_heatmap(joint_distribution(a, b), ax=ax).set_title(
        f"{name}\nI={info['mi']:.2f} H={info['h_z']:.2f}\nH(z|z')={info['h_z_given_z']:.2f}", fontsize=8
    )
plt.show()

# %% [markdown]
# ## Training IIC
#
# The perturbation $g$ is the paper's for MNIST (`infoclust.augment.MNISTTransform`):
# rotation by up to 25° with probability 1/2, a random crop of 16, 20 or 24 of the 28
# original pixels resized to the input size, and colour jitter; every image draws its own
# parameters, and the whole batch is warped by one `grid_sample` call on the training
# device ({numref}`fig-iic-g`). The trainer accepts any other callable from a batch to a
# batch of the same shape; later chapters pass deformations and Wasserstein perturbations.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Top row: eight random training images x (the centre crop). Rows below: three independent draws of the paper's MNIST perturbation g x.", "name": "fig-iic-g"}}
g = MNISTTransform(seed=seed)
shown = x[torch.randperm(len(x), generator=ledger.generator)[:8]]
icp.image_grid([shown] + [g(shown) for _ in range(3)], row_labels=["x", "g x", "g x", "g x"])
plt.show()

# %% [markdown]
# The estimator follows scikit-learn: `IIC(...).fit(x, y)` trains, `predict` clusters, and
# `labels_`, `history_` and `best_subhead_` hold the result. The labels `y` are used only
# to report the accuracy of each sub-head in the history; the reported sub-head is the one
# with the lowest loss on the training data, recorded for every epoch in `history_`.
# Training runs for `epochs` epochs.
#
# The default profile departs from the paper's MNIST recipe in four places so that about
# a minute on a 2-core CPU suffices: a narrow trunk (3x3 convolutions with 16, 32 and 64
# channels instead of 5x5 with 64 to 512) on 12 px instead of 24 px inputs (the digit's
# centre 20 px, downsampled); batches of 32 images x 4 repeats instead of 140 x 5, hence
# many more Adam steps per second; a learning rate of 2e-3 instead of 1e-4; and
# $\lambda = 1.5$ in {eq}`eq-iic-loss`. Of the input sizes tried (12 and 16 px), 12 px
# reached 95 % in fewer CPU seconds: a third less work per image, and no slower per epoch. With
# $\lambda = 1$, our short trial runs stalled near 85 % with two digit classes sharing one
# cluster while another class was split in two (a plateau that users of the reference code
# report too, near 88 %). Since $\mathcal{L} = -I(z; z') - (\lambda - 1)\,(H(z) + H(z'))$, a
# larger $\lambda$ rewards balanced clusters more, and with 1.5 the same trial runs left the
# plateau. The loss is then no longer $-I$, so the curves below show $I(z; z')$ itself. The
# `full` profile keeps the paper's recipe, $\lambda = 1$ included.

# %% tags=["hide-input"]
model = IIC(**recipe).fit(x, y)
best = model.best_subhead_
scores = ic.evaluate(y, model.labels_)
sub_scores = [ic.evaluate(y, model.predict(x, subhead=s)) for s in range(model.n_subheads)]
last = model.history_[-1]
print(
    f"trained {epochs} epochs, {last['pairs']:,} pairs, in {model.train_seconds_:.0f} s "
    f"({last['pairs'] / model.train_seconds_:.0f} pairs/s) on {ledger.device}"
)

# %% [markdown]
# The headline numbers of the sub-head with the lowest loss, and of every sub-head:

# %%
# NBVAL_CHECK_OUTPUT
print(
    f"IIC on {dataset}, lowest-loss sub-head {best}: accuracy {scores['acc']:.4f}  "
    f"NMI {scores['nmi']:.4f}  ARI {scores['ari']:.4f}"
)
for s, sc in enumerate(sub_scores):
    print(
        f"  sub-head {s}: loss {model.subhead_losses_[s]:.4f}  accuracy {sc['acc']:.4f}  "
        f"NMI {sc['nmi']:.4f}  ARI {sc['ari']:.4f}"
    )

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Learning curves against training time (evaluation excluded): accuracy of each main-head sub-head (left; the lowest-loss sub-head at the end in black) and its mutual information I(z; z') on the training data (right; the maximum ln k dashed).", "name": "fig-iic-curves"}}
secs = np.array([h["seconds"] for h in model.history_])
accs = np.array([h["acc"] for h in model.history_])
mis = np.array([h["mi"] for h in model.history_])
fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
for s in range(model.n_subheads):
    style = dict(color="k", lw=2, zorder=3) if s == best else dict(alpha=0.6)
    axes[0].plot(secs, accs[:, s], label=f"sub-head {s}", **style)
    axes[1].plot(secs, mis[:, s], **style)
axes[1].axhline(np.log(n_clusters), ls="--", c="gray")
axes[0].set(xlabel="training time (s)", ylabel="accuracy")
axes[1].set(xlabel="training time (s)", ylabel="I(z; z') (nats)")
axes[0].legend(fontsize=7)
plt.tight_layout()
plt.show()

# %% [markdown]
# {numref}`fig-iic-heatmaps` shows $\mathbf{P}$ of the reported sub-head on the training
# data as training goes on, its clusters ordered by the class matched to them at the end.
# At the start every image is unsure and $\mathbf{P}$ is nearly uniform, $I \approx 0$; as
# training goes on, the mass gathers on the diagonal and $I$ (in the titles) climbs
# towards its maximum $\ln k$.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The joint distribution P of the reported sub-head's clusters of x and g x on the training data, at four points of training; clusters ordered by their matched class at the end.", "name": "fig-iic-heatmaps"}}
match = ic.metrics.hungarian_match(y, model.labels_)
order = sorted(range(n_clusters), key=lambda c_: match.get(c_, n_clusters + c_))
picks = sorted({0, 1, len(model.history_) // 3, len(model.history_) - 1})
fig, axes = plt.subplots(1, len(picks), figsize=(2.4 * len(picks), 2.7), squeeze=False, layout="constrained")
for ax, e in zip(axes[0], picks):
    p = model.history_[e]["joint"][best]
    icp.joint_heatmap(p, ax=ax, order=order).set_title(
        f"{model.history_[e]['seconds']:.0f} s: I = {information(p)['mi']:.2f}", fontsize=9
    )
plt.show()

# %% [markdown]
# ## Where k-means degenerates, IIC does not
#
# Chapter 1 showed k-means dying from an unfortunate start. Here is the same start on the
# same images IIC was trained on: all $k$ means begin as nearly equal constant images of
# value 3, far from every digit (pixels lie in [0, 1]). The first assignment puts every
# image into one cluster, and plain Lloyd iterations never recover. IIC's clusters, from its ordinary random initialisation, stay
# balanced, because an unbalanced clustering has a lower $H(z)$
# ({numref}`fig-iic-vs-kmeans`).

# %% tags=["hide-input"]
X = x.reshape(len(x), -1)
bad_init = 3.0 + 0.01 * torch.arange(n_clusters, dtype=torch.float32).unsqueeze(1).expand(-1, X.shape[1])
km = ic.KMeans(n_clusters, init=bad_init, empty="keep", device=str(ledger.device)).fit(X)
km_sizes = np.bincount(torch.as_tensor(km.labels_).cpu().numpy(), minlength=n_clusters)
iic_sizes = np.bincount(model.labels_, minlength=n_clusters)
ledger.record(
    "k-means empty clusters from a far start (same images)",
    km.n_empty_,
    claim="k-means degenerates from an unfortunate start where IIC does not",
    source="talk, section 3.2.1",
    holds=bool(km.n_empty_ > 0 and (iic_sizes == 0).sum() == 0),
)
ledger.record("IIC smallest cluster / balanced size", iic_sizes.min() / (len(x) / n_clusters))

# %%
# NBVAL_CHECK_OUTPUT
print(
    f"k-means from a far start: {km.n_empty_} empty clusters, sizes {sorted(km_sizes.tolist(), reverse=True)}"
)
print(f"IIC: {(iic_sizes == 0).sum()} empty clusters, sizes {sorted(iic_sizes.tolist(), reverse=True)}")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Cluster sizes on the same images: k-means started with all means far from the data (left) puts everything into one cluster; IIC (right) does not.", "name": "fig-iic-vs-kmeans"}}
fig, axes = plt.subplots(1, 2, figsize=(8, 2.8), sharey=True)
axes[0].bar(range(n_clusters), sorted(km_sizes, reverse=True), color="tab:red")
axes[1].bar(range(n_clusters), sorted(iic_sizes, reverse=True), color="tab:blue")
axes[0].set(title="k-means, far start", xlabel="cluster (by size)", ylabel="images")
axes[1].set(title="IIC", xlabel="cluster (by size)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The overclustering head
#
# The overclustering head is trained (one pass over the data per epoch, before the two
# passes of the main head). {numref}`fig-iic-overclusters` draws eight images of each of
# its twelve largest clusters; the purity printed below (the share of images that belong
# to their cluster's majority class) says how rarely its clusters mix digit classes.

# %% tags=["hide-input"]
if n_overclusters:
    over_mi0 = max(model.history_[0]["mi_over"])
    over_mi = max(last["mi_over"])
    ledger.record(
        "overclustering head I(z; z') after training",
        over_mi,
        unit="nats",
        claim="the overclustering head is trained (the reference MNIST script never trains it)",
        source="IIC reference code, greyscale script",
        holds=bool(over_mi > over_mi0 + 0.5),
    )
    over = model.predict(x, head="over")
    over_purity = sum(np.bincount(y.numpy()[over == c_]).max() for c_ in np.unique(over)) / len(x)
    ledger.record("overclustering purity (majority class per cluster)", over_purity)
    print(
        f"overclustering head: I rose from {over_mi0:.3f} to {over_mi:.3f} nats (ln {n_overclusters} = "
        f"{np.log(n_overclusters):.3f}); {len(np.unique(over))} clusters used, purity {over_purity:.3f}"
    )

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Eight random images from each of the twelve largest clusters of the overclustering head (one row per cluster, its size on the left).", "name": "fig-iic-overclusters"}}
if n_overclusters:
    sizes = np.bincount(over, minlength=n_overclusters)
    top = np.argsort(-sizes)[:12]
    rng = np.random.default_rng(seed)  # random members: the data set is sorted by class
    members = [x[rng.permutation(np.flatnonzero(over == c_))[:8]] for c_ in top]
    icp.image_grid(members, ncols=8, row_labels=[str(sizes[c_]) for c_ in top], size=0.9)
    plt.show()

# %% [markdown]
# ## Ablation
#
# Each of the three training devices is removed in turn. Every arm, the full recipe
# included, trains for `ablation_epochs` epochs, enough for the full recipe to come near
# its plateau, once per seed of `ablation_seeds` paired seeds: with seed $s$ every arm
# starts from the same trunk initialisation, sees the images in the same order and draws
# the same $g$ (chapter 9 explains the design). Each removal is judged by the mean of its
# per-seed accuracy differences with the full recipe and the 95 % confidence interval of
# that mean (`infoclust.metrics.paired_difference`); the verdict follows from the interval.
#
# The paper's ablation is on STL10, whose distractor images are what the
# overclustering head is for; it says which device matters there, and is shown beside ours
# for the direction only. Its numbers measure another data set and budget, so they are
# context, not a reference for ours. Removing sample repeats also removes work: the arm
# sees a fifth of the pairs per epoch.

# %% tags=["hide-input"]
ablation_arms = [
    Arm("full recipe"),
    Arm("no overclustering", params={"n_overclusters": None}),
    Arm("one sub-head", params={"n_subheads": 1}),
    Arm("no sample repeats", params={"repeats": 1}),
]
paper_drop = {"no overclustering": 59.6 - 43.8, "one sub-head": 59.6 - 57.6, "no sample repeats": 59.6 - 47.0}
ablation_recipe = {
    **{k_: v for k_, v in recipe.items() if k_ != "seed"},
    "epochs": ablation_epochs,
    "eval_every": ablation_epochs,
}
ablation_seed_list = [seed + s for s in range(ablation_seeds)]
ablation = run_arms(x, y, ablation_arms, ablation_seed_list, ablation_recipe) if ablation_seeds else {}
ablation_diffs = compare_arms(ablation, "full recipe") if ablation else {}
display(
    Markdown(
        report.scores_table(ablation)
        + "\n\n"
        + report.comparison_table(
            ablation_diffs,
            label="vs full recipe (points)",
            context={name: f"{-drop:+.1f} points" for name, drop in paper_drop.items()},
            context_label="paper, STL10, from 59.6 % (context)",
        )
        if ablation
        else "Skipped in this profile (`ablation_seeds = 0`)."
    )
)

# %%
# NBVAL_CHECK_OUTPUT
for name, rs in ablation.items():
    print(f"{name:>18}: accuracy {np.mean([r.acc for r in rs]):.4f} over seeds {[r.seed for r in rs]}")
for name, d in ablation_diffs.items():
    print(f"{name:>18}: {d.mean:+.3f} points [{d.low:+.3f}, {d.high:+.3f}] {d.verdict}")

# %% tags=["hide-input"]
if ablation:
    ledger.record(
        f"ablation, full recipe: accuracy (mean of {ablation_seeds} seeds, {ablation_epochs} epochs)",
        100 * np.mean([r.acc for r in ablation["full recipe"]]),
        unit="%",
    )
for name, d in ablation_diffs.items():
    report.record_difference(
        ledger,
        f"ablation, {name}: accuracy change from the full recipe ({d.n} paired seeds)",
        d,
        claim="the device matters: removing it lowers accuracy",
        expect="hurts",
        context=f"IIC paper, ablation on STL10 (direction only): {-paper_drop[name]:+.1f} points",
    )
words = {
    "hurts": "lowers accuracy here too: the device matters on digits",
    "improves": "raises accuracy here: on digits the device costs more than it brings",
    "cannot tell": "makes no difference that this design can see",
}
device_of = {
    "no overclustering": "the overclustering head",
    "one sub-head": "all sub-heads but one",
    "no sample repeats": "the sample repeats",
}
if ablation_diffs:
    display(
        Markdown(
            "On STL10 the paper lost accuracy with every removal, most without overclustering. On "
            f"{dataset}, "
            + "; ".join(
                report.verdict_sentence(f"removing {device_of[name]}", d, words=words)
                for name, d in ablation_diffs.items()
            )
            + "."
        )
    )

# %% [markdown]
# ## Results beside the paper's
#
# The headline: accuracy, NMI and ARI of the lowest-loss sub-head, and the mean over
# sub-heads, beside the paper's MNIST numbers (Table 1: 99.2 %, sub-head mean
# 98.4 ± 0.65 %, after many hours on a GPU on all 70,000 digits; its authors' log shows
# 85.6 % after the first million pairs). Every number below was computed by this run and is
# also written to the book's results ledger.
#
# One run's accuracy moves with its seed and even with the processor's rounding: the same
# code and seed reached 94.7 % on one processor and 96.1 % on another. The 95 % claims below
# are therefore marked *borderline* in the ledger whenever the run's accuracy lies within
# `BORDERLINE` (1.5) points of 95 %, a margin fixed before the run; their verdict then depends
# on the machine. The held-out seeds of the cross-path check (`make crosscheck
# SEED_OFFSET=1000`) test the target on seeds it was not tuned on.

# %% tags=["hide-input"]
mean_acc = float(np.mean([sc["acc"] for sc in sub_scores]))
report.record_at_least(
    ledger,
    f"IIC accuracy on {dataset}, lowest-loss sub-head",
    100 * scores["acc"],
    95.0,
    claim=f"IIC clusters MNIST digits to at least 95 % accuracy ({epochs} epochs, small trunk)",
    margin=BORDERLINE,
    glue="iic_acc",
    unit="%",
    paper=99.2,
    source="IIC paper, Table 1 (MNIST)",
    seconds=model.train_seconds_,
)
ledger.record(
    f"IIC accuracy on {dataset}, mean over sub-heads",
    100 * mean_acc,
    unit="%",
    paper=98.4,
    source="IIC paper, Table 1 (MNIST)",
)
ledger.record(f"IIC NMI on {dataset}", scores["nmi"])
ledger.record(f"IIC ARI on {dataset}", scores["ari"])
reached = [h for h in model.history_ if h["acc"][h["subhead"]] >= 0.95]
if reached:
    ledger.record(
        "IIC training time to 95 % (lowest-loss sub-head)",
        reached[0]["seconds"],
        unit="s",
        seconds=reached[0]["seconds"],
    )
ledger.record(
    "IIC epochs to 95 % (lowest-loss sub-head)",
    reached[0]["epoch"] if reached else epochs + 1,
    claim=f"IIC reaches 95 % on mnist5k within {epochs} epochs",
    source="this book's own target",
    holds=bool(reached),
    borderline=bool(abs(100 * max(h["acc"][h["subhead"]] for h in model.history_) - 95) <= BORDERLINE),
)
ledger.record(
    f"IIC training throughput ({model.trunk} trunk, {input_size} px)",
    last["pairs"] / model.train_seconds_,
    unit="pairs/s",
    seconds=model.train_seconds_,
)
glue("iic_time", model.train_seconds_, display=False)
display(Markdown(ledger.markdown()))

# %% [markdown]
# In this run the reported sub-head reached {glue:text}`iic_acc:.1f` % after
# {glue:text}`iic_time:.0f` s of training. The gap to the paper's 99.2 % has several
# sources that the `full` profile removes: a network with a fraction of the paper's
# width on smaller inputs, 5,000 instead of 70,000 images, a minute instead of hours, and
# the CPU recipe's batches, learning rate and $\lambda$ (see "Training IIC").

# %% [markdown]
# ## Scaling out
#
# The authors' own MNIST log reached its best accuracy after about 29 hours on one GPU: a
# paper-scale run lasts a day or more. The next step is several GPUs, or several machines,
# training data-parallel: each process holds a slice of every batch. For IIC the obvious way
# is wrong. The loss is a function of $\mathbf{P}$ summed over the *whole* batch
# ({eq}`eq-iic-joint`), so every process must add its partial sum $\sum_i E(x_i) E(g
# x_i)^\top$ to every other process's before taking the mutual information, and the
# gradient must flow back through that sum. Summing with a plain `all_reduce`, which
# autograd does not see, gives the right loss but leaves each process with its own share of
# the gradient only: averaged over $W$ processes, the gradient is $W$ times too small, and
# nothing warns. `infoclust.distributed` sums with a collective whose backward pass is its
# adjoint, normalises batch norm with the whole batch's statistics, has every process draw
# the same batch order and the same $g$ and averages the gradients, so that one step of $W$
# processes is one step of one process on the whole batch; its tests check this to a
# relative $10^{-6}$ in float64 for two and three processes, and that the plain `all_reduce`
# fails the check. The same `IIC` trains that way under `torchrun`, and the command-line
# trainer writes checkpoints that a run resumes from after a crash:
#
# ```bash
# torchrun --nproc-per-node 4 -m infoclust.train iic --dataset mnist --download --trunk vgg \
#     --input-size 24 --batch-size 140 --repeats 5 --lr 1e-4 --lamb 1 --epochs 100 --out runs/mnist
# ```
#
# Here the check is small and on the CPU: one epoch of this chapter's recipe on
# `distributed_images` of its images (256), once in this process and once in two processes
# (gloo), from the same seed, with the sub-heads' losses on those images at the end, the
# parameters and the clusters compared.

# %% tags=["hide-input"]
from infoclust import distributed

if distributed_images:
    subset = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:distributed_images]
    small = {**recipe, "epochs": 1, "device": "cpu", "verbose": False}
    one_proc = IIC(**small).fit(x[subset], y[subset])
    two_procs = distributed.fit_in_processes(IIC(**small), x[subset], y[subset], world=2)
    flat_one, flat_two = (
        torch.cat([p.detach().reshape(-1) for p in m.net_.parameters()]) for m in (one_proc, two_procs)
    )
    param_diff = float((flat_two - flat_one).norm() / flat_one.norm())
    loss_diff = float(np.abs(two_procs.subhead_losses_ - one_proc.subhead_losses_).max())
    same_labels = float(np.mean(two_procs.labels_ == one_proc.labels_))
    ledger.record(
        "2 processes vs 1: largest difference of the sub-heads' losses after one epoch",
        loss_diff,
        unit="nats",
        claim="two processes train like one on the same data (losses within 1e-4 nats)",
        source="infoclust.distributed",
        holds=bool(loss_diff < 1e-4),
    )
    ledger.record("2 processes vs 1: relative difference of the parameters after one epoch", param_diff)
    ledger.record("2 processes vs 1: images in the same cluster", 100 * same_labels, unit="%")
    print(
        f"one epoch on {len(subset)} images: the sub-heads' losses differ by at most {loss_diff:.1e} nats, the "
        f"parameters by {param_diff:.1e} (relative); {100 * same_labels:.1f} % of the images in the same cluster"
    )
else:
    print("the one-versus-two-processes check was skipped (distributed_images=0)")

# %% [markdown]
# In float32 the two runs are not bit-identical: two processes add the same numbers in
# another order (two partial joints, two partial batch-norm sums, two gradients), and Adam,
# which divides each gradient by its running magnitude, can turn last-bit differences of
# gradients near zero into larger differences of the step. The tests rule out anything
# more: in float64, one step's loss and every gradient agree to a relative $10^{-6}$ and
# the parameters after 20 Adam steps to $10^{-5}$.

# %% [markdown]
# ## Exercises
#
# Each exercise says what you should see. Its worked solution follows it, hidden: the toggle
# beside it shows the code, which ran with the rest of the chapter on the objects computed
# above (so its numbers are this run's), and its output.
#
# **1. What does `lamb` weigh?** For a symmetric joint distribution $P$ the loss of the
# reference code is $H(z, z') - \lambda\,(H(z) + H(z')) = H(z \mid z') - (2\lambda - 1)\,H(z)$:
# $\lambda$ weighs the marginal entropy $H(z)$ (balanced clusters) against the conditional
# entropy $H(z \mid z')$ (confident, consistent clusters). Check the identity on the trained
# model's $P$ (training images and one draw of $g$) for $\lambda$ = 0.5, 1 and `lamb`. *You
# should see* the two sides agree, and the loss fall by $2 H(z)$ for each unit of $\lambda$:
# a larger $\lambda$ leans towards balanced clusters, a smaller one towards confident ones. At
# $\lambda = 1$ the loss is $-I(z; z')$.

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
# Solution 1: the loss at several lambdas beside its two entropy terms
p_x = torch.from_numpy(model.predict_proba(x))
p_gx = torch.from_numpy(model.predict_proba(MNISTTransform(seed=seed)(x)))
parts = information(joint_distribution(p_x, p_gx))
for lam in (0.5, 1.0, model.lamb):
    loss = float(ic.iic.iic_loss(p_x.double(), p_gx.double(), lamb=lam))
    identity = parts["h_z_given_z"] - (2 * lam - 1) * parts["h_z"]
    print(f"lambda {lam:3.1f}: loss {loss:+.4f}, H(z|z') - (2 lambda - 1) H(z) = {identity:+.4f}")
print(
    f"H(z) = {parts['h_z']:.4f} (at most ln k = {np.log(n_clusters):.4f}), H(z|z') = {parts['h_z_given_z']:.4f}"
)
print(
    f"cluster sizes, largest to smallest: {np.sort(np.bincount(model.labels_, minlength=n_clusters))[::-1]}"
)

# %% [markdown]
# **2. The identity as $g$ is a trap.** With $g$ the identity, $z' = z$ and
# $I(z; z') = H(z)$: any confident, balanced clustering reaches the maximum $\ln k$, whatever
# it groups. Build one by hand: cut the images into `n_clusters` equal groups by their mean
# brightness. Measure its $I(z; z')$ with $g$ the identity and with the paper's $g$, and its
# accuracy. *You should see* the brightness clustering score the maximum $\ln k$ with the
# identity, at an accuracy far below IIC's: the objective rewards invariance to $g$, and the
# identity asks for none. The paper's $g$ changes the brightness of an image, so the same
# clustering loses information under it.


# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
# Solution 2: clusters by brightness, scored with g = identity and with the paper's g
def by_brightness(images):
    """Cluster = decile (for k = 10) of the mean pixel value, with the cuts of the training images."""
    return torch.bucketize(images.flatten(1).mean(1), cuts)


cuts = torch.quantile(x.flatten(1).mean(1), torch.linspace(0, 1, n_clusters + 1)[1:-1])
z_bright = torch.eye(n_clusters, dtype=torch.float64)[by_brightness(x)]
z_bright_g = torch.eye(n_clusters, dtype=torch.float64)[by_brightness(MNISTTransform(seed=seed)(x))]
mi_identity = information(joint_distribution(z_bright, z_bright))["mi"]
mi_paper_g = information(joint_distribution(z_bright, z_bright_g))["mi"]
print(
    f"brightness clusters: I(z; z') = {mi_identity:.4f} with g = identity (ln k = {np.log(n_clusters):.4f}), "
)
print(f"                     I(z; z') = {mi_paper_g:.4f} with the paper's g")
print(f"accuracy: brightness {ic.cluster_accuracy(y, by_brightness(x).numpy()):.4f}, IIC {scores['acc']:.4f}")

# %% [markdown]
# **3. Overclustering, scored many-to-one.** The overclustering head has `n_overclusters`
# clusters. Score it and the main head *many-to-one* (each cluster takes its most frequent
# class) and the main head one-to-one. *You should see* the overclustering head's many-to-one
# accuracy above the main head's one-to-one accuracy: more clusters can each be purer, so a
# many-to-one score of $k > 10$ clusters is no match for a one-to-one score of 10 (the IIC paper
# reports its overclustering results apart from the others for this reason).


# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
# Solution 3: many-to-one accuracy from the counts of (cluster, class) pairs
def many_to_one(labels):
    return ic.metrics.contingency(y, labels).max(1).sum() / len(y)


print(
    f"main head ({n_clusters} clusters): one-to-one {scores['acc']:.4f}, many-to-one {many_to_one(model.labels_):.4f}"
)
if n_overclusters:
    print(
        f"overclustering head ({n_overclusters} clusters): many-to-one {many_to_one(model.predict(x, head='over')):.4f}"
    )

# %% [markdown]
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
