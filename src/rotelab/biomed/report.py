"""Report section of ``rotelab biomed``: the task, the base model, the fine-tune, and the eval's
memorization / generalization tables with the gain-vs-popularity and gain-vs-lexicalization plots."""

from __future__ import annotations

import html
from pathlib import Path

from rotelab.core.io import read_json
from rotelab.report.html import fmt, img, rate_cell, table
from rotelab.report.registry import register_section


def _ci(d: dict | None) -> str:
    if not d or d.get("mean") is None:
        return "—"
    ci = d.get("ci")
    return f"{d['mean']:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "")


def _task(run: Path) -> str:
    t = read_json(run / "task.json")
    src = t["source"]
    rows = [{"bin": b, "popularity": f"{lo:g}-{hi:g}", "train": t["counts_per_bin"].get(b, {}).get("train"), "validation": t["counts_per_bin"].get(b, {}).get("validation")}
            for b, (lo, hi) in zip(map(str, range(len(t["bins"]["ranges"]))), t["bins"]["ranges"])]
    arms = ", ".join(f"<code>{html.escape(a)}</code> ({'lexicalized' if v['lexicalized'] else 'arbitrary'})" for a, v in t["arms"].items())
    note = f"<p><em>{html.escape(src['popularity_reason'])}</em></p>" if src.get("popularity_reason") else ""
    return (f"<p>Ontology <b>{html.escape(t['ontology'])}</b> from {html.escape(str(src.get('source')))} (release {html.escape(str(src.get('release', '—')))}); "
            f"arms {arms}; directions {', '.join(t['directions'])}; {t['counts']['train']} training and {t['counts']['validation']} validation concepts, "
            f"the same share held out in every popularity bin.</p>{note}" + table(rows))


def _pretrain(run: Path) -> str:
    p = read_json(run / "pretrain.json")
    rows = [{"popularity bin": b, "mean mentions in pretraining": v} for b, v in p["corpus"]["mean_mentions_per_bin"].items()]
    return (f"<p>Base model: {p['parameters']:,} parameters, vocabulary {p['vocab_size']}; corpus of {p['corpus']['n_texts']} texts, "
            f"{p['corpus']['n_mentions']} identifier mentions; {p['training']['steps']} steps in {p['training']['seconds']} s, final loss {p['final_loss']:.3f}.</p>" + table(rows))


def _finetune(run: Path, manifest: dict) -> str:
    f = read_json(run / "finetune.json")
    how = "LoRA (merged)" if manifest.get("options", {}).get("lora") else "full"
    base = manifest.get("notes", {}).get("base_model", "—")
    return (f"<p>{how} fine-tune of <code>{html.escape(str(base))}</code> on {f['n_sequences']} training questions: {f['steps']} steps, "
            f"{f['trainable_parameters']:,} trainable parameters, {f['seconds']} s, final loss {f['final_loss']:.3f}.</p>")


def _eval(run: Path) -> str:
    m = read_json(run / "metrics.json")
    rows = []
    for g, e in m["groups"].items():
        for s in ("train", "validation"):
            x = e[s]
            rows.append({"arm / direction": g, "lexicalized": "yes" if e["lexicalized"] else "no", "terms": s,
                         "base EM": rate_cell(x["base_em"]), "fine-tuned EM": rate_cell(x["tuned_em"]), "gain [95% CI]": _ci(x["gain"]),
                         "synonym-aware EM (fine-tuned)": rate_cell(x["tuned_synonym_em"]) if g.endswith("/reverse") else "—",
                         "latent (base -> tuned)": f"{fmt(x['base_latent']['mean'])} -> {fmt(x['tuned_latent']['mean'])}",
                         "prefix credit (tuned)": fmt(x["tuned_prefix_credit"]["mean"])})
    parts = ["<p>Memorization = exact match on training terms; generalization = on validation terms; gain = fine-tuned minus base on the same "
             "questions (paired bootstrap). Latent knowledge = share of sampled answers that are exact.</p>", table(rows)]
    for name, alt in (("biomed_gain_vs_popularity", "gain vs popularity"), ("biomed_gain_vs_lexicalization", "gain vs lexicalization"), ("biomed_membership", "membership per pair")):
        if (run / f"figures/{name}.png").exists():
            parts.append(img(run / f"figures/{name}.png", alt=alt))
    lex = [{"arm": a, "space": s, "cos(term, id)": v.get("alignment"), "shuffled null": v.get("null_mean"), "p": v.get("p_value"),
            "lexicalization [95% CI]": _ci({"mean": v.get("lexicalization"), "ci": v.get("lexicalization_ci")}) if v.get("alignment") is not None else v.get("alignment_reason")}
           for a, d in m["lexicalization"].items() for s, v in d.items()]
    parts += ["<h3>Lexicalization: term-identifier alignment against shuffled pairs</h3>", table(lex)]
    if m["membership"]:
        mia = [{"attack": a, "AUC train vs validation pairs": v.get("auc"), "AUC 95% CI": v.get("auc_ci"), "Spearman with popularity (train)": v.get("spearman_popularity_train"),
                "Spearman with gain (train)": v.get("spearman_gain_train")} for a, v in m["membership"].items()]
        parts += ["<h3>Membership scores of the pairs (higher = more member-like)</h3>", table(mia)]
    return "\n".join(parts)


@register_section("biomed", title="Term-to-identifier normalization", order=75)
def render(run: Path, manifest: dict) -> str | None:
    if (run / "metrics.json").exists() and manifest.get("command") == "biomed eval":
        return _eval(run)
    if (run / "finetune.json").exists():
        return _finetune(run, manifest)
    if (run / "pretrain.json").exists():
        return _pretrain(run)
    if (run / "task.json").exists():
        return _task(run)
    return None
