"""rotelab on a GPU, side by side with the naive ways, on random-init models of real shapes (no
downloads): GPT-2-124M-shaped and Llama-1B-shaped, bf16.

  1. the signal engine vs a bare batched forward pass (the floor);
  2. all single-pass attacks (loss, zlib, Min-K%, Min-K%++) from one cached pass vs the MIMIR
     pattern: every attack runs its own forward pass, one text at a time;
  3. batched greedy extraction (the core decoder) vs Hugging Face ``generate``, batched and batch-1.

Each comparison warms both sides up, interleaves repeats in alternating order and reports the
median ratio with its spread. Writes bench/results/gpu.json. Without a GPU it refuses, unless
``--device cpu --smoke`` (tiny shapes: a check that the script runs).

    python bench/gpu.py                       # on a machine with CUDA
    python bench/gpu.py --device cpu --smoke  # anywhere, seconds
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

SHAPES = {
    "gpt2-124m": dict(arch="gpt2", vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12),
    "llama-1b": dict(arch="llama", vocab_size=128256, max_position_embeddings=2048, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8),
    "smoke": dict(arch="gpt2", vocab_size=2048, n_positions=256, n_embd=64, n_layer=2, n_head=2),
}


def build(shape: str, device: str, dtype: torch.dtype):
    import transformers as tf

    from rotelab.core.models import HFLanguageModel

    spec = dict(SHAPES[shape])
    arch = spec.pop("arch")
    cfg = tf.GPT2Config(**spec) if arch == "gpt2" else tf.LlamaConfig(**spec)
    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_config(cfg).to(device=device, dtype=dtype)
    from rotelab.core.training import train_tokenizer

    tok = train_tokenizer(["x"] * 4, vocab_size=300)  # tokenization is not timed: id lists are scored directly
    return HFLanguageModel(model, tok, name=shape), spec["vocab_size"]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved(a, b, repeats: int, device: str) -> dict:
    def t(fn):
        sync(device)
        s = time.perf_counter()
        fn()
        sync(device)
        return time.perf_counter() - s

    a(), b()
    ta, tb = [], []
    for r in range(repeats):
        pair = (a, b) if r % 2 == 0 else (b, a)
        x, y = t(pair[0]), t(pair[1])
        (ta, tb)[0 if pair[0] is a else 1].append(x)
        (ta, tb)[1 if pair[0] is a else 0].append(y)
    ratio = np.array(tb) / np.array(ta)
    return {"median_ratio_b_over_a": float(np.median(ratio)), "min": float(ratio.min()), "max": float(ratio.max()), "a_s": ta, "b_s": tb}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--shapes", default="gpt2-124m,llama-1b")
    ap.add_argument("--texts", type=int, default=256)
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--smoke", action="store_true", help="tiny shapes, few texts (runs on a CPU)")
    a = ap.parse_args()
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run on a GPU machine, or --device cpu --smoke to check the script")
    if a.smoke:
        a.shapes, a.texts, a.length, a.repeats = "smoke", 32, 64, 2
    dtype = getattr(torch, a.dtype)
    from rotelab.membership.attacks import loss_score, mink_score, minkpp_score

    out = {"device": a.device, "dtype": a.dtype, "torch": torch.__version__, "gpu": torch.cuda.get_device_name() if a.device.startswith("cuda") else None, "shapes": {}}
    for shape in a.shapes.split(","):
        lm, V = build(shape, a.device, dtype)
        g = torch.Generator().manual_seed(1)
        seqs = [torch.randint(0, V, (a.length,), generator=g).tolist() for _ in range(a.texts)]
        batches = [seqs[i : i + a.batch_size] for i in range(0, len(seqs), a.batch_size)]

        @torch.inference_mode()
        def bare():
            for b in batches:
                ids, mask = lm._right_pad(b)
                lm.model(input_ids=ids, attention_mask=mask).logits

        def engine():
            return [s for b in batches for s in lm.forward_signals(b)]

        def single_pass_attacks():
            sig = engine()
            return [(loss_score(s), mink_score(s), minkpp_score(s)) for s in sig]

        @torch.inference_mode()
        def mimir_loop():  # every attack its own pass, one text at a time (the MIMIR pattern)
            for attack in ("loss", "mink", "minkpp"):
                for x in seqs:
                    lp = torch.log_softmax(lm.model(input_ids=torch.tensor([x], device=lm.device)).logits[0, :-1].float(), -1)  # (T-1, V)
                    tok = lp.gather(-1, torch.tensor(x[1:], device=lm.device)[:, None])[:, 0]
                    if attack == "minkpp":
                        mu = (lp.exp() * lp).sum(-1)
                        tok = (tok - mu) / ((lp.exp() * lp * lp).sum(-1) - mu * mu).clamp_min(1e-6).sqrt()
                    tok.sort().values[: max(1, int(0.2 * len(tok)))].mean().item() if attack != "loss" else tok.mean().item()

        prompts = [x[:128] for x in seqs[: a.batch_size * 2]]
        n_new = 32

        def ours():
            lm.greedy(prompts, n_new, batch_size=a.batch_size)

        @torch.inference_mode()
        def hf_batched():
            for i in range(0, len(prompts), a.batch_size):
                lm.model.generate(torch.tensor(prompts[i : i + a.batch_size], device=lm.device), max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False, pad_token_id=0)

        @torch.inference_mode()
        def hf_one():
            for p in prompts[: a.batch_size]:
                lm.model.generate(torch.tensor([p], device=lm.device), max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False, pad_token_id=0)

        res = {
            "parameters": sum(p.numel() for p in lm.model.parameters()), "texts": a.texts, "length": a.length, "batch_size": a.batch_size,
            "engine_over_bare_forward": interleaved(bare, engine, a.repeats, a.device),
            "mimir_loop_over_single_pass_attacks": interleaved(single_pass_attacks, mimir_loop, a.repeats, a.device),
            "hf_generate_batched_over_ours": interleaved(ours, hf_batched, a.repeats, a.device),
        }
        one = interleaved(lambda: lm.greedy(prompts[: a.batch_size], n_new, batch_size=a.batch_size), hf_one, a.repeats, a.device)
        res["hf_generate_batch1_over_ours"] = one
        out["shapes"][shape] = res
        del lm
        if a.device.startswith("cuda"):
            torch.cuda.empty_cache()
    path = Path(__file__).parent / "results" / "gpu.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps({s: {k: (v["median_ratio_b_over_a"] if isinstance(v, dict) else v) for k, v in r.items()} for s, r in out["shapes"].items()}, indent=1))


if __name__ == "__main__":
    main()
