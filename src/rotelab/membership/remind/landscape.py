"""REMIND's input loss landscape of one sample, and the features read from it.

REMIND (Cohen, Nemcovsky, Mendelson, arXiv 2511.04228): forgotten samples sit on flatter, less
steep input loss landscapes than retained or never-seen ones. The landscape here is the loss
change dL_k = NLL(x~_k) - NLL(x) over K embedding-neighbour variants x~_k at each probe setting
(neighbour rank j, swap rate p).

Features (research note section 2 and 7; the section 7 lesson: flatness must be read at equal
loss, so raw loss and loss-relative features are included and the classifier sees them jointly):

    loss                        NLL(x)
    dl_mean_j{j}_p{p}           mean_k dL_k per setting
    dl_rel_j{j}_p{p}            mean_k dL_k / NLL(x)
    dl_std, dl_min, dl_max,
    dl_q10, dl_q50, dl_q90      over all variants of the base rate
    share_lower                 share of variants with dL_k < 0
    dl_per_swap                 mean_k (summed log-prob loss change) / (number of swapped tokens)
    ctx_dl                      mean loss change at the positions that were *not* swapped: how much
                                the rest of the text relied on the exact context
    slope_rank, curv_rank       slope and mean 2nd difference of mean dL against log2 j
    slope_rate                  slope of mean dL against p (at rank 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rotelab.core.signals import TokenSignals


@dataclass(frozen=True)
class ProbeConfig:
    ranks: tuple[int, ...] = (1, 2, 4, 8)  # j ladder, at the base rate
    rates: tuple[float, ...] = (0.05, 0.2)  # p ladder, at rank 1 (besides the base rate)
    base_rate: float = 0.1
    # variants per setting: 8 from the K curve (bench/remind_testbed.py --k-curve 4,8,16,32, small testbed):
    # K=32 adds <= 0.025 forgotten-vs-holdout AUC on unlearned models while the retrain null drifts
    # 0.53 -> 0.58 (CI leaves 0.5), at 4x the forward passes (1 + 6K per sample)
    k: int = 8
    seed: int = 0

    def settings(self) -> list[tuple[int, float]]:
        out = [(j, self.base_rate) for j in self.ranks]
        out += [(self.ranks[0], p) for p in self.rates if p != self.base_rate]
        return out


def setting_name(j: int, p: float) -> str:
    return f"j{j}_p{p:g}"


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(x, y, 1)[0]) if len(x) > 1 else 0.0


def landscape_features(orig: TokenSignals, variants: dict[tuple[int, float], list[np.ndarray]], masks: dict[tuple[int, float], np.ndarray], cfg: ProbeConfig) -> dict[str, float]:
    """Features of one sample from its original signals and each setting's variants' log-probs.

    ``variants[setting]`` holds K (T-1,) log-prob arrays; ``masks[setting]`` is the (K, T) swap
    mask; position t of logp predicts token t + 1.
    """
    nll = orig.nll
    f: dict[str, float] = {"loss": nll}
    means = {}
    for setting, lps in variants.items():
        dl = np.array([-lp.mean() for lp in lps], dtype=np.float64) - nll
        means[setting] = float(dl.mean())
        f[f"dl_mean_{setting_name(*setting)}"] = means[setting]
        f[f"dl_rel_{setting_name(*setting)}"] = means[setting] / max(nll, 1e-6)
    base = [(j, p) for (j, p) in variants if p == cfg.base_rate]
    dl_all = np.concatenate([np.array([-lp.mean() for lp in variants[b]], dtype=np.float64) - nll for b in base])
    f.update(
        dl_std=float(dl_all.std()),
        dl_min=float(dl_all.min()),
        dl_max=float(dl_all.max()),
        dl_q10=float(np.quantile(dl_all, 0.1)),
        dl_q50=float(np.quantile(dl_all, 0.5)),
        dl_q90=float(np.quantile(dl_all, 0.9)),
        share_lower=float((dl_all < 0).mean()),
    )
    per_swap, ctx = [], []
    for b in base:
        for lp, m in zip(variants[b], masks[b]):
            d = orig.logp.astype(np.float64) - lp  # (T-1,) loss change per predicted token
            swapped = m[1:]  # the prediction of a swapped token itself
            per_swap.append(d.sum() / max(int(m.sum()), 1))
            if (~swapped).any():
                ctx.append(d[~swapped].mean())
    f["dl_per_swap"] = float(np.mean(per_swap))
    f["ctx_dl"] = float(np.mean(ctx)) if ctx else 0.0
    ranks = np.log2([j for j, _ in base])
    ys = np.array([means[b] for b in base])
    f["slope_rank"] = _slope(ranks, ys)
    f["curv_rank"] = float(np.diff(ys, 2).mean()) if len(ys) > 2 else 0.0
    rate_set = sorted({s for s in variants if s[0] == cfg.ranks[0]}, key=lambda s: s[1])
    f["slope_rate"] = _slope(np.array([p for _, p in rate_set]), np.array([means[s] for s in rate_set]))
    return f
