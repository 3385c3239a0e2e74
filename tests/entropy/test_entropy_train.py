import pytest
import torch

from rotelab.entropy.gapt import GateConfig
from rotelab.entropy.gapt_train import GaptConfig, sequence_batches, step_mbe, train_gapt
from rotelab.entropy.mbe import patch_mbe
from rotelab.core.training import ModelSpec, new_model

SPEC = ModelSpec(n_layer=3, n_embd=32, n_head=2, n_positions=32, vocab_size=50)


def _data(n=24, T=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(1, 50, (T,), generator=g).tolist() for _ in range(n)]


def test_mbe_term_sends_gradient_into_every_block_below_the_gated_one():
    model = new_model(SPEC, seed=0)
    x = torch.tensor(_data(4))
    hs = model(input_ids=x, output_hidden_states=True).hidden_states
    patch_mbe(hs[2]).backward()  # output of block 2
    g = {n: p.grad for n, p in model.named_parameters()}
    assert g["transformer.h.1.mlp.c_fc.weight"].abs().sum() > 0
    assert g["transformer.wte.weight"].abs().sum() > 0
    assert g["transformer.h.2.mlp.c_fc.weight"] is None  # above the gated layer: untouched


def test_gapt_training_logs_phases_and_switches_and_the_mbe_term_changes_the_update():
    data = _data()
    gate = GateConfig(p_m=2, p_a=2, tau_m=10.0, tau_a=10.0)  # huge thresholds: every step is a plateau
    cfg = GaptConfig(objective="gapt", steps=8, warmup_steps=1, mbe_weight=5.0, gate=gate)
    res = train_gapt(new_model(SPEC, seed=0), sequence_batches(data, 4, seed=0), cfg, progress=False)
    phases = [s["phase"] for s in res["steps"]]
    assert phases == [1, 2, 2, 1, 1, 2, 2, 1]
    assert [s["reason"] for s in res["switches"]] == ["ce_plateau", "mbe_plateau"] * 2
    assert {s["layer"] for s in res["steps"]} == {2}  # 3 blocks: the one middle block
    ce = train_gapt(new_model(SPEC, seed=0), sequence_batches(data, 4, seed=0), GaptConfig(objective="ce", steps=8, warmup_steps=1), progress=False)
    assert all(s["phase"] == 1 for s in ce["steps"]) and not ce["switches"]
    # identical up to the first compression step, different after it (the MBE term moved the weights)
    assert ce["steps"][1]["ce"] == pytest.approx(res["steps"][1]["ce"])
    assert ce["steps"][2]["ce"] != pytest.approx(res["steps"][2]["ce"], abs=1e-7)


def test_compression_lowers_mbe_of_the_gated_layer():
    torch.manual_seed(0)
    data = _data(16, 32)
    run = lambda obj: train_gapt(new_model(SPEC, seed=1), sequence_batches(data, 8, seed=0),
                                 GaptConfig(objective=obj, steps=12, warmup_steps=1, lr=3e-3, mbe_weight=10.0,
                                            gate=GateConfig(p_m=1, p_a=1000, tau_m=10.0, tau_spike=1e9)), progress=False)
    gapt, ce = run("gapt"), run("ce")
    assert gapt["steps"][-1]["mbe"] < ce["steps"][-1]["mbe"] - 0.05


def test_all_middle_policy_reports_the_mean_marker():
    model = new_model(ModelSpec(n_layer=4, n_embd=32, n_head=2, n_positions=32, vocab_size=50), seed=0)
    x = torch.tensor(_data(2, 16))
    hs = model(input_ids=x, output_hidden_states=True).hidden_states
    val, layer = step_mbe(hs, torch.ones_like(x), 0, GaptConfig(layers="all_middle"))
    assert layer == -1
    assert val.item() == pytest.approx((patch_mbe(hs[2]) + patch_mbe(hs[3])).item() / 2, abs=1e-5)


def test_mbe_logger_plugs_into_the_testbed_trainer():
    from rotelab.entropy.measure import MBELogger
    from rotelab.core.training import TrainSpec, collate, train_on_schedule

    data = _data(8, 16)
    model = new_model(SPEC, seed=0)
    probe_ids, probe_mask, _ = collate(data[:2], 0)
    logger = MBELogger(model, probe_ids, probe_mask)
    log = train_on_schedule(model, data, [1] * 8, TrainSpec(batch_size=4, warmup_steps=1), progress=False, on_log=logger, log_every=1)
    assert [h["step"] for h in logger.history] == [0, 1]
    assert all(len(e["mbe_layers"]) == SPEC.n_layer + 1 for e in log["log"])
    assert all(0 <= v <= 2.08 for e in log["log"] for v in e["mbe_layers"])
