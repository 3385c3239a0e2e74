"""Memory of the per-token signal engine: peak RSS of a streaming pass over 1k vs 10k texts
(goal: flat; nothing is kept per text but the reducer's state). Each size runs in its own process.

Writes bench/results/signals_memory.json. The engine's *speed* against a bare forward pass is
``bench/membership_speed.py`` (batch-interleaved, median ratio with its spread).

    python bench/signals_memory.py [--sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
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
    ap.add_argument("--sizes", default="1000,10000", help="Texts per streaming pass, comma-separated.")
    ap.add_argument("--rss-child", type=int, default=0)
    a = ap.parse_args()
    if a.rss_child:
        rss_child(a.rss_child)
        return
    sizes = [int(x) for x in a.sizes.split(",")]
    out = {"rss": [json.loads(subprocess.run([sys.executable, __file__, "--rss-child", str(n)], capture_output=True, text=True, check=True).stdout) for n in sizes]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "signals_memory.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
