"""``mia run`` and ``remind run`` through typer: outputs, one-line refusals before a run folder, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from rotelab.core.data import write_jsonl
from rotelab.core.models import load_model
from rotelab.core.stats import roc_auc
from rotelab.core.runs import read_parquet
from rotelab.core.io import read_json
from rotelab.membership.cli import mia_app, remind_app

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tiny_testbed, tiny_splits, tmp_path_factory):
    d = tmp_path_factory.mktemp("mia_cli")
    mem = [r for r in tiny_splits["members"] if r["kind"] == "book" and r["copies"] >= 15][:20]
    non = [r for r in tiny_splits["nonmembers"] if r["kind"] == "book"][:20]
    write_jsonl(d / "mem.jsonl", mem)
    write_jsonl(d / "non.jsonl", non)
    write_jsonl(d / "retain.jsonl", [r for r in tiny_splits["retain"] if r["kind"] == "fact"][:9])
    write_jsonl(d / "forget.jsonl", tiny_splits["forget"][:9])
    write_jsonl(d / "holdout.jsonl", tiny_splits["holdout"][:9])
    return d


def test_mia_run_writes_scores_metrics_roc_and_report(tiny_testbed, files, tmp_path):
    out = tmp_path / "run"
    args = ["run", "--model", str(tiny_testbed), "--members", str(files / "mem.jsonl"), "--nonmembers", str(files / "non.jsonl"),
            "--attacks", "loss,zlib,minkpp,recall", "--out", str(out), "--json", "--no-cache", "-q"]
    r = runner.invoke(mia_app, args)
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)
    for a in ("loss", "zlib", "minkpp", "recall"):
        assert m[a]["n_members"] == 20 and m[a]["auc"] > 0.6
        assert m[a]["tpr_at_1pct_fpr"] is None and "needed" in m[a]["tpr_at_1pct_fpr_reason"]
    assert "verdict" in m["bag_of_words"]
    t = read_parquet(out / "scores.parquet")
    assert list(t) == ["id", "label", "loss", "zlib", "minkpp", "recall"] and t["label"].sum() == 20
    assert (out / "figures/mia_roc.png").exists()
    assert "Bag-of-words check" in (out / "report.html").read_text()
    # Resume: every attack is a finished step and is not recomputed.
    steps = read_json(out / "manifest.json")["steps_done"]
    assert {"attack:loss", "attack:recall"} <= set(steps)
    r2 = runner.invoke(mia_app, args)
    assert r2.exit_code == 0 and np.allclose(read_parquet(out / "scores.parquet")["recall"], t["recall"])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--attacks", "loss,minkp"], "Did you mean: minkpp"),
        (["--k", "1.5"], "--k must be in (0, 1]"),
    ],
)
def test_mia_run_refuses_bad_input_before_any_run_folder(tiny_testbed, files, tmp_path, extra, message):
    out = tmp_path / "never"
    r = runner.invoke(mia_app, ["run", "--model", str(tiny_testbed), "--members", str(files / "mem.jsonl"), "--nonmembers", str(files / "non.jsonl"), "--out", str(out), *extra])
    assert r.exit_code != 0 and message in str(r.exception)
    assert not out.exists()


@pytest.mark.parametrize("attack, option", [("reference", "--reference"), ("recall", "--prefix-pool")])
def test_mia_run_refuses_a_missing_resource_where_no_testbed_supplies_it(arch_dirs, files, tmp_path, attack, option):
    # A testbed supplies its reference model and prefix pool; a plain model folder does not.
    out = tmp_path / "never"
    r = runner.invoke(mia_app, ["run", "--model", str(arch_dirs["gpt2"]), "--members", str(files / "mem.jsonl"), "--nonmembers", str(files / "non.jsonl"), "--out", str(out), "--attacks", attack])
    assert r.exit_code != 0 and f"attack '{attack}' needs {option}" in str(r.exception)
    assert not out.exists()


def test_remind_run_writes_features_and_metrics(tiny_testbed, files, tmp_path):
    out = tmp_path / "remind"
    r = runner.invoke(remind_app, ["run", "--model", str(tiny_testbed), "--retain", str(files / "retain.jsonl"), "--forget", str(files / "forget.jsonl"),
                                   "--holdout", str(files / "holdout.jsonl"), "--variants", "2", "--ranks", "1,2", "--folds", "3", "--out", str(out), "--json", "--no-cache", "-q"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)
    assert set(m["baselines"]) == {"loss", "minkpp", "neighbourhood", "rouge_l"}
    for block in [m["remind"], *m["baselines"].values()]:
        assert {"auc_forgotten_vs_holdout", "auc_forgotten_vs_holdout_ci", "tpr_at_1pct_fpr_forgotten_vs_holdout", "auc_3way_macro"} <= set(block)
    f = read_parquet(out / "features.parquet")
    assert len(f["id"]) == 27 and set(np.unique(f["fold"])) == {0, 1, 2}
    assert "REMIND" in (out / "report.html").read_text()


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_mia_run_works_on_any_causal_lm_folder(arch_dirs, tmp_path, arch):
    write_jsonl(tmp_path / "m.jsonl", [{"id": f"m{i}", "text": f"the quick fox jumps over the lazy dog number {i}, and then it sleeps."} for i in range(6)])
    write_jsonl(tmp_path / "n.jsonl", [{"id": f"n{i}", "text": f"the old owl jumps over the red hen number {i}."} for i in range(6)])
    write_jsonl(tmp_path / "p.jsonl", [{"text": "the slow cat sleeps."}])
    r = runner.invoke(mia_app, ["run", "--model", str(arch_dirs[arch]), "--members", str(tmp_path / "m.jsonl"), "--nonmembers", str(tmp_path / "n.jsonl"),
                                "--attacks", "loss,lowercase,neighbourhood,recall,gradnorm", "--neighbours", "2", "--prefix-pool", str(tmp_path / "p.jsonl"),
                                "--out", str(tmp_path / "o"), "--json", "--no-cache", "-q"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)
    attacks = ("loss", "lowercase", "neighbourhood", "recall", "gradnorm")
    assert all(m[a]["n_members"] == 6 and m[a]["n_nonmembers"] == 6 and 0 <= m[a]["auc"] <= 1 for a in attacks)
    # The scores of a random model are meaningless, but they are the formulas of its own log-probs.
    t = read_parquet(tmp_path / "o" / "scores.parquet")
    assert all(np.isfinite(t[a]).all() for a in attacks) and (t["gradnorm"] < 0).all()
    lm = load_model(arch_dirs[arch])
    texts = [json.loads(x)["text"] for f in ("m.jsonl", "n.jsonl") for x in (tmp_path / f).read_text().splitlines()]
    nll = np.array([-lm.forward_logp([ids])[0].mean() for ids in lm.tokenize(texts)])
    nll_lower = np.array([-lm.forward_logp([ids])[0].mean() for ids in lm.tokenize([x.lower() for x in texts])])
    assert np.allclose(t["loss"], -nll, atol=1e-5) and np.allclose(t["lowercase"], nll_lower / nll, rtol=1e-5)
    assert m["loss"]["auc"] == pytest.approx(roc_auc(-nll, np.r_[np.ones(6), np.zeros(6)]))
