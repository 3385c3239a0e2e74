"""Report section: probe AUROC per block, label agreement, dose-response, the eval table, steered tokens."""

from __future__ import annotations

import html
from pathlib import Path

from rotelab.core.runs import read_parquet
from rotelab.core.io import read_json
from rotelab.report.html import img, rate_cell, table
from rotelab.report.registry import register_section


def _pct(x, ci=None) -> str:
    if x is None:
        return "—"
    s = f"{100 * x:+.1f}%"
    return s + (f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci else "")


def colour_tokens(tokens: list[str], alpha: list[float], amax: float) -> str:
    """Tokens on a white -> orange background by alpha_t / amax; the title shows alpha and p_mem."""
    out = []
    for t, a in zip(tokens, alpha):
        x = 0.0 if amax <= 0 or a != a else min(1.0, a / amax)
        out.append(f'<span title="alpha={a:.3f}" style="background: rgba(255,140,0,{x:.2f})">{html.escape(t)}</span>')
    return "".join(out)


def _probe_part(run: Path) -> list[str]:
    s = read_json(run / "probe_summary.json")
    c = s["causal"]
    parts = [
        f"<p>Probe on <b>{s['site']}</b> ({s['position']} position), labels <b>{s['labels_used']}</b>, held-out AUROC "
        f"<b>{s['auroc']:.3f}</b> [{s['auroc_ci'][0]:.3f}, {s['auroc_ci'][1]:.3f}] (bootstrap 95%), n_train={s['n_train']}, n_test={s['n_test']}, seed {s['seed']}. "
        f"Diversity: K={s['config']['k']} samples of {s['config']['div_tokens']} tokens at T={s['config']['temperature']}; mem if D &lt; {s['config']['tau_lo']}, gen if D &gt; {s['config']['tau_hi']}.</p>"
    ]
    if (run / "figures/probe_auroc_by_layer.png").exists():
        parts.append(img(run / "figures/probe_auroc_by_layer.png", alt="probe AUROC per block"))
    parts.append("<h3>Probe AUROC per block and position</h3>" + table([{k: r[k] for k in ("site", "position", "auroc", "auroc_ci", "train_auroc", "n_test", "n_test_mem")} for r in s["layers"]]))
    parts.append("<h3>Labels: counts and agreement</h3>" + table([{"labelling": k} | v for k, v in s["label_counts"].items()]) + table(s["agreement"]))
    parts.append("<h3>Output diversity D by prompt group</h3>" + table([{"group": g} | v for g, v in s["diversity_by_group"].items()]))
    verdict = ("causal and specific" if c.get("specific") else "causal, not more than a random direction") if c.get("causal") else ("not established" if c.get("causal") is None else "classifies but does not cause")
    parts.append(f"<h3>Causal check (dose-response)</h3><p>Verdict: <b>{verdict}</b>. {html.escape(c.get('causal_reason') or '')} "
                 f"{'One-sided Fisher p = %.3g.' % c['p_value'] if c.get('p_value') is not None else ''} Items: {html.escape(c.get('items', ''))}.</p>")
    if (run / "figures/dose_response.png").exists():
        parts.append(img(run / "figures/dose_response.png", alt="dose-response"))
    rnd = {r["displacement"]: r for r in c.get("random_rows", [])}
    parts.append(table([{"displacement": r["displacement"], "verbatim rate [95% CP]": rate_cell(r), "mean token match": r["mean_token_match"],
                         "random direction, same |d| [95% CP]": rate_cell(rnd.get(abs(r["displacement"])))} for r in c["rows"]]))
    return parts


