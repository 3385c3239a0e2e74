import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from rotelab.cli import app

runner = CliRunner()


def rotelab(*args, env=None):
    """Run the real console entry point (error handling lives in main())."""
    return subprocess.run([sys.executable, "-m", "rotelab.cli", *map(str, args)], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    p = tmp_path_factory.mktemp("d") / "x.jsonl"
    p.write_text("".join(json.dumps({"id": f"s{i}", "text": f"the quick fox number {i} jumps"}) + "\n" for i in range(12)))
    return p


def test_signals_command_writes_run_folder_and_report(arch_dirs, data, tmp_path, monkeypatch):
    monkeypatch.setenv("ROTELAB_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    r = runner.invoke(app, ["signals", "--model", str(arch_dirs["gpt2"]), "--data", str(data), "--out", str(out), "--json", "-q"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["n_texts"] == 12 and res["nll_mean"] > 0
    for f in ("manifest.json", "signals.parquet", "summary.json", "report.html", "figures/signals_nll.png"):
        assert (out / f).exists(), f
    html = (out / "report.html").read_text()
    assert "Per-token signals" in html and "data:image/png;base64" in html
    assert json.loads((out / "manifest.json").read_text())["inputs"]["data"]["sha256"]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"text": "ok"}\n{oops\n', "x.jsonl:2: malformed JSON"),
        ('{"text": "ok"}\n{"id": "a"}\n', "x.jsonl:2: missing field 'text'"),
        ('{"text": "   "}\n', "x.jsonl:1: field 'text' is empty"),
        (b'{"text": "caf\xe9"}\n', "x.jsonl:1: not valid UTF-8"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(arch_dirs, tmp_path, content, message):
    p = tmp_path / "x.jsonl"
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    r = rotelab("signals", "--model", arch_dirs["gpt2"], "--data", p, "--out", tmp_path / "run")
    assert r.returncode == 2
    assert message in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_wrong_model_folder_is_one_line(tmp_path, data):
    r = rotelab("signals", "--model", tmp_path / "missing", "--data", data)
    assert r.returncode == 2 and r.stderr.strip() == f"error: {tmp_path / 'missing'}: model folder not found"


def test_report_rebuilds_and_refuses_non_run(tmp_path):
    r = rotelab("report", tmp_path)
    assert r.returncode == 2 and "not a run folder" in r.stderr


def test_long_text_error_names_file_and_sample_before_any_run_folder(arch_dirs, tmp_path):
    p = tmp_path / "long.jsonl"
    p.write_text(json.dumps({"id": "short", "text": "the quick fox"}) + "\n" + json.dumps({"id": "big", "text": "the lazy dog " * 60}) + "\n")
    r = rotelab("signals", "--model", arch_dirs["gpt2"], "--data", p, "--long-text", "error", "--out", tmp_path / "run")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert r.stderr.startswith(f"error: {p}: sample 'big': ") and "> context 64 (choose --long-text truncate or window)" in r.stderr
    assert not (tmp_path / "run").exists()
