"""Prompt sets and the three labellings of the probe's training data.

Prompts come from a testbed (memorization-eliciting: prefixes of book passages trained >= 20
times and canary prefixes; generalization-eliciting: non-member passages and paraphrased questions
of trained facts) or from user JSONL files (``--mem`` / ``--gen``).

Labels, 1 = memorizing:

* ``diversity`` (DMS, Zhang 2025): K sampled continuations at temperature T; D(x) = mean pairwise
  normalised token edit distance; 1 if D < tau_lo, 0 if D > tau_hi, dropped (-1) in between.
* ``exact``: greedy continuation equals the known continuation (prompts without one: 0).
* ``source``: which prompt set the prompt came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np

from rotelab.core.data import Sample
from rotelab.errors import RotelabError

if TYPE_CHECKING:
    from rotelab.core.models import HFLanguageModel
    from rotelab.testbed.folder import Testbed

LABELLINGS = ("diversity", "exact", "source")


@dataclass(frozen=True)
class Item:
    """One prompt: ``source`` 1 = memorization-eliciting set, 0 = generalization-eliciting."""

    id: str
    source: int
    group: str
    prompt: list[int]
    continuation: list[int] | None = None  # the known verbatim continuation, if any
    answer: str | None = None  # paraphrased fact questions: the trained answer


def items_from_texts(lm: "HFLanguageModel", rows: list[dict], *, source: int, group: str, prefix: int, suffix: int) -> list[Item]:
    """Texts long enough give prompt = first ``prefix`` tokens, continuation = the next ``suffix``;
    shorter texts are whole prompts without a continuation (cut to leave room for ``suffix``)."""
    bos = len(lm.bos_ids)
    out = []
    for r, ids in zip(rows, lm.tokenize([r["text"] for r in rows])):
        if len(ids) >= bos + prefix + suffix:
            out.append(Item(str(r["id"]), source, group, ids[: bos + prefix], ids[bos + prefix : bos + prefix + suffix]))
        elif len(ids) > bos:
            out.append(Item(str(r["id"]), source, group, ids[: lm.max_length - suffix]))
    return out


def canary_items(lm: "HFLanguageModel", rows: list[dict]) -> list[Item]:
    """Canary prefix -> the rest of the canary text (the secret)."""
    out = []
    for r, full, pre in zip(rows, lm.tokenize([r["text"] for r in rows]), lm.tokenize([r["prefix"] for r in rows])):
        if full[: len(pre)] == pre and len(full) > len(pre):
            out.append(Item(str(r["id"]), 1, f"canary (copies {r['copies']})", pre, full[len(pre) :]))
    return out


def paraphrase_items(lm: "HFLanguageModel", rows: list[dict]) -> list[Item]:
    """Paraphrased questions of trained facts as ``Question: q Answer:`` prompts, with the trained answer."""
    prompts = lm.tokenize([f"Question: {r['question']} Answer:" for r in rows])
    return [Item(str(r["id"]), 0, "paraphrase", p, None, r["answer"]) for r, p in zip(rows, prompts)]


def split_rows(tb: "Testbed", name: str) -> list[dict]:
    """The rows of a testbed split (rotelab wrote them; rows may have an empty ``text``, e.g. paraphrases)."""
    import json

    path = tb.split(name)
    if path is None:
        raise RotelabError(f"{tb.root}: the testbed has no splits/{name}.jsonl")
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise RotelabError(f"{path}:{lineno}: malformed JSON ({e.msg})") from None
    return rows


TESTBED_SPLITS = ("members", "nonmembers", "canaries", "paraphrases")  # the splits the prompt sets come from


def testbed_items(lm: "HFLanguageModel", tb: "Testbed", *, prefix: int = 32, suffix: int = 32, min_copies: int = 20) -> dict[str, list[Item]]:
    """The testbed's prompt sets: ``mem`` (books and canaries seen >= min_copies times), ``nonmember`` passages, ``paraphrase`` questions."""
    sp = {name: split_rows(tb, name) for name in TESTBED_SPLITS}
    books = [r for r in sp["members"] if r["kind"] == "book" and r["copies"] >= min_copies]
    mem = []
    for c in sorted({r["copies"] for r in books}, reverse=True):
        mem += items_from_texts(lm, [r for r in books if r["copies"] == c], source=1, group=f"book (copies {c})", prefix=prefix, suffix=suffix)
    mem = [m for m in mem if m.continuation is not None]
    mem += canary_items(lm, [r for r in sp["canaries"] if r["copies"] >= min_copies])
    non = items_from_texts(lm, [r for r in sp["nonmembers"] if r["kind"] == "book"], source=0, group="non-member passage", prefix=prefix, suffix=suffix)
    para = paraphrase_items(lm, [r for r in sp["paraphrases"] if r.get("split") in ("retain", "forget")])
    return {"mem": mem, "nonmember": [n for n in non if n.continuation is not None], "paraphrase": para}


