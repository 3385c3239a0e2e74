"""Report sections of ``mia run`` and ``remind run``."""

from __future__ import annotations

import html
from pathlib import Path

from rotelab.core.io import read_json
from rotelab.report.html import img, metric_rows, table
from rotelab.report.registry import register_section


GENERATORS = {"mlm": "masked-LM swaps (Mattern et al. 2023)", "embedding-swap": "embedding-neighbour swaps (offline default)"}


def _flat(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        if k == "note":
            continue
        if isinstance(v, dict):
            out += _flat(v, f"{prefix}{k} ")
        else:
            out.append(f"{prefix}{k}: {GENERATORS.get(v, v) if k == 'generator' else v}")
    return out


def detail_rows(m: dict) -> list[dict]:
    """One row per attack that recorded details: what it actually used, and its warning."""
    return [{"attack": a, "what it used": "; ".join(_flat(v["details"])), "note": v["details"].get("note", "")} for a, v in m.items() if "details" in v]


@register_section("membership", title="Membership inference", order=30)
def render_mia(run: Path, manifest: dict) -> str | None:
    if manifest.get("command") != "mia run" or not (run / "metrics.json").exists():
        return None
    m = read_json(run / "metrics.json")
    bow = m.pop("bag_of_words")
    parts = [f"<p>Scores: higher = more member-like; seed {manifest.get('seed')}; AUC intervals are 95% bootstrap (1000 resamples), TPR intervals Clopper-Pearson.</p>"]
    colour = "#b00" if bow.get("confounded") else "#060"
    parts.append(f'<p style="color:{colour}"><b>Bag-of-words check (no model):</b> {html.escape(bow["verdict"])}.</p>')
    parts.append(table(metric_rows(m | {"bag-of-words (no model)": bow}, label="attack")))
    if rows := detail_rows(m):
        parts.append("<h3>What each attack used</h3>" + table(rows))
    notes = manifest.get("notes", {})
    for key, label in (("companions", "Testbed companions used"), ("attacks_skipped", "Attacks skipped by --attacks all")):
        if notes.get(key):
            parts.append(f"<p><b>{label}:</b> " + html.escape("; ".join(f"{k}: {v}" for k, v in notes[key].items())) + "</p>")
    if (run / "figures/mia_roc.png").exists():
        parts.append(img(run / "figures/mia_roc.png", alt="ROC curves"))
    return "\n".join(parts)


def _remind_rows(block: dict) -> list[dict]:
    rows = []
    for name, m in block.items():
        if not isinstance(m, dict) or name == "config":
            continue
        rows.append({
            "method": name,
            "AUC forgotten vs holdout": m.get("auc_forgotten_vs_holdout"),
            "95% CI": m.get("auc_forgotten_vs_holdout_ci"),
            "TPR@1%FPR": m.get("tpr_at_1pct_fpr_forgotten_vs_holdout") if m.get("tpr_at_1pct_fpr_forgotten_vs_holdout") is not None else m.get("tpr_at_1pct_fpr_forgotten_vs_holdout_reason", m.get("reason")),
            "TPR CI": m.get("tpr_at_1pct_fpr_forgotten_vs_holdout_ci"),
            "3-way macro AUC": m.get("auc_3way_macro"),
            "n (ret/forg/hold)": "/".join(str(v) for v in m.get("n", {}).values()),
        })
    return rows


@register_section("remind", title="REMIND: residual memorization after unlearning", order=31)
def render_remind(run: Path, manifest: dict) -> str | None:
    if manifest.get("command") != "remind run" or not (run / "metrics.json").exists():
        return None
    m = read_json(run / "metrics.json")
    c = m.get("config", {})
    probe = c.get("probe", {})
    parts = [
        f"<p>Out-of-fold scores of a standardised logistic regression ({c.get('folds')}-fold stratified CV, seed {c.get('seed')}); "
        f"landscape probe: ranks {probe.get('ranks')}, base swap rate {probe.get('base_rate')}, {probe.get('k')} variants per setting. "
        "Headline: forgotten vs holdout (an AUC near 0.5 means the forgotten data looks never-seen). The 3-way macro AUC is inflated by easy retained samples.</p>",
        table(_remind_rows({"remind": m["remind"], **m["baselines"]})),
    ]
    if "paraphrases" in m:
        parts.append("<h3>Paraphrased inputs (classifier fitted on the originals)</h3>" + table(_remind_rows(m["paraphrases"])))
    for f, alt in (("remind_landscape", "loss landscape per state"), ("remind_roc", "forgotten vs holdout ROC")):
        if (run / f"figures/{f}.png").exists():
            parts.append(img(run / f"figures/{f}.png", alt=alt))
    return "\n".join(parts)
