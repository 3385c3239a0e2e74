"""SaMIA (Kaneko et al. 2024, "Sampling-based Pseudo-Likelihood for Membership Inference
Attacks"): generation access only. The model continues the first half of x; a member's
continuations reproduce more of its true second half.

    prefix, suffix = the first int(n * 0.5) whitespace words of x, the rest
    c_1..c_m       = m = 10 sampled continuations of prefix (temperature 1, top-k 50, top-p 1)
    samia(x)       = mean_j ROUGE-1 recall(c_j, suffix)
    samia_zlib(x)  = mean_j ROUGE-1 recall(c_j, suffix) * zlib bytes(c_j)

as the authors' code (nlp-titech/samia: ``sampling.py``, ``eval_samia.py``) computes them: ROUGE-1
recall over whitespace words, case-sensitive, unstemmed (their own ``rouge_n``); the zlib variant
multiplies by the compressed size of the candidate, so repetitive candidates weigh less.
Higher = more member-like.

The authors sample up to 1024 tokens (prompt + continuation, ``max_length=1024``) and stop at EOS;
rotelab's shared decoder (:func:`rotelab.core.generate.decode`) samples exactly
``W - len(prompt)`` new tokens, W = min(1024, context), with top-k applied by a decode hook. The
candidate is the continuation's words (the authors drop the prompt's word count from the decoded
prompt + continuation). A text longer than W tokens is split within its first W tokens, the
part the model scores, and counted in the details. Each text's samples are seeded by (seed, its
prompt), so they do not depend on the batch or on the other texts.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import Counter
from typing import TYPE_CHECKING, Sequence

import numpy as np

from rotelab.core.access import Access
from rotelab.errors import RotelabError
from rotelab.membership.attacks import register_attack

if TYPE_CHECKING:
    import torch

    from rotelab.membership.context import AttackContext

MAX_LENGTH = 1024  # prompt + continuation tokens, the authors' max_length


def split_words(text: str, ratio: float) -> tuple[str, list[str]]:
    """(prompt text, suffix words): the first int(n * ratio) whitespace words, and the rest.

    >>> split_words("a b  c d e", 0.5)
    ('a b', ['c', 'd', 'e'])
    """
    words = text.split()
    k = int(len(words) * ratio)
    return " ".join(words[:k]), words[k:]


def rouge1_recall(candidate: Sequence[str], reference: Sequence[str]) -> float:
    """Share of the reference's words (with multiplicity) the candidate contains: the authors'
    ``rouge_n(candidate, reference, n=1)``; 0 when either is empty.

    >>> rouge1_recall("the cat the".split(), "the the dog".split())  # 2 of 3
    0.6666666666666666
    """
    if not candidate or not reference:
        return 0.0
    overlap = Counter(candidate) & Counter(reference)
    return sum(overlap.values()) / len(reference)


def samia_score(candidates: Sequence[str], suffix: Sequence[str], *, use_zlib: bool = False) -> float:
    """Mean over candidates of ROUGE-1 recall of the suffix (times zlib bytes of the candidate's words).

    >>> samia_score(["c d x", "y"], ["c", "d"])  # (1 + 0) / 2
    0.5
    """
    scores = []
    for c in candidates:
        words = c.split()
        r = rouge1_recall(words, suffix)
        scores.append(r * len(zlib.compress(" ".join(words).encode("utf-8"))) if use_zlib else r)
    return float(np.mean(scores))


def check_texts(ctx: "AttackContext") -> None:
    """Refuse a text with no prompt word or no suffix word."""
    for i, t in enumerate(ctx.texts):
        prompt, suffix = split_words(t, ctx.config.samia_prefix_ratio)
        if not prompt or not suffix:
            raise RotelabError(f"attack 'samia': text {i} ('{t[:40]}') has too few words to split into a prompt and a suffix at ratio {ctx.config.samia_prefix_ratio}")


def prompt_seed(seed: int, prompt: Sequence[int]) -> int:
    h = hashlib.sha256(f"{seed}:".encode() + np.asarray(prompt, dtype=np.int64).tobytes()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 62) - 1)


def top_k_hook(k: int):
    """A decode hook that keeps only the k largest logits of each step (top-k sampling)."""
    from rotelab.core.generate import DecodeHook

    class TopK(DecodeHook):
        def logits(self, step: int, z: "torch.Tensor", inputs, handle) -> "torch.Tensor":  # z: (R, V)
            if k >= z.shape[-1]:
                return z
            kth = z.topk(k, dim=-1).values[:, -1:]  # (R, 1)
            return z.masked_fill(z < kth, float("-inf"))

    return TopK()


def continuations(ctx: "AttackContext") -> tuple[list[list[str]], list[list[str]], int]:
    """Per text, its sampled continuations (texts) and its suffix words; the number of texts cut
    to their first W tokens."""
    from rotelab.core.generate import Sampling, decode

    lm, c = ctx.lm, ctx.config
    total = min(MAX_LENGTH, lm.max_length)  # W
    long = [len(s.token_ids) > total for s in ctx.signals]
    texts = [lm.detokenize(s.token_ids[:total]) if cut else t for s, t, cut in zip(ctx.signals, ctx.texts, long)]
    split = [split_words(t, c.samia_prefix_ratio) for t in texts]
    prompts = [p[: total - 1] for p in lm.tokenize([p for p, _ in split])]  # at least one new token
    hook = top_k_hook(c.samia_top_k)

    def sample(batch: list[list[int]]) -> list[np.ndarray]:
        out = []
        for p in batch:  # one decode per prompt: its seed is its own
            s = Sampling(temperature=c.samia_temperature, top_p=1.0, n=c.samia_samples, seed=prompt_seed(c.seed, p))
            out.append(np.array(decode(lm, [p], total - len(p), sampling=s, hook=hook, batch_size=c.samia_samples).tokens[0], dtype=np.int64).reshape(-1))
        return out

    toks = ctx.checkpointed("samia", prompts, sample)
    samples = [[lm.detokenize(row.tolist()) for row in t.reshape(c.samia_samples, -1)] for t in toks]
    return samples, [s for _, s in split], sum(long)


def samia_scores(ctx: "AttackContext", *, use_zlib: bool) -> np.ndarray:
    texts, suffixes, cut = ctx.memo("samia", lambda: continuations(ctx))
    c = ctx.config
    ctx.record({"samples": c.samia_samples, "temperature": c.samia_temperature, "top_k": c.samia_top_k, "prefix_ratio": c.samia_prefix_ratio,
                "texts_cut": cut, **({"note": f"{ctx.attack}: {cut} texts longer than {min(MAX_LENGTH, ctx.lm.max_length)} tokens were split within their first {min(MAX_LENGTH, ctx.lm.max_length)} tokens"} if cut else {})})
    return np.array([samia_score(t, s, use_zlib=use_zlib) for t, s in zip(texts, suffixes)])


@register_attack("samia", needs=Access.GENERATION, order=95, check=check_texts)
def samia(ctx: "AttackContext") -> np.ndarray:
    """Mean ROUGE-1 recall of the true second half by sampled continuations of the first (Kaneko et al. 2024); generation only."""
    return samia_scores(ctx, use_zlib=False)


@register_attack("samia_zlib", needs=Access.GENERATION, order=96, check=check_texts)
def samia_zlib(ctx: "AttackContext") -> np.ndarray:
    """SaMIA with each candidate's ROUGE-1 recall weighted by its zlib size (Kaneko et al. 2024); shares samia's samples."""
    return samia_scores(ctx, use_zlib=True)
