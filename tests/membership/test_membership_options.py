"""The attack options and resources of issue 18 through the command, the manifest and the report:
--recall-shots, --gradnorm-p, --member-prefix-pool, --frequency-corpus, what 'all' skips, and the
refusals before any run folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from rotelab.core.data import Sample, write_jsonl
from rotelab.core.runs import read_parquet
from rotelab.errors import RotelabError
from rotelab.membership.api import mia
from rotelab.membership.context import MIAConfig


def invoke(*args):
    from rotelab.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def files(tiny_splits, tmp_path_factory):
    """Scored facts (members seen 20 times, facts of never-trained people), a member prefix pool
    of other member facts, a non-member pool of other never-trained facts (short shots: whole
    ones fit beside a fact in the 80-token context)."""
    d = tmp_path_factory.mktemp("options")
    facts = [r for r in tiny_splits["members"] if r["kind"] == "fact"]
    hold = [r for r in tiny_splits["nonmembers"] if r["kind"] == "fact"]
    write_jsonl(d / "mem.jsonl", facts[:12])
    write_jsonl(d / "non.jsonl", hold[:12])
    write_jsonl(d / "member_pool.jsonl", facts[12:20])
    write_jsonl(d / "pool.jsonl", hold[12:20])
    write_jsonl(d / "leaky_pool.jsonl", facts[8:16])  # shares 4 texts with mem.jsonl
    write_jsonl(d / "long_pool.jsonl", [{"text": " ".join(r["text"] for r in tiny_splits["prefix_pool"][:3])}])
    write_jsonl(d / "one_word.jsonl", [{"text": "Alice"}])
    return d


def manifest(out) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_new_options_reach_the_manifest_metrics_and_report(tiny_testbed, files, tmp_path):
    out = tmp_path / "o"
    r = invoke("mia", "run", "--model", tiny_testbed, "--members", files / "mem.jsonl", "--nonmembers", files / "non.jsonl",
               "--attacks", "recall,conrecall,gradnorm,dcpdd", "--prefix-pool", files / "pool.jsonl", "--member-prefix-pool", files / "member_pool.jsonl",
               "--recall-shots", "2", "--gradnorm-p", "2", "--conrecall-gamma", "0.3", "--out", out, "--no-cache", "--json", "-q")
    assert r.exit_code == 0, r.output
    m, man = json.loads(r.stdout), manifest(out)
    o = man["options"]
    assert (o["recall_shots"], o["gradnorm_p"], o["conrecall_gamma"]) == (2, "2", 0.3)
    assert man["inputs"]["member_prefix_pool"]["path"] == str(files / "member_pool.jsonl")
    for a in ("recall", "conrecall"):
        d = m[a]["details"]
        assert d["shots_offered"] == 2 and d["n_targets_cut"] == 0 and d["target_tokens_scored"] == d["target_tokens_in_signals"]
        assert all(u == {"min": 1, "mean": 1.0, "max": 1} for u in d["shots_used"].values())  # a second fact-length shot leaves no room
        assert man["notes"][f"attack_{a}"] == d
    assert m["gradnorm"]["details"] == {"p": "2"}
    c = man["notes"]["companions"]["frequency_corpus"]  # DC-PDD: the testbed's non-member text, never the scored one
    assert "nonmembers.jsonl" in c and "prefix_pool.jsonl" in c and "minus the scored texts" in c
    assert m["dcpdd"]["auc"] > 0.9 and m["recall"]["auc"] > 0.6
    html = (out / "report.html").read_text()
    assert "What each attack used" in html and "shots_offered" in html
    # --gradnorm-p enters the identity: another p is refused on the same folder
    r = invoke("mia", "run", "--model", tiny_testbed, "--members", files / "mem.jsonl", "--nonmembers", files / "non.jsonl", "--attacks", "gradnorm",
               "--gradnorm-p", "inf", "--out", out, "--no-cache", "-q")
    assert "computed from other options" in str(r.exception) and "gradnorm_p" in str(r.exception)


def test_a_target_cut_to_fit_a_shot_is_counted_and_said(tiny_testbed, tiny_splits, tmp_path):
    """Book passages as long as the tiny model's context: a whole shot leaves room only for part
    of the target; the metrics, the manifest and stderr say how much was scored."""
    mem = [Sample(r["id"], r["text"]) for r in tiny_splits["members"] if r["kind"] == "book" and r["copies"] >= 15][:10]
    non = [Sample(r["id"], r["text"]) for r in tiny_splits["nonmembers"] if r["kind"] == "book"][:10]
    m = mia(tiny_testbed, mem, non, attacks="recall", out=tmp_path / "o", cache=None, progress=False)
    d = m["recall"]["details"]
    assert d["n_targets_cut"] == 20 and d["target_tokens_scored"] < d["target_tokens_in_signals"]
    assert d["shots_used"]["recall"] == {"min": 1, "mean": 1.0, "max": 1}
    assert "were cut to fit" in manifest(tmp_path / "o")["notes"]["attack_recall"]["note"]


@pytest.mark.parametrize("option, pool, message", [
    ("member_prefix_pool", "leaky_pool.jsonl", "--member-prefix-pool and the evaluated sets: 4 texts appear in both"),
    ("frequency_corpus", "mem.jsonl", "--frequency-corpus and the evaluated sets: 12 texts appear in both"),
    ("prefix_pool", "long_pool.jsonl", "--prefix-pool: the shortest of its first 4 passages has"),
])
def test_a_pool_that_leaks_or_cannot_fit_is_refused_before_a_folder(tiny_testbed, files, tmp_path, option, pool, message):
    attack = {"member_prefix_pool": "conrecall", "frequency_corpus": "dcpdd", "prefix_pool": "recall"}[option]
    kw = {option: files / pool, **({"prefix_pool": files / "pool.jsonl"} if option == "member_prefix_pool" else {})}
    with pytest.raises(RotelabError, match=message.replace("(", r"\(")):
        mia(tiny_testbed, files / "mem.jsonl", files / "non.jsonl", attacks=attack, out=tmp_path / "o", cache=None, progress=False, **kw)
    assert not (tmp_path / "o").exists()


def test_samia_refuses_a_text_it_cannot_split_and_bad_options_are_one_line(tiny_testbed, files, tmp_path):
    with pytest.raises(RotelabError, match="attack 'samia': text 0 .* too few words"):
        mia(tiny_testbed, files / "one_word.jsonl", files / "non.jsonl", attacks="samia", out=tmp_path / "o", cache=None, progress=False)
    for cfg, msg in ((MIAConfig(gradnorm_p="3"), "--gradnorm-p must be one of 1, 2, inf; got '3'"), (MIAConfig(conrecall_gamma=-1), "--conrecall-gamma must be >= 0")):
        with pytest.raises(RotelabError, match=msg):
            mia(tiny_testbed, files / "mem.jsonl", files / "non.jsonl", config=cfg, out=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_all_runs_what_it_can_and_notes_the_rest(arch_dirs, files, tmp_path):
    """A plain model folder offers no reference, pools or corpus: 'all' runs the other attacks and
    names what each skipped one needs; naming a skipped attack is refused."""
    out = tmp_path / "o"
    r = invoke("mia", "run", "--model", arch_dirs["gpt2"], "--members", files / "mem.jsonl", "--nonmembers", files / "non.jsonl",
               "--neighbours", "2", "--samia-samples", "2", "--out", out, "--no-cache", "--json", "-q")
    assert r.exit_code == 0, r.output
    skipped = manifest(out)["notes"]["attacks_skipped"]
    assert skipped == {"dcpdd": "needs --frequency-corpus", "reference": "needs --reference", "recall": "needs --prefix-pool", "conrecall": "needs --prefix-pool"}
    ran = set(json.loads(r.stdout)) - {"bag_of_words"}
    assert ran == {"loss", "zlib", "mink", "minkpp", "lowercase", "neighbourhood", "gradnorm", "samia", "samia_zlib"}
    assert "--attacks all: skipped dcpdd (needs --frequency-corpus)" in " ".join(r.stderr.split())
    assert set(read_parquet(out / "scores.parquet")) == {"id", "label"} | ran
