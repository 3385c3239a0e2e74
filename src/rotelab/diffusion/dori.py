"""DoRI trigger search (Kowalczuk et al. 2025, "Finding Dori: Memorization in Text-to-Image
Diffusion Models Is Not Local", arXiv 2507.16880).

Optimise a continuous text embedding y toward a target image x₀ with the denoising loss

    L(y) = E_{ε~N(0,I), t~U(0,T)} ‖ε − ε_θ(√ᾱ_t·x₀ + √(1−ᾱ_t)·ε, t, y)‖²

with ε and t resampled every step (batch 8), Adam lr 0.1, 50 steps. Starts: the prompt's own
embedding, a Gaussian, or another prompt's embedding. The model is frozen; only y moves. A
trigger *succeeds* when its generations replicate x₀ (see :mod:`rotelab.diffusion.replication`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from rotelab.diffusion.model import GUIDANCE
from rotelab.diffusion.replication import generate_and_score

INITS = ("prompt", "gaussian", "other")


@dataclass(frozen=True)
class DoriConfig:
    steps: int = 50
    lr: float = 0.1
    batch_size: int = 8
    n_eval_seeds: int = 4  # generations per found trigger to measure replication
    sample_steps: int = 25
    guidance: float = GUIDANCE


def dori_loss(model, x0: Tensor, y: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """Mean denoising loss of x₀ (C, H, W) under embedding y (L, D)  # scalar"""
    return model.denoising_loss(x0.expand(noise.shape[0], -1, -1, -1), y, noise, t).mean()


def init_embedding(kind: str, prompt_y: Tensor, *, other_y: Tensor | None = None, seed: int = 0) -> Tensor:
    """Starting point of a search: 'prompt' (y_p), 'gaussian' (N(0, I) of y's shape) or 'other' (another prompt's y)."""
    if kind == "prompt":
        return prompt_y.clone()
    if kind == "gaussian":
        return torch.randn(prompt_y.shape, generator=torch.Generator().manual_seed(seed))
    if kind == "other":
        assert other_y is not None, "init 'other' needs other_y"
        return other_y.clone()
    raise ValueError(f"init must be one of {INITS}; got {kind!r}")


def find_trigger(model, x0: Tensor, y_init: Tensor, *, cfg: DoriConfig = DoriConfig(), seed: int = 0) -> tuple[Tensor, list[float]]:
    """Run DoRI from ``y_init`` toward ``x0`` (in the UNet's space); returns (y*, loss per step)."""
    g = torch.Generator().manual_seed(seed)
    y = y_init.clone().requires_grad_(True)
    opt = torch.optim.Adam([y], lr=cfg.lr)
    losses = []
    with torch.enable_grad():
        for _ in range(cfg.steps):
            noise = torch.randn((cfg.batch_size, *x0.shape), generator=g)
            t = torch.randint(0, model.T, (cfg.batch_size,), generator=g)
            loss = dori_loss(model, x0, y, noise, t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return y.detach(), losses


def run_dori(model, x0: Tensor, target_pixels: Tensor, y_init: Tensor, *, cfg: DoriConfig = DoriConfig(), seed: int = 0,
             eval_seeds: Sequence[int] | None = None) -> dict:
    """Find a trigger and measure its replication: images, similarities, the trigger and its loss curve."""
    y, losses = find_trigger(model, x0, y_init, cfg=cfg, seed=seed)
    seeds = list(eval_seeds) if eval_seeds is not None else [10_000 + seed * 100 + i for i in range(cfg.n_eval_seeds)]
    imgs, sims = generate_and_score(model, y, target_pixels, seeds, steps=cfg.sample_steps, guidance=cfg.guidance)
    return {"y": y, "losses": np.array(losses), "images": imgs, "sims": sims.numpy(), "dist_from_init": float((y - y_init).norm())}
