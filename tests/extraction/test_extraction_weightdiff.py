"""Weight diff: module-type table, full checkpoints, LoRA adapters (Conv1D and Linear), CLI."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from rotelab.cli import app as _app
from rotelab.extraction.module_types import layer_index, module_type
from rotelab.extraction.weightdiff import adapter_pairs, full_pairs, weight_diff

runner = CliRunner()

EXPECTED = {  # every block parameter of the four tiny architectures maps to a known type
    "gpt2": {"attn.c_attn": "attention", "attn.c_proj": "attention", "mlp.c_fc": "mlp", "mlp.c_proj": "mlp", "ln_1": "norm", "wte": "embedding"},
    "llama": {"self_attn.q_proj": "attention", "self_attn.o_proj": "attention", "mlp.down_proj": "mlp", "input_layernorm": "norm", "embed_tokens": "embedding"},
    "gpt_neox": {"attention.query_key_value": "attention", "attention.dense": "attention", "mlp.dense_4h_to_h": "mlp", "post_attention_layernorm": "norm", "embed_in": "embedding"},
    "qwen2": {"self_attn.k_proj": "attention", "mlp.gate_proj": "mlp", "model.norm": "norm", "embed_tokens": "embedding"},
}


@pytest.mark.parametrize("arch", sorted(EXPECTED))
def test_module_types_cover_every_parameter(arch_dirs, arch):
    names = [n for n, _ in AutoModelForCausalLM.from_pretrained(arch_dirs[arch]).named_parameters()]
    types = {n: module_type(n) for n in names}
    assert "other" not in types.values(), [n for n, t in types.items() if t == "other"]
    for part, t in EXPECTED[arch].items():
        hits = [n for n in names if part in n]
        assert hits and all(types[n] == t for n in hits), (part, hits)
    assert {layer_index(n) for n in names if module_type(n) in ("attention", "mlp")} == {0, 1}


def test_unknown_module_is_other():
    assert module_type("model.layers.0.router.gate.weight") == "other"


def _copy_with(src, dst, edit):
    shutil.copytree(src, dst)
    sd = load_file(dst / "model.safetensors")
    edit(sd)
    save_file(sd, dst / "model.safetensors", metadata={"format": "pt"})
    return dst


def test_full_diff_counts_exactly_the_changed_weights(arch_dirs, tmp_path):
    base = arch_dirs["gpt2"]
    key = "transformer.h.0.attn.c_attn.weight"

    def edit(sd):
        w = sd[key]
        w.view(-1)[:100] *= 1.5  # 100 weights changed by 50%
        sd["transformer.h.1.mlp.c_fc.weight"].view(-1)[:10] *= 1.001  # 10 weights by 0.1%

    tuned = _copy_with(base, tmp_path / "tuned", edit)
    res = weight_diff(full_pairs(base, tuned))
    n = res["n_weights"]
    assert res["share_changed_gt_1pct"] == pytest.approx(100 / n)
    assert res["share_changed_gt_100pct"] == 0.0
    assert res["by_layer"]["0"]["share_changed_gt_1pct"] > 0 and res["by_layer"]["1"]["share_changed_gt_1pct"] == 0
    assert res["by_type"]["attention"]["share_changed_gt_1pct"] > 0 and res["by_type"]["mlp"]["share_changed_gt_1pct"] == 0
    assert res["attention_mlp_ratio"] > 100
    assert res["lower_quarter_share_of_changed_gt_1pct"] == 1.0
    assert sum(res["log10_r_histogram"]["counts"]) == n


def _lora(arch_dir, out, targets, fan_in_fan_out):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(arch_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets, fan_in_fan_out=fan_in_fan_out, init_lora_weights=True))
    for n, p in peft_model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.05)  # PEFT starts B at 0: a real adapter has moved it
    peft_model.save_pretrained(out / "adapter")
    peft_model.merge_and_unload().save_pretrained(out / "merged")
    return out / "adapter", out / "merged"


@pytest.mark.parametrize("arch,targets,fifo", [("gpt2", ["c_attn", "c_proj"], True), ("llama", ["q_proj", "v_proj"], False)])
def test_lora_update_equals_merged_model_diff(arch_dirs, tmp_path, arch, targets, fifo):
    adapter, merged = _lora(arch_dirs[arch], tmp_path, targets, fifo)
    via_adapter = weight_diff(adapter_pairs(arch_dirs[arch], adapter))
    via_merge = weight_diff(full_pairs(arch_dirs[arch], merged))
    for key in ("share_changed_gt_1pct", "share_changed_gt_100pct", "n_weights"):
        assert via_adapter[key] == pytest.approx(via_merge[key], rel=1e-3, abs=1e-6), key
    assert via_adapter["share_changed_gt_1pct"] > 0
    assert via_adapter["by_type"]["norm"]["share_changed_gt_1pct"] == 0
    if arch == "gpt2":  # c_proj targets both attn.c_proj and mlp.c_proj
        assert via_adapter["by_type"]["mlp"]["share_changed_gt_1pct"] > 0


def test_cli_weightdiff_json_keys_figures_and_one_source(arch_dirs, tmp_path):
    adapter, _ = _lora(arch_dirs["gpt2"], tmp_path, ["c_attn"], True)
    r = runner.invoke(_app, ["weightdiff", "--base", str(arch_dirs["gpt2"]), "--adapter", str(adapter), "--out", str(tmp_path / "run"), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    for group in [res, *res["by_type"].values(), *res["by_layer"].values()]:
        assert {"share_changed_gt_1pct", "share_changed_gt_100pct"} <= set(group)
    assert res["by_type"]["mlp"]["share_changed_gt_1pct"] == 0 and res["attention_mlp_ratio"] is None
    assert (tmp_path / "run/figures/weightdiff_heatmap.png").exists()
    bad = runner.invoke(_app, ["weightdiff", "--base", str(arch_dirs["gpt2"]), "--out", str(tmp_path / "run2")])
    assert bad.exit_code != 0 and "exactly one of --tuned" in str(bad.exception)
    assert not (tmp_path / "run2").exists()
