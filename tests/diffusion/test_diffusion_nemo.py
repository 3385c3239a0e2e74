import pytest
import torch

from rotelab.diffusion import nemo
from rotelab.diffusion.mitigate import controls_for_calibration


def test_deactivated_zeroes_selected_value_channels_and_restores(tiny):
    model, _, _, _, ys = tiny
    name = nemo.value_layers(model.unet)[0]
    mod = dict(model.unet.named_modules())[name]
    full = mod(ys[0])
    with nemo.deactivated(model.unet, {name: [0, 3]}):
        off = mod(ys[0])
    assert (off[:, [0, 3]] == 0).all() and torch.equal(off[:, 1], full[:, 1])
    assert torch.equal(mod(ys[0]), full)


def test_nemo_selection_mitigates_a_memorized_prompt_with_a_refined_subset(tiny):
    model, items, _, _, ys = tiny
    seeds = range(4)  # 4 seeds instead of NeMo's 10: keeps the test fast
    cal = nemo.calibrate(model, controls_for_calibration(items, ys), seeds=seeds)
    mem = max((i for i, it in enumerate(items) if it["label"] == 1), key=lambda i: nemo.memorization_signal(model, ys[i], seeds=seeds))
    r = nemo.select_neurons(model, ys[mem], cal["stats"], cal["tau"], seeds=seeds)
    assert r["signal_before"] > cal["tau"], "the memorized prompt must show the memorization signal"
    assert r["mitigated"] and r["signal_after"] < cal["tau"]
    z = nemo.z_scores(model, ys[mem], cal["stats"])
    initial = {n: set(torch.nonzero(zz > r["theta"]).flatten().tolist()) for n, zz in z.items()}
    chosen = {n: set(v) for n, v in r["selection"].items()}
    assert all(chosen[n] <= initial[n] for n in chosen), "refinement only re-enables neurons"
    assert 0 < sum(map(len, chosen.values())) <= sum(map(len, initial.values()))


def test_memorization_signal_is_higher_for_memorized_than_unseen_prompts(tiny):
    model, items, _, _, ys = tiny
    sig = {it["split"]: [] for it in items}
    for it, y in zip(items, ys):
        sig[it["split"]].append(nemo.memorization_signal(model, y, seeds=range(4)))
    assert sum(sig["memorized"]) / len(sig["memorized"]) > sum(sig["unseen"]) / len(sig["unseen"])


def _fake_z(layers):
    """z-scores of a fake 2-layer model: layer a (0..4), layer b (0..2)."""
    return {"a": torch.tensor([4.6, 2.1, 0.3, 3.2, -0.4]), "b": torch.tensor([1.1, 0.6, -1.2])}


def test_nemo_selection_stops_at_the_first_theta_that_brings_the_signal_below_tau_and_refines(monkeypatch):
    """Fake model: the memorization signal falls below τ once neurons a1 and b0 are both off."""
    needed = {("a", 1), ("b", 0)}
    calls = []

    def fake_check(model, y, tau, **kw):
        return {"signal": 0.9, "replication": None, "replication_max": None, "ok": False}

    def fake_check_with(model, y, sel, tau, **kw):
        off = {(n, j) for n, idx in sel.items() for j in idx}
        calls.append(off)
        sig = 0.2 if needed <= off else 0.9
        return {"signal": sig, "replication": None, "replication_max": None, "ok": sig < tau}

    monkeypatch.setattr(nemo, "z_scores", lambda model, y, stats: _fake_z(None))
    monkeypatch.setattr(nemo, "check", fake_check)
    monkeypatch.setattr(nemo, "_check_with", fake_check_with)
    r = nemo.select_neurons(None, torch.zeros(2, 2), {}, 0.5)
    # θ grid 5, 4.75, ...: candidate sets grow at 4.5 ({a0}), 3.0 (+a3), 2.0 (+a1), 1.0 (+b0): the search stops at θ = 1.0
    assert r["theta"] == 1.0 and r["mitigated"]
    thetas_checked = calls[: calls.index({("a", 0), ("a", 3), ("a", 1), ("b", 0)}) + 1]
    assert len(thetas_checked) == 4, "equal candidate sets are not re-checked, and the search stops at the first mitigating θ"
    assert {(n, j) for n, idx in r["selection"].items() for j in idx} == needed, "refinement re-enables every neuron not needed"
    assert r["signal_after"] < 0.5


def test_nemo_selection_reports_unmitigated_when_even_every_neuron_is_not_enough(monkeypatch):
    monkeypatch.setattr(nemo, "z_scores", lambda model, y, stats: _fake_z(None))
    monkeypatch.setattr(nemo, "check", lambda *a, **k: {"signal": 0.9, "replication": None, "replication_max": None, "ok": False})
    monkeypatch.setattr(nemo, "_check_with", lambda *a, **k: {"signal": 0.9, "replication": None, "replication_max": None, "ok": False})
    r = nemo.select_neurons(None, torch.zeros(2, 2), {}, 0.5)
    assert not r["mitigated"] and r["theta"] is None
    assert r["selection"] == {"a": [0, 1, 2, 3, 4], "b": [0, 1, 2]}, "the last candidate is every neuron"


def test_check_requires_replication_to_fall_to_the_null_floor(monkeypatch):
    """Signal below τ is not enough when the target image is known: one replicating seed of 4 fails at floor 0."""
    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 4, 4, generator=g) * 2 - 1
    imgs = torch.stack([target, *(torch.rand(3, 4, 4, generator=g) * 2 - 1 for _ in range(3))])
    monkeypatch.setattr(nemo, "generations", lambda model, y, **kw: imgs)
    sig = nemo.signal_of(imgs)
    assert nemo.check(None, None, sig + 0.1)["ok"], "without a target only m < τ counts"
    r = nemo.check(None, None, sig + 0.1, target=target, rep_threshold=0.7)
    assert r["replication"] == 0.25 and not r["ok"]
    assert nemo.check(None, None, sig + 0.1, target=target, rep_threshold=0.7, floor=0.25)["ok"]
    assert not nemo.check(None, None, sig - 0.01, target=target, floor=1.0)["ok"]
