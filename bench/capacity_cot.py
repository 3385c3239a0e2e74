"""Benchmark: the default ``rotelab capacity cot`` experiment; writes bench/results/capacity_cot.json.

The three parts (no-CoT sweep, CoT sweep, condition families) run as three single-thread
processes into their own run folders (resumable); ``cpu_seconds`` sums their CPU time, i.e. the
wall time of the default ``rotelab capacity cot`` on one idle core.

Run: .venv/bin/python bench/capacity_cot.py
"""

import json
import time
from dataclasses import replace
from multiprocessing import Pool
from pathlib import Path

from rotelab.capacity.cot import CotConfig, run_cot
from rotelab.core.runs import RunFolder, dumps

OUT = Path(__file__).parent / "results"
PARTS = {"no_cot": dict(arms=("no_cot",), conditions=False), "cot": dict(arms=("cot",), conditions=False),
         "conditions": dict(arms=(), conditions=True)}


def part(name: str) -> dict:
    c0 = time.process_time()
    run = RunFolder(OUT / f"capacity_cot_{name}", command="capacity cot", options={"bench": name}, seed=0)
    s = run_cot(run, replace(CotConfig(), **PARTS[name]), progress=False)
    return {**s, "cpu_seconds": time.process_time() - c0}


if __name__ == "__main__":
    t0 = time.perf_counter()
    with Pool(3) as pool:
        res = dict(zip(PARTS, pool.map(part, PARTS)))
    summary = {"config": res["conditions"]["config"], "slopes": {a: res[a]["slopes"][a] for a in ("no_cot", "cot")},
               "p_star": {a: res[a]["p_star"][a] for a in ("no_cot", "cot")}, "checks": res["conditions"]["checks"],
               "conditions": res["conditions"]["conditions"], "cpu_seconds": {k: r["cpu_seconds"] for k, r in res.items()},
               "wall_seconds": time.perf_counter() - t0}
    (OUT / "capacity_cot.json").write_text(dumps(summary) + "\n")
    print(json.dumps({"slopes": summary["slopes"], "cpu_seconds": summary["cpu_seconds"], "wall_seconds": summary["wall_seconds"]}, indent=1))
