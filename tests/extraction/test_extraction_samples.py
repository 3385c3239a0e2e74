"""Per-sample extraction: EM, ES (k* = T), regurgitation, k-extractability, CLI."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from rotelab.core.models import load_model
from rotelab.extraction.cli import extract_app
from rotelab.extraction.samples import extraction_strength, exact_memorization, k_extractable, regurgitated, teacher_forced_hits

runner = CliRunner()


def test_extraction_strength_is_zero_when_no_suffix_matches():
    assert extraction_strength(np.array([False, False, False, False])) == 0.0


def test_extraction_strength_tells_last_token_only_from_nothing():
    # OpenUnlearning's loop gives 1/T for both; k* = T separates them
    assert extraction_strength(np.array([False, False, False, True])) == 0.25
    assert extraction_strength(np.array([True, True, True, True])) == 1.0


def test_exact_memorization_counts_hits_anywhere():
    assert exact_memorization(np.array([True, False, True, False])) == 0.5


def test_regurgitation_rules():
    ref = "alice was beginning to get very tired of sitting by her sister"
    assert regurgitated(ref, ref)
    assert regurgitated(ref, ref.replace("tired", "tirad"))  # one edit: distance <= 0.10
    assert not regurgitated(ref, "the queen of hearts she made some tarts all on a summer day")


def test_teacher_forced_hits_agree_with_greedy_when_extractable(tiny_testbed, tiny_splits):
    lm = load_model(tiny_testbed)
    texts = [s["text"] for s in tiny_splits["members"] if s["kind"] == "book" and s["copies"] == 60]
    ext = k_extractable(lm, texts, prefix=16, suffix=8)
    hits = teacher_forced_hits(lm, texts, prefix=16, suffix=8)
    for e, h in zip(ext, hits):
        if e.exact:  # greedy reproduced the suffix, so teacher forcing sees the same prefixes
            assert h.all()
        assert (e.score == 1.0) <= (exact_memorization(h) == 1.0)


def test_cli_samples_reports_rates_with_ci_and_by_copies(tiny_testbed, tiny_splits, tmp_path):
    rows = [s for s in tiny_splits["members"] if s["kind"] == "book"][:40] + [s for s in tiny_splits["nonmembers"] if s["kind"] == "book"][:20]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows) + json.dumps({"id": "short", "text": "hi"}) + "\n")
    r = runner.invoke(extract_app, ["samples", "--model", str(tiny_testbed), "--data", str(data), "--prefix-tokens", "16", "--suffix-tokens", "8", "--out", str(tmp_path / "run"), "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["n_samples"] == 61 and res["n_too_short"] == 1 and res["n"] == 60
    assert set(res["by_copies"]) == {"0", "1", "15", "60"}
    hi, lo = res["by_copies"]["60"], res["by_copies"]["0"]
    assert hi["mean_exact_memorization"] > lo["mean_exact_memorization"]
    assert hi["mean_extraction_strength"] >= lo["mean_extraction_strength"]
    lo_ci, hi_ci = res["k_extractable"]["ci"]
    assert lo_ci <= res["k_extractable"]["rate"] <= hi_ci
    assert "k-extractable" in (tmp_path / "run" / "report.html").read_text()


def test_cli_samples_rejects_too_long_window(tiny_testbed, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hello"}\n')
    r = runner.invoke(extract_app, ["samples", "--model", str(tiny_testbed), "--data", str(data), "--prefix-tokens", "70", "--suffix-tokens", "20", "--out", str(tmp_path / "run")])
    assert r.exit_code != 0 and "exceed the model's context of 80" in str(r.exception)
    assert not (tmp_path / "run").exists()
