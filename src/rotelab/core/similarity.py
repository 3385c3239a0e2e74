"""Text similarity between a reference s and a generation g (higher = more similar, in [0, 1]).

The panel of *Memorization: A Close Look at Books* (Ma et al. 2025) plus exact match:

=============== ==============================================================================
exact           s == g (or token ids equal)
jaccard         |W(s) & W(g)| / |W(s) | W(g)| over sets of lower-cased word tokens
cosine          cosine of bag-of-words count vectors (lower-cased word tokens)
levenshtein     1 - d / max(|s|, |g|), d = character edit distance (rapidfuzz)
bleu            sentence BLEU-4, smoothing method 1 (nltk), over lower-cased word tokens
rouge_l         LCS F1 over words (Google's rouge-score)
sequence_matcher difflib ratio 2M / (|s| + |g|)
=============== ==============================================================================
"""

from __future__ import annotations

import difflib
import math
import re
from collections import Counter
from functools import lru_cache
from typing import Callable, Sequence

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-cased word tokens.

    >>> words("Alice's Adventures, in Wonderland!")
    ['alice', 's', 'adventures', 'in', 'wonderland']
    """
    return _WORD.findall(text.lower())


def exact(s: str | Sequence[int], g: str | Sequence[int]) -> float:
    return float(list(s) == list(g)) if not isinstance(s, str) else float(s == g)


def jaccard(s: str, g: str) -> float:
    """
    >>> jaccard("a b c", "b c d")
    0.5
    """
    a, b = set(words(s)), set(words(g))
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def cosine(s: str, g: str) -> float:
    """
    >>> round(cosine("a a b", "a b b"), 4)
    0.8
    """
    a, b = Counter(words(s)), Counter(words(g))
    if not a and not b:
        return 1.0
    dot = sum(a[w] * b[w] for w in a)
    na, nb = math.sqrt(sum(v * v for v in a.values())), math.sqrt(sum(v * v for v in b.values()))
    return dot / (na * nb) if na and nb else 0.0


def levenshtein(s: str, g: str) -> float:
    """
    >>> levenshtein("kitten", "sitting")  # d = 3, max len 7
    0.5714285714285714
    """
    from rapidfuzz.distance import Levenshtein

    return float(Levenshtein.normalized_similarity(s, g))


def bleu(s: str, g: str) -> float:
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    ref, hyp = words(s), words(g)
    if not ref or not hyp:
        return float(ref == hyp)
    return float(sentence_bleu([ref], hyp, smoothing_function=SmoothingFunction().method1))


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(s: str, g: str) -> float:
    """
    >>> rouge_l("the cat sat on the mat", "the cat on the mat")
    0.9090909090909091
    """
    return float(_rouge().score(s, g)["rougeL"].fmeasure)


def sequence_matcher(s: str, g: str) -> float:
    """
    >>> sequence_matcher("abcd", "abce")
    0.75
    """
    return difflib.SequenceMatcher(None, s, g, autojunk=False).ratio()


METRICS: dict[str, Callable[[str, str], float]] = {
    "exact": exact,
    "jaccard": jaccard,
    "cosine": cosine,
    "levenshtein": levenshtein,
    "bleu": bleu,
    "rouge_l": rouge_l,
    "sequence_matcher": sequence_matcher,
}


def panel(s: str, g: str) -> dict[str, float]:
    """Every metric of the panel for one (reference, generation) pair."""
    return {name: fn(s, g) for name, fn in METRICS.items()}
