import json

import pytest
from typer.testing import CliRunner

from rotelab.diffusion.cli import app
from rotelab.errors import RotelabError

runner = CliRunner()


def _fails(args, match):
    res = runner.invoke(app, args)
    assert isinstance(res.exception, RotelabError), res.output
    assert match in str(res.exception)


def test_commands_refuse_bad_inputs_before_creating_a_run(tmp_path, tiny_testbed):
    _fails(["testbed", "build", "--preset", "tiny", "--steps", "0", "--out", str(tmp_path / "a")], "--steps must be >= 1; got 0")
    _fails(["detect", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "b")], "not found")
    _fails(["dori", "--model", str(tiny_testbed[0]), "--mitigation", str(tmp_path), "--out", str(tmp_path / "c")], "no mitigation.safetensors")
    _fails(["locality", "--model", str(tiny_testbed[0]), "--item", "unseen-0", "--out", str(tmp_path / "d")], "not a memorized item")
    assert not any((tmp_path / x).exists() for x in "abcd")


def test_detect_and_dori_run_end_to_end_on_the_tiny_testbed(tmp_path, tiny_testbed):
    tb = str(tiny_testbed[0])
    res = runner.invoke(app, ["detect", "--model", tb, "--out", str(tmp_path / "det"), "--n-noises", "2", "--n-seeds", "2", "--json", "-q"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["replication"]["memorized"]["rate"] > out["replication"]["not_memorized"]["rate"]
    assert (tmp_path / "det" / "report.html").exists() and (tmp_path / "det" / "figures" / "replication_grid.png").exists()
    data = tmp_path / "two.jsonl"
    rows = [json.loads(line) for line in (tiny_testbed[0] / "items.jsonl").read_text().splitlines()]
    picked = [r for r in rows if r["split"] == "memorized"][:1] + [r for r in rows if r["split"] == "unseen"][:1]
    data.write_text("".join(json.dumps({**r, "image": str(tiny_testbed[0] / r["image"])}) + "\n" for r in picked))
    args = ["dori", "--model", tb, "--data", str(data), "--init", "gaussian", "--steps", "30", "--n-seeds", "2", "--out", str(tmp_path / "dori"), "--json", "-q"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["memorized"]["mean_similarity"] > out["not memorized"]["mean_similarity"]
    again = runner.invoke(app, args)  # resumes: every per-image step is already done
    assert json.loads(again.stdout) == out
