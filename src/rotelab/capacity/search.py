"""Smallest-parameter search and log-log slope fits, shared by both capacity labs."""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from scipy import stats


def smallest_success(params: Sequence[int], trial: Callable[[int], dict[str, Any]]) -> tuple[int | None, list[dict[str, Any]]]:
    """Scan candidates in increasing parameter count; stop at the first
    whose ``trial(i)["success"]`` is true.

    Assumes success is monotone in size (a bigger candidate that failed is not retried); gradient
    descent can break that, so every trial is returned for inspection. Returns (index or None, trials).
    """
    order = sorted(range(len(params)), key=lambda i: params[i])
    trials = []
    for i in order:
        rec = trial(i)
        trials.append(rec)
        if rec["success"]:
            return i, trials
    return None, trials


def width_search(params_of: Callable[[int, int], int], trial: Callable[[int, int], dict[str, Any]], *, depths: Sequence[int],
                 w_min: int, w_max: int, known_fail: dict[int, int] | None = None, guess: dict[int, int] | None = None,
                 grow: float = 1.5) -> dict[str, Any]:
    """Smallest ``params_of(w, depth)`` whose ``trial(w, depth)["success"]`` holds, by galloping
    then bisecting over the width at each depth instead of scanning a grid.

    Depths are searched in the given order. At each depth only widths that could beat the best
    found so far are tried (P < best): a later depth starts at the largest such width, so when
    that one fails the depth costs one trial. ``known_fail[depth]`` is a width taken to fail
    without training (e.g. one below the previous N's smallest success), ``guess[depth]`` the
    first width tried. Success is assumed monotone in the width (a width below a success that
    was not tried is not retried); gradient descent can break that, so every trial is returned.

    Returns ``best`` ((width, depth) or None), ``p_star``, ``per_depth`` {depth: smallest
    successful width or None} and ``trials`` in the order run.
    """
    known_fail, guess = known_fail or {}, guess or {}
    best: tuple[int, int, int] | None = None  # (params, width, depth)
    trials: list[dict[str, Any]] = []
    per_depth: dict[int, int | None] = {}
    for depth in depths:
        cap = w_max
        if best is not None:
            below = [w for w in range(w_min, w_max + 1) if params_of(w, depth) < best[0]]
            cap = max(below) if below else w_min - 1
        lo = max(w_min - 1, known_fail.get(depth, w_min - 1))  # largest width known to fail
        per_depth[depth] = None
        if lo >= cap:
            continue
        first = cap if best is not None else guess.get(depth, lo + 1)
        w, hi = min(cap, max(lo + 1, first)), None

        def run(width: int) -> bool:
            rec = trial(width, depth)  # noqa: B023 (called inside this iteration)
            trials.append({**rec, "width": width, "depth": depth})
            return bool(rec["success"])

        while hi is None:
            if run(w):
                hi = w
            else:
                lo = w
                if w >= cap:
                    break
                w = min(cap, max(w + 1, math.ceil(w * grow)))
        if hi is None:
            continue
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if run(mid):
                hi = mid
            else:
                lo = mid
        per_depth[depth] = hi
        if best is None or params_of(hi, depth) < best[0]:
            best = (params_of(hi, depth), hi, depth)
    return {"best": None if best is None else (best[1], best[2]), "p_star": None if best is None else best[0],
            "per_depth": per_depth, "trials": trials}


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
