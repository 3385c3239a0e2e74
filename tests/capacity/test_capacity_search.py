"""The smallest-parameter search on trivially small cases, and the slope fit."""

import math

import pytest

from rotelab.capacity.bounds import bounds_summary, lower_bound_terms
from rotelab.capacity.cot import capacity_sweep
from rotelab.capacity.cot_data import random_labels
from rotelab.capacity.cot_model import TinyConfig, TrainConfig
from rotelab.capacity.robust import RobustConfig, rho_point
from rotelab.capacity.search import loglog_slope, smallest_success, start_position


def test_smallest_success_stops_at_first_success_in_size_order():
    params = [50, 10, 30, 20]
    seen = []

    def trial(i):
        seen.append(params[i])
        return {"success": params[i] >= 25}

    best, trials = smallest_success(params, trial)
    assert params[best] == 30 and seen == [10, 20, 30] and len(trials) == 3
    assert smallest_success(params, trial, start=start_position(params, 25))[0] == 2
    assert smallest_success(params, lambda i: {"success": False})[0] is None


def test_loglog_slope_recovers_a_power_law_and_refuses_two_points():
    fit = loglog_slope([4, 8, 16, 32], [3 * n**1.5 for n in (4, 8, 16, 32)])
    assert fit["slope"] == pytest.approx(1.5) and fit["slope_ci"][0] == pytest.approx(1.5)
    assert loglog_slope([1, 2], [1, 2])["slope"] is None


def test_capacity_sweep_finds_a_memorising_transformer_on_a_tiny_case():
    arch = [TinyConfig(vocab=6, width=w, max_len=4, pos="learned") for w in (1, 8)]
    out = capacity_sweep(lambda n, s: random_labels(n, length=3, seed=s), arch, (4,), (0,), cot=False, train=TrainConfig(steps=300, lr=1e-2))
    (point,) = out["points"]
    assert point["p_star"] is not None and point["trials"][-1]["memorized"] == 1.0
    assert all(t["memorized"] < 1 for t in point["trials"][:-1])


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
