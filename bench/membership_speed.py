"""Speed ratios, each measured against a bare forward loop in the same run (same model, batches).

1. All single-pass attacks (signals + loss, zlib, mink, minkpp) / one bare forward pass.  Target <= 1.1.
2. REMIND probe (variants built, scored, features) / bare forward over the same 1 + n_variants
   sequences per sample.  Target <= 1.1.

Headline: the median over repeats of the paired ratio, in CPU time of this process (one thread).

    nice -n 10 python bench/membership_speed.py --model runs/demo/testbed --repeats 3
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from rotelab.core.data import read_jsonl
from rotelab.core.models import load_model
from rotelab.core.signals import compute_signals
from rotelab.membership.attacks import ATTACKS
from rotelab.membership.context import AttackContext
from rotelab.membership.landscape import ProbeConfig
from rotelab.membership.perturb import build_neighbours, make_variants
from rotelab.membership.remind import probe_samples


@torch.inference_mode()
def bare_forward(lm, seqs: list[list[int]], batch_size: int) -> None:
    """Logits only, length-sorted right-padded batches: the floor any scoring must pay."""
    order = sorted(seqs, key=len, reverse=True)
    for b in range(0, len(order), batch_size):
        ids, mask = lm._right_pad(order[b : b + batch_size])
        lm.model(input_ids=ids, attention_mask=mask).logits


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): CPU time is the steadier cost on a shared machine."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def paired(bare, scoring, repeats: int) -> list[tuple[float, float, float, float]]:
    """Per repeat (forward wall, forward cpu, scoring wall, scoring cpu). The order alternates
    (forward first, then scoring first) so warm caches and drifting load favour neither side."""
    rows = []
    for r in range(repeats):
        if r % 2 == 0:
            f = timed(bare)
            s = timed(scoring)
        else:
            s = timed(scoring)
            f = timed(bare)
        rows.append((*f, *s))
    return rows


def _summary(times: list[tuple[float, float, float, float]]) -> dict:
    """Median of the paired scoring / forward ratios (the headline: robust to a disturbed repeat)."""
    t = np.asarray(times)
    return {
        kind: {
            "median_paired_ratio": float(np.median(t[:, 2 + i] / t[:, i])),
            "paired_ratios": (t[:, 2 + i] / t[:, i]).tolist(),
            "forward_s": t[:, i].tolist(),
            "scoring_s": t[:, 2 + i].tolist(),
        }
        for i, kind in enumerate(("wall", "cpu"))
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--variants", type=int, default=4)
    ap.add_argument("--n-remind", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--repeats-remind", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(1)
    lm = load_model(a.model)
    sp = a.model / "splits"
    texts = [s.text for s in read_jsonl(sp / "members.jsonl") + read_jsonl(sp / "nonmembers.jsonl")][: a.n]
    ids = lm.tokenize(texts)
    ids = [x[: lm.max_length] for x in ids]
    single = [k for k, v in ATTACKS.items() if v.single_pass]

    def attacks_once():
        sig = compute_signals(lm, texts, batch_size=a.batch_size, progress=False)
        ctx = AttackContext(lm, texts, sig)
        for k in single:
            ATTACKS[k].run(ctx)

    cfg = ProbeConfig(k=a.variants)
    nb = build_neighbours(lm, max_rank=max(cfg.ranks))
    r_texts = texts[: a.n_remind]
    sig = compute_signals(lm, r_texts, batch_size=a.batch_size, progress=False)
    rng = np.random.default_rng(0)
    all_var = [x for s in sig for j, p in cfg.settings() for x in make_variants(s.token_ids, nb, k=cfg.k, p=p, j=j, rng=rng)[0]]
    bare_forward(lm, ids[:64], a.batch_size)  # warm-up
    t1 = paired(lambda: bare_forward(lm, ids, a.batch_size), attacks_once, a.repeats)
    t2 = paired(
        lambda: bare_forward(lm, ids[: a.n_remind] + all_var, a.batch_size),
        lambda: (compute_signals(lm, r_texts, batch_size=a.batch_size, progress=False), probe_samples(lm, sig, nb, cfg, batch_size=a.batch_size)),
        a.repeats_remind,
    )
    out = {
        "model": str(a.model), "n_texts": len(texts), "n_texts_remind": len(r_texts), "variants_per_text": len(all_var) // len(r_texts),
        "batch_size": a.batch_size, "single_pass_attacks": single, "repeats": a.repeats, "repeats_remind": a.repeats_remind,
        "head_chunked": lm._head_separable(),
        "single_pass_over_forward": _summary(t1),
        "remind_over_forward": _summary(t2),
    }
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path("bench/results/membership_speed.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
