"""``rotelab testbed build|unlearn`` and their API: validation before any run folder, resume only
over the same testbed, one JSON document with --json, files readable as the umask allows."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from rotelab.cli import app
from rotelab.errors import RotelabError
from rotelab.testbed import api

runner = CliRunner()
HEADLINE = {"loss_auc_books_seen_ge4", "loss_auc_books_seen_once", "loss_auc_facts", "extraction_rate_by_copies", "extraction_rate_seen_ge20", "canary_secret_extraction_by_copies"}


def rotelab(*args):
    return subprocess.run([sys.executable, "-m", "rotelab.cli", *map(str, args)], capture_output=True, text=True)


def _unreadable(root, mask: int) -> list[str]:
    """Files and folders under ``root`` lacking a read (folders: read + search) bit the umask allows."""
    bad = []
    for p in sorted(root.rglob("*")):
        mode = p.stat().st_mode & 0o777
        want = (0o555 if p.is_dir() else 0o444) & ~mask
        if mode & want != want:
            bad.append(f"{p.relative_to(root)} {oct(mode)}")
    return bad


def _fake_testbed(root, *, manifest=None):
    """What the checks look at (no real model): model/ files, the splits unlearning reads."""
    (root / "model").mkdir(parents=True)
    for f in ("config.json", "tokenizer.json", "model.safetensors"):
        (root / "model" / f).write_text("{}")
    (root / "splits").mkdir()
    for name in ("members", "forget", "retain", "holdout", "stop_calibration", "member_prefix_pool"):
        (root / "splits" / f"{name}.jsonl").write_text('{"id": "a", "text": "x", "copies": 1}\n')
    (root / "manifest.json").write_text(json.dumps(manifest or {"command": "testbed build"}))
    return root


# -- build ---------------------------------------------------------------------------------------
def test_build_resumes_the_session_testbed_and_prints_one_json_document(tiny_testbed):
    before = json.loads((tiny_testbed / "manifest.json").read_text())
    r = runner.invoke(app, ["testbed", "build", "--preset", "tiny", "--out", str(tiny_testbed), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    ev = json.loads((tiny_testbed / "eval.json").read_text())
    assert set(res) == HEADLINE and res["loss_auc_facts"] == ev["loss_auc_facts"]["auc"]
    after = json.loads((tiny_testbed / "manifest.json").read_text())
    assert after["training"] == before["training"] and after["steps_done"] == before["steps_done"]  # nothing retrained
    assert (tiny_testbed / "report.html").exists()


@pytest.mark.parametrize("args, changed", [(["--preset", "tiny", "--seed", "1"], "seed: 0 -> 1"), (["--preset", "small"], "preset: tiny -> small")])
def test_build_into_a_testbed_of_another_seed_or_preset_is_refused(tiny_testbed, args, changed):
    before = (tiny_testbed / "manifest.json").read_bytes()
    r = runner.invoke(app, ["testbed", "build", *args, "--out", str(tiny_testbed)])
    assert isinstance(r.exception, RotelabError) and changed in str(r.exception) and "--overwrite" in str(r.exception)
    assert (tiny_testbed / "manifest.json").read_bytes() == before


def test_testbed_files_are_readable_as_the_umask_allows(tiny_testbed):
    mask = os.umask(0)
    os.umask(mask)
    assert _unreadable(tiny_testbed, mask) == []


# -- unlearn ---------------------------------------------------------------------------------------
def test_unlearning_run_files_are_group_and_other_readable_under_umask_022(unlearn_run):
    assert (unlearn_run / "model" / "model.safetensors").exists() and (unlearn_run / "checkpoints").is_dir()
    assert _unreadable(unlearn_run, 0o022) == []


def test_unlearning_run_declares_the_testbed_files_as_inputs(unlearn_run, tiny_testbed):
    m = json.loads((unlearn_run / "manifest.json").read_text())
    assert set(m["identity"]["inputs"]) == {"forget", "retain", "holdout", "stop_calibration", "member_prefix_pool", "model/model.safetensors", "model/config.json", "model/tokenizer.json"}
    assert m["inputs"]["forget"]["path"] == str(tiny_testbed / "splits" / "forget.jsonl") and len(m["inputs"]["forget"]["sha256"]) == 64
    assert m["testbed"] == str(tiny_testbed.resolve()) and m["config"]["method"] == "graddiff"
    res = json.loads((unlearn_run / "unlearn.json").read_text())
    assert res["checkpoints"]["1.0x"]["reached"] and res["checkpoints"]["1.0x"]["forget"] >= res["targets"]["1.0x"]


def test_unlearning_over_a_changed_testbed_is_refused_and_overwrite_recomputes(tiny_testbed, tmp_path):
    tb = tmp_path / "tb"
    shutil.copytree(tiny_testbed, tb, ignore=shutil.ignore_patterns(".rotelab.lock"))
    out = tmp_path / "u"
    args = ["testbed", "unlearn", "--testbed", str(tb), "--method", "ga", "--max-steps", "2", "--out", str(out), "--json", "-q"]
    assert runner.invoke(app, args).exit_code == 0
    done = (out / "unlearn.json").stat().st_mtime_ns
    moved = tmp_path / "moved"
    shutil.copytree(tb, moved)  # the same testbed elsewhere: its files are the inputs, not its path
    r = runner.invoke(app, [*args[:3], str(moved), *args[4:]])
    assert r.exit_code == 0 and (out / "unlearn.json").stat().st_mtime_ns == done
    forget = tb / "splits" / "forget.jsonl"
    forget.write_text("".join(forget.read_text().splitlines(True)[1:]))  # one forget fact fewer
    r = runner.invoke(app, args)
    assert isinstance(r.exception, RotelabError) and "forget changed" in str(r.exception) and "--overwrite" in str(r.exception)
    assert (out / "unlearn.json").stat().st_mtime_ns == done
    r = runner.invoke(app, [*args, "--overwrite"])
    assert r.exit_code == 0 and json.loads(r.stdout)["steps"] == 2 and (out / "unlearn.json").stat().st_mtime_ns != done


def test_unlearn_json_is_one_document_on_stdout_while_progress_goes_to_stderr(tiny_testbed, tmp_path):
    r = runner.invoke(app, ["testbed", "unlearn", "--testbed", str(tiny_testbed / "model"), "--method", "npo", "--max-steps", "3", "--out", str(tmp_path / "u"), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["method"] == "npo" and res["steps"] == 3 and "log" not in res and res["strongest"] == "cap"


# -- bad input: one line, exit 2, no run folder ---------------------------------------------------
@pytest.mark.parametrize(
    "args, message",
    [
        (["build", "--preset", "tinny"], "--preset: unknown testbed preset 'tinny'. Did you mean: tiny? Available: "),
        (["build", "--preset", "tiny", "--seed", "-1"], "--seed must be an integer >= 0; got -1"),
        (["unlearn", "--method", "npoo"], "--method: unknown unlearning method 'npoo'. Did you mean: npo? Available: ga, graddiff, npo, retrain"),
        (["unlearn", "--lr", "0"], "--lr must be a finite number > 0; got 0.0"),
        (["unlearn", "--lr", "nan"], "--lr must be a finite number > 0; got nan"),
        (["unlearn", "--max-steps", "0"], "--max-steps must be an integer >= 1; got 0"),
        (["unlearn", "--beta", "-1"], "--beta must be a finite number > 0; got -1.0"),
        (["unlearn", "--seed", "-2"], "--seed must be an integer >= 0; got -2"),
    ],
)
def test_bad_options_are_one_line_before_any_run_folder(tiny_testbed, tmp_path, args, message):
    extra = ["--testbed", str(tiny_testbed)] if args[0] == "unlearn" else []
    r = runner.invoke(app, ["testbed", *args, *extra, "--out", str(tmp_path / "o")])
    assert isinstance(r.exception, RotelabError) and str(r.exception).startswith(message), str(r.exception)
    assert not (tmp_path / "o").exists()


def test_bad_testbeds_are_one_line_before_any_run_folder(tmp_path, arch_dirs):
    out = tmp_path / "o"

    def refused(testbed, method="ga"):
        with pytest.raises(RotelabError) as e:
            api.unlearn(testbed, method=method, out=out)
        assert not out.exists()
        return str(e.value)

    assert refused(tmp_path / "missing") == f"{tmp_path / 'missing'}: testbed folder not found"
    assert refused(arch_dirs["gpt2"]).endswith("not a testbed folder (needs model/ and splits/; build one with 'rotelab testbed build')")
    tb = _fake_testbed(tmp_path / "tb")
    (tb / "splits" / "forget.jsonl").write_text('{"text": "x"}\n{oops\n')
    assert refused(tb) == f"{tb / 'splits' / 'forget.jsonl'}:2: malformed JSON (Expecting property name enclosed in double quotes)"
    (tb / "splits" / "forget.jsonl").write_text("\n")
    assert refused(tb) == f"{tb / 'splits' / 'forget.jsonl'}: the split is empty"
    (tb / "splits" / "forget.jsonl").write_text('{"text": "x"}\n')
    assert refused(tb, "retrain").startswith(f"{tb / 'manifest.json'}: no fact-testbed preset")
    preset = {"model": {"n_layer": 1, "n_embd": 8, "n_head": 1, "n_positions": 8, "vocab_size": 8}, "train": {"lr": 1.0, "batch_size": 1, "warmup_steps": 1, "weight_decay": 0.0, "seed": 0}}
    (tb / "manifest.json").write_text(json.dumps({"preset": preset}))
    (tb / "splits" / "retain.jsonl").write_text('{"text": "x", "copies": 2}\n{"text": "y"}\n')
    assert refused(tb, "retrain") == f"{tb / 'splits' / 'retain.jsonl'}: row 2: field 'copies' must be an integer >= 1 (the exposures to retrain with)"
    (tb / "model" / "model.safetensors").unlink()
    (tb / "model" / "pytorch_model.bin").write_text("")
    assert refused(tb) == f"{tb / 'model'}: no weights (*.safetensors) in the testbed's model folder"


def test_out_that_is_a_file_is_refused(tiny_testbed, tmp_path):
    f = tmp_path / "file"
    f.write_text("mine")
    with pytest.raises(RotelabError, match="exists and is a file"):
        api.unlearn(tiny_testbed, method="ga", max_steps=1, out=f, progress=False)
    assert f.read_text() == "mine"


def test_console_errors_are_one_line_with_exit_code_2(tiny_testbed, tmp_path):
    for args, message in (
        (["build", "--preset", "smal"], "error: --preset: unknown testbed preset 'smal'. Did you mean: small?"),
        (["unlearn", "--testbed", tiny_testbed, "--method", "gradiff"], "error: --method: unknown unlearning method 'gradiff'. Did you mean: graddiff?"),
    ):
        r = rotelab("testbed", *args, "--out", tmp_path / "o")
        assert r.returncode == 2 and r.stderr.startswith(message) and r.stderr.count("\n") == 1 and r.stdout == ""
        assert not (tmp_path / "o").exists()


def test_a_testbed_built_before_the_stop_calibration_split_is_refused_with_how_to_rebuild(tmp_path):
    """Falling back to the holdout would calibrate the unlearning stop on the set REMIND evaluates on."""
    tb = _fake_testbed(tmp_path / "tb", manifest={"preset": {"name": "small"}, "seed": 3})
    (tb / "splits" / "stop_calibration.jsonl").unlink()
    out = tmp_path / "o"
    with pytest.raises(RotelabError) as e:
        api.unlearn(tb, method="ga", out=out)
    assert str(e.value).startswith(f"{tb / 'splits' / 'stop_calibration.jsonl'}: missing (a testbed built before the stop-calibration split")
    assert f"'rotelab testbed build --preset small --seed 3 --out {tb} --overwrite'" in str(e.value) and not out.exists()
