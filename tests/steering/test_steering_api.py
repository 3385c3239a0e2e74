"""``steer probe|generate|eval`` as a Python API and as thin commands: options from one definition,
one JSON document on stdout, bad input refused before the run folder exists, resume only on the
same inputs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from rotelab.errors import RotelabError
from rotelab.steering.cli import app
from tests.conftest import CORPUS
from tests.steering.test_steering_workflows import fake_testbed  # noqa: F401  (the shared fixture)

runner = CliRunner()
SMALL = ["--labels", "source", "--k", "2", "--prefix-tokens", "8", "--suffix-tokens", "8"]
EVAL = ["--static-alphas", "1", "--dynamic-alphas", "2", "--gated-alphas", ""]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture()
def files(tmp_path):
    mem = _jsonl(tmp_path / "mem.jsonl", [{"text": t} for t in CORPUS[:20]])
    gen = _jsonl(tmp_path / "gen.jsonl", [{"text": f"{i} owl hen cat {i * 7} dog fox red"} for i in range(20)])
    return mem, gen


def _options(name: str) -> dict[str, str]:
    cmd = typer.main.get_command(app).commands[name]
    return {o: p.help or "" for p in cmd.params for o in p.opts if o.startswith("--")}


@pytest.mark.parametrize("name", ["probe", "generate", "eval"])
def test_every_steer_command_takes_every_model_and_run_option_with_help(name):
    opts = _options(name)
    for opt in ("--model", "--device", "--dtype", "--long-text", "--trust-remote-code", "--allow-pickle", "--out", "--json", "--quiet", "--overwrite", "--batch-size"):
        assert opt in opts, opt
    assert all(h.strip() for h in opts.values()), opts


def test_probe_eval_generate_json_is_exactly_one_document_even_with_progress_bars(arch_dirs, files, tmp_path):
    mem, gen = files
    m = str(arch_dirs["qwen2"])
    p, e, g = (str(tmp_path / n) for n in "peg")
    for args in (["probe", "--model", m, "--mem", str(mem), "--gen", str(gen), *SMALL[:4], "--prefix-tokens", "4", "--suffix-tokens", "4", "--out", p],
                 ["eval", "--model", m, "--probe", p, "--mem", str(mem), "--gen", str(gen), *EVAL, "--out", e],
                 ["generate", "--model", m, "--probe", p, "--prompt", "the lazy dog", "--max-new-tokens", "3", "--out", g]):
        r = runner.invoke(app, [*args, "--json"])
        assert r.exit_code == 0, r.output
        assert r.stdout.startswith("{") and isinstance(json.loads(r.stdout), dict), args[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--mem", "{bad}", "--gen", "{gen}"], "bad.jsonl:2: malformed JSON"),
        (["--mem", "{mem}", "--gen", "{mem}"], "--mem and --gen: 20 texts appear in both"),
        (["--mem", "{mem}", "--gen", "{gen}", "--prefix-tokens", "40", "--suffix-tokens", "40"], "--prefix-tokens 40 + --suffix-tokens 40 (+ BOS) exceed the model's context of 64 tokens"),
        (["--mem", "{mem}", "--gen", "{gen}", "--labels", "vibes"], "--labels must be one of diversity, exact, source; got 'vibes'"),
        (["--mem", "{mem}", "--gen", "{gen}", "--long-text", "window"], "--long-text window does not apply to steering"),
        (["--mem", "{mem}"], "give --mem FILE.jsonl and --gen FILE.jsonl"),
        (["--mem", "{mem}", "--gen", "{gen}", "--batch-size", "0"], "--batch-size must be >= 1; got 0"),
    ],
)
def test_probe_bad_input_is_one_line_before_the_run_folder(arch_dirs, files, tmp_path, args, message):
    mem, gen = files
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{oops\n')
    args = [a.format(mem=mem, gen=gen, bad=bad) for a in args]
    out = tmp_path / "never"
    r = runner.invoke(app, ["probe", "--model", str(arch_dirs["qwen2"]), *args, "--out", str(out)])
    assert isinstance(r.exception, RotelabError), r.output
    assert message in str(r.exception) and "\n" not in str(r.exception)
    assert not out.exists()


@pytest.fixture(scope="module")
def probe_dir(arch_dirs, tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    mem = _jsonl(d / "mem.jsonl", [{"text": t} for t in CORPUS[:20]])
    gen = _jsonl(d / "gen.jsonl", [{"text": f"{i} owl hen cat {i * 7} dog fox red"} for i in range(20)])
    out = d / "probe"
    r = runner.invoke(app, ["probe", "--model", str(arch_dirs["qwen2"]), "--mem", str(mem), "--gen", str(gen), *SMALL[:4], "--prefix-tokens", "4", "--suffix-tokens", "4", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    return out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--gen", "{bad}"], "bad.jsonl:2: malformed JSON"),
        (["--static-alphas", "1,x"], "--static-alphas must be comma-separated numbers; got '1,x'"),
        (["--static-alphas", "nan"], "--static-alphas must be finite numbers; got nan"),
        (["--beta", "1", "--dynamic-alphas", ""], "--beta > 0 needs at least one --dynamic-alphas strength"),
        (["--tau", "2"], "--tau must be in [0, 1]; got 2.0"),
        (["--probe", "{tmp}"], "no probe.npz"),
    ],
)
def test_eval_bad_input_is_one_line_before_the_run_folder(arch_dirs, files, probe_dir, tmp_path, args, message):
    mem, gen = files
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{oops\n')
    out = tmp_path / "never"
    base = {"--probe": str(probe_dir), "--mem": str(mem), "--gen": str(gen)}
    extra = [a.format(bad=bad, tmp=tmp_path) for a in args]
    for k in [a for a in extra if a in base]:
        base.pop(k)
    r = runner.invoke(app, ["eval", "--model", str(arch_dirs["qwen2"]), *[x for kv in base.items() for x in kv], *extra, "--out", str(out)])
    assert isinstance(r.exception, RotelabError), r.output
    assert message in str(r.exception) and "\n" not in str(r.exception)
    assert not out.exists()


def test_generate_refuses_a_probe_of_another_width_and_long_prompts_under_error(arch_dirs, probe_dir, tmp_path):
    import shutil

    from transformers import AutoModelForCausalLM

    wide = tmp_path / "wide"
    m = AutoModelForCausalLM.from_pretrained(arch_dirs["qwen2"])
    type(m)(m.config.__class__(**{**m.config.to_dict(), "hidden_size": 48})).save_pretrained(wide)
    for f in arch_dirs["qwen2"].glob("tokenizer*"):
        shutil.copy(f, wide)
    out = tmp_path / "never"
    r = runner.invoke(app, ["generate", "--model", str(wide), "--probe", str(probe_dir), "--prompt", "the dog", "--out", str(out)])
    assert isinstance(r.exception, RotelabError) and "probe was fitted on 32-dimensional activations; the model's are 48-dimensional" in str(r.exception)
    long = " ".join(CORPUS[:6])
    r = runner.invoke(app, ["generate", "--model", str(arch_dirs["qwen2"]), "--probe", str(probe_dir), "--prompt", long, "--long-text", "error", "--out", str(out)])
    assert isinstance(r.exception, RotelabError) and "prompt 'prompts:0'" in str(r.exception) and "> context 64" in str(r.exception)
    assert not out.exists()
    r = runner.invoke(app, ["generate", "--model", str(arch_dirs["qwen2"]), "--probe", str(probe_dir), "--prompt", long, "--max-new-tokens", "4", "--out", str(out), "--json", "-q"])
    assert r.exit_code == 0, r.output
    notes = json.loads((out / "manifest.json").read_text())["notes"]
    assert notes["long_text"]["n_longer_than_context"] == 1 and notes["long_text"]["policy"] == "truncate"


def test_probe_resumes_on_the_same_inputs_refuses_changed_ones_and_recomputes_with_overwrite(arch_dirs, files, tmp_path):
    mem, gen = files
    out = tmp_path / "p"
    args = ["probe", "--model", str(arch_dirs["qwen2"]), "--mem", str(mem), "--gen", str(gen), *SMALL[:4], "--prefix-tokens", "4", "--suffix-tokens", "4", "--out", str(out), "--json", "-q"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    stamp = (out / "probe.npz").stat().st_mtime_ns
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and (out / "probe.npz").stat().st_mtime_ns == stamp  # finished work reused
    assert json.loads(again.stdout) == json.loads(first.stdout)
    _jsonl(mem, [{"text": t} for t in CORPUS[20:40]])  # the same file name, other texts
    r = runner.invoke(app, args)
    assert isinstance(r.exception, RotelabError) and "computed from other inputs (mem changed)" in str(r.exception)
    assert (out / "probe.npz").stat().st_mtime_ns == stamp
    r = runner.invoke(app, [*args, "--overwrite"])
    assert r.exit_code == 0, r.output
    assert (out / "probe.npz").stat().st_mtime_ns != stamp


def test_eval_refuses_to_resume_after_its_probe_was_recomputed(fake_testbed, tmp_path):  # noqa: F811
    pdir, edir = tmp_path / "probe", tmp_path / "eval"
    probe = ["probe", "--model", str(fake_testbed), *SMALL, "--out", str(pdir), "-q"]
    assert runner.invoke(app, probe).exit_code == 0
    ev = ["eval", "--model", str(fake_testbed), "--probe", str(pdir), *EVAL, "--out", str(edir), "--json", "-q"]
    r = runner.invoke(app, ev)
    assert r.exit_code == 0, r.output
    stamp = (edir / "steer_eval.json").stat().st_mtime_ns
    assert runner.invoke(app, ev).exit_code == 0 and (edir / "steer_eval.json").stat().st_mtime_ns == stamp
    assert runner.invoke(app, [*probe, "--seed", "1", "--overwrite"]).exit_code == 0  # another probe, same folder
    r = runner.invoke(app, ev)
    assert isinstance(r.exception, RotelabError) and "computed from other inputs (probe" in str(r.exception)
    assert runner.invoke(app, [*ev, "--overwrite"]).exit_code == 0
    assert (edir / "steer_eval.json").stat().st_mtime_ns != stamp


def test_testbed_model_folder_is_found_as_the_testbed(fake_testbed, tmp_path):  # noqa: F811
    """``--model TB/model`` finds the testbed's splits (rotelab.testbed.folder.Testbed.find)."""
    r = runner.invoke(app, ["probe", "--model", str(fake_testbed / "model"), *SMALL, "--out", str(tmp_path / "p"), "--json", "-q"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "p" / "probe_summary.json").read_text())["n_probe_prompts"] > 0


