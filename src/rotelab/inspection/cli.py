"""``rotelab signals``: a root command, registered here like every capability's commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rotelab.cli_common import COMMANDS, BatchOpt, CacheOpts, ModelOpts, RunOpts, bundled, emit_run


@bundled
def signals(
    data: Annotated[Path, typer.Option("--data", "-d", help="JSONL with 'text' (and optional 'id').")],
    model: ModelOpts,
    run: RunOpts,
    cache: CacheOpts,
    batch_size: BatchOpt = 32,
):
    """Per-token signals of a model over a JSONL file: loss, entropy, greedy hits, coloured tokens."""
    from rotelab.inspection.api import signals as api

    out = run.out_dir("signals")
    result = api(model.path, data, out=out, batch_size=batch_size, load=model.load_options(), cache=cache.open(), overwrite=run.overwrite, progress=run.progress)
    emit_run(result, run, out)


COMMANDS.register("signals", signals, order=10)
