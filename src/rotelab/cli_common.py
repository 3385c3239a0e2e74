"""What every command shares: option types, model opening, run folders, output.

Commands stay thin: parse, build a config, call the API, print. Capability CLIs import from here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from rotelab.core.runs import RunFolder, default_out, dumps

ModelOpt = Annotated[Path, typer.Option("--model", "-m", help="Model folder (config + safetensors + tokenizer), or a testbed / unlearning folder (uses its model/).")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help="Run folder (default runs/<command>-<timestamp>); re-running into it resumes.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the machine-readable result.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available).")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="float32 | bfloat16 | float16.")]
LongTextOpt = Annotated[str, typer.Option("--long-text", help="Texts longer than the context: truncate | window | error.")]
RemoteCodeOpt = Annotated[bool, typer.Option("--trust-remote-code", help="Run the model folder's own Python code (off by default).")]
PickleOpt = Annotated[bool, typer.Option("--allow-pickle", help="Load pickle (*.bin) weights; they can run code on load.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Texts per forward pass.")]
CacheOpt = Annotated[Optional[Path], typer.Option("--cache-dir", help="Signal cache folder (default $ROTELAB_CACHE or the user cache folder).")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the signal cache.")]


def open_model(model: Path, *, device=None, dtype="float32", long_text="truncate", trust_remote_code=False, allow_pickle=False):
    from rotelab.core.models import load_model

    return load_model(model, device=device, dtype=dtype, long_text=long_text, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)


def open_cache(cache_dir: Path | None, no_cache: bool):
    from rotelab.core.cache import SignalCache

    return None if no_cache else SignalCache(cache_dir)


def open_run(out: Path | None, command: str, options: dict[str, Any], seed: int | None = None) -> RunFolder:
    return RunFolder(out or default_out(command), command=command, options=options, seed=seed)


def finish(run: RunFolder, result: Any, *, as_json: bool, quiet: bool = False) -> None:
    """Build the report and print the result (JSON on stdout with ``--json``)."""
    from rotelab.report import build_report

    report = build_report(run.path)
    if as_json:
        sys.stdout.write(dumps(result) + "\n")
    elif not quiet:
        from rich.console import Console

        c = Console()
        c.print_json(json.dumps(json.loads(dumps(result))))
        c.print(f"[green]run folder:[/] {run.path}   [green]report:[/] {report}")
