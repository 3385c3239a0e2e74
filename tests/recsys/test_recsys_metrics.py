import numpy as np

from rotelab.recsys.metrics import hr_ndcg, normalized_entropy, paired_rel_diff, rank_of_positive, task_metrics


def test_hr_ndcg_match_hand_computed_values():
    pos = np.array([0.9, 0.5, 0.0])
    negs = np.array([[0.1] * 20, [0.6] * 2 + [0.1] * 18, [1.0] * 20])
    rank = rank_of_positive(pos, negs)
    assert rank.tolist() == [1, 3, 21]
    hr, nd = hr_ndcg(rank, 10)
    np.testing.assert_allclose(hr, [1, 1, 0])
    np.testing.assert_allclose(nd, [1, 1 / np.log2(4), 0])


def test_ties_count_against_the_model():
    assert rank_of_positive(np.array([0.3]), np.full((1, 100), 0.3))[0] == 101


def test_normalized_entropy_is_one_for_the_base_rate():
    y = np.array([1, 0, 0, 0])
    assert abs(normalized_entropy(np.full(4, 0.25), y) - 1.0) < 1e-9
    assert normalized_entropy(np.array([0.9, 0.1, 0.1, 0.1]), y) < 1.0


def test_task_metrics_refuse_rare_classes_with_a_reason():
    m = task_metrics(np.linspace(0, 1, 30), np.r_[np.ones(3), np.zeros(27)])
    assert m["auc"] is None and "3 positives" in m["auc_reason"]


def test_paired_rel_diff_is_zero_for_identical_models_and_signed():
    a = np.random.default_rng(0).random(50)
    d, ci = paired_rel_diff(a, a)
    assert d == 0 and ci == [0.0, 0.0]
    d, ci = paired_rel_diff(a * 0.9, a)
    assert abs(d + 0.1) < 1e-12 and ci[1] < 0
