"""Perturbation engine: embedding-neighbour token swaps (Neighbourhood attack and REMIND).

Each of K variants of x replaces each token x_i (i >= 2; the first token is never swapped) with
probability p by its j-th nearest neighbour by cosine similarity of token embeddings; special and
whitespace-only tokens are neither swapped nor used as replacements; every variant has at least
one swap. The embedding matrix comes from the target model when it exposes weights, or from a
separate model with the same tokenizer, so the target can stay query-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from rotelab.core.access import Access
from rotelab.errors import RotelabError

if TYPE_CHECKING:
    from rotelab.core.models import LanguageModel


@dataclass(frozen=True)
class Neighbours:
    """For every vocabulary id, its nearest candidate tokens by cosine: ``table[v, j-1]`` = j-th."""

    table: np.ndarray  # (V, J) int64
    candidate: np.ndarray  # (V,) bool: may be swapped and may replace


def candidate_mask(tokenizer, vocab_size: int) -> np.ndarray:
    """Tokens that may be swapped: not special, not whitespace-only, inside the embedding matrix."""
    mask = np.ones(vocab_size, dtype=bool)
    for t in tokenizer.all_special_ids:
        if 0 <= t < vocab_size:
            mask[t] = False
    for t in range(min(vocab_size, len(tokenizer))):
        if mask[t] and not tokenizer.decode([t]).strip():
            mask[t] = False
    mask[len(tokenizer):] = False  # padded embedding rows have no token
    return mask


def nearest_neighbours(emb: np.ndarray | torch.Tensor, candidate: np.ndarray, *, max_rank: int = 8, chunk: int = 4096) -> np.ndarray:
    """(V, max_rank) ids of each token's nearest candidates by cosine, itself excluded.

    Computed in row chunks so a 150k vocabulary never needs a V x V matrix.
    """
    e = torch.as_tensor(emb, dtype=torch.float32)
    e = e / e.norm(dim=1, keepdim=True).clamp_min(1e-8)  # (V, d)
    cand = torch.as_tensor(candidate)
    if int(cand.sum()) <= max_rank:
        raise RotelabError(f"only {int(cand.sum())} swappable tokens; need more than max rank {max_rank}")
    out = np.empty((len(e), max_rank), dtype=np.int64)
    for a in range(0, len(e), chunk):
        sim = e[a : a + chunk] @ e.T  # (c, V)
        sim[:, ~cand] = -np.inf
        rows = torch.arange(a, min(a + chunk, len(e)))
        sim[rows - a, rows] = -np.inf  # never the token itself
        out[a : a + chunk] = sim.topk(max_rank, dim=1).indices.numpy()
    return out


def embedding_matrix(lm: "LanguageModel", embedding_from: "LanguageModel | Path | None" = None) -> tuple[np.ndarray, object]:
    """(V, d) input embeddings and the tokenizer they belong to.

    From ``embedding_from`` (a loaded model, or a model folder, with the same tokenizer) when
    given, else from the target, which then needs weight access.
    """
    if embedding_from is not None:
        from rotelab.core.models import LanguageModel, load_model

        src = embedding_from if isinstance(embedding_from, LanguageModel) else load_model(embedding_from, device="cpu")
        probe = ["The quick brown fox, 1994.", "Question: where? Answer: here. \u00e9\u4e2d"]
        if src.tokenize(probe) != lm.tokenize(probe):
            raise RotelabError(f"--embedding-model {getattr(src, 'source', None) or embedding_from}: its tokenizer differs from the target model's")
        return src.model.get_input_embeddings().weight.detach().float().cpu().numpy(), src.tokenizer
    if Access.WEIGHTS not in lm.access:
        raise RotelabError(
            f"embedding-neighbour swaps need the token embeddings, which the {lm.backend} backend does not offer: "
            "pass --embedding-model (a model folder with the same tokenizer)"
        )
    return lm.model.get_input_embeddings().weight.detach().float().cpu().numpy(), lm.tokenizer


def build_neighbours(lm: "LanguageModel", *, max_rank: int = 8, embedding_from: "LanguageModel | Path | None" = None) -> Neighbours:
    """The neighbour table of the target's vocabulary (embeddings as :func:`embedding_matrix`)."""
    emb, tok = embedding_matrix(lm, embedding_from)
    cand = candidate_mask(tok, len(emb))
    return Neighbours(nearest_neighbours(emb, cand, max_rank=max_rank), cand)


def make_variants(ids: Sequence[int], nb: Neighbours, *, k: int, p: float, j: int, rng: np.random.Generator) -> tuple[list[list[int]], np.ndarray]:
    """K variants of one token sequence, and their (K, T) swap masks.

    Each eligible position (index >= 1, a candidate token) is swapped with probability ``p`` by its
    ``j``-th neighbour; a variant with no swap gets one at a uniformly chosen eligible position.
    A sequence with no eligible position is returned unchanged (mask all False).
    """
    x = np.asarray(ids, dtype=np.int64)
    eligible = np.zeros(len(x), dtype=bool)
    eligible[1:] = nb.candidate[x[1:]]
    pos = np.flatnonzero(eligible)
    masks = np.zeros((k, len(x)), dtype=bool)
    if len(pos):
        masks[:, pos] = rng.random((k, len(pos))) < p
        for r in np.flatnonzero(~masks.any(1)):
            masks[r, rng.choice(pos)] = True
    repl = nb.table[x, j - 1]  # (T,)
    return [np.where(m, repl, x).tolist() for m in masks], masks

