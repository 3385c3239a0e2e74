"""``rotelab demo``: the end-to-end tour (resumable)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rotelab.cli_common import COMMANDS, RunOpts, SeedOpt, bundled, emit_run


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


COMMANDS.register("demo", demo, order=0)
