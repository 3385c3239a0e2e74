"""The per-patient verdict: memorization, generalization or no finding, with the evidence.

A finding is a T2 flag (one of the record's own sensitive codes generated in more than ``p_th``
of the continuations, with the sensitive codes removed from the prompt) or a T1 flag (the true
trajectory reproduced better than for held-out patients), at the lowest rung of the ladder where
it appears. Following the paper's ladder and plausibility check (section 5 of
``research/clinical_ehr.md``), the first rule that applies decides:

1. **generalization** when it appears without any patient information (the random rung);
2. **generalization** when it is clinically supported: a prompt code co-occurs with the
   predicted sensitive code in the training cohort (lift >= 2 over >= 20 patients; T2 only);
3. **memorization** when a perturbation of age or sex breaks it (fragile, T5);
4. **memorization** when the record itself carries individual evidence (below), stable or not;
5. **generalization** otherwise: stable under perturbation (or T5 not run) and no individual
   evidence, so nothing ties the prediction to this one record.

Individual evidence (rule 4), calibrated on held-out patients only (never on planted truth):
the record's T4 Min-K% is above the ``1 - evidence_quantile`` quantile of held-out patients'
(the model recognises the record), or at some patient rung its d_EMD relative to its random
baseline (``d_EMD / baseline median``) is below the ``evidence_quantile`` quantile of held-out
patients' at that rung (its trajectory is reproduced closer than held-out patients' ever are).
Quantiles are the empirical ``higher`` / ``lower`` order statistics, so with fewer than
``1 / evidence_quantile`` held-out patients the threshold is the most extreme held-out value;
a held-out patient meets a threshold at a rate of at most ``evidence_quantile`` per source (the
audit reports the measured rate). Why rule 4: the paper's "stable = population level" reading
mislabels heavily duplicated records, whose recall survives an age or sex change because the
rest of the prompt still identifies them.

The static (demographics-only) rung is patient context here, not population level as in the
paper: in a cohort where age and sex narrow a patient down, a model that memorized a record
recalls it from them (measured on the synthetic cohort); T5 and rule 4 then separate the two.

A patient's verdict is memorization if any finding is, else generalization if any finding is,
else no finding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

MEMORIZATION, GENERALIZATION, NONE = "memorization", "generalization", "no finding"


@dataclass
class Finding:
    test: str  # T1 | T2
    rung: str  # lowest rung where it appears
    population: bool  # it appears at the random rung
    codes: list[tuple[str, float]] = field(default_factory=list)  # T2: the record's sensitive codes generated, with shares
    support: list[tuple[str, float, int]] = field(default_factory=list)  # T2: supporting prompt tokens (token, lift, patients)
    fragile: list[str] | None = None  # perturbations that broke it; None: T5 not run
    detail: str = ""  # the measured values
    evidence: list[str] = field(default_factory=list)  # the record's individual evidence (rule 4), one line each


def classify(f: Finding) -> tuple[str, str]:
    """(verdict, reason) of one finding by the rules of the module docstring.

    >>> classify(Finding("T2", "20", False, [("DX//F30.8", 0.9)], [], ["age"]))[0]
    'memorization'
    >>> classify(Finding("T2", "20", False, [("DX//B20", 0.9)], [("MED//ART", 4.1, 30)], []))
    ('generalization', 'supported by MED//ART (lift 4.1, 30 patients)')
    >>> classify(Finding("T2", "random", True, [("DX//F30.8", 0.6)]))
    ('generalization', 'already predicted without patient information (random rung)')
    >>> classify(Finding("T1", "static", False, fragile=[]))
    ('generalization', 'stable under perturbation, no individual evidence')
    >>> classify(Finding("T1", "static", False, fragile=[], evidence=["Min-K% -0.5 > -3.1"]))
    ('memorization', 'stable under perturbation, individual evidence: Min-K% -0.5 > -3.1')
    """
    if f.population:
        return GENERALIZATION, "already predicted without patient information (random rung)"
    if f.support:
        return GENERALIZATION, "supported by " + ", ".join(f"{t} (lift {lift:g}, {n} patients)" for t, lift, n in f.support[:3])
    if f.fragile:
        return MEMORIZATION, f"patient context only, fragile: {' and '.join(f.fragile)} perturbation broke it"
    stable = "stable under perturbation" if f.fragile is not None else "perturbation not run"
    if f.evidence:
        return MEMORIZATION, f"{stable}, individual evidence: {'; '.join(f.evidence)}"
    return GENERALIZATION, f"{stable}, no individual evidence"


def patient_verdict(findings: list[Finding]) -> tuple[str, list[str]]:
    """(verdict, one line per finding)."""
    if not findings:
        return NONE, []
    lines, verdicts = [], []
    for f in findings:
        v, why = classify(f)
        verdicts.append(v)
        codes = "; ".join(f"{c} in {s:.0%}" for c, s in f.codes[:3])
        lines.append(f"{f.test} at rung {f.rung}: {v}: {why}" + (f" [{codes}]" if codes else "") + (f" ({f.detail})" if f.detail else ""))
    return (MEMORIZATION if MEMORIZATION in verdicts else GENERALIZATION), lines


def held_out_threshold(values: np.ndarray, held_out: np.ndarray, quantile: float, *, upper: bool) -> float | None:
    """The held-out patients' ``1 - quantile`` (``upper``) or ``quantile`` empirical quantile
    (order statistic: the held-out maximum / minimum when they are fewer than ``1 / quantile``);
    None without a finite held-out value.

    >>> x = np.array([0.0, 1.0, 2.0, 3.0, 9.0]); h = np.array([True, True, True, True, False])
    >>> held_out_threshold(x, h, 0.01, upper=True), held_out_threshold(x, h, 0.01, upper=False)
    (3.0, 0.0)
    """
    ref = values[held_out & np.isfinite(values)]
    if not len(ref):
        return None
    return float(np.quantile(ref, 1 - quantile, method="higher") if upper else np.quantile(ref, quantile, method="lower"))


def individual_evidence(held_out: np.ndarray, quantile: float, *, mink: np.ndarray | None = None,
                        ratios: dict[str, np.ndarray] | None = None) -> tuple[list[list[str]], dict[str, Any]]:
    """Per patient, the lines of individual evidence (rule 4 of the module docstring), and the
    calibration: each source's threshold and how many held-out patients meet it.

    ``mink``: T4 Min-K% per patient (higher = more member-like); ``ratios``: per patient rung,
    d_EMD / random-baseline median per patient (lower = closer than chance).

    >>> h = np.array([True] * 4 + [False, False])
    >>> ev, cal = individual_evidence(h, 0.01, mink=np.array([-5.0, -4, -6, -4.5, -1, -4.2]))
    >>> ev[4], ev[5], cal["T4 Min-K%"]["threshold"]
    (['Min-K% -1 > held-out 0.99 quantile -4'], [], -4.0)
    """
    P = len(held_out)
    out: list[list[str]] = [[] for _ in range(P)]
    cal: dict[str, Any] = {"quantile": quantile}
    sources = []
    if mink is not None:
        sources.append(("T4 Min-K%", "Min-K% {v:.3g}", mink, True))
    for rung, r in (ratios or {}).items():
        sources.append((f"T1 d_EMD/baseline at rung {rung}", "d_EMD/baseline {v:.3g} at rung " + rung, r, False))
    any_held = np.zeros(P, dtype=bool)
    for name, label, x, upper in sources:
        thr = held_out_threshold(x, held_out, quantile, upper=upper)
        if thr is None:
            cal[name] = {"threshold": None, "threshold_reason": "no held-out patient with a value"}
            continue
        hit = np.isfinite(x) & ((x > thr) if upper else (x < thr))
        q = 1 - quantile if upper else quantile
        for i in np.flatnonzero(hit):
            out[i].append(f"{label.format(v=x[i])} {'>' if upper else '<'} held-out {q:g} quantile {thr:.3g}")
        any_held |= hit & held_out
        cal[name] = {"threshold": thr, "held_out_hits": int(hit[held_out].sum()), "held_out": int(held_out.sum())}
    cal["held_out_hits_any"] = int(any_held.sum())
    return out, cal
