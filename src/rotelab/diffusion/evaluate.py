"""What a mitigation costs and what it buys: held-out denoising loss and replication of prompts."""

from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, Sequence

import numpy as np
import torch
from torch import Tensor

from rotelab.diffusion.model import DiffusionModel, load_images
from rotelab.diffusion.replication import generate_and_score


@torch.no_grad()
def heldout_loss(model, x0s: Tensor, ys: Tensor, *, n: int = 16, seed: int = 0) -> float:
    """Mean denoising loss on held-out pairs, same (ε, t) draws for every model compared  # x0s (N,C,H,W), ys (N,L,D)"""
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for x0, y in zip(x0s, ys):
        noise = torch.randn((n, *x0.shape), generator=g)
        t = torch.randint(0, model.T, (n,), generator=g)
        total += float(model.denoising_loss(x0.expand(n, -1, -1, -1), y, noise, t).mean())
    return total / len(x0s)


def item_tensors(model: DiffusionModel, items: list[dict]) -> tuple[Tensor, Tensor, Tensor]:
    """(pixels (N,3,H,W), x0 in the UNet's space, embeddings (N,L,D)) of items that have images."""
    pix = load_images([it["image"] for it in items], model.image_size)
    return pix, model.to_x0(pix), model.embed([it["text"] for it in items])


def replication_of(model, ys: Tensor, targets: Tensor, seeds: Sequence[int], *, contexts: Sequence[Callable[[], ContextManager]] = (), steps: int = 25,
                   guidance: float | None = None) -> tuple[np.ndarray, Tensor]:
    """Similarities (P, S) and images (P, S, C, H, W) of prompts ``ys`` to their ``targets``.

    ``contexts[i]`` (optional) makes the context manager applied while prompt i generates (a
    per-prompt NeMo or Wanda mitigation).
    """
    sims, imgs = [], []
    for i, (y, x) in enumerate(zip(ys, targets)):
        ctx = contexts[i]() if contexts else contextlib.nullcontext()
        with ctx:
            im, s = generate_and_score(model, y, x, seeds, steps=steps, guidance=guidance)
        sims.append(s.numpy())
        imgs.append(im)
    return np.stack(sims), torch.stack(imgs)
