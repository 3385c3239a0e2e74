"""Extraction of book excerpts: sliding windows (true prefix -> greedy suffix) and autoregressive
reconstruction from the first prefix, on top of :mod:`rotelab.extraction.book`."""

from __future__ import annotations

from typing import Any

import numpy as np

from rotelab.core import stats
from rotelab.core.models import LanguageModel
from rotelab.errors import RotelabError
from rotelab.extraction import book as B


def excerpt_config(prefix: int, suffix: int, *, mode: str = "sliding", batch_size: int = 64) -> B.BookConfig:
    """Windows over a whole excerpt: no trims, stride = suffix."""
    return B.BookConfig(prefix_tokens=prefix, suffix_tokens=suffix, trim_start=0, trim_end=0, mode=mode, batch_size=batch_size)  # type: ignore[arg-type]


def measure_sliding(lm: LanguageModel, excerpts: list[dict], *, prefix: int, suffix: int, batch_size: int = 64) -> dict[str, list]:
    """Sliding windows of every excerpt decoded in one batched greedy call; window columns + excerpt id/copies/role."""
    cfg = excerpt_config(prefix, suffix, batch_size=batch_size)
    if lm.max_length < len(lm.bos_ids) + prefix + suffix:
        raise RotelabError(f"prefix {prefix} + suffix {suffix} + BOS exceed the model's context of {lm.max_length}")
    per, prompts = [], []
    for e in excerpts:
        bos, ids = B.book_tokens(lm, e["text"])
        wins = B.windows(ids, cfg)
        per.append((e, wins))
        prompts.extend(bos + p for _, p, _ in wins)
    gens = lm.greedy(prompts, suffix, batch_size=batch_size)
    cols: dict[str, list] = {"excerpt": [], "copies": [], "role": []}
    k = 0
    for e, wins in per:
        sc = B.score_windows(lm, wins, gens[k : k + len(wins)])
        k += len(wins)
        cols["excerpt"] += [e["id"]] * len(wins)
        cols["copies"] += [int(e["copies"])] * len(wins)
        cols["role"] += [e.get("role", "")] * len(wins)
        for key, v in sc.items():
            cols.setdefault(key, []).extend(v)
    return cols


def mean_median_jaccard(lm: LanguageModel, excerpts: list[dict], *, prefix: int, suffix: int, batch_size: int = 64) -> float:
    """Mean over ``excerpts`` of their sliding-window median Jaccard (the suppression target)."""
    cols = measure_sliding(lm, excerpts, prefix=prefix, suffix=suffix, batch_size=batch_size)
    ex, jac = np.asarray(cols["excerpt"]), np.asarray(cols["jaccard"], dtype=float)
    return float(np.mean([float(np.median(jac[ex == e["id"]])) for e in excerpts]))


def reconstruct(lm: LanguageModel, text: str, *, prefix: int, suffix: int) -> dict[str, Any]:
    """Autoregressive reconstruction from the first ``prefix`` tokens (book.py's autoregressive mode).

    ``verbatim_tokens_from_seed``: tokens after the seed equal to the excerpt before the first
    wrong token; ``longest_verbatim_run_tokens``: longest stretch of generated tokens equal to the
    excerpt at the same position (the run can re-synchronise after a substitution);
    ``exact_windows``: windows whose ``suffix`` tokens are all right.
    """
    bos, ids = B.book_tokens(lm, text)
    wins, gens, recon = B.decode_windows(lm, ids, excerpt_config(prefix, suffix, mode="autoregressive"), bos=bos)
    assert recon is not None
    gen_part, true_part = recon[prefix:], ids[prefix : len(recon)]
    miss = next((i for i, (a, b) in enumerate(zip(gen_part, true_part)) if a != b), len(true_part))
    # every window emits exactly ``suffix`` tokens, so generated and true tokens stay position-aligned
    hit = np.asarray(gen_part, dtype=np.int64) == np.asarray(true_part, dtype=np.int64)
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], hit.astype(int), [0]]))))[::2] if hit.any() else np.array([0])
    sc = B.score_windows(lm, wins, gens)
    ex = np.asarray(sc["exact"], dtype=float)
    return {
        "n_tokens": len(ids), "seed_tokens": prefix, "reconstructable_tokens": len(true_part),
        "verbatim_tokens_from_seed": int(miss), "verbatim_share": miss / max(1, len(true_part)),
        "token_match_share": float(hit.mean()) if len(hit) else None, "longest_verbatim_run_tokens": int(runs.max()),
        "n_windows": len(wins), "exact_windows": stats.rate_ci(int(ex.sum()), len(ex), reason="no windows"),
        "median_jaccard": float(np.median(sc["jaccard"])) if len(ex) else None,
        "first_miss_context": lm.detokenize(ids[prefix + max(0, miss - 8) : prefix + miss + 8]) if miss < len(true_part) else None,
    }
