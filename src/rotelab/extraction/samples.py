"""Per-sample extraction measures (Pythia-style), on top of the core's batched greedy decoding.

k-extractable (Carlini et al. 2023; Biderman et al. 2023): the greedy continuation of the first
``prefix`` tokens of a training text reproduces the next ``suffix`` tokens exactly. The
memorization score is the share of the ``suffix`` positions matched (1.0 = extractable).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rotelab.core.models import LanguageModel
from rotelab.core.access import Access


@dataclass(frozen=True)
class Extraction:
    """Per text: ``score`` share of suffix tokens matched; ``exact`` all matched; None if too short."""

    score: float | None
    exact: bool | None
    generated: list[int] | None


def k_extractable(lm: LanguageModel, texts: list[str], *, prefix: int = 32, suffix: int = 32, batch_size: int = 64, progress: bool = False) -> list[Extraction]:
    """Greedy ``suffix`` tokens after the first ``prefix`` tokens of each text vs the true ones.

    The prefix counts tokens after any BOS the tokenizer prepends. Texts with fewer than
    ``prefix + suffix`` tokens get ``Extraction(None, None, None)``.
    """
    lm.require(Access.GENERATION, method="k-extractability")
    ids = lm.tokenize(texts)
    bos = _bos_len(lm)
    usable = [i for i, x in enumerate(ids) if len(x) >= bos + prefix + suffix]
    prompts = [ids[i][: bos + prefix] for i in usable]
    gens = lm.greedy(prompts, suffix, batch_size=batch_size, progress=progress) if prompts else []
    out = [Extraction(None, None, None)] * len(texts)
    for i, g in zip(usable, gens):
        target = ids[i][bos + prefix : bos + prefix + suffix]
        match = np.asarray(g) == np.asarray(target)
        out[i] = Extraction(float(match.mean()), bool(match.all()), g)
    return out


def _bos_len(lm: LanguageModel) -> int:
    """1 when the tokenizer prepends a special token to every text, else 0."""
    a, b = lm.tokenize(["a", "b"])
    return 1 if len(a) > 1 and a[0] == b[0] else 0
