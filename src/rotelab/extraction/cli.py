"""``rotelab extract book|samples`` and ``rotelab weightdiff``: parse, validate, call the API, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rotelab.cli_common import (
    COMMANDS, group,
    BatchOpt, DeviceOpt, DtypeOpt, JsonOpt, ModelOpt, OutOpt, PickleOpt, QuietOpt, RemoteCodeOpt, SeedOpt,
    finish, open_model, open_run,
)
from rotelab.errors import RotelabError
from rotelab.extraction.books_cli import books_experiment

extract_app = group("extract", help="Verbatim extraction by prefix prompting (books, training samples).")

PrefixOpt = Annotated[int, typer.Option("--prefix-tokens", help="Prompt length in tokens (after any BOS).")]
SuffixOpt = Annotated[int, typer.Option("--suffix-tokens", help="Greedy tokens compared with the true continuation.")]


@extract_app.command()
def book(
    model: ModelOpt,
    book_file: Annotated[Path, typer.Option("--book", "-b", help="Plain-text book (UTF-8).")],
    prefix_tokens: PrefixOpt = 500,
    suffix_tokens: SuffixOpt = 30,
    stride: Annotated[Optional[int], typer.Option("--stride", help="Sliding mode: tokens between windows (default: --suffix-tokens).")] = None,
    trim_start: Annotated[int, typer.Option("--trim-start", help="Tokens dropped at the start (front matter).")] = 2000,
    trim_end: Annotated[int, typer.Option("--trim-end", help="Tokens dropped at the end (licence).")] = 5000,
    mode: Annotated[str, typer.Option("--mode", help="sliding (true prefix each window) | autoregressive (own output fed back).")] = "sliding",
    max_windows: Annotated[Optional[int], typer.Option("--max-windows", help="Stop after this many windows (default: the whole book).")] = None,
    out: OutOpt = None,
    batch_size: BatchOpt = 32,
    device: DeviceOpt = None,
    dtype: DtypeOpt = "float32",
    trust_remote_code: RemoteCodeOpt = False,
    allow_pickle: PickleOpt = False,
    seed: SeedOpt = 0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Greedy prefix -> suffix windows along a book: similarity panel per window, per-book summary, plot."""
    from rotelab.core.data import read_book
    from rotelab.extraction.book import BookConfig, validate
    from rotelab.extraction.workflows import extract_book

    cfg = BookConfig(prefix_tokens, suffix_tokens, stride, trim_start, trim_end, mode, batch_size, max_windows)  # type: ignore[arg-type]
    validate(cfg)
    text = read_book(book_file)
    lm = open_model(model, device=device, dtype=dtype, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    run = open_run(out, "extract book", dict(model=model, book=book_file, **cfg.__dict__, dtype=dtype), seed=seed)
    run.add_input("book", book_file)
    result = extract_book(lm, text, cfg, run, name=book_file.stem, seed=seed, progress=not quiet)
    finish(run, result, as_json=json_out, quiet=quiet)


@extract_app.command()
def samples(
    model: ModelOpt,
    data: Annotated[Path, typer.Option("--data", "-d", help="JSONL with 'text' (optional 'id', 'copies').")],
    prefix_tokens: PrefixOpt = 32,
    suffix_tokens: SuffixOpt = 32,
    out: OutOpt = None,
    batch_size: BatchOpt = 32,
    device: DeviceOpt = None,
    dtype: DtypeOpt = "float32",
    trust_remote_code: RemoteCodeOpt = False,
    allow_pickle: PickleOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Per sample: k-extractability, exact memorization, extraction strength, regurgitation."""
    from rotelab.core.data import read_jsonl
    from rotelab.extraction.workflows import SamplesConfig, extract_samples

    for name, v in (("--prefix-tokens", prefix_tokens), ("--suffix-tokens", suffix_tokens), ("--batch-size", batch_size)):
        if v < 1:
            raise RotelabError(f"{name} must be >= 1; got {v}")
    rows = read_jsonl(data)
    lm = open_model(model, device=device, dtype=dtype, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    if prefix_tokens + suffix_tokens + 1 > lm.max_length:
        raise RotelabError(f"--prefix-tokens {prefix_tokens} + --suffix-tokens {suffix_tokens} exceed the model's context of {lm.max_length} tokens")
    cfg = SamplesConfig(prefix_tokens, suffix_tokens, batch_size)
    run = open_run(out, "extract samples", dict(model=model, data=data, **cfg.__dict__, dtype=dtype))
    run.add_input("data", data)
    result = extract_samples(lm, rows, cfg, run, progress=not quiet)
    finish(run, result, as_json=json_out, quiet=quiet)


def weightdiff(
    base: Annotated[Path, typer.Option("--base", help="Base model folder (or testbed folder).")],
    tuned: Annotated[Optional[Path], typer.Option("--tuned", help="Fine-tuned model folder, same architecture.")] = None,
    adapter: Annotated[Optional[Path], typer.Option("--adapter", help="PEFT LoRA adapter folder; dW = (alpha / r) B @ A.")] = None,
    out: OutOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Where a fine-tune changed the weights: |dW / W| by layer and module type, attention/MLP ratio, heatmap."""
    from rotelab.core.models import resolve_model_dir
    from rotelab.extraction.weightdiff import lora_deltas
    from rotelab.extraction.workflows import run_weightdiff

    if (tuned is None) == (adapter is None):
        raise RotelabError("give exactly one of --tuned (a full checkpoint) or --adapter (a PEFT LoRA folder)")
    resolve_model_dir(base)
    if tuned is not None:
        resolve_model_dir(tuned)
    else:
        lora_deltas(adapter)  # validates the adapter folder before a run folder exists
    run = open_run(out, "weightdiff", dict(base=base, tuned=tuned, adapter=adapter))
    result = run_weightdiff(base, run, tuned=tuned, adapter=adapter)
    finish(run, result, as_json=json_out, quiet=quiet)


extract_app.command("books-experiment")(books_experiment)
COMMANDS.register("weightdiff", weightdiff, order=40)
