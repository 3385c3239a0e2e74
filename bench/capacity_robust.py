"""Benchmark: the default ``rotelab capacity robust`` rho sweep; writes bench/results/capacity_robust.json.

Run: .venv/bin/python bench/capacity_robust.py   (resumes inside bench/results/capacity_robust_run/)
"""

import json
import time
from pathlib import Path

from rotelab.capacity.robust import RobustConfig, run_robust
from rotelab.core.runs import RunFolder
from rotelab.core.io import dumps

out = Path(__file__).parent / "results"
t0, c0 = time.perf_counter(), time.process_time()
run = RunFolder(out / "capacity_robust_run", command="capacity robust", options={"bench": True}, seed=0)
summary = run_robust(run, RobustConfig(), progress=False)
summary["wall_seconds"] = time.perf_counter() - t0
summary["cpu_seconds"] = time.process_time() - c0  # one thread: ~ wall time on an idle core
(out / "capacity_robust.json").write_text(dumps(summary) + "\n")
print(json.dumps({"per_rho": summary["per_rho"], "lb_constant": summary["lb_constant"], "wall_seconds": summary["wall_seconds"], "cpu_seconds": summary["cpu_seconds"]}, indent=1))
