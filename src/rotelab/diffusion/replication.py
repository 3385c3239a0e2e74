"""Replication: is a generated image a copy of a training image?

SSCD (Pizzi et al. 2022), the copy-detection descriptor the papers use, needs downloaded weights.
The offline stand-in is the **mean-centred pixel cosine**

    s(a, b) = ⟨a − ā, b − b̄⟩ / (‖a − ā‖·‖b − b̄‖),   ā = per-channel mean over pixels,

chosen because (i) it is, like SSCD, a cosine in [−1, 1] where copies score near 1, so the same
0.7 convention can be tried; (ii) removing each channel's mean makes it blind to a global
colour/brightness shift, the main nuisance a copy detector must ignore at 8–16 px, where SSCD's
crops and blurs have no room to act; (iii) it needs no weights. A learned descriptor would matter
for real photographs; on the testbed's flat, low-resolution images pixels are the content.
Because the threshold is a convention, every rate also comes as a curve over thresholds.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from rotelab.core.stats import clopper_pearson

THRESHOLDS = np.round(np.linspace(0.3, 0.95, 14), 3)


def centred_cosine(a: Tensor, b: Tensor) -> Tensor:
    """s(a, b) for images (..., C, H, W) broadcast against each other  # (...)

    >>> x = torch.rand(3, 4, 4)
    >>> round(float(centred_cosine(x, 2 * x + 0.5)), 4)
    1.0
    """
    a = a - a.mean(dim=(-2, -1), keepdim=True)
    b = b - b.mean(dim=(-2, -1), keepdim=True)
    num = (a * b).flatten(-3).sum(-1)
    return num / (a.flatten(-3).norm(dim=-1) * b.flatten(-3).norm(dim=-1)).clamp_min(1e-8)


def replication_scores(generated: Tensor, targets: Tensor) -> Tensor:
    """Similarity of each generation to its own target  # generated (S, C, H, W), targets (C, H, W) -> (S,)"""
    return centred_cosine(generated, targets.expand_as(generated))


def nearest_training_similarity(generated: Tensor, train_images: Tensor) -> Tensor:
    """max over training images of s(g, x)  # (S,): replication of *any* training image"""
    return centred_cosine(generated[:, None], train_images[None]).amax(1)


def rate(sims: np.ndarray, threshold: float) -> dict:
    """Memorization rate: share of generations with s > τ, with a Clopper–Pearson 95% interval.

    Generations of one prompt are not independent, so the interval is optimistic when prompts are
    few; the per-prompt rates are reported beside it.
    """
    s = np.asarray(sims, dtype=float).ravel()
    k, n = int((s > threshold).sum()), int(s.size)
    return {"rate": k / n if n else float("nan"), "ci": clopper_pearson(k, n), "k": k, "n": n, "threshold": float(threshold)}


def rate_curve(sims: np.ndarray, thresholds: Sequence[float] = THRESHOLDS) -> list[dict]:
    """:func:`rate` at every threshold (the curve a figure shows)."""
    return [rate(sims, t) for t in thresholds]


def per_prompt_rates(sims: np.ndarray, threshold: float) -> np.ndarray:
    """MR of each prompt over its seeds  # sims (P, S) -> (P,)"""
    return (np.asarray(sims) > threshold).mean(axis=1)


@torch.no_grad()
def generate_and_score(model, y: Tensor, target: Tensor, seeds: Sequence[int], *, steps: int = 25, guidance: float | None = None) -> tuple[Tensor, Tensor]:
    """Generate one image per seed from embedding ``y`` and score it against ``target``  # ((S,C,H,W), (S,))"""
    imgs = model.sample(y, seeds, steps=steps, guidance=guidance)
    return imgs, replication_scores(imgs, target)
