"""The testbed's splits: who was trained, how often, and what is held out — the ground truth.

    members      every trained sample: id, text, copies, kind (book|fact|canary), source
    nonmembers   same distribution (book passages, facts of never-trained people, un-inserted canaries)
    forget       facts of a share of the member people (to unlearn)
    retain       members minus forget
    holdout      facts of never-trained people (the never-seen class in unlearning evaluation)
    paraphrases  paraphrased questions of every person's facts: id, text, source_id, split
    canaries     id, text, prefix, secret, copies (copies 0 = never inserted: controls)
    prefix_pool  book passages disjoint from nonmembers (ReCaLL-style prefixes)
    reference    disjoint text of the same kind, for the reference model (not a published split)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from rotelab.errors import RotelabError
from rotelab.testbed import corpora
from rotelab.testbed.presets import Preset

SPLITS = ("members", "nonmembers", "forget", "retain", "holdout", "paraphrases", "canaries", "prefix_pool")


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

    people = corpora.make_people(p.n_people + 2 * p.n_holdout_people, seed=seed + 1)
    mem_people = people[: p.n_people]
    hold_people = people[p.n_people : p.n_people + p.n_holdout_people]
    ref_people = people[p.n_people + p.n_holdout_people :]
    n_forget = max(1, round(p.forget_share * p.n_people))
    forget_ids = {q.id for q in mem_people[:n_forget]}

    facts_mem = [dict(s, copies=p.fact_copies) for q in mem_people for s in corpora.fact_samples(q)]
    facts_hold = [dict(s, copies=0) for q in hold_people for s in corpora.fact_samples(q)]
    facts_ref = [dict(s, copies=p.fact_copies) for q in ref_people for s in corpora.fact_samples(q)]

    counts = [c for c in p.canary_copies for _ in range(p.canaries_per_count)]
    canaries = corpora.make_canaries(counts, seed=seed + 2)
    can_mem = [c for c in canaries if c["copies"] > 0]
    can_non = [c for c in canaries if c["copies"] == 0]

    members = book_mem + facts_mem + can_mem
    forget = [s for s in facts_mem if s["source"] in forget_ids]
    retain = [s for s in members if not (s["kind"] == "fact" and s["source"] in forget_ids)]
    nonmembers = [dict(s, copies=0) for s in book_non] + facts_hold + can_non

    def para_split(pid: str) -> str:
        return "forget" if pid in forget_ids else "retain"

    paraphrases = [dict(s, split=para_split(q.id)) for q in mem_people for s in corpora.paraphrase_samples(q)]
    paraphrases += [dict(s, split="holdout") for q in hold_people for s in corpora.paraphrase_samples(q)]
    return {
        "members": members,
        "nonmembers": nonmembers,
        "forget": forget,
        "retain": retain,
        "holdout": facts_hold,
        "paraphrases": paraphrases,
        "canaries": canaries,
        "prefix_pool": [dict(s, copies=0) for s in prefix_pool],
        "reference": [dict(s, copies=1) for s in book_ref] + facts_ref,
    }


def check_contract(splits: dict[str, list[dict]]) -> None:
    """Assert the split contract (raises AssertionError naming what broke)."""
    ids = {k: {s["id"] for s in v} for k, v in splits.items()}
    texts = {k: {s["text"] for s in v} for k, v in splits.items()}
    for a, b in [("members", "nonmembers"), ("members", "prefix_pool"), ("nonmembers", "prefix_pool"), ("members", "reference"), ("nonmembers", "reference"), ("forget", "retain"), ("holdout", "members")]:
        assert not ids[a] & ids[b], f"{a} and {b} share ids"
        assert not texts[a] & texts[b], f"{a} and {b} share texts"
    assert ids["forget"] | ids["retain"] == ids["members"], "forget + retain != members"
    assert ids["forget"] <= ids["members"] and ids["holdout"] <= ids["nonmembers"]
    assert all(s["copies"] >= 1 for s in splits["members"]), "a member with copies < 1"
    assert all(s["copies"] == 0 for s in splits["nonmembers"]), "a non-member with copies > 0"


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
