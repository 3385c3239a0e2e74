"""The command line as a house: fast start, one definition per shared option, plug-in groups."""

import subprocess
import sys
import textwrap

from typer.testing import CliRunner

runner = CliRunner()


def test_importing_the_cli_loads_neither_torch_nor_transformers():
    code = "import sys, rotelab.cli; print(sorted(m for m in ('torch', 'transformers', 'sklearn', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_starts_fast():
    """CPU seconds of ``rotelab --help`` (wall time is 0.26 s idle; CPU time barely moves when
    other jobs load the machine, wall time does)."""
    best = min(_cpu_seconds([sys.executable, "-m", "rotelab.cli", "--help"]) for _ in range(3))
    assert best < 0.8, best


def _cpu_seconds(cmd):
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, capture_output=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def test_flags_show_no_type_in_help():
    from rotelab.cli import app

    r = runner.invoke(app, ["signals", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "--trust-remote-code" in r.output and "<bool>" not in r.output


def test_a_capability_is_one_new_module(tmp_path, monkeypatch):
    """A new command group from one module: its ``group(...)`` call is its only registry line."""
    (tmp_path / "toy_capability.py").write_text(textwrap.dedent('''
        from typing import Annotated
        import typer
        from rotelab.cli_common import RunOpts, command, emit, group

        app = group("toy", help="A toy capability.")

        @command(app, "count")
        def count(text: Annotated[str, typer.Option("--text", help="Some text.")], run: RunOpts):
            """Count words."""
            emit({"words": len(text.split())}, run)
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    from rotelab.cli import build_app
    from rotelab.cli_common import COMMANDS

    import toy_capability  # noqa: F401

    try:
        r = runner.invoke(build_app(), ["toy", "count", "--text", "a b c", "--json"])
        assert r.exit_code == 0, r.output
        assert r.stdout.strip().startswith("{") and '"words": 3' in r.stdout
        assert "toy" in runner.invoke(build_app(), ["--help"]).output
    finally:
        COMMANDS.unregister("toy")
