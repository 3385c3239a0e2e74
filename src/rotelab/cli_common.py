"""What every command shares: option bundles defined once, the command-group registry, output.

Commands are thin: parse -> config -> one API call -> print. A command declares the bundles it
takes as parameters annotated with a bundle class; :func:`command` expands each bundle into its
options (one definition of each option, so every model command takes exactly the same model
options) and hands the function the filled bundle::

    @command(app, "run")
    def mia_run(members: ..., model: ModelOpts, run: RunOpts):
        result = api.mia(model.path, members, ..., load=model.load_options(), out=run.out_dir("mia run"))
        emit(result, run)

This module imports neither torch nor transformers: ``rotelab --help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import sys
import typing
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from rotelab.core.registry import Registry, discover

# -- option types used by more than one command --------------------------------------------------
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Texts per forward pass.")]


# -- bundles --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class OutputOpts:
    """What is printed: every command."""

    json_out: Annotated[bool, typer.Option("--json", help="Print exactly one JSON document (the result) on stdout; everything else goes to stderr.")] = False
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False

    @property
    def progress(self) -> bool:
        return not self.quiet


@dataclasses.dataclass(frozen=True)
class RunOpts(OutputOpts):
    """Where the run goes, and what is printed: every command that writes a run folder."""

    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run folder (default runs/<command>-<timestamp>); re-running into it resumes.")] = None
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Recompute when --out holds results of other inputs or options (default: refuse).")] = False

    def out_dir(self, command: str) -> Path:
        from rotelab.core.runs import default_out

        return self.out or default_out(command)


@dataclasses.dataclass(frozen=True)
class ModelOpts:
    """Which language model and how to open it: every command that loads one."""

    path: Annotated[Path, typer.Option("--model", "-m", help="Model folder (config + safetensors + tokenizer), or a testbed / unlearning folder (uses its model/).")]
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available).")] = None
    dtype: Annotated[str, typer.Option("--dtype", help="float32 | bfloat16 | float16.")] = "float32"
    long_text: Annotated[str, typer.Option("--long-text", help="Texts longer than the context: truncate | window | error.")] = "truncate"
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", help="Run the model folder's own Python code (off by default).")] = False
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle", help="Load pickle (*.bin) weights; they can run code on load.")] = False
    max_length: Annotated[Optional[int], typer.Option("--max-length", help="Context in tokens, for models whose config has none (recurrent models such as Mamba-2); default: the config's, else the tokenizer's.")] = None
    server: Annotated[Optional[str], typer.Option("--server", help="Score through an OpenAI-compatible inference server (vLLM) at this URL; --model then names only the served model's tokenizer folder. API key from $ROTELAB_API_KEY.")] = None
    server_model: Annotated[Optional[str], typer.Option("--server-model", help="The model name the server serves (with --server).")] = None
    server_moments: Annotated[str, typer.Option("--server-moments", help="With --server: none (log-probs only) | topk (Min-K%++ moments approximated from the top log-probs) | full (exact; the whole distribution per token: slow).")] = "none"
    server_concurrency: Annotated[int, typer.Option("--server-concurrency", help="With --server: requests in flight at once.")] = 8
    server_rate: Annotated[Optional[float], typer.Option("--server-rate", help="With --server: at most this many requests per second (default: no limit).")] = None
    server_timeout: Annotated[float, typer.Option("--server-timeout", help="With --server: seconds to wait for one answer (failures are retried with backoff).")] = 120.0
    workers: Annotated[int, typer.Option("--workers", help="Fan scoring out over this many Ray workers, each with its own copy of the model (0: in this process).")] = 0
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="With --workers: a Ray cluster's address (ray://host:10001 or auto); default: a local Ray.")] = None

    def load_options(self):
        from rotelab.core.models import LoadOptions
        from rotelab.core.server import ServerOptions

        server = None
        if self.server is not None or self.server_model is not None:
            server = ServerOptions(self.server or "", self.server_model or "", concurrency=self.server_concurrency, rate=self.server_rate, timeout=self.server_timeout)
        return LoadOptions(device=self.device, dtype=self.dtype, long_text=self.long_text, trust_remote_code=self.trust_remote_code, allow_pickle=self.allow_pickle,
                           max_length=self.max_length, server=server, server_moments=self.server_moments, workers=self.workers, ray_address=self.ray_address)


@dataclasses.dataclass(frozen=True)
class CacheOpts:
    """The per-token signal cache: every command that scores texts."""

    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Signal cache folder (default $ROTELAB_CACHE or the user cache folder).")] = None
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the signal cache.")] = False

    def open(self):
        from rotelab.core.cache import SignalCache

        return None if self.no_cache else SignalCache(self.cache_dir)


BUNDLES = (OutputOpts, RunOpts, ModelOpts, CacheOpts)


def _bundle_params(cls: type) -> list[inspect.Parameter]:
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for f in dataclasses.fields(cls):
        default = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        out.append(inspect.Parameter(f"{_prefix(cls)}{f.name}", inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hints[f.name]))
    return out


def _prefix(cls: type) -> str:
    return {OutputOpts: "", RunOpts: "", ModelOpts: "model_", CacheOpts: ""}[cls]


def bundled(fn: Callable) -> Callable:
    """Expand every parameter annotated with a bundle class into that bundle's options."""
    hints = typing.get_type_hints(fn, include_extras=True)
    sig = inspect.signature(fn)
    params: list[inspect.Parameter] = []
    expanded: dict[str, type] = {}
    for p in sig.parameters.values():
        ann = hints.get(p.name, p.annotation)
        if ann in BUNDLES:
            expanded[p.name] = ann
            params += _bundle_params(ann)
        else:
            params.append(p.replace(annotation=ann, kind=inspect.Parameter.KEYWORD_ONLY))
    names = [p.name for p in params]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise TypeError(f"{fn.__name__}: option names clash with a bundle's: {sorted(dup)}")
    params.sort(key=lambda p: p.default is not inspect.Parameter.empty)  # required first

    @functools.wraps(fn)
    def wrapper(**kwargs):
        for pname, cls in expanded.items():
            pre = _prefix(cls)
            kwargs[pname] = cls(**{f.name: kwargs.pop(f"{pre}{f.name}") for f in dataclasses.fields(cls)})
        return fn(**kwargs)

    del wrapper.__wrapped__  # typer must read the expanded signature, not the original
    wrapper.__signature__ = inspect.Signature(params)
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    wrapper.__rotelab_bundles__ = tuple(expanded.values())
    return wrapper


