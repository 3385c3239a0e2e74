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


@pytest.mark.parametrize("bias", [False, True])
def test_signals_in_chunks_matches_one_block(bias):
    from rotelab.core.signals import signals_from_logits, signals_in_chunks

    g = torch.Generator().manual_seed(1)
    head = torch.nn.Linear(8, 50, bias=bias)
    with torch.no_grad():
        head.weight.copy_(torch.randn(50, 8, generator=g))
    h, tgt = torch.randn(37, 8, generator=g), torch.randint(0, 50, (37,), generator=g)
    with torch.inference_mode():
        whole = signals_from_logits(head(h), tgt)
        parts = signals_in_chunks(h, tgt, head, chunk=8)  # a ragged last chunk of 5
        logits = signals_in_chunks(head(h), tgt, None, chunk=8)
    for k in whole:
        torch.testing.assert_close(parts[k], whole[k])
        torch.testing.assert_close(logits[k], whole[k])


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


@pytest.mark.parametrize("gap", [0.3, 1.0, 3.0, 8.0])
def test_one_pass_sigma_holds_on_near_uniform_rows_of_a_large_vocabulary(gap):
    """The worst case of a one-pass variance: every token but the top one at -gap (V = 152k)."""
    from rotelab.core.signals import signals_from_logits

    V = 152_064
    g = torch.Generator().manual_seed(0)
    z = torch.full((1, V), -gap) + 1e-3 * gap * torch.randn(1, V, generator=g)
    z[0, 0] = 0.0
    lp = torch.log_softmax(z.double(), -1)
    p = lp.exp()
    mu = (p * lp).sum(-1)
    sigma = (p * (lp - mu[:, None]) ** 2).sum(-1).clamp_min(1e-6).sqrt()  # the same floor
    got = signals_from_logits(z, torch.zeros(1, dtype=torch.long))
    np.testing.assert_allclose(got["mu"].double(), mu, rtol=1e-5)
    np.testing.assert_allclose(got["sigma"].double(), sigma, rtol=1e-5)


def test_masked_logits_at_minus_infinity_are_zero_probability_not_nan():
    from rotelab.core.signals import signals_from_logits

    g = torch.Generator().manual_seed(1)
    z = 2 * torch.randn(3, 50, generator=g)
    z[0, [3, 7]] = float("-inf")
    tgt = torch.tensor([3, 2, 4])  # row 0 predicts a masked token
    got = signals_from_logits(z, tgt)
    lp = torch.log_softmax(z.double(), -1)
    p = lp.exp()
    plp = torch.where(p > 0, p * lp, 0.0)
    mu = plp.sum(-1)
    var = torch.where(p > 0, p * (lp - mu[:, None]) ** 2, 0.0).sum(-1)
    np.testing.assert_allclose(got["mu"].double(), mu, atol=1e-5)
    np.testing.assert_allclose(got["sigma"].double(), var.sqrt(), atol=1e-5)
    assert got["logp"][0] == float("-inf") and torch.isfinite(got["logp"][1:]).all()


def test_forward_logp_equals_the_logp_of_forward_signals(gpt2_lm):
    batch = gpt2_lm.tokenize(TEXTS)
    full = gpt2_lm.forward_signals(batch)
    lp = gpt2_lm.forward_logp(batch)
    for s, x in zip(full, lp):
        np.testing.assert_allclose(x, s.logp, atol=1e-6)


def test_a_peft_wrapped_model_scores_like_its_merged_weights(arch_dirs):
    """A PeftModel's base_model returns logits, not hidden states: the chunked head falls back to
    the plain path instead of crashing, and the signals equal the merged model's."""
    import numpy as np
    from peft import LoraConfig, get_peft_model

    from rotelab.core.models import HFLanguageModel, load_model
    from rotelab.core.signals import compute_signals

    lm = load_model(arch_dirs["gpt2"])
    peft = get_peft_model(lm.model, LoraConfig(r=2, target_modules=["c_attn"], init_lora_weights=False))
    wrapped = HFLanguageModel(peft, lm.tokenizer)
    a = compute_signals(wrapped, ["the quick fox jumps over"], progress=False)[0]
    merged = HFLanguageModel(peft.merge_and_unload(), lm.tokenizer)
    b = compute_signals(merged, ["the quick fox jumps over"], progress=False)[0]
    assert not wrapped._head_separable()
    np.testing.assert_allclose(a.logp, b.logp, atol=1e-5)


def test_a_crafted_cache_entry_is_a_miss_never_code(gpt2_lm, cache, tmp_path):
    """A pickled object array planted in the cache under a real key is not unpickled: the text is rescored."""
    import io
    import pickle

    from rotelab.core.signals import compute_signals

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    text = "the quick fox jumps over the lazy dog"
    want = compute_signals(gpt2_lm, [text], cache=None, progress=False)[0]
    buf = io.BytesIO()
    np.savez(buf, token_ids=np.array([Evil()], dtype=object), logp=np.zeros(1))
    assert b"pwned" in buf.getvalue() and pickle  # the payload really is in the entry
    with cache._db:
        cache._db.execute("INSERT OR REPLACE INTO signals (key, value) VALUES (?, ?)", (cache.key(gpt2_lm, text), buf.getvalue()))
    got = compute_signals(gpt2_lm, [text], cache=cache, progress=False)[0]
    assert not marker.exists()
    np.testing.assert_allclose(got.logp, want.logp)
