"""Statistics every figure needs to be trusted: ROC-AUC with bootstrap intervals, TPR at low FPR
with Clopper-Pearson intervals, and explicit refusal of figures the sample cannot support.

Convention: ``scores`` higher = more member-like; ``labels`` 1 = member, 0 = non-member.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import stats as _st


def _split(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels).astype(int)
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in shape: {s.shape} vs {y.shape}")
    if np.isnan(s).any():
        raise ValueError(f"{int(np.isnan(s).sum())} scores are NaN")
    return s[y == 1], s[y == 0]


def _auc_pos_neg(pos: np.ndarray, neg: np.ndarray) -> float:
    """Mann-Whitney: P(s+ > s-) + 0.5 P(tie), from the ranks of the pooled sample."""
    n1, n0 = len(pos), len(neg)
    ranks = _st.rankdata(np.concatenate([pos, neg]))
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def roc_auc(scores, labels) -> float:
    """ROC-AUC = P(s_member > s_nonmember) + 0.5 P(tie); NaN (with a warning) if a class is empty.

    >>> roc_auc([0.9, 0.8, 0.1, 0.3], [1, 1, 0, 0])
    1.0
    >>> roc_auc([0.5, 0.5], [1, 0])
    0.5
    """
    pos, neg = _split(scores, labels)
    if len(pos) == 0 or len(neg) == 0:
        warnings.warn("ROC-AUC undefined: only one class present")
        return float("nan")
    return _auc_pos_neg(pos, neg)


def auc_bootstrap_ci(scores, labels, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval for ROC-AUC; members and non-members resampled separately."""
    pos, neg = _split(scores, labels)
    if len(pos) == 0 or len(neg) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    aucs = np.empty(n_boot)
    for b in range(n_boot):
        aucs[b] = _auc_pos_neg(rng.choice(pos, len(pos)), rng.choice(neg, len(neg)))
    a = (1 - level) / 2
    return (float(np.quantile(aucs, a)), float(np.quantile(aucs, 1 - a)))


