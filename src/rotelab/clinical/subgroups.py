"""T6 vulnerable subgroups (Tonekaboni et al. 2025): T1-T5 stratified by easily re-identified
groups (rare-code patients, age > 85, and any subgroup column the user names), every cell
small-cell suppressed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rotelab.clinical.cohort import Cohort
from rotelab.clinical.privacy import auc_allowed, count, rate
from rotelab.clinical.verdict import GENERALIZATION, MEMORIZATION
from rotelab.core.stats import auc_bootstrap_ci, roc_auc


def _auc(scores: np.ndarray, labels: np.ndarray, k: int, seed: int) -> dict[str, Any]:
    ok = np.isfinite(scores)
    s, y = scores[ok], labels[ok].astype(int)
    why = auc_allowed(int(y.sum()), int((1 - y).sum()), k)
    if why:
        return {"auc": None, "auc_reason": why}
    return {"auc": roc_auc(s, y), "auc_ci": list(auc_bootstrap_ci(s, y, seed=seed))}


def subgroup_table(cohort: Cohort, *, k: int, seed: int, headline: dict[str, np.ndarray] | None, t4: np.ndarray | None,
                   probe: dict[str, np.ndarray] | None, fragile: dict[int, bool] | None, verdict: list[str] | None) -> list[dict[str, Any]]:
    """One row per subgroup (``all`` first). ``headline``: the headline rung's per-patient
    ``t1_flag``, ``rate_any`` arrays; ``t4``: Min-K% per patient; ``probe``: membership-probe test
    scores (NaN off the test part); ``fragile``: per finding patient, whether a finding was fragile."""
    members = cohort.members
    groups = {"all": np.ones(len(cohort), dtype=bool)} | cohort.groups
    rows = []
    for name, g in groups.items():
        m, h = g & members, g & ~members
        row: dict[str, Any] = {"subgroup": name, "members": count(int(m.sum()), k), "held_out": count(int(h.sum()), k)}
        if headline is not None:
            row["T1 flagged (members)"] = rate(int(headline["t1_flag"][m].sum()), int(m.sum()), k)
            row["T2 AUROC (members)"] = _auc(headline["rate_any"][m], cohort.labels["any"][m], k, seed)
        if t4 is not None:
            row["T4 AUC (Min-K%)"] = _auc(t4[g], members[g], k, seed)
        if probe is not None:
            row["T3 membership probe AUROC"] = _auc(probe[g], members[g], k, seed)
        if fragile is not None:
            hit = [fragile[p] for p in np.flatnonzero(g) if p in fragile]
            row["T5 fragile findings"] = rate(int(sum(hit)), len(hit), k)
        if verdict is not None:
            v = np.array(verdict)
            row["memorization (members)"] = count(int((v[m] == MEMORIZATION).sum()), k)
            row["generalization (members)"] = count(int((v[m] == GENERALIZATION).sum()), k)
            row["memorization (held-out)"] = count(int((v[h] == MEMORIZATION).sum()), k)
        rows.append(row)
    return rows
