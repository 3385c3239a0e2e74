"""Report sections: book extraction, sample extraction, weight diff."""

from __future__ import annotations

import html
from pathlib import Path

from rotelab.core.io import read_json
from rotelab.report.html import img, rate_cell, table
from rotelab.report.registry import register_section
from rotelab.extraction.books import report as _books  # noqa: F401  (registers the books-experiment section)


@register_section("extraction", title="Verbatim extraction", order=40)
def render(run: Path, manifest: dict) -> str | None:
    parts = []
    if (run / "book_summary.json").exists():
        s = read_json(run / "book_summary.json")
        c = s["config"]
        parts.append(
            f"<p>Book <b>{html.escape(s['book'])}</b> ({s['n_book_tokens']} tokens, {s['n_body_tokens']} after trims {c['trim_start']}+{c['trim_end']}), "
            f"mode <b>{s['mode']}</b>, prefix {c['prefix_tokens']} → greedy suffix {c['suffix_tokens']}, {s['n_windows']} windows, seed {s['seed']}.</p>"
        )
        for note in s.get("notes", {}).values():
            parts.append(f"<p><em>note: {html.escape(note)}</em></p>")
        if "verbatim_tokens_from_seed" in s:
            parts.append(f"<p>Reconstructed verbatim from the seed prefix before the first wrong window: {s['verbatim_tokens_from_seed']} tokens (reconstruction.txt).</p>")
        if (run / "figures/extraction_along_book.png").exists():
            parts.append(img(run / "figures/extraction_along_book.png", alt="similarity along the book"))
        if s.get("metrics"):
            rows = [
                {"metric": m, "median": v["median"], "median 95% CI (bootstrap)": v["median_ci"], "mean": v["mean"], "q10": v["quantiles"]["q10"], "q90": v["quantiles"]["q90"],
                 "share > 0.5 [95% CI]": rate_cell(v["share_gt_0.5"] | {"n": v["n"]}), "share > 0.9 [95% CI]": rate_cell(v["share_gt_0.9"] | {"n": v["n"]})}
                for m, v in s["metrics"].items()
            ]
            parts.append(table(rows) + "<p>Windows overlap in text, so the bootstrap CI of the median is optimistic; rate CIs are Clopper-Pearson.</p>")
    if (run / "samples_summary.json").exists():
        s = read_json(run / "samples_summary.json")
        c = s["config"]
        parts.append(f"<p>{s['n_samples']} samples ({s['n_too_short']} too short), prefix {c['prefix_tokens']}, suffix {c['suffix_tokens']}, greedy.</p>")
        groups = {"all": s} | s.get("by_copies", {})
        rows = [
            {"group (copies)": g, "n": v["n"], "k-extractable [95% CI]": rate_cell(v["k_extractable"]), "regurgitated [95% CI]": rate_cell(v["regurgitation"]),
             "mean token match": v["mean_token_match"], "mean EM": v["mean_exact_memorization"], "mean ES": v["mean_extraction_strength"]}
            for g, v in groups.items()
        ]
        parts.append(table(rows))
    return "\n".join(parts) or None


@register_section("weightdiff", title="Weight diff: where the fine-tune changed the model", order=41)
def render_weightdiff(run: Path, manifest: dict) -> str | None:
    if not (run / "weightdiff.json").exists():
        return None
    r = read_json(run / "weightdiff.json")
    ratio = "—" if r["attention_mlp_ratio"] is None else f"{r['attention_mlp_ratio']:.2f}"
    parts = [
        f"<p>{r['n_weights']:,} weights; R = |dW| / max(|W|, {r['eps']}). Changed by &gt; 1%: {r['share_changed_gt_1pct']:.4f}; "
        f"&gt; 100%: {r['share_changed_gt_100pct']:.5f}. Attention/MLP ratio of mean R: {ratio}.</p>"
    ]
    rows = [{"module type": t} | v for t, v in r["by_type"].items()]
    parts.append(table(rows, digits=4))
    for f in ("weightdiff_heatmap", "weightdiff_histogram"):
        if (run / f"figures/{f}.png").exists():
            parts.append(img(run / f"figures/{f}.png", alt=f))
    parts.append("<h3>By block</h3>" + table([{"block": l} | v for l, v in r["by_layer"].items()], digits=4))
    if r["other_modules"]:
        parts.append(f"<p>Unmapped (type 'other'): {html.escape(', '.join(r['other_modules'][:20]))}</p>")
    return "\n".join(parts)
