"""Benchmark: the full ``rotelab capacity cot`` experiment; writes bench/results/capacity_cot.json.

One single-thread process, run sequentially (its wall time is the cost on one core): the no-CoT
and CoT sweeps over N = 8 .. 256 (1.5 decades) with 3 seeds, then the condition-separating
families with 3 seeds. Resumable: every finished point is a file in bench/results/capacity_cot_run/
(figures in its figures/ folder); a folder of other options is refused (``--overwrite`` recomputes).

Run: OMP_NUM_THREADS=1 .venv/bin/python bench/capacity_cot.py
     (--sizes / --seeds / --run NAME for a reduced try, e.g. --sizes 2,4,8 --seeds 0 --no-conditions)
"""

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from rotelab.capacity.api import cot
from rotelab.capacity.cot.config import CotConfig
from rotelab.core.io import dumps

OUT = Path(__file__).parent / "results"
BENCH = CotConfig(sizes=(8, 16, 32, 64, 128, 256), seeds=(0, 1, 2), cond_seeds=(0, 1, 2))

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default=",".join(map(str, BENCH.sizes)))
    ap.add_argument("--seeds", default=",".join(map(str, BENCH.seeds)))
    ap.add_argument("--arms", default="no_cot,cot")
    ap.add_argument("--no-conditions", action="store_true")
    ap.add_argument("--run", default="capacity_cot_run", help="run folder under bench/results")
    ap.add_argument("--json", default="capacity_cot.json", help="summary file under bench/results")
    ap.add_argument("--overwrite", action="store_true", help="recompute when the run folder holds a run of other options")
    a = ap.parse_args()
    cfg = replace(BENCH, sizes=tuple(int(v) for v in a.sizes.split(",")), seeds=tuple(int(v) for v in a.seeds.split(",")),
                  arms=tuple(a.arms.split(",")) if a.arms else (), conditions=not a.no_conditions)
    t0, c0 = time.perf_counter(), time.process_time()
    s = cot(out=OUT / a.run, config=cfg, overwrite=a.overwrite, progress=False)
    s["wall_seconds_this_call"] = time.perf_counter() - t0
    s["cpu_seconds_this_call"] = time.process_time() - c0
    # cost of the whole experiment (resumed parts included): CPU seconds of every sweep point
    s["cpu_seconds_sweep_points"] = {arm: sum(p["cpu_seconds"] or 0 for p in pts) for arm, pts in s["p_star"].items()}
    (OUT / a.json).write_text(dumps(s) + "\n")
    print(json.dumps({"slopes": s["slopes"], "slopes_tail": s["slopes_tail"],
                      "p_star": {arm: [(p["n"], p["seed"], p["p_star"], p["width"], p["depth"], p["trials"], round(p["cpu_seconds"] or 0))
                                       for p in pts] for arm, pts in s["p_star"].items()},
                      "conditions": {k: (v["accuracy"], v["largest_n"], v["verdict"]) for k, v in s["conditions"].items()},
                      "wall_seconds": s["wall_seconds_this_call"], "cpu_seconds": s["cpu_seconds_this_call"]}, indent=1))
