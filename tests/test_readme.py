"""The README's Python session runs as written (on the tiny testbed), so the documentation cannot rot."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_python_api_session_in_the_readme_runs(tmp_path, monkeypatch):
    code = re.search(r"## Python API.*?```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROTELAB_CACHE", str(tmp_path / "cache"))
    env: dict = {}
    exec(compile(code, str(README), "exec"), env)  # noqa: S102 - our own documentation
    assert env["res"]["minkpp"]["auc"] > 0.8  # members seen >= 20 times are easy to tell apart
    assert len(env["gen"].tokens[0]) == 4 and len({tuple(t) for t in env["gen"].tokens[0]}) > 1
    assert (tmp_path / "runs/remind/report.html").exists() and (tmp_path / "runs/unl/checkpoints").exists()
