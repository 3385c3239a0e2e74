"""Figures of a weight diff: layer x module-type heatmap and the distribution of R = |dW / W|."""

from __future__ import annotations

from typing import Any

import numpy as np

from rotelab.extraction.module_types import TYPES


def heatmap(res: dict[str, Any], *, title: str):
    """Share of weights changed by > 1% per (layer, module type); cells without weights blank."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = sorted({int(k.split("/")[0]) for k in res["by_layer_type"]})
    types = [t for t in TYPES if any(k.endswith("/" + t) for k in res["by_layer_type"])]
    grid = np.full((len(layers), len(types)), np.nan)
    for i, l in enumerate(layers):
        for j, t in enumerate(types):
            c = res["by_layer_type"].get(f"{l}/{t}")
            if c:
                grid[i, j] = c["share_changed_gt_1pct"]
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(types), 1.2 + 0.3 * len(layers)))
    im = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=max(1e-9, np.nanmax(grid)) if np.isfinite(grid).any() else 1)
    ax.set_xticks(range(len(types)), types, fontsize=8)
    ax.set_yticks(range(len(layers)), [str(l) for l in layers], fontsize=7)
    ax.set_ylabel("block (0 = lowest)")
    for i in range(len(layers)):
        for j in range(len(types)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=6, color="w")
    fig.colorbar(im, ax=ax, label="share of weights with |dW/W| > 1%")
    ax.set_title(title, fontsize=8)
    return fig


def histogram(res: dict[str, Any], *, title: str):
    """Distribution of log10 |dW / W| over all weights (unchanged weights in the lowest bin)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = res["log10_r_histogram"]
    edges, counts = np.asarray(h["bin_edges"]), np.asarray(h["counts"])
    fig, ax = plt.subplots(figsize=(6, 2.8))
    ax.bar(edges[:-1], counts / max(1, counts.sum()), width=np.diff(edges), align="edge", color="tab:blue")
    for x, lab in ((-2, "1%"), (0, "100%")):
        ax.axvline(x, color="k", ls="--", lw=0.8)
        ax.text(x, ax.get_ylim()[1] * 0.9, lab, fontsize=7)
    ax.set_xlabel("log10 |dW / W|")
    ax.set_ylabel(f"share of {res['n_weights']:,} weights")
    ax.set_title(title, fontsize=8)
    return fig
