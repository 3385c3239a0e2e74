"""``steer probe|generate|eval`` end to end: a testbed-shaped folder and plain JSONL files on micro models."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from rotelab.errors import RotelabError
from rotelab.steering.cli import app
from tests.conftest import CORPUS

runner = CliRunner()


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def fake_testbed(tmp_path_factory, arch_dirs):
    """The testbed folder contract with the micro GPT-2 (random weights) and a few rows per split."""
    d = tmp_path_factory.mktemp("tb")
    shutil.copytree(arch_dirs["gpt2"], d / "model")
    sp = d / "splits"
    sp.mkdir()
    long = [" ".join(CORPUS[i : i + 8]) for i in range(0, 112, 4)]  # >= 64 tokens each
    mem = [{"id": f"m{i}", "text": t, "kind": "book", "copies": 20, "source": "x"} for i, t in enumerate(long[:12])]
    _jsonl(sp / "members.jsonl", mem)
    _jsonl(sp / "nonmembers.jsonl", [{"id": f"n{i}", "text": t, "kind": "book", "copies": 0, "source": "x"} for i, t in enumerate(long[12:])])
    _jsonl(sp / "canaries.jsonl", [{"id": f"c{i}", "text": f"the code of owl {i} is dog {i} fox.", "prefix": f"the code of owl {i} is", "secret": f"dog {i} fox.", "copies": 20, "kind": "canary", "source": "canary"} for i in range(4)])
    _jsonl(sp / "paraphrases.jsonl", [{"id": f"p{i}", "text": "", "question": f"which dog is number {i}?", "answer": "the lazy dog", "source_id": f"f{i}", "split": "retain"} for i in range(20)])
    for name in ("forget", "retain", "holdout", "prefix_pool", "reference"):
        _jsonl(sp / f"{name}.jsonl", [])
    return d


def test_probe_generate_eval_on_a_testbed_folder(fake_testbed, tmp_path):
    pdir, edir, gdir = tmp_path / "probe", tmp_path / "eval", tmp_path / "gen"
    r = runner.invoke(app, ["probe", "--model", str(fake_testbed), "--labels", "source", "--k", "2", "--prefix-tokens", "8", "--suffix-tokens", "8", "--out", str(pdir), "--json", "-q"])
    assert r.exit_code == 0, r.output
    s = json.loads((pdir / "probe_summary.json").read_text())
    assert s["labels_used"] == "source" and {row["pair"] for row in s["agreement"]} == {"source vs diversity", "source vs exact", "diversity vs exact"}
    assert len(s["layers"]) == 4 and s["causal"]["rows"] and (pdir / "figures/dose_response.png").exists()
    assert "Dynamic Mode Steering" in (pdir / "report.html").read_text()

    r = runner.invoke(app, ["eval", "--model", str(fake_testbed), "--probe", str(pdir), "--static-alphas", "1", "--dynamic-alphas", "2", "--gated-alphas", "2", "--beta", "1", "--out", str(edir), "--json", "-q"])
    assert r.exit_code == 0, r.output
    e = json.loads((edir / "steer_eval.json").read_text())
    assert [row["mode"] for row in e["rows"]] == ["none", "static", "dynamic", "gated", "static", "dynamic"]
    assert e["n_mem"] == 8 and e["n_paraphrases"] == 10  # the held-out half; the probe used the rest
    assert e["rows"][1]["ce_change"] != 0 and (edir / "alpha_log.parquet").exists()
    assert "Which tokens were steered" in (edir / "report.html").read_text()

    r = runner.invoke(app, ["generate", "--model", str(fake_testbed), "--probe", str(pdir), "--prompt", "the lazy dog", "--mode", "gated", "--max-new-tokens", "5", "--out", str(gdir), "--json", "-q"])
    assert r.exit_code == 0, r.output
    g = json.loads((gdir / "generations.json").read_text())["rows"][0]
    assert len(g["tokens"]) == len(g["alpha"]) == 5 and "background" in (gdir / "report.html").read_text()


def test_probe_on_plain_model_dir_needs_mem_and_gen(arch_dirs, tmp_path):
    r = runner.invoke(app, ["probe", "--model", str(arch_dirs["llama"]), "--out", str(tmp_path / "p")])
    assert isinstance(r.exception, RotelabError) and "give --mem FILE.jsonl and --gen FILE.jsonl" in str(r.exception)


def test_probe_on_plain_model_dir_with_files(arch_dirs, tmp_path):
    mem = _jsonl(tmp_path / "mem.jsonl", [{"text": t} for t in CORPUS[:20]])
    gen = _jsonl(tmp_path / "gen.jsonl", [{"text": f"{i} owl hen cat {i * 7} dog fox red"} for i in range(20)])
    out = tmp_path / "p"
    r = runner.invoke(app, ["probe", "--model", str(arch_dirs["qwen2"]), "--mem", str(mem), "--gen", str(gen), "--labels", "source", "--k", "2",
                            "--prefix-tokens", "4", "--suffix-tokens", "4", "--out", str(out), "--json", "-q"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["auroc"] > 0.8
    r = runner.invoke(app, ["eval", "--model", str(arch_dirs["qwen2"]), "--probe", str(out), "--mem", str(mem), "--gen", str(gen), "--static-alphas", "1",
                            "--dynamic-alphas", "2", "--gated-alphas", "", "--out", str(tmp_path / "e"), "--json", "-q"])
    assert r.exit_code == 0, r.output
    e = json.loads((tmp_path / "e" / "steer_eval.json").read_text())
    assert e["n_paraphrases"] == 0 and e["rows"][0]["paraphrase_accuracy"]["rate"] is None


def test_diversity_labels_too_few_of_a_class_is_a_clear_error(fake_testbed, tmp_path):
    r = runner.invoke(app, ["probe", "--model", str(fake_testbed), "--labels", "diversity", "--k", "2", "--tau-lo", "0", "--tau-hi", "0",
                            "--prefix-tokens", "8", "--suffix-tokens", "8", "--out", str(tmp_path / "p")])
    assert isinstance(r.exception, RotelabError) and "try --labels source" in str(r.exception)


def test_demo_step_on_a_testbed_falls_back_to_source_labels(fake_testbed, tmp_path):
    from rotelab.steering.demo import demo_step

    demo_step(fake_testbed, tmp_path / "d", False)
    m = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert m["command"] == "steer demo" and {"probe", "eval"} <= set(m["steps_done"]) and "probe_labels" in m["notes"]
    html = (tmp_path / "d" / "report.html").read_text()
    assert "Probe AUROC per block" in html and "Goal:" in html
