"""Per-layer MBE of a causal LM over texts, and a training callback that logs it.

Layer 0 is the embedding output, layer l >= 1 the output of block l
(:meth:`rotelab.core.models.LanguageModel.hidden_states`; the last one has the final norm applied,
as transformers returns it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from rotelab.core.data import Sample
from rotelab.core.stats import bootstrap_ci
from rotelab.entropy.mbe import patch_mbe
from rotelab.errors import RotelabError


@dataclass(frozen=True)
class MBEConfig:
    patch: int = 8  # tokens per patch (the paper's P)
    alpha: float = 2.0
    batch_size: int = 16
    n_boot: int = 1000
    seed: int = 0

    def validate(self) -> None:
        if self.patch < 2:
            raise RotelabError(f"--patch must be >= 2; got {self.patch}")
        if not self.alpha > 0:
            raise RotelabError(f"--alpha must be > 0; got {self.alpha}")
        if self.batch_size < 1:
            raise RotelabError(f"--batch-size must be >= 1; got {self.batch_size}")
        if self.n_boot < 1:
            raise RotelabError(f"n_boot must be >= 1; got {self.n_boot}")


def text_layer_mbe(hidden: np.ndarray, *, patch: int, alpha: float) -> np.ndarray:
    """One text's hidden states (L+1, T, d) -> MBE per layer (L+1,), NaN when T < patch."""
    h = torch.from_numpy(np.ascontiguousarray(hidden))  # (L+1, T, d): layers as the batch
    return patch_mbe(h, patch=patch, alpha=alpha, reduce=False).numpy()


def context_chunks(
    ids: list[list[int]], max_length: int, policy: str, *, sample_ids: Sequence[str] | None = None, source: str | None = None
) -> tuple[list[tuple[int, list[int]]], int]:
    """(text index, token ids) pieces that fit the context, and the number of long texts.

    truncate: the first ``max_length`` tokens; window: consecutive non-overlapping windows;
    error: a one-line error naming the file (``source``), the sample and its length.

    >>> context_chunks([[1, 2, 3], [4]], 2, "window")
    ([(0, [1, 2]), (0, [3]), (1, [4])], 1)
    """
    out, n_long = [], 0
    for i, x in enumerate(ids):
        if len(x) > max_length:
            n_long += 1
            if policy == "error":
                where = f"{source}: " if source else ""
                sample = f"sample '{sample_ids[i]}' (text {i}" if sample_ids is not None else f"(text {i}"
                raise RotelabError(f"{where}{sample}: {len(x)} tokens > context {max_length}); choose --long-text truncate or window")
        stops = range(0, len(x), max_length) if policy == "window" else [0]
        out += [(i, x[a : a + max_length]) for a in stops]
    return out, n_long


@dataclass(frozen=True)
class Plan:
    """The pieces :func:`layer_mbe` feeds the model, and what the long-text policy did (a manifest note)."""

    chunks: list[tuple[int, list[int]]]
    n_tokens: list[int]
    long_text: dict[str, Any]

    def message(self) -> str | None:
        lt = self.long_text
        if not lt["n_longer_than_context"]:
            return None
        what = {"truncate": f"truncated to {lt['max_length']} tokens ({lt['tokens_dropped']} tokens dropped)",
                "window": f"cut into {lt['n_windows']} consecutive windows of {lt['max_length']} tokens"}[lt["policy"]]
        return f"{lt['n_longer_than_context']} of {lt['n_texts']} texts are longer than the context and were {what}"


def plan_texts(lm, samples: Sequence[Sample], *, source: str | None = None) -> Plan:
    """Tokenize ``samples`` and apply the model's long-text policy (refusing under ``error``)."""
    ids = lm.tokenize([s.text for s in samples])
    sids = [s.id for s in samples]
    chunks, _ = context_chunks(ids, lm.max_length, lm.long_text, sample_ids=sids, source=source)
    long = [i for i, x in enumerate(ids) if len(x) > lm.max_length]
    is_long = set(long)
    note = {"policy": lm.long_text, "max_length": lm.max_length, "n_texts": len(ids), "n_longer_than_context": len(long),
            "tokens_dropped": sum(len(ids[i]) - lm.max_length for i in long) if lm.long_text == "truncate" else 0,
            "n_windows": sum(i in is_long for i, _ in chunks) if lm.long_text == "window" else 0, "example_ids": [sids[i] for i in long[:10]]}
    n_tokens = [min(len(x), lm.max_length) if lm.long_text == "truncate" else len(x) for x in ids]
    return Plan(chunks, n_tokens, note)


