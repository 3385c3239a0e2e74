import numpy as np
import torch

from rotelab.recsys.models import ModelConfig, Recommender
from rotelab.recsys.qla import history_state, masked_reference, qla_causal, qla_targets

torch.manual_seed(0)


def _qkv(B, H, T, dh):
    return (torch.randn(B, H, T, dh, dtype=torch.float64) for _ in range(3))


def test_qla_targets_equals_masked_reference_with_target_mask():
    B, H, N, T, dh = 2, 3, 50, 7, 8
    qh, kh, vh = _qkv(B, H, N, dh)
    qt, kt, vt = _qkv(B, H, T, dh)
    hist_mask = torch.ones(B, N, dtype=torch.bool)
    hist_mask[0, :13] = False  # left padding of the first user
    out = qla_targets(qt, kt, vt, history_state(kh, vh, hist_mask))
    # O(N^2) reference over the sequence [history; targets]: targets see all real history + themselves
    vis = torch.zeros(B, T, N + T, dtype=torch.bool)
    vis[:, :, :N] = hist_mask[:, None, :]
    vis[:, torch.arange(T), N + torch.arange(T)] = True
    ref = masked_reference(qt, torch.cat([kh, kt], 2), torch.cat([vh, vt], 2), vis)
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)


def test_qla_causal_running_sums_equal_masked_reference_with_prefix():
    B, H, P, T, dh = 2, 2, 5, 40, 4
    kp, vp, _ = _qkv(B, H, P, dh)
    q, k, v = _qkv(B, H, T, dh)
    out = qla_causal(q, k, v, history_state(kp, vp))
    vis = torch.cat([torch.ones(T, P, dtype=torch.bool), torch.tril(torch.ones(T, T, dtype=torch.bool))], dim=1)
    ref = masked_reference(q, torch.cat([kp, k], 2), torch.cat([vp, v], 2), vis)
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)


def test_qla_causal_never_looks_ahead():
    q, k, v = _qkv(1, 1, 10, 4)
    v2 = v.clone()
    v2[..., 6:, :] += 100.0
    a, b = qla_causal(q, k, v), qla_causal(q, k, v2)
    torch.testing.assert_close(a[..., :6, :], b[..., :6, :])
    assert not torch.allclose(a[..., 6:, :], b[..., 6:, :])


def test_streamed_summary_equals_one_shot_summary():
    m = Recommender(ModelConfig("vista", n_items=50, n_tasks=1, d=8, heads=2, n_seeds=4)).double().eval()
    ids = np.random.default_rng(0).integers(1, 51, size=1000)
    with torch.no_grad():
        one = m.summarize(torch.as_tensor(ids)[None])[0]
    streamed = m.summarize_stream(ids[a : a + 97] for a in range(0, 1000, 97))
    torch.testing.assert_close(streamed, one)
