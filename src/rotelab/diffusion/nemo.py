"""NeMo (Hintersdorf et al., NeurIPS 2024, "Finding NeMo: Localizing Neurons Responsible for
Memorization in Diffusion Models"): memorization neurons are output channels of the cross-attention
value projections ``attn2.to_v``; deactivating them (scaling to 0) stops replication.

1. Memorization signal m(y): agreement across seeds. NeMo takes the mean pairwise SSIM of the
   first-step noise differences over 10 seeds. On the testbed that first-step signal did not
   separate (measured on the tiny preset: a prompt replicating in 4/4 seeds scored 0.10 against
   τ = 0.29), so rotelab applies the same idea to short guided generations: m(y) = mean pairwise
   centred cosine (the replication similarity) of DDIM generations (8 steps) from different seeds;
   SSIM, tried first, was unstable on 8 px images whose mean is near 0. A memorized prompt steers
   every seed to the same image. Threshold τ = mean + 1 std of m on non-memorized prompts.
2. Out-of-distribution neurons: z_j = (a_j(y) − μ_j)/σ_j with a_j the mean |activation| of neuron j
   over tokens, μ, σ over non-memorized prompts (NeMo used 50k LAION prompts; here the testbed's).
3. Initial selection: θ from 5 down to 1 in steps of 0.25 (continued to 0 here: the testbed's
   value layers have 16–32 channels, not 320–1280); the first θ whose {j : z_j > θ} brings m(y)
   below τ.
4. Refinement: re-enable whole layers, then single neurons (lowest z first), whenever m stays
   below τ without them.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from rotelab.diffusion.replication import centred_cosine

Selection = dict[str, list[int]]  # to_v module name -> deactivated output channels


def value_layers(unet) -> list[str]:
    return [n for n, _ in unet.named_modules() if n.endswith("attn2.to_v")]


@contextlib.contextmanager
def deactivated(unet, selection: Selection) -> Iterator[None]:
    """Scale the selected ``to_v`` output channels to 0 while the block runs."""
    mods = dict(unet.named_modules())
    handles = []
    for name, idx in selection.items():
        if not idx:
            continue
        mask = torch.ones(mods[name].out_features)
        mask[list(idx)] = 0.0
        handles.append(mods[name].register_forward_hook(lambda _m, _i, out, mask=mask: out * mask))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def memorization_signal(model, y: Tensor, *, seeds: Sequence[int] = range(6), steps: int = 8) -> float:
    """m(y): mean pairwise SSIM of guided generations from different seeds (higher = more memorized)."""
    imgs = model.sample(y, [1000 + int(s) for s in seeds], steps=steps)
    i, j = torch.triu_indices(len(imgs), len(imgs), 1)
    return float(centred_cosine(imgs[i], imgs[j]).mean())


@torch.no_grad()
def value_activations(model, y: Tensor) -> dict[str, Tensor]:
    """a_j(y) = mean over tokens of |to_v(y)_j| for every value layer  # {layer: (out,)}"""
    mods = dict(model.unet.named_modules())
    return {n: mods[n](y).abs().mean(0) for n in value_layers(model.unet)}


def activation_stats(model, ys: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
    """μ_j, σ_j of a_j over non-memorized prompt embeddings  # ys (P, L, D)"""
    acts = [value_activations(model, y) for y in ys]
    return {n: (torch.stack([a[n] for a in acts]).mean(0), torch.stack([a[n] for a in acts]).std(0).clamp_min(1e-6)) for n in acts[0]}


def z_scores(model, y: Tensor, stats: dict[str, tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
    return {n: (a - stats[n][0]) / stats[n][1] for n, a in value_activations(model, y).items()}


def _signal_with(model, y: Tensor, sel: Selection, seeds) -> float:
    with deactivated(model.unet, sel):
        return memorization_signal(model, y, seeds=seeds)


def select_neurons(model, y: Tensor, stats: dict[str, tuple[Tensor, Tensor]], tau: float, *, seeds: Sequence[int] = range(6),
                   thetas: Sequence[float] = tuple(np.arange(5.0, -0.01, -0.25))) -> dict:
    """NeMo's selection for one embedding: initial θ search, then layer and neuron refinement.

    Returns the selection, the θ used, signals before/after and ``mitigated`` (m < τ reached).
    """
    z = z_scores(model, y, stats)
    before = memorization_signal(model, y, seeds=seeds)
    if before < tau:
        return {"selection": {n: [] for n in z}, "theta": None, "signal_before": before, "signal_after": before, "mitigated": True, "n_checks": 1}
    sel, theta, n_checks = None, None, 1
    for th in thetas:
        cand = {n: torch.nonzero(zz > th).flatten().tolist() for n, zz in z.items()}
        n_checks += 1
        if _signal_with(model, y, cand, seeds) < tau:
            sel, theta = cand, float(th)
            break
    if sel is None:  # even the last θ does not mitigate: report the largest candidate set, flagged
        cand = {n: torch.nonzero(zz > thetas[-1]).flatten().tolist() for n, zz in z.items()}
        return {"selection": cand, "theta": float(thetas[-1]), "signal_before": before, "signal_after": _signal_with(model, y, cand, seeds),
                "mitigated": False, "n_checks": n_checks + 1}
    for n in list(sel):  # layer refinement: re-enable a whole layer when it is not needed
        if sel[n]:
            trial = {**sel, n: []}
            n_checks += 1
            if _signal_with(model, y, trial, seeds) < tau:
                sel = trial
    order = sorted(((float(z[n][j]), n, j) for n, idx in sel.items() for j in idx))
    for _, n, j in order:  # neuron refinement, least anomalous first
        trial = {**sel, n: [k for k in sel[n] if k != j]}
        n_checks += 1
        if _signal_with(model, y, trial, seeds) < tau:
            sel = trial
    return {"selection": sel, "theta": theta, "signal_before": before, "signal_after": _signal_with(model, y, sel, seeds),
            "mitigated": True, "n_checks": n_checks + 1}


def calibrate(model, control_ys: Tensor, *, seeds: Sequence[int] = range(6)) -> dict:
    """τ = mean + 1 std of m on non-memorized prompts, and the activation statistics."""
    sig = np.array([memorization_signal(model, y, seeds=seeds) for y in control_ys])
    return {"tau": float(sig.mean() + sig.std()), "control_signals": sig, "stats": activation_stats(model, control_ys)}


def merge(selections: Sequence[Selection]) -> Selection:
    """Union of per-prompt selections (NeMo deactivates all found neurons together)."""
    out: dict[str, set[int]] = {}
    for s in selections:
        for n, idx in s.items():
            out.setdefault(n, set()).update(idx)
    return {n: sorted(v) for n, v in out.items()}
