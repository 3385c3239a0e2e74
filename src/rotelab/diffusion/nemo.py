"""NeMo (Hintersdorf et al., NeurIPS 2024, "Finding NeMo: Localizing Neurons Responsible for
Memorization in Diffusion Models"): memorization neurons are output channels of the cross-attention
value projections ``attn2.to_v``; deactivating them (scaling to 0) stops replication.

1. Memorization signal m(y): agreement across seeds. NeMo takes the mean pairwise SSIM of the
   first-step noise differences over 10 seeds. On the testbed that first-step signal did not
   separate (measured on the tiny preset: a prompt replicating in 4/4 seeds scored 0.10 against
   τ = 0.29), so rotelab applies the same idea to short guided generations: m(y) = mean pairwise
   centred cosine (the replication similarity) of DDIM generations (25 steps) from different seeds;
   SSIM, tried first, was unstable on 8 px images whose mean is near 0. A memorized prompt steers
   every seed to the same image. Threshold τ = mean + 1 std of m on non-memorized prompts.
   When the training image is known, "mitigated" also requires that none of those generations
   replicates it (:func:`check`): with m < τ alone, NeMo left 4 of 6 small-testbed prompts
   replicating (MR 0.25 after NeMo, measured), and the issue requires the mitigation to stop
   replication of the original prompt before DoRI attacks it.
2. Out-of-distribution neurons: z_j = (a_j(y) − μ_j)/σ_j with a_j the mean |activation| of neuron j
   over tokens, μ, σ over non-memorized prompts (NeMo used 50k LAION prompts; here the testbed's).
3. Initial selection: θ from 5 down to 1 in steps of 0.25 (continued to −3 here, then every
   neuron: the testbed's value layers have 32 channels, not 320–1280, and at θ = 0 (73 neurons)
   a prompt still replicated — measured); the first θ whose {j : z_j > θ} mitigates.
4. Refinement: re-enable whole layers, then neurons (lowest z first) whenever the prompt stays
   mitigated without them (a bisection over the lowest-z prefix, then single neurons).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from rotelab.core.hooks import module_hooks
from rotelab.diffusion.replication import centred_cosine, replication_scores

Selection = dict[str, list[int]]  # to_v module name -> deactivated output channels


def value_layers(unet) -> list[str]:
    return [n for n, _ in unet.named_modules() if n.endswith("attn2.to_v")]


@contextlib.contextmanager
def deactivated(unet, selection: Selection) -> Iterator[None]:
    """Scale the selected ``to_v`` output channels to 0 while the block runs."""
    fns = {}
    for name, idx in selection.items():
        if not idx:
            continue
        mask = torch.ones(unet.get_submodule(name).out_features)
        mask[list(idx)] = 0.0
        fns[name] = lambda _m, _i, out, mask=mask: out * mask
    with module_hooks(unet, fns):
        yield


SIGNAL_STEPS = 25  # DDIM steps of the generations behind m(y): as in evaluation (a prompt mitigated at 10 steps replicated 3/4 at 25, measured)
SIGNAL_SEEDS = tuple(range(10))  # NeMo's 10; with 6, selections refined to the edge replicated again on the evaluation seeds (measured)
# θ grid: NeMo's 5 → 1 (step 0.25), continued below the mean (to −3) because the testbed's 4 value
# layers have 32 channels each, not 320–1280; the last candidate is every neuron of every layer.
THETAS = tuple(float(t) for t in np.round(np.arange(5.0, -3.01, -0.25), 2))


@torch.no_grad()
def generations(model, y: Tensor, *, seeds: Sequence[int] = SIGNAL_SEEDS, steps: int = SIGNAL_STEPS) -> Tensor:
    """The short guided generations behind m(y), from seeds 1000 + s (disjoint from evaluation seeds)  # (S, 3, H, W)"""
    return model.sample(y, [1000 + int(s) for s in seeds], steps=steps)


def signal_of(imgs: Tensor) -> float:
    """m from generations: mean pairwise centred cosine across seeds."""
    i, j = torch.triu_indices(len(imgs), len(imgs), 1)
    return float(centred_cosine(imgs[i], imgs[j]).mean())


@torch.no_grad()
def memorization_signal(model, y: Tensor, *, seeds: Sequence[int] = SIGNAL_SEEDS, steps: int = SIGNAL_STEPS) -> float:
    """m(y): mean pairwise centred cosine of guided generations from different seeds (higher = more memorized)."""
    return signal_of(generations(model, y, seeds=seeds, steps=steps))


@torch.no_grad()
def null_floor(model, target: Tensor, *, seeds: Sequence[int] = SIGNAL_SEEDS, rep_threshold: float = 0.7) -> float:
    """Share of the null prompt's check generations that replicate ``target``: the non-memorized level.

    On the testbed the memorized pairs are most of the training data, so the unconditional model
    itself lands on some of them (the null prompt gave memorized-5 in 4 of 16 seeds, measured); no
    mitigation of the prompt can go below that.
    """
    r = replication_scores(generations(model, model.null_embedding(), seeds=seeds), target)
    return float((r >= rep_threshold).float().mean())


