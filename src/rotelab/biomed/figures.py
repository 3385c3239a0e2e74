"""The eval run's figures: gain vs popularity, gain vs lexicalization, membership per pair."""

from __future__ import annotations

from typing import Any

import numpy as np

COLORS = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377")


def _err(ci: list[float] | None, mean: float | None) -> list[float]:
    if ci is None or mean is None:
        return [0.0, 0.0]
    return [max(0.0, mean - ci[0]), max(0.0, ci[1] - mean)]


def gain_vs_popularity(run, metrics: dict[str, Any]) -> None:
    """Per popularity bin: gain on training terms (solid), on validation terms (dashed) and the base
    model's exact match (dotted), one colour per arm and direction; 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = metrics["groups"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for (g, e), c in zip(groups.items(), COLORS * 4):
        bins = sorted(e["bins"], key=int)
        x = np.array([int(b) for b in bins], dtype=float)
        for ax, split, ls in ((axes[0], "train", "-"), (axes[1], "validation", "--")):
            vals = [e["bins"][b][split] for b in bins]
            y = [v["gain"]["mean"] if v["gain"]["mean"] is not None else np.nan for v in vals]
            err = np.array([_err(v["gain"]["ci"], v["gain"]["mean"]) for v in vals]).T
            ax.errorbar(x, y, yerr=err, color=c, ls=ls, marker="o", capsize=3, label=f"{g} gain")
            base = [v["base_em"]["rate"] if v["base_em"]["rate"] is not None else np.nan for v in vals]
            ax.plot(x, base, color=c, ls=":", marker=".", label=f"{g} base EM")
    ranges = metrics["bins"]["ranges"]
    for ax, title in zip(axes, ("training terms (memorization)", "validation terms (generalization)")):
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(range(len(ranges)))
        ax.set_xticklabels([f"{lo:g}-{hi:g}" for lo, hi in ranges], fontsize=8)
        ax.set_xlabel("popularity bin (annotation count)")
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel("exact-match gain (fine-tuned - base)")
    axes[1].legend(fontsize=7, loc="best")
    run.figure("biomed_gain_vs_popularity", fig)


def gain_vs_lexicalization(run, metrics: dict[str, Any]) -> None:
    """Each arm and direction: its mean lexicalization (x, 95% interval) against its gain on
    training (circles) and validation (squares) terms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spaces = [s for s in ("encoder", "model") if any((v.get(s) or {}).get("lexicalization") is not None for v in metrics["lexicalization"].values())]
    fig, axes = plt.subplots(1, max(1, len(spaces)), figsize=(5.5 * max(1, len(spaces)), 4), squeeze=False)
    for ax, space in zip(axes[0], spaces):
        for (g, e), c in zip(metrics["groups"].items(), COLORS * 4):
            lex = metrics["lexicalization"][g.split("/")[0]][space]
            x, xci = lex["lexicalization"], lex["lexicalization_ci"]
            for split, mk in (("train", "o"), ("validation", "s")):
                gm = e[split]["gain"]
                if gm["mean"] is None:
                    continue
                ax.errorbar([x], [gm["mean"]], xerr=np.array([_err(xci, x)]).T, yerr=np.array([_err(gm["ci"], gm["mean"])]).T,
                            color=c, marker=mk, capsize=3, label=f"{g} {split}")
        ax.axhline(0, color="k", lw=0.6)
        ax.axvline(0, color="k", lw=0.6, ls=":")
        ax.set_xlabel(f"lexicalization ({'sentence encoder' if space == 'encoder' else 'base model'}): cos(term, id) - shuffled")
        ax.set_ylabel("exact-match gain")
    axes[0][-1].legend(fontsize=7, loc="best")
    run.figure("biomed_gain_vs_lexicalization", fig)


def membership_per_pair(run, rows: dict[str, np.ndarray], attack: str) -> None:
    """Training pairs: membership score against popularity and against the pair's gain."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = np.array(rows["split"]) == "train"
    s = rows[f"mia_{attack}"][train]
    groups = np.array(rows["group"])[train]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for g, c in zip(dict.fromkeys(groups), COLORS * 4):
        m = groups == g
        axes[0].scatter(np.log1p(rows["popularity"][train][m]), s[m], s=8, alpha=0.5, color=c, label=g)
        jitter = np.random.default_rng(0).uniform(-0.15, 0.15, m.sum())
        axes[1].scatter(rows["gain"][train][m] + jitter, s[m], s=8, alpha=0.5, color=c, label=g)
    axes[0].set_xlabel("log(1 + popularity)")
    axes[1].set_xlabel("gain of the pair (-1 forgot, 0 same, 1 learned)")
    axes[1].set_xticks([-1, 0, 1])
    for ax in axes:
        ax.set_ylabel(f"membership score '{attack}' (higher = more member-like)")
    axes[0].legend(fontsize=7, markerscale=2)
    run.figure("biomed_membership", fig)


def plot_all(run, rows: dict[str, np.ndarray], metrics: dict[str, Any]) -> None:
    gain_vs_popularity(run, metrics)
    if any(any((v or {}).get("lexicalization") is not None for v in d.values()) for d in metrics["lexicalization"].values()):
        gain_vs_lexicalization(run, metrics)
    attacks = [c[4:] for c in rows if c.startswith("mia_")]
    if attacks:
        membership_per_pair(run, rows, "reference" if "reference" in attacks else attacks[0])
