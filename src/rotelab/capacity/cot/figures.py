"""Figures of ``capacity cot`` (matplotlib, Agg); sample sizes, seeds and intervals on each."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rotelab.core.runs import RunFolder  # noqa: E402


def _slope_label(arm: str, fit: dict[str, Any]) -> str:
    if fit.get("slope") is None:
        return f"{arm}: slope undefined ({fit.get('slope_reason')})"
    lo, hi = fit["slope_ci"]
    return f"{arm}: slope {fit['slope']:.2f} [95% CI {lo:.2f}, {hi:.2f}], {fit['n_points']} pts"


def cot_figures(run: RunFolder, s: dict[str, Any]) -> None:
    cfg = s["config"]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for arm, colour in (("no_cot", "tab:blue"), ("cot", "tab:orange")):
        pts = [p for p in s["p_star"].get(arm, []) if p["p_star"] is not None]
        if not pts:
            continue
        n, p = np.array([q["n"] for q in pts]), np.array([q["p_star"] for q in pts])
        ax.scatter(n, p, color=colour, alpha=0.7, label=_slope_label(arm, s["slopes"][arm]))
        fit = s["slopes"][arm]
        if fit.get("slope") is not None:
            xs = np.linspace(n.min(), n.max(), 20)
            ax.plot(xs, np.exp(fit["intercept"]) * xs ** fit["slope"], color=colour)
    ax.set(xscale="log", yscale="log", xlabel="N (random-label strings)", ylabel="P* (smallest params, 100% memorised)",
           title=f"P*(N), seeds {cfg['seeds']}, pos={cfg['pos']}, {cfg['precision']}, CoT = {cfg['pause']} pause tokens, "
                 f"widths {cfg['w_min']}..{cfg['w_max']} x depths {cfg['depths']}")
    ax.title.set_fontsize(8)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    run.figure("capacity_cot_pstar", fig)

    cond = s["conditions"]
    keys = list(cond)
    if not keys:
        return
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(keys) + 1.4))
    y = np.arange(len(keys))
    mean = [cond[k]["accuracy_mean"] for k in keys]
    ax.barh(y, mean, color=["tab:red" if cond[k]["prediction"] == "fail" else "tab:green" for k in keys], alpha=0.5)
    for i, k in enumerate(keys):
        ax.scatter(cond[k]["accuracy"], [i] * len(cond[k]["accuracy"]), color="k", s=10, zorder=3)
        if cond[k]["bound"] is not None:
            ax.plot([cond[k]["bound"]] * 2, [i - 0.4, i + 0.4], "k--", lw=1)
    ax.set_yticks(y, [f"{k} (n={cond[k]['n']}, predicted {cond[k]['prediction']})" for k in keys], fontsize=6)
    ax.set(xlim=(0, 1.05), xlabel="share memorised: bar = mean, dots = seeds, dashed = checker's bound",
           title=f"Condition families, seeds {cfg['cond_seeds']}, width {cfg['cond_width']} depth {cfg['cond_depth']} "
                 f"heads {cfg['cond_heads']}, NoPE unless 'learned'")
    ax.title.set_fontsize(8)
    run.figure("capacity_cot_conditions", fig)
