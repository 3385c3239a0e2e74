"""Report sections of ``recsys train`` (one model's test metrics) and ``recsys bench``."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from rotelab.core.io import read_json
from rotelab.report.html import fmt, img, table
from rotelab.report.registry import register_section


def _model_rows(ev: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [{"metric": "HR@10", "value": ev["hr@10"], "95% CI": ev["hr@10_ci"], "n": ev["n_users_with_click"]},
            {"metric": "NDCG@10", "value": ev["ndcg@10"], "95% CI": ev["ndcg@10_ci"], "n": ev["n_users_with_click"]}]
    for t, m in ev["tasks"].items():
        rows.append({"metric": f"AUC {t}", "value": m["auc"] if m["auc"] is not None else m.get("auc_reason"), "95% CI": m["auc_ci"], "n": m["n"]})
    return rows


def _train(run: Path, manifest: dict) -> str:
    ev = read_json(run / "metrics.json")
    c = ev["config"]
    parts = [
        f"<p>Model <b>{html.escape(ev['model'])}</b>; {ev['n_train_users']} training users, {ev['n_test_users']} test users "
        f"({ev['n_users_with_click']} with a clicked candidate); seed {c['seed']}. HR/NDCG: each clicked candidate ranked against "
        f"{ev['n_eval_neg']} random items, averaged per user, 95% percentile bootstrap over users. AUC over all test candidates, "
        f"95% bootstrap over candidates. Final training loss {fmt(ev['train_losses'][-1])}.</p>",
        table(_model_rows(ev)),
    ]
    if ev["model"] == "vista":
        parts.append(f"<p>Summaries: {c['n_seeds']} tokens x (d={c['d']} + log mass), stored {c['cache_dtype']} in <code>summaries.sqlite</code> "
                     f"(version <code>{html.escape(str(manifest.get('notes', {}).get('summary_version', '')))}</code>); the downstream model was trained and evaluated on summaries read from it.</p>")
    return "\n".join(parts)


def _bench(run: Path, manifest: dict) -> str:
    b = read_json(run / "bench.json")
    seed = b["config"]["train"]["seed"]
    parts = [f"<h3>Quality on test users (seed {seed}; 95% bootstrap CI)</h3>", table(b["quality"]["rows"])]
    rel = [{"comparison": k, "relative difference": v["rel_diff"], "95% CI (paired bootstrap over users)": v["ci"]} for k, v in b["quality"]["relative"].items()]
    parts.append(table(rel))
    if (run / "figures/recsys_quality.png").exists():
        parts.append(img(run / "figures/recsys_quality.png", alt="quality"))
    parts.append("<h3>Serving cost against history length (warm cache, 1 thread)</h3>")
    if (run / "figures/recsys_latency.png").exists():
        parts.append(img(run / "figures/recsys_latency.png", alt="latency vs history length"))
    parts.append(table(b["serving"]))
    g = b["latency_growth_first_to_last"]
    parts.append(f"<p>Median latency, longest / shortest history: VISTA {g['vista']:.2f}x, full attention {g['full']:.2f}x.</p>")
    parts.append("<h3>Summary cache: stale vs fresh, int8 vs fp32 (VISTA downstream model, test users)</h3>")
    parts.append(table(b["ablation"]))
    if "fallback" in b:
        parts.append("<h3>Fallback: VISTA without a usable summary vs the recent-only model (test users)</h3>")
        parts.append("<p>Empty summary seeds are masked, so a user whose summary is empty or missing (cold) is served from "
                     "the recent window alone; such requests are counted, never failed.</p>")
        parts.append(table(b["fallback"]))
    return "\n".join(parts)


@register_section("recsys", title="Recommendation over lifelong histories (VISTA)", order=60)
def render(run: Path, manifest: dict) -> str | None:
    cmd = manifest.get("command")
    if cmd == "recsys train" and (run / "metrics.json").exists():
        return _train(run, manifest)
    if cmd == "recsys bench" and (run / "bench.json").exists():
        return _bench(run, manifest)
    if cmd == "recsys synth" and (run / "synth_config.json").exists():
        c = read_json(run / "synth_config.json")
        return "<p>Synthetic lifelong users:</p>" + table([c])
    return None
