"""The three commands, end to end on micro data, through the typer app."""

import json

import pytest
from typer.testing import CliRunner

from rotelab.errors import RotelabError
from rotelab.recsys.cli import app

runner = CliRunner()


def _ok(args):
    r = runner.invoke(app, args)
    assert r.exit_code == 0, (r.output, r.exception)
    return r


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli") / "data"
    _ok(["synth", "--out", str(d), "--users", "10", "--items", "120", "--clusters", "8", "--min-len", "560", "--max-len", "600", "--lifelong", "1200", "--quiet"])
    return d


def test_synth_writes_a_kuairand_log_and_a_report(synth_dir):
    assert (synth_dir / "log_standard_synth.csv").exists() and (synth_dir / "report.html").exists()
    assert "Synthetic lifelong users" in (synth_dir / "report.html").read_text()


def test_train_writes_metrics_report_and_resumes(synth_dir, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--data", str(synth_dir), "--model", "recent", "--out", str(out), "--epochs", "1", "--downstream-epochs", "0", "--dim", "8", "--json", "--quiet"]
    res = json.loads(_ok(args).stdout)
    assert res["model"] == "recent" and 0 <= res["hr@10"] <= 1
    assert "Recommendation over lifelong histories" in (out / "report.html").read_text()
    mtime = (out / "model.safetensors").stat().st_mtime_ns  # changed: model.pt (a pickle) is now safetensors (issue 17)
    assert json.loads(_ok(args).stdout)["hr@10"] == res["hr@10"]
    assert (out / "model.safetensors").stat().st_mtime_ns == mtime  # the finished fit was skipped


def test_same_seed_same_model(synth_dir, tmp_path):
    """Initialisation is seeded too: two fresh runs with one seed give identical weights."""
    import torch

    args = ["train", "--data", str(synth_dir), "--model", "vista", "--epochs", "1", "--downstream-epochs", "0", "--dim", "8", "--quiet"]
    a, b = tmp_path / "a", tmp_path / "b"
    _ok([*args, "--out", str(a)])
    _ok([*args, "--out", str(b)])
    from safetensors.torch import load_file

    sa, sb = (load_file(d / "model.safetensors") for d in (a, b))  # changed: was torch.load of model.pt (issue 17)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_train_ml1m_format(tmp_path):
    d = tmp_path / "ml"
    _ok(["synth", "--out", str(d), "--users", "8", "--items", "100", "--clusters", "6", "--min-len", "560", "--max-len", "580", "--lifelong", "", "--format", "ml-1m", "--quiet"])
    res = json.loads(_ok(["train", "--data", str(d), "--model", "vista", "--out", str(tmp_path / "r"), "--epochs", "1", "--downstream-epochs", "1", "--dim", "8", "--summary-tokens", "4", "--json", "--quiet"]).stdout)
    assert list(res["tasks"]) == ["liked"]
    assert (tmp_path / "r" / "summaries.sqlite").exists()


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "/nonexistent"], "--data /nonexistent: no such file or folder"),
    (["synth", "--min-len", "100"], "--min-len must be >= 545"),
    (["synth", "--lifelong", "1e5,x"], "--lifelong must be comma-separated integers"),
    (["bench", "--min-time", "0"], "--min-time must be > 0"),
])
def test_bad_input_is_one_line_before_any_run_folder(args, message, tmp_path):
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "never")])
    assert isinstance(r.exception, RotelabError) and message in str(r.exception)
    assert not (tmp_path / "never").exists()


def test_bench_end_to_end_micro(tmp_path):
    from dataclasses import replace

    from rotelab.core.runs import RunFolder
    from rotelab.recsys.bench import BenchConfig, run_bench
    from rotelab.report import build_report
    from tests.recsys.conftest import MICRO

    cfg = BenchConfig(synth=replace(MICRO, n_users=6, n_items=100, n_clusters=8, lifelong_lens=(600, 1500)),
                      train=replace(BenchConfig().train, d=8, n_seeds=4, epochs=1, downstream_epochs=1, max_len=512, n_neg=8, n_eval_neg=20),
                      stale_events=(256,), n_cand=10, serve_min_time_s=0.02, isolate=False)
    run = RunFolder(tmp_path / "bench", command="recsys bench", options={})
    res = run_bench(run, cfg)
    assert {r["model"] for r in res["quality"]["rows"]} == {"vista", "full", "recent"}
    assert {(r["model"], r["n_history"]) for r in res["serving"]} == {(m, n) for m in ("vista", "full") for n in (600, 1500)}
    assert {(r["values"], r["stale_events"]) for r in res["ablation"]} == {(v, s) for v in ("int8", "fp32") for s in (0, 256)}
    assert [r["bytes_per_user"] for r in res["ablation"] if r["stale_events"] == 0] == [4 * (8 + 1) + 4 * 4, 4 * (8 + 1) * 4]  # S x (d + log mass)
    assert (run.path / "figures/recsys_latency.png").exists()
    assert "Serving cost against history length" in build_report(run.path).read_text()


def test_latency_in_a_fresh_interpreter(tmp_path, micro_store):
    from rotelab.recsys.models import ModelConfig, Recommender
    from rotelab.recsys.serve import measure_in_child, save_model

    save_model(Recommender(ModelConfig("full", micro_store.n_items, len(micro_store.tasks), d=8)), tmp_path / "m.pt")
    lat = measure_in_child(tmp_path / "m.pt", micro_store.path, 16, cache_path=None, version="", n_cand=10, min_time_s=0.02)
    assert lat.model == "full" and lat.events_read == lat.n_history == 2000
    # The request path's own high-water mark (about 9 MB measured): 0 would mean the mark was not
    # reset after loading the model and store; hundreds of MB, that loading leaked into it.
    assert 0 < lat.peak_mb < 100
