"""DC-PDD (Zhang et al., EMNLP 2024): token probabilities calibrated by token frequencies in a
reference corpus ("divergence-based calibration").

    f(v)   = (1 + c(v)) / (sum_u c(u) + V)           Laplace-smoothed frequency; c(v) = count of
                                                      token v in the corpus (each text's first
                                                      1024 tokens, special tokens included)
    a_t    = min(p(x_t | x_<t) * log(1 / f(x_t)), a)  for the first occurrence of each token
                                                      among x_2..x_T
    score  = mean_t a_t                               higher = more member-like

as the authors' code (zhang-wei-chao/DC-PDD, ``com_det_sco.py``; a = 0.01) and MIMIR's
``dc_pdd.py`` compute it, re-signed (both return -mean and treat lower as member). MIMIR scores
x_1 too, after an EOS it prepends; the authors' code and rotelab score x_2..x_T, the tokens of the
signal pass. V is the model's vocabulary (embedding rows).

The authors and MIMIR count tokens in C4, which rotelab cannot download: the corpus is declared
(``--frequency-corpus FILE.jsonl``), and for a testbed model defaults to the testbed's non-member
text (``nonmembers.jsonl`` and ``prefix_pool.jsonl``) minus every scored text; the manifest says
which. It never includes a scored text (the API refuses overlap).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from rotelab.membership.attacks import register_attack

if TYPE_CHECKING:
    from rotelab.core.models import LanguageModel
    from rotelab.core.signals import TokenSignals
    from rotelab.membership.context import AttackContext

MAX_TOKENS = 1024  # tokens counted per corpus text (the authors' max_tok)


def token_frequencies(ids: Sequence[Sequence[int]], vocab_size: int, *, max_tokens: int = MAX_TOKENS) -> np.ndarray:
    """(V,) Laplace-smoothed frequencies (1 + c(v)) / (sum c + V) of the tokens of ``ids``
    (each list cut to its first ``max_tokens``).

    >>> token_frequencies([[0, 1, 1], [1]], 4).tolist()  # counts 1, 3, 0, 0 of 4 tokens
    [0.25, 0.5, 0.125, 0.125]
    """
    counts = np.zeros(vocab_size, dtype=np.float64)
    for x in ids:
        np.add.at(counts, np.asarray(x[:max_tokens], dtype=np.int64), 1.0)
    return (1.0 + counts) / (counts.sum() + vocab_size)


def dcpdd_score(logp: np.ndarray, targets: np.ndarray, freq: np.ndarray, *, a: float = 0.01) -> float:
    """DC-PDD: mean over first occurrences of min(p_t log(1 / f(x_t)), a).

    ``logp`` (T-1,) log p(x_t | x_<t) of the ``targets`` x_2..x_T; ``freq`` (V,) from
    :func:`token_frequencies`.

    >>> f = np.array([0.5, 0.25, 0.25])
    >>> round(dcpdd_score(np.log([0.001, 0.002, 0.5]), np.array([1, 1, 2]), f, a=0.01), 6)  # (0.001 ln 4 + 0.01) / 2
    0.005693
    """
    _, first = np.unique(targets, return_index=True)  # (U,) first position of each token
    ce = np.exp(logp[first].astype(np.float64)) * -np.log(freq[targets[first]])
    return float(np.minimum(ce, a).mean())


def corpus_frequencies(lm: "LanguageModel", texts: Sequence[str]) -> tuple[np.ndarray, int]:
    """The smoothed frequency table of a corpus under the model's tokenizer, and its token count."""
    from rotelab.core.models import vocab_size

    ids = lm.tokenize(list(texts))
    return token_frequencies(ids, vocab_size(lm)), sum(min(len(x), MAX_TOKENS) for x in ids)


def score_all(signals: Sequence["TokenSignals"], freq: np.ndarray, a: float) -> np.ndarray:
    """DC-PDD of each text's cached signals (its targets are token_ids[1:], as far as scored)."""
    return np.array([dcpdd_score(s.logp, s.token_ids[1 : len(s.logp) + 1], freq, a=a) for s in signals])


@register_attack("dcpdd", requires=("frequency_corpus",), order=45)
def dcpdd(ctx: "AttackContext") -> np.ndarray:
    """Mean over first-occurrence tokens of min(p(x_t) log(1/f(x_t)), a), f from a reference corpus (Zhang et al. 2024); no extra model pass."""
    texts = ctx.resource("frequency_corpus")
    freq, n_tokens = ctx.memo("dcpdd_frequencies", lambda: corpus_frequencies(ctx.lm, texts))
    ctx.record({"corpus_texts": len(texts), "corpus_tokens": n_tokens, "a": ctx.config.dcpdd_a})
    return score_all(ctx.signals, freq, ctx.config.dcpdd_a)
