"""Neighbours from a masked language model: the generator of Mattern et al. (2023), as MIMIR's
BERT neighbourhood (``neighbor_strategy="deterministic"``, ``original_tokenization_swap=True``).

For each position i >= 1 of the MLM's tokenization of x (special tokens skipped), the MLM reads
the text with dropout (p = 0.7) on position i's embedding instead of a mask token, so it still
sees a trace of the original word; each of its 6 most likely tokens c at i other than x_i is a
candidate one-token swap, scored

    s(i, c) = p_i(c) / (1 - p_i(x_i))          (1 - 0.9 in the denominator when p_i(x_i) = 1)

and the K highest-scoring swaps (ties in position order) give K neighbours, each x with one
token replaced in place in the text (``##`` removed from word pieces). As in the authors' and
MIMIR's code, the embedding is the output of the model's embedding module (word + position
embeddings, normalised) fed back as ``inputs_embeds``, which the model embeds again; a model
without such a module uses its word embeddings. Two corrections to MIMIR: special tokens are
neither replaced (MIMIR swaps the final ``[SEP]``, whose empty offset inserts text at the start)
nor used as replacements.

Dropout is drawn from a generator seeded by (seed, token ids), so a text's neighbours do not
depend on the batch or on the other texts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rotelab.errors import RotelabError

DROPOUT = 0.7  # embedding dropout at the scored position (Mattern et al.; MIMIR's token_dropout)
TOP = 6  # candidates read per position (the token itself is dropped from them)


@dataclass(frozen=True)
class MaskedLM:
    """A loaded masked LM and where it came from (its fingerprint enters the run's identity)."""

    model: Any
    tokenizer: Any
    source: str
    fingerprint: str

    @classmethod
    def load(cls, path: Path | str, *, trust_remote_code: bool = False, allow_pickle: bool = False) -> "MaskedLM":
        from rotelab.core.models import load_masked_lm

        model, tok, fp = load_masked_lm(path, device="cpu", trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
        if not getattr(tok, "is_fast", False):
            raise RotelabError(f"--neighbour-model {path}: its tokenizer has no fast (Rust) version, which the in-place swaps need for character offsets")
        return cls(model, tok, str(path), fp)

    @property
    def max_length(self) -> int:
        n = getattr(self.model.config, "max_position_embeddings", None) or 512
        return int(min(n, self.tokenizer.model_max_length))

    def encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids and character offsets (truncated to the MLM's context)."""
        enc = self.tokenizer(text, truncation=True, max_length=self.max_length, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def text_seed(seed: int, ids: Sequence[int]) -> int:
    h = hashlib.sha256(f"{seed}:".encode() + np.asarray(ids, dtype=np.int64).tobytes()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def _embed(model, ids):
    """The embedding module's output, (1, T, d), as the authors' code takes it; else word embeddings."""
    module = getattr(getattr(model, "base_model", None), "embeddings", None)
    if module is not None:
        try:
            return module(input_ids=ids)
        except TypeError:
            pass
    return model.get_input_embeddings()(ids)


def swap_scores(mlm: MaskedLM, ids: Sequence[int], *, seed: int, rows: int = 8192) -> list[tuple[int, int, float]]:
    """(position, candidate id, score) of every candidate swap, in position then rank order."""
    import torch

    special = set(mlm.tokenizer.all_special_ids)  # never a replacement
    frame = special - {mlm.tokenizer.unk_token_id}  # never replaced ([CLS], [SEP], padding: no span in the text)
    pos = [i for i in range(1, len(ids)) if ids[i] not in frame]
    if not pos:
        return []
    x = torch.tensor([list(ids)])  # (1, T)
    T = x.shape[1]
    out: list[tuple[int, int, float]] = []
    with torch.no_grad():
        emb = _embed(mlm.model, x)  # (1, T, d)
        g = torch.Generator().manual_seed(text_seed(seed, ids))
        keep = (torch.rand(len(pos), emb.shape[-1], generator=g) >= DROPOUT).float() / (1 - DROPOUT)  # (P, d) dropout masks
        step = max(1, rows // T)
        for a in range(0, len(pos), step):
            chunk = torch.tensor(pos[a : a + step])  # (c,)
            r = torch.arange(len(chunk))
            e = emb.repeat(len(chunk), 1, 1)  # (c, T, d)
            e[r, chunk] = e[r, chunk] * keep[a : a + step]
            probs = torch.softmax(mlm.model(inputs_embeds=e).logits[r, chunk].float(), dim=-1)  # (c, V)
            orig = probs[r, x[0, chunk]]  # (c,)
            top_p, top_c = probs.topk(TOP, dim=-1)  # (c, TOP)
            for row, i in enumerate(chunk.tolist()):
                denom = 1 - 0.9 if orig[row].item() == 1 else 1 - orig[row].item()
                for p, c in zip(top_p[row].tolist(), top_c[row].tolist()):
                    if c != ids[i] and c not in special:
                        out.append((i, c, p / denom))
    return out


def best_swaps(mlm: MaskedLM, ids: Sequence[int], k: int, *, seed: int) -> np.ndarray:
    """(k', 2) [position, candidate] of the k highest-scoring swaps (k' <= k when fewer exist)."""
    scored = swap_scores(mlm, ids, seed=seed)
    best = sorted(range(len(scored)), key=lambda j: -scored[j][2])[:k]  # stable: ties in position order
    return np.array([[scored[j][0], scored[j][1]] for j in best], dtype=np.int64).reshape(-1, 2)


def apply_swap(mlm: MaskedLM, text: str, offsets: Sequence[tuple[int, int]], position: int, candidate: int) -> str:
    """x with the token at ``position`` replaced in place by ``candidate``'s text.

    >>> class Tok:
    ...     def decode(self, ids): return "##ing"
    >>> apply_swap(MaskedLM(None, Tok(), "", ""), "the cat sat", [(0, 0), (0, 3), (4, 7), (8, 11)], 2, 7)
    'the ing sat'
    """
    start, end = offsets[position]
    return text[:start] + mlm.tokenizer.decode([candidate]).replace("##", "") + text[end:]
