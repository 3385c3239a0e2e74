"""The ``rotelab`` command: one group per capability, each a thin layer over the Python API."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from rotelab.cli_common import (
    BatchOpt, CacheOpt, DeviceOpt, DtypeOpt, JsonOpt, LongTextOpt, ModelOpt, NoCacheOpt, OutOpt,
    PickleOpt, QuietOpt, RemoteCodeOpt, finish, open_cache, open_model, open_run,
)
from rotelab.errors import RotelabError
from rotelab.capacity import cli as capacity_cli
from rotelab.diffusion import cli as diffusion_cli
from rotelab.entropy import cli as entropy_cli
from rotelab.extraction import cli as extraction_cli
from rotelab.membership import cli as membership_cli
from rotelab.recsys import cli as recsys_cli
from rotelab.steering import cli as steering_cli
from rotelab.testbed import cli as testbed_cli

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, help="Measure, locate and control memorization in neural networks.")
app.add_typer(testbed_cli.app, name="testbed")
app.add_typer(recsys_cli.app, name="recsys")
app.add_typer(capacity_cli.app, name="capacity")
app.add_typer(diffusion_cli.app, name="diffusion")
app.add_typer(entropy_cli.app, name="entropy")
app.add_typer(extraction_cli.extract_app, name="extract")
app.add_typer(membership_cli.mia_app, name="mia")
app.add_typer(membership_cli.remind_app, name="remind")
app.add_typer(steering_cli.app, name="steer")
app.command("weightdiff")(extraction_cli.weightdiff)


@app.command()
def signals(
    model: ModelOpt,
    data: Annotated[Path, typer.Option("--data", "-d", help="JSONL with 'text' (and optional 'id').")],
    out: OutOpt = None,
    batch_size: BatchOpt = 32,
    long_text: LongTextOpt = "truncate",
    device: DeviceOpt = None,
    dtype: DtypeOpt = "float32",
    trust_remote_code: RemoteCodeOpt = False,
    allow_pickle: PickleOpt = False,
    cache_dir: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Per-token signals of a model over a JSONL file: loss, entropy, greedy hits, coloured tokens."""
    from rotelab.core.data import read_jsonl
    from rotelab.core.inspect_signals import SignalsConfig, inspect_signals
    from rotelab.core.models import resolve_model_dir

    samples = read_jsonl(data)  # validate every input before a run folder exists
    lm = open_model(model, device=device, dtype=dtype, long_text=long_text, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    run = open_run(out, "signals", dict(model=model, data=data, batch_size=batch_size, long_text=long_text, dtype=dtype))
    run.add_input("data", data)
    run.note("tokenizer", str(resolve_model_dir(model)))
    result = inspect_signals(lm, samples, run, SignalsConfig(batch_size), cache=open_cache(cache_dir, no_cache), progress=not quiet)
    finish(run, result, as_json=json_out, quiet=quiet)


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="A run folder.")]):
    """Rebuild a run folder's report.html."""
    from rotelab.report import build_report

    typer.echo(build_report(run_dir))


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Demo folder; re-running resumes.")] = Path("runs/demo"),
    preset: Annotated[str, typer.Option(help="Testbed preset (small: the demo; tiny: a one-minute smoke run).")] = "small",
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """End-to-end demo: build the testbed, score it, unlearn, and write one report."""
    from rotelab.demo import run_demo
    from rotelab.testbed.presets import get_preset

    get_preset(preset)
    result = run_demo(out, preset=preset, seed=seed, progress=not quiet)
    from rotelab.core.runs import RunFolder

    finish(RunFolder(out, command="demo", options={"preset": preset}, seed=seed), result, as_json=json_out, quiet=quiet)


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
