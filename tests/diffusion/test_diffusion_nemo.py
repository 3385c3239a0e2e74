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
    cal = nemo.calibrate(model, controls_for_calibration(items, ys))
    mem = max((i for i, it in enumerate(items) if it["label"] == 1), key=lambda i: nemo.memorization_signal(model, ys[i]))
    r = nemo.select_neurons(model, ys[mem], cal["stats"], cal["tau"])
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
        sig[it["split"]].append(nemo.memorization_signal(model, y))
    assert sum(sig["memorized"]) / len(sig["memorized"]) > sum(sig["unseen"]) / len(sig["unseen"])