def test_python_api_probe_evaluate_generate(arch_dirs, tmp_path):
    from rotelab.steering import api
    from rotelab.steering.evaluate import EvalConfig
    from rotelab.steering.steer import SteerConfig
    from rotelab.steering.workflows import ProbeConfig

    mem = CORPUS[:20]
    gen = [f"{i} owl hen cat {i * 7} dog fox red" for i in range(20)]
    cfg = ProbeConfig(labels="source", k=2, prefix=4, suffix=4)
    p = api.probe(arch_dirs["qwen2"], mem=mem, gen=gen, out=tmp_path / "p", config=cfg, progress=False)
    assert p["labels_used"] == "source" and p["auroc"] > 0.8
    with pytest.raises(RotelabError, match="computed from other options"):
        api.probe(arch_dirs["qwen2"], mem=mem[:10], gen=gen, out=tmp_path / "p", config=cfg, progress=False)
    e = api.evaluate(arch_dirs["qwen2"], tmp_path / "p", mem=mem, gen=gen, out=tmp_path / "e", config=EvalConfig(static_alphas=(1.0,), dynamic_alphas=(2.0,), gated_alphas=()), progress=False)
    assert [r["condition"] for r in e["rows"]][:3] == ["none", "static a=1", "dynamic a_max=2"] and e["rows"][1]["ce_change_ci"]
    g = api.generate(arch_dirs["qwen2"], tmp_path / "p", ["the lazy dog", "the old owl"], out=tmp_path / "g", config=SteerConfig("static", 1.0), max_new_tokens=3, progress=False)
    assert [r["prompt"] for r in g["rows"]] == ["the lazy dog", "the old owl"] and all(r["mean_alpha"] == 1.0 for r in g["rows"])


def test_bad_input_exit_code_2_through_the_console_script(arch_dirs, tmp_path):
    out = tmp_path / "never"
    r = subprocess.run([sys.executable, "-m", "rotelab.cli", "steer", "probe", "--model", str(arch_dirs["qwen2"]), "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr and "give --mem FILE.jsonl" in r.stderr
    assert not out.exists()
