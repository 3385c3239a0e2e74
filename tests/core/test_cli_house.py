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


def _commands(group, prefix=()):
    """(path, click command) for every leaf command of the tree (typer vendors click: duck-typed)."""
    for name, cmd in group.commands.items():
        path = (*prefix, name)
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, path)
        else:
            yield " ".join(path), cmd


def _option(cmd, flag):
    return next((p for p in cmd.params if flag in p.opts), None)


def _signature(p):
    return (tuple(p.opts), p.default, p.help, p.is_flag, p.required, str(p.type_descriptor.annotation))


MODEL_COMMANDS = {"signals", "mia run", "remind run", "extract book", "extract samples", "steer probe", "steer generate", "steer eval", "entropy mbe", "verify", "clinical audit", "biomed finetune", "biomed eval"}


def _long_flag(info):
    """typer's Option("--x", "-y") keeps its first declaration as ``default``."""
    return next(d for d in (info.default, *info.param_decls) if isinstance(d, str) and d.startswith("--"))


def test_every_model_command_takes_the_same_model_options_from_one_definition():
    import dataclasses
    import typing

    import typer

    from rotelab.cli import app
    from rotelab.cli_common import ModelOpts

    tree = dict(_commands(typer.main.get_command(app)))
    hints = typing.get_type_hints(ModelOpts, include_extras=True)
    flags = [_long_flag(hints[f.name].__metadata__[0]) for f in dataclasses.fields(ModelOpts)]
    model_help = hints["path"].__metadata__[0].help
    takes = {path for path, cmd in tree.items() if (o := _option(cmd, "--model")) is not None and o.help == model_help}
    assert takes == MODEL_COMMANDS
    reference = {f: _signature(_option(tree["signals"], f)) for f in flags}
    for path in takes:
        for f in flags:
            o = _option(tree[path], f)
            assert o is not None and _signature(o) == reference[f], (path, f)


def test_every_command_that_writes_a_run_folder_takes_the_same_run_options():
    import typer

    from rotelab.cli import app

    tree = dict(_commands(typer.main.get_command(app)))
    writers = {path: cmd for path, cmd in tree.items() if _option(cmd, "--out") is not None}
    assert len(writers) >= 20
    for flag in ("--out", "--json", "--quiet", "--overwrite"):
        sigs = {_signature(_option(cmd, flag)) for cmd in writers.values() if _option(cmd, flag) is not None}
        assert len(sigs) == 1, (flag, sigs)
        missing = [p for p, cmd in writers.items() if _option(cmd, flag) is None]
        assert not missing, (flag, missing)


def test_every_option_has_help():
    import typer

    from rotelab.cli import app

    for path, cmd in _commands(typer.main.get_command(app)):
        for p in cmd.params:
            if p.param_type_name == "option":
                assert p.help, (path, p.opts)


def test_no_package_imports_another_that_imports_it_back():
    """The package dependency graph of rotelab has no cycle, and the core depends on nothing else."""
    import ast
    import collections
    from pathlib import Path

    import rotelab

    root = Path(rotelab.__file__).parent
    edges = collections.defaultdict(set)
    for f in root.rglob("*.py"):
        pkg = f.relative_to(root).parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rotelab."):
                target = node.module.split(".")[1]
                if target != pkg:
                    edges[pkg].add(target)
    assert edges["core"] <= {"errors"}, edges["core"]

    def reaches(a, b, seen=()):
        return any(n == b or (n not in seen and reaches(n, b, (*seen, n))) for n in edges.get(a, ()))

    cycles = sorted(p for p in edges if reaches(p, p))
    assert not cycles, {p: sorted(edges[p]) for p in cycles}


def test_top_level_names_are_not_shadowed_by_sub_packages():
    """``rotelab.X`` is the API object even after every capability package has been imported
    (a sub-package named like an API function would replace it as an attribute of ``rotelab``)."""
    import importlib

    import rotelab
    import rotelab.cli  # noqa: F401  (imports every capability's cli module)
    from rotelab.core.registry import discover

    discover("report")()
    for name, target in rotelab._API.items():
        module, attr = target.split(":")
        assert getattr(rotelab, name) is getattr(importlib.import_module(module), attr), name
