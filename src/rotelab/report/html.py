"""Assemble ``report.html`` from the registered sections, with figures inlined (works offline)."""

from __future__ import annotations

import base64
import html as _html
from pathlib import Path
from typing import Any, Sequence

from rotelab.core.io import atomic_write_text, dumps, read_json
from rotelab.errors import RotelabError


def img(path: Path, *, alt: str = "", width: int | None = None) -> str:
    """An <img> with the PNG inlined as base64."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    w = f' width="{width}"' if width else ""
    return f'<img alt="{_html.escape(alt)}"{w} src="data:image/png;base64,{data}">'


def rate_cell(r: dict | None) -> str:
    """A rate from :func:`rotelab.core.stats.rate_ci` as 'rate [lo, hi] (hits/n)'; an em dash when undefined."""
    if not r or r.get("rate") is None:
        return "—"
    return f"{r['rate']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] ({r['hits']}/{r['n']})"


def fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        return f"[{v[0]:.{digits}f}, {v[1]:.{digits}f}]"
    return _html.escape(str(v))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, *, digits: int = 3) -> str:
    """An HTML table of dict rows (None shows as an em dash)."""
    if not rows:
        return "<p><em>no rows</em></p>"
    cols = list(columns or rows[0].keys())
    head = "".join(f"<th>{_html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(c), digits)}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def metric_rows(metrics: dict[str, dict[str, Any]], *, label: str = "score") -> list[dict[str, Any]]:
    """Rows for :func:`table` from ``{name: stats.summarize(...)}``; reasons replace nulls."""
    rows = []
    for name, m in metrics.items():
        row = {label: name, "n members": m.get("n_members"), "n non-members": m.get("n_nonmembers")}
        row["AUC"] = m.get("auc")
        row["AUC 95% CI"] = m.get("auc_ci")
        for key, col in (("tpr_at_1pct_fpr", "TPR@1%FPR"), ("tpr_at_0_1pct_fpr", "TPR@0.1%FPR")):
            row[col] = m.get(key) if m.get(key) is not None else m.get(f"{key}_reason")
            row[f"{col} CI"] = m.get(f"{key}_ci")
        rows.append(row)
    return rows


def _env():
    from jinja2 import Environment, PackageLoader, select_autoescape

    return Environment(loader=PackageLoader("rotelab", "report/templates"), autoescape=select_autoescape(["html"]))


def build_report(run: Path | str) -> Path:
    """(Re)build ``RUN/report.html`` from what the run folder holds."""
    from rotelab.report.registry import sections

    run = Path(run)
    if not (run / "manifest.json").exists():
        raise RotelabError(f"{run}: not a run folder (no manifest.json)")
    manifest = read_json(run / "manifest.json")
    parts = []
    for s in sections():
        body = s.render(run, manifest)
        if body:
            parts.append({"name": s.name, "title": s.title, "body": body})
    page = _env().get_template("report.html").render(
        manifest=manifest, manifest_json=dumps(manifest), sections=parts, run=str(run)
    )
    out = run / "report.html"
    atomic_write_text(out, page)
    return out
