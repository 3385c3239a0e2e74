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


def _vista(d=8, S=4, n_items=50):
    torch.manual_seed(0)
    return Recommender(ModelConfig("vista", n_items=n_items, n_tasks=1, d=d, heads=2, n_seeds=S)).double().eval()


def test_summary_tokens_are_the_seed_qla_outputs_and_their_mass():
    m = _vista()
    torch.nn.init.normal_(m.summarizer.seeds)
    hist = torch.as_tensor(np.random.default_rng(1).integers(0, 51, size=(2, 300)))  # 0 = padding
    with torch.no_grad():
        z = m.summarize(hist)
        e, real = m.items(hist), (hist > 0).double()[..., None]
        f = m.summarizer.features(hist) * real  # phi(k_j): (B, N, S)
        mass = f.sum(1) + 1  # + the seed's own self term
        ref = (f.transpose(1, 2) @ e + m.summarizer.seeds) / mass[..., None]
    torch.testing.assert_close(z[..., :-1], ref)
    torch.testing.assert_close(z[..., -1], mass.log())


def test_summary_preserves_how_often_items_occur():
    """Histories with the same item mix but 10x the events: (nearly) the same averages, but the log
    mass of every used slot grows by ~log 10 -- the count a normalised summary would divide away."""
    m = _vista()
    few, many = torch.as_tensor([1, 2, 3] * 20)[None], torch.as_tensor([1, 2, 3] * 200)[None]
    with torch.no_grad():
        zf, zm = m.summarize(few)[0], m.summarize(many)[0]
        used = m.summarizer.features(torch.as_tensor([1, 2, 3])).sum(0) > 0.5
    assert used.any()
    torch.testing.assert_close(zm[used, -1] - zf[used, -1], torch.full((int(used.sum()),), np.log(10.0), dtype=torch.float64), atol=0.05, rtol=0)
    assert (zm[used, :-1] - zf[used, :-1]).abs().max() < 0.1 * zf[used, :-1].abs().max()
    # a history where item 1 occurs more often differs exactly in item 1's slot mass
    a, b = torch.as_tensor([1] * 10 + [2] * 90)[None], torch.as_tensor([1] * 50 + [2] * 50)[None]
    with torch.no_grad():
        r1 = m.summarizer.features(torch.as_tensor([1]))[0]  # item 1's routing
        la, lb = (r1 @ m.summarize(h)[0, :, -1] for h in (a, b))
    assert lb > la + 0.5


def test_log_mass_counts_a_token_as_that_many_events():
    """Softmax over tokens with + log mass = softmax over the events they stand for."""
    m = _vista()
    g = torch.Generator().manual_seed(0)
    cand, x = torch.randn(1, 5, 8, generator=g, dtype=torch.float64), torch.randn(1, 2, 8, generator=g, dtype=torch.float64)
    mask2, mask4 = torch.ones(1, 2, dtype=torch.bool), torch.ones(1, 4, dtype=torch.bool)
    with torch.no_grad():
        a = m.scorer(cand, x, mask2, torch.tensor([[np.log(3.0), 0.0]], dtype=torch.float64))
        b = m.scorer(cand, x[:, [0, 0, 0, 1]], mask4)
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])


def test_candidate_read_out_is_its_own_slot_of_the_cached_summary():
    m = _vista()
    hist, cand = torch.as_tensor([[1] * 40 + [2] * 5]), torch.as_tensor([[1, 2]])
    with torch.no_grad():
        z = m.summarize(hist)
        f = m.summarizer.features(cand)
        read = f @ z
    assert f.max() > 0.5  # routing is nearly hard from the start
    assert read[0, 0, -1] > read[0, 1, -1]  # the candidate seen 40 times reads a larger count
    torch.testing.assert_close(read[0, 0, -1], (f[0, 0] * z[0, :, -1]).sum())


def test_empty_seeds_take_no_attention_and_read_nothing():
    """A seed that summarises no events (log mass 0) is masked: changing its value changes nothing,
    while the same change to a filled seed does; a summary with every seed empty scores as the
    recent items alone (issue 17: empty seeds kept bias log 1 = 0 and took attention)."""
    m = _vista()
    torch.nn.init.normal_(m.summarizer.seeds)  # trained seeds are not zero: an empty seed's token is s_r
    hist, cand = torch.as_tensor([[1] * 30 + [2] * 30]), torch.as_tensor([[1, 2, 3, 7]])
    with torch.no_grad():
        z = m.summarize(hist)
        z[0, 0, -1] = 0.0  # seed 0: empty
        z[0, 1, -1] = 1.5  # seed 1: filled
        base = m(hist, cand, z)
        for r, moves in ((0, False), (1, True)):
            z2 = z.clone()
            z2[0, r, :-1] += 3.0
            out = m(hist, cand, z2)
            assert (not torch.allclose(out[0], base[0])) == moves, r
        empty = m.summarizer.summarize((torch.zeros(1, 1, 4, 8, dtype=torch.float64), torch.zeros(1, 1, 4, dtype=torch.float64)))
        assert empty[..., :-1].abs().max() > 0 and (empty[..., -1] == 0).all()  # the seed values, no mass
        a, b = m(hist, cand, empty), m(hist, cand, m.no_summary())
        ce, recent = m.items(cand), hist[:, -m.cfg.recent :]
        ref = m.scorer(ce, m.items(recent), recent > 0, torch.zeros(recent.shape, dtype=torch.float64), read=torch.zeros(1, 4, 9, dtype=torch.float64))
    for x in (a, b):
        torch.testing.assert_close(x[0], ref[0])
        torch.testing.assert_close(x[1], ref[1])


def test_streaming_no_events_gives_the_empty_summary():
    m = _vista()
    z = m.summarize_stream(iter(()))
    assert z.shape == (4, 9) and (z[:, -1] == 0).all()
