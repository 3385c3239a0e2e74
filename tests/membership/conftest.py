"""Input files cut from the tiny testbed, shared by the membership tests."""

from __future__ import annotations

import pytest

from rotelab.core.data import write_jsonl


@pytest.fixture(scope="session")
def sets(tiny_testbed, tiny_splits, tmp_path_factory):
    """Members / non-members (20 books each, most passages longer than the tiny model's context),
    retain / forget / holdout (9 facts each), the same without ids, and retain with 3 books."""
    d = tmp_path_factory.mktemp("sets")
    mem = [r for r in tiny_splits["members"] if r["kind"] == "book" and r["copies"] >= 15][:20]
    non = [r for r in tiny_splits["nonmembers"] if r["kind"] == "book"][:20]
    retain = [r for r in tiny_splits["retain"] if r["kind"] == "fact"][:9]
    write_jsonl(d / "mem.jsonl", mem)
    write_jsonl(d / "non.jsonl", non)
    write_jsonl(d / "non_other.jsonl", [r for r in tiny_splits["nonmembers"] if r["kind"] == "book"][20:40])
    write_jsonl(d / "mem_noid.jsonl", [{"text": r["text"]} for r in mem])
    write_jsonl(d / "non_noid.jsonl", [{"text": r["text"]} for r in non])
    write_jsonl(d / "retain.jsonl", retain)
    write_jsonl(d / "retain_books.jsonl", [r for r in tiny_splits["retain"] if r["kind"] == "book"][:3] + retain[:6])
    write_jsonl(d / "forget.jsonl", tiny_splits["forget"][:9])
    write_jsonl(d / "holdout.jsonl", tiny_splits["holdout"][:9])
    write_jsonl(d / "holdout_other.jsonl", tiny_splits["holdout"][9:18])
    return d

