"""Each formula against a value computed independently from a fixed logits tensor."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from rotelab.core.signals import TokenSignals, signals_from_logits
from rotelab.membership import attacks as A


@pytest.fixture(scope="module")
def fixed():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 9, 11, generator=g) * 3  # (B, T-1, V)
    ids = torch.randint(0, 11, (1, 10), generator=g)
    s = signals_from_logits(logits, ids[:, 1:])
    sig = TokenSignals(ids[0].numpy(), *(s[k][0].numpy() for k in ("logp", "mu", "sigma")), s["top1"][0].numpy())
    return logits[0].double(), ids[0, 1:], sig


def test_loss_and_zlib_match_cross_entropy(fixed):
    logits, tgt, sig = fixed
    nll = torch.nn.functional.cross_entropy(logits, tgt).item()
    assert A.loss_score(sig) == pytest.approx(-nll, abs=1e-5)
    text = "the quick brown fox"
    assert A.zlib_score(sig, text) == pytest.approx(-nll / len(zlib.compress(text.encode())), abs=1e-6)


def test_mink_averages_the_floor_of_k_n_lowest_as_the_original_code(fixed):
    """int(n k) tokens, as swj0419/detect-pretrain-code, zjysteven/mink-plus-plus and MIMIR (this
    test enforced ceil(k n) before: the wrong formula, which changed most scores)."""
    logits, tgt, sig = fixed
    lp = torch.log_softmax(logits, -1).gather(1, tgt[:, None])[:, 0].sort().values  # 9 tokens
    assert A.mink_score(sig, k=0.3) == pytest.approx(lp[:2].mean().item(), abs=1e-5)  # int(2.7) = 2
    assert A.mink_score(sig, k=0.2) == pytest.approx(lp[0].item(), abs=1e-5)  # int(1.8) = 1
    assert A.mink_score(sig, k=0.1) == pytest.approx(lp[0].item(), abs=1e-5)  # int(0.9) = 0: at least one
    assert A.mink_score(sig, k=1.0) == pytest.approx(lp.mean().item(), abs=1e-5)


def test_minkpp_mean_and_std_match_the_full_distribution(fixed):
    logits, tgt, sig = fixed
    dist = torch.distributions.Categorical(logits=logits)
    logp_all = torch.log_softmax(logits, -1)
    mu = (dist.probs * logp_all).sum(-1)  # E_p[log p] = -H
    assert np.allclose(sig.mu, -dist.entropy().numpy(), atol=1e-5)
    var = (dist.probs * (logp_all - mu[:, None]) ** 2).sum(-1)
    assert np.allclose(sig.sigma, var.sqrt().numpy(), atol=1e-4)
    z = (logp_all.gather(1, tgt[:, None])[:, 0] - mu) / var.sqrt()
    assert A.minkpp_score(sig, k=0.3) == pytest.approx(z.sort().values[:2].mean().item(), abs=1e-4)  # int(2.7) = 2


def test_pairwise_formulas_orientation():
    assert A.lowercase_score(1.0, 1.5) == pytest.approx(1.5)
    assert A.reference_score(1.0, 3.0) == pytest.approx(2.0)
    assert A.neighbourhood_score(1.0, np.array([2.0, 4.0])) == pytest.approx(2.0)
    # ReCaLL: the prefix costs a member more likelihood -> ratio > 1.
    assert A.recall_score(-1.0, -1.5) == pytest.approx(1.5)


def test_stats_match_scikit_learn():
    from sklearn.metrics import roc_auc_score

    from rotelab.core.stats import roc_auc

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = rng.normal(size=200) + y
    assert roc_auc(s, y) == pytest.approx(roc_auc_score(y, s))


def test_unknown_attack_suggests_the_close_name():
    from rotelab.errors import RotelabError

    with pytest.raises(RotelabError, match="Did you mean: minkpp"):
        A.resolve_attacks("loss,minkp")
    assert A.resolve_attacks("all") == list(A.ATTACKS)


def test_docstring_examples():
    import doctest

    res = doctest.testmod(A)
    assert res.attempted > 0 and res.failed == 0
