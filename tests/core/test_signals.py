import numpy as np
import pytest
import torch

from rotelab.core.models import HFLanguageModel
from rotelab.core.signals import compute_signals
from rotelab.errors import RotelabError

TEXTS = ["the quick fox jumps over the lazy dog", "the cat", "an old owl sleeps, and then it jumps over the red hen twice"]


def test_signals_match_a_direct_full_distribution_computation(gpt2_lm):
    sig = compute_signals(gpt2_lm, TEXTS, progress=False)
    for text, s in zip(TEXTS, sig):
        ids = torch.tensor([gpt2_lm.tokenize([text])[0]])
        with torch.no_grad():
            logits = gpt2_lm.model(ids).logits[0, :-1].double()
        p = torch.softmax(logits, -1)
        lp = torch.log(p)
        tgt = ids[0, 1:]
        mu = (p * lp).sum(-1)
        var = (p * (lp - mu[:, None]) ** 2).sum(-1)
        np.testing.assert_allclose(s.logp, lp[torch.arange(len(tgt)), tgt].numpy(), atol=1e-4)
        np.testing.assert_allclose(s.mu, mu.numpy(), atol=1e-4)
        np.testing.assert_allclose(s.sigma, var.sqrt().numpy(), atol=1e-4)
        np.testing.assert_allclose(s.entropy, (-(p * lp).sum(-1)).numpy(), atol=1e-4)
        np.testing.assert_array_equal(s.top1, (logits.argmax(-1) == tgt).numpy())


def test_batched_equals_one_at_a_time(gpt2_lm):
    batched = compute_signals(gpt2_lm, TEXTS, batch_size=3, progress=False)
    single = compute_signals(gpt2_lm, TEXTS, batch_size=1, progress=False)
    for a, b in zip(batched, single):
        np.testing.assert_allclose(a.logp, b.logp, atol=1e-5)
        np.testing.assert_array_equal(a.token_ids, b.token_ids)


@pytest.mark.parametrize("arch", ["gpt2", "llama", "gpt_neox", "qwen2"])
def test_chunked_head_equals_full_logits(arch_dirs, arch):
    """The fused path (head applied in small chunks to the final hidden states) = the model's logits."""
    from rotelab.core.models import load_model

    lm = load_model(arch_dirs[arch])
    assert lm._head_separable()
    batch = [x[: lm.max_length] for x in lm.tokenize(TEXTS)]
    fused = lm.forward_signals(batch)
    lm._separable = False  # the plain path: full (B, T, V) logits from model(...)
    plain = lm.forward_signals(batch)
    for a, b in zip(fused, plain):
        for k in ("logp", "mu", "sigma"):
            np.testing.assert_allclose(getattr(a, k), getattr(b, k), atol=1e-5)
        np.testing.assert_array_equal(a.top1, b.top1)


def test_softcapped_logits_use_the_plain_path(arch_dirs):
    from rotelab.core.models import load_model

    lm = load_model(arch_dirs["gpt2"])
    lm.model.config.final_logit_softcapping = 30.0
    assert not lm._head_separable()


def test_signals_in_chunks_matches_one_block():
    from rotelab.core.signals import signals_from_logits, signals_in_chunks

    g = torch.Generator().manual_seed(1)
    h, W = torch.randn(37, 8, generator=g), torch.randn(50, 8, generator=g)
    tgt = torch.randint(0, 50, (37,), generator=g)
    whole = signals_from_logits(h @ W.T, tgt)
    parts = signals_in_chunks(h, tgt, lambda x: x @ W.T, chunk=8)
    for k in whole:
        torch.testing.assert_close(parts[k], whole[k])


def _with_policy(lm, policy):
    return HFLanguageModel(lm.model, lm.tokenizer, long_text=policy, fingerprint=lm.fingerprint)


def test_long_text_truncate_window_error(gpt2_lm):
    long = " ".join(TEXTS * 8)  # > 64 tokens
    n = len(gpt2_lm.tokenize([long])[0])
    assert n > 64
    counts = []
    t = compute_signals(_with_policy(gpt2_lm, "truncate"), [long, "the cat"], progress=False, counts_out=counts)[0]
    assert t.n_scored == 63 and counts[0].n_long == 1 and counts[0].tokens_dropped == n - 64
    w = compute_signals(_with_policy(gpt2_lm, "window"), [long], progress=False)[0]
    assert w.n_scored == n - 1 and len(w.token_ids) == n
    np.testing.assert_allclose(w.logp[:63], t.logp, atol=1e-5)  # first window = truncation
    with pytest.raises(RotelabError, match="sample '0': .* > context 64"):
        compute_signals(_with_policy(gpt2_lm, "error"), [long], progress=False)


def test_cache_serves_second_run_without_forward(gpt2_lm, cache, monkeypatch):
    first = compute_signals(gpt2_lm, TEXTS, cache=cache, progress=False)
    assert len(cache) == len(TEXTS)
    monkeypatch.setattr(gpt2_lm, "forward_signals", lambda batch: pytest.fail("forward pass on a cached text"))
    second = compute_signals(gpt2_lm, TEXTS, cache=cache, progress=False)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.logp, b.logp)


def test_cache_key_changes_with_policy(gpt2_lm, cache):
    compute_signals(gpt2_lm, TEXTS[:1], cache=cache, progress=False)
    assert cache.get(_with_policy(gpt2_lm, "window"), TEXTS[0]) is None
    assert cache.get(gpt2_lm, TEXTS[0]) is not None


def test_top1_is_a_greedy_hit_and_ties_count():
    from rotelab.core.signals import signals_from_logits

    g = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 6, 300, generator=g)
    tgt = logits.argmax(-1)
    tgt[2] = (tgt[2] + 1) % 300  # row 2: never the top token
    logits[0, 0, [7, 200]] = 10.0  # a tie for the top between 7 and 200
    tgt[0, 0] = 200
    got = signals_from_logits(logits, tgt)["top1"]
    assert got[0, 0] and got[[0, 1, 3]].all() and not got[2].any()
