"""Figures of ``capacity robust`` (matplotlib, Agg); sample sizes, seeds and intervals on each."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rotelab.core.runs import RunFolder  # noqa: E402


def robust_figures(run: RunFolder, s: dict[str, Any]) -> None:
    cfg = s["config"]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    pts = [p for p in s["points"] if p["p_star"] is not None]
    if pts:
        ax.scatter([p["rho"] for p in pts], [p["p_star"] for p in pts], alpha=0.6, label=f"P* per seed (seeds {cfg['seeds']})")
    med = [r for r in s["per_rho"] if r["p_star_median"] is not None]
    if med:
        ax.plot([r["rho"] for r in med], [r["p_star_median"] for r in med], "o-", label="median P*")
    if s["lb_constant"] is not None:
        c = s["lb_constant"]
        ax.plot([q["rho"] for q in s["lb_curve"]], [c * q["total"] for q in s["lb_curve"]], "k--",
                label=f"Thm 3.1 lower bound x {c:.2f} (constant fitted)")
    ax.set(yscale="log", xlabel="rho = mu / eps_D", ylabel="P* (100% IBP-certified)",
           title=f"Robust memorisation: N={cfg['n']}, d={cfg['d']}, data={cfg['dataset']}, {cfg['mode']} training")
    ax.title.set_fontsize(8)
    ax.legend(fontsize=7)
    run.figure("capacity_robust_pstar", fig)

    rows = s["per_rho"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    rho = [r["rho"] for r in rows]
    ax.plot(rho, [r["certified_last"] for r in rows], "o-", label="certified (IBP)")
    ax.plot(rho, [r["attacked_last"] for r in rows], "s-", label="attacked (PGD-l2)")
    ax.plot(rho, [1 - r["certified_last"] - r["attacked_last"] for r in rows], "^:", label="gap (neither)")
    ax.set(xlabel="rho", ylabel=f"share of N={cfg['n']} balls", ylim=(-0.05, 1.05),
           title=f"Largest net tried per rho, mean over {len(cfg['seeds'])} seeds")
    ax.title.set_fontsize(8)
    ax.legend(fontsize=7)
    run.figure("capacity_robust_shares", fig)
