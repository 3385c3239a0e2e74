"""Benchmark: the default ``rotelab capacity robust`` rho sweep; writes bench/results/capacity_robust.json.

Run: .venv/bin/python bench/capacity_robust.py   (resumes inside bench/results/capacity_robust_run/)
     (--rhos / --seeds / --steps / --run NAME for a reduced try, e.g. --rhos 0.3 --seeds 0 --steps 200)
"""

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from rotelab.capacity.api import robust
from rotelab.capacity.robust.config import RobustConfig
from rotelab.core.io import dumps

OUT = Path(__file__).parent / "results"
BENCH = RobustConfig()

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rhos", default=",".join(f"{r:g}" for r in BENCH.rhos))
    ap.add_argument("--seeds", default=",".join(map(str, BENCH.seeds)))
    ap.add_argument("--steps", type=int, default=BENCH.steps)
    ap.add_argument("--run", default="capacity_robust_run", help="run folder under bench/results")
    ap.add_argument("--json", default="capacity_robust.json", help="summary file under bench/results")
    ap.add_argument("--overwrite", action="store_true", help="recompute when the run folder holds a run of other options")
    a = ap.parse_args()
    cfg = replace(BENCH, rhos=tuple(float(v) for v in a.rhos.split(",")), seeds=tuple(int(v) for v in a.seeds.split(",")), steps=a.steps)
    t0, c0 = time.perf_counter(), time.process_time()
    summary = robust(out=OUT / a.run, config=cfg, overwrite=a.overwrite, progress=False)
    summary["wall_seconds"] = time.perf_counter() - t0
    summary["cpu_seconds"] = time.process_time() - c0  # one thread: ~ wall time on an idle core
    (OUT / a.json).write_text(dumps(summary) + "\n")
    print(json.dumps({"per_rho": summary["per_rho"], "lb_constant": summary["lb_constant"], "wall_seconds": summary["wall_seconds"], "cpu_seconds": summary["cpu_seconds"]}, indent=1))