def _eval_part(run: Path) -> list[str]:
    e = read_json(run / "steer_eval.json")
    parts = [f"<p>Steering at <b>{e['site']}</b>; held-out memorized prompts n={e['n_mem']}, non-member passages n={e['n_ce_texts']} (cross-entropy), "
             f"paraphrased questions n={e['n_paraphrases']}. Continuation NLL / distinct-token share: how fluent the steered continuations of memorized prompts are (loops score low). Rates with Clopper-Pearson 95% CIs; CE change with a paired bootstrap 95% CI.</p>"]
    if (run / "figures/steer_tradeoff.png").exists():
        parts.append(img(run / "figures/steer_tradeoff.png", alt="suppression vs quality"))
    rows = [{"condition": r["condition"], "verbatim rate [95% CI]": rate_cell(r["verbatim"]), "reduction": _pct(-r["verbatim_reduction"]) if r.get("verbatim_reduction") is not None else "—",
             "token match": r["mean_token_match"], "continuation NLL (unsteered model)": r.get("mem_continuation_nll_unsteered"),
             "distinct-token share": r.get("mem_continuation_distinct_share"), "held-out CE": r["ce"], "CE change [95% CI]": _pct(r.get("ce_change"), r.get("ce_change_ci")),
             "paraphrase acc. [95% CI]": rate_cell(r["paraphrase_accuracy"]), "mean alpha (mem)": r.get("mean_alpha_mem"), "mean alpha (paraphrase)": r.get("mean_alpha_paraphrase"),
             "mean alpha (non-member text)": r.get("mean_alpha_ce_texts")} for r in e["rows"]]
    parts.append(table(rows))
    g = e["goal"]
    parts.append(f"<h3>Goal: &ge;50% suppression with |dCE| &le; 2%; less harm than static at equal suppression</h3><p>Met by any dynamic/gated condition: <b>{g['any_meets_goal']}</b>. {html.escape(g.get('reason', ''))}</p>")
    parts.append(table(g["rows"]))
    parts.append("<h3>Probe score vs steering success</h3><p>Among prompts recited without steering: AUROC of the unsteered p_mem (last prompt token) for 'stopped reciting', and Spearman of p_mem with the drop in token match over all held-out memorized prompts.</p>")
    parts.append(table(e["probe_vs_success"]))
    if (run / "alpha_log.parquet").exists():
        parts.append(_tokens_part(read_parquet(run / "alpha_log.parquet")))
    return parts


def _tokens_part(log: dict) -> str:
    """Generated tokens of a few prompts coloured by the alpha that produced them (first dynamic condition)."""
    conds = [c for c in dict.fromkeys(log["condition"].tolist()) if c.startswith("dynamic")] or list(dict.fromkeys(log["condition"].tolist()))
    cond = conds[len(conds) // 2] if conds else None
    if cond is None:
        return ""
    out = [f"<h3>Which tokens were steered ({html.escape(cond)})</h3><p>Background: alpha_t / max alpha (hover for the value).</p>"]
    sel = log["condition"] == cond
    amax = float(max(log["alpha"][sel].max(), 1e-9))
    for set_name in ("memorized", "paraphrase"):
        ids = list(dict.fromkeys(log["item"][sel & (log["set"] == set_name)].tolist()))[:4]
        for i in ids:
            m = sel & (log["set"] == set_name) & (log["item"] == i)
            out.append(f"<p><code>{html.escape(set_name)} {html.escape(str(i))}</code>: {colour_tokens(log['token'][m].tolist(), log['alpha'][m].tolist(), amax)}</p>")
    return "\n".join(out)


def _generate_part(run: Path) -> list[str]:
    g = read_json(run / "generations.json")
    amax = max([max(r["alpha"]) for r in g["rows"]] + [1e-9])
    c = g["config"]
    parts = [f"<p>Mode <b>{c['mode']}</b>, alpha {c['alpha']}, tau {c['tau']}, beta {c['beta']}, at {g['site']}. Background: alpha_t / max alpha.</p>"]
    for r in g["rows"]:
        parts.append(f"<p><b>{html.escape(r['prompt'])}</b> {colour_tokens(r['tokens'], r['alpha'], amax)}</p>")
    return parts


@register_section("steering", title="Dynamic Mode Steering: memorization probe and steering", order=45)
def render(run: Path, manifest: dict) -> str | None:
    if not str(manifest.get("command", "")).startswith("steer"):
        return None
    parts = []
    if (run / "probe_summary.json").exists():
        parts += _probe_part(run)
    if (run / "steer_eval.json").exists():
        parts += _eval_part(run)
    if (run / "generations.json").exists():
        parts += _generate_part(run)
    return "\n".join(parts) or None
