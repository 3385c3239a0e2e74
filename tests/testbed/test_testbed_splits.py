from collections import Counter

import pytest

from rotelab.testbed.presets import PRESETS, get_preset
from rotelab.testbed.splits import check_contract, make_splits
from rotelab.core.training import schedule


def test_split_contract_holds(tiny_splits):
    check_contract(tiny_splits)


def test_members_and_nonmembers_disjoint_by_text(tiny_splits):
    mem = {s["text"] for s in tiny_splits["members"]}
    assert not mem & {s["text"] for s in tiny_splits["nonmembers"]}
    assert not mem & {s["text"] for s in tiny_splits["prefix_pool"]}


def test_copy_counts_follow_the_preset(tiny_splits):
    p = get_preset("tiny")
    books = Counter(s["copies"] for s in tiny_splits["members"] if s["kind"] == "book")
    for copies, n in p.book_copies.items():
        assert books[copies] == n
    assert books[1] == p.n_member_passages - sum(p.book_copies.values())
    assert all(s["copies"] == p.fact_copies for s in tiny_splits["members"] if s["kind"] == "fact")


def test_canaries_inserted_at_their_counts(tiny_splits):
    members = {s["id"]: s for s in tiny_splits["members"]}
    for c in tiny_splits["canaries"]:
        assert c["text"].startswith(c["prefix"]) and c["secret"] in c["text"]
        if c["copies"] > 0:
            assert members[c["id"]]["text"] == c["text"] and members[c["id"]]["copies"] == c["copies"]
        else:
            assert c["id"] not in members and c["text"] in {s["text"] for s in tiny_splits["nonmembers"]}


def test_forget_is_whole_people_and_paraphrases_point_to_facts(tiny_splits):
    forget_people = {s["source"] for s in tiny_splits["forget"]}
    assert all(s["source"] not in forget_people for s in tiny_splits["retain"] if s["kind"] == "fact")
    fact_ids = {s["id"] for s in tiny_splits["members"] + tiny_splits["holdout"]}
    assert all(p["source_id"] in fact_ids for p in tiny_splits["paraphrases"])
    trained = {s["text"] for s in tiny_splits["members"]}
    assert not trained & {p["text"] for p in tiny_splits["paraphrases"]}


def test_schedule_repeats_each_sample_exactly_copies_times():
    copies = [1, 4, 0, 20]
    assert Counter(schedule(copies, seed=3)) == {0: 1, 1: 4, 3: 20}


def test_splits_are_seeded():
    p = get_preset("tiny")
    a, b, c = make_splits(p, seed=1), make_splits(p, seed=1), make_splits(p, seed=2)
    assert a["members"] == b["members"] and a["members"] != c["members"]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_meets_the_split_contract_and_fits_its_context(name):
    p = PRESETS[name]
    splits = make_splits(p, seed=0)
    check_contract(splits)
    assert p.model.n_positions >= 65  # a 32-token prefix + 32-token suffix + BOS
    books = [s for s in splits["members"] if s["kind"] == "book"]
    assert len(books) == p.n_member_passages
    assert {c: sum(s["copies"] == c for s in books) for c in p.book_copies} == p.book_copies
