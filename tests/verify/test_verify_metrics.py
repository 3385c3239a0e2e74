"""The verification math against references: scipy's KS test, hand-built score sets, a hand Holm."""

import numpy as np
import pytest
from scipy import stats

from rotelab.verify.metrics import auc_excess_p, controlled_auc_excess_p, forget_quality, holm, oracle_distance, recovered_share, truth_ratio
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


def test_controlled_auc_is_the_attacked_auc_in_excess_of_the_controls_on_the_same_samples():
    # by hand: attacked AUC = 6/9 (4, 5, 6 each beat 1 and 2, none beats 7); control AUC = 3/9 (only 0 is beaten)
    r = controlled_auc_excess_p([4.0, 5, 6], [1.0, 2, 7], [1.0, 2, 3], [4.0, 5, 0], n_boot=500)
    assert r["raw_auc"] == pytest.approx(6 / 9) and r["control_auc"] == pytest.approx(3 / 9)
    assert r["auc"] == pytest.approx(0.5 + 6 / 9 - 3 / 9)
    # with the scores before the attack: the change in differences, by hand. Unlearned before: 3/9; retrained
    # before: 0 ([0, 1, 2] below all of [3, 4, 5]): level = 6/9 - 3/9, change = (6/9 - 3/9) - (3/9 - 0) = 0
    r = controlled_auc_excess_p([4.0, 5, 6], [1.0, 2, 7], [1.0, 2, 3], [4.0, 5, 0], before=([1.0, 2, 3], [4.0, 5, 0], [0.0, 1, 2], [3.0, 4, 5]), n_boot=500)
    assert r["level"] == pytest.approx(1 / 3) and r["change"] == pytest.approx(0.0) and r["auc"] == pytest.approx(0.5)
    assert r["unlearned_auc"] == pytest.approx(3 / 9) and r["control_before_auc"] == 0.0
    # an attack that moves both models alike reads 0.5 whatever the raw AUC: the retrain null's case
    rng = np.random.default_rng(0)
    f, h = rng.normal(1.0, 1, 40), rng.normal(0, 1, 40)
    same = controlled_auc_excess_p(f, h, f - 0.3, h - 0.3, n_boot=500)
    assert same["auc"] == pytest.approx(0.5) and same["auc_ci"] == pytest.approx([0.5, 0.5]) and same["p_value"] == 1.0 and same["raw_auc"] > 0.6
    # the paired p-value agrees with the interval, as the uncontrolled one does
    big = controlled_auc_excess_p(f + 2, h, f, h, n_boot=500)
    assert (big["p_value"] <= 0.025) == (big["auc_ci"][0] > 0.55) and big["auc"] > 0.8
    with pytest.raises(ValueError, match="same samples"):
        controlled_auc_excess_p(f, h, f[:-1], h)


class _Words:
    """A whitespace 'tokenizer' for hand-checkable ROUGE-L: one token per word, no BOS."""

    bos_ids: list[int] = []

    def tokenize(self, texts):
        return [t.split() for t in texts]

    def detokenize(self, toks):
        return " ".join(toks)


def test_extraction_summary_rouge_l_matches_a_hand_computation():
    from rotelab.verify.api import VerifyConfig
    from rotelab.verify.run import _extraction_summary, suffix_rouge_l

    texts = {"f1": "a b c d e f g h", "f2": "p q r s t u v w", "h1": "x x x x x x x x"}
    cols = {"id": np.array(["f1", "f2", "h1"]), "generated": np.array(["c d z f g h", "r s t u v w", "x"]),
            "em": np.array([0.5, 1.0, 0.0]), "exact": np.array([False, True, False]), "regurgitated": np.array([False, True, False]),
            "match": np.array([5 / 6, 1.0, 0.0]), "es": np.array([0.5, 1.0, 0.0])}
    is_f = np.array([True, True, False])
    rouge = suffix_rouge_l(_Words(), cols, texts, is_f, VerifyConfig(extract_prefix=2, extract_suffix=6))
    # f1: true suffix "c d e f g h", LCS with "c d z f g h" = 5 of 6 words: P = R = F = 5/6; f2 exact: 1
    assert rouge[:2] == pytest.approx([5 / 6, 1.0]) and np.isnan(rouge[2])
    s = _extraction_summary(cols, is_f, rouge)
    assert s["mean_rouge_l"] == pytest.approx((5 / 6 + 1) / 2) and s["k_extractable"]["rate"] == 0.5
    lo, hi = s["mean_rouge_l_ci"]
    assert 5 / 6 <= lo <= hi <= 1.0
