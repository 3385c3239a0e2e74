"""The bfloat16 path every model command takes with ``--dtype bfloat16`` (on a GPU; here on CPU):
signals, hidden states, gradients and greedy decoding run in bf16 with no silent cast to fp32 of
the model, and agree with fp32 to bf16's precision (~3 significant digits)."""

import numpy as np
import torch

from rotelab.core.generate import decode
from rotelab.core.models import load_model
from rotelab.core.signals import compute_signals

TEXTS = [f"the quick fox number {i} jumps over the lazy dog {'and again ' * (i % 4)}" for i in range(12)]


def test_bf16_signals_hidden_states_and_decoding_match_fp32(arch_dirs):
    for arch in ("gpt2", "llama"):
        f32 = load_model(arch_dirs[arch])
        b16 = load_model(arch_dirs[arch], dtype="bfloat16")
        assert b16.dtype == torch.bfloat16 and all(p.dtype == torch.bfloat16 for p in b16.model.parameters())
        assert b16.cache_namespace != f32.cache_namespace  # bf16 scores never reuse fp32 cache entries
        a, b = compute_signals(f32, TEXTS, progress=False), compute_signals(b16, TEXTS, progress=False)
        for x, y in zip(a, b):
            assert y.logp.dtype == np.float32 and np.isfinite(y.logp).all() and np.isfinite(y.sigma).all()
            np.testing.assert_allclose(y.logp, x.logp, atol=0.05 * max(1.0, float(np.abs(x.logp).max())))
            np.testing.assert_allclose(y.mu, x.mu, atol=0.05 * max(1.0, float(np.abs(x.mu).max())))
        ids = f32.tokenize(TEXTS[:3])
        h32, h16 = f32.hidden_states(ids), b16.hidden_states(ids)
        for x, y in zip(h32, h16):
            assert y.shape == x.shape and np.isfinite(y).all()
            np.testing.assert_allclose(y, x, atol=0.05 * max(1.0, float(np.abs(x).max())))
        prompts = [x[:6] for x in f32.tokenize(TEXTS[:4])]
        g32, g16 = decode(f32, prompts, 5).first(), decode(b16, prompts, 5).first()
        assert all(len(g) == 5 for g in g16)
        assert sum(a[0] == b[0] for a, b in zip(g32, g16)) >= 3  # the first greedy token survives bf16 rounding


def test_bf16_membership_suite_with_gradients_runs_end_to_end(arch_dirs, tmp_path):
    import rotelab
    from rotelab.core.runs import read_parquet

    b16 = load_model(arch_dirs["llama"], dtype="bfloat16")
    m = rotelab.mia(b16, TEXTS[:6], TEXTS[6:], attacks="loss,minkpp,gradnorm", out=tmp_path / "run", cache=None, progress=False)
    scores = read_parquet(tmp_path / "run" / "scores.parquet")
    for a in ("loss", "minkpp", "gradnorm"):
        assert np.isfinite(np.asarray(scores[a], dtype=float)).all() and m[a]["n_members"] == 6
    assert "bfloat16" in (tmp_path / "run" / "manifest.json").read_text()
