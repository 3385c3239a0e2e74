"""Per-sample extraction measures, on top of the core's batched greedy decoding and signals.

* k-extractable (Carlini et al. 2023; Biderman et al. 2023, Pythia): the greedy continuation of the
  first ``prefix`` tokens reproduces the next ``suffix`` tokens exactly; score = share matched.
* exact memorization (Tirumala et al. 2022): EM = (1/T) sum_t 1[argmax p(. | x_<t) = x_t] over the
  T suffix tokens, teacher forced.
* extraction strength (Carlini et al. 2021; OpenUnlearning): ES = 1 - k*/T, k* the smallest k with
  teacher-forced argmax[k:] = labels[k:], and k* = T when no suffix matches, so ES is in [0, 1]
  (OpenUnlearning leaves k* = T - 1 there, so its ES never drops below 1/T).
* regurgitation (memaudit 0.2.0): the greedy text is flagged if equal to or a substring of the true
  suffix (or vice versa), or sentence BLEU > 0.75, or a sliding-window normalised edit distance <= 0.10.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rotelab.core.batching import map_sorted
from rotelab.core.data import Sample
from rotelab.core.extractable import Extraction, k_extractable  # noqa: F401  (re-used by the workflows)
from rotelab.core.models import LanguageModel
from rotelab.core.similarity import bleu
from rotelab.errors import RotelabError


@dataclass(frozen=True)
class SamplesConfig:
    """Each sample's first ``prefix_tokens`` (after any BOS) prompt a greedy ``suffix_tokens``."""

    prefix_tokens: int = 32
    suffix_tokens: int = 32
    batch_size: int = 32

    def validate(self) -> None:
        """One-line errors naming the option and value."""
        for name in ("prefix_tokens", "suffix_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise RotelabError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(self, name)}")

    def check_fits(self, lm: LanguageModel) -> None:
        """BOS + prefix + suffix must fit the model's context."""
        bos = len(lm.bos_ids)
        if bos + self.prefix_tokens + self.suffix_tokens > lm.max_length:
            with_bos = f" + BOS {bos}" if bos else ""
            raise RotelabError(f"--prefix-tokens {self.prefix_tokens} + --suffix-tokens {self.suffix_tokens}{with_bos} exceed the model's context of {lm.max_length} tokens")


def exact_memorization(hits: np.ndarray) -> float:
    """EM = mean of teacher-forced argmax hits over the target tokens.

    >>> exact_memorization(np.array([True, False, True, True]))
    0.75
    """
    return float(np.mean(hits))


def extraction_strength(hits: np.ndarray) -> float:
    """ES = 1 - k*/T with k* the smallest k such that hits[k:] are all true; k* = T if none.

    >>> extraction_strength(np.array([False, True, True, True]))
    0.75
    >>> extraction_strength(np.array([True, True, False]))  # last token missed: k* = T
    0.0
    """
    T = len(hits)
    # hits[k:] all true  <=>  k > index of the last miss
    misses = np.flatnonzero(~np.asarray(hits, dtype=bool))
    k_star = 0 if len(misses) == 0 else int(misses[-1]) + 1
    return 1.0 - k_star / T


def teacher_forced_hits(lm: LanguageModel, texts: list[str], *, prefix: int, suffix: int, batch_size: int = 32) -> list[np.ndarray | None]:
    """Per text, for each suffix token: is it the model's argmax given the true preceding tokens?"""
    ids = lm.tokenize(texts)
    bos = len(lm.bos_ids)
    n = bos + prefix + suffix
    usable = [i for i, x in enumerate(ids) if len(x) >= n]

    def hits(batch: list[list[int]]) -> list[np.ndarray]:
        # top1[t]: token t + 1 was the model's top choice; the suffix is tokens bos+prefix .. n-1
        return [sig.top1[bos + prefix - 1 : n - 1] for sig in lm.forward_signals(batch)]

    out: list[np.ndarray | None] = [None] * len(texts)
    for i, h in zip(usable, map_sorted(hits, [ids[i][:n] for i in usable], batch_size=batch_size)):
        out[i] = h
    return out


def longer_than_context(lm: LanguageModel, samples: list[Sample]) -> list[tuple[str, int]]:
    """(id, token count) of every sample longer than the model's context (BOS included)."""
    return [(s.id, len(x)) for s, x in zip(samples, lm.tokenize([s.text for s in samples])) if len(x) > lm.max_length]


def _min_window_edit(s: str, g: str) -> float:
    """Smallest normalised Levenshtein distance between the shorter text and any equally long
    window of the longer one (memaudit's sliding-window rule; rapidfuzz gives no windowed variant)."""
    from rapidfuzz.distance import Levenshtein

    short, long = (s, g) if len(s) <= len(g) else (g, s)
    if not short:
        return 0.0 if not long else 1.0
    return min(Levenshtein.normalized_distance(short, long[j : j + len(short)]) for j in range(len(long) - len(short) + 1))


def regurgitated(s: str, g: str, *, bleu_above: float = 0.75, edit_at_most: float = 0.10) -> bool:
    """memaudit's rule: exact or substring match, or BLEU > 0.75, or windowed edit distance <= 0.10.

    >>> regurgitated("the cat sat on the mat", "the cat sat on the mat and")
    True
    >>> regurgitated("the cat sat on the mat", "a dog ran in the park")
    False
    """
    s_, g_ = s.strip(), g.strip()
    if s_ and g_ and (s_ in g_ or g_ in s_):
        return True
    return s_ == g_ or bleu(s, g) > bleu_above or _min_window_edit(s_, g_) <= edit_at_most
