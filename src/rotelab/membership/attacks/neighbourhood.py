"""Neighbourhood (Mattern et al. 2023): mean NLL of K neighbours of x minus NLL(x).

Two generators; the report and the manifest's notes say which produced the scores:

* ``mlm`` (the paper's, given ``--neighbour-model``, a local masked-LM folder): the K best
  one-token swaps proposed by the masked LM (:mod:`rotelab.membership.mlm`), each neighbour a text
  scored by the target's signal pass (cached).
* ``embedding-swap`` (the offline default: no masked LM ships with rotelab): each of K variants
  swaps every token with probability p for its j-th nearest neighbour in the target's input
  embeddings (:mod:`rotelab.membership.perturb`); log-probs in one checkpointed pass over N * K
  token lists.

K defaults to 16, below the 25 (MIMIR) to 50 (mia_llms_benchmark) of the peers: on the tiny
testbed (426 texts) the embedding generator's AUC is 0.610 / 0.636 / 0.652 / 0.653 / 0.655 at
K = 4 / 8 / 16 / 32 / 50 (``bench/membership_attacks.py``), flat from 16 within its interval
(+-0.05), while the cost grows linearly with K.
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


def embedding_neighbour_nlls(ctx: "AttackContext") -> list[np.ndarray]:
    """Per text, the NLL of its K embedding-neighbour variants (swap rate p, rank j, seeded)."""
    from rotelab.membership.perturb import build_neighbours, make_variants

    c = ctx.config
    max_rank = max(8, c.rank)
    nb = ctx.memo(("neighbours", max_rank), lambda: build_neighbours(ctx.lm, max_rank=max_rank, embedding_from=ctx.resource("embeddings")))
    rng = np.random.default_rng(c.seed)
    seqs: list[list[int]] = []
    for s in ctx.signals:
        seqs += make_variants(s.token_ids, nb, k=c.n_neighbours, p=c.swap_rate, j=c.rank, rng=rng)[0]
    lp = ctx.logp_pass("neighbourhood", seqs)
    return list(np.array([-x.mean() for x in lp], dtype=np.float64).reshape(len(ctx.signals), c.n_neighbours))


def mlm_neighbour_nlls(ctx: "AttackContext") -> list[np.ndarray]:
    """Per text, the NLL of its (up to) K masked-LM neighbours (fewer when x offers fewer swaps)."""
    from rotelab.errors import RotelabError
    from rotelab.membership.mlm import apply_swap, best_swaps

    mlm, k, seed = ctx.neighbour_model, ctx.config.n_neighbours, ctx.config.seed
    enc = [mlm.encode(t) for t in ctx.texts]
    swaps = ctx.checkpointed("neighbourhood_mlm", [ids for ids, _ in enc], lambda batch: [best_swaps(mlm, ids, k, seed=seed).reshape(-1) for ids in batch])
    texts, counts = [], []
    for i, (t, (_, offsets), sw) in enumerate(zip(ctx.texts, enc, swaps)):
        pairs = sw.reshape(-1, 2)
        if not len(pairs):
            raise RotelabError(f"--neighbour-model: text {i} ('{t[:40]}') offers the masked LM no token to replace")
        texts += [apply_swap(mlm, t, offsets, int(p), int(c)) for p, c in pairs]
        counts.append(len(pairs))
    nll = np.array([s.nll for s in ctx.signals_of(texts, "neighbourhood")])
    return np.split(nll, np.cumsum(counts)[:-1])


@register_attack("neighbourhood", requires=("embeddings",), order=70)
def neighbourhood(ctx: "AttackContext") -> np.ndarray:
    """Mean NLL of K neighbours (masked-LM swaps with --neighbour-model, else embedding-neighbour swaps) minus NLL(x)."""
    if ctx.neighbour_model is not None:
        nlls = mlm_neighbour_nlls(ctx)
        counts = [len(x) for x in nlls]
        ctx.record({"generator": "mlm", "neighbour_model": ctx.neighbour_model.source, "k": ctx.config.n_neighbours,
                    "neighbours_per_text": {"min": int(min(counts)), "mean": round(float(np.mean(counts)), 3), "max": int(max(counts))}})
    else:
        nlls = embedding_neighbour_nlls(ctx)
        ctx.record({"generator": "embedding-swap", "k": ctx.config.n_neighbours, "swap_rate": ctx.config.swap_rate, "rank": ctx.config.rank})
    return np.array([neighbourhood_score(s.nll, row) for s, row in zip(ctx.signals, nlls)])
