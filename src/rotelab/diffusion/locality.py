"""Locality diagnostics (Finding Dori §4): if memorization lived in a few weights, triggers for one
image would sit together in embedding space, produce similar activations, and point pruning
methods at the same neurons. Three measurements test each:

- spread: pairwise ‖y_a − y_b‖₂ of triggers found for one image, against pairwise distances of
  distinct ordinary prompts' embeddings;
- activation discrepancy: mean pairwise ℓ₂ distance of a layer's activations at fixed noise and
  timestep, triggers of one image vs distinct memorized prompts;
- IoU |A ∩ B| / |A ∪ B| of the neurons / weights NeMo or Wanda select from different triggers,
  and between the two methods. A layer where both sets are empty has no IoU (reported as such,
  not as 1: the paper's high IoUs from selecting nothing are an artefact).
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from rotelab.core.hooks import module_hooks


def pairwise_l2(ys: Tensor) -> np.ndarray:
    """Upper-triangle pairwise distances of flattened embeddings  # (K, L, D) -> (K(K-1)/2,)"""
    d = torch.cdist(ys.flatten(1)[None], ys.flatten(1)[None])[0]
    i, j = torch.triu_indices(len(ys), len(ys), 1)
    return d[i, j].numpy()


def iou(a: set, b: set) -> float:
    """|A ∩ B| / |A ∪ B|; NaN when both are empty.

    >>> iou({1, 2, 3}, {2, 3, 4})
    0.5
    """
    u = len(a | b)
    return len(a & b) / u if u else float("nan")


def pairwise_iou(sets: Sequence[dict[str, set]]) -> dict[str, dict]:
    """Per-layer and pooled IoU over all pairs of selections (each {layer: set of unit ids})."""
    layers = sorted({n for s in sets for n in s})
    out = {}
    for n in layers + ["all"]:
        vals = []
        for a, b in itertools.combinations(sets, 2):
            if n == "all":
                A = {(m, k) for m, ks in a.items() for k in ks}
                B = {(m, k) for m, ks in b.items() for k in ks}
            else:
                A, B = a.get(n, set()), b.get(n, set())
            vals.append(iou(A, B))
        v = np.array(vals, dtype=float)
        ok = v[~np.isnan(v)]
        out[n] = {"mean": float(ok.mean()) if ok.size else None, "n_pairs": int(ok.size), "n_both_empty": int(np.isnan(v).sum()),
                  **({} if ok.size else {"mean_reason": "every pair selected nothing in this layer"})}
    return out


def as_sets(selection: dict) -> dict[str, set]:
    return {n: set(int(i) for i in (idx.tolist() if isinstance(idx, Tensor) else idx)) for n, idx in selection.items()}


@torch.no_grad()
def layer_activations(model, y: Tensor, layers: Sequence[str], *, seed: int = 0, t: int | None = None) -> dict[str, Tensor]:
    """Outputs of ``layers`` for one embedding at fixed noise x_T and timestep  # {layer: flat}"""
    acts: dict[str, Tensor] = {}

    def keep(name):
        def hook(_m, _i, out) -> None:
            acts[name] = (out[0] if isinstance(out, tuple) else out).flatten()
        return hook

    with module_hooks(model.unet, {n: keep(n) for n in layers}):
        x = torch.randn(model.noise_shape(1), generator=torch.Generator().manual_seed(seed))
        model.eps(x, model.first_timestep() if t is None else t, y[None])
    return acts


def activation_discrepancy(model, ys: Tensor, layers: Sequence[str], *, seed: int = 0) -> dict[str, float]:
    """Mean pairwise ℓ₂ distance of each layer's activations across the embeddings ``ys`` (K, L, D)."""
    acts = [layer_activations(model, y, layers, seed=seed) for y in ys]
    return {n: float(pairwise_l2(torch.stack([a[n] for a in acts])[:, None]).mean()) for n in layers}


def cross_attention_layers(unet) -> list[str]:
    """The cross-attention modules (``attn2``) and their value projections: where text enters."""
    return [n for n, _ in unet.named_modules() if n.endswith("attn2") or n.endswith("attn2.to_v")]


@torch.no_grad()
def wanda_value_neurons(model, y: Tensor, y_ref: Tensor, counts: dict[str, int]) -> dict[str, set]:
    """Wanda's view of the value neurons, to compare with NeMo on the same units.

    For ``to_v`` the input X is the embedding itself, so D_ij = |W_ij|·(‖y_{:,j}‖ − mean_ref ‖y_{:,j}‖);
    a neuron's (row's) score is Σ_j D_ij, and the top ``counts[layer]`` rows are selected (NeMo's count).
    """
    mods = dict(model.unet.named_modules())
    ref = y_ref.norm(dim=1).mean(0)  # (D,)
    out = {}
    for n, k in counts.items():
        if k == 0:
            out[n] = set()
            continue
        row = (mods[n].weight.abs() * (y.norm(dim=0) - ref)[None]).sum(1)
        out[n] = set(row.topk(k).indices.tolist())
    return out
