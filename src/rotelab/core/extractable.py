"""k-extractability (Carlini et al. 2023; Biderman et al. 2023, Pythia): does the greedy
continuation of a text's first ``prefix`` tokens reproduce its next ``suffix`` tokens exactly?

The one decoding-based memorization measure the testbed, extraction and unlearning verification
share, on top of the core decoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rotelab.core.access import Access
from rotelab.core.models import LanguageModel


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
    bos = len(lm.bos_ids)
    usable = [i for i, x in enumerate(ids) if len(x) >= bos + prefix + suffix]
    prompts = [ids[i][: bos + prefix] for i in usable]
    gens = lm.greedy(prompts, suffix, batch_size=batch_size, progress=progress) if prompts else []
    out = [Extraction(None, None, None)] * len(texts)
    for i, g in zip(usable, gens):
        target = ids[i][bos + prefix : bos + prefix + suffix]
        match = np.asarray(g) == np.asarray(target)
        out[i] = Extraction(float(match.mean()), bool(match.all()), g)
    return out
