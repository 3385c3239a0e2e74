"""Wanda-style pruning of a memorization subspace in the UNet's feed-forward layers (after
Chavhan et al. 2024, "Memorized Images in Diffusion Models Share a Subspace that Can Be Located
and Deleted"; no code released; the score is Wanda's, Sun et al. ICLR 2024).

Wanda importance of weight W_ij for inputs X (rows = tokens):  S_ij = |W_ij| · ‖X_{:,j}‖₂.
The memorization score contrasts the memorized prompt's activations with those of ordinary
prompts, so that weights every prompt needs are kept:

    D_ij = |W_ij| · (‖X^mem_{:,j}‖₂ − ‖X^ref_{:,j}‖₂)

and, per output row (Wanda's comparison group), the top-s share of D_ij is set to 0. The sparsity
s is the smallest of a grid that brings NeMo's memorization signal below τ (measured per prompt).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from torch import Tensor

from rotelab.diffusion.nemo import memorization_signal

Pruned = dict[str, Tensor]  # FFN module name -> flat indices of zeroed weights
SPARSITIES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)  # past 0.1 only because the testbed's FFNs resisted 10% (measured)


def ffn_layers(unet) -> list[str]:
    return [n for n, m in unet.named_modules() if isinstance(m, torch.nn.Linear) and (n.endswith("ff.net.0.proj") or n.endswith("ff.net.2"))]


@torch.no_grad()
def input_norms(model, y: Tensor, *, seeds: Sequence[int] = (0, 1), steps: int = 10, guidance: float = 3.0) -> dict[str, Tensor]:
    """‖X_{:,j}‖₂ of every FFN input feature over tokens, timesteps and seeds of guided generations  # {layer: (in,)}"""
    from diffusers import DDIMScheduler

    mods = dict(model.unet.named_modules())
    sq: dict[str, Tensor] = {}

    def pre(name):
        def hook(_m, inp):
            x = inp[0].flatten(0, -2)  # (tokens, in)
            sq[name] = sq.get(name, 0) + x.pow(2).sum(0)
        return hook

    handles = [mods[n].register_forward_pre_hook(pre(n)) for n in ffn_layers(model.unet)]
    try:
        ddim = DDIMScheduler.from_config(model.scheduler.config)
        ddim.set_timesteps(steps)
        x = torch.stack([torch.randn(model.noise_shape(1)[1:], generator=torch.Generator().manual_seed(500 + s)) for s in seeds])
        for t in ddim.timesteps:
            e = model.eps(x, t, y)  # conditional pass only: the activations the prompt causes
            x = ddim.step(e, t, x).prev_sample
    finally:
        for h in handles:
            h.remove()
    return {n: v.sqrt() for n, v in sq.items()}


def memorization_scores(model, norms_mem: dict[str, Tensor], norms_ref: dict[str, Tensor]) -> dict[str, Tensor]:
    """D_ij = |W_ij|·(‖X^mem_j‖ − ‖X^ref_j‖)  # {layer: (out, in)}"""
    mods = dict(model.unet.named_modules())
    return {n: mods[n].weight.abs() * (norms_mem[n] - norms_ref[n])[None] for n in norms_mem}


def top_per_row(scores: dict[str, Tensor], sparsity: float) -> Pruned:
    """Flat indices of the top ``sparsity`` share of each row's scores (at least one weight per row)."""
    out = {}
    for n, s in scores.items():
        k = max(1, int(round(sparsity * s.shape[1])))
        cols = s.topk(k, dim=1).indices  # (out, k)
        out[n] = (torch.arange(s.shape[0])[:, None] * s.shape[1] + cols).flatten().sort().values
    return out


@contextlib.contextmanager
def pruned(unet, weights: Pruned) -> Iterator[None]:
    """Zero the given weights while the block runs, then restore them."""
    mods = dict(unet.named_modules())
    saved = {n: mods[n].weight.data.clone() for n in weights}
    try:
        for n, idx in weights.items():
            mods[n].weight.data.view(-1)[idx] = 0.0
        yield
    finally:
        for n, w in saved.items():
            mods[n].weight.data.copy_(w)


def reference_norms(model, control_ys: Tensor) -> dict[str, Tensor]:
    """Mean of ‖X_j‖ over non-memorized prompts."""
    per = [input_norms(model, y) for y in control_ys]
    return {n: torch.stack([p[n] for p in per]).mean(0) for n in per[0]}


def select_weights(model, y: Tensor, norms_ref: dict[str, Tensor], tau: float, *, sparsities: Sequence[float] = SPARSITIES,
                   seeds: Sequence[int] = range(6)) -> dict:
    """The smallest sparsity whose pruning brings m(y) below τ; ``mitigated`` False if none does."""
    before = memorization_signal(model, y, seeds=seeds)
    scores = memorization_scores(model, input_norms(model, y), norms_ref)
    for s in sparsities:
        w = top_per_row(scores, s)
        with pruned(model.unet, w):
            after = memorization_signal(model, y, seeds=seeds)
        if after < tau:
            return {"weights": w, "sparsity": s, "signal_before": before, "signal_after": after, "mitigated": True}
    return {"weights": w, "sparsity": s, "signal_before": before, "signal_after": after, "mitigated": False}


def merge(selections: Sequence[Pruned]) -> Pruned:
    out: dict[str, Tensor] = {}
    for s in selections:
        for n, idx in s.items():
            out[n] = torch.unique(torch.cat([out[n], idx])) if n in out else idx
    return out
