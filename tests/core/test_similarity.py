import pytest

from rotelab.core import similarity as sim


def test_jaccard_and_cosine_by_hand():
    assert sim.jaccard("The cat sat", "the cat ran") == pytest.approx(2 / 4)
    # counts a:(2,1) b:(1,2): cos = 4 / 5
    assert sim.cosine("a a b", "a b b") == pytest.approx(0.8)


def test_levenshtein_by_hand():
    assert sim.levenshtein("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert sim.levenshtein("abc", "abc") == 1.0


def test_rouge_l_is_lcs_f1_by_hand():
    s, g = "the cat sat on the mat", "the cat on the mat"  # LCS = 5 words
    p, r = 5 / 5, 5 / 6
    assert sim.rouge_l(s, g) == pytest.approx(2 * p * r / (p + r))


def test_bleu_identical_is_one_and_disjoint_is_near_zero():
    t = "alice was beginning to get very tired of sitting by her sister"
    assert sim.bleu(t, t) == pytest.approx(1.0)
    assert sim.bleu(t, "completely different words here now") < 0.05


def test_sequence_matcher_by_hand():
    assert sim.sequence_matcher("abcd", "abce") == pytest.approx(2 * 3 / 8)


def test_exact_on_text_and_ids():
    assert sim.exact("a b", "a b") == 1.0 and sim.exact("a b", "a c") == 0.0
    assert sim.exact([1, 2, 3], [1, 2, 3]) == 1.0 and sim.exact([1, 2], [1, 3]) == 0.0


def test_panel_has_every_metric_in_unit_interval():
    p = sim.panel("the quick brown fox", "the quick red fox")
    assert set(p) == set(sim.METRICS)
    assert all(0.0 <= v <= 1.0 for v in p.values())
