"""The testbed's splits: who was trained, how often, and what is held out — the ground truth.

    members             trained samples a user scores: id, text, copies, kind (book|fact|canary), source
    member_prefix_pool  trained single-copy book passages set apart as Con-ReCaLL's member prefixes;
                        members + member_prefix_pool = every trained sample (disjoint)
    nonmembers          same distribution (book passages, facts of never-trained people, un-inserted canaries)
    forget              facts of a share of the member people (to unlearn)
    retain              members minus forget
    holdout             facts of never-trained people (the never-seen class in unlearning evaluation)
    stop_calibration    facts of other never-trained people: the unlearning stop is calibrated on them,
                        so the holdout an evaluation uses never chose the checkpoint
    relearn             facts of other never-trained people from the same generator as the forget
                        people: the relearning attack's fine-tuning data
    perturbed_answers   per fact of every person (forget, retain, holdout, stop_calibration, relearn):
                        id (the fact's), text, question, answer, 5 wrong answers of the same type, split
    paraphrases         paraphrased questions of the member and holdout facts: id, text, source_id, split
    canaries            id, text, prefix, secret, copies (copies 0 = never inserted: controls)
    prefix_pool         book passages disjoint from nonmembers (ReCaLL-style non-member prefixes)
    reference           disjoint text of the same kind, for the reference model (not a published split)

Pairwise disjoint by id and by text: members, member_prefix_pool, nonmembers, prefix_pool,
reference, stop_calibration, relearn. The people are drawn in one seeded stream (members,
holdout, reference, then stop_calibration and relearn), so adding the last two left every
trained sample, the tokenizer and the models as they were.
"""

from __future__ import annotations

import json
import random
from itertools import combinations
from pathlib import Path

from rotelab.errors import RotelabError
from rotelab.testbed import corpora
from rotelab.testbed.presets import Preset

SPLITS = ("members", "nonmembers", "forget", "retain", "holdout", "paraphrases", "canaries", "prefix_pool",
          "stop_calibration", "relearn", "perturbed_answers", "member_prefix_pool")
DISJOINT = ("members", "member_prefix_pool", "nonmembers", "prefix_pool", "reference", "stop_calibration", "relearn")
NEVER_TRAINED_FACTS = ("holdout", "stop_calibration", "relearn")


def make_splits(p: Preset, *, seed: int) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    pool = []
    for book in p.books:
        for k, text in enumerate(corpora.passages(corpora.load_book(book), words=p.passage_words)):
            pool.append({"id": f"{book}_{k:05d}", "text": text, "kind": "book", "source": book})
    rng.shuffle(pool)
    need = p.n_nonmember_passages + p.n_prefix_pool + p.n_reference_passages + p.n_member_passages
    if len(pool) < need:
        raise RotelabError(f"preset '{p.name}' needs {need} passages; the books give {len(pool)}")
    cut = [p.n_nonmember_passages, p.n_prefix_pool, p.n_reference_passages, p.n_member_passages]
    parts, start = [], 0
    for n in cut:
        parts.append(pool[start : start + n])
        start += n
    book_non, prefix_pool, book_ref, book_mem = parts

    i = 0
    for copies, n in sorted(p.book_copies.items(), reverse=True):
        for s in book_mem[i : i + n]:
            s["copies"] = copies
        i += n
    for s in book_mem[i:]:
        s["copies"] = 1
    n_pool = p.n_member_prefix_pool
    if not 0 <= n_pool <= len(book_mem) - i:
        raise RotelabError(f"preset '{p.name}': n_member_prefix_pool {n_pool} exceeds its {len(book_mem) - i} single-copy member passages")
    member_pool = book_mem[len(book_mem) - n_pool :]  # the last single-copy passages: trained, not scored

    n_hold = p.n_holdout_people
    people = corpora.make_people(p.n_people + 2 * n_hold + p.n_stop_people + p.n_relearn_people, seed=seed + 1)
    mem_people = people[: p.n_people]
    hold_people = people[p.n_people : p.n_people + n_hold]
    ref_people = people[p.n_people + n_hold : p.n_people + 2 * n_hold]
    stop_people = people[p.n_people + 2 * n_hold : p.n_people + 2 * n_hold + p.n_stop_people]
    relearn_people = people[p.n_people + 2 * n_hold + p.n_stop_people :]
    n_forget = max(1, round(p.forget_share * p.n_people))
    forget_ids = {q.id for q in mem_people[:n_forget]}

    facts_mem = [dict(s, copies=p.fact_copies) for q in mem_people for s in corpora.fact_samples(q)]
    facts_hold = [dict(s, copies=0) for q in hold_people for s in corpora.fact_samples(q)]
    facts_ref = [dict(s, copies=p.fact_copies) for q in ref_people for s in corpora.fact_samples(q)]

    counts = [c for c in p.canary_copies for _ in range(p.canaries_per_count)]
    canaries = corpora.make_canaries(counts, seed=seed + 2)
    can_mem = [c for c in canaries if c["copies"] > 0]
    can_non = [c for c in canaries if c["copies"] == 0]

    members = book_mem[: len(book_mem) - n_pool] + facts_mem + can_mem
    forget = [s for s in facts_mem if s["source"] in forget_ids]
    retain = [s for s in members if not (s["kind"] == "fact" and s["source"] in forget_ids)]
    nonmembers = [dict(s, copies=0) for s in book_non] + facts_hold + can_non

    def para_split(pid: str) -> str:
        return "forget" if pid in forget_ids else "retain"

    paraphrases = [dict(s, split=para_split(q.id)) for q in mem_people for s in corpora.paraphrase_samples(q)]
    paraphrases += [dict(s, split="holdout") for q in hold_people for s in corpora.paraphrase_samples(q)]

    def untrained_facts(group):
        return [dict(s, copies=0) for q in group for s in corpora.fact_samples(q)]

    pert_rng = random.Random(seed + 3)
    fact_split = [(q, para_split(q.id)) for q in mem_people] + [(q, name) for name, group in (("holdout", hold_people), ("stop_calibration", stop_people), ("relearn", relearn_people)) for q in group]
    perturbed = [dict(s, split=name) for q, name in fact_split for s in corpora.perturbed_samples(q, rng=pert_rng)]
    return {
        "members": members,
        "nonmembers": nonmembers,
        "forget": forget,
        "retain": retain,
        "holdout": facts_hold,
        "paraphrases": paraphrases,
        "canaries": canaries,
        "prefix_pool": [dict(s, copies=0) for s in prefix_pool],
        "stop_calibration": untrained_facts(stop_people),
        "relearn": untrained_facts(relearn_people),
        "perturbed_answers": perturbed,
        "member_prefix_pool": member_pool,
        "reference": [dict(s, copies=1) for s in book_ref] + facts_ref,
    }


