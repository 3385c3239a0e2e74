"""Scores of one answer and the summaries the paper reports, as pure functions.

* exact match: the answer equals the gold string (whitespace runs collapsed); memorization is
  exact match on training terms, generalization on validation terms (Pericharla et al. 2025).
* synonym-aware match (id -> term): the answer equals, ignoring case, the name or any synonym.
* latent knowledge: the share of k sampled answers (T > 0) that are exact (the companion paper's
  definition, Information 16(9):776).
* partial credit: the longest correct prefix of the identifier, as a share of its length, and the
  share of its digits right in place.
* gain: fine-tuned minus base exact match on the same questions, with a paired bootstrap interval.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from rotelab.core.stats import paired_bootstrap_ci, rate_ci


def normalize(s: str) -> str:
    return " ".join(s.split())


def exact_match(pred: str, gold: str) -> bool:
    """Equal after normalisation (case, surrounding space).

    >>> exact_match(" HP:0001250 ", "HP:0001250"), exact_match("HP:0001251", "HP:0001250")
    (True, False)
    """
    return normalize(pred) == normalize(gold)


def synonym_match(pred: str, accepted: Sequence[str]) -> bool:
    """Equal to any accepted answer after normalisation.

    >>> synonym_match("seizures", ["Seizure", "Seizures"])
    True
    """
    p = normalize(pred).casefold()
    return any(p == normalize(a).casefold() for a in accepted)


def prefix_credit(pred: str, gold: str) -> float:
    """Longest common prefix as a share of the gold length.

    >>> prefix_credit("HP:0001299", "HP:0001250"), prefix_credit("", "HP:0001250")
    (0.8, 0.0)
    """
    p, g = normalize(pred), normalize(gold)
    n = 0
    while n < min(len(p), len(g)) and p[n] == g[n]:
        n += 1
    return n / len(g) if g else float("nan")


def digit_credit(pred: str, gold: str) -> float:
    """Share of the gold's digits matched in place by the answer's digits (NaN when the gold has none).

    >>> digit_credit("HP:0001299", "HP:0001250"), digit_credit("HP:1", "HP:0001250")
    (0.7142857142857143, 0.0)
    """
    dg = [c for c in gold if c.isdigit()]
    if not dg:
        return float("nan")
    dp = [c for c in pred if c.isdigit()]
    return sum(a == b for a, b in zip(dg, dp)) / len(dg)


def latent_share(samples: Sequence[str], gold: str) -> float:
    """Share of sampled answers that are exact.

    >>> latent_share(["A", "B", "A", "A"], "A")
    0.75
    """
    return float(np.mean([exact_match(s, gold) for s in samples])) if samples else float("nan")


def mean_ci(x: Sequence[float], *, seed: int = 0, n_boot: int = 1000) -> dict[str, Any]:
    """Mean with a percentile-bootstrap 95% interval (NaN values left out)."""
    from rotelab.core.stats import bootstrap_ci

    v = np.asarray(x, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return {"mean": None, "mean_reason": "no defined values", "ci": None, "n": 0}
    ci = bootstrap_ci(v, n_boot=n_boot, seed=seed)
    return {"mean": float(v.mean()), "ci": list(ci) if ci else None, "n": int(len(v))}


def gain(base: Sequence[bool], tuned: Sequence[bool], *, seed: int = 0, n_boot: int = 1000) -> dict[str, Any]:
    """Fine-tuned minus base exact match on the same questions, paired bootstrap 95% interval.

    >>> gain([0, 0, 1, 0], [1, 1, 1, 0])["mean"]
    0.5
    """
    b, t = np.asarray(base, dtype=float), np.asarray(tuned, dtype=float)
    if len(b) == 0:
        return {"mean": None, "mean_reason": "no questions", "ci": None, "n": 0}
    ci = paired_bootstrap_ci((b, t), lambda x, y: np.mean(y - x), n_boot=n_boot, seed=seed)
    return {"mean": float((t - b).mean()), "ci": list(ci) if ci else None, "n": int(len(b))}


def rate(hits: Sequence[bool]) -> dict[str, Any]:
    """Share of hits with its Clopper-Pearson 95% interval (:func:`rotelab.core.stats.rate_ci`)."""
    h = np.asarray(hits, dtype=bool)
    return rate_ci(int(h.sum()), len(h), reason="no questions")


def summarize_items(rows: dict[str, np.ndarray], mask: np.ndarray, *, seed: int = 0, n_boot: int = 1000) -> dict[str, Any]:
    """Every figure of one group of questions (``mask`` selects rows of the items table)."""
    out: dict[str, Any] = {"n": int(mask.sum())}
    for who in ("base", "tuned"):
        out[f"{who}_em"] = rate(rows[f"{who}_em"][mask])
        out[f"{who}_synonym_em"] = rate(rows[f"{who}_synonym_em"][mask])
        out[f"{who}_latent"] = mean_ci(rows[f"{who}_latent"][mask], seed=seed, n_boot=n_boot)
        out[f"{who}_prefix_credit"] = mean_ci(rows[f"{who}_prefix"][mask], seed=seed, n_boot=n_boot)
        out[f"{who}_digit_credit"] = mean_ci(rows[f"{who}_digits"][mask], seed=seed, n_boot=n_boot)
    out["gain"] = gain(rows["base_em"][mask], rows["tuned_em"][mask], seed=seed, n_boot=n_boot)
    out["latent_gain"] = gain(rows["base_latent"][mask], rows["tuned_latent"][mask], seed=seed, n_boot=n_boot)
    return out
