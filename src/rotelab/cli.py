"""The ``rotelab`` command: every capability's command group, from the command registry.

A capability adds its commands by creating ``rotelab/<capability>/cli.py`` with
``app = group("name", help=...)`` (or, outside this package, by an entry point in the
``rotelab.plugins`` group); nothing here lists them. Commands are thin layers over the Python API.
Importing this module loads neither torch nor transformers (``rotelab --help`` is fast).
"""

from __future__ import annotations

import os
import sys

import typer
import typer.core

from rotelab.cli_common import COMMANDS
from rotelab.errors import RotelabError


def _flag_type(self, ctx):
    """Flags take no value: show no ``<bool>`` type in help (typer shows one for every option)."""
    return None if self.is_flag else _typer_type(self, ctx)


_typer_type = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = _flag_type


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
