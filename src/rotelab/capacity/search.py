"""Smallest-parameter search and log-log slope fits, shared by both capacity labs."""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from scipy import stats


def smallest_success(params: Sequence[int], trial: Callable[[int], dict[str, Any]], *, start: int = 0) -> tuple[int | None, list[dict[str, Any]]]:
    """Scan candidates in increasing parameter count from position ``start``; stop at the first
    whose ``trial(i)["success"]`` is true.

    Assumes success is monotone in size (a bigger candidate that failed is not retried); gradient
    descent can break that, so every trial is returned for inspection. Returns (index or None, trials).
    """
    order = sorted(range(len(params)), key=lambda i: params[i])
    trials = []
    for i in order[start:]:
        rec = trial(i)
        trials.append(rec)
        if rec["success"]:
            return i, trials
    return None, trials


def start_position(params: Sequence[int], at_least: int | None) -> int:
    """Position in increasing-size order of the first candidate with >= ``at_least`` parameters
    (P*(N) is taken non-decreasing in N, so a larger N starts where the smaller one ended)."""
    if at_least is None:
        return 0
    ordered = sorted(params)
    return next((k for k, p in enumerate(ordered) if p >= at_least), len(ordered))


def loglog_slope(x: Sequence[float], y: Sequence[float], *, level: float = 0.95) -> dict[str, Any]:
    """OLS fit log y = a + b log x; b with a Student-t interval (scipy ``linregress`` stderr).

    Returns ``slope``, ``slope_ci``, ``intercept``, ``n_points``; nulls with ``slope_reason``
    when fewer than three points or fewer than two distinct x.

    >>> round(loglog_slope([1, 2, 4, 8], [3, 6, 12, 24])["slope"], 6)
    1.0
    """
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    n = len(lx)
    if n < 3 or len(set(lx.tolist())) < 2:
        return {"slope": None, "slope_ci": None, "intercept": None, "n_points": n, "slope_reason": f"{n} points; need >= 3 with two distinct N"}
    fit = stats.linregress(lx, ly)
    t = stats.t.ppf(0.5 + level / 2, n - 2)
    half = t * fit.stderr if math.isfinite(fit.stderr) else float("nan")
    return {"slope": float(fit.slope), "slope_ci": [float(fit.slope - half), float(fit.slope + half)],
            "intercept": float(fit.intercept), "n_points": n}


@contextmanager
def one_thread() -> Iterator[None]:
    """Run tiny models on one intra-op thread (restored after): on shared cores more threads
    only add contention (measured 3x slower with 2 threads on a loaded 2-core machine)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)
