"""The Python API of ``rotelab capacity``: one entry point per command.

:func:`cot` and :func:`robust` check their configuration before the run folder exists, then run
(or resume) the experiment in it, build the report and return the summary the command prints;
:func:`bounds` is a formula and writes nothing::

    from rotelab.capacity.api import bounds, robust
    from rotelab.capacity.robust.config import RobustConfig

    bounds(1000, 16, 0.5)["lower_bound"]
    robust(out="runs/robust", config=RobustConfig(n=8, d=2, rhos=(0.3,), seeds=(0,)))
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from rotelab.capacity.cot.config import CotConfig, check_cot
from rotelab.capacity.robust.config import RobustConfig, check_bounds, check_robust
from rotelab.core.runs import open_run


def cot(*, out: Path | str | None = None, config: CotConfig = CotConfig(), overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Smallest transformer memorising N random-label strings with and without CoT (P*(N) and its
    log-log slope), and the condition-separating families (Yu, Gao, Zhang 2025)."""
    from rotelab.capacity.cot.experiment import run_cot
    from rotelab.report import build_report

    cfg = check_cot(config)
    with open_run(out, "capacity cot", asdict(cfg), seed=cfg.seeds[0], overwrite=overwrite) as run:
        summary = run_cot(run, cfg, progress=progress)
        build_report(run.path)
    return summary


def robust(*, out: Path | str | None = None, config: RobustConfig = RobustConfig(), overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Smallest ReLU MLP certified (IBP) to rho-robustly memorise N points, per rho, against
    Thm 3.1's lower bound (Kim, Moon, Yun 2025)."""
    from rotelab.capacity.robust.experiment import run_robust
    from rotelab.report import build_report

    cfg = check_robust(config)
    with open_run(out, "capacity robust", asdict(cfg), seed=cfg.seeds[0], overwrite=overwrite) as run:
        summary = run_robust(run, cfg, progress=progress)
        build_report(run.path)
    return summary


def bounds(n: int, d: int, rho: float) -> dict[str, Any]:
    """Thm 3.1's lower bound and the upper-bound regime for rho-robust memorization of N points in
    R^d (no run folder).

    >>> round(bounds(16, 4, 0.6)["lower_bound"], 2)
    14.76
    """
    from rotelab.capacity.robust.bounds import bounds_summary

    check_bounds(n, d, rho)
    return bounds_summary(n, d, rho)
