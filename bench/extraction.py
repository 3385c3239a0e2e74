"""Speed of book extraction: the core's batched greedy decoder vs a batch-1 ``model.generate`` loop.

Same model, same windows, same run; outputs checked token-identical. Writes
``bench/results/extraction_speed_d<N>.json``.

    nice -n 10 .venv/bin/python bench/extraction.py --windows 64 --batch-size 64
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--prefix", type=int, default=96)
    ap.add_argument("--suffix", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n-embd", type=int, default=128, help="128: the testbed's size; 256: the 4.3M model of ENVIRONMENT.md's figures")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import transformers as tf

    from rotelab.core.models import HFLanguageModel
    from rotelab.extraction.book import BookConfig, windows
    from rotelab.testbed.corpora import load_book
    from rotelab.core.training import train_tokenizer

    text = load_book("alice29")
    tok = train_tokenizer([text], vocab_size=2048)
    torch.manual_seed(0)
    cfg = tf.GPT2Config(vocab_size=len(tok), n_positions=256, n_embd=args.n_embd, n_layer=4, n_head=4, bos_token_id=0, eos_token_id=0)
    lm = HFLanguageModel(tf.AutoModelForCausalLM.from_config(cfg), tok)
    ids = tok(text)["input_ids"]
    wins = windows(ids, BookConfig(prefix_tokens=args.prefix, suffix_tokens=args.suffix, max_windows=args.windows))
    prompts = [p for _, p, _ in wins]

    t = time.perf_counter()
    batched = lm.greedy(prompts, args.suffix, batch_size=args.batch_size)
    t_batched = time.perf_counter() - t
    t = time.perf_counter()
    loop = []
    with torch.inference_mode():
        for p in prompts:
            out = lm.model.generate(torch.tensor([p]), max_new_tokens=args.suffix, min_new_tokens=args.suffix, do_sample=False, pad_token_id=0)
            loop.append(out[0, len(p):].tolist())
    t_loop = time.perf_counter() - t
    n_tok = len(prompts) * args.suffix
    res = {
        "model": f"random GPT-2, 4 layers, d={args.n_embd}, ctx 256 (CPU)", "n_parameters": sum(p.numel() for p in lm.model.parameters()), "threads": args.threads, "windows": len(prompts),
        "prefix": args.prefix, "suffix": args.suffix, "batch_size": args.batch_size,
        "batched_tokens_per_s": n_tok / t_batched, "generate_loop_tokens_per_s": n_tok / t_loop,
        "speedup": t_loop / t_batched, "token_identical": batched == loop,
    }
    out = Path(__file__).parent / "results" / f"extraction_speed_d{args.n_embd}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
