"""ReCaLL (Xie et al. 2024): LL(x | P) / LL(x) with P a prefix of known non-members
(``--prefix-pool``; a testbed ships one in ``splits/prefix_pool.jsonl``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rotelab.membership.attacks import register_attack

if TYPE_CHECKING:
    from rotelab.membership.context import AttackContext


def recall_score(ll: float, ll_prefixed: float) -> float:
    """ReCaLL (Xie et al. 2024): LL(x | P) / LL(x), LL = mean log-likelihood (negative), P = known
    non-member prefix. Members lose more likelihood under a non-member prefix: ratio > 1."""
    return ll_prefixed / min(ll, -1e-8)


def prefixed_ll(ctx: "AttackContext") -> tuple[np.ndarray, np.ndarray]:
    """(LL(x | P), LL(x)) per text, mean log-lik over the same tokens 2..n of x.

    P (the first ``recall_shots`` pool passages) keeps at least a quarter of the context: a
    longer text is cut to the first n = context - |P| tokens for both figures.
    """
    lm = ctx.lm
    bos = lm.bos_ids
    pool = ctx.resource("prefix_pool")
    prefix = [t for ids in lm.tokenize([" " + t for t in pool[: ctx.config.recall_shots]]) for t in ids[len(bos) :]]
    L = lm.max_length
    seqs, keep, plain = [], [], []
    for s in ctx.signals:
        x = s.token_ids.tolist()
        room = min(len(prefix), max(L - len(x), L // 4))
        x = x[: L - room]
        head = x[: len(bos)]
        seqs.append(head + prefix[len(prefix) - room :] + x[len(bos) :])
        keep.append(len(x) - 1)
        plain.append(float(s.logp[: len(x) - 1].mean()))
    lp = ctx.logp_pass("recall", seqs)
    return np.array([float(x[-n:].mean()) for x, n in zip(lp, keep)]), np.array(plain)


@register_attack("recall", requires=("prefix_pool",), order=80)
def recall(ctx: "AttackContext") -> np.ndarray:
    """LL(x | non-member prefix) / LL(x); one extra pass."""
    ll_p, ll = prefixed_ll(ctx)
    return np.array([recall_score(a, b) for a, b in zip(ll, ll_p)])
