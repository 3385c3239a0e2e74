"""One figure per test and the verdicts, small-cell suppressed: a group of fewer than
``small_cell`` patients is not drawn (its label says so), and no single patient is plotted
(box plots without outliers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rotelab.clinical.cohort import Cohort
    from rotelab.clinical.config import AuditConfig
    from rotelab.core.runs import RunFolder


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw(run: "RunFolder", cohort: "Cohort", cfg: "AuditConfig", summary: dict[str, Any], table: dict | None, t4: np.ndarray | None) -> None:
    k = cfg.small_cell
    if table is not None and "T1" in summary:
        _t1(run, cohort, cfg, table, k)
    if "T2" in summary:
        _auc_by(run, "clinical_t2", summary["T2"], lambda e, split: e.get(split, {}).get("any", {}), "auroc", "T2: AUROC of the sensitive-code share (any category) by rung", ("members", "held_out"))
    if "T3" in summary:
        _t3(run, summary["T3"])
    if "T4" in summary and t4 is not None and summary["T4"].get("mink", {}).get("auc") is not None:
        from rotelab.membership.suite import plot_roc

        scores = {a: np.asarray(run_scores) for a, run_scores in _t4_scores(run).items()}
        plot_roc(run, scores, cohort.members.astype(int), summary["T4"], name="clinical_t4", title="T4: members vs held-out (one pass per record)")
    if "verdicts" in summary:
        _verdicts(run, summary["verdicts"], k)


def _t4_scores(run: "RunFolder") -> dict[str, np.ndarray]:
    from rotelab.core.runs import read_parquet

    t = read_parquet(run.file("evidence/membership.parquet"))
    return {a: v for a, v in t.items() if a != "patient"}


def _t1(run, cohort, cfg, table, k: int) -> None:
    plt = _plt()
    rungs = list(cfg.patient_rungs)
    fig, ax = plt.subplots(figsize=(1.9 * len(rungs) + 2, 3.6))
    data, pos, colors, labels = [], [], [], []
    for j, rung in enumerate(rungs):
        rows = table["rung"] == rung
        d, m = table["d_emd"][rows], cohort.members
        for off, (name, x, c) in enumerate((("members", d[m], "#cc3311"), ("held-out", d[~m], "#0077bb"), ("random", table["base_mean"][rows], "#999999"))):
            x = x[np.isfinite(x)]
            if len(x) >= k:
                data.append(x)
                pos.append(j * 4 + off)
                colors.append(c)
        labels.append(rung)
    if data:
        bp = ax.boxplot(data, positions=pos, widths=0.8, showfliers=False, patch_artist=True)
        for patch, c in zip(bp["boxes"], colors):
            patch.set_facecolor(c)
            patch.set_alpha(0.6)
    ax.set_xticks([j * 4 + 1 for j in range(len(rungs))], [f"rung {r}" for r in labels])
    ax.set_ylabel("mean d_EMD per patient (lower = closer)")
    ax.set_title(f"T1: members (red), held-out (blue), random baseline (grey); groups < {k} not drawn", fontsize=9)
    run.figure("clinical_t1", fig)


def _auc_by(run, name: str, per_rung: dict, get, key: str, title: str, series: tuple[str, ...]) -> None:
    plt = _plt()
    rungs = list(per_rung)
    fig, ax = plt.subplots(figsize=(1.3 * len(rungs) + 2.5, 3.4))
    for s, (split, color) in enumerate(zip(series, ("#cc3311", "#0077bb"))):
        xs, ys, lo, hi = [], [], [], []
        for j, r in enumerate(rungs):
            e = get(per_rung[r], split)
            if e.get(key) is None:
                continue
            ci = e.get(f"{key}_ci") or [e[key], e[key]]
            xs.append(j + 0.15 * (s - 0.5))
            ys.append(e[key])
            lo.append(e[key] - ci[0])
            hi.append(ci[1] - e[key])
        if xs:
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", color=color, label=split, capsize=3)
    ax.axhline(0.5, color="k", lw=0.7, ls=":")
    ax.set_xticks(range(len(rungs)), rungs)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel(key.upper() + " (95% bootstrap CI)")
    ax.set_title(title + "; suppressed cells not drawn", fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    run.figure(name, fig)


def _t3(run, res: dict) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for j, (target, entries) in enumerate(res.items()):
        for e in entries:
            if e.get("auroc") is None:
                continue
            ci = e["auroc_ci"]
            x = j + (e["fraction"] - 0.3) * 0.6
            ax.errorbar([x], [e["auroc"]], yerr=[[e["auroc"] - ci[0]], [ci[1] - e["auroc"]]], fmt="o", color="#009988", capsize=3)
            ax.annotate(f"{e['fraction']:g}", (x, e["auroc"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.axhline(0.5, color="k", lw=0.7, ls=":")
    ax.set_xticks(range(len(res)), list(res))
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("probe AUROC (95% CI)")
    ax.set_title("T3: MLP probes on last-token embeddings (label: train fraction)", fontsize=9)
    run.figure("clinical_t3", fig)


def _verdicts(run, verdicts: dict, k: int) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    names = ["memorization", "generalization", "no finding"]
    for s, (split, color) in enumerate(zip(("members", "held_out"), ("#cc3311", "#0077bb"))):
        for j, v in enumerate(names):
            c = verdicts[split][v]
            x = j + 0.4 * (s - 0.5)
            if isinstance(c, str):
                ax.annotate(c, (x, 0), ha="center", fontsize=8, color=color)
            else:
                ax.bar(x, c, width=0.38, color=color, label=split if j == 0 else None)
    ax.set_xticks(range(3), names)
    ax.set_ylabel("patients")
    ax.set_title(f"Verdicts (counts < {k} shown as '<{k}')", fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    run.figure("clinical_verdicts", fig)
