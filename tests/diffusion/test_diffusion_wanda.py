import torch

from rotelab.diffusion import nemo, wanda


def test_wanda_layers_include_the_cross_attention_key_value_projections(tiny):
    model = tiny[0]
    ffn = wanda.ffn_layers(model.unet, "ffn")
    both = wanda.ffn_layers(model.unet, "ffn+cross")
    assert ffn and all("ff.net" in n for n in ffn)
    assert set(both) - set(ffn) == {n for n in both if n.endswith(("attn2.to_k", "attn2.to_v"))} != set()


def test_top_per_row_prunes_the_highest_scores_of_each_row():
    s = {"l": torch.tensor([[0.1, 0.9, 0.5, 0.2], [0.7, 0.0, 0.3, 0.8]])}
    assert wanda.top_per_row(s, 0.5)["l"].tolist() == [1, 2, 4, 7]


def test_wanda_sparsity_is_raised_until_the_prompt_is_mitigated(tiny, monkeypatch):
    model, items, _, _, ys = tiny
    ctrl = ys[[i for i, it in enumerate(items) if it["label"] == 0][:3]]
    ref = wanda.reference_norms(model, ctrl)
    seen = []

    def fake_check(model_, y, tau, **kw):  # mitigated once at least 20% of the pruned layers' weights are zero
        w = dict(model_.unet.named_modules())[next(iter(ref))].weight
        share = float((w == 0).float().mean())
        seen.append(share)
        return {"signal": 1 - share, "replication": None, "replication_max": None, "ok": share >= 0.2}

    monkeypatch.setattr(nemo, "check", fake_check)
    r = wanda.select_weights(model, ys[0], ref, 0.5, sparsities=(0.05, 0.1, 0.3, 0.5))
    assert r["mitigated"] and r["sparsity"] == 0.3
    assert seen[0] == 0.0 and len(seen) == 4, "before, then 0.05, 0.1, 0.3: stops at the first that mitigates"
    assert float((dict(model.unet.named_modules())[next(iter(ref))].weight == 0).float().mean()) == 0.0, "weights restored"
