"""VISTA benchmark at its default size: quality, serving cost vs history length, cache ablations,
fallbacks (empty / missing summaries vs the recent-only model).

    .venv/bin/python bench/recsys_vista.py [--out runs/recsys-bench] [--users 300] [--epochs 10] [--seed 0] [--overwrite]

Writes the run folder (report.html, figures) and ``bench/results/recsys_vista_s{seed}.json``.
Defaults: 300 users + 4 lifelong users (1e3 .. 1e6 events), 10 + 2 epochs, one thread
(``ROTELAB_THREADS``); about an hour on one core.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from rotelab.core.io import read_json, write_json
from rotelab.recsys.api import bench
from rotelab.recsys.config import BenchConfig


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="runs/recsys-bench")
    p.add_argument("--users", type=int, default=300)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="recompute when --out holds a run of other options")
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("ROTELAB_THREADS", "1")))
    base = BenchConfig()
    cfg = replace(base, synth=replace(base.synth, n_users=a.users, seed=a.seed), train=replace(base.train, epochs=a.epochs, seed=a.seed))
    t0 = time.time()
    bench(out=a.out, config=cfg, overwrite=a.overwrite, progress=True)
    out = read_json(Path(a.out) / "bench.json")
    out["wall_s"] = time.time() - t0
    res = Path(f"bench/results/recsys_vista_s{a.seed}.json")
    write_json(res, out)
    rows = {r["model"]: r for r in out["quality"]["rows"]}
    for k, r in rows.items():
        print(f"{k:7s} HR@10 {r['hr@10']:.3f} {r['hr@10_ci']}  NDCG@10 {r['ndcg@10']:.3f}  AUC click {r.get('auc_is_click', float('nan')):.3f}  n={r['n_test_users']}")
    for k, v in out["quality"]["relative"].items():
        print(f"{k}: {v['rel_diff']:+.3f} {v['ci']}")
    for r in out["fallback"]:
        print(f"{r['serving']:42s} HR@10 {r['hr@10']:.3f} {r['hr@10_ci']}  cold users {r['n_cold_users']}  empty summaries {r['n_empty_summaries']}")
    print(f"done in {out['wall_s']:.0f} s: {a.out}/report.html")


if __name__ == "__main__":
    main()
