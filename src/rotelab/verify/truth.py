"""Per-token NLL of an answer given its question, and TOFU's truth ratio on a perturbed-answers set.

A row of ``perturbed_answers`` (the testbed's split, or a user's JSONL) holds ``text`` (the
trained question-and-answer text), ``answer`` (its tail) and ``perturbed`` (wrong answers of the
same type): the prompt is ``text`` without its answer, so no template is assumed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rotelab.core.batching import map_sorted
from rotelab.core.signals import answer_start
from rotelab.errors import RotelabError
from rotelab.verify.metrics import truth_ratio

if TYPE_CHECKING:
    from rotelab.core.data import Sample
    from rotelab.core.models import LanguageModel


def check_rows(rows: list["Sample"], where: str) -> None:
    """One line naming the row whose fields a truth ratio cannot be computed from."""
    for s in rows:
        a, wrong = s.meta.get("answer"), s.meta.get("perturbed")
        if not (isinstance(a, str) and a and s.text.endswith(a)):
            raise RotelabError(f"{where}: row '{s.id}': field 'answer' must be a non-empty string that ends its 'text'")
        if not (isinstance(wrong, list) and wrong and all(isinstance(w, str) and w for w in wrong)):
            raise RotelabError(f"{where}: row '{s.id}': field 'perturbed' must be a non-empty list of strings")
    if len({len(r.meta["perturbed"]) for r in rows}) > 1:
        raise RotelabError(f"{where}: every row needs the same number of 'perturbed' answers")


def answer_nll(lm: "LanguageModel", prompts: list[str], answers: list[str], *, batch_size: int = 32) -> np.ndarray:
    """(n,) mean NLL per answer token of ``prompt + answer`` given ``prompt`` (the answer's tokens
    are those after the longest common token prefix with the prompt alone)."""
    full = lm.tokenize([p + a for p, a in zip(prompts, answers)])
    pre = lm.tokenize(prompts)
    starts = [answer_start(f, p) for f, p in zip(full, pre)]
    ids = [f[: lm.max_length] for f in full]
    logps = map_sorted(lm.forward_logp, ids, batch_size=batch_size)  # logp[t] = log p(x_{t+1} | x_<=t)
    return np.array([-float(np.mean(lp[k - 1 :])) if len(lp) >= k else np.nan for lp, k in zip(logps, starts)])


def truth_ratios(lm: "LanguageModel", rows: list["Sample"], *, batch_size: int = 32) -> np.ndarray:
    """(n,) truth ratio per row (:func:`rotelab.verify.metrics.truth_ratio`)."""
    prompts = [s.text[: len(s.text) - len(s.meta["answer"])] for s in rows]
    true = answer_nll(lm, prompts, [s.meta["answer"] for s in rows], batch_size=batch_size)
    m = len(rows[0].meta["perturbed"])
    wrong = answer_nll(lm, [p for p in prompts for _ in range(m)], [w for s in rows for w in s.meta["perturbed"]], batch_size=batch_size)
    return truth_ratio(true, wrong.reshape(len(rows), m))
