"""Report section of ``rotelab signals``: per-text loss and per-token log-probs, coloured."""

from __future__ import annotations

import html
from pathlib import Path

from rotelab.core.runs import read_parquet
from rotelab.core.io import read_json
from rotelab.report.html import img, table
from rotelab.report.registry import register_section


def _token_strip(tokens: list[str], logp: list[float]) -> str:
    """Tokens coloured by log p (red = surprising, white = predicted with certainty)."""
    spans = [f"<span>{html.escape(tokens[0])}</span>"]
    for tok, lp in zip(tokens[1:], logp):
        a = min(1.0, -lp / 8.0)
        spans.append(f'<span title="log p = {lp:.2f}" style="background:rgba(220,50,32,{a:.2f})">{html.escape(tok)}</span>')
    return '<p style="font-family:monospace;white-space:pre-wrap">' + "".join(spans) + "</p>"


@register_section("signals", title="Per-token signals", order=10)
def render(run: Path, manifest: dict) -> str | None:
    if not (run / "signals.parquet").exists():
        return None
    s = read_json(run / "summary.json")
    t = read_parquet(run / "signals.parquet")
    parts = [
        f"<p>Model <code>{html.escape(s['model'])}</code>: {s['n_texts']} texts, {s['n_tokens_scored']} tokens scored; "
        f"mean NLL {s['nll_mean']:.3f}, median {s['nll_median']:.3f}; greedy next-token accuracy {s['argmax_acc_mean']:.3f}.</p>"
    ]
    if (run / "figures/signals_nll.png").exists():
        parts.append(img(run / "figures/signals_nll.png", alt="per-text NLL"))
    order = t["nll"].argsort()
    rows = [{"id": t["id"][i], "tokens": int(t["n_tokens"][i]), "NLL": float(t["nll"][i]), "argmax acc": float(t["argmax_acc"][i])} for i in order[:10]]
    parts.append("<h3>Lowest-loss texts (most member-like)</h3>" + table(rows))
    tok_path = manifest.get("notes", {}).get("tokenizer")
    if tok_path:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tok_path)
        parts.append("<h3>Per-token log-probabilities (red = surprising)</h3>")
        for i in order[:3]:
            ids = list(t["token_ids"][i])
            parts.append(f"<p><b>{html.escape(str(t['id'][i]))}</b></p>" + _token_strip([tok.decode([x]) for x in ids], list(t["logp"][i])))
    return "\n".join(parts)
