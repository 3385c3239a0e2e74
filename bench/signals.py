"""Benchmark the per-token signal engine against a bare length-sorted batched forward loop.

Writes bench/results/signals.json: tokens/s of both on a ~1M and a ~4M parameter GPT-2 over the
same texts in the same run (goal: engine >= 0.9x bare), where the vocabulary statistics cost,
and peak RSS of a streaming pass over 1k vs 10k texts (goal: flat).

    python bench/signals.py [--texts 1000] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(int(__import__("os").environ.get("ROTELAB_THREADS", torch.get_num_threads())))

RESULTS = Path(__file__).parent / "results"


def texts(n: int) -> list[str]:
    from rotelab.testbed.corpora import load_book, passages

    pool = [p for b in ("alice29", "hamlet_gut", "plrabn12", "macbeth_gut") for p in passages(load_book(b), words=60)]
    return [pool[i % len(pool)] + f" ({i})" for i in range(n)]


def model(d: int, layers: int, vocab: int = 4096, ctx: int = 128):
    from rotelab.core.models import HFLanguageModel
    from rotelab.core.training import train_tokenizer
    from rotelab.core.training import ModelSpec, new_model

    tok = train_tokenizer(texts(2000), vocab_size=vocab)
    m = new_model(ModelSpec(n_layer=layers, n_embd=d, n_head=4, n_positions=ctx, vocab_size=vocab), seed=0)
    return HFLanguageModel(m, tok, name=f"gpt2-d{d}-L{layers}")


@torch.inference_mode()
def bare_loop(lm, ids: list[list[int]], bs: int) -> float:
    """Length-sorted batched model(input_ids) with nothing else: the floor."""
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    t = time.perf_counter()
    for b in range(0, len(order), bs):
        x, mask = lm._right_pad([ids[i] for i in order[b : b + bs]])
        lm.model(input_ids=x, attention_mask=mask).logits
    return time.perf_counter() - t


@torch.inference_mode()
def logsoftmax_only(lm, ids: list[list[int]], bs: int) -> float:
    """Bare loop plus log_softmax: isolates what the vocabulary statistics add beyond it."""
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    t = time.perf_counter()
    for b in range(0, len(order), bs):
        x, mask = lm._right_pad([ids[i] for i in order[b : b + bs]])
        torch.log_softmax(lm.model(input_ids=x, attention_mask=mask).logits.float(), -1)
    return time.perf_counter() - t


def engine(lm, data: list[str], bs: int) -> float:
    from rotelab.core.signals import iter_signals

    t = time.perf_counter()
    for _ in iter_signals(lm, data, batch_size=bs, progress=False):
        pass
    return time.perf_counter() - t


def speed(d: int, layers: int, n: int, bs: int) -> dict:
    lm = model(d, layers)
    data = texts(n)
    ids = [x[: lm.max_length] for x in lm.tokenize(data)]
    n_tok = sum(len(x) for x in ids)
    engine(lm, data[:64], bs)  # warm-up
    rows = {"bare": [], "log_softmax": [], "engine": []}
    for _ in range(3):  # interleaved repeats: shared-machine noise hits all three alike
        rows["bare"].append(bare_loop(lm, ids, bs))
        rows["log_softmax"].append(logsoftmax_only(lm, ids, bs))
        rows["engine"].append(engine(lm, data, bs))
    best = {k: min(v) for k, v in rows.items()}
    return {
        "model": lm.name, "parameters": sum(p.numel() for p in lm.model.parameters()), "texts": n, "tokens": n_tok, "batch_size": bs,
        "tokens_per_s": {k: round(n_tok / v) for k, v in best.items()},
        "engine_over_bare": round(best["bare"] / best["engine"], 3),
        "share_of_engine_time_in_vocab_stats": round((best["engine"] - best["bare"]) / best["engine"], 3),
        "share_of_engine_time_in_log_softmax": round((best["log_softmax"] - best["bare"]) / best["engine"], 3),
        "seconds_all_repeats": {k: [round(x, 2) for x in v] for k, v in rows.items()},
    }


def rss_child(n: int) -> None:
    """Child process: stream signals for n texts, print peak RSS (MiB)."""
    lm = model(128, 2)
    data = texts(n)
    nll = 0.0
    from rotelab.core.signals import iter_signals

    for _, s in iter_signals(lm, data, batch_size=32, progress=False):
        nll += s.nll  # a reducer: nothing kept per text
    print(json.dumps({"texts": n, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rss-child", type=int, default=0)
    a = ap.parse_args()
    if a.rss_child:
        rss_child(a.rss_child)
        return
    out = {"speed": [speed(128, 2, a.texts, a.batch_size), speed(256, 4, a.texts, a.batch_size)], "torch_threads": torch.get_num_threads()}
    out["rss"] = [json.loads(subprocess.run([sys.executable, __file__, "--rss-child", str(n)], capture_output=True, text=True, check=True).stdout) for n in (1000, 10000)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "signals.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
