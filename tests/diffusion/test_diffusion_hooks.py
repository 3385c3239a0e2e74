"""Diffusion reads and edits activations through rotelab.core.hooks.module_hooks: no hook outlives its block."""

import pytest
import torch

from rotelab.diffusion import detect, locality, nemo, wanda


def _hooks(*modules):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for mod in modules for m in mod.modules())


def test_no_hook_outlives_its_block_even_when_the_block_raises(tiny):
    model, items, _, _, ys = tiny
    net = (model.unet, model.text_encoder)
    assert _hooks(*net) == 0
    layer = nemo.value_layers(model.unet)[0]
    with pytest.raises(RuntimeError):
        with nemo.deactivated(model.unet, {layer: [0]}):
            assert _hooks(*net) == 1
            raise RuntimeError("boom")
    assert _hooks(*net) == 0
    acts = locality.layer_activations(model, ys[0], locality.cross_attention_layers(model.unet))
    assert acts and _hooks(*net) == 0
    norms = wanda.input_norms(model, ys[0], seeds=(0,), steps=2)
    assert norms and _hooks(*net) == 0
    detect.token_attribution(model, items[0]["text"], seeds=range(1))
    assert _hooks(*net) == 0


def test_deactivating_no_neuron_changes_nothing(tiny):
    model, _, _, _, ys = tiny
    x = torch.randn(model.noise_shape(1), generator=torch.Generator().manual_seed(0))
    t = model.first_timestep()
    with torch.no_grad():
        plain = model.eps(x, t, ys[0])
        with nemo.deactivated(model.unet, {n: [] for n in nemo.value_layers(model.unet)}):
            same = model.eps(x, t, ys[0])
    assert torch.equal(plain, same)
