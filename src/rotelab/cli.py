"""The ``rotelab`` command: every capability's command group, from the command registry.

A capability adds its commands by creating ``rotelab/<capability>/cli.py`` with
``app = group("name", help=...)`` (or, outside this package, by an entry point in the
``rotelab.plugins`` group); nothing here lists them. Commands are thin layers over the Python API.
Importing this module loads neither torch nor transformers (``rotelab --help`` is fast).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
import typer.core

from rotelab.cli_common import COMMANDS, BatchOpt, CacheOpts, ModelOpts, RunOpts, SeedOpt, bundled, emit_run
from rotelab.errors import RotelabError


def _flag_type(self, ctx):
    """Flags take no value: show no ``<bool>`` type in help (typer shows one for every option)."""
    return None if self.is_flag else _typer_type(self, ctx)


_typer_type = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = _flag_type


@bundled
def signals(
    data: Annotated[Path, typer.Option("--data", "-d", help="JSONL with 'text' (and optional 'id').")],
    model: ModelOpts,
    run: RunOpts,
    cache: CacheOpts,
    batch_size: BatchOpt = 32,
):
    """Per-token signals of a model over a JSONL file: loss, entropy, greedy hits, coloured tokens."""
    from rotelab.core.inspect_signals import signals as api

    out = run.out_dir("signals")
    result = api(model.path, data, out=out, batch_size=batch_size, load=model.load_options(), cache=cache.open(), overwrite=run.overwrite, progress=run.progress)
    emit_run(result, run, out)


def report(run_dir: Annotated[Path, typer.Argument(help="A run folder.")]):
    """Rebuild a run folder's report.html."""
    from rotelab.report import build_report

    typer.echo(build_report(run_dir))


@bundled
def demo(
    run: RunOpts,
    preset: Annotated[str, typer.Option(help="Testbed preset (small: the demo; tiny: a one-minute smoke run).")] = "small",
    seed: SeedOpt = 0,
):
    """End-to-end demo: build the testbed, score it, unlearn, and write one report."""
    from rotelab.demo import run_demo

    out = run.out or Path("runs/demo")
    result = run_demo(out, preset=preset, seed=seed, progress=run.progress)
    emit_run(result, run, out)


COMMANDS.register("signals", signals, order=10)
COMMANDS.register("report", report, order=90)
COMMANDS.register("demo", demo, order=0)


def build_app() -> typer.Typer:
    """The root command with every registered group and command, ordered by their ``order``."""
    root = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, help="Measure, locate and control memorization in neural networks.")
    for e in sorted(COMMANDS.entries(), key=lambda e: (e.meta.get("order", 50), e.name)):
        if isinstance(e.obj, typer.Typer):
            root.add_typer(e.obj, name=e.name)
        else:
            root.command(e.name)(e.obj)
    return root


app = build_app()


def main() -> None:
    """Entry point: user errors are one line on stderr and exit code 2, never a traceback."""
    threads = os.environ.get("ROTELAB_THREADS")
    if threads:  # e.g. 1 on a shared machine: oversubscribed BLAS threads slow torch down 4x
        import torch

        torch.set_num_threads(int(threads))
    try:
        app()
    except RotelabError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted: finished work is kept; re-run with the same --out to resume", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
