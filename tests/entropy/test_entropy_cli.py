import json
import math
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from rotelab.core.data import Sample, write_jsonl
from rotelab.core.models import load_model
from rotelab.entropy.cli import app
from rotelab.entropy.measure import MBEConfig, layer_mbe, summarize_layers
from rotelab.errors import RotelabError

TEXTS = [f"the quick fox number {i} jumps over the lazy dog, and then it sleeps for a while." for i in range(6)]


@pytest.fixture()
def data(tmp_path):
    p = tmp_path / "x.jsonl"
    write_jsonl(p, [{"text": t, "label": "member" if i % 2 else "non-member"} for i, t in enumerate(TEXTS)])
    return p


@pytest.mark.parametrize("arch", ["gpt2", "llama", "gpt_neox", "qwen2"])
def test_layer_mbe_works_on_any_causal_lm_and_stays_in_range(arch_dirs, arch):
    lm = load_model(arch_dirs[arch])
    res = layer_mbe(lm, [Sample(str(i), t) for i, t in enumerate(TEXTS[:3])], MBEConfig(patch=4))
    per = res["per_text"]
    assert per.shape == (3, lm.model.config.num_hidden_layers + 1)
    assert np.isfinite(per).all() and (per >= 0).all() and (per <= math.log(4) + 1e-5).all()
    rows = summarize_layers(per, res["groups"], MBEConfig(n_boot=50))
    assert rows[0]["n_texts"] == 3 and rows[0]["mbe_ci95"][0] <= rows[0]["mbe_mean"] <= rows[0]["mbe_ci95"][1]


def test_mbe_command_writes_table_plot_report_and_resumes(arch_dirs, data, tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["mbe", "--model", str(arch_dirs["gpt2"]), "--data", str(data), "--out", str(out), "--patch", "4", "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert {row["group"] for row in res["layers"]} == {"member", "non-member"} and res["n_layers"] == 2
    assert (out / "figures/entropy_mbe_layers.png").exists() and (out / "mbe_per_text.parquet").exists()
    assert "Matrix-based entropy" in (out / "report.html").read_text()
    stamp = (out / "mbe.json").stat().st_mtime_ns
    r2 = CliRunner().invoke(app, ["mbe", "--model", str(arch_dirs["gpt2"]), "--data", str(data), "--out", str(out), "--patch", "4", "--quiet"])
    assert r2.exit_code == 0 and (out / "mbe.json").stat().st_mtime_ns == stamp  # finished step skipped


def test_mbe_command_fails_on_bad_patch_before_creating_the_run(arch_dirs, data, tmp_path):
    out = tmp_path / "never"
    r = CliRunner().invoke(app, ["mbe", "--model", str(arch_dirs["gpt2"]), "--data", str(data), "--out", str(out), "--patch", "1"])
    assert isinstance(r.exception, RotelabError) and str(r.exception) == "--patch must be >= 2; got 1"
    assert not out.exists()


def test_train_command_runs_gapt_on_the_tiny_preset(tmp_path):
    out = tmp_path / "train"
    args = ["train", "--preset", "tiny", "--objective", "gapt", "--steps", "6", "--n-layer", "3", "--batch-size", "4",
            "--max-passages", "40", "--p-m", "2", "--p-a", "2", "--out", str(out), "--json", "--quiet"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["objective"] == "gapt" and len(res["mbe_layers"]) == 4 and res["heldout_ce"] > 0
    assert res["train_ce"] > 0 and res["final_phase"] in (1, 2)  # generalisation gap and the phase the run ended in
    assert res["switches"] and res["switches"][0]["to_phase"] == 2
    assert (out / "model/model.safetensors").exists() and (out / "figures/entropy_timeline.png").exists()
    assert "Phase switches" in (out / "report.html").read_text()


def test_train_command_rejects_unknown_preset(tmp_path):
    r = CliRunner().invoke(app, ["train", "--preset", "huge", "--out", str(tmp_path / "t")])
    assert isinstance(r.exception, RotelabError) and "unknown preset 'huge'" in str(r.exception)


def test_demo_step_compares_members_and_nonmembers(arch_dirs, tmp_path):
    from rotelab.entropy.demo import demo_step

    tb = tmp_path / "testbed"
    shutil.copytree(arch_dirs["gpt2"], tb / "model")
    write_jsonl(tb / "splits/members.jsonl", [{"id": f"m{i}", "text": t, "kind": "book"} for i, t in enumerate(TEXTS)])
    write_jsonl(tb / "splits/nonmembers.jsonl", [{"id": f"n{i}", "text": t[::-1]} for i, t in enumerate(TEXTS)])
    demo_step(tb, tmp_path / "out", False)
    res = json.loads((tmp_path / "out/mbe.json").read_text())
    assert {r["group"] for r in res["layers"]} == {"member", "non-member"}


def test_long_texts_are_truncated_windowed_or_refused():
    from rotelab.entropy.measure import context_chunks

    ids = [list(range(10)), list(range(3))]
    assert context_chunks(ids, 4, "truncate") == ([(0, [0, 1, 2, 3]), (1, [0, 1, 2])], 1)
    assert context_chunks(ids, 4, "window")[0] == [(0, [0, 1, 2, 3]), (0, [4, 5, 6, 7]), (0, [8, 9]), (1, [0, 1, 2])]
    with pytest.raises(RotelabError, match="text 0: 10 tokens > context 4"):
        context_chunks(ids, 4, "error")
