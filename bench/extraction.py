"""Speed of extraction decoding: the core's batched greedy decoder (``lm.greedy``) vs a batch-1
``model.generate`` loop, on the same windows of *Alice*, token-identical outputs checked.

Two workloads at the ``small`` testbed's scale (GPT-2, 2 layers, d 192, context 128, vocabulary
2048; random weights: speed does not depend on them):

- ``k_extractable``: 32-token prefix -> 32 greedy tokens (the testbed's extraction measure);
- ``book``: 97-token prefix -> 30 greedy tokens (``extract book`` with the paper's defaults fitted
  to a 128-token context: the demo's extraction step).

Method (as ``bench/membership_speed.py``): one thread; both sides warmed up; the windows are cut
into units of ``--batch-size`` windows; each unit runs the batched decoder and the loop back to
back, in an order that alternates from unit to unit and repeat to repeat (the host's speed drifts
on a shared machine); per repeat, times are summed over units. Headline: the median over repeats
of loop time / batched time in CPU seconds (user + system, the steadier cost on a shared
machine), with its min-max and interquartile range; wall-clock ratios beside it. A separate pass
splits the batched time into the prefill (one forward over the prompts) and the decoding steps:
loop / prefill is the ratio the batched decoder could reach if decoding were free.

    OMP_NUM_THREADS=1 nice -n 10 python bench/extraction.py [--repeats 7] [--windows 128] [--batch-size 64]

Writes ``bench/results/extraction_speed.json``. ``--layers 4 --n-embd 128 --ctx 256`` is the
model of the figures before this method (one timing per side, batched first, no warm-up).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results"
WORKLOADS = {"k_extractable": (32, 32), "book": (97, 30)}


def timed(fn: Callable[[], object]) -> tuple[np.ndarray, object]:
    """((wall s, CPU s), result) of ``fn()``."""
    r0, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    out = fn()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return np.array([time.perf_counter() - t, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)]), out


def generate_loop(model, prompts: list[list[int]], n_new: int) -> list[list[int]]:
    """The baseline: Hugging Face ``generate`` one prompt at a time (greedy, KV cache, no EOS stop)."""
    out = []
    with torch.inference_mode():
        for p in prompts:
            g = model.generate(torch.tensor([p]), max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False, pad_token_id=0)
            out.append(g[0, len(p) :].tolist())
    return out


def interleaved(units: list[tuple[Callable, Callable]], repeats: int) -> tuple[np.ndarray, bool]:
    """(repeats, 2 sides [batched, loop], 2 clocks [wall, cpu]) summed over units, and whether
    every unit's outputs were token-identical on every repeat."""
    out, same = np.zeros((repeats, 2, 2)), True
    for r in range(repeats):
        for i, (batched, loop) in enumerate(units):
            if (r + i) % 2 == 0:
                tb, gb = timed(batched)
                tl, gl = timed(loop)
            else:
                tl, gl = timed(loop)
                tb, gb = timed(batched)
            out[r, 0] += tb
            out[r, 1] += tl
            same &= gb == gl
    return out, same


def split_batched(lm, units: list[list[list[int]]], n_new: int, batch_size: int) -> dict[str, float]:
    """CPU seconds of the batched decoder spent in the prefill forward and in the decoding steps."""
    model, orig, acc = lm.model, lm.model.forward, {"prefill": 0.0, "decode": 0.0}

    def forward(*a, **k):
        t, out = timed(lambda: orig(*a, **k))
        acc["prefill" if k["input_ids"].shape[1] > 1 else "decode"] += t[1]
        return out

    model.forward = forward
    try:
        t, _ = timed(lambda: [lm.greedy(u, n_new, batch_size=batch_size) for u in units])
    finally:
        del model.forward
    return {"total_cpu_s": float(t[1]), "prefill_cpu_s": acc["prefill"], "decode_cpu_s": acc["decode"]}


