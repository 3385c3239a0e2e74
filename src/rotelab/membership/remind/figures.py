"""REMIND figures: the landscape picture (mean loss change against neighbour rank per state) and
forgotten-vs-holdout ROC curves of REMIND and each baseline."""

from __future__ import annotations

from typing import Any

import numpy as np

from rotelab.core.runs import RunFolder
from rotelab.membership.remind.classify import STATES
from rotelab.membership.remind.landscape import ProbeConfig, setting_name

COLOURS = {"retained": "tab:blue", "forgotten": "tab:red", "holdout": "tab:grey"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_landscape(run: RunFolder, cols: dict[str, np.ndarray], probe: ProbeConfig) -> None:
    """Mean dL against rank j (base rate), per state, with 95% normal intervals of the mean."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    state = np.asarray(cols["state"]).astype(str)
    for st in STATES:
        m = state == st
        if not m.any():
            continue
        ys = [cols[f"dl_mean_{setting_name(j, probe.base_rate)}"][m].astype(float) for j in probe.ranks]
        mean = np.array([y.mean() for y in ys])
        half = np.array([1.96 * y.std(ddof=1) / np.sqrt(len(y)) if len(y) > 1 else 0.0 for y in ys])
        ax.errorbar(probe.ranks, mean, yerr=half, marker="o", capsize=3, color=COLOURS[st], label=f"{st} (n={int(m.sum())})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("neighbour rank j (swap rate p = %g)" % probe.base_rate)
    ax.set_ylabel("mean loss change NLL(variant) - NLL(x)")
    ax.set_title(f"Input loss landscape: K={probe.k} variants per rank, seed {probe.seed}; 95% CI of the mean", fontsize=8)
    ax.legend(fontsize=8)
    run.figure("remind_landscape", fig)


def plot_state_roc(run: RunFolder, y: np.ndarray, P: np.ndarray, baselines: dict[str, np.ndarray], metrics: dict[str, Any]) -> None:
    """Forgotten vs holdout ROC (log FPR) for REMIND and each baseline, AUC and CI in the legend."""
    from rotelab.core.stats import roc_curve_points

    plt = _plt()
    F, H = STATES.index("forgotten"), STATES.index("holdout")
    fh = (y == F) | (y == H)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for name, Q, m in [("remind", P, metrics["remind"])] + [(b, Q, metrics["baselines"][b]) for b, Q in baselines.items()]:
        s = Q[fh, F] / np.maximum(Q[fh, F] + Q[fh, H], 1e-12)
        fpr, tpr = roc_curve_points(s, (y[fh] == F).astype(int))
        ci = m.get("auc_forgotten_vs_holdout_ci") or [float("nan")] * 2
        ax.plot(np.maximum(fpr, 1e-3), tpr, lw=2 if name == "remind" else 1, label=f"{name}: AUC {m['auc_forgotten_vs_holdout']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]")
    ax.plot([1e-3, 1], [1e-3, 1], "k:", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("false positive rate (holdout called forgotten, log)")
    ax.set_ylabel("true positive rate (forgotten found)")
    ax.set_title(f"{int((y == F).sum())} forgotten vs {int((y == H).sum())} holdout; out-of-fold scores; 95% bootstrap CI", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    run.figure("remind_roc", fig)
