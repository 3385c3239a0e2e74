"""Sweep ``small``-preset variants: loss AUC (seen >= 4, seen once) and extraction by copies.

Used to size the ``small`` preset against the testbed targets (seen >= 4 loss AUC >= 0.9; text
seen >= 20 times extractable). No reference model and no unlearning: only the target model, the
figures of ``evaluate_testbed``, and the training time. Each variant is a JSON override of the
preset's fields (``model``/``train`` fields nested). Runs on a GPU when there is one (the chosen
variant is then re-timed on CPU by ``bench/testbed.py``).

    python bench/testbed_sweep.py --variants '[{"name": "base"}, {"name": "lr5e-3", "train": {"lr": 5e-3}}]'

Without arguments (``make bench``) it measures the ``small`` preset as it is (one variant, seed 0:
about 10 minutes on 2 idle cores); ``--preset tiny`` is the one-minute smoke configuration.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def variant(base, over: dict):
    over = dict(over)
    over.pop("name", None)
    model = dataclasses.replace(base.model, **over.pop("model", {}))
    train = dataclasses.replace(base.train, **over.pop("train", {}))
    if "book_copies" in over:
        over["book_copies"] = {int(k): v for k, v in over["book_copies"].items()}
    return dataclasses.replace(base, model=model, train=train, **over)


def run_one(preset, *, seed: int, device: str, work: Path) -> dict:
    import torch
    from transformers import PreTrainedTokenizerFast

    from rotelab.core.models import load_model
    from rotelab.core.training import save_model_dir
    from rotelab.core.training import new_model, train_on_schedule, train_tokenizer
    from rotelab.testbed.build import _tokenize
    from rotelab.testbed.evaluate import evaluate_testbed
    from rotelab.testbed.splits import make_splits

    splits = make_splits(preset, seed=seed)
    texts = [s["text"] for k in ("members", "nonmembers", "reference", "prefix_pool") for s in splits[k]]
    tok = train_tokenizer(texts, vocab_size=preset.model.vocab_size)
    tok.save_pretrained(work / "tok")
    tok = PreTrainedTokenizerFast.from_pretrained(work / "tok")
    mem = splits["members"]
    model = new_model(preset.model, seed=seed).to(device)
    spec = dataclasses.replace(preset.train, seed=seed)
    ids = _tokenize(tok, [s["text"] for s in mem], preset.model.n_positions)
    t = time.time()
    log = train_on_schedule(model, [list(x) for x in ids], [s["copies"] for s in mem], spec, progress=False)
    train_s = time.time() - t
    save_model_dir(model.cpu(), tok, work / "model")
    lm = load_model(work / "model", device=device)
    ev = evaluate_testbed(lm, splits, prefix=32, suffix=32, progress=False, n_boot=200)
    del model, lm
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    ex = ev["extraction_books_by_copies"]
    return {
        "seed": seed, "train_seconds": round(train_s, 1), "tokens": log["tokens"], "steps": log["steps"],
        "n_parameters": sum(p.numel() for p in new_model(preset.model, seed=0).parameters()),
        "final_loss": log["log"][-1]["loss"],
        "auc_seen_ge4": ev["loss_auc_books_seen_ge4"]["auc"], "auc_seen_ge4_ci": ev["loss_auc_books_seen_ge4"]["auc_ci"],
        "auc_seen_once": ev["loss_auc_books_seen_once"]["auc"],
        "auc_by_copies": {c: round(v["auc"], 3) for c, v in ev["loss_auc_books_by_copies"].items()},
        "extraction": {c: [v["hits"], v["n"], round(v["mean_match"], 3)] for c, v in ex.items()},
        "canaries": {c: [v["hits"], v["n"]] for c, v in ev["canary_secret_extraction_by_copies"].items()},
        "auc_facts": ev["loss_auc_facts"]["auc"],
    }


def main() -> None:
    import tempfile

    import torch

    from rotelab.testbed.presets import get_preset

    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="small", help="the preset the variants override")
    ap.add_argument("--variants", default='[{"name": "base"}]', help="JSON list of overrides, or @file.json (default: the preset as it is)")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=RESULTS / "testbed_sweep.jsonl")
    a = ap.parse_args()
    spec = Path(a.variants[1:]).read_text() if a.variants.startswith("@") else a.variants
    base = get_preset(a.preset)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    for over in json.loads(spec):
        for seed in map(int, a.seeds.split(",")):
            with tempfile.TemporaryDirectory() as d:
                t = time.time()
                try:
                    r = run_one(variant(base, over), seed=seed, device=a.device, work=Path(d))
                except Exception as e:  # a sweep keeps going; the failure is recorded
                    r = {"seed": seed, "error": f"{type(e).__name__}: {e}"}
                r = {"preset": a.preset, "name": over.get("name", "?"), "override": over, "device": a.device, "wall_seconds": round(time.time() - t, 1)} | r
            print(json.dumps(r), flush=True)
            with a.out.open("a") as f:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