def layer_mbe(lm, samples: list[Sample], cfg: MBEConfig = MBEConfig(), *, progress: bool = False, plan: Plan | None = None) -> dict[str, Any]:
    """MBE per layer and text. Returns ``{"per_text": (N, L+1) array, "ids", "groups", "n_tokens", "n_long"}``.

    A text's MBE is the mean over all its patches (over every window with ``long_text=window``).
    ``groups`` is each sample's ``label`` (or ``split``) field when present, else "all". Pieces
    are fed in length-sorted batches (:func:`rotelab.core.batching.map_sorted`).
    """
    from rotelab.core.access import Access
    from rotelab.core.batching import map_sorted

    lm.require(Access.HIDDEN, method="entropy mbe")
    plan = plan or plan_texts(lm, samples)

    def per_piece(batch: list[tuple[int, list[int]]]) -> list[tuple[int, np.ndarray | None]]:
        out = []
        for hs in lm.hidden_states([ids for _, ids in batch]):  # (L+1, T, d) each
            n = hs.shape[1] // cfg.patch
            out.append((n, text_layer_mbe(hs, patch=cfg.patch, alpha=cfg.alpha) if n else None))
        return out

    pieces = map_sorted(per_piece, plan.chunks, batch_size=cfg.batch_size, length=lambda c: len(c[1]), progress=progress, label="MBE per layer")
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    for (i, _), (n, mbe) in zip(plan.chunks, pieces):
        if n:  # mean over a text's patches = patch-count-weighted mean of its pieces
            sums[i] = sums.get(i, 0) + n * mbe
            counts[i] = counts.get(i, 0) + n
    n_cols = lm.model.config.num_hidden_layers + 1
    per_text = np.stack([sums[i] / counts[i] if i in counts else np.full(n_cols, np.nan) for i in range(len(samples))])
    groups = [str(s.meta.get("label", s.meta.get("split", "all"))) for s in samples]
    return {"per_text": per_text, "ids": [s.id for s in samples], "groups": groups, "n_tokens": plan.n_tokens, "n_long": plan.long_text["n_longer_than_context"]}


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


class _TokenIdsOnly:
    """The tokenizer of a model seen during training: token ids go in, no text (what
    :class:`~rotelab.core.models.HFLanguageModel` needs to read hidden states of a bare module)."""

    pad_token_id = eos_token_id = model_max_length = None

    def get_vocab(self) -> dict[str, int]:
        return {}


def model_layer_mbe(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, patch: int = 8) -> list[float]:
    """MBE per layer (embeddings first) of a transformers causal LM on one right-padded batch, read
    in eval mode through :meth:`LanguageModel.hidden_states`; the mean over every patch of the batch
    that lies within its text (the model's training mode is restored)."""
    from rotelab.core.models import HFLanguageModel

    rows = [ids[m.bool()].tolist() for ids, m in zip(input_ids, attention_mask)]
    was_training = model.training
    try:
        hidden = HFLanguageModel(model, _TokenIdsOnly(), name="in training", fingerprint="in training").hidden_states(rows)
    finally:
        model.train(was_training)
    sums, n = 0.0, 0
    for hs in hidden:  # (L+1, T, d)
        k = hs.shape[1] // patch
        if k:
            sums, n = sums + k * text_layer_mbe(hs, patch=patch, alpha=2.0), n + k
    return (np.asarray(sums) / n).tolist() if n else [float("nan")] * (model.config.num_hidden_layers + 1)


class MBELogger:
    """Training callback: adds per-layer MBE of a fixed probe batch to each log entry.

    Fits the ``on_log(entry)`` hook of :func:`rotelab.core.training.train_on_schedule` and
    :func:`rotelab.entropy.gapt_train.train_gapt`::

        train_on_schedule(model, ids, copies, spec, on_log=MBELogger(model, probe_ids, probe_mask))
    """

    def __init__(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, patch: int = 8):
        self.model, self.ids, self.mask, self.patch = model, input_ids, attention_mask, patch
        self.history: list[dict[str, Any]] = []

    def __call__(self, entry: dict[str, Any]) -> None:
        mbe = model_layer_mbe(self.model, self.ids, self.mask, patch=self.patch)
        entry["mbe_layers"] = mbe
        self.history.append({"step": entry.get("step"), "mbe_layers": mbe})


def mbe_run(lm, samples: list[Sample], run, cfg: MBEConfig = MBEConfig(), *, progress: bool = False, plan: Plan | None = None) -> dict[str, Any]:
    """Per-text parquet, per-layer summary JSON and figure of ``entropy mbe`` in ``run`` (a
    finished step is not recomputed); the long-text counts go to the manifest's notes."""
    from rotelab.core.io import read_json
    from rotelab.entropy.figures import layer_mbe_figure

    plan = plan or plan_texts(lm, samples)
    run.note("long_text", plan.long_text, say=None if run.is_done("mbe") else plan.message())

    def compute():
        res = layer_mbe(lm, samples, cfg, progress=progress, plan=plan)
        per = res["per_text"]
        run.write_parquet("mbe_per_text.parquet", {"id": res["ids"], "group": res["groups"], "n_tokens": res["n_tokens"],
                                                   **{f"layer_{i}": per[:, i] for i in range(per.shape[1])}})
        rows = summarize_layers(per, res["groups"], cfg)
        n_short = int((np.asarray(res["n_tokens"]) < cfg.patch).sum())
        summary = {"model": lm.name, "n_texts": len(samples), "n_layers": per.shape[1] - 1, "patch": cfg.patch, "alpha": cfg.alpha,
                   "max_entropy": float(np.log(cfg.patch)), "n_texts_shorter_than_patch": n_short, "layers": rows}
        run.write_json("mbe.json", summary)
        run.figure("entropy_mbe_layers", layer_mbe_figure(rows, title=f"{lm.name}: {len(samples)} texts, patch {cfg.patch}, alpha {cfg.alpha}, bootstrap 95% CI (seed {cfg.seed})", patch=cfg.patch))
        if n_short:
            run.note("mbe_short_texts", n_short, say=f"{n_short} texts have fewer than {cfg.patch} tokens and no MBE")

    run.step("mbe", compute)
    return read_json(run.file("mbe.json"))
