"""Hook correctness, each strength mode, the probe, and the workflows on micro models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rotelab.core.generate import greedy_generate
from rotelab.core.models import load_model
from rotelab.errors import RotelabError
from rotelab.core.hooks import find_blocks, hooked, site_layer
from rotelab.steering.probe import Probe, collect_activations, split_indices, train_probe
from rotelab.steering.steer import SteerConfig, Steering, generate, steered_nll

TEXTS = ["the quick fox jumps over the lazy dog", "the old owl sleeps", "and then it sleeps number", "the red hen jumps over", "lazy dog number 7, and"]


def _random_probe(lm, layer=1, seed=0, bias=0.0) -> Probe:
    """A probe with random weights whose p_mem straddles 0.5 on the micro model's activations."""
    d = lm.model.config.hidden_size
    g = np.random.default_rng(seed)
    w = g.normal(size=d).astype(np.float32)
    w *= 2.0 / np.linalg.norm(w)
    mu_mem, mu_gen = g.normal(size=d).astype(np.float32), g.normal(size=d).astype(np.float32)
    return Probe(layer, "last", w, bias, mu_mem, mu_gen)


def _prompts(lm):
    return lm.tokenize(TEXTS)


@pytest.fixture(scope="module")
def probe(gpt2_lm):
    return _random_probe(gpt2_lm)


MODES = [SteerConfig("static", 3.0), SteerConfig("dynamic", 6.0), SteerConfig("gated", 6.0, tau=0.5), SteerConfig("dynamic", 6.0, beta=2.0, plausibility=0.05)]


@pytest.mark.parametrize("cfg", MODES, ids=["static", "dynamic", "gated", "contrastive"])
def test_steered_generation_same_with_and_without_kv_cache(gpt2_lm, probe, cfg):
    st = Steering(probe, cfg)
    a = generate(gpt2_lm, _prompts(gpt2_lm), 10, st)
    b = generate(gpt2_lm, _prompts(gpt2_lm), 10, st, use_cache=False)
    assert a.tokens == b.tokens
    np.testing.assert_allclose(a.alpha, b.alpha, atol=1e-5)
    assert a.tokens != greedy_generate(gpt2_lm, _prompts(gpt2_lm), 10)  # steering did something


@pytest.mark.parametrize("cfg", MODES, ids=["static", "dynamic", "gated", "contrastive"])
def test_left_padded_batch_equals_one_by_one(gpt2_lm, probe, cfg):
    st = Steering(probe, cfg)
    ps = _prompts(gpt2_lm)
    assert len({len(p) for p in ps}) > 1  # padding really happens
    batch = generate(gpt2_lm, ps, 8, st)
    for i, p in enumerate(ps):
        one = generate(gpt2_lm, [p], 8, st)
        assert one.tokens[0] == batch.tokens[i]
        np.testing.assert_allclose(one.alpha[0], batch.alpha[i], atol=1e-5)


def test_unsteered_generate_equals_core_greedy(gpt2_lm):
    ps = _prompts(gpt2_lm)
    assert generate(gpt2_lm, ps, 6).tokens == greedy_generate(gpt2_lm, ps, 6)


@pytest.mark.parametrize("cfg", [SteerConfig("static", 0.0), SteerConfig("dynamic", 0.0), SteerConfig("gated", 50.0, tau=1.0), SteerConfig("none", 50.0)], ids=["static0", "dynamic0", "gated_tau1", "none"])
def test_zero_strength_equals_unsteered(gpt2_lm, probe, cfg):
    ps = _prompts(gpt2_lm)
    g = generate(gpt2_lm, ps, 8, Steering(probe, cfg))
    assert g.tokens == greedy_generate(gpt2_lm, ps, 8)
    assert np.nanmax(np.abs(g.alpha)) == 0.0


def test_dynamic_alpha_log_is_alpha_max_times_p_mem(gpt2_lm, probe):
    g = generate(gpt2_lm, _prompts(gpt2_lm), 8, Steering(probe, SteerConfig("dynamic", 5.0)))
    p, a = np.array(g.p_mem), np.array(g.alpha)
    np.testing.assert_allclose(a, 5.0 * p, rtol=1e-5)
    assert 0.05 < p.mean() < 0.95 and p.std() > 0.01  # a probe that is not constant


