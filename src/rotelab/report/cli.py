"""``rotelab report RUN``: rebuild a run folder's report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rotelab.cli_common import COMMANDS


def report(run_dir: Annotated[Path, typer.Argument(help="A run folder.")]):
    """Rebuild a run folder's report.html."""
    from rotelab.report import build_report

    typer.echo(build_report(run_dir))


COMMANDS.register("report", report, order=90)
