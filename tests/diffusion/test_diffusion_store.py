"""Records rotelab writes and reads back (safetensors + JSON header) and the testbed's training checkpoint."""

import numpy as np
import pytest
import torch

from rotelab.diffusion import store
from rotelab.errors import RotelabError


def test_a_record_round_trips_exactly(tmp_path):
    obj = {"per_item": {"$tensor": {"w": torch.arange(5, dtype=torch.long)}, "../x": [1, 2.5, None, True, "s"]},
           "stats": (torch.randn(3, dtype=torch.float64), torch.ones(2, 2, dtype=torch.float16)), "sims": np.random.rand(2, 3).astype(np.float32),
           "empty": torch.empty(0, dtype=torch.long), "nan": float("nan"), "scalar": torch.tensor(3.0)}
    store.save(tmp_path / "r.safetensors", obj)
    back = store.load(tmp_path / "r.safetensors")
    assert set(back["per_item"]) == {"$tensor", "../x"}, "keys that look like markers stay user keys"
    assert torch.equal(back["per_item"]["$tensor"]["w"], obj["per_item"]["$tensor"]["w"]) and back["per_item"]["../x"] == [1, 2.5, None, True, "s"]
    assert all(torch.equal(a, b) and a.dtype == b.dtype for a, b in zip(back["stats"], obj["stats"]))
    assert isinstance(back["sims"], np.ndarray) and back["sims"].dtype == np.float32 and np.array_equal(back["sims"], obj["sims"])
    assert back["empty"].shape == (0,) and np.isnan(back["nan"]) and float(back["scalar"]) == 3.0


def test_a_record_refuses_what_it_cannot_store_and_reading_junk_is_one_line(tmp_path):
    with pytest.raises(TypeError):
        store.save(tmp_path / "a.safetensors", {"x": object()})
    with pytest.raises(TypeError):
        store.save(tmp_path / "a.safetensors", {1: "int key"})
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(RotelabError, match="junk.safetensors: not a rotelab safetensors record"):
        store.load(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "plain.safetensors")  # a safetensors file without rotelab's structure
    with pytest.raises(RotelabError, match="no rotelab structure"):
        store.load(tmp_path / "plain.safetensors")
    with pytest.raises(RotelabError, match="missing.safetensors: file not found"):
        store.load(tmp_path / "missing.safetensors")


def test_interrupted_testbed_training_resumes_to_the_same_weights_and_losses(tmp_path):
    from rotelab.diffusion.testbed import CHECKPOINT, PRESETS, build_models, train_diffusion

    cfg = PRESETS["tiny"]
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 3, cfg.image_size, cfg.image_size, generator=g), torch.randn(6, cfg.n_tokens, cfg.width, generator=g)
    kw = dict(batch_size=4, lr=cfg.lr, seed=0)
    unet, _, sched = build_models(cfg)
    straight = train_diffusion(unet, y, x, sched, steps=6, **kw)
    resumed_unet, _, sched2 = build_models(cfg)
    ckpt = tmp_path / CHECKPOINT
    train_diffusion(resumed_unet, y, x, sched2, steps=3, ckpt=ckpt, **kw)  # "killed" after 3 steps: the checkpoint holds them
    fresh, _, sched3 = build_models(cfg)  # a new process: weights and AdamW state come from the checkpoint only
    resumed = train_diffusion(fresh, y, x, sched3, steps=6, ckpt=ckpt, **kw)
    assert resumed == straight
    assert all(torch.equal(a, b) for a, b in zip(unet.state_dict().values(), fresh.state_dict().values()))
