"""Book extraction: windows, context fitting, sliding vs autoregressive, CLI, resume."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from rotelab.core.models import load_model
from rotelab.errors import RotelabError
from rotelab.extraction.book import BookConfig, book_tokens, decode_windows, fit_to_context, score_windows, windows
from rotelab.extraction.cli import extract_app

runner = CliRunner()


def test_windows_tile_the_body_with_suffix_stride():
    w = windows(list(range(20)), BookConfig(prefix_tokens=4, suffix_tokens=3))
    assert [s for s, _, _ in w] == [0, 3, 6, 9, 12]
    assert all(t == list(range(s + 4, s + 7)) for s, _, t in w)


def test_autoregressive_ignores_stride_and_sliding_uses_it():
    assert BookConfig(stride=5, mode="autoregressive", suffix_tokens=3).step == 3
    assert BookConfig(stride=5, suffix_tokens=3).step == 5


def test_fit_to_context_keeps_a_fitting_config_untouched():
    cfg = BookConfig(prefix_tokens=40, suffix_tokens=10, trim_start=5, trim_end=5)
    assert fit_to_context(cfg, n_tokens=500, max_length=80) == (cfg, {})


def test_fit_to_context_fails_when_suffix_fills_context():
    with pytest.raises(RotelabError, match="--suffix-tokens 80"):
        fit_to_context(BookConfig(suffix_tokens=80), n_tokens=500, max_length=80)


def test_fit_to_context_short_book_drops_trims():
    c, notes = fit_to_context(BookConfig(prefix_tokens=40, suffix_tokens=10), n_tokens=30, max_length=80)
    assert (c.prefix_tokens, c.trim_start, c.trim_end) == (20, 0, 0) and "book_too_short" in notes


def _book(passages: list[dict]) -> str:
    return "\n".join(p["text"] for p in passages)


@pytest.fixture(scope="module")
def tiny_lm(tiny_testbed):
    return load_model(tiny_testbed)


def test_first_window_extracts_duplicated_passages_more_than_held_out_ones(tiny_lm, tiny_splits):
    # The tiny testbed trains each passage as one sequence after BOS, so each passage is its own "book".
    cfg = BookConfig(prefix_tokens=16, suffix_tokens=8, trim_start=0, trim_end=0, max_windows=1)
    seen = [s for s in tiny_splits["members"] if s["kind"] == "book" and s["copies"] == 60]
    unseen = [s for s in tiny_splits["nonmembers"] if s["kind"] == "book"][: len(seen)]
    means = {}
    for name, ps in (("seen", seen), ("unseen", unseen)):
        jac = []
        for p in ps:
            bos, ids = book_tokens(tiny_lm, p["text"])
            wins, gens, recon = decode_windows(tiny_lm, ids, cfg, bos=bos)
            assert recon is None and len(wins) == 1
            jac.append(score_windows(tiny_lm, wins, gens)["jaccard"][0])
        means[name] = sum(jac) / len(jac)
    assert means["seen"] > means["unseen"] + 0.1, means


def test_sliding_windows_equal_hf_generate(gpt2_lm):
    ids = list(range(3, 60))
    cfg = BookConfig(prefix_tokens=10, suffix_tokens=5, max_windows=4)
    wins, gens, _ = decode_windows(gpt2_lm, ids, cfg, bos=[])
    for (_, p, _), g in zip(wins, gens):
        ref = gpt2_lm.model.generate(torch.tensor([p]), max_new_tokens=5, min_new_tokens=5, do_sample=False, pad_token_id=0)
        assert ref[0, len(p):].tolist() == g


def test_autoregressive_first_window_equals_sliding_and_feeds_back(gpt2_lm):
    ids = list(range(3, 60))
    cfg = BookConfig(prefix_tokens=10, suffix_tokens=5, max_windows=3)
    _, slid, _ = decode_windows(gpt2_lm, ids, cfg, bos=[])
    wins, auto, recon = decode_windows(gpt2_lm, ids, BookConfig(prefix_tokens=10, suffix_tokens=5, max_windows=3, mode="autoregressive"), bos=[])
    assert auto[0] == slid[0]
    assert recon == ids[:10] + auto[0] + auto[1] + auto[2]


def test_cli_book_writes_summary_plot_reconstruction_and_resumes(tiny_testbed, tiny_splits, tmp_path):
    book = tmp_path / "book.txt"
    book.write_text(_book([s for s in tiny_splits["members"] if s["kind"] == "book" and s["copies"] == 60][:4]))
    out = tmp_path / "run"
    args = ["--model", str(tiny_testbed), "--book", str(book), "--mode", "autoregressive", "--suffix-tokens", "8", "--max-windows", "6", "--out", str(out), "--json", "--quiet"]
    r = runner.invoke(extract_app, ["book", *args])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    m = json.loads((out / "manifest.json").read_text())
    assert res["config"]["prefix_tokens"] == 80 - 8 - 1  # the paper's 500 does not fit ctx 80 (BOS takes 1)
    assert "extraction_prefix_reduced" in m["notes"] and m["notes"]["extraction_effective_config"]["trim_start"] < 2000
    assert set(res["metrics"]) >= {"jaccard", "cosine", "levenshtein", "bleu", "rouge_l", "sequence_matcher", "exact"}
    assert (out / "reconstruction.txt").read_text() and (out / "figures/extraction_along_book.png").exists()
    assert "Verbatim extraction" in (out / "report.html").read_text()
    mtime = (out / "windows.parquet").stat().st_mtime_ns
    r2 = runner.invoke(extract_app, ["book", *args])
    assert r2.exit_code == 0 and (out / "windows.parquet").stat().st_mtime_ns == mtime
    assert json.loads(r2.stdout)["metrics"] == res["metrics"]


def test_cli_book_rejects_bad_mode_before_creating_run(tiny_testbed, tmp_path):
    book = tmp_path / "b.txt"
    book.write_text("hello world")
    r = runner.invoke(extract_app, ["book", "--model", str(tiny_testbed), "--book", str(book), "--mode", "greedy", "--out", str(tmp_path / "run")])
    assert r.exit_code != 0 and "--mode must be sliding or autoregressive" in str(r.exception)
    assert not (tmp_path / "run").exists()


def test_demo_step_writes_plot_into_report(tiny_testbed, tmp_path, monkeypatch):
    from rotelab.extraction import demo

    monkeypatch.setattr(demo, "DEMO_MAX_WINDOWS", 12)
    demo.demo_step(tiny_testbed, tmp_path / "extract", progress=False)
    s = json.loads((tmp_path / "extract/book_summary.json").read_text())
    assert s["n_windows"] == 12 and s["config"]["prefix_tokens"] == 80 - 30 - 1
    assert "similarity along the book" in (tmp_path / "extract/report.html").read_text()
