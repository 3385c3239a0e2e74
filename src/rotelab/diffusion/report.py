"""Report section of ``rotelab diffusion ...`` runs: results, image grids and rate curves."""

from __future__ import annotations

import html
from pathlib import Path

from rotelab.core.io import read_json
from rotelab.report.html import img, metric_rows, table
from rotelab.report.registry import register_section

_FIGS = ("wen_hist", "replication_grid", "replication_curve", "before_grid", "after_grid", "mitigate_curve", "dori_grid", "dori_curve", "locality_triggers")


def _rate_row(name: str, r: dict) -> dict:
    return {"group": name, "MR": r["rate"], "95% CI": r["ci"], "generations": r["n"], "tau": r["threshold"]}


@register_section("diffusion", title="Diffusion memorization (Finding Dori)", order=60)
def render(run: Path, manifest: dict) -> str | None:
    cmd = manifest.get("command", "")
    if not cmd.startswith("diffusion"):
        return None
    parts = [f"<p>Command <code>{html.escape(cmd)}</code>, seed {manifest.get('seed')}. Replication = centred pixel cosine "
             "to the target image (offline stand-in for SSCD); MR = share of generations above τ, 95% Clopper–Pearson interval.</p>"]
    if (run / "testbed.json").exists():
        t = read_json(run / "testbed.json")
        parts.append(table([{"split": k, "items": v} for k, v in t["n_items"].items()]))
        parts.append(f"<p>{t['n_train_pairs']} training pairs; loss {t['loss_first_50']:.3f} → {t['loss_last_50']:.3f}; UNet {t['n_params_unet']} parameters.</p>")
    if (run / "detect.json").exists():
        d = read_json(run / "detect.json")
        parts.append(f"<h3>Wen et al. detection ({d['n_noises']} noises, first DDIM step)</h3>" + table(metric_rows({"wen": d["summary"]})))
    res = read_json(run / "result.json") if (run / "result.json").exists() else None
    if res and cmd == "diffusion mitigate":
        parts.append(f"<h3>Mitigation: {res['method']}</h3>" + table([_rate_row("before", res["before"]), _rate_row("after", res["after"])]))
        parts.append(table([{"held-out loss before": res["heldout_loss_before"], "after": res["heldout_loss_after"],
                             "prompts mitigated (MR < 0.5)": f"{res['prompts_mitigated']} / {res['n_prompts']}"}]))
        if (run / "mitigation_summary.json").exists():
            parts.append(table(read_json(run / "mitigation_summary.json")["rows"]))
    if res and cmd == "diffusion dori":
        rows = [{**_rate_row(g, res[g]), "images restored (MR ≥ 0.5)": f"{res[g]['images_restored']} / {res[g]['n_images']}", "mean sim": res[g]["mean_similarity"]}
                for g in ("memorized", "not memorized") if g in res]
        parts.append(f"<h3>DoRI ({res['init']} init, {res['starts']} starts, mitigation: {res['mitigated']})</h3>" + table(rows))
    if res and cmd == "diffusion locality":
        parts.append("<h3>Locality</h3><pre>" + html.escape(__import__("json").dumps(res, indent=1)) + "</pre>")
    for f in _FIGS:
        p = run / "figures" / f"{f}.png"
        if p.exists():
            parts.append(img(p, alt=f))
    return "\n".join(parts)
