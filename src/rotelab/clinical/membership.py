"""T4 membership (Tonekaboni et al. 2025: Min-K% Prob, k = 20%, members vs held-out).

One teacher-forced pass per record (:func:`rotelab.core.signals.compute_signals`) gives the
per-token signals; every single-pass attack of the membership suite (loss, zlib, Min-K%,
Min-K%++) is a pure function of them. The peer code re-runs the model on every prefix of every
record (O(L) passes of growing length per record); ``bench/clinical_audit.py`` measures the ratio.
The signal cache lives inside the run folder (``cache/``): a user-wide cache would keep patient
token sequences after the run is deleted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from rotelab.core.stats import summarize

if TYPE_CHECKING:
    from rotelab.clinical.cohort import Cohort
    from rotelab.core.models import LanguageModel
    from rotelab.core.runs import RunFolder


def membership_scores(lm: "LanguageModel", cohort: "Cohort", run: "RunFolder", *, k: float, batch_size: int = 64, progress: bool = True) -> dict[str, np.ndarray]:
    """Per patient, each single-pass attack's score (higher = more member-like)."""
    from rotelab.core.cache import SignalCache
    from rotelab.core.signals import compute_signals, record_long_text
    from rotelab.membership.attacks import ATTACKS
    from rotelab.membership.context import AttackContext, MIAConfig

    texts = [cohort.text(i) for i in range(len(cohort))]
    counts: list = []
    cache = SignalCache(run.file("cache"))
    try:
        sigs = compute_signals(lm, texts, ids=[f"p{i}" for i in range(len(texts))], batch_size=batch_size, cache=cache, progress=progress, counts_out=counts)
    finally:
        cache.close()
    record_long_text(run, counts[0])
    ctx = AttackContext(lm, texts, sigs, MIAConfig(k=k, batch_size=batch_size))
    return {a.name: a.run(ctx) for a in ATTACKS.values() if a.single_pass}


def membership_metrics(scores: dict[str, np.ndarray], members: np.ndarray, *, seed: int) -> dict[str, Any]:
    """AUC with its bootstrap interval and TPR at 1% / 0.1% FPR (Clopper-Pearson) per attack."""
    return {name: summarize(s, members.astype(int), seed=seed) for name, s in scores.items()}
