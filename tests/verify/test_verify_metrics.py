"""The verification math against references: scipy's KS test, hand-built score sets, a hand Holm."""

import numpy as np
import pytest
from scipy import stats

from rotelab.verify.metrics import auc_excess_p, forget_quality, holm, oracle_distance, recovered_share, truth_ratio
from rotelab.verify.verdict import DIRECT, HIDDEN, INDIRECT, NOT_REMOVED, REMOVED, Evidence, verdict


def test_truth_ratio_is_mean_false_probability_over_true_probability():
    true_nll = np.array([0.5, 2.0])
    false_nll = np.array([[1.0, 3.0], [2.0, 2.0]])
    # OpenUnlearning: exp(true_avg_loss - mean false_avg_loss)
    assert truth_ratio(true_nll, false_nll) == pytest.approx([np.exp(0.5 - 2.0), 1.0])
    with pytest.raises(ValueError, match="must be"):
        truth_ratio(true_nll, false_nll[0])


def test_forget_quality_is_scipy_ks_2samp_p_value():
    rng = np.random.default_rng(0)
    a, b = rng.lognormal(0, 1, 40), rng.lognormal(0.8, 1, 35)
    ref = stats.ks_2samp(a, b)
    fq = forget_quality(a, b)
    assert fq["p_value"] == pytest.approx(ref.pvalue) and fq["ks_statistic"] == pytest.approx(ref.statistic)
    assert fq["p_value"] < 0.05 < forget_quality(a, a)["p_value"]


@pytest.mark.parametrize(("unl", "ret", "want"), [
    ([5.0, 6.0, 7.0], [1.0, 2.0, 3.0], 1.0),  # fully separable above the oracle (still memorised)
    ([1.0, 2.0, 3.0], [5.0, 6.0, 7.0], 1.0),  # fully separable below it (over-unlearned)
    ([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], 0.0),  # same scores: AUC 0.5 (ties count half)
    ([2.0, 4.0], [1.0, 3.0], 0.5),  # pairs won 3 of 4: AUC 0.75
    ([1.0, 3.0], [2.0, 4.0], 0.5),  # won 1 of 4: AUC 0.25
])
def test_oracle_distance_on_hand_built_score_sets(unl, ret, want):
    assert oracle_distance(unl, ret) == pytest.approx(want)


def test_holm_matches_a_hand_computation():
    p = [0.01, 0.04, 0.03, 0.005, 0.5]
    # sorted: 0.005 0.01 0.03 0.04 0.5 -> x5 x4 x3 x2 x1 = 0.025 0.04 0.09 0.08 0.5 -> running max
    want = {0.005: 0.025, 0.01: 0.04, 0.03: 0.09, 0.04: 0.09, 0.5: 0.5}
    assert holm(p).tolist() == pytest.approx([want[x] for x in p])
    assert holm([0.9, 0.8]).tolist() == pytest.approx([1.0, 1.0])  # 2 x 0.8 capped at 1; 0.9 raised to it (monotone)


def test_auc_p_value_agrees_with_the_interval_and_delta():
    rng = np.random.default_rng(1)
    far = auc_excess_p(rng.normal(2, 1, 60), rng.normal(0, 1, 60))
    near = auc_excess_p(rng.normal(0.1, 1, 60), rng.normal(0, 1, 60))
    assert far["p_value"] < 0.025 and far["auc_ci"][0] > 0.55
    assert near["p_value"] > 0.025
    # the same data clears delta = 0.05 but not delta = 0.45 (AUC 0.95 cannot be shown above 0.95)
    pos, neg = rng.normal(1.5, 1, 60), rng.normal(0, 1, 60)
    assert auc_excess_p(pos, neg)["p_value"] < 0.025 < auc_excess_p(pos, neg, delta=0.45)["p_value"]


def test_recovered_share_and_its_interval():
    o = np.full(20, 1.0)
    u = np.full(20, 3.0)
    a = np.linspace(1.5, 2.5, 20)  # mean 2: half the gap back
    r = recovered_share(o, u, a)
    assert r["share"] == pytest.approx(0.5) and r["ci"][0] < 0.5 < r["ci"][1]
    none = recovered_share(u, o, a)
    assert none["share"] is None and "no forget-loss gap" in none["share_reason"]


def _ev(name, family, p):
    return Evidence(name, family, 0.9 if p < 0.01 else 0.5, (0.0, 1.0), p)


def test_verdict_rule_direct_then_indirect_with_holm():
    assert verdict([_ev("loss", DIRECT, 0.001), _ev("remind", INDIRECT, 0.5)])["verdict"] == NOT_REMOVED
    hidden = verdict([_ev("loss", DIRECT, 0.4), _ev("quant4", INDIRECT, 0.001)])
    assert hidden["verdict"] == HIDDEN and hidden["detected_by"] == ["quant4"]
    assert verdict([_ev("loss", DIRECT, 0.4), _ev("quant4", INDIRECT, 0.3)])["verdict"] == REMOVED
    # p = 0.02 detects alone (<= 0.025) but not after Holm across three attacks (0.06)
    assert verdict([_ev("loss", DIRECT, 0.02)])["verdict"] == NOT_REMOVED
    three = verdict([_ev("loss", DIRECT, 0.02), _ev("a", INDIRECT, 0.5), _ev("b", INDIRECT, 0.6)])
    assert three["verdict"] == REMOVED and three["attacks"][0]["p_holm"] == pytest.approx(0.06)
    assert verdict([])["verdict"] is None