def command(app: typer.Typer, name: str | None = None, **kw: Any) -> Callable[[Callable], Callable]:
    """``app.command(name)`` for a function whose bundle parameters are expanded (:func:`bundled`)."""

    def deco(fn: Callable) -> Callable:
        return app.command(name, **kw)(bundled(fn))

    return deco


def group(name: str, help: str, *, order: int = 50) -> typer.Typer:
    """A capability's command group, registered under ``name`` (``rotelab NAME ...``)."""
    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, help=help)
    COMMANDS.register(name, app, order=order, help=help)
    return app


# -- output ---------------------------------------------------------------------------------------
def emit(result: Any, run: OutputOpts | None, *, out: Path | None = None, report: Path | None = None) -> None:
    """Print a command's result: one JSON document on stdout with ``--json``, else a readable
    summary and where the run folder and report are (nothing with ``--quiet``)."""
    from rotelab.core.io import dumps

    if run is not None and run.json_out:
        sys.stdout.write(dumps(result) + "\n")
        return
    if run is not None and run.quiet:
        return
    from rich.console import Console

    c = Console()
    c.print_json(json.dumps(json.loads(dumps(result))))
    if out is not None:
        c.print(f"[green]run folder:[/] {out}" + (f"   [green]report:[/] {report}" if report else ""))


def emit_run(result: Any, run: RunOpts, out: Path) -> None:
    """:func:`emit` for a command that wrote the run folder ``out`` (its report.html beside it)."""
    report = out / "report.html"
    emit(result, run, out=out, report=report if report.exists() else None)


# -- the command registry -------------------------------------------------------------------------
COMMANDS: Registry[Any] = Registry("command", discover=discover("cli"))
"""Command groups (a ``typer.Typer``) and single commands (a function), by name."""
