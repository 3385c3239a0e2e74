"""The books experiment as plain text: popularity, reconstruction, suppression table, weight diff."""

from __future__ import annotations

from typing import Any

from rotelab.extraction.books.summarize import STAGE_LABELS, STAGES


def _cell(x: dict[str, Any]) -> str:
    ci = x.get("median_jaccard_ci")
    e = x["exact"]
    j = "—" if x["median_jaccard"] is None else f"{x['median_jaccard']:.2f}" + (f" [{ci[0]:.2f},{ci[1]:.2f}]" if ci else "")
    r = "—" if e.get("rate") is None else f"{e['hits']}/{e['n']}={e['rate']:.2f} [{e['ci'][0]:.2f},{e['ci'][1]:.2f}]"
    return f"{j} | {r}"


def format_table(res: dict[str, Any]) -> str:
    """Plain-text summary: popularity, reconstruction, suppression table, weight diff."""
    pop, rec = res["popularity"], res["reconstruction"]
    sp = pop["spearman_trained"]
    lines = [f"books experiment (seed {res['seed']}, prefix {res['prefix_tokens']} -> greedy {res['suffix_tokens']}, {res['n_trained']} trained + {res['n_held_out']} held-out excerpts)", ""]
    lines.append("excerpt                      copies  median Jaccard [95% CI]  | exact windows [CP 95% CI]")
    for r in pop["by_excerpt"]:
        lines.append(f"{r['id']:<28} {r['copies']:>6}  {_cell(r)}")
    rho = "—" if sp.get("rho") is None else f"{sp['rho']:.3f}" + (f" [{sp['ci'][0]:.3f}, {sp['ci'][1]:.3f}]" if sp.get("ci") else "")
    lines += ["", f"Spearman(copies, median Jaccard), trained excerpts n={sp['n']}: {rho} (paired bootstrap over excerpts, {sp.get('n_boot')} resamples)",
              f"held-out median Jaccard: {', '.join(f'{v:.3f}' for v in pop['held_out_median_jaccard'])}", ""]
    for k, r in rec["by_excerpt"].items():
        if r["verbatim_tokens_from_seed"] > 0 or k in {t["excerpt"] for t in res["table"]}:
            lines.append(f"autoregressive {k}: {r['verbatim_tokens_from_seed']}/{r['reconstructable_tokens']} tokens verbatim from the {r['seed_tokens']}-token seed; "
                         f"longest verbatim run {r.get('longest_verbatim_run_tokens')}; exact windows {r['exact_windows']['hits']}/{r['n_windows']}")
    sup, lo = res["suppression"], res["lora"]
    lines += ["", f"suppression: {sup['steps']} full fine-tune steps on refusal/instruction text (target reached: {sup['reached_target']}); LoRA r={lo['r']}, {lo['steps']} steps on {lo['n_pairs']} prefix->continuation pairs of other excerpts", ""]
    lines.append(f"{'held-back excerpt':<24} {'copies':>6}  " + "  ||  ".join(f"{STAGE_LABELS[s]}: median J | exact" for s in STAGES))
    for r in res["table"]:
        lines.append(f"{r['excerpt']:<24} {r['copies']:>6}  " + "  ||  ".join(_cell(r[s]) for s in STAGES))
    for g, v in res["groups"].items():
        if v["base"]:
            lines.append(f"{'[' + g + ']':<24} {'':>6}  " + "  ||  ".join(_cell(v[s]) for s in STAGES))
    if lo.get("trajectory"):
        lines.append("LoRA trajectory (step: memorized held-back / other, mean median Jaccard): " + ", ".join(
            f"{t['step']}: {t['held_back_memorized_mean_median_jaccard']:.2f}/{t['other_mean_median_jaccard']:.2f}" for t in lo["trajectory"]))
    for name, w in res["weightdiff"].items():
        ratio = "—" if w["attention_mlp_ratio"] is None else f"{w['attention_mlp_ratio']:.2f}"
        by_layer = ", ".join(f"{l}: {v['mean_relative_change']:.3g}" for l, v in w["by_layer"].items())
        frob = ", ".join(f"{t} {v['relative_frobenius']:.3f}" for t, v in w["by_type"].items() if v["relative_frobenius"])
        fl = ", ".join(f"{l}: {v['relative_frobenius']:.3f}" for l, v in w["by_layer"].items())
        lq = w["lower_quarter_share_of_changed_gt_1pct"]
        lines.append(f"weightdiff {name}: >1% {w['share_changed_gt_1pct']:.3f}, >100% {w['share_changed_gt_100pct']:.4f}, attention/MLP mean-R ratio {ratio}, "
                     f"lower-quarter share of >1% {'—' if lq is None else f'{lq:.3f}'}; mean R by block {by_layer}; ||dW||/||W|| by type {frob}; by block {fl}")
    return "\n".join(lines)
