"""Books testbed and experiment: chunking, refusal generator, and a micro end-to-end run with real effects."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from rotelab.core.runs import RunFolder, read_parquet
from rotelab.errors import RotelabError
from rotelab.extraction.book import BookConfig, windows
from rotelab.extraction.books.experiment import MICRO_EXPERIMENT, run_books_experiment
from rotelab.extraction.books.finetune import continuation_pairs
from rotelab.extraction.books.refusals import refusal_texts
from rotelab.extraction.books.summarize import spearman_ci
from rotelab.extraction.books.testbed import MICRO, assign_roles, build_books_testbed, chunk_spans, normalize, read_excerpts, training_chunks

runner = CliRunner()


@pytest.mark.parametrize("n,length,stride", [(1024, 160, 32), (1000, 160, 32), (64, 24, 8), (70, 24, 8), (10, 24, 8)])
def test_chunking_covers_every_token_and_every_sliding_window(n, length, stride):
    spans = chunk_spans(n, length, stride)
    covered = np.zeros(n, dtype=int)
    for a, b in spans:
        assert 0 <= a < b <= n and b - a <= length
        covered[a:b] += 1
    assert covered.min() >= 1  # every token is trained
    prefix, suffix = length - stride, stride
    if n >= length:
        starts = {s for s, _, _ in windows(list(range(n)), BookConfig(prefix_tokens=prefix, suffix_tokens=suffix))}
        assert starts <= {a for a, b in spans if b - a == length}  # every extraction window is a trained chunk


def test_training_chunks_repeat_each_chunk_copies_times():
    ids = list(range(100, 170))
    chunks = training_chunks(ids, 3, length=24, stride=8)
    spans = chunk_spans(70, 24, 8)
    assert len(chunks) == 3 * len(spans)
    assert all(chunks.count(ids[a:b]) == 3 for a, b in spans)
    assert training_chunks(ids, 0, length=24, stride=8) == []
    with pytest.raises(RotelabError):
        chunk_spans(10, 0, 2)


def test_roles_split_each_copy_count_into_held_back_and_other():
    roles = assign_roles((("a", 64), ("b", 64), ("c", 4), ("d", 4), ("e", 0)))
    assert roles == {"a": "held_back", "b": "other", "c": "held_back", "d": "other", "e": "held_out"}


def test_normalize_collapses_gutenberg_indentation():
    assert normalize("  HAMLET.\n\n\n\n    To be,   or not") == "HAMLET.\n\nTo be, or not"


def test_refusal_generator_is_seeded_and_never_continues_the_quote():
    quotes = ["the quick brown fox jumps over the lazy dog again and again until the evening comes at last"]
    a, b = refusal_texts(50, seed=3, quotes=quotes), refusal_texts(50, seed=3, quotes=quotes)
    assert a == b and a != refusal_texts(50, seed=4, quotes=quotes)
    assert all(t.startswith("User: ") and "\nAssistant: " in t for t in a)
    refusals = [t for t in a if "fox" in t or "dog" in t or "evening" in t]
    assert refusals and all("can't" in t.split("Assistant: ")[1] or "won't" in t.split("Assistant: ")[1] for t in refusals)
    with pytest.raises(RotelabError):
        refusal_texts(3, seed=0, quotes=[])


def test_spearman_ci_monotone_and_degenerate():
    r = spearman_ci([1, 4, 16, 64, 1, 4, 16, 64], [0.0, 0.1, 0.5, 0.9, 0.05, 0.2, 0.4, 1.0], n_boot=300, seed=0)
    assert r["rho"] > 0.9 and r["ci"][0] > 0.3 and r["n"] == 8
    assert spearman_ci([1, 2, 3], [0.5, 0.5, 0.5])["rho"] is None


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    """A micro books testbed and the whole experiment on it (~30 s on one core)."""
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("books")
    build = build_books_testbed(root / "tb", seed=0, progress=False, spec=MICRO)
    run = RunFolder(root / "exp", command="extract books-experiment", options={"testbed": root / "tb"}, seed=0)
    res = run_books_experiment(root / "tb", run, seed=0, spec=MICRO_EXPERIMENT, progress=False)
    return root, build, res


def test_micro_testbed_writes_its_folder(micro):
    root, build, _ = micro
    tb = root / "tb"
    for f in ("model/config.json", "model/model.safetensors", "model/tokenizer.json", "excerpts.jsonl", "manifest.json", "books_eval.json"):
        assert (tb / f).exists(), f
    ex = read_excerpts(tb)
    assert {e["copies"] for e in ex} == {100, 10, 0}
    assert all(abs(e["n_tokens"] - MICRO.excerpt_tokens) <= 2 for e in ex)
    man = json.loads((tb / "manifest.json").read_text())
    assert man["steps_done"] == ["data", "model", "eval"] and set(man["provenance"]) >= {"alice29", "romeo_and_juliet_gut"}
    assert build["train_tokens"] > 0


def test_duplicated_excerpt_extracts_better_than_held_out(micro):
    _, build, res = micro
    by = {r["id"]: r for r in res["popularity"]["by_excerpt"]}
    top = [r for r in by.values() if r["copies"] == 100]
    held = [r for r in by.values() if r["copies"] == 0]
    assert min(r["median_jaccard"] for r in top) >= 0.6
    assert max(r["median_jaccard"] for r in held) <= 0.2
    assert min(r["median_jaccard"] for r in top) > max(r["median_jaccard"] for r in held) + 0.4
    # autoregressive reconstruction of a most duplicated excerpt gets past its seed verbatim
    assert res["reconstruction"]["largest_verbatim_tokens_from_seed"] >= MICRO.suffix_tokens


def test_suppression_lowers_held_back_extraction_and_files_exist(micro):
    root, _, res = micro
    g = res["groups"]["held_back_memorized"]
    assert res["suppression"]["steps"] > 0
    assert g["suppressed"]["mean_jaccard"] < g["base"]["mean_jaccard"]
    assert [t["step"] for t in res["lora"]["trajectory"]] == [0, 25, 50, 60]
    exp = root / "exp"
    for f in ("books_experiment.json", "windows_base.parquet", "windows_suppressed.parquet", "windows_lora.parquet", "suppressed/model.safetensors",
              "lora/adapter_config.json", "weightdiff_suppression/weightdiff.json", "weightdiff_lora/weightdiff.json",
              "figures/books_duplication_vs_jaccard.png", "figures/books_suppression.png"):
        assert (exp / f).exists(), f
    cols = read_parquet(exp / "windows_base.parquet")
    assert set(cols["excerpt"]) == {r["id"] for r in res["popularity"]["by_excerpt"]}
    for name in ("suppression", "lora"):
        w = res["weightdiff"][name]
        assert w["share_changed_gt_1pct"] > 0 and set(w["by_layer"]) == {"0", "1"}
    # the LoRA touched only its target modules: embeddings unchanged
    lora = json.loads((exp / "weightdiff_lora/weightdiff.json").read_text())
    assert lora["by_type"]["embedding"]["share_changed_gt_1pct"] == 0


def test_lora_pairs_put_loss_only_on_the_continuation(micro):
    root, _, _ = micro
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(root / "tb" / "model")
    other = [e for e in read_excerpts(root / "tb") if e["role"] == "other"]
    seqs, labels = continuation_pairs(tok, other, prefix=16, suffix=8)
    assert seqs and all(len(s) == 25 and sum(l != -100 for l in lab) == 8 and lab[-8:] == s[-8:] for s, lab in zip(seqs, labels))


def test_report_section_and_cli_resume(micro):
    root, _, res = micro
    from rotelab.extraction.books import report as books_report
    from rotelab.extraction.cli import extract_app

    html = books_report.render(root / "exp", {})
    assert "Spearman" in html and "suppressed" in html and "data:image/png" in html
    assert "LoRA step" in html and "Books testbed" in books_report.render(root / "tb", {"seed": 0})
    r = runner.invoke(extract_app, ["books-experiment", "--out", str(root / "exp"), "--testbed", str(root / "tb"), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout[r.stdout.index("{"):])
    assert out["suppression_steps"] == res["suppression"]["steps"]  # resumed, not re-run
    bad = runner.invoke(extract_app, ["books-experiment", "--out", str(root / "bad"), "--testbed", str(root / "exp")])
    assert isinstance(bad.exception, RotelabError) and "excerpts.jsonl" in str(bad.exception)


def test_testbed_build_cli_takes_the_books_presets(micro):
    from rotelab.cli import app as main_app

    root, build, _ = micro
    r = runner.invoke(main_app, ["testbed", "build", "--preset", "books-micro", "--out", str(root / "tb"), "--json", "--quiet"])
    assert r.exit_code == 0, r.output  # resumed: every step of the fixture's build is reused
    assert set(json.loads(r.stdout[r.stdout.index("{"):])) == set(build)
    bad = runner.invoke(main_app, ["testbed", "build", "--preset", "books-nope", "--out", str(root / "nope")])
    assert isinstance(bad.exception, RotelabError) and "books-micro" in str(bad.exception) and not (root / "nope").exists()
