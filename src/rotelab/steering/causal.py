"""Causal check of the probe: does moving activations along its direction change recitation?

At the probe's block, every steered position is displaced along the unit probe weight
(toward *memorizing* for d > 0), in units of the class-mean distance s = |mu_gen - mu_mem|:

    h_t <- h_t + d * s * w / |w|

and the verbatim continuation rate of held-out memorized prompts is measured per d (greedy,
Clopper-Pearson 95% CI), with the mean share of continuation tokens reproduced. A random
direction of the same length at each |d| is the control: a large enough push in *any* direction
breaks recitation. The probe is called causal when the most negative d lowers the verbatim rate
below d = 0 (one-sided Fisher exact test, p < 0.05), and *specific* when, at some negative d,
it lowers the rate more than the random direction of the same length (Fisher p < 0.05);
otherwise "classifies but does not cause" is reported (cf. arXiv 2605.05715).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rotelab.core import stats
from rotelab.steering.labels import Item, verbatim
from rotelab.steering.steer import SteerConfig, Steering, generate

if TYPE_CHECKING:
    from rotelab.core.models import HFLanguageModel
    from rotelab.steering.probe import Probe


def token_match(items: list[Item], gens: list[list[int]]) -> np.ndarray:
    """Share of the known continuation's tokens reproduced in place."""
    return np.array([float(np.mean(np.asarray(g[: len(it.continuation)]) == np.asarray(it.continuation))) for it, g in zip(items, gens)])


def _fisher_less(a: dict, b: dict) -> float:
    """One-sided Fisher exact p that rate(a) < rate(b)."""
    from scipy.stats import fisher_exact

    return float(fisher_exact([[a["hits"], a["n"] - a["hits"]], [b["hits"], b["n"] - b["hits"]]], alternative="less")[1])


def _row(lm, probe, items, vector, d, n_new, batch_size, progress) -> dict:
    st = Steering(probe, SteerConfig(mode="static", alpha=float(d)), vector=vector)
    gens = generate(lm, [it.prompt for it in items], n_new, st, batch_size=batch_size, progress=progress).tokens
    hits = int(verbatim(lm, items, gens).sum())
    return {"displacement": d, "hits": hits, "n": len(items), "rate": hits / len(items), "ci": list(stats.clopper_pearson(hits, len(items))),
            "mean_token_match": float(token_match(items, gens).mean())}


def dose_response(lm: "HFLanguageModel", probe: "Probe", items: list[Item], *, displacements: tuple[float, ...] = (-2.0, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0), batch_size: int = 64, progress: bool = False) -> dict:
    """Verbatim rate of ``items`` (with continuations) per displacement d along the probe weight,
    and along a random direction of the same length (control, per |d|)."""
    items = [it for it in items if it.continuation]
    n_new = max(len(it.continuation) for it in items)
    size = np.linalg.norm(probe.mu_gen - probe.mu_mem)
    unit = probe.w / np.linalg.norm(probe.w) * size
    rnd = probe.direction("random")
    ds = sorted(set(displacements) | {0.0})
    rows = [_row(lm, probe, items, unit, d, n_new, batch_size, progress) for d in ds]
    control = [_row(lm, probe, items, rnd, m, n_new, batch_size, progress) for m in sorted({abs(d) for d in ds if d})]
    base = next(r for r in rows if r["displacement"] == 0.0)
    low = rows[0]
    if low["displacement"] >= 0:
        return {"rows": rows, "random_rows": control, "causal": None, "causal_reason": "no negative displacement was tried"}
    p = _fisher_less(low, base)
    spec = {r["displacement"]: _fisher_less(r, next(c for c in control if c["displacement"] == -r["displacement"])) for r in rows if r["displacement"] < 0}
    out = {"rows": rows, "random_rows": control, "p_value": p, "causal": p < 0.05, "specific": any(v < 0.05 for v in spec.values()),
           "specificity_p_values": {str(k): v for k, v in spec.items()}, "n_items": len(items), "unit": "class-mean distance |mu_gen - mu_mem|"}
    if base["hits"] == 0:
        out["causal"] = None
        out["causal_reason"] = "no held-out prompt is recited verbatim without steering: nothing to suppress"
    elif not out["causal"]:
        out["causal_reason"] = f"displacement {low['displacement']} did not lower the verbatim rate significantly (p = {p:.3f}): the probe classifies but does not cause"
    elif not out["specific"]:
        out["causal_reason"] = "moving along the probe lowers recitation, but no more than a random direction of the same length: the effect is not specific to the probe"
    return out
