"""REMIND's 3-way figures as report HTML: each state's one-vs-rest AUC (REMIND and every
baseline) and REMIND's confusion matrix, as the paper reports them. The REMIND report section
(:func:`rotelab.membership.report.render_remind`) appends :func:`class_tables` under its table.
"""

from __future__ import annotations

from typing import Any

from rotelab.membership.remind.classify import STATES
from rotelab.report.html import table


def class_tables(metrics: dict[str, Any]) -> str:
    """HTML of ``metrics.json``'s per-state AUCs and REMIND's confusion matrix ('' when undefined).

    >>> m = {"remind": {"auc_3way_macro": 0.8, "auc_per_class": dict(zip(STATES, (1.0, 0.6, 0.8))),
    ...      "confusion_matrix": {t: {p: int(t == p) for p in STATES} for t in STATES}}, "baselines": {}}
    >>> "<h3>3-way" in class_tables(m), "true retained" in class_tables(m)
    (True, True)
    """
    blocks = {"remind": metrics.get("remind", {}), **metrics.get("baselines", {})}
    rows = [{"method": name, "3-way macro AUC": b.get("auc_3way_macro"), **{f"AUC {st} vs rest": b["auc_per_class"][st] for st in STATES}}
            for name, b in blocks.items() if isinstance(b, dict) and b.get("auc_per_class")]
    if not rows:
        return ""
    parts = ["<h3>3-way classification (one-vs-rest AUC per state, out of fold)</h3>", table(rows)]
    cm = blocks["remind"].get("confusion_matrix")
    if cm:
        cells = [{"": f"true {t}", **{f"predicted {p}": cm[t][p] for p in STATES}} for t in STATES]
        parts.append("<p>REMIND's confusion matrix (most probable state of each sample):</p>" + table(cells))
    return "\n".join(parts)
