"""The verdict on models whose truth is known (the ``micro`` world in conftest.py): barely
unlearned -> "not removed"; suppressed but brought back by a few steps on retain data ->
"hidden"; retrained without the forget set -> "removed". Then the command end to end."""

import json
import subprocess
import sys

import pytest

from typer.testing import CliRunner

from rotelab.cli import app
from rotelab.verify.api import VerifyConfig, verify
from rotelab.verify.attacks import RelearnConfig

# Kept small for CI: one direct MIA, one quantization width, no REMIND. n_boot=1000 keeps the
# bootstrap p-value's floor (1/1001) far enough below alpha/2 after Holm over the 5 attacks.
FAST = VerifyConfig(attacks="loss", remind=False, quantize_bits=(8,), n_boot=1000, relearn=RelearnConfig(steps=60, lr=1e-3), batch_size=30)


def _verify(micro, name, tmp_path, **kw):
    splits = {k: micro[k] for k in ("forget", "retain", "holdout")}
    return verify(micro[name], **splits, original=micro["original"], out=tmp_path / name, config=FAST, cache=None, progress=False, **kw)


def _detects(result) -> dict[str, bool]:
    return {r["attack"]: r["detects"] for r in result["evidence"] if "detects" in r}


def test_a_barely_unlearned_model_is_not_removed(micro, tmp_path):
    r = _verify(micro, "barely", tmp_path, retrained=micro["retrained"])
    assert r["verdict"] == "not removed"
    assert _detects(r)["mia:loss"]  # the direct evidence: forget loss still below holdout loss
    assert r["attacks"]["quant8"]["recovered_share_forget"]["share"] is not None


def test_a_suppression_undone_by_relearning_on_retain_is_hidden(micro, tmp_path):
    r = _verify(micro, "hidden", tmp_path, retrained=micro["retrained"], relearn=micro["relearn"])
    assert r["attack_control"] == "retrained"
    assert r["verdict"] == "hidden" and "relearn-retain:loss" in r["detected_by"]
    assert not _detects(r)["mia:loss"] and not _detects(r)["extraction:match"]
    assert r["attacks"]["relearn-retain"]["recovered_share_forget"]["share"] > 0.2
    row = next(e for e in r["evidence"] if e["attack"] == "relearn-retain:loss")
    # read against the retrained model under the same steps: both its level and its rise exceed the oracle's
    assert row["auc"] == pytest.approx(0.5 + min(row["raw_auc"] - row["control_auc"], row["change"]))
    assert row["change"] == pytest.approx((row["raw_auc"] - row["unlearned_auc"]) - (row["control_auc"] - row["control_before_auc"]))


def test_the_retrained_model_is_removed_under_the_controlled_relearning_attack(micro, tmp_path):
    # the null: a model that never saw the forget set, read against another such model (another seed)
    r = _verify(micro, "retrained", tmp_path, retrained=micro["retrained2"], relearn=micro["relearn"])
    assert r["verdict"] == "removed" and r["detected_by"] == []
    assert {"mia:loss", "extraction:match", "quant8:loss", "relearn-retain:loss", "relearn-split:loss"} <= set(_detects(r))
    split = next(e for e in r["evidence"] if e["attack"] == "relearn-split:loss")
    assert split["statistic"].startswith("0.5 + min(level, change)") and split["auc_ci"][0] < 0.55
    assert set(r["attacks"]["relearn-split"]["control_drop_share"]) == {"forget", "holdout"}


def test_verify_json_prints_one_document_with_the_verdict(micro, tmp_path):
    args = ["verify", "--model", micro["original"], "--forget", micro["forget"], "--retain", micro["retain"], "--holdout", micro["holdout"],
            "--attacks", "loss", "--no-remind", "--quantize", "", "--relearn-steps", "0", "--no-cache", "--quiet", "--json", "--out", tmp_path / "run"]
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)  # exactly one JSON document: anything else on stdout fails to parse
    assert doc["verdict"] == "not removed" and "mia:loss" in doc["detected_by"]
    assert (tmp_path / "run" / "verify.json").is_file()


def test_verify_bad_input_is_one_line_on_stderr_and_exit_2(micro, tmp_path):
    out = tmp_path / "run"
    args = ["verify", "--model", micro["original"], "--forget", micro["forget"], "--retain", micro["forget"], "--holdout", micro["holdout"], "--out", out]
    r = subprocess.run([sys.executable, "-m", "rotelab.cli", *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.splitlines()) == 1 and "--forget and --retain" in r.stderr, r.stderr
    assert not out.exists()

