import numpy as np
import pytest
import torch

from rotelab.diffusion.replication import centred_cosine, per_prompt_rates, rate, rate_curve


def test_centred_cosine_equals_hand_computed_value():
    a = torch.tensor([1.0, 2.0, 3.0, 6.0]).view(1, 2, 2)  # centred: -2, -1, 0, 3
    b = torch.tensor([0.0, 1.0, 0.0, 3.0]).view(1, 2, 2)  # centred: -1, 0, -1, 2
    expected = (2 + 0 + 0 + 6) / (np.sqrt(14) * np.sqrt(6))
    assert float(centred_cosine(a, b)) == pytest.approx(expected, abs=1e-6)


def test_centred_cosine_ignores_per_channel_brightness_and_contrast():
    x = torch.rand(3, 8, 8)
    shifted = x * torch.tensor([2.0, 0.5, 1.0]).view(3, 1, 1) + torch.tensor([0.3, -0.2, 0.0]).view(3, 1, 1)
    # a per-channel affine change alters channel norms, so the cosine is high but not exactly 1
    assert float(centred_cosine(x, shifted)) > 0.8
    assert float(centred_cosine(x, x + 0.4)) == pytest.approx(1.0, abs=1e-6)
    assert abs(float(centred_cosine(x, torch.rand(3, 8, 8)))) < 0.3


def test_rate_counts_strictly_above_threshold_with_exact_interval():
    r = rate(np.array([0.9, 0.7, 0.2, 0.71]), 0.7)
    assert (r["k"], r["n"], r["rate"]) == (2, 4, 0.5)
    assert r["ci"][0] < 0.5 < r["ci"][1]


def test_rate_curve_is_non_increasing_in_threshold():
    sims = np.random.default_rng(0).uniform(-1, 1, 200)
    rates = [c["rate"] for c in rate_curve(sims)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))


def test_per_prompt_rates_average_over_seeds():
    assert per_prompt_rates(np.array([[0.9, 0.1], [0.8, 0.95]]), 0.7).tolist() == [0.5, 1.0]
