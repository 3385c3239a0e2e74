"""What a testbed model really memorized: loss AUC and extraction rate by number of exposures."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from rotelab.core import stats
from rotelab.core.cache import SignalCache
from rotelab.core.models import LanguageModel
from rotelab.core.signals import compute_signals
from rotelab.core.extractable import k_extractable


def loss_scores(lm: LanguageModel, samples: list[dict], *, cache: SignalCache | None = None, progress: bool = True) -> np.ndarray:
    """Loss attack score, -NLL (higher = more member-like)."""
    sig = compute_signals(lm, [s["text"] for s in samples], ids=[s["id"] for s in samples], cache=cache, progress=progress)
    return np.array([-g.nll for g in sig])


def evaluate_testbed(lm: LanguageModel, splits: dict[str, list[dict]], *, prefix: int, suffix: int, cache: SignalCache | None = None, progress: bool = True, n_boot: int = 1000) -> dict:
    """Membership (loss) AUC by copies, extraction rate by copies, canary secret extraction."""
    mem, non = splits["members"], splits["nonmembers"]
    s_mem = loss_scores(lm, mem, cache=cache, progress=progress)
    s_non = loss_scores(lm, non, cache=cache, progress=progress)

    def auc(sel_mem, sel_non) -> dict:
        sm, sn = s_mem[sel_mem], s_non[sel_non]
        return stats.summarize(np.r_[sm, sn], np.r_[np.ones(len(sm)), np.zeros(len(sn))], n_boot=n_boot)

    kind_m = np.array([s["kind"] for s in mem])
    kind_n = np.array([s["kind"] for s in non])
    copies = np.array([s["copies"] for s in mem])
    book_non = kind_n == "book"
    out: dict = {"loss_auc_books_by_copies": {}, "extraction_books_by_copies": {}}
    for c in sorted(set(copies[kind_m == "book"].tolist())):
        out["loss_auc_books_by_copies"][str(c)] = auc((kind_m == "book") & (copies == c), book_non)
    out["loss_auc_books_seen_ge4"] = auc((kind_m == "book") & (copies >= 4), book_non)
    out["loss_auc_books_seen_once"] = auc((kind_m == "book") & (copies == 1), book_non)
    out["loss_auc_facts"] = auc(kind_m == "fact", kind_n == "fact")
    out["mean_nll"] = {"members_books": float(-s_mem[kind_m == "book"].mean()), "nonmembers_books": float(-s_non[book_non].mean()), "members_facts": float(-s_mem[kind_m == "fact"].mean()), "holdout_facts": float(-s_non[kind_n == "fact"].mean())}

    # Extraction of book passages (non-members as the control), by copies.
    groups: dict[str, list[str]] = defaultdict(list)
    for s in mem:
        if s["kind"] == "book" and s["copies"] > 1:
            groups[str(s["copies"])].append(s["text"])
    rng = np.random.default_rng(0)
    singles = [s["text"] for s in mem if s["kind"] == "book" and s["copies"] == 1]
    groups["1"] = [singles[i] for i in rng.permutation(len(singles))[:200]]
    groups["0 (non-members)"] = [s["text"] for s in non if s["kind"] == "book"][:200]
    for c, texts in sorted(groups.items(), key=lambda kv: -int(kv[0].split()[0])):
        ex = [e for e in k_extractable(lm, texts, prefix=prefix, suffix=suffix, progress=progress) if e.exact is not None]
        out["extraction_books_by_copies"][c] = stats.rate_ci(sum(e.exact for e in ex), len(ex)) | {"mean_match": float(np.mean([e.score for e in ex])) if ex else None}

    # The target reads "text seen >= 20 times": pool those copy counts.
    ge20 = [v for c, v in out["extraction_books_by_copies"].items() if c.split()[0].isdigit() and int(c.split()[0]) >= 20]
    out["extraction_books_seen_ge20"] = stats.rate_ci(sum(v["hits"] for v in ge20), sum(v["n"] for v in ge20))

    # Canaries: does greedy decoding of the prefix produce the secret?
    can = splits["canaries"]
    prompts = lm.tokenize([c["prefix"] for c in can])
    secret_len = max(len(x) for x in lm.tokenize([" " + c["secret"] for c in can]))
    gens = lm.greedy(prompts, secret_len + 2)
    by: dict[str, list[bool]] = defaultdict(list)
    for c, g in zip(can, gens):
        by[str(c["copies"])].append(c["secret"] in lm.detokenize(g))
    out["canary_secret_extraction_by_copies"] = {k: stats.rate_ci(sum(v), len(v)) for k, v in sorted(by.items(), key=lambda kv: int(kv[0]))}
    out["extraction_prefix_suffix"] = [prefix, suffix]
    return out