@torch.no_grad()
def check(model, y: Tensor, tau: float, *, seeds: Sequence[int] = SIGNAL_SEEDS, target: Tensor | None = None,
          rep_threshold: float = 0.7, floor: float = 0.0) -> dict:
    """Is y (under whatever mitigation is active) mitigated?

    NeMo's criterion is m(y) < τ. When the training image ``target`` is known (the testbed, or a
    user's memorized set with images) the mitigation must also *stop replication*: the share of the
    check's generations with similarity ≥ ``rep_threshold`` may not exceed ``floor`` (the null
    prompt's share, :func:`null_floor`). This second condition is rotelab's: with m < τ alone, NeMo
    and Wanda left most small-testbed prompts replicating (measured), and the issue requires each
    mitigation to stop replication of the original prompt before DoRI attacks it.
    """
    imgs = generations(model, y, seeds=seeds)
    sig = signal_of(imgs)
    if target is None:
        return {"signal": sig, "replication": None, "replication_max": None, "ok": sig < tau}
    r = replication_scores(imgs, target)
    share = float((r >= rep_threshold).float().mean())
    return {"signal": sig, "replication": share, "replication_max": float(r.max()), "ok": sig < tau and share <= floor + 1e-9}


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


def _check_with(model, y: Tensor, sel: Selection, tau: float, **kw) -> dict:
    with deactivated(model.unet, sel):
        return check(model, y, tau, **kw)


def select_neurons(model, y: Tensor, stats: dict[str, tuple[Tensor, Tensor]], tau: float, *, seeds: Sequence[int] = SIGNAL_SEEDS,
                   thetas: Sequence[float] = THETAS, target: Tensor | None = None, rep_threshold: float = 0.7,
                   max_single_checks: int = 8) -> dict:
    """NeMo's selection for one embedding: initial θ search, then layer and neuron refinement.

    "Mitigated" is :func:`check` (m < τ, and no replication of ``target`` when given). Steps:
    1. θ from ``thetas[0]`` down: the first candidate set {j : z_j > θ} that mitigates (sets equal
       to an already failed one are skipped); past the grid, every neuron of every layer.
    2. Layer refinement: re-enable a whole layer when the rest still mitigates.
    3. Neuron refinement, least anomalous (lowest z) first: the longest prefix of that order that
       can be re-enabled together (bisection, assuming re-enabling more neurons never lowers m),
       then single neurons of the rest (at most ``max_single_checks`` checks).

    Returns the selection, the θ used, signal / replication before and after and ``mitigated``.
    """
    floor = null_floor(model, target, seeds=seeds, rep_threshold=rep_threshold) if target is not None else 0.0
    kw = {"seeds": seeds, "target": target, "rep_threshold": rep_threshold, "floor": floor}
    z = z_scores(model, y, stats)
    before = check(model, y, tau, **kw)
    base = {"signal_before": before["signal"], "replication_before": before["replication"], "replication_floor": floor}
    if before["ok"]:
        return {"selection": {n: [] for n in z}, "theta": None, **base, "signal_after": before["signal"],
                "replication_after": before["replication"], "mitigated": True, "n_checks": 1}
    n_checks, sel, theta, last, res = 1, None, None, None, before
    grid = [*thetas, -float("inf")]
    for th in grid:
        cand = {n: torch.nonzero(zz > th).flatten().tolist() for n, zz in z.items()}
        if cand == last or not any(cand.values()):
            continue
        last = cand
        n_checks += 1
        res = _check_with(model, y, cand, tau, **kw)
        if res["ok"]:
            sel, theta = cand, float(th)
            break
    if sel is None:  # even every value neuron does not mitigate: report that set, flagged
        return {"selection": last, "theta": None, **base, "signal_after": res["signal"], "replication_after": res["replication"],
                "mitigated": False, "n_checks": n_checks}
    for n in list(sel):  # layer refinement
        if sel[n]:
            trial = {**sel, n: []}
            n_checks += 1
            if _check_with(model, y, trial, tau, **kw)["ok"]:
                sel = trial
    order = sorted((float(z[n][j]), n, j) for n, idx in sel.items() for j in idx)

    def without(drop) -> Selection:
        d = {(n, j) for _, n, j in drop}
        return {n: [j for j in idx if (n, j) not in d] for n, idx in sel.items()}

    lo, hi = 0, len(order) - 1  # largest k < len such that re-enabling order[:k] still mitigates
    while lo < hi:
        mid = (lo + hi + 1) // 2
        n_checks += 1
        if _check_with(model, y, without(order[:mid]), tau, **kw)["ok"]:
            lo = mid
        else:
            hi = mid - 1
    sel = without(order[:lo])
    for _, n, j in order[lo:][:max_single_checks]:  # single neurons of the rest, least anomalous first
        trial = {**sel, n: [k for k in sel[n] if k != j]}
        if not any(trial.values()):
            continue
        n_checks += 1
        if _check_with(model, y, trial, tau, **kw)["ok"]:
            sel = trial
    after = _check_with(model, y, sel, tau, **kw)
    return {"selection": sel, "theta": theta, **base, "signal_after": after["signal"], "replication_after": after["replication"],
            "mitigated": bool(after["ok"]), "n_checks": n_checks + 1}


def calibrate(model, control_ys: Tensor, *, seeds: Sequence[int] = SIGNAL_SEEDS) -> dict:
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
