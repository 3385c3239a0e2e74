"""The synthetic control arm of ``rotelab biomed`` over seeds: derived (lexicalized) vs arbitrary
identifiers, memorization (training terms) and generalization (validation terms) with intervals.

    PYTHONPATH=src nice python bench/biomed_control.py --seeds 3 --out runs/bench-biomed
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from rotelab.biomed import api
from rotelab.biomed.evaluate import EvalConfig
from rotelab.biomed.finetune import FinetuneConfig
from rotelab.biomed.pretrain import PretrainConfig
from rotelab.biomed.task import TaskConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--n-per-bin", type=int, default=160)
    ap.add_argument("--epochs", type=int, default=160)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-biomed"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for seed in range(a.seeds):
        d = a.out / f"seed{seed}"
        api.build_task("synthetic", out=d / "task", config=TaskConfig(n_per_bin=a.n_per_bin, n_bins=2, val_share=0.25, directions="forward", seed=seed), progress=False)
        api.pretrain(d / "task", out=d / "base", config=PretrainConfig(n_layer=1, n_embd=64, n_head=4, n_positions=48, epochs=1, max_mentions=0, seed=seed), progress=False)
        api.finetune(d / "base", d / "task", out=d / "ft", config=FinetuneConfig(epochs=a.epochs, lr=3e-3, warmup_steps=10, seed=seed), progress=False)
        api.evaluate(d / "ft", d / "task", out=d / "ev", config=EvalConfig(k=2, encoder=False, attacks="loss,reference", seed=seed), progress=False)
        m = json.loads((d / "ev" / "metrics.json").read_text())
        for g, e in m["groups"].items():
            for s in ("train", "validation"):
                rows.append({"seed": seed, "group": g, "split": s, "tuned_em": e[s]["tuned_em"]["rate"], "ci": e[s]["tuned_em"]["ci"]})
        rows.append({"seed": seed, "membership_auc": {k: v.get("auc") for k, v in m["membership"].items()}})
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
