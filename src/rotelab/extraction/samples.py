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

from rotelab.core.access import Access
from rotelab.core.models import LanguageModel
from rotelab.core.extractable import Extraction, k_extractable  # noqa: F401  (re-used by the workflows)
from rotelab.core.similarity import bleu


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
    out: list[np.ndarray | None] = [None] * len(texts)
    for b in range(0, len(usable), batch_size):
        idx = usable[b : b + batch_size]
        for i, sig in zip(idx, lm.forward_signals([ids[i][:n] for i in idx])):
            # top1[t]: token t + 1 was the model's top choice; the suffix is tokens bos+prefix .. n-1
            out[i] = sig.top1[bos + prefix - 1 : n - 1]
    return out


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
