"""Neighbourhood (Mattern et al. 2023): mean NLL of K perturbed neighbours minus NLL(x).

Neighbours are embedding-neighbour token swaps (:mod:`rotelab.membership.perturb`); their
log-probs are one checkpointed pass over N * K variants.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rotelab.membership.attacks import register_attack

if TYPE_CHECKING:
    from rotelab.membership.context import AttackContext


def neighbourhood_score(nll: float, nll_neighbours: np.ndarray) -> float:
    """Neighbourhood (Mattern et al. 2023): mean_k NLL(x~_k) - NLL(x)."""
    return float(np.mean(nll_neighbours)) - nll


def neighbour_nlls(ctx: "AttackContext") -> np.ndarray:
    """(N, K) NLL of each text's K embedding-neighbour variants (swap rate p, rank j, seeded)."""
    from rotelab.membership.perturb import build_neighbours, make_variants

    c = ctx.config
    max_rank = max(8, c.rank)
    nb = ctx.memo(("neighbours", max_rank), lambda: build_neighbours(ctx.lm, max_rank=max_rank, embedding_from=ctx.resource("embeddings")))
    rng = np.random.default_rng(c.seed)
    seqs: list[list[int]] = []
    for s in ctx.signals:
        seqs += make_variants(s.token_ids, nb, k=c.n_neighbours, p=c.swap_rate, j=c.rank, rng=rng)[0]
    lp = ctx.logp_pass("neighbourhood", seqs)
    return np.array([-x.mean() for x in lp], dtype=np.float64).reshape(len(ctx.signals), c.n_neighbours)


@register_attack("neighbourhood", requires=("embeddings",), order=70)
def neighbourhood(ctx: "AttackContext") -> np.ndarray:
    """Mean NLL of K embedding-neighbour variants minus NLL(x); K extra passes."""
    nlls = neighbour_nlls(ctx)  # (N, K)
    return np.array([neighbourhood_score(s.nll, row) for s, row in zip(ctx.signals, nlls)])
