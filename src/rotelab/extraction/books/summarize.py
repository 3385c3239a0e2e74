"""Summaries of the books experiment's windows: per excerpt, pooled over excerpts, and the
rank correlation of duplication with extraction.

* median Jaccard per excerpt with a percentile-bootstrap interval over its windows (neighbouring
  windows share text, so the interval is optimistic); exact-window share with Clopper-Pearson.
* Spearman rho(copies, median Jaccard) = Pearson correlation of the ranks, with a paired
  percentile-bootstrap interval over excerpts (:func:`rotelab.core.stats.paired_bootstrap_ci`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rotelab.core import stats

STAGES = ("base", "suppressed", "lora")  # the experiment's models, in order (keys of its result)
STAGE_LABELS = {"base": "base", "suppressed": "suppressed", "lora": "suppressed + LoRA"}


def summarize_excerpts(cols: dict[str, list], excerpts: list[dict], *, seed: int = 0) -> list[dict[str, Any]]:
    """Per excerpt: median Jaccard (+ percentile-bootstrap CI over windows), exact-window share (+ Clopper-Pearson)."""
    ex = np.asarray(cols["excerpt"])
    jac, exact = np.asarray(cols["jaccard"], dtype=float), np.asarray(cols["exact"], dtype=float)
    out = []
    for e in excerpts:
        sel = ex == e["id"]
        j = jac[sel]
        out.append({
            "id": e["id"], "book": e["book"], "copies": int(e["copies"]), "role": e.get("role"), "n_windows": int(sel.sum()),
            "median_jaccard": float(np.median(j)) if len(j) else None, "median_jaccard_ci": stats.bootstrap_ci(j, np.median, seed=seed),
            "mean_jaccard": float(j.mean()) if len(j) else None, "median_rouge_l": float(np.median(np.asarray(cols["rouge_l"], dtype=float)[sel])) if len(j) else None,
            "exact": stats.rate_ci(int(exact[sel].sum()), int(sel.sum()), reason="no windows"),
        })
    return out


def pooled(cols: dict[str, list], ids: list[str], *, seed: int = 0) -> dict[str, Any]:
    """Windows of several excerpts pooled: median Jaccard (+ bootstrap CI) and exact share (+ Clopper-Pearson)."""
    sel = np.isin(np.asarray(cols["excerpt"]), ids)
    j = np.asarray(cols["jaccard"], dtype=float)[sel]
    return {"excerpts": ids, "n_windows": int(sel.sum()), "median_jaccard": float(np.median(j)) if len(j) else None,
            "median_jaccard_ci": stats.bootstrap_ci(j, np.median, seed=seed), "mean_jaccard": float(j.mean()) if len(j) else None,
            "exact": stats.rate_ci(int(np.asarray(cols["exact"], dtype=float)[sel].sum()), int(sel.sum()), reason="no windows")}


def _rho(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)  # NaN when a resample is constant: left out of the interval


def spearman_ci(x: list[float], y: list[float], *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Spearman rho (scipy) with a paired percentile-bootstrap interval over items.

    Resamples in which a variable is constant (rho undefined) are left out of the percentiles.

    >>> r = spearman_ci([1, 2, 3, 4, 5], [0.1, 0.3, 0.2, 0.6, 0.9], n_boot=200)
    >>> round(r["rho"], 6), r["n"]
    (0.9, 5)
    >>> spearman_ci([1, 2, 3], [0.5, 0.5, 0.5])["rho_reason"]
    'fewer than 3 items or a constant variable'
    """
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return {"rho": None, "rho_reason": "fewer than 3 items or a constant variable", "n": len(x)}
    r = spearmanr(x, y)
    ci = stats.paired_bootstrap_ci((x, y), _rho, n_boot=n_boot, seed=seed, level=level)
    return {"rho": float(r.statistic), "p_value": float(r.pvalue), "ci": list(ci) if ci else None, "n": len(x), "n_boot": n_boot, "seed": seed}