def clopper_pearson(x: int, n: int, *, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval [Beta^-1(a/2; x, n-x+1), Beta^-1(1-a/2; x+1, n-x)].

    >>> clopper_pearson(0, 10)[0], clopper_pearson(10, 10)[1]
    (0.0, 1.0)
    """
    if n == 0:
        return (float("nan"), float("nan"))
    a = 1 - level
    lo = 0.0 if x == 0 else float(_st.beta.ppf(a / 2, x, n - x + 1))
    hi = 1.0 if x == n else float(_st.beta.ppf(1 - a / 2, x + 1, n - x))
    return (lo, hi)


def bootstrap_ci(x, statistic=np.mean, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of ``statistic(x)`` over the values of x (scipy.stats.bootstrap).

    Non-finite values are left out; None below 2 values; (v, v) when every value is v.
    """
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return None
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    r = _st.bootstrap((x,), statistic, n_resamples=n_boot, confidence_level=level, method="percentile", random_state=seed)
    return float(r.confidence_interval.low), float(r.confidence_interval.high)


def paired_bootstrap_ci(data, statistic, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of ``statistic(*data)``, resampling the rows of the arrays in
    ``data`` jointly (scipy.stats.bootstrap with ``paired=True``).

    Resamples where the statistic is undefined (NaN, e.g. a ratio to a zero mean or a rank
    correlation of a constant) are left out of the percentiles; None below 2 rows or when no
    resample is defined.

    >>> a, b = np.arange(1.0, 21.0), np.arange(1.0, 21.0) + 1
    >>> lo, hi = paired_bootstrap_ci((a, b), lambda x, y: np.mean(y - x))
    >>> (lo, hi)  # every paired difference is 1: the interval is exact
    (1.0, 1.0)
    """
    arrays = tuple(np.asarray(x, dtype=float) for x in data)
    n = len(arrays[0])
    if any(len(x) != n for x in arrays):
        raise ValueError(f"paired samples differ in length: {[len(x) for x in arrays]}")
    if n < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about degenerate (NaN) resamples; they are dropped below
        r = _st.bootstrap(arrays, statistic, paired=True, vectorized=False, n_resamples=n_boot, confidence_level=level, method="percentile", random_state=seed)
    dist = np.asarray(r.bootstrap_distribution, dtype=float)
    dist = dist[np.isfinite(dist)]
    if len(dist) == 0:
        return None
    a = (1 - level) / 2
    return float(np.percentile(dist, 100 * a)), float(np.percentile(dist, 100 * (1 - a)))


def seed_interval(values, *, level: float = 0.95) -> dict:
    """Mean over seeds with a Student-t interval m +- t_{n-1} s / sqrt(n) (None for one seed)."""
    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if len(v) < 2:
        return {"mean": m, "ci95_t": None, "n_seeds": len(v), "per_seed": v.tolist()}
    h = float(_st.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return {"mean": m, "ci95_t": [m - h, m + h], "n_seeds": len(v), "per_seed": v.tolist()}


def rate_ci(hits: int, n: int, *, reason: str = "no samples") -> dict:
    """A rate with its Clopper-Pearson 95% interval: ``{"rate", "ci", "hits", "n"}``; for n = 0 the
    rate and interval are None and ``rate_reason`` says why."""
    if n == 0:
        return {"rate": None, "rate_reason": reason, "ci": None, "hits": 0, "n": 0}
    return {"rate": hits / n, "ci": list(clopper_pearson(hits, n)), "hits": int(hits), "n": int(n)}


def min_negatives(fpr: float) -> int:
    """Fewest non-members that can support a TPR at ``fpr``: ceil(1 / fpr)."""
    return math.ceil(1 / fpr - 1e-9)


def tpr_at_fpr(scores, labels, fpr: float) -> tuple[float | None, int, int, str | None]:
    """TPR at a threshold tau that lets at most a share ``fpr`` of non-members score above it.

    Returns (tpr, hits, n_members, reason). ``tpr`` is None with a reason when the sample has
    fewer non-members than 1 / fpr (memaudit's rule: a 1% figure needs >= 100 controls).
    """
    pos, neg = _split(scores, labels)
    need = min_negatives(fpr)
    if len(pos) == 0:
        return None, 0, 0, "no members"
    if len(neg) < need:
        return None, 0, len(pos), f"{len(neg)} non-members < {need} needed for FPR {fpr:g}"
    k = int(math.floor(fpr * len(neg) + 1e-9))  # false positives allowed
    neg_sorted = np.sort(neg)[::-1]
    tau = neg_sorted[k] if k < len(neg) else -np.inf  # (k+1)-th largest: at most k strictly above
    hits = int((pos > tau).sum())
    return hits / len(pos), hits, len(pos), None


def _pct_key(fpr: float) -> str:
    return {0.01: "1pct", 0.001: "0_1pct"}.get(fpr, f"{fpr * 100:g}pct".replace(".", "_"))


def summarize(scores, labels, *, n_boot: int = 1000, seed: int = 0, fprs: tuple[float, ...] = (0.01, 0.001)) -> dict[str, Any]:
    """The figures a membership score is reported with, JSON-ready.

    Keys: ``auc``, ``auc_ci``, ``tpr_at_<f>_fpr``, ``tpr_at_<f>_fpr_ci`` (Clopper-Pearson over
    members at the chosen threshold), ``*_reason`` beside any null, ``n_members``, ``n_nonmembers``.
    """
    pos, neg = _split(scores, labels)
    out: dict[str, Any] = {"n_members": int(len(pos)), "n_nonmembers": int(len(neg))}
    if len(pos) == 0 or len(neg) == 0:
        out.update(auc=None, auc_ci=None, auc_reason="needs both members and non-members")
    else:
        out["auc"] = _auc_pos_neg(pos, neg)
        out["auc_ci"] = list(auc_bootstrap_ci(scores, labels, n_boot=n_boot, seed=seed))
    for f in fprs:
        key = f"tpr_at_{_pct_key(f)}_fpr"
        tpr, hits, n, reason = tpr_at_fpr(scores, labels, f)
        out[key] = tpr
        out[f"{key}_ci"] = list(clopper_pearson(hits, n)) if tpr is not None else None
        if reason:
            out[f"{key}_reason"] = reason
    return out


def roc_curve_points(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) arrays for plotting, from scikit-learn."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(np.asarray(labels).astype(int), np.asarray(scores, dtype=float))
    return fpr, tpr
