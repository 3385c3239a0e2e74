"""Per-prompt pruning mitigations (NeMo, Wanda) as stored objects, and how to apply them.

A mitigation file (``mitigation.pt`` in a ``mitigate`` run folder) holds, per memorized item id,
the NeMo neuron selection or the Wanda weight set, plus the calibration (τ) used. NeMo and the
Wanda variant act at inference for the prompt they were found for, as in NeMo.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, ContextManager

import numpy as np
import torch
from torch import Tensor

from rotelab.diffusion import nemo, wanda
from rotelab.errors import RotelabError

METHODS = ("nemo", "wanda", "adversarial")


def controls_for_calibration(items: list[dict], ys: Tensor, *, limit: int = 16) -> Tensor:
    """Embeddings of up to ``limit`` non-memorized prompts (label 0, evenly spaced): NeMo's reference
    distribution (NeMo used 50k prompts; each costs generations here, so the count is capped)."""
    idx = [i for i, it in enumerate(items) if it["label"] == 0]
    if len(idx) < 2:
        raise RotelabError("calibration needs at least 2 non-memorized prompts (label 0) in --data")
    pick = np.linspace(0, len(idx) - 1, min(limit, len(idx))).round().astype(int)
    return ys[[idx[k] for k in pick]]


def build_pruning(model, items: list[dict], method: str, *, seeds=nemo.SIGNAL_SEEDS, rep_threshold: float = 0.7, use_images: bool = True,
                  progress: Callable[[int], None] | None = None) -> dict:
    """Find a per-prompt NeMo or Wanda mitigation for every memorized item (label 1).

    With ``use_images`` (default) an item's training image, when it has one, is the replication
    target of :func:`nemo.check`: the selection continues until that prompt no longer replicates it.
    """
    from rotelab.diffusion.model import load_images

    ys = model.embed([it["text"] for it in items])
    ctrl = controls_for_calibration(items, ys)
    cal = nemo.calibrate(model, ctrl, seeds=seeds)
    ref = wanda.reference_norms(model, ctrl) if method == "wanda" else None
    per_item = {}
    for k, (it, y) in enumerate((it, y) for it, y in zip(items, ys) if it["label"] == 1):
        target = load_images([it["image"]], model.image_size)[0] if use_images and it.get("image") else None
        kw = {"seeds": seeds, "target": target, "rep_threshold": rep_threshold}
        if method == "nemo":
            r = nemo.select_neurons(model, y, cal["stats"], cal["tau"], **kw)
        else:
            r = wanda.select_weights(model, y, ref, cal["tau"], **kw)
        per_item[it["id"]] = r
        if progress:
            progress(k + 1)
    return {"method": method, "tau": cal["tau"], "rep_threshold": rep_threshold, "control_signals": cal["control_signals"], "per_item": per_item,
            "stats": cal["stats"], "ref_norms": ref}


def context(model, mitigation: dict | None, item_id: str) -> Callable[[], ContextManager]:
    """A factory for the context that applies the item's mitigation (nothing for unknown items)."""
    if mitigation is None or item_id not in mitigation.get("per_item", {}):
        return contextlib.nullcontext
    r = mitigation["per_item"][item_id]
    if mitigation["method"] == "nemo":
        return lambda: nemo.deactivated(model.unet, r["selection"])
    return lambda: wanda.pruned(model.unet, r["weights"])


def summary_rows(mitigation: dict) -> list[dict]:
    rows = []
    for iid, r in mitigation["per_item"].items():
        row = {"id": iid, "signal before": r["signal_before"], "signal after": r["signal_after"],
               "share replicating before": r.get("replication_before"), "share replicating after": r.get("replication_after"),
               "null floor": r.get("replication_floor"),
               "mitigated": bool(r["mitigated"])}
        if mitigation["method"] == "nemo":
            row.update({"theta": r["theta"], "neurons": sum(len(v) for v in r["selection"].values()), "layers": sum(bool(v) for v in r["selection"].values())})
        else:
            row.update({"sparsity": r["sparsity"], "weights": int(sum(len(v) for v in r["weights"].values()))})
        rows.append(row)
    return rows


def save(path: Path, mitigation: dict) -> None:
    import io

    from rotelab.core.io import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(mitigation, buf)
    atomic_write_bytes(path, buf.getvalue())


def load(run: Path) -> dict:
    p = Path(run) / "mitigation.pt"
    if not p.exists():
        raise RotelabError(f"{run}: no mitigation.pt (is it a 'diffusion mitigate --method nemo|wanda' run folder?)")
    return torch.load(p, weights_only=False)


def mean_signal(mitigation: dict) -> tuple[float, float]:
    a = np.array([r["signal_before"] for r in mitigation["per_item"].values()])
    b = np.array([r["signal_after"] for r in mitigation["per_item"].values()])
    return float(a.mean()), float(b.mean())
