"""Figures of the diffusion runs: image grids (target | generations, similarity in each title) and
memorization-rate curves over the replication threshold with Clopper–Pearson bands."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from torch import Tensor

from rotelab.diffusion.replication import THRESHOLDS, rate_curve


def _show(ax, img: Tensor) -> None:
    ax.imshow(((img.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])


def image_grid(targets: Tensor, images: Tensor, sims: np.ndarray, labels: Sequence[str], *, title: str, threshold: float):
    """Rows: one prompt each; first column its target image, then one generation per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    P, S = sims.shape
    fig, axes = plt.subplots(P, S + 1, figsize=(1.2 * (S + 1), 1.25 * P + 0.4), squeeze=False)
    for i in range(P):
        _show(axes[i, 0], targets[i])
        axes[i, 0].set_ylabel(labels[i], fontsize=6)
        axes[i, 0].set_title("target", fontsize=6)
        for j in range(S):
            _show(axes[i, j + 1], images[i, j])
            hit = sims[i, j] > threshold
            axes[i, j + 1].set_title(f"{sims[i, j]:.2f}", fontsize=6, color="red" if hit else "black")
    fig.suptitle(f"{title}\n(similarity to target; red > τ = {threshold})", fontsize=7)
    return fig


def rate_curves(groups: dict[str, np.ndarray], *, title: str, seeds_note: str):
    """MR(τ) for each group of similarities, with 95% Clopper–Pearson bands and n in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, sims in groups.items():
        c = rate_curve(sims, THRESHOLDS)
        r = [x["rate"] for x in c]
        lo, hi = [x["ci"][0] for x in c], [x["ci"][1] for x in c]
        ax.plot(THRESHOLDS, r, marker=".", label=f"{name} (n={c[0]['n']})")
        ax.fill_between(THRESHOLDS, lo, hi, alpha=0.15)
    ax.set_xlabel("replication threshold τ (centred pixel cosine)")
    ax.set_ylabel("memorization rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{title}\n{seeds_note}; bands: 95% Clopper–Pearson", fontsize=8)
    ax.legend(fontsize=7)
    return fig


def score_hist(scores: np.ndarray, labels: np.ndarray, *, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    for lab, name in ((1, "memorized"), (0, "not memorized")):
        s = scores[labels == lab]
        ax.hist(s, bins=20, alpha=0.6, label=f"{name} (n={len(s)})")
    ax.set_xlabel("Wen et al. score d (higher = more memorized)")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=7)
    return fig
