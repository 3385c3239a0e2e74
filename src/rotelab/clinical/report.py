"""Report section of ``clinical synth|train|audit``: a figure per test and the verdict table,
from ``summary.json`` (small-cell suppressed, no patient id)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from rotelab.core.io import read_json
from rotelab.report.html import fmt, img, rate_cell, table
from rotelab.report.registry import register_section


def _cell(v: Any) -> Any:
    """A summary value as a table cell: rates as 'rate [CI] (hits/n)', AUCs with their interval, reasons for nulls."""
    if isinstance(v, dict):
        if "rate" in v:
            return rate_cell(v) if v.get("rate") is not None else v.get("rate_reason", "—")
        for key in ("auc", "auroc", "mean", "auc_closer_members"):
            if key in v:
                if v[key] is None:
                    return next((v[r] for r in v if r.endswith("reason")), "—")
                ci = v.get(f"{key}_ci") or v.get("auc_ci") or v.get("ci")
                return f"{v[key]:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
    return v


def _fig(run: Path, name: str, alt: str) -> str:
    p = run / "figures" / f"{name}.png"
    return img(p, alt=alt) if p.exists() else ""


def _audit(run: Path, s: dict) -> str:
    k = s.get("small_cell", 20)
    parts = [f"<p>Model <code>{html.escape(str(s['model']))}</code>: {s['patients']['members']} members (train split), {s['patients']['held_out']} held-out patients; "
             f"tests {', '.join(s['tests'])}. Counts below {k} are suppressed (shown as '&lt;{k}'); patient ids are only in the run folder's <code>evidence/</code>.</p>"]
    if "verdicts" in s:
        rows = [{"split": split} | {v: c for v, c in d.items()} for split, d in s["verdicts"].items()]
        parts += ["<h3>Verdicts</h3>", table(rows), _fig(run, "clinical_verdicts", "verdicts")]
        if s.get("reasons"):
            parts.append(table([{"finding: verdict: rule": r, "findings": n} for r, n in s["reasons"].items()]))
    if "T1" in s:
        rows = [{"rung": r, "members d_EMD": _cell(e["members"]), "held-out d_EMD": _cell(e["held_out"]), "random baseline": _cell(e["random_baseline"]),
                 "AUC (members closer)": _cell({"auc": e.get("auc_closer_members"), "auc_ci": e.get("auc_ci"), "auc_reason": e.get("auc_reason")}),
                 "flagged members": _cell(e["flagged_members"]), "flagged held-out": _cell(e["flagged_held_out"])} for r, e in s["T1"].items()]
        parts += ["<h3>T1 trajectory memorization (d_EMD, lower = closer)</h3>", table(rows), _fig(run, "clinical_t1", "T1")]
    if "T2" in s:
        rows = []
        for r, e in s["T2"].items():
            for split in ("members", "held_out"):
                a = e[split]["any"]
                rows.append({"rung": r, "split": split, "AUROC (any)": _cell(a), "AUPRC": fmt(a.get("auprc")), "flagged": e[split]["flagged"],
                             **{f"AUROC {c}": _cell(v) for c, v in e[split].items() if c not in ("any", "flagged")}})
        parts += ["<h3>T2 sensitive attribute (sensitive codes removed from prompts)</h3>", table(rows), _fig(run, "clinical_t2", "T2")]
    if "T3" in s:
        rows = [{"target": t, "train fraction": m["fraction"], "AUROC": _cell(m) if "auroc" in m else m.get("reason"), "balanced acc.": fmt(m.get("balanced_accuracy")),
                 "AUPRC": fmt(m.get("auprc")), "F1": fmt(m.get("f1"))} for t, ms in s["T3"].items() for m in ms]
        parts += ["<h3>T3 embedding probe (AUROC ≈ 0.5: no leakage)</h3>", table(rows), _fig(run, "clinical_t3", "T3")]
    if "T4" in s:
        rows = [{"attack": a, "AUC": _cell(m), "TPR@1%FPR": fmt(m.get("tpr_at_1pct_fpr")) if m.get("tpr_at_1pct_fpr") is not None else m.get("tpr_at_1pct_fpr_reason", m.get("auc_reason"))}
                for a, m in s["T4"].items()]
        parts += ["<h3>T4 membership (one teacher-forced pass per record)</h3>", table(rows), _fig(run, "clinical_t4", "T4")]
    if "T5" in s:
        rows = [{"test": t, "findings tested": e["findings_tested"], "fragile": _cell(e["fragile"]), "under age": _cell(e["fragile_under_age"]), "under sex": _cell(e["fragile_under_sex"])}
                for t, e in s["T5"].items() if isinstance(e, dict)]
        parts += [f"<h3>T5 perturbation (fragile: T2 share crosses p_th = {s['T5']['p_th']}, or T1 d_EMD exceeds {html.escape(s['T5']['t1_threshold'])})</h3>", table(rows)]
    if "T6" in s:
        rows = [{c: _cell(v) for c, v in r.items()} for r in s["T6"]]
        parts += ["<h3>T6 vulnerable subgroups</h3>", table(rows)]
    return "\n".join(parts)


@register_section("clinical", title="EHR foundation model: memorization tests T1-T6", order=85)
def render(run: Path, manifest: dict) -> str | None:
    cmd = manifest.get("command")
    if cmd == "clinical audit" and (run / "summary.json").exists():
        return _audit(run, read_json(run / "summary.json"))
    if cmd == "clinical synth" and (run / "synth.json").exists():
        s = read_json(run / "synth.json")
        return "<p>Synthetic MEDS cohort (this folder is its MEDS root; planted truth in <code>truth/planted.parquet</code>).</p>" + table([{k: str(v) for k, v in s.items()}])
    if cmd == "clinical train" and (run / "train.json").exists():
        s = read_json(run / "train.json")
        return "<p>EHR foundation model trained on the train split (<code>model/</code>).</p>" + table([{k: v for k, v in s.items() if k != "model"}])
    return None
