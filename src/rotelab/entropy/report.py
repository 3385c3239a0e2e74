"""Report section of ``rotelab entropy mbe`` and ``rotelab entropy train``."""

from __future__ import annotations

import html
from pathlib import Path

from rotelab.core.io import read_json
from rotelab.report.html import img, table
from rotelab.report.registry import register_section


def _mbe(run: Path) -> list[str]:
    s = read_json(run / "mbe.json")
    rows = [{"group": r["group"], "layer": r["layer"], "n texts": r["n_texts"], "MBE (nats)": r["mbe_mean"],
             "95% CI (bootstrap)": r["mbe_ci95"], "MBE / log P": None if r["mbe_mean"] is None else r["mbe_mean"] / s["max_entropy"]} for r in s["layers"]]
    parts = [f"<p>Model <code>{html.escape(s['model'])}</code>: {s['n_texts']} texts, {s['n_layers']} blocks. Rényi-{s['alpha']:g} entropy of the "
             f"trace-normalised Gram matrix of each patch of {s['patch']} consecutive token representations, averaged over patches "
             f"(0 = rank one, log {s['patch']} = {s['max_entropy']:.3f} = orthogonal rows of equal norm). Layer 0 is the embedding output.</p>"]
    if (run / "figures/entropy_mbe_layers.png").exists():
        parts.append(img(run / "figures/entropy_mbe_layers.png", alt="MBE per layer"))
    if s["n_texts_shorter_than_patch"]:
        parts.append(f"<p>{s['n_texts_shorter_than_patch']} texts are shorter than one patch and have no MBE.</p>")
    return parts + [table(rows)]


def _train(run: Path) -> list[str]:
    s = read_json(run / "entropy_train.json")
    parts = [f"<p>Objective <b>{s['objective']}</b>, preset {s['preset']} ({s['n_layer']} blocks), seed {s['seed']}: {s['steps']} steps, "
             f"{s['train_tokens']} training tokens on {s['n_train_passages']} passages. Held-out CE {s['heldout_ce']:.4f} nats/token over "
             f"{s['heldout_tokens']} tokens ({s['n_sequences']} passages); {100 * s['share_steps_compress']:.1f}% of steps in the compression phase.</p>"]
    if (run / "figures/entropy_timeline.png").exists():
        parts.append(img(run / "figures/entropy_timeline.png", alt="training timeline"))
    parts.append("<h3>Held-out MBE per layer</h3>" + table([{"layer": i, "MBE (nats)": v} for i, v in enumerate(s["mbe_layers"])]))
    sw = s["switches"]
    parts.append("<h3>Phase switches</h3>" + (table(sw) if sw else "<p>none: the gate never left the memorisation phase (or objective ce).</p>"))
    return parts


@register_section("entropy", title="Matrix-based entropy (MBE) and GAPT", order=60)
def render(run: Path, manifest: dict) -> str | None:
    parts: list[str] = []
    if (run / "mbe.json").exists():
        parts += _mbe(run)
    if (run / "entropy_train.json").exists():
        parts += _train(run)
    return "\n".join(parts) or None
