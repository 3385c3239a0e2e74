import json
import shutil

from rotelab.demo import run_demo
from rotelab.report import build_report


def test_demo_runs_every_step_resumes_and_reports(tiny_testbed, tmp_path, monkeypatch):
    monkeypatch.setenv("ROTELAB_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    shutil.copytree(tiny_testbed, out / "testbed")  # the testbed step finds its work done
    res = run_demo(out, preset="tiny", progress=False)
    assert res["testbed"]["auc"] > 0.8
    m = json.loads((out / "manifest.json").read_text())
    assert [s["name"] for s in m["subruns"]] == m["steps_done"]
    from rotelab.cli import app
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, ["report", str(out)])  # rebuilt through the CLI: manifest keys survive
    assert r.exit_code == 0, r.output
    html = (out / "report.html").read_text()
    for title in ("Testbed: what the model memorized", "Per-token signals", "Unlearning", "Membership", "REMIND", "Verbatim extraction", "Matrix-based entropy"):
        assert title in html, title
    # a second run skips every finished step
    before = (out / "unlearn-graddiff" / "unlearn.json").stat().st_mtime
    run_demo(out, preset="tiny", progress=False)
    assert (out / "unlearn-graddiff" / "unlearn.json").stat().st_mtime == before
