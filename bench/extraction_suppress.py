"""Mini suppression / undo experiment on a built testbed (reduced stand-in for the books experiment).

1. base: the testbed model; measure extraction (EM, ES, k-extractable) of its most duplicated book passages.
2. suppression: full fine-tune on refusal-style text that never continues a book (testbed facts
   wrapped as "I cannot continue that text." answers); measure again.
3. undo: PEFT LoRA (r=4) on the suppressed model, trained on prefix -> continuation pairs of *other*
   member passages (not the measured ones); measure again.
4. weight diff of step 2 (full checkpoints) and step 3 (adapter).

Runs with no arguments (``make bench``): the ``small`` testbed of ``bench/testbed.py``
(``runs/bench-testbed/small-seed0``, built here if missing, resumed otherwise), results in
``runs/bench-extraction-suppress``.

    nice -n 10 .venv/bin/python bench/extraction_suppress.py [--testbed TB] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch


def train(model, ids: list[list[int]], *, steps: int, lr: float, seed: int, batch: int = 16) -> None:
    from rotelab.core.training import collate

    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        pick = torch.randint(len(ids), (batch,), generator=g).tolist()
        x, mask, labels = collate([ids[i] for i in pick], 0)
        loss = model(input_ids=x, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def measure(model, tok, texts: list[str]) -> dict:
    import numpy as np

    from rotelab.core.models import HFLanguageModel
    from rotelab.extraction.samples import exact_memorization, extraction_strength, k_extractable, teacher_forced_hits

    lm = HFLanguageModel(model, tok)
    ex = k_extractable(lm, texts, prefix=16, suffix=16)
    hits = [h for h in teacher_forced_hits(lm, texts, prefix=16, suffix=16) if h is not None]
    return {"n": len(hits), "k_extractable": float(np.mean([e.exact for e in ex if e.exact is not None])),
            "mean_token_match": float(np.mean([e.score for e in ex if e.score is not None])),
            "mean_em": float(np.mean([exact_memorization(h) for h in hits])), "mean_es": float(np.mean([extraction_strength(h) for h in hits]))}


def small_testbed(path: Path, seed: int) -> None:
    """The ``small`` testbed as ``bench/testbed.py`` builds it (resumes a finished or partial build)."""
    from rotelab.core.runs import open_run
    from rotelab.testbed.build import build_testbed
    from rotelab.testbed.presets import get_preset

    with open_run(path, "testbed build", {"preset": "small"}, seed=seed) as run:
        build_testbed(get_preset("small"), run, seed=seed, progress=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--testbed", type=Path, default=None, help="a fact/book testbed (default: the small one of bench/testbed.py, built if missing)")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-extraction-suppress"))
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rotelab.core.data import read_jsonl
    from rotelab.core.training import save_model_dir
    from rotelab.extraction.api import weightdiff
    from rotelab.testbed.folder import Testbed

    if args.testbed is None:
        args.testbed = Path("runs/bench-testbed/small-seed0")
        small_testbed(args.testbed, 0)
    tb = Testbed.find(args.testbed)
    if tb is None or tb.split("members") is None:
        sys.exit(f"{args.testbed}: not a fact/book testbed (rotelab testbed build --preset small)")
    base_dir = tb.model
    tok = AutoTokenizer.from_pretrained(base_dir)
    members = read_jsonl(tb.split("members"))
    books = [s for s in members if s.meta.get("kind") == "book" and s.meta.get("copies", 0) > 1]
    held = [s.text for s in books[::2]]  # measured
    other = [s.text for s in books[1::2]]  # LoRA undo data
    refusals = [f"{s.text.split('?')[0]}? I cannot continue that text." for s in members if s.meta.get("kind") == "fact"]
    res: dict = {"testbed": str(args.testbed), "seed": args.seed, "steps": args.steps, "n_measured_passages": len(held), "n_lora_passages": len(other), "n_refusal_texts": len(refusals)}

    model = AutoModelForCausalLM.from_pretrained(base_dir)
    res["base"] = measure(model, tok, held)
    train(model, [tok(t)["input_ids"][:80] for t in refusals], steps=args.steps, lr=3e-3, seed=args.seed)
    res["suppressed"] = measure(model, tok, held)
    save_model_dir(model, tok, args.out / "suppressed")

    torch.manual_seed(args.seed)
    pm = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "c_proj", "c_fc"], fan_in_fan_out=True))
    train(pm, [tok(t)["input_ids"][:80] for t in other], steps=args.steps, lr=1e-2, seed=args.seed + 1)
    pm.save_pretrained(args.out / "lora")
    # measured merged: LanguageModel's chunked-head check reads base_model(...).last_hidden_state, which a PeftModel's base_model lacks
    res["suppressed_plus_lora"] = measure(pm.merge_and_unload(), tok, held)

    keep = ("share_changed_gt_1pct", "share_changed_gt_100pct", "mean_relative_change")
    for name, base, kw in (("weightdiff_suppression", base_dir, {"tuned": args.out / "suppressed"}), ("weightdiff_lora", args.out / "suppressed", {"adapter": args.out / "lora"})):
        w = weightdiff(base, out=args.out / name, overwrite=True, **kw)
        res[name] = {k: w[k] for k in keep} | {"attention_mlp_ratio": w["attention_mlp_ratio"], "lower_quarter_share_of_changed_gt_1pct": w["lower_quarter_share_of_changed_gt_1pct"],
                                             "by_type": {t: {k: v[k] for k in keep} for t, v in w["by_type"].items()}, "by_layer": {l: v["share_changed_gt_1pct"] for l, v in w["by_layer"].items()}}
    out = Path(__file__).parent / "results" / "extraction_suppress.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
