"""Retrieval and ranking metrics (pure functions) with their intervals.

- HR@K = 1[rank <= K]; NDCG@K = 1[rank <= K] / log2(rank + 1), with one relevant item, where
  rank = 1 + #(negatives scoring >= the positive) (ties count against the model);
- AUC per binary task from :func:`rotelab.core.stats.roc_auc`, bootstrap interval over candidates;
- NE (normalized entropy) = LogLoss / H(p_bar), H the binary entropy of the base rate (He et al. 2014).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rotelab.core.stats import auc_bootstrap_ci, paired_bootstrap_ci, roc_auc


def rank_of_positive(pos: np.ndarray, negs: np.ndarray) -> np.ndarray:
    """pos (P,), negs (P, K) -> rank (P,) of each positive among its K negatives (1 = best).

    >>> rank_of_positive(np.array([0.9, 0.1]), np.array([[0.5, 0.95], [0.5, 0.1]])).tolist()
    [2, 3]
    """
    return 1 + (negs >= pos[:, None]).sum(axis=1)


def hr_ndcg(rank: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Per-positive HR@k and NDCG@k from ranks.

    >>> [x.tolist() for x in hr_ndcg(np.array([1, 3, 11]), k=10)]
    [[1.0, 1.0, 0.0], [1.0, 0.5, 0.0]]
    """
    hit = (rank <= k).astype(float)
    return hit, hit / np.log2(rank + 1.0)


def normalized_entropy(p: np.ndarray, y: np.ndarray) -> float:
    """NE = mean BCE(p, y) / H(mean y); < 1 beats predicting the base rate."""
    p = np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    y = np.asarray(y, dtype=float)
    base = np.clip(y.mean(), 1e-7, 1 - 1e-7)
    ll = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
    return float(ll / -(base * np.log(base) + (1 - base) * np.log(1 - base)))


def task_metrics(prob: np.ndarray, y: np.ndarray, *, seed: int = 0, min_class: int = 10) -> dict[str, Any]:
    """AUC (with 95% bootstrap CI) and NE of one binary task; null with a reason if a class is rare."""
    n_pos, n = int(y.sum()), len(y)
    out: dict[str, Any] = {"n": n, "n_pos": n_pos}
    if min(n_pos, n - n_pos) < min_class:
        return out | {"auc": None, "auc_ci": None, "ne": None, "auc_reason": f"{n_pos} positives / {n - n_pos} negatives; need >= {min_class} of each"}
    return out | {"auc": roc_auc(prob, y), "auc_ci": list(auc_bootstrap_ci(prob, y, seed=seed)), "ne": normalized_entropy(prob, y)}


def _rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """(mean(a) - mean(b)) / mean(b); NaN when mean(b) <= 0 (relative to nothing is undefined)."""
    mb = b.mean()
    return float((a.mean() - mb) / mb) if mb > 0 else float("nan")


def paired_rel_diff(a: np.ndarray, b: np.ndarray, *, seed: int = 0, n_boot: int = 1000) -> tuple[float, list[float] | None]:
    """(mean(a) - mean(b)) / mean(b) with a paired percentile bootstrap over users (rows)
    (:func:`rotelab.core.stats.paired_bootstrap_ci`; resamples with mean(b) = 0 left out).

    NaN (and no interval) when mean(b) = 0: a relative difference to nothing is undefined.

    >>> paired_rel_diff(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]))
    (0.0, [0.0, 0.0])
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = _rel_diff(a, b)
    if np.isnan(d):
        return d, None
    ci = paired_bootstrap_ci((a, b), _rel_diff, n_boot=n_boot, seed=seed)
    return d, None if ci is None else list(ci)