def in_training_order(rows: list[dict], member_pool: list[dict]) -> list[dict]:
    """``rows`` (``members`` or ``retain``, in file order) with the member prefix pool put back
    where the model was trained on it: after the book passages, before facts and canaries.

    ``in_training_order(members, member_prefix_pool)`` is every trained sample in training order.

    >>> [r["id"] for r in in_training_order([{"id": "b1", "kind": "book"}, {"id": "f1", "kind": "fact"}], [{"id": "b2", "kind": "book"}])]
    ['b1', 'b2', 'f1']
    """
    books = [r for r in rows if r.get("kind") == "book"]
    return books + member_pool + [r for r in rows if r.get("kind") != "book"]


def check_contract(splits: dict[str, list[dict]]) -> None:
    """Assert the split contract (raises AssertionError naming what broke)."""
    ids = {k: {s["id"] for s in v} for k, v in splits.items()}
    texts = {k: {s["text"] for s in v} for k, v in splits.items()}
    for a, b in [*combinations(DISJOINT, 2), ("forget", "retain")]:
        assert not ids[a] & ids[b], f"{a} and {b} share ids"
        assert not texts[a] & texts[b], f"{a} and {b} share texts"
    assert ids["forget"] | ids["retain"] == ids["members"], "forget + retain != members"
    assert ids["forget"] <= ids["members"] and ids["holdout"] <= ids["nonmembers"]
    for name in ("members", "member_prefix_pool"):
        assert all(s["copies"] >= 1 for s in splits[name]), f"a sample of {name} with copies < 1"
    for name in ("nonmembers", "prefix_pool", *NEVER_TRAINED_FACTS):
        assert all(s["copies"] == 0 for s in splits[name]), f"a sample of {name} with copies > 0"
    assert all(s["kind"] == "book" for s in splits["member_prefix_pool"]), "member_prefix_pool holds a non-book sample"
    trained = {s["text"] for k in ("members", "member_prefix_pool") for s in splits[k]}
    assert not trained & {s["text"] for s in splits["paraphrases"]}, "a paraphrase is a trained text"
    people = {k: {s["source"] for s in splits[k] if s.get("kind") == "fact"} for k in ("members", "reference", *NEVER_TRAINED_FACTS)}
    for a, b in combinations(people, 2):
        assert not people[a] & people[b], f"{a} and {b} share people"
    facts = {s["id"]: s for k in ("members", *NEVER_TRAINED_FACTS) for s in splits[k] if s.get("kind") == "fact"}
    assert ids["perturbed_answers"] == set(facts), "perturbed_answers does not cover exactly the facts of members, holdout, stop_calibration and relearn"
    for s in splits["perturbed_answers"]:
        wrong = s["perturbed"]
        assert s["text"] == facts[s["id"]]["text"], f"perturbed_answers {s['id']}: text differs from the fact's"
        assert len(wrong) == 5 and len(set(wrong)) == 5 and s["answer"] not in wrong, f"perturbed_answers {s['id']}: needs 5 distinct wrong answers"


def read_split(folder: Path | str, name: str) -> list[dict]:
    """Rows of ``<folder>/splits/<name>.jsonl``; a missing file or a malformed line is one line naming it."""
    p = Path(folder) / "splits" / f"{name}.jsonl"
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise RotelabError(f"{p}: file not found (not a testbed folder?)") from None
    except UnicodeDecodeError:
        raise RotelabError(f"{p}: not valid UTF-8") from None
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise RotelabError(f"{p}:{i}: malformed JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise RotelabError(f"{p}:{i}: missing field 'text'")
        rows.append(row)
    return rows


def read_splits(folder: Path | str) -> dict[str, list[dict]]:
    """Every split of a testbed folder (and its reference texts), by name."""
    return {name: read_split(folder, name) for name in (*SPLITS, "reference")}
