"""T1 trajectory memorization (Tonekaboni et al. 2025): how close the model's sampled
continuations of a patient's prompt come to the patient's true trajectory (d_EMD, lower =
closer), against the random baseline (continuations of ``[BOS]`` alone, the same for everyone).

Per patient and rung: the mean and s.d. of d_EMD over the n continuations, and the mean and
median of the random baseline's d_EMD to the same true trajectory. A member is **flagged** when
its mean d_EMD is below the ``t1_quantile`` quantile of the held-out patients' at that rung: the
model reproduces its trajectory better than it does for patients it never saw (so held-out
patients are flagged at about that rate by construction).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from rotelab.clinical.demd import Trajectories
from rotelab.clinical.generation import cut


def rung_distances(traj: Trajectories, targets: Sequence[Sequence[int] | None], gens: np.ndarray, index: np.ndarray, pool: np.ndarray,
                   stops: set[int], window: int) -> dict[str, np.ndarray]:
    """Per patient (NaN without a target): ``d_emd`` and ``d_emd_sd`` over its continuations
    ``gens[index[i]]``, ``base_mean`` and ``base_median`` over the random ``pool``; true
    trajectories are cut to ``window`` tokens, generated ones at their first stop token."""
    P = len(targets)
    out = {k: np.full(P, np.nan) for k in ("d_emd", "d_emd_sd", "base_mean", "base_median")}
    pool_cut = [cut(s, stops) for s in pool]
    memo: dict[tuple, tuple[float, float, float, float]] = {}
    for i, tgt in enumerate(targets):
        if tgt is None or index[i] < 0 or not len(tgt):
            continue
        a = list(tgt[:window])
        key = (int(index[i]), tuple(a))
        if key not in memo:
            d = traj.distances(a, [cut(s, stops) for s in gens[index[i]]])
            b = traj.distances(a, pool_cut) if len(pool_cut) else np.array([np.nan])
            memo[key] = (float(d.mean()), float(d.std()), float(b.mean()), float(np.median(b)))
        out["d_emd"][i], out["d_emd_sd"][i], out["base_mean"][i], out["base_median"][i] = memo[key]
    return out


def flag_threshold(d: np.ndarray, held_out: np.ndarray, quantile: float) -> tuple[float | None, str | None]:
    """The ``quantile`` of held-out patients' d_EMD; None (with why) below 1 / quantile of them."""
    ref = d[held_out & np.isfinite(d)]
    need = int(np.ceil(1 / quantile - 1e-9))
    if len(ref) < need:
        return None, f"{len(ref)} held-out patients with a trajectory < {need} needed for the {quantile:g} quantile"
    return float(np.quantile(ref, quantile)), None


def t1_flags(d: np.ndarray, threshold: float | None) -> np.ndarray:
    """(P,) bool: d_EMD below the threshold (never without one)."""
    return np.isfinite(d) & (d < threshold) if threshold is not None else np.zeros(len(d), dtype=bool)
