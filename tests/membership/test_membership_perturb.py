"""Embedding-neighbour swaps: the j-th cosine neighbour, exclusions, at least one swap."""

from __future__ import annotations

import numpy as np
import pytest

from rotelab.core.models import LogprobsOnlyModel
from rotelab.errors import RotelabError
from rotelab.membership.perturb import Neighbours, build_neighbours, candidate_mask, make_variants, nearest_neighbours


def test_nearest_neighbours_match_brute_force_cosine():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(30, 5))
    cand = np.ones(30, dtype=bool)
    cand[[3, 7]] = False
    table = nearest_neighbours(emb, cand, max_rank=4, chunk=7)
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    for v in range(30):
        sim = e @ e[v]
        sim[~cand] = -np.inf
        sim[v] = -np.inf
        assert list(table[v]) == list(np.argsort(-sim)[:4])
    assert not np.isin(table, [3, 7]).any()


def test_variants_swap_at_least_once_never_the_first_token():
    table = np.tile(np.arange(1, 5), (20, 1)) + 10  # rank j -> id 10 + j
    nb = Neighbours(table, np.r_[np.zeros(2, bool), np.ones(18, bool)])  # ids 0, 1 not swappable
    ids = [5, 0, 6, 7, 1, 8]
    vs, masks = make_variants(ids, nb, k=50, p=0.01, j=3, rng=np.random.default_rng(0))
    assert masks.any(1).all()
    assert not masks[:, [0, 1, 4]].any()
    for v, m in zip(vs, masks):
        assert all((v[i] == 13) == m[i] for i in range(len(ids)))
    _, masks = make_variants(ids, nb, k=200, p=0.5, j=1, rng=np.random.default_rng(1))
    assert 0.4 < masks[:, [2, 3, 5]].mean() < 0.65


def test_candidates_exclude_special_and_whitespace(tokenizer):
    mask = candidate_mask(tokenizer, len(tokenizer) + 3)
    for t in tokenizer.all_special_ids:
        assert not mask[t]
    assert not mask[len(tokenizer):].any()
    assert all(tokenizer.decode([t]).strip() for t in np.flatnonzero(mask))


def test_query_only_target_takes_embeddings_from_a_named_model(gpt2_lm, arch_dirs):
    q = LogprobsOnlyModel(gpt2_lm)
    with pytest.raises(RotelabError, match="--embedding-model"):
        build_neighbours(q)
    nb = build_neighbours(q, embedding_from=arch_dirs["gpt2"])
    assert np.array_equal(nb.table, build_neighbours(gpt2_lm).table)