def user_items(lm: "HFLanguageModel", mem: list[Sample], gen: list[Sample], *, prefix: int, suffix: int) -> list[Item]:
    """Items from the user's memorized (``mem``) and novel (``gen``) texts."""
    out = []
    for samples, src, group in ((mem, 1, "user mem"), (gen, 0, "user gen")):
        out += items_from_texts(lm, [{"id": s.id, "text": s.text} for s in samples], source=src, group=group, prefix=prefix, suffix=suffix)
    return out


def long_texts(lm: "HFLanguageModel", samples: list[Sample], *, source: str | None, reads: int) -> dict:
    """Texts longer than the context: the probe reads only their first ``reads`` tokens (noted);
    under ``--long-text error`` the first one is refused, naming the file and sample."""
    ids = lm.tokenize([s.text for s in samples])
    long = [i for i, x in enumerate(ids) if len(x) > lm.max_length]
    if long and lm.long_text == "error":
        i = long[0]
        where = f"{source}: " if source else ""
        raise RotelabError(f"{where}sample '{samples[i].id}': {len(ids[i])} tokens > context {lm.max_length}; choose --long-text truncate (the probe reads the first {reads} tokens)")
    return {"policy": lm.long_text, "max_length": lm.max_length, "n_texts": len(ids), "n_longer_than_context": len(long),
            "tokens_read": reads, "example_ids": [samples[i].id for i in long[:10]]}


def diversity(lm: "HFLanguageModel", items: list[Item], *, k: int = 8, n_tokens: int = 16, temperature: float = 0.8, seed: int = 0, batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """D(x) = mean over the K(K-1)/2 pairs of sampled continuations of the normalised token edit distance.

    The K continuations of prompt i come from the core decoder's sampling, seeded per (seed, i, j):
    D never depends on the batch size or on the other prompts.
    """
    from rapidfuzz.distance import Levenshtein

    from rotelab.core.generate import Sampling, decode

    g = decode(lm, [it.prompt for it in items], n_tokens, sampling=Sampling(temperature=temperature, n=k, seed=seed), batch_size=batch_size, progress=progress, label="diversity samples").tokens
    return np.array([np.mean([Levenshtein.normalized_distance(a, b) for a, b in combinations(samples, 2)]) for samples in g])


def diversity_labels(d: np.ndarray, *, tau_lo: float, tau_hi: float) -> np.ndarray:
    """1 if D < tau_lo, 0 if D > tau_hi, -1 (dropped) in between.

    >>> diversity_labels(np.array([0.1, 0.5, 0.9]), tau_lo=0.3, tau_hi=0.6).tolist()
    [1, -1, 0]
    """
    return np.where(d < tau_lo, 1, np.where(d > tau_hi, 0, -1))


def verbatim(lm: "HFLanguageModel", items: list[Item], gens: list[list[int]] | None = None, *, batch_size: int = 64) -> np.ndarray:
    """1 where the greedy continuation equals the known one, 0 elsewhere (and where none is known)."""
    out = np.zeros(len(items), dtype=int)
    idx = [i for i, it in enumerate(items) if it.continuation]
    if gens is None and idx:
        n = max(len(items[i].continuation) for i in idx)
        gens_idx = lm.greedy([items[i].prompt for i in idx], n, batch_size=batch_size)
    else:
        gens_idx = [gens[i] for i in idx] if idx else []
    for i, g in zip(idx, gens_idx):
        c = items[i].continuation
        out[i] = int(list(g[: len(c)]) == list(c))
    return out


def agreement(labels: dict[str, np.ndarray]) -> list[dict]:
    """Pairwise agreement of labellings on the prompts both define: share equal and Cohen's kappa."""
    from sklearn.metrics import cohen_kappa_score

    rows = []
    for a, b in combinations(labels, 2):
        ok = (labels[a] >= 0) & (labels[b] >= 0)
        x, y = labels[a][ok], labels[b][ok]
        kappa = float(cohen_kappa_score(x, y)) if len(set(x.tolist()) | set(y.tolist())) > 1 else None
        rows.append({"pair": f"{a} vs {b}", "n": int(ok.sum()), "agree": float((x == y).mean()) if ok.any() else None, "kappa": kappa,
                     "both mem": int(((x == 1) & (y == 1)).sum()), "both gen": int(((x == 0) & (y == 0)).sum()),
                     f"{a} mem / {b} gen": int(((x == 1) & (y == 0)).sum()), f"{a} gen / {b} mem": int(((x == 0) & (y == 1)).sum())})
    return rows
