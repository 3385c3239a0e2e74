"""Report section of ``rotelab verify``: the verdict table first, then each attack's figures."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from rotelab.core.io import read_json
from rotelab.report.html import table
from rotelab.report.registry import register_section


def _ci(v: Any) -> str:
    return f"[{v[0]:.3f}, {v[1]:.3f}]" if isinstance(v, (list, tuple)) and len(v) == 2 and None not in v else "–"


def _num(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) else "–"


def verdict_table(r: dict[str, Any]) -> str:
    """The verdict, then one row per attack: family, AUC and interval, p (raw, Holm), TPR@1%FPR, detects."""
    head = (f"<p><b>Verdict on the forget set: {html.escape(str(r['verdict']))}</b>"
            + (f" (detected by {html.escape(', '.join(r['detected_by']))})" if r["detected_by"] else "") + "</p>"
            + f"<p><small>{html.escape(r['rule'])}</small></p>")
    rows = [{"attack": e["attack"], "family": e["family"], "AUC forget vs holdout": _num(e.get("auc")), "95% CI": _ci(e.get("auc_ci")),
             "p": _num(e.get("p_value")), "p (Holm)": _num(e.get("p_holm")), "TPR@1%FPR": _num(e.get("tpr_at_1pct_fpr")),
             "detects": {True: "yes", False: "no"}.get(e.get("detects"), e.get("auc_reason", "–"))} for e in r["evidence"]]
    return head + table(rows)


@register_section("verify", title="Unlearning verification: removed, hidden or not removed", order=45)
def render(run: Path, manifest: dict) -> str | None:
    if not (run / "verify.json").exists():
        return None
    r = read_json(run / "verify.json")
    parts = [verdict_table(r)]
    att = {k: v for k, v in r.get("attacks", {}).items() if isinstance(v, dict)}
    if att:
        rows = [{"attacked model": k, "recovered share of the forget-loss gap": _num(v["recovered_share_forget"].get("share")),
                 "95% CI": _ci(v["recovered_share_forget"].get("ci")), "holdout drop (same units)": _num(v.get("holdout_drop_share"))} for k, v in att.items()]
        parts.append("<h3>Relearning and quantization: what comes back</h3>" + table(rows))
    o = r.get("oracle") or {}
    if "oracle_distance" in o:
        fq = o.get("forget_quality") or {}
        parts.append("<h3>Distance to the retrained oracle</h3>" + table([{"oracle_distance (0 = as retrained, 1 = separable)": _num(o["oracle_distance"]),
                     "Forget Quality (KS p-value of truth ratios)": _num(fq.get("p_value")), "mean truth ratio": html.escape(str(o.get("mean_truth_ratio", "–")))}]))
    ex = r.get("extraction") or {}
    if ex:
        parts.append("<h3>Extraction of the forget set, before and after</h3>" + table([
            {"model": k, "k-extractable (exact suffix)": _num(v["k_extractable"].get("rate")), "95% CI": _ci(v["k_extractable"].get("ci")),
             "mean ROUGE-L": _num(v.get("mean_rouge_l")), "ROUGE-L 95% CI": _ci(v.get("mean_rouge_l_ci")),
             "mean token match": _num(v.get("mean_token_match")), "mean ES": _num(v.get("mean_extraction_strength")), "n": v["n"]} for k, v in ex.items()]))
    mem = r.get("membership") or {}
    rows = [{"model": st, "attack": a, "AUC forget vs holdout": _num(v.get("auc")), "95% CI": _ci(v.get("auc_ci"))} for st, m in mem.items() for a, v in m.items()]
    if rows:
        parts.append("<h3>Membership suite per model state</h3>" + table(rows))
    parts.append("<p>Every measure's own run folder and report: <code>attacks/&lt;name&gt;/</code>.</p>")
    return "\n".join(parts)
