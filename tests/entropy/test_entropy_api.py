"""``entropy mbe|train`` as a Python API and as thin commands: options from one definition, one JSON
document on stdout, bad input refused before the run folder exists, resume only on the same inputs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from rotelab.core.data import write_jsonl
from rotelab.entropy.cli import app
from rotelab.errors import RotelabError

TEXTS = [f"the quick fox number {i} jumps over the lazy dog, and then it sleeps for a while." for i in range(6)]
TRAIN = ["train", "--preset", "tiny", "--steps", "4", "--n-layer", "3", "--batch-size", "4", "--max-passages", "40", "--p-m", "2", "--p-a", "2"]


@pytest.fixture()
def data(tmp_path):
    p = tmp_path / "x.jsonl"
    write_jsonl(p, [{"id": f"t{i}", "text": t, "label": "member" if i % 2 else "non-member"} for i, t in enumerate(TEXTS)])
    return p


def _options(name: str) -> dict[str, str]:
    """Option name -> help text of ``rotelab entropy NAME``."""
    cmd = typer.main.get_command(app).commands[name]
    return {o: p.help or "" for p in cmd.params for o in p.opts if o.startswith("--")}


def test_mbe_takes_every_model_and_run_option_and_train_loads_no_model():
    mbe, train = _options("mbe"), _options("train")
    for opt in ("--model", "--device", "--dtype", "--long-text", "--trust-remote-code", "--allow-pickle", "--out", "--json", "--quiet", "--overwrite"):
        assert opt in mbe, opt
    assert {"--out", "--json", "--quiet", "--overwrite"} <= set(train) and "--model" not in train and "--long-text" not in train


@pytest.mark.parametrize("name", ["mbe", "train"])
def test_every_option_has_help(name):
    assert all(h.strip() for h in _options(name).values()), _options(name)


def test_mbe_json_is_exactly_one_document_even_with_progress_bars(arch_dirs, data, tmp_path):
    r = CliRunner().invoke(app, ["mbe", "--model", str(arch_dirs["gpt2"]), "--data", str(data), "--out", str(tmp_path / "run"), "--patch", "4", "--json"])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("{") and json.loads(r.stdout)["n_texts"] == 6


def test_train_json_is_exactly_one_document_even_with_progress_bars(tmp_path):
    r = CliRunner().invoke(app, [*TRAIN, "--out", str(tmp_path / "t"), "--json"])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("{") and json.loads(r.stdout)["steps"] == 4


def test_train_rerun_with_other_options_is_refused_then_recomputed_with_overwrite(tmp_path):
    out = tmp_path / "t"
    assert CliRunner().invoke(app, [*TRAIN, "--out", str(out), "--json", "-q"]).exit_code == 0
    r = CliRunner().invoke(app, [*TRAIN, "--steps", "5", "--out", str(out), "--json", "-q"])
    assert isinstance(r.exception, RotelabError) and "computed from other options (gapt:" in str(r.exception)
    assert json.loads((out / "entropy_train.json").read_text())["steps"] == 4  # old results kept
    r = CliRunner().invoke(app, [*TRAIN, "--steps", "5", "--out", str(out), "--json", "-q", "--overwrite"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["steps"] == 5 and len(json.loads((out / "train.json").read_text())["log"]) >= 2


def test_mbe_refuses_to_resume_when_the_model_changed_in_place(arch_dirs, data, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(arch_dirs["gpt2"], model)
    out = tmp_path / "run"
    args = ["mbe", "--model", str(model), "--data", str(data), "--out", str(out), "--patch", "4", "--json", "-q"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    shutil.rmtree(model)
    shutil.copytree(arch_dirs["llama"], model)  # another model at the same path
    r = CliRunner().invoke(app, args)
    assert isinstance(r.exception, RotelabError) and "computed from other models (model changed)" in str(r.exception)
    r = CliRunner().invoke(app, [*args, "--overwrite"])
    assert r.exit_code == 0 and json.loads(r.stdout)["layers"] != json.loads(first.stdout)["layers"]


def test_mbe_long_text_error_names_file_and_sample_before_the_run_folder(arch_dirs, tmp_path):
    p = tmp_path / "long.jsonl"
    write_jsonl(p, [{"id": "short", "text": TEXTS[0]}, {"id": "book", "text": " ".join(TEXTS * 3)}])
    out = tmp_path / "never"
    r = subprocess.run([sys.executable, "-m", "rotelab.cli", "entropy", "mbe", "--model", str(arch_dirs["gpt2"]), "--data", str(p), "--out", str(out), "--long-text", "error"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert f"{p}: sample 'book' (text 1: " in r.stderr and "> context 64" in r.stderr
    assert not out.exists()


def test_mbe_batch_size_zero_is_one_line_before_the_run_folder(arch_dirs, data, tmp_path):
    out = tmp_path / "never"
    r = CliRunner().invoke(app, ["mbe", "--model", str(arch_dirs["gpt2"]), "--data", str(data), "--out", str(out), "--batch-size", "0"])
    assert isinstance(r.exception, RotelabError) and str(r.exception) == "--batch-size must be >= 1; got 0"
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--steps", "0"], "--steps must be >= 1; got 0"),
        (["--max-passages", "5"], "--max-passages must be >= 10; got 5"),
        (["--lr", "-1"], "--lr must be > 0; got -1.0"),
        (["--mbe-weight", "-1"], "--mbe-weight must be >= 0; got -1.0"),
        (["--preset", "huge"], "unknown preset 'huge'"),
    ],
)
def test_train_bad_option_is_one_line_before_the_run_folder(tmp_path, args, message):
    out = tmp_path / "never"
    r = CliRunner().invoke(app, ["train", *args, "--out", str(out)])
    assert isinstance(r.exception, RotelabError) and message in str(r.exception) and "\n" not in str(r.exception)
    assert not out.exists()


def test_python_api_in_memory_samples_resume_only_on_the_same_samples(arch_dirs, tmp_path):
    from rotelab.core.data import Sample
    from rotelab.entropy.api import mbe
    from rotelab.entropy.measure import MBEConfig

    out = tmp_path / "run"
    a = mbe(arch_dirs["gpt2"], TEXTS, out=out, config=MBEConfig(patch=4), progress=False)
    assert a["n_texts"] == 6 and a["layers"][0]["group"] == "all"
    assert mbe(arch_dirs["gpt2"], TEXTS, out=out, config=MBEConfig(patch=4), progress=False) == a
    with pytest.raises(RotelabError, match="computed from other options"):
        mbe(arch_dirs["gpt2"], TEXTS[:3], out=out, config=MBEConfig(patch=4), progress=False)
    grouped = [Sample(f"s{i}", t, {"label": "a" if i < 3 else "b"}) for i, t in enumerate(TEXTS)]
    b = mbe(arch_dirs["gpt2"], grouped, out=tmp_path / "g", config=MBEConfig(patch=4), progress=False)
    assert {r["group"] for r in b["layers"]} == {"a", "b"}


def test_model_layer_mbe_equals_mbe_of_the_models_own_hidden_states(arch_dirs):
    """The training callback reads hidden states through LanguageModel.hidden_states; the reference
    is the mean over every valid patch of the batch, from the model's own output_hidden_states."""
    from transformers import AutoModelForCausalLM

    from rotelab.core.training import collate
    from rotelab.entropy.mbe import patch_mbe
    from rotelab.entropy.measure import model_layer_mbe

    model = AutoModelForCausalLM.from_pretrained(arch_dirs["gpt2"]).train()
    g = torch.Generator().manual_seed(0)
    ids, mask, _ = collate([torch.randint(1, 100, (n,), generator=g).tolist() for n in (20, 13, 9)], 0)
    with torch.no_grad():
        ref = [float(patch_mbe(h, patch=4, mask=mask)) for h in model.eval()(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states]
    model.train()
    got = model_layer_mbe(model, ids, mask, patch=4)
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    assert model.training  # the callback leaves the trainer's mode alone
