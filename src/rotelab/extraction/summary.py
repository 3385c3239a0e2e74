"""Per-book summaries of window similarities: median with CI, quantiles, share above thresholds."""

from __future__ import annotations

from typing import Any

import numpy as np

from rotelab.core import stats
from rotelab.core.similarity import METRICS

THRESHOLDS = (0.5, 0.9)
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def summarize_metric(x: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """Median (+ bootstrap CI), mean, quantiles and share of windows above each threshold (+ Clopper-Pearson CI).

    Windows of one book are not independent (neighbouring windows share text), so the median's
    interval is optimistic.

    >>> s = summarize_metric(np.array([0.0, 0.6, 1.0, 1.0]))
    >>> s["median"], s["share_gt_0.5"]["rate"]
    (0.8, 0.75)
    """
    x = np.asarray(x, dtype=float)
    out: dict[str, Any] = {"n": len(x), "median": float(np.median(x)), "median_ci": stats.bootstrap_ci(x, np.median, seed=seed), "mean": float(x.mean())}
    out["quantiles"] = {f"q{int(q * 100)}": float(np.quantile(x, q)) for q in QUANTILES}
    for t in THRESHOLDS:
        k = int((x > t).sum())
        out[f"share_gt_{t}"] = {"rate": k / len(x), "ci": list(stats.clopper_pearson(k, len(x))), "hits": k}
    return out


def summarize_book(cols: dict[str, list], *, seed: int = 0) -> dict[str, Any]:
    """Every panel metric summarised over the book's windows (empty windows: undefined, with a reason)."""
    if not cols["start"]:
        return {"n_windows": 0, "metrics": None, "metrics_reason": "no window fits the trimmed book"}
    return {"n_windows": len(cols["start"]), "metrics": {m: summarize_metric(np.asarray(cols[m]), seed=seed) for m in METRICS}}


def plot_along_book(cols: dict[str, list], *, title: str, metrics: tuple[str, ...] = ("jaccard", "rouge_l", "levenshtein")):
    """Similarity of each window against its token position, with a rolling median and the book median."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.asarray(cols["start"])
    fig, ax = plt.subplots(figsize=(8, 3.2))
    w = max(1, len(x) // 25)
    for m, c in zip(metrics, ("tab:blue", "tab:orange", "tab:green")):
        y = np.asarray(cols[m], dtype=float)
        ax.plot(x, y, ".", ms=3, alpha=0.35, color=c)
        roll = np.array([np.median(y[max(0, i - w) : i + w + 1]) for i in range(len(y))])
        ax.plot(x, roll, "-", lw=1.5, color=c, label=f"{m} (median {np.median(y):.2f})")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("window start (token in trimmed book)")
    ax.set_ylabel("similarity (1 = verbatim)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    return fig