def _spread(x: np.ndarray) -> dict:
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return {"median": float(med), "min": float(x.min()), "max": float(x.max()), "iqr": [float(q1), float(q3)], "per_repeat": [float(v) for v in x]}


def measure(lm, ids: list[int], prefix: int, suffix: int, a) -> dict:
    from rotelab.extraction.book import BookConfig, windows

    bos = lm.bos_ids
    wins = windows(ids[len(bos) :], BookConfig(prefix_tokens=prefix, suffix_tokens=suffix, max_windows=a.windows))
    prompts = [bos + p for _, p, _ in wins]
    groups = [prompts[b : b + a.batch_size] for b in range(0, len(prompts), a.batch_size)]
    units = [(lambda g=g: lm.greedy(g, suffix, batch_size=a.batch_size), lambda g=g: generate_loop(lm.model, g, suffix)) for g in groups]
    for batched, loop in units[:1]:  # warm-up: the first generate() of a process takes much longer
        batched(), loop()
    t, same = interleaved(units, a.repeats)
    n_tok = len(prompts) * suffix
    split = split_batched(lm, groups, suffix, a.batch_size)
    loop_cpu = float(np.median(t[:, 1, 1]))
    return {
        "prefix": prefix, "suffix": suffix, "windows": len(prompts), "new_tokens": n_tok, "token_identical": bool(same),
        "speedup_cpu": _spread(t[:, 1, 1] / t[:, 0, 1]),
        "speedup_wall": _spread(t[:, 1, 0] / t[:, 0, 0]),
        "batched_tokens_per_cpu_s": float(n_tok / np.median(t[:, 0, 1])),
        "loop_tokens_per_cpu_s": float(n_tok / loop_cpu),
        "batched_split_cpu_s": split,
        "speedup_bound_if_decoding_were_free": loop_cpu / split["prefill_cpu_s"],
        "cpu_s_per_window": {"loop": loop_cpu / len(prompts), "batched_prefill": split["prefill_cpu_s"] / len(prompts), "batched_decode": split["decode_cpu_s"] / len(prompts)},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--n-embd", type=int, default=192)
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from rotelab.core.models import HFLanguageModel
    from rotelab.core.training import ModelSpec, new_model, train_tokenizer
    from rotelab.testbed.corpora import load_book

    text = load_book("alice29")
    tok = train_tokenizer([text], vocab_size=2048)
    spec = ModelSpec(n_layer=a.layers, n_embd=a.n_embd, n_head=4, n_positions=a.ctx, vocab_size=len(tok))
    lm = HFLanguageModel(new_model(spec, seed=0), tok)
    ids = tok(text)["input_ids"]
    res = {
        "model": f"random GPT-2, {a.layers} layers, d={a.n_embd}, context {a.ctx}, vocabulary {len(tok)} (CPU)", "n_parameters": sum(p.numel() for p in lm.model.parameters()),
        "threads": a.threads, "batch_size": a.batch_size, "repeats": a.repeats, "torch": torch.__version__,
        "workloads": {w: measure(lm, ids, *WORKLOADS[w], a) for w in a.workloads.split(",")},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "extraction_speed.json").write_text(json.dumps(res, indent=1) + "\n")
    for w, r in res["workloads"].items():
        s = r["speedup_cpu"]
        print(f"{w} ({r['prefix']} -> {r['suffix']}, {r['windows']} windows): batched / batch-1 generate loop = {s['median']:.1f}x CPU time "
              f"(min {s['min']:.1f}, max {s['max']:.1f}, IQR {s['iqr'][0]:.1f}-{s['iqr'][1]:.1f}; wall {r['speedup_wall']['median']:.1f}x); "
              f"token-identical {r['token_identical']}; bound if decoding were free {r['speedup_bound_if_decoding_were_free']:.1f}x")
    print(f"results: {RESULTS / 'extraction_speed.json'}")


if __name__ == "__main__":
    main()
