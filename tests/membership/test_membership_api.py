"""``rotelab.mia`` / ``rotelab.remind`` and their commands: validation before any run folder,
testbed companions, resume only on the same inputs, long texts, one JSON document."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from rotelab.core.data import Sample, write_jsonl
from rotelab.core.runs import read_parquet
from rotelab.errors import RotelabError
from rotelab.membership.api import mia
from rotelab.membership.remind.api import remind
from rotelab.membership.remind.landscape import ProbeConfig
from rotelab.membership.remind.suite import RemindConfig

MICRO = RemindConfig(probe=ProbeConfig(ranks=(1, 2), rates=(), k=2), folds=3)


def rotelab(*args) -> subprocess.CompletedProcess:
    """The real console entry point (one-line errors and exit codes live in main())."""
    return subprocess.run([sys.executable, "-m", "rotelab.cli", *map(str, args)], capture_output=True, text=True)


def invoke(*args):
    """The command in this process (fast): a RotelabError is ``r.exception`` (main() makes it one
    line and exit code 2, as the subprocess tests check)."""
    from rotelab.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def flat(text: str) -> str:
    return " ".join(text.split())  # notes on stderr wrap at the console width


def manifest(run) -> dict:
    return json.loads((run / "manifest.json").read_text())


def one_line_exit_2(r: subprocess.CompletedProcess, message: str) -> None:
    assert r.returncode == 2, r.stderr[-2000:]
    assert message in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr


# -- bad input: one line, exit 2, no run folder ---------------------------------------------------
def test_bad_mia_and_remind_input_is_one_line_exit_2_and_no_folder(tiny_testbed, sets, tmp_path):
    d = sets
    write_jsonl(tmp_path / "shared_id.jsonl", [{"id": "alice", "text": "a member passage"}])
    write_jsonl(tmp_path / "shared_id2.jsonl", [{"id": "alice", "text": "another passage entirely"}])
    mia_args = ["mia", "run", "--model", tiny_testbed, "--attacks", "loss"]
    remind_args = ["remind", "run", "--model", tiny_testbed, "--folds", "3", "--variants", "2", "--ranks", "1,2"]
    cases = [
        (mia_args + ["--members", d / "mem.jsonl", "--nonmembers", d / "non.jsonl", "--batch-size", "0"], "--batch-size must be >= 1; got 0"),
        (mia_args + ["--members", tmp_path / "shared_id.jsonl", "--nonmembers", tmp_path / "shared_id2.jsonl"], "--members and --nonmembers: 1 ids appear in both (e.g. 'alice')"),
        (remind_args + ["--retain", d / "forget.jsonl", "--forget", d / "forget.jsonl", "--holdout", d / "holdout.jsonl"], "--retain and --forget: 9 texts appear in both"),
        (remind_args + ["--retain", d / "retain.jsonl", "--forget", d / "forget.jsonl", "--holdout", d / "retain.jsonl"], "--retain and --holdout: 9 texts appear in both"),
        (remind_args + ["--retain", d / "retain.jsonl", "--forget", d / "forget.jsonl", "--holdout", d / "holdout.jsonl", "--batch-size", "0"], "--batch-size must be >= 1; got 0"),
        (remind_args + ["--retain", d / "retain.jsonl", "--forget", d / "forget.jsonl", "--holdout", d / "holdout.jsonl", "--paraphrases", d / "mem.jsonl"], "needs a 'split' field"),
    ]
    for i, (args, message) in enumerate(cases):
        out = tmp_path / f"never{i}"
        r = invoke(*args, "--out", out)
        assert isinstance(r.exception, RotelabError) and message in str(r.exception), (args, r.output)
        assert not out.exists(), args
    out = tmp_path / "never"
    one_line_exit_2(rotelab(*cases[0][0], "--out", out), cases[0][1])
    assert not out.exists()


def test_api_refuses_overlap_before_loading_anything(tmp_path):
    mem = [Sample("a", "one text"), Sample("b", "two text")]
    with pytest.raises(RotelabError, match="ids appear in both"):
        mia("/no/such/model", mem, [Sample("a", "three text")], out=tmp_path / "o")
    with pytest.raises(RotelabError, match="--forget and --holdout: 1 texts appear in both"):
        remind("/no/such/model", ["r1", "r2", "r3"], ["f1", "f2", "x"], ["x", "h2", "h3"], config=MICRO, out=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_query_only_target_is_refused_for_neighbourhood_before_a_folder(tiny_testbed, sets, tmp_path):
    from rotelab.core.models import LogprobsOnlyModel, load_model

    q = LogprobsOnlyModel(load_model(tiny_testbed))
    with pytest.raises(RotelabError, match="attack 'neighbourhood' needs --embedding-model"):
        mia(q, sets / "mem.jsonl", sets / "non.jsonl", attacks="loss,neighbourhood", out=tmp_path / "o", cache=None)
    with pytest.raises(RotelabError, match="REMIND needs --embedding-model"):
        remind(q, sets / "retain.jsonl", sets / "forget.jsonl", sets / "holdout.jsonl", config=MICRO, out=tmp_path / "o", cache=None)
    assert not (tmp_path / "o").exists()


# -- default ids carry the file's role ------------------------------------------------------------
def test_files_without_ids_get_role_ids_and_never_collide(tiny_testbed, sets, tmp_path):
    m = mia(tiny_testbed, sets / "mem_noid.jsonl", sets / "non_noid.jsonl", attacks="loss", out=tmp_path / "o", cache=None, progress=False)
    ids = list(read_parquet(tmp_path / "o" / "scores.parquet")["id"])
    assert ids[:2] == ["members:0", "members:1"] and ids[20:22] == ["nonmembers:0", "nonmembers:1"]
    assert m["loss"]["n_members"] == 20


# -- testbed companions ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def unlearning_folder(tiny_testbed, tmp_path_factory):
    """An unlearning folder as ``testbed unlearn`` leaves it: model/ and a manifest naming the testbed."""
    u = tmp_path_factory.mktemp("unlearn")
    shutil.copytree(tiny_testbed / "model", u / "model")
    (u / "manifest.json").write_text(json.dumps({"command": "testbed unlearn", "testbed": str(tiny_testbed), "splits": {"paraphrases": str(tiny_testbed / "splits" / "paraphrases.jsonl")}}))
    return u


@pytest.mark.parametrize("where", ["testbed", "model", "unlearning"])
def test_attacks_all_finds_the_testbeds_reference_and_prefix_pool(tiny_testbed, unlearning_folder, sets, tmp_path, where):
    model = {"testbed": tiny_testbed, "model": tiny_testbed / "model", "unlearning": unlearning_folder}[where]
    out = tmp_path / "o"
    attacks = "all" if where == "testbed" else "reference,recall"
    r = invoke("mia", "run", "--model", model, "--members", sets / "mem.jsonl", "--nonmembers", sets / "non.jsonl", "--attacks", attacks, "--neighbours", "2", "--out", out, "--no-cache", "--json", "-q")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert all(res[a]["auc"] > 0.6 for a in ("reference", "recall"))
    c = manifest(out)["notes"]["companions"]
    assert c["reference"] == str(tiny_testbed / "reference") and c["prefix_pool"] == str(tiny_testbed / "splits" / "prefix_pool.jsonl")
    assert "using the testbed's reference" in flat(r.stderr) and "prefix_pool" in r.stderr


def test_an_explicit_option_wins_over_the_testbeds_companion(tiny_testbed, tiny_splits, sets, tmp_path):
    write_jsonl(tmp_path / "pool.jsonl", [{"text": r["text"]} for r in tiny_splits["prefix_pool"][10:20]])
    m = mia(tiny_testbed, sets / "mem.jsonl", sets / "non.jsonl", attacks="reference,recall", reference=tiny_testbed / "model", prefix_pool=tmp_path / "pool.jsonl",
            out=tmp_path / "o", cache=None, progress=False)
    man = manifest(tmp_path / "o")
    assert "companions" not in man["notes"]
    assert man["options"]["reference"] == str(tiny_testbed / "model") and man["inputs"]["prefix_pool"]["path"] == str(tmp_path / "pool.jsonl")
    assert m["reference"]["auc"] == pytest.approx(0.5)  # the target as its own reference: every score is 0


def test_remind_reports_the_testbeds_paraphrases_of_the_evaluated_samples(unlearning_folder, sets, tmp_path):
    m = remind(unlearning_folder, sets / "retain.jsonl", sets / "forget.jsonl", sets / "holdout.jsonl", config=MICRO, out=tmp_path / "o", cache=None, progress=False)
    para = read_parquet(tmp_path / "o" / "paraphrase_features.parquet")
    forget_ids = {json.loads(x)["id"] for x in (sets / "forget.jsonl").read_text().splitlines()}
    assert len(para["id"]) > 0 and all(i.rsplit("_para", 1)[0] in forget_ids for i, st in zip(para["id"], para["state"]) if st == "forgotten")
    assert sum(m["paraphrases"]["remind"]["n"].values()) == len(para["id"])
    assert manifest(tmp_path / "o")["notes"]["companions"]["paraphrases"].endswith("paraphrases.jsonl")
    remind(unlearning_folder, sets / "retain.jsonl", sets / "forget.jsonl", sets / "holdout.jsonl", paraphrases=[], config=MICRO, out=tmp_path / "none", cache=None, progress=False)
    assert not (tmp_path / "none" / "paraphrase_features.parquet").exists()


# -- resume only from work on the same inputs -----------------------------------------------------
def test_mia_rerun_with_other_nonmembers_is_refused_or_recomputed_with_overwrite(tiny_testbed, sets, tmp_path):
    out, non = tmp_path / "o", tmp_path / "non.jsonl"
    shutil.copy(sets / "non.jsonl", non)
    args = ["mia", "run", "--model", tiny_testbed, "--members", sets / "mem.jsonl", "--nonmembers", non, "--attacks", "loss", "--out", out, "--no-cache", "--json", "-q"]
    assert invoke(*args).exit_code == 0
    first = read_parquet(out / "scores.parquet")["loss"]
    shutil.copy(sets / "non_other.jsonl", non)  # same path, other content
    r = invoke(*args)
    assert "results were computed from other inputs (nonmembers changed)" in str(r.exception)
    r = invoke(*args, "--overwrite")
    assert r.exit_code == 0, r.output
    fresh = mia(tiny_testbed, sets / "mem.jsonl", sets / "non_other.jsonl", attacks="loss", out=tmp_path / "fresh", cache=None, progress=False)
    assert json.loads(r.stdout)["loss"] == fresh["loss"]
    again, fresh_t = read_parquet(out / "scores.parquet"), read_parquet(tmp_path / "fresh" / "scores.parquet")
    assert list(again["id"]) == list(fresh_t["id"]) and np.array_equal(again["loss"], fresh_t["loss"])
    assert not np.array_equal(again["loss"][20:], first[20:])


def test_remind_rerun_with_other_holdout_is_refused(tiny_testbed, sets, tmp_path):
    out, hold = tmp_path / "o", tmp_path / "holdout.jsonl"
    shutil.copy(sets / "holdout.jsonl", hold)
    kw = dict(config=MICRO, out=out, cache=None, progress=False, paraphrases=[])
    remind(tiny_testbed, sets / "retain.jsonl", sets / "forget.jsonl", hold, **kw)
    shutil.copy(sets / "holdout_other.jsonl", hold)
    with pytest.raises(RotelabError, match="computed from other inputs"):
        remind(tiny_testbed, sets / "retain.jsonl", sets / "forget.jsonl", hold, **kw)
    remind(tiny_testbed, sets / "retain.jsonl", sets / "forget.jsonl", hold, overwrite=True, **kw)
    other = {json.loads(x)["id"] for x in (sets / "holdout_other.jsonl").read_text().splitlines()}
    f = read_parquet(out / "features.parquet")
    assert {i for i, st in zip(f["id"], f["state"]) if st == "holdout"} == other


def test_in_memory_inputs_are_part_of_the_identity(tiny_testbed, tiny_splits, tmp_path):
    books = [Sample(r["id"], r["text"]) for r in tiny_splits["nonmembers"] if r["kind"] == "book"]
    mem = [Sample(r["id"], r["text"]) for r in tiny_splits["members"] if r["kind"] == "book"][:6]
    mia(tiny_testbed, mem, books[:6], attacks="loss", out=tmp_path / "o", cache=None, progress=False)
    with pytest.raises(RotelabError, match="computed from other options"):
        mia(tiny_testbed, mem, books[6:12], attacks="loss", out=tmp_path / "o", cache=None, progress=False)


# -- long texts -----------------------------------------------------------------------------------
def test_window_policy_scores_neighbours_and_remind_on_long_texts(tiny_testbed, sets, tmp_path):
    """Most book passages exceed the tiny model's 80-token context: the variants are scored in
    the same windows as their originals (an IndexError before), and the manifest counts them."""
    out = tmp_path / "mia"
    r = invoke("mia", "run", "--model", tiny_testbed, "--members", sets / "mem.jsonl", "--nonmembers", sets / "non.jsonl", "--attacks", "loss,neighbourhood,recall",
               "--neighbours", "2", "--long-text", "window", "--out", out, "--no-cache", "--json", "-q")
    assert r.exit_code == 0, r.output
    note = manifest(out)["notes"]["long_text"]
    assert note["policy"] == "window" and note["n_longer_than_context"] > 10 and note["n_windows"] > note["n_longer_than_context"]
    assert "overlapping windows" in flat(r.stderr)
    assert all(np.isfinite(read_parquet(out / "scores.parquet")[a]).all() for a in ("neighbourhood", "recall"))
    out = tmp_path / "remind"
    r = invoke("remind", "run", "--model", tiny_testbed, "--retain", sets / "retain_books.jsonl", "--forget", sets / "forget.jsonl", "--holdout", sets / "holdout.jsonl",
               "--variants", "2", "--ranks", "1,2", "--folds", "3", "--long-text", "window", "--out", out, "--no-cache", "--json", "-q")
    assert r.exit_code == 0, r.output
    assert manifest(out)["notes"]["long_text"]["n_longer_than_context"] >= 2 and "overlapping windows" in flat(r.stderr)


def test_long_text_error_names_the_option_and_file_before_a_folder(tiny_testbed, sets, tmp_path):
    r = invoke("mia", "run", "--model", tiny_testbed, "--members", sets / "mem.jsonl", "--nonmembers", sets / "non.jsonl", "--attacks", "loss",
               "--long-text", "error", "--out", tmp_path / "never")
    assert str(r.exception).startswith(f"--members {sets / 'mem.jsonl'}: sample '") and "> context 80" in str(r.exception)
    assert not (tmp_path / "never").exists()


def test_truncation_is_reported_and_json_is_one_document(tiny_testbed, sets, tmp_path):
    out = tmp_path / "o"
    r = rotelab("mia", "run", "--model", tiny_testbed, "--members", sets / "mem.jsonl", "--nonmembers", sets / "non.jsonl", "--attacks", "loss,lowercase", "--out", out, "--no-cache", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    assert set(json.loads(r.stdout)) == {"loss", "lowercase", "bag_of_words"}  # progress bars and notes: stderr
    note = manifest(out)["notes"]["long_text"]
    assert note["policy"] == "truncate" and note["n_longer_than_context"] > 10 and note["tokens_dropped"] > 0
    assert "were truncated" in flat(r.stderr) and "long_text_lowercase" in manifest(out)["notes"]


def test_mia_attacks_lists_the_registry(tmp_path):
    from rotelab.membership.attacks import ATTACKS

    r = invoke("mia", "attacks", "--json")
    rows = json.loads(r.stdout)
    assert [x["name"] for x in rows] == list(ATTACKS)
    assert {x["name"]: x["needs"] for x in rows}["gradnorm"] == "weights"


def test_importing_the_membership_cli_leaves_torch_out():
    code = "import sys, rotelab.membership.cli; print('torch' in sys.modules, 'transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split() == ["False", "False"]


def test_scores_ids_never_mix_two_files(tiny_testbed, sets, tmp_path):
    mia(tiny_testbed, sets / "mem.jsonl", sets / "non.jsonl", attacks="loss,zlib", out=tmp_path / "o", cache=None, progress=False)
    t = read_parquet(tmp_path / "o" / "scores.parquet")
    assert len(set(t["id"])) == len(t["id"]) == 40 and np.array_equal(t["label"], np.r_[np.ones(20), np.zeros(20)])
