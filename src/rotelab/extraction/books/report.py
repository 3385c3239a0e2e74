"""Report section of the books experiment (``books_experiment.json``) and of a books testbed (``excerpts.jsonl``)."""

from __future__ import annotations

import html
from pathlib import Path

from rotelab.core.io import read_json
from rotelab.report.html import img, table
from rotelab.report.registry import register_section


def _j(x: dict) -> str:
    ci = x.get("median_jaccard_ci")
    return "—" if x.get("median_jaccard") is None else f"{x['median_jaccard']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _e(x: dict) -> str:
    e = x["exact"]
    return "—" if e.get("rate") is None else f"{e['rate']:.3f} [{e['ci'][0]:.3f}, {e['ci'][1]:.3f}] ({e['hits']}/{e['n']})"


@register_section("books_experiment", title="Books experiment: duplication, reconstruction, suppression and its undoing", order=42)
def render(run: Path, manifest: dict) -> str | None:
    if (run / "books_experiment.json").exists():
        return _experiment(run, read_json(run / "books_experiment.json"))
    if (run / "excerpts.jsonl").exists() and (run / "books_eval.json").exists():
        ev = read_json(run / "books_eval.json")
        rows = [{"excerpt": e["id"], "copies": e["copies"], "role": e["role"], "windows": e["n_windows"], "median Jaccard [95% CI]": _j(e), "exact windows [CP 95% CI]": _e(e)} for e in ev["excerpts"]]
        return f"<p>Books testbed, seed {manifest.get('seed')}: prefix {ev['prefix_tokens']} → greedy {ev['suffix_tokens']}, sliding windows (stride = suffix).</p>" + table(rows)
    return None


def _experiment(run: Path, r: dict) -> str:
    pop, rec = r["popularity"], r["reconstruction"]
    sp = pop["spearman_trained"]
    rho = "—" if sp.get("rho") is None else f"{sp['rho']:.3f}" + (f" [{sp['ci'][0]:.3f}, {sp['ci'][1]:.3f}]" if sp.get("ci") else "")
    parts = [f"<p>Testbed {html.escape(r['testbed'])}, seed {r['seed']}: {r['n_trained']} trained excerpts, {r['n_held_out']} never trained; prefix {r['prefix_tokens']} → greedy suffix {r['suffix_tokens']} "
             f"(Ma et al. 2025, reduced scale). Spearman(copies, median Jaccard) over trained excerpts (n = {sp['n']}): <b>{rho}</b> (percentile bootstrap over excerpts, seed {r['seed']}). "
             f"Held-out median Jaccard: {', '.join(f'{v:.3f}' for v in pop['held_out_median_jaccard'])}.</p>"]
    if (run / "figures/books_duplication_vs_jaccard.png").exists():
        parts.append(img(run / "figures/books_duplication_vs_jaccard.png", alt="duplication vs median Jaccard"))
    parts.append(table([{"excerpt": x["id"], "copies": x["copies"], "role": x["role"], "windows": x["n_windows"], "median Jaccard [95% CI]": _j(x), "exact windows [CP 95% CI]": _e(x)} for x in pop["by_excerpt"]]))
    parts.append("<p>Median CIs are percentile bootstraps over windows (neighbouring windows share text: optimistic); exact-window CIs are Clopper-Pearson.</p>")
    parts.append("<h3>Autoregressive reconstruction from the first prefix</h3>")
    parts.append(table([{"excerpt": k, "tokens after seed": v["reconstructable_tokens"], "verbatim before first error": v["verbatim_tokens_from_seed"], "longest verbatim run": v.get("longest_verbatim_run_tokens"), "token match share": v.get("token_match_share"), "exact windows": f"{v['exact_windows']['hits']}/{v['n_windows']}", "median Jaccard": v["median_jaccard"]} for k, v in rec["by_excerpt"].items()]))
    sup, lo = r["suppression"], r["lora"]
    parts.append(f"<h3>Suppression and its undoing</h3><p>Suppression: full fine-tune on seeded chat-style refusals and unrelated instructions, {sup['steps']} steps (stop at held-back mean median Jaccard ≤ {sup['target']:.3f}; reached: {sup['reached_target']}). "
                 f"Undo: LoRA r = {lo['r']}, α = {lo['alpha']}, {lo['steps']} steps on {lo['n_pairs']} prefix → continuation pairs of the <em>other</em> excerpts ({lo['trainable_parameters']:,} trainable parameters).</p>")
    if (run / "figures/books_suppression.png").exists():
        parts.append(img(run / "figures/books_suppression.png", alt="suppression table"))
    stages = (("base", "base"), ("suppressed", "suppressed"), ("lora", "+ LoRA"))
    rows = [{"held-back excerpt": t["excerpt"], "copies": t["copies"]} | {f"{lab}: median J": _j(t[s]) for s, lab in stages} | {f"{lab}: exact": _e(t[s]) for s, lab in stages} for t in r["table"]]
    rows += [{"held-back excerpt": f"[{g}]", "copies": None} | {f"{lab}: median J": _j(v[s]) for s, lab in stages} | {f"{lab}: exact": _e(v[s]) for s, lab in stages} for g, v in r["groups"].items() if v["base"]]
    parts.append(table(rows))
    if lo.get("trajectory"):
        if (run / "figures/books_lora_trajectory.png").exists():
            parts.append(img(run / "figures/books_lora_trajectory.png", alt="LoRA trajectory"))
        parts.append("<p>Along the LoRA run (steps fixed in advance; the table above is the last step):</p>" + table(
            [{"LoRA step": t["step"], "memorized held-back: mean median J": t["held_back_memorized_mean_median_jaccard"], "other excerpts: mean median J": t["other_mean_median_jaccard"]} for t in lo["trajectory"]]))
    parts.append("<h3>Weight diff</h3>")
    wrows = []
    for name, w in r["weightdiff"].items():
        wrows.append({"fine-tune": name, "weights": w["n_weights"], "> 1%": w["share_changed_gt_1pct"], "> 100%": w["share_changed_gt_100pct"], "attention/MLP (mean R)": w["attention_mlp_ratio"],
                      "lower-quarter share of > 1%": w["lower_quarter_share_of_changed_gt_1pct"]}
                     | {f"{t} ‖dW‖/‖W‖": v["relative_frobenius"] for t, v in w["by_type"].items() if t in ("attention", "mlp")}
                     | {f"block {l} mean R": v["mean_relative_change"] for l, v in w["by_layer"].items()}
                     | {f"block {l} ‖dW‖/‖W‖": v["relative_frobenius"] for l, v in w["by_layer"].items()})
    parts.append(table(wrows, digits=4))
    parts.append("<p>R = |dW| / max(|W|, ε) per weight (mean R is dominated by near-zero weights); ‖dW‖_F / ‖W‖_F is the robust size of the change. "
                 "Suppression: base → suppressed (full checkpoints); LoRA: suppressed → suppressed + LoRA, dW = (α/r)·B·A.</p>")
    for sub in ("weightdiff_suppression", "weightdiff_lora"):
        f = run / sub / "figures/weightdiff_heatmap.png"
        if f.exists():
            parts.append(f"<p>{sub}</p>" + img(f, alt=sub))
    return "\n".join(parts)
