"""The demo's report: every sub-run's sections, in the demo's order."""

from __future__ import annotations

import html
from pathlib import Path

from rotelab.core.io import read_json
from rotelab.report.registry import register_section, sections


@register_section("demo", title="Demo", order=0)
def render(run: Path, manifest: dict) -> str | None:
    if manifest.get("command") != "demo":
        return None
    parts = []
    for sub in manifest.get("subruns", []):
        d = run / sub["name"]
        if not (d / "manifest.json").exists():
            parts.append(f"<h3>{html.escape(sub['title'])}</h3><p><em>not run yet</em></p>")
            continue
        m = read_json(d / "manifest.json")
        for s in sections():
            if s.name == "demo":
                continue
            body = s.render(d, m)
            if body:
                parts.append(f"<h3>{html.escape(s.title)} <small>(<code>{html.escape(sub['name'])}/</code>)</small></h3>{body}")
    return "\n".join(parts)
