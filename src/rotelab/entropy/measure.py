"""Per-layer MBE of a causal LM over texts, and a training callback that logs it.

Layer 0 is the embedding output, layer l >= 1 the output of block l (``hidden_states`` of
transformers; the last one has the final norm applied, as transformers returns it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rotelab.core.data import Sample
from rotelab.core.stats import bootstrap_ci
from rotelab.entropy.mbe import patch_mbe


@dataclass(frozen=True)
class MBEConfig:
    patch: int = 8  # tokens per patch (the paper's P)
    alpha: float = 2.0
    batch_size: int = 16
    n_boot: int = 1000
    seed: int = 0


def text_layer_mbe(hidden: np.ndarray, *, patch: int, alpha: float) -> np.ndarray:
    """One text's hidden states (L+1, T, d) -> MBE per layer (L+1,), NaN when T < patch."""
    h = torch.from_numpy(np.ascontiguousarray(hidden))  # (L+1, T, d): layers as the batch
    return patch_mbe(h, patch=patch, alpha=alpha, reduce=False).numpy()


def context_chunks(ids: list[list[int]], max_length: int, policy: str) -> tuple[list[tuple[int, list[int]]], int]:
    """(text index, token ids) pieces that fit the context, and the number of long texts.

    truncate: the first ``max_length`` tokens; window: consecutive non-overlapping windows;
    error: a one-line error naming the first long text.
    """
    from rotelab.errors import RotelabError

    out, n_long = [], 0
    for i, x in enumerate(ids):
        if len(x) > max_length:
            n_long += 1
            if policy == "error":
                raise RotelabError(f"text {i}: {len(x)} tokens > context {max_length} (--long-text error)")
        stops = range(0, len(x), max_length) if policy == "window" else [0]
        out += [(i, x[a : a + max_length]) for a in stops]
    return out, n_long


def layer_mbe(lm, samples: list[Sample], cfg: MBEConfig = MBEConfig(), *, progress: bool = False) -> dict[str, Any]:
    """MBE per layer and text. Returns ``{"per_text": (N, L+1) array, "ids", "groups", "n_tokens", "n_long"}``.

    A text's MBE is the mean over all its patches (over every window with ``long_text=window``).
    ``groups`` is each sample's ``label`` (or ``split``) field when present, else "all".
    """
    from rich.progress import Progress

    from rotelab.core.access import Access

    lm.require(Access.HIDDEN, method="entropy mbe")
    ids = lm.tokenize([s.text for s in samples])
    chunks, n_long = context_chunks(ids, lm.max_length, lm.long_text)
    order = np.argsort([len(c) for _, c in chunks])  # length-sorted batches: little padding
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("MBE per layer", total=len(chunks))
        for b in range(0, len(order), cfg.batch_size):
            idx = order[b : b + cfg.batch_size]
            for k, hs in zip(idx, lm.hidden_states([chunks[k][1] for k in idx])):
                i, n = chunks[k][0], hs.shape[1] // cfg.patch
                if n:  # mean over a text's patches = patch-count-weighted mean of its pieces
                    sums[i] = sums.get(i, 0) + n * text_layer_mbe(hs, patch=cfg.patch, alpha=cfg.alpha)
                    counts[i] = counts.get(i, 0) + n
            bar.update(task, advance=len(idx))
    n_cols = lm.model.config.num_hidden_layers + 1
    per_text = np.stack([sums[i] / counts[i] if i in counts else np.full(n_cols, np.nan) for i in range(len(samples))])
    groups = [str(s.meta.get("label", s.meta.get("split", "all"))) for s in samples]
    return {"per_text": per_text, "ids": [s.id for s in samples], "groups": groups,
            "n_tokens": [min(len(x), lm.max_length) if lm.long_text == "truncate" else len(x) for x in ids], "n_long": n_long}


