"""Detection (Wen et al., ICLR 2024, "Detecting, Explaining, and Mitigating Memorization in
Diffusion Models"): memorized prompts pull the text-conditional noise prediction far from the
unconditional one.

    d(y) = (1/K) Σ_k mean_noise ‖ε_θ(x_{t_k}, t_k, y) − ε_θ(x_{t_k}, t_k, ∅)‖₂

over the first K DDIM steps of a guided generation (K = 1 works from the first step). Higher =
more memorized. Trigger tokens: the per-token norm of ∂d/∂(token embedding).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from rotelab.core.hooks import module_hooks
from rotelab.core.stats import summarize


def _noises(model, seeds: Sequence[int]) -> Tensor:
    return torch.stack([torch.randn(model.noise_shape(1)[1:], generator=torch.Generator().manual_seed(int(s))) for s in seeds])


def wen_norm(model, y: Tensor, *, seeds: Sequence[int] = range(8), n_steps: int = 1, steps: int = 25, guidance: float | None = None) -> Tensor:
    """d(y) for one embedding y (L, D); differentiable in y  # scalar"""
    from diffusers import DDIMScheduler

    from rotelab.diffusion.model import GUIDANCE

    guidance = GUIDANCE if guidance is None else guidance
    ddim = DDIMScheduler.from_config(model.scheduler.config)
    ddim.set_timesteps(steps)
    x = _noises(model, seeds)
    null = model.null_embedding()
    total = 0.0
    for t in ddim.timesteps[:n_steps]:
        e_c = model.eps(x, t, y)
        with torch.no_grad():
            e_u = model.eps(x, t, null)
        total = total + (e_c - e_u).flatten(1).norm(dim=1).mean()
        with torch.no_grad():
            x = ddim.step(e_u + guidance * (e_c.detach() - e_u), t, x).prev_sample
    return total / n_steps


def wen_scores(model, embeddings: Tensor, **kw) -> np.ndarray:
    """d(y) for each embedding  # (P, L, D) -> (P,)"""
    with torch.no_grad():
        return np.array([float(wen_norm(model, y, **kw)) for y in embeddings])


def token_attribution(model, text: str, **kw) -> tuple[list[int], np.ndarray]:
    """Per-token trigger strength ‖∂d/∂e_i‖₂ of the prompt's input token embeddings e_i.

    Returns the token ids and their strengths  # (L,)
    """
    ids = model.token_ids([text])
    emb_layer = model.text_encoder.get_input_embeddings()
    captured: dict[str, Tensor] = {}

    def hook(_mod, _inp, out):  # make the prompt's token embeddings a leaf we can differentiate against
        if "e" in captured:  # later calls embed the null prompt
            return out
        captured["e"] = out.detach().requires_grad_(True)
        return captured["e"]

    name = next(n for n, m in model.text_encoder.named_modules() if m is emb_layer)
    with module_hooks(model.text_encoder, {name: hook}), torch.enable_grad():
        y = model.text_encoder(ids).last_hidden_state[0]
        wen_norm(model, y, **kw).backward()
    g = captured["e"].grad[0].norm(dim=-1)  # (L,)
    return ids[0].tolist(), g.numpy()


def detect(model, items: list[dict], *, seeds: Sequence[int] = range(8), n_steps: int = 1, progress: bool = False) -> dict:
    """Wen scores of every item, AUC memorized (label 1) vs the rest with a bootstrap interval."""
    from rotelab.core.console import track

    ys = model.embed([it["text"] for it in items])
    scores = np.array([float(wen_norm(model, y, seeds=seeds, n_steps=n_steps)) for y in track(ys, "Wen et al. scores", disable=not progress)])
    labels = np.array([it["label"] for it in items])
    return {"scores": scores, "labels": labels, "summary": summarize(scores, labels), "n_noises": len(list(seeds)), "n_steps": n_steps}
