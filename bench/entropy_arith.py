"""Experiment 2: multiplication, in-distribution vs out-of-distribution operand lengths, GAPT vs CE.

Sequences ``<bos>{a} x {b} = {c}<eos>``, one token per character (the author's 15-token vocabulary,
plus a pad id never trained on); loss and metrics only on the result tokens. Operands as in the
author's ``data/arithmetic.py``: digit count uniform in the range, then the number uniform among
numbers with that many digits (no leading zero, 1-digit operands 1..9).

Splits (correcting the author's older code, where both validation sets drew from the OOD range):
ID test = fresh pairs from the *training* digit range, never trained on; OOD test = operands with
the OOD digit counts. Exact match under teacher forcing (every result token argmax-correct, which
equals greedy exact match) with Clopper-Pearson intervals, result-token accuracy, and mean
result-token CE. GAPT gate with the notes' hyperparameters (p_m 125, p_a 75, τ 0.01 / 0.01 / 0.1,
weight 1, one middle block per step); both arms see the same batches (same seed).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/entropy_arith.py --seeds 0 1 2

Defaults (4 blocks, d = 64, batch 64, 800 steps, about 3 minutes a run on one core) are what a
15-minute, 2-core budget affords; at that budget the CE baseline does *not* master the ID range
(exact match by the longer operand's digits is reported to show how far it got), so OOD exact
match cannot separate the objectives. ``--reverse-result`` (product least-significant digit first)
is an option for longer runs; it did not learn faster at this budget.

Paper: "+35% OOD generalization" with GAPT (its digit ranges and metric were not published; the
author's data script defaults to training on 1-3 and validating OOD on 4-6 digits).
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from rotelab.core.io import write_json
from rotelab.core.stats import clopper_pearson, seed_interval
from rotelab.entropy.gapt import GateConfig
from rotelab.entropy.gapt_train import GaptConfig, train_gapt
from rotelab.core.training import ModelSpec, new_model

VOCAB = ["<pad>", "<bos>", "<eos>", "x", "=", " "] + list("0123456789")  # pad id 0 never trained on
TOK = {c: i for i, c in enumerate(VOCAB)}
OUT = Path(__file__).parent / "results"


def number(rng: random.Random, lo: int, hi: int) -> int:
    d = rng.randint(lo, hi)
    return rng.randint(10 ** (d - 1), 10**d - 1)


def encode(a: int, b: int, *, reverse: bool = False) -> tuple[list[int], int]:
    """Token ids and the index where the result starts (first token after '= ').

    ``reverse`` writes the product least-significant digit first (each digit then depends only on
    digits already known, which small models learn far faster); the paper's format is ``False``.
    """
    head = [TOK["<bos>"]] + [TOK[c] for c in f"{a} x {b} = "]
    c = str(a * b)[::-1] if reverse else str(a * b)
    return head + [TOK[ch] for ch in c] + [TOK["<eos>"]], len(head)


REVERSE = False  # set from --reverse-result


def batch(pairs: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    enc = [encode(a, b, reverse=REVERSE) for a, b in pairs]
    T = max(len(x) for x, _ in enc)
    x = torch.zeros(len(enc), T, dtype=torch.long)
    mask = torch.zeros_like(x)
    labels = torch.full_like(x, -100)
    for r, (ids, start) in enumerate(enc):
        x[r, : len(ids)] = torch.tensor(ids)
        mask[r, : len(ids)] = 1
        labels[r, start : len(ids)] = x[r, start : len(ids)]  # result digits and <eos> only
    return x, mask, labels


@torch.no_grad()
def evaluate(model, pairs: list[tuple[int, int]]) -> dict:
    model.eval()
    hits, nll, n_tok, tok_hits = 0, 0.0, 0, 0
    by_digits: dict[int, list[int]] = {}  # longer operand's digit count -> [hits, n]
    for i in range(0, len(pairs), 256):
        chunk = pairs[i : i + 256]
        x, mask, labels = batch(chunk)
        logits = model(input_ids=x, attention_mask=mask).logits[:, :-1]
        y = labels[:, 1:]
        ok = y != -100
        lp = torch.log_softmax(logits.float(), -1).gather(-1, y.clamp_min(0)[..., None])[..., 0]
        nll, n_tok = nll - float(lp[ok].sum()), n_tok + int(ok.sum())
        right = logits.argmax(-1) == y
        tok_hits += int((right & ok).sum())
        exact = (right | ~ok).all(-1)
        hits += int(exact.sum())
        for (a, b), e in zip(chunk, exact.tolist()):
            c = by_digits.setdefault(max(len(str(a)), len(str(b))), [0, 0])
            c[0], c[1] = c[0] + int(e), c[1] + 1
    model.train()
    lo, hi = clopper_pearson(hits, len(pairs))
    return {"exact_match": hits / len(pairs), "exact_match_ci95": [lo, hi], "hits": hits, "n": len(pairs),
            "token_accuracy": tok_hits / n_tok, "result_token_ce": nll / n_tok,
            "exact_by_longer_operand_digits": {str(d): {"rate": h / n, "hits": h, "n": n} for d, (h, n) in sorted(by_digits.items())}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=64)
    ap.add_argument("--train-digits", type=int, nargs=2, default=[1, 3])
    ap.add_argument("--ood-digits", type=int, nargs=2, default=[4, 4])
    ap.add_argument("--p-m", type=int, default=125)
    ap.add_argument("--p-a", type=int, default=75)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--objectives", nargs="+", default=["ce", "gapt"], choices=["ce", "gapt"])
    ap.add_argument("--out", default=str(OUT / "entropy_arith.json"))
    ap.add_argument("--reverse-result", action="store_true", help="write the product least-significant digit first")
    args = ap.parse_args()
    global REVERSE
    REVERSE = args.reverse_result
    torch.set_num_threads(1)
    t_all = time.time()
    lo, hi = args.train_digits
    olo, ohi = args.ood_digits
    n_pos = 2 + 2 * ohi + 6 + 2 * ohi  # bos, operands, ' x ', ' = ', product, eos
    spec = ModelSpec(n_layer=args.n_layer, n_embd=args.n_embd, n_head=4, n_positions=n_pos, vocab_size=len(VOCAB))
    res: dict = {"config": vars(args) | {"model": asdict(spec)}, "runs": {}}
    for seed in args.seeds:
        rng = random.Random(1000 + seed)
        id_test = list(dict.fromkeys((number(rng, lo, hi), number(rng, lo, hi)) for _ in range(args.n_test * 2)))[: args.n_test]
        ood_test = [(number(rng, olo, ohi), number(rng, olo, ohi)) for _ in range(args.n_test)]
        held = set(id_test)
        for obj in args.objectives:
            train_rng = random.Random(seed)  # the same batch stream for both objectives
            curve: list[dict] = []

            def next_batch(step: int):
                if args.eval_every and step and step % args.eval_every == 0:
                    curve.append({"step": step, "id_exact": evaluate(model, id_test[:300])["exact_match"], "seconds": round(time.time() - t_run, 1)})
                    print(f"  {obj} seed {seed} step {step}: ID exact {curve[-1]['id_exact']:.3f}, {curve[-1]['seconds']}s", flush=True)
                pairs = []
                while len(pairs) < args.batch_size:
                    p = (number(train_rng, lo, hi), number(train_rng, lo, hi))
                    if p not in held:  # ID test pairs are never trained on
                        pairs.append(p)
                return batch(pairs)

            cfg = GaptConfig(objective=obj, steps=args.steps, lr=args.lr, warmup_steps=100, gate=GateConfig(p_m=args.p_m, p_a=args.p_a))
            model = new_model(spec, seed=seed)
            t_run = time.time()
            tr = train_gapt(model, next_batch, cfg, progress=False)
            r = {"id": evaluate(model, id_test), "ood": evaluate(model, ood_test), "id_curve_300": curve, "switches": tr["switches"],
                 "share_steps_compress": float(np.mean([s["phase"] == 2 for s in tr["steps"]])), "seconds": tr["seconds"],
                 "final_train_ce": float(np.mean([s["ce"] for s in tr["steps"][-50:]])), "final_train_mbe": float(np.mean([s["mbe"] for s in tr["steps"][-50:]]))}
            res["runs"][f"{obj}-seed{seed}"] = r
            print(obj, seed, "ID", round(r["id"]["exact_match"], 3), {d: round(v["rate"], 3) for d, v in r["id"]["exact_by_longer_operand_digits"].items()}, "OOD", round(r["ood"]["exact_match"], 4), "OOD tok", round(r["ood"]["token_accuracy"], 3),
                  "OOD CE", round(r["ood"]["result_token_ce"], 3), "compress", round(r["share_steps_compress"], 2), "switches", len(r["switches"]), f"{r['seconds']}s", flush=True)
            write_json(Path(args.out), res)
    if set(args.objectives) != {"ce", "gapt"}:
        return
    S = args.seeds
    run = lambda o, s, split, k: res["runs"][f"{o}-seed{s}"][split][k]  # noqa: E731
    summary = {}
    for split in ("id", "ood"):
        for k in ("exact_match", "token_accuracy", "result_token_ce"):
            for o in ("ce", "gapt"):
                summary[f"{o}.{split}.{k}"] = seed_interval([run(o, s, split, k) for s in S])
            summary[f"gapt_minus_ce.{split}.{k}"] = seed_interval([run("gapt", s, split, k) - run("ce", s, split, k) for s in S])
        for o in ("ce", "gapt"):  # pooled over seeds (same test sets per seed index), Clopper-Pearson
            h, n = sum(run(o, s, split, "hits") for s in S), sum(run(o, s, split, "n") for s in S)
            summary[f"{o}.{split}.exact_match_pooled"] = {"rate": h / n, "ci95_cp": list(clopper_pearson(h, n)), "hits": h, "n": n}
    for d in res["runs"][f"ce-seed{S[0]}"]["id"]["exact_by_longer_operand_digits"]:
        for o in ("ce", "gapt"):
            summary[f"{o}.id.exact_match.longer_operand_{d}_digits"] = seed_interval([res["runs"][f"{o}-seed{s}"]["id"]["exact_by_longer_operand_digits"][d]["rate"] for s in S])
    summary["ood_result_ce_change_pct"] = seed_interval([100 * (run("gapt", s, "ood", "result_token_ce") / run("ce", s, "ood", "result_token_ce") - 1) for s in S])
    summary["share_steps_compress.gapt"] = seed_interval([res["runs"][f"gapt-seed{s}"]["share_steps_compress"] for s in S])
    res["summary"] = summary
    res["paper"] = {"ood_generalization_change_pct": 35.0}
    res["seconds"] = round(time.time() - t_all, 1)
    write_json(Path(args.out), res)
    for k, v in summary.items():
        print(k, {a: (np.round(b, 4).tolist() if isinstance(b, (float, list)) else b) for a, b in v.items() if a != "per_seed"})
    print(f"{time.time() - t_all:.0f}s")


if __name__ == "__main__":
    main()
