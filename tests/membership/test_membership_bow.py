"""The bag-of-words check flags a distribution shift and stays quiet without one."""

from __future__ import annotations

import numpy as np

from rotelab.membership.bow import confound_check


def test_bag_of_words_flags_shifted_sets_only(tiny_splits):
    books = [r["text"] for r in tiny_splits["nonmembers"] if r["kind"] == "book"][:60]
    facts = [r["text"] for r in tiny_splits["holdout"]][:60]
    y = np.array([1] * 60 + [0] * 60)
    assert confound_check(books + facts, y)["confounded"]
    rng = np.random.default_rng(0)
    same = confound_check(books, rng.permutation(np.r_[np.ones(30), np.zeros(30)]))
    assert not same["confounded"] and "no clear" in same["verdict"]
