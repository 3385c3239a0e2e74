from collections import Counter
from itertools import combinations

import pytest

from rotelab.testbed.presets import PRESETS, get_preset
from rotelab.testbed.splits import check_contract, in_training_order, make_splits
from rotelab.core.training import schedule


def test_split_contract_holds(tiny_splits):
    check_contract(tiny_splits)


def test_members_and_nonmembers_disjoint_by_text(tiny_splits):
    mem = {s["text"] for s in tiny_splits["members"]}
    assert not mem & {s["text"] for s in tiny_splits["nonmembers"]}
    assert not mem & {s["text"] for s in tiny_splits["prefix_pool"]}


def test_copy_counts_follow_the_preset(tiny_splits):
    p = get_preset("tiny")
    trained = in_training_order(tiny_splits["members"], tiny_splits["member_prefix_pool"])
    books = Counter(s["copies"] for s in trained if s["kind"] == "book")
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
    books = [s for s in in_training_order(splits["members"], splits["member_prefix_pool"]) if s["kind"] == "book"]
    assert len(books) == p.n_member_passages
    assert {c: sum(s["copies"] == c for s in books) for c in p.book_copies} == p.book_copies


# -- the splits of issue 18: stop calibration, relearning, perturbed answers, member prefixes ----------
def _digest(rows) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]


@pytest.mark.parametrize("name, seed, trained, tokenizer_texts", [
    ("tiny", 0, "592331fa47109837", "577faceb44dc85cd"),
    ("small", 0, "44efd7c4ee83fd61", "4c63d5780c9429af"),
])
def test_new_splits_leave_the_trained_data_and_tokenizer_texts_as_they_were(name, seed, trained, tokenizer_texts):
    """Digests computed with the code before these splits (commit da09b60): same texts, copies and
    training order, same tokenizer corpus, so the same models for the same preset and seed."""
    s = make_splits(PRESETS[name], seed=seed)
    rows = in_training_order(s["members"], s["member_prefix_pool"])
    assert _digest([[r["text"], r["copies"]] for r in rows]) == trained
    assert _digest([r["text"] for r in rows] + [r["text"] for k in ("nonmembers", "reference", "prefix_pool") for r in s[k]]) == tokenizer_texts


def test_stop_calibration_and_relearn_are_facts_of_other_never_trained_people(tiny_splits):
    p = get_preset("tiny")
    people = {k: {r["source"] for r in tiny_splits[k]} for k in ("holdout", "stop_calibration", "relearn", "forget")}
    assert len(people["stop_calibration"]) == p.n_stop_people and len(people["relearn"]) == p.n_relearn_people
    assert len(people["relearn"]) == len(people["forget"])  # as many people as the forget set
    for a, b in combinations(people, 2):
        assert not people[a] & people[b], (a, b)
    trained = {r["text"] for r in tiny_splits["members"] + tiny_splits["member_prefix_pool"] + tiny_splits["reference"]}
    for k in ("stop_calibration", "relearn"):
        assert all(r["kind"] == "fact" and r["copies"] == 0 and r["text"] not in trained for r in tiny_splits[k])
        assert not {r["text"] for r in tiny_splits[k]} & {r["text"] for r in tiny_splits["nonmembers"]}  # no user scores them as non-members either


def test_member_prefix_pool_is_trained_but_in_no_scored_set(tiny_splits):
    pool = tiny_splits["member_prefix_pool"]
    assert len(pool) == get_preset("tiny").n_member_prefix_pool
    assert all(r["kind"] == "book" and r["copies"] == 1 for r in pool)
    texts = {r["text"] for r in pool}
    for k in ("members", "retain", "forget", "nonmembers", "holdout", "prefix_pool", "stop_calibration", "relearn"):
        assert not texts & {r["text"] for r in tiny_splits[k]}, k
    trained = in_training_order(tiny_splits["members"], pool)
    assert len(trained) == len(tiny_splits["members"]) + len(pool)  # members + pool = every trained sample


def test_perturbed_answers_are_five_wrong_answers_of_the_true_answers_type(tiny_splits):
    from rotelab.testbed.corpora import _VALUES

    rows = {r["id"]: r for r in tiny_splits["perturbed_answers"]}
    facts = [r for k in ("forget", "retain", "holdout", "stop_calibration", "relearn") for r in tiny_splits[k] if r["kind"] == "fact"]
    assert set(rows) == {r["id"] for r in facts}
    split = {r["id"]: k for k in ("forget", "holdout", "stop_calibration", "relearn") for r in tiny_splits[k]}
    for f in facts:
        row = rows[f["id"]]
        assert row["question"] == f["question"] and row["answer"] == f["answer"] and row["split"] == split.get(f["id"], "retain")
        assert len(set(row["perturbed"])) == 5 and f["answer"] not in row["perturbed"]
        if row["attribute"] == "birth":  # "<name> was born in <year> in <city>.": both wrong
            name = f["answer"].split(" was born in ")[0]
            born = lambda answer: answer.removeprefix(f"{name} was born in ").removesuffix(".").split(" in ", 1)  # noqa: E731
            year, city = born(f["answer"])
            for w in row["perturbed"]:
                y, c = born(w)
                assert int(y) in _VALUES["year"] and c in _VALUES["city"] and y != year and c != city, w
        else:  # the same sentence with another value of the same field
            field = row["attribute"]
            true = next(v for v in _VALUES[field] if v in f["answer"])
            for w in row["perturbed"]:
                assert any(w == f["answer"].replace(true, v) for v in _VALUES[field] if v != true), w


@pytest.mark.parametrize("leak, message", [
    (lambda s: s["stop_calibration"].append(dict(s["holdout"][0])), "nonmembers and stop_calibration share"),
    (lambda s: s["relearn"].append(dict(s["forget"][0], copies=0)), "members and relearn share"),
    (lambda s: s["member_prefix_pool"].append(s["members"][0]), "members and member_prefix_pool share"),
    (lambda s: s["stop_calibration"].__setitem__(0, dict(s["stop_calibration"][0], copies=1)), "stop_calibration with copies > 0"),
    (lambda s: s["perturbed_answers"][0]["perturbed"].__setitem__(0, s["perturbed_answers"][0]["answer"]), "5 distinct wrong answers"),
    (lambda s: s["perturbed_answers"].pop(), "perturbed_answers does not cover"),
])
def test_check_contract_names_a_leak_between_splits(leak, message):
    s = make_splits(get_preset("tiny"), seed=0)
    leak(s)
    with pytest.raises(AssertionError, match=message):
        check_contract(s)
