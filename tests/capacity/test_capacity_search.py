"""The smallest-parameter search on trivially small cases, and the slope fit."""

import math

import pytest

from rotelab.capacity.robust.bounds import bounds_summary, lower_bound_terms
from rotelab.capacity.cot.experiment import capacity_sweep
from rotelab.capacity.cot.data import random_labels
from rotelab.capacity.cot.model import TinyConfig, TrainConfig
from rotelab.capacity.robust.config import RobustConfig
from rotelab.capacity.robust.experiment import rho_point
from rotelab.capacity.search import loglog_slope, smallest_success, width_search


def test_smallest_success_stops_at_first_success_in_size_order():
    params = [50, 10, 30, 20]
    seen = []

    def trial(i):
        seen.append(params[i])
        return {"success": params[i] >= 25}

    best, trials = smallest_success(params, trial)
    assert params[best] == 30 and seen == [10, 20, 30] and len(trials) == 3
    assert smallest_success(params, lambda i: {"success": False})[0] is None


def test_loglog_slope_recovers_a_power_law_and_refuses_two_points():
    fit = loglog_slope([4, 8, 16, 32], [3 * n**1.5 for n in (4, 8, 16, 32)])
    assert fit["slope"] == pytest.approx(1.5) and fit["slope_ci"][0] == pytest.approx(1.5)
    assert loglog_slope([1, 2], [1, 2])["slope"] is None


def test_capacity_sweep_finds_a_memorising_transformer_on_a_tiny_case():
    arch = lambda w, L: TinyConfig(vocab=6, width=w, depth=L, max_len=4, pos="learned")  # noqa: E731
    out = capacity_sweep(lambda n, s: random_labels(n, length=3, seed=s), arch, (4, 8), (0,), cot=False,
                         train=TrainConfig(steps=300, lr=1e-2), depths=(1,), w_min=2, w_max=8)
    p4, p8 = out["points"]
    assert p4["p_star"] is not None  # some width memorises the 4 sequences
    assert min(t["params"] for t in p4["trials"] if t["success"]) == p4["p_star"]  # P* is the smallest success
    assert all(t["width"] >= p4["width"] for t in p8["trials"])  # the next N never retrains below the last width


def _monotone(threshold):
    calls = []

    def trial(w, d):
        calls.append((w, d))
        return {"success": w * d >= threshold}
    return trial, calls


def test_width_search_bisects_to_the_threshold_with_few_trials():
    trial, calls = _monotone(23)
    res = width_search(lambda w, d: w * w * d, trial, depths=(1,), w_min=2, w_max=64)
    assert res["best"] == (23, 1) and res["p_star"] == 23 * 23
    assert len(calls) <= 12  # a grid scan would need 22
    assert all((w >= 23) == t["success"] for (w, _), t in zip(calls, res["trials"]))


def test_width_search_prunes_later_depths_to_widths_below_the_best():
    trial, calls = _monotone(16)  # depth 2 succeeds from width 8, depth 1 from 16
    res = width_search(lambda w, d: 10 * w * w * d, trial, depths=(2, 1), w_min=2, w_max=64)
    assert res["best"] == (8, 2) and res["per_depth"] == {2: 8, 1: None}
    assert [c for c in calls if c[1] == 1] == [(11, 1)]  # the largest depth-1 width with P < 1280 fails: one trial
    trial, calls = _monotone(10)
    res = width_search(lambda w, d: w * w * d**3, trial, depths=(2, 1), w_min=2, w_max=64)
    assert res["best"] == (10, 1) and res["p_star"] == 100  # depth 1 wins (P 100 < 8 * 25)


def test_width_search_uses_known_failures_and_guesses():
    trial, calls = _monotone(20)
    res = width_search(lambda w, d: w, trial, depths=(1,), w_min=2, w_max=64, known_fail={1: 17}, guess={1: 22})
    assert res["best"] == (20, 1) and min(w for w, _ in calls) >= 18 and calls[0] == (22, 1)
    assert width_search(lambda w, d: w, lambda w, d: {"success": False}, depths=(1,), w_min=2, w_max=5)["best"] is None


def test_robust_search_certifies_a_tiny_case_and_reports_the_gap():
    cfg = RobustConfig(n=6, d=2, widths=(2, 16), depths=(1,), steps=400, pgd_steps=10, pgd_restarts=1)
    p = rho_point(cfg, 0.3, 0)
    assert p["p_star"] is not None
    last = p["trials"][-1]
    assert last["certified"] == 1.0 and last["attacked"] == 0.0 and last["gap"] == 0.0


def test_lower_bound_terms_match_hand_values():
    t = lower_bound_terms(16, 4, 0.6)
    assert t["width_term"] == pytest.approx((0.36 * 4 + 1) * 4)
    assert t["vc_term"] == pytest.approx(1.25 * 4)
    assert lower_bound_terms(16, 4, 0.99)["vc_term"] == pytest.approx(math.sqrt(4) * 4)  # capped at sqrt(d)
    s = bounds_summary(1000, 16, 0.5)
    assert "unverified" in s and s["upper_bound_order"] == 1000 * 16**2
