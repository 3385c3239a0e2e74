"""Figures of the books experiment: duplication vs extraction, the suppression table, the LoRA trajectory."""

from __future__ import annotations

from typing import Any

import numpy as np

from rotelab.extraction.books.summarize import STAGE_LABELS, STAGES


def plot_duplication(res: dict[str, Any]):
    """Median Jaccard (bootstrap CI over windows) against copies; held-out at 0; Spearman in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["popularity"]["by_excerpt"]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    seen: dict[int, int] = {}
    for r in rows:
        k = seen[r["copies"]] = seen.get(r["copies"], -1) + 1  # k-th excerpt at this count: small x jitter, stacked labels
        y = r["median_jaccard"]
        x = r["copies"] * (1 + 0.12 * k) if r["copies"] else 0.08 * k
        lo, hi = r["median_jaccard_ci"] or (y, y)
        c = "tab:gray" if r["copies"] == 0 else ("tab:red" if r["role"] == "held_back" else "tab:blue")
        ax.errorbar([x], [y], yerr=[[y - lo], [hi - y]], fmt="o", color=c, capsize=3, ms=5)
        ax.annotate(r["id"].removesuffix("_x0").removesuffix("_gut"), (x, y), fontsize=6, xytext=(5, 3 + 8 * k), textcoords="offset points", color=c)
    ax.set_xscale("symlog", linthresh=1)
    counts = sorted({r["copies"] for r in rows})
    ax.set_xticks(counts, [str(c) for c in counts])
    ax.set_xlim(-0.3, max(counts) * 2.2)
    ax.set_xlabel("copies in training (0 = held out)")
    ax.set_ylabel("median Jaccard (sliding windows)")
    ax.set_ylim(-0.03, 1.12)
    sp = res["popularity"]["spearman_trained"]
    rho = "—" if sp.get("rho") is None else f"{sp['rho']:.2f}" + (f" [{sp['ci'][0]:.2f}, {sp['ci'][1]:.2f}]" if sp.get("ci") else "")
    n_win = sum(r["n_windows"] for r in rows)
    ax.set_title(f"prefix {res['prefix_tokens']} -> {res['suffix_tokens']} greedy; {len(rows)} excerpts, {n_win} windows, seed {res['seed']}\n"
                 f"Spearman(copies, median Jaccard), trained n={sp['n']}: {rho}; red = held back, grey = never trained", fontsize=8)
    return fig


def plot_suppression(res: dict[str, Any]):
    """Held-back excerpts' median Jaccard at base / suppressed / suppressed + LoRA (bootstrap CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["table"]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    w = 0.26
    for k, s in enumerate(STAGES):
        ys = [r[s]["median_jaccard"] for r in rows]
        cis = [r[s]["median_jaccard_ci"] or (y, y) for r, y in zip(rows, ys)]
        xs = np.arange(len(rows)) + (k - 1) * w
        ax.bar(xs, ys, w, label=STAGE_LABELS[s], yerr=[[y - c[0] for y, c in zip(ys, cis)], [c[1] - y for y, c in zip(ys, cis)]], capsize=2)
    ax.set_xticks(np.arange(len(rows)), [f"{r['excerpt'].removesuffix('_x0')}\n({r['copies']} copies)" for r in rows], fontsize=7)
    ax.set_ylabel("median Jaccard")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    sup, lo = res["suppression"], res["lora"]
    ax.set_title(f"held-back excerpts; suppression {sup['steps']} steps, LoRA r={lo['r']} {lo['steps']} steps on {lo['n_pairs']} pairs of other excerpts; seed {res['seed']}", fontsize=8)
    return fig


def plot_lora_trajectory(res: dict[str, Any]):
    """Mean median Jaccard of the memorized held-back excerpts and of the LoRA's own (other) excerpts along the LoRA run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = res["lora"]["trajectory"]
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    x = [t["step"] for t in tr]
    ax.plot(x, [t["held_back_memorized_mean_median_jaccard"] for t in tr], "o-", color="tab:red", label="held-back (memorized at base), never in the LoRA data")
    ax.plot(x, [t["other_mean_median_jaccard"] for t in tr], "s--", color="tab:blue", label="other excerpts (the LoRA's training pairs)")
    base = res["groups"]["held_back_memorized"]["base"]
    if base:
        ax.axhline(base["mean_jaccard"], color="grey", lw=0.8, ls=":", label="held-back at base (mean Jaccard)")
    ax.set_xlabel("LoRA step")
    ax.set_ylabel("mean of per-excerpt median Jaccard")
    ax.set_ylim(-0.03, 1.05)
    ax.legend(fontsize=7)
    lo = res["lora"]
    ax.set_title(f"LoRA r={lo['r']}, lr {lo['lr']}, batch {lo['batch_size']}, {lo['n_pairs']} pairs; steps fixed at {lo['steps']} in advance; seed {res['seed']}", fontsize=8)
    return fig
