import numpy as np
import pytest

from rotelab.biomed import metrics as M


def test_exact_and_synonym_aware_match():
    assert M.exact_match("HP:0001250", "HP:0001250") and M.exact_match(" HP:0001250  ", "HP:0001250")
    assert not M.exact_match("hp:0001250", "HP:0001250")  # exact: case counts
    assert M.synonym_match("generalized  SEIZURE", ["Seizure", "Generalized seizure"])
    assert not M.synonym_match("Seizures", ["Seizure"])


def test_partial_credit_by_hand():
    assert M.prefix_credit("HP:0001299", "HP:0001250") == pytest.approx(8 / 10)
    assert M.prefix_credit("GO:1", "HP:0001250") == 0
    assert M.digit_credit("HP:0001299", "HP:0001250") == pytest.approx(5 / 7)  # 0,0,0,1,2 right in place; 9,9 wrong
    assert M.digit_credit("HP:00012", "HP:0001250") == pytest.approx(5 / 7)  # missing digits are wrong
    assert np.isnan(M.digit_credit("APOC", "APOC3x"[:4]))


def test_latent_knowledge_is_the_share_of_exact_samples():
    assert M.latent_share(["crc", "crx", "crc", "abc", "crc"], "crc") == pytest.approx(3 / 5)


def test_gain_is_paired_and_its_interval_covers_it():
    base = [0, 0, 0, 1, 0, 0, 1, 0, 0, 0] * 4
    tuned = [1, 1, 0, 1, 1, 0, 1, 1, 0, 0] * 4
    g = M.gain(base, tuned, seed=0)
    assert g["mean"] == pytest.approx(0.4) and g["n"] == 40
    assert g["ci"][0] <= 0.4 <= g["ci"][1] and g["ci"][0] > 0.15
    same = M.gain([1, 0, 1, 0], [1, 0, 1, 0])
    assert same["mean"] == 0 and same["ci"] == [0.0, 0.0]


def test_summaries_carry_clopper_pearson_rates():
    rows = {f"{w}_{m}": np.array(v) for w in ("base", "tuned") for m, v in
            (("em", [True, False, False, False]), ("synonym_em", [True, True, False, False]), ("latent", [1.0, 0.5, 0.0, 0.0]),
             ("prefix", [1.0, 0.5, 0.0, 0.25]), ("digits", [1.0, np.nan, 0.0, 0.5]))}
    rows["tuned_em"] = np.array([True, True, True, False])
    s = M.summarize_items(rows, np.array([True, True, True, True]))
    assert s["base_em"]["rate"] == 0.25 and s["tuned_em"]["hits"] == 3 and s["gain"]["mean"] == 0.5
    assert s["tuned_em"]["ci"] == pytest.approx([0.1941, 0.9937], abs=1e-3)  # Clopper-Pearson 3/4
    assert s["base_digit_credit"]["mean"] == pytest.approx(0.5) and s["base_digit_credit"]["n"] == 3
