"""Figures of the entropy runs (matplotlib, Agg): per-layer MBE and the GAPT phase timeline."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def layer_mbe_figure(rows: list[dict[str, Any]], *, title: str, patch: int):
    """Mean MBE per layer per group, with bootstrap 95% intervals; n texts in the legend."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for g in sorted({r["group"] for r in rows}):
        rs = [r for r in rows if r["group"] == g and r["mbe_mean"] is not None]
        xs = [r["layer"] for r in rs]
        ys = [r["mbe_mean"] for r in rs]
        lo = [r["mbe_mean"] - r["mbe_ci95"][0] if r["mbe_ci95"] else 0 for r in rs]
        hi = [r["mbe_ci95"][1] - r["mbe_mean"] if r["mbe_ci95"] else 0 for r in rs]
        n = max((r["n_texts"] for r in rs), default=0)
        ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=f"{g} (n={n})")
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel(f"MBE, Rényi-2, nats (max log {patch})")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return fig


def timeline_figure(runs: dict[str, list[dict[str, Any]]], *, title: str):
    """Training CE and MBE per step for each run; steps in phase 2 (compress) shaded per GAPT run."""
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(7, 4.5), sharex=True)
    for name, steps in runs.items():
        s = [r["step"] for r in steps]
        a1.plot(s, [r["ce"] for r in steps], lw=0.8, label=name)
        a2.plot(s, [r["mbe"] for r in steps], lw=0.8, label=name)
        ph = [r["phase"] for r in steps]
        if 2 in ph:
            for a in (a1, a2):
                a.fill_between(s, 0, 1, where=[p == 2 for p in ph], transform=a.get_xaxis_transform(), alpha=0.12, color="tab:orange", lw=0)
    a1.set_ylabel("train CE")
    a2.set_ylabel("MBE (gated layer)")
    a2.set_xlabel("step (shaded: GAPT compression phase)")
    a1.set_title(title, fontsize=9)
    a1.legend(fontsize=8)
    return fig