def summarize_layers(per_text: np.ndarray, groups: list[str], cfg: MBEConfig = MBEConfig()) -> list[dict[str, Any]]:
    """One row per (group, layer): mean MBE over texts with a bootstrap 95% interval and n."""
    out = []
    g = np.asarray(groups)
    for name in sorted(set(groups)):
        sub = per_text[g == name]
        for layer in range(per_text.shape[1]):
            x = sub[:, layer]
            n = int(np.isfinite(x).sum())
            out.append({
                "group": name, "layer": layer, "n_texts": n,
                "mbe_mean": float(np.nanmean(x)) if n else None,
                "mbe_ci95": bootstrap_ci(x, n_boot=cfg.n_boot, seed=cfg.seed),
                **({} if n else {"mbe_mean_reason": f"no text has >= {cfg.patch} tokens"}),
            })
    return out


@torch.no_grad()
def model_layer_mbe(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, patch: int = 8) -> list[float]:
    """MBE per layer (embeddings first) of a transformers causal LM on one batch, eval mode."""
    was_training = model.training
    model.eval()
    hs = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states
    model.train(was_training)
    return [float(patch_mbe(h, patch=patch, mask=attention_mask)) for h in hs]


class MBELogger:
    """Training callback: adds per-layer MBE of a fixed probe batch to each log entry.

    Fits the testbed trainer's ``on_log(entry)`` hook and :func:`rotelab.entropy.gapt_train.train_gapt`::

        train_on_schedule(model, ids, copies, spec, on_log=MBELogger(model, probe_ids, probe_mask))
    """

    def __init__(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, patch: int = 8):
        self.model, self.ids, self.mask, self.patch = model, input_ids, attention_mask, patch
        self.history: list[dict[str, Any]] = []

    def __call__(self, entry: dict[str, Any]) -> None:
        mbe = model_layer_mbe(self.model, self.ids, self.mask, patch=self.patch)
        entry["mbe_layers"] = mbe
        self.history.append({"step": entry.get("step"), "mbe_layers": mbe})


def mbe_run(lm, samples: list[Sample], run, cfg: MBEConfig = MBEConfig(), *, progress: bool = False) -> dict[str, Any]:
    """``rotelab entropy mbe``: per-text parquet, per-layer summary JSON and figure in ``run``."""
    from rotelab.core.io import read_json
    from rotelab.entropy.figures import layer_mbe_figure

    def compute():
        res = layer_mbe(lm, samples, cfg, progress=progress)
        per = res["per_text"]
        run.write_parquet("mbe_per_text.parquet", {"id": res["ids"], "group": res["groups"], "n_tokens": res["n_tokens"],
                                                   **{f"layer_{i}": per[:, i] for i in range(per.shape[1])}})
        rows = summarize_layers(per, res["groups"], cfg)
        n_short = int((np.asarray(res["n_tokens"]) < cfg.patch).sum())
        summary = {"model": lm.name, "n_texts": len(samples), "n_layers": per.shape[1] - 1, "patch": cfg.patch, "alpha": cfg.alpha,
                   "max_entropy": float(np.log(cfg.patch)), "n_texts_shorter_than_patch": n_short, "layers": rows}
        run.write_json("mbe.json", summary)
        run.figure("entropy_mbe_layers", layer_mbe_figure(rows, title=f"{lm.name}: {len(samples)} texts, patch {cfg.patch}, alpha {cfg.alpha}, bootstrap 95% CI (seed {cfg.seed})", patch=cfg.patch))
        if res["n_long"]:
            run.note("long_text", {"n_long": res["n_long"], "policy": lm.long_text}, say=f"{res['n_long']} texts exceed the context of {lm.max_length} tokens ({lm.long_text})")
        if n_short:
            run.note("mbe_short_texts", n_short, say=f"{n_short} texts have fewer than {cfg.patch} tokens and no MBE")

    run.step("mbe", compute)
    return read_json(run.file("mbe.json"))
