"""Speed ratios, each measured against a bare forward loop in the same run (same model, batches).

1. All single-pass attacks (tokenize, signals, loss, zlib, mink, minkpp) / one bare forward pass
   over the same texts (tokenize, logits).  Target <= 1.1.
2. REMIND probe (variants built, scored, features) / bare forward over the same 1 + n_variants
   sequences per sample.  Target <= 1.1.

Headline: the median over repeats of the ratio of summed CPU time (user + system, one thread),
the two sides interleaved batch by batch (:func:`interleaved`).
Both are measured twice, each in its own process:

- ``default``: glibc's allocator as a user runs it. Memory freed is returned to the kernel, and
  allocating it again costs page faults, whose count varied 10x over one session (20k-480k per
  pass; the host's transparent huge pages are the likely cause, not verified); the bare loop
  materialises (B, T, V) logits and pays most of them.
- ``retain``: MALLOC_TRIM_THRESHOLD_ / MALLOC_MMAP_THRESHOLD_ make glibc keep freed memory, so
  neither side faults after the first batch: the ratio of computation alone.

    OMP_NUM_THREADS=1 nice -n 10 python bench/membership_speed.py --model runs/demo/testbed
    OMP_NUM_THREADS=1 nice -n 10 python bench/membership_speed.py    # builds (once) the small testbed in runs/bench-speed/testbed
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from rotelab.core.data import read_jsonl
from rotelab.core.models import load_model
from rotelab.core.signals import compute_signals
from rotelab.membership.attacks import ATTACKS
from rotelab.membership.context import AttackContext
from rotelab.membership.perturb import build_neighbours, make_variants
from rotelab.membership.remind.landscape import ProbeConfig
from rotelab.membership.remind.suite import probe_samples


@torch.inference_mode()
def bare_forward(lm, texts: list[str], batch_size: int, extra: list[list[int]] = ()) -> None:
    """One forward pass over the data: tokenize the texts, then logits of length-sorted,
    right-padded batches (plus ``extra`` sequences already in token ids: REMIND's variants).
    The floor any scoring must pay."""
    seqs = [x[: lm.max_length] for x in lm.tokenize(texts)] + list(extra)
    order = sorted(seqs, key=len, reverse=True)
    for b in range(0, len(order), batch_size):
        ids, mask = lm._right_pad(order[b : b + batch_size])
        lm.model(input_ids=ids, attention_mask=mask).logits


def timed(fn) -> tuple[float, float, float]:
    """(wall s, CPU s of this process, minor page faults): CPU time is the steadier cost on a shared machine."""
    r0, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    fn()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return time.perf_counter() - t, cpu, float(r1.ru_minflt - r0.ru_minflt)


def interleaved(units: list[tuple[Callable[[], object], Callable[[], object]]], repeats: int) -> np.ndarray:
    """(repeats, 2, 3): per repeat, summed over units, (wall, cpu, faults) of the forward [0] and
    of the scoring [1]. A unit (one batch of texts) runs its bare forward and its scoring back to
    back, in an order that alternates from unit to unit and repeat to repeat: the host's speed,
    which drifted by up to 1.5x from minute to minute on a shared machine, is then nearly the same for both."""
    out = np.zeros((repeats, 2, 3))
    for r in range(repeats):
        for i, (bare, scoring) in enumerate(units):
            if (r + i) % 2 == 0:
                f = timed(bare)
                s = timed(scoring)
            else:
                s = timed(scoring)
                f = timed(bare)
            out[r, 0] += f
            out[r, 1] += s
    return out


def _summary(t: np.ndarray) -> dict:
    """Per repeat, scoring / forward; the headline is their median (robust to a disturbed repeat)."""
    out = {
        kind: {
            "median_ratio": float(np.median(t[:, 1, i] / t[:, 0, i])),
            "ratios": (t[:, 1, i] / t[:, 0, i]).tolist(),
            "forward_s": t[:, 0, i].tolist(),
            "scoring_s": t[:, 1, i].tolist(),
        }
        for i, kind in enumerate(("wall", "cpu"))
    }
    out["median_page_faults"] = {"forward": float(np.median(t[:, 0, 2])), "scoring": float(np.median(t[:, 1, 2]))}
    return out


def default_testbed(preset: str) -> Path:
    """The ``preset`` testbed under runs/bench-speed, built on first use."""
    from rotelab.core.runs import RunFolder
    from rotelab.testbed.build import build_testbed
    from rotelab.testbed.presets import get_preset

    tb = Path("runs/bench-speed") / f"{preset}-testbed"
    if not (tb / "eval.json").exists():
        with RunFolder(tb, command="testbed build", options={"preset": preset}, seed=0) as run:
            build_testbed(get_preset(preset), run, seed=0, progress=False)
    return tb


ALLOCATORS = {"default": {}, "retain": {"MALLOC_TRIM_THRESHOLD_": str(2**34), "MALLOC_MMAP_THRESHOLD_": str(2**25)}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, help="a testbed folder (default: the --preset testbed, built once under runs/bench-speed)")
    ap.add_argument("--preset", default="small", help="testbed preset built when no --model is given")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--variants", type=int, default=4)
    ap.add_argument("--n-remind", type=int, default=100)
    ap.add_argument("--remind-group", type=int, default=10, help="texts per REMIND unit (with all their variants)")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--repeats-remind", type=int, default=5)
    ap.add_argument("--allocator", choices=sorted(ALLOCATORS), help="measure in this process (else: both, one process each)")
    a = ap.parse_args()
    if a.model is None:
        a.model = default_testbed(a.preset)
        sys.argv += ["--model", str(a.model)]
    if a.allocator is None:
        out = {}
        for name, env in ALLOCATORS.items():
            run = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--allocator", name], env={**os.environ, **env}, capture_output=True, text=True)
            if run.returncode:
                sys.exit(f"{name} run failed:\n{run.stderr[-2000:]}")
            out[f"allocator_{name}"] = json.loads(run.stdout)
            print(name, {k: round(out[f"allocator_{name}"][k]["cpu"]["median_ratio"], 3) for k in ("single_pass_over_forward", "remind_over_forward")}, flush=True)
        Path("bench/results").mkdir(parents=True, exist_ok=True)
        Path("bench/results/membership_speed.json").write_text(json.dumps(out, indent=1))
        return
    torch.set_num_threads(1)
    lm = load_model(a.model)
    sp = a.model / "splits"
    texts = [s.text for s in read_jsonl(sp / "members.jsonl") + read_jsonl(sp / "nonmembers.jsonl")][: a.n]
    single = [v.name for v in ATTACKS.values() if v.single_pass]

    def attacks_on(batch: list[str]) -> None:
        sig = compute_signals(lm, batch, batch_size=a.batch_size, progress=False)
        ctx = AttackContext(lm, batch, sig)
        for k in single:
            ATTACKS[k].run(ctx)

    # 1. Units = the batches compute_signals would form: texts sorted by token count.
    n_tok = [len(x) for x in lm.tokenize(texts)]
    order = [texts[i] for i in sorted(range(len(texts)), key=lambda i: -n_tok[i])]
    batches = [order[b : b + a.batch_size] for b in range(0, len(order), a.batch_size)]
    units1 = [(lambda g=g: bare_forward(lm, g, a.batch_size), lambda g=g: attacks_on(g)) for g in batches]

    # 2. Units = groups of texts with all their variants (the ones probe_samples builds).
    cfg = ProbeConfig(k=a.variants)
    nb = build_neighbours(lm, max_rank=max(cfg.ranks))
    r_texts = texts[: a.n_remind]
    units2, n_var = [], 0
    for b in range(0, len(r_texts), a.remind_group):
        g = r_texts[b : b + a.remind_group]
        sig = compute_signals(lm, g, batch_size=a.batch_size, progress=False)
        rng = np.random.default_rng(cfg.seed)
        var = [x for s in sig for j, p in cfg.settings() for x in make_variants(s.token_ids, nb, k=cfg.k, p=p, j=j, rng=rng)[0]]
        n_var += len(var)
        units2.append((
            lambda g=g, var=var: bare_forward(lm, g, a.batch_size, var),
            lambda g=g, sig=sig: (compute_signals(lm, g, batch_size=a.batch_size, progress=False), probe_samples(lm, sig, nb, cfg, batch_size=a.batch_size)),
        ))
    bare_forward(lm, texts[:64], a.batch_size)  # warm-up
    t1 = interleaved(units1, a.repeats)
    t2 = interleaved(units2, a.repeats_remind)
    out = {
        "model": str(a.model), "n_texts": len(texts), "n_texts_remind": len(r_texts), "variants_per_text": n_var // len(r_texts), "remind_group": a.remind_group,
        "batch_size": a.batch_size, "single_pass_attacks": single, "repeats": a.repeats, "repeats_remind": a.repeats_remind,
        "allocator": a.allocator, "allocator_env": ALLOCATORS[a.allocator], "head_chunked": lm._head_separable(),
        "tokenize_cpu_s": float(np.median([timed(lambda: lm.tokenize(texts))[1] for _ in range(5)])),  # in both sides of ratio 1
        "single_pass_over_forward": _summary(t1),
        "remind_over_forward": _summary(t2),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