def test_gated_steers_only_above_tau_and_static_is_constant(gpt2_lm, probe):
    g = generate(gpt2_lm, _prompts(gpt2_lm), 8, Steering(probe, SteerConfig("gated", 5.0, tau=0.5)))
    p, a = np.array(g.p_mem), np.array(g.alpha)
    np.testing.assert_array_equal(a, np.where(p > 0.5, 5.0, 0.0))
    assert 0 < (a > 0).mean() < 1
    s = generate(gpt2_lm, _prompts(gpt2_lm), 8, Steering(probe, SteerConfig("static", 2.5)))
    assert np.all(np.array(s.alpha) == 2.5)


def test_logged_p_mem_is_the_probe_on_the_unsteered_block_output(gpt2_lm):
    probe = _random_probe(gpt2_lm, layer=0)  # the last hidden state has the final norm applied
    ps = _prompts(gpt2_lm)[:1]
    g = generate(gpt2_lm, ps, 1, Steering(probe, SteerConfig("static", 3.0)))
    h = gpt2_lm.hidden_states(ps)[0][probe.layer + 1, -1]  # hidden_states[0] is the embedding output
    assert g.p_mem[0][0] == pytest.approx(float(probe.p_mem(h)), rel=1e-4)


def test_contrastive_with_full_plausibility_equals_pure_steering(gpt2_lm, probe):
    ps = _prompts(gpt2_lm)
    pure = generate(gpt2_lm, ps, 8, Steering(probe, SteerConfig("dynamic", 6.0)))
    only_top = generate(gpt2_lm, ps, 8, Steering(probe, SteerConfig("dynamic", 6.0, beta=5.0, plausibility=1.0)))
    wide = generate(gpt2_lm, ps, 8, Steering(probe, SteerConfig("dynamic", 6.0, beta=5.0, plausibility=0.0)))
    assert only_top.tokens == pure.tokens
    assert wide.tokens != pure.tokens


def test_hooks_removed_after_use_model_unchanged(gpt2_lm, probe):
    def n_hooks():  # transformers registers hooks of its own: compare counts
        return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in gpt2_lm.model.modules())

    ids, mask = gpt2_lm._right_pad(_prompts(gpt2_lm))
    before, n0 = gpt2_lm.model(input_ids=ids, attention_mask=mask).logits, n_hooks()
    with Steering(probe, SteerConfig("static", 3.0)).attach(gpt2_lm):
        assert n_hooks() == n0 + 2  # model pre-hook + the probe block
    generate(gpt2_lm, _prompts(gpt2_lm), 4, Steering(probe, SteerConfig("static", 3.0)))
    steered_nll(gpt2_lm, _prompts(gpt2_lm), Steering(probe, SteerConfig("static", 3.0)))
    with pytest.raises(RuntimeError):
        with Steering(probe, SteerConfig("static", 3.0)).attach(gpt2_lm):
            raise RuntimeError("boom")
    assert n_hooks() == n0
    torch.testing.assert_close(gpt2_lm.model(input_ids=ids, attention_mask=mask).logits, before)


def test_steered_nll_changes_with_static_and_not_with_alpha_zero(gpt2_lm, probe):
    ps = _prompts(gpt2_lm)
    base, n, a0 = steered_nll(gpt2_lm, ps)
    zero, _, _ = steered_nll(gpt2_lm, ps, Steering(probe, SteerConfig("static", 0.0)))
    big, _, a5 = steered_nll(gpt2_lm, ps, Steering(probe, SteerConfig("static", 5.0)))
    assert np.isnan(a0).all() and np.allclose(a5, 5.0)
    np.testing.assert_allclose(zero, base, rtol=1e-5)
    assert not np.allclose(big, base, rtol=1e-3)
    assert list(n) == [len(p) - 1 for p in ps]


@pytest.mark.parametrize("arch", ["llama", "gpt_neox", "qwen2"])
def test_other_architectures_cache_and_batch(arch_dirs, arch):
    lm = load_model(arch_dirs[arch])
    probe = _random_probe(lm, layer=0)
    st = Steering(probe, SteerConfig("dynamic", 8.0))
    ps = _prompts(lm)
    a = generate(lm, ps, 6, st)
    assert a.tokens == generate(lm, ps, 6, st, use_cache=False).tokens
    assert [generate(lm, [p], 6, st).tokens[0] for p in ps] == a.tokens
    assert a.tokens != greedy_generate(lm, ps, 6)
    assert generate(lm, ps, 6, Steering(probe, SteerConfig("static", 0.0))).tokens == greedy_generate(lm, ps, 6)


