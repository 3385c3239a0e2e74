"""VISTA benchmark at its default size: quality, serving cost vs history length, cache ablations.

    .venv/bin/python bench/recsys_vista.py [--out runs/recsys-bench] [--users 300] [--epochs 10] [--seed 0]

Writes the run folder (report.html, figures) and ``bench/results/recsys_vista_s{seed}.json``.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from rotelab.core.runs import RunFolder
from rotelab.core.io import write_json
from rotelab.recsys.bench import BenchConfig, run_bench
from rotelab.report import build_report


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="runs/recsys-bench")
    p.add_argument("--users", type=int, default=300)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("ROTELAB_THREADS", "1")))
    base = BenchConfig()
    cfg = replace(base, synth=replace(base.synth, n_users=a.users, seed=a.seed), train=replace(base.train, epochs=a.epochs, seed=a.seed))
    run = RunFolder(a.out, command="recsys bench", options={"users": a.users, "epochs": a.epochs}, seed=a.seed)
    t0 = time.time()
    out = run_bench(run, cfg, progress=True)
    out["wall_s"] = time.time() - t0
    build_report(run.path)
    res = Path(f"bench/results/recsys_vista_s{a.seed}.json")
    write_json(res, out)
    rows = {r["model"]: r for r in out["quality"]["rows"]}
    for k, r in rows.items():
        print(f"{k:7s} HR@10 {r['hr@10']:.3f} {r['hr@10_ci']}  NDCG@10 {r['ndcg@10']:.3f}  AUC click {r.get('auc_is_click', float('nan')):.3f}  n={r['n_test_users']}")
    print(f"done in {out['wall_s']:.0f} s: {run.path}/report.html")


if __name__ == "__main__":
    main()
