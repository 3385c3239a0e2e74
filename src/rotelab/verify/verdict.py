"""The verdict rule: one word per sample set from every attack's forgotten-vs-holdout AUC.

An attack *detects* residual memorization when its AUC exceeds ``0.5 + delta`` with confidence:
its one-sided bootstrap p-value of H0: AUC <= 0.5 + delta (:func:`rotelab.verify.metrics.auc_excess_p`),
Holm-adjusted across every attack run, is at most ``alpha / 2`` (alpha = 0.05: with one attack,
exactly "the lower end of the 95% interval exceeds 0.5 + delta").

    not removed  a *direct* attack on the unlearned model detects it (loss-family MIAs, extraction)
    hidden       no direct attack does, but an *indirect* one does (REMIND, relearning, quantization)
    removed      nothing detects it
"""

from __future__ import annotations

from dataclasses import dataclass

from rotelab.verify.metrics import holm

DIRECT, INDIRECT = "direct", "indirect"
NOT_REMOVED, HIDDEN, REMOVED = "not removed", "hidden", "removed"


@dataclass(frozen=True)
class Evidence:
    """One attack's figure: its family (``direct`` | ``indirect``), AUC with interval, raw p-value."""

    attack: str
    family: str
    auc: float
    auc_ci: tuple[float, float]
    p_value: float


def verdict(evidence: list[Evidence], *, alpha: float = 0.05) -> dict:
    """The verdict and, per attack, its Holm-adjusted p-value and whether it detects.

    >>> ev = [Evidence("loss", DIRECT, 0.52, (0.4, 0.6), 0.6), Evidence("relearn", INDIRECT, 0.9, (0.8, 0.95), 0.001)]
    >>> v = verdict(ev)
    >>> v["verdict"], v["detected_by"]
    ('hidden', ['relearn'])
    """
    if not evidence:
        return {"verdict": None, "verdict_reason": "no attack ran", "attacks": [], "detected_by": []}
    adj = holm([e.p_value for e in evidence])
    rows = [{"attack": e.attack, "family": e.family, "auc": e.auc, "auc_ci": list(e.auc_ci), "p_value": e.p_value,
             "p_holm": float(a), "detects": bool(a <= alpha / 2)} for e, a in zip(evidence, adj)]
    hit = [r for r in rows if r["detects"]]
    if any(r["family"] == DIRECT for r in hit):
        word = NOT_REMOVED
    elif hit:
        word = HIDDEN
    else:
        word = REMOVED
    return {"verdict": word, "detected_by": [r["attack"] for r in hit], "attacks": rows}