def test_find_blocks_override_and_clear_error(gpt2_lm):
    assert find_blocks(gpt2_lm.model) is gpt2_lm.model.transformer.h
    assert find_blocks(gpt2_lm.model, "transformer.h") is gpt2_lm.model.transformer.h
    with pytest.raises(RotelabError, match="cannot find the decoder blocks"):
        find_blocks(torch.nn.Sequential(torch.nn.Linear(2, 2)))
    with pytest.raises(RotelabError, match="no module 'model.nope'"):
        find_blocks(gpt2_lm.model, "model.nope")
    assert site_layer("blocks.1.hook_resid_post", 2) == 1 and site_layer(-1, 2) == 1
    with pytest.raises(RotelabError, match="block index"):
        site_layer(5, 2)


def test_hook_edit_can_replace_block_output(gpt2_lm):
    ids, mask = gpt2_lm._right_pad(_prompts(gpt2_lm)[:1])
    base = gpt2_lm.model(input_ids=ids).logits
    with hooked(gpt2_lm.model, {0: lambda h, cols, valid, st: h * 0}):
        zeroed = gpt2_lm.model(input_ids=ids).logits
    assert not torch.allclose(base, zeroed)


def test_probe_separates_classes_on_micro_model(gpt2_lm):
    rng = np.random.default_rng(0)
    V = len(gpt2_lm.tokenizer)
    mem = gpt2_lm.tokenize([f"the quick fox jumps over the lazy dog number {i}" for i in range(30)])
    gen = [rng.integers(5, V, size=12).tolist() for _ in range(30)]
    y = np.r_[np.ones(30), np.zeros(30)].astype(int)
    acts = collect_activations(gpt2_lm, mem + gen)
    assert acts["last"].shape == (2, 60, 32)
    tr, te = split_indices(y, test_share=0.3, seed=0)
    probe, rows = train_probe(acts, y, tr, te, n_boot=50)
    assert max(r["auroc"] for r in rows) > 0.9
    best = next(r for r in rows if r["layer"] == probe.layer and r["position"] == probe.position)
    X = acts[probe.position][probe.layer]
    assert (probe.p_mem(X[te]) > 0.5).astype(int).tolist() == y[te].tolist()  # every held-out prompt classified right
    assert best["auroc"] > 0.95
    np.testing.assert_allclose(probe.mu_mem, X[tr][y[tr] == 1].mean(0), rtol=1e-5)


def test_probe_with_shuffled_labels_is_near_chance(gpt2_lm):
    rng = np.random.default_rng(1)
    texts = gpt2_lm.tokenize([f"the quick fox jumps over the lazy dog number {i}" for i in range(60)])
    y = rng.permutation(np.r_[np.ones(30), np.zeros(30)]).astype(int)
    acts = collect_activations(gpt2_lm, texts)
    tr, te = split_indices(y, test_share=0.3, seed=0)
    _, rows = train_probe(acts, y, tr, te, n_boot=50)
    assert all(abs(r["auroc"] - 0.5) < 0.25 for r in rows), [r["auroc"] for r in rows]  # no block nor position separates random labels (0.32-0.36 measured)


def test_probe_save_load_roundtrip(tmp_path, gpt2_lm):
    p = _random_probe(gpt2_lm)
    p.save(tmp_path)
    q = Probe.load(tmp_path)
    assert q.layer == p.layer and q.site == "blocks.1.hook_resid_post"
    np.testing.assert_array_equal(q.w, p.w)
    np.testing.assert_allclose(np.linalg.norm(q.direction("probe")), np.linalg.norm(q.direction("diffmean")), rtol=1e-5)
    with pytest.raises(RotelabError, match="no probe.npz"):
        Probe.load(tmp_path / "missing")


def test_bad_steer_config_is_one_line_error(gpt2_lm, probe):
    with pytest.raises(RotelabError, match="--mode must be one of"):
        Steering(probe, SteerConfig("loud"))
    with pytest.raises(RotelabError, match="must not precede"):
        Steering(probe, SteerConfig("static", layers=(0,)))
