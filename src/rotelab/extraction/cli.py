"""``rotelab extract book|samples|books-experiment`` and ``rotelab weightdiff``: parse, call
:mod:`rotelab.extraction.api` once, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rotelab.cli_common import COMMANDS, BatchOpt, ModelOpts, RunOpts, SeedOpt, bundled, command, emit_run, group

extract_app = group("extract", help="Verbatim extraction by prefix prompting (books, training samples).")

PrefixOpt = Annotated[int, typer.Option("--prefix-tokens", help="Prompt length in tokens (after any BOS).")]
SuffixOpt = Annotated[int, typer.Option("--suffix-tokens", help="Greedy tokens compared with the true continuation.")]


@command(extract_app, "book")
def book(
    book_file: Annotated[Path, typer.Option("--book", "-b", help="Plain-text book (UTF-8).")],
    model: ModelOpts,
    run: RunOpts,
    prefix_tokens: PrefixOpt = 500,
    suffix_tokens: SuffixOpt = 30,
    stride: Annotated[Optional[int], typer.Option("--stride", help="Sliding mode: tokens between windows (default: --suffix-tokens).")] = None,
    trim_start: Annotated[int, typer.Option("--trim-start", help="Tokens dropped at the start (front matter).")] = 2000,
    trim_end: Annotated[int, typer.Option("--trim-end", help="Tokens dropped at the end (licence).")] = 5000,
    mode: Annotated[str, typer.Option("--mode", help="sliding (true prefix each window) | autoregressive (own output fed back).")] = "sliding",
    max_windows: Annotated[Optional[int], typer.Option("--max-windows", help="Stop after this many windows (default: the whole book).")] = None,
    batch_size: BatchOpt = 32,
    seed: SeedOpt = 0,
):
    """Greedy prefix -> suffix windows along a book: similarity panel per window, per-book summary, plot.

    The book is always cut into windows that fit the context (--long-text does not apply).
    """
    from rotelab.extraction import api
    from rotelab.extraction.book import BookConfig

    cfg = BookConfig(prefix_tokens, suffix_tokens, stride, trim_start, trim_end, mode, batch_size, max_windows)  # type: ignore[arg-type]
    out = run.out_dir("extract book")
    emit_run(api.extract_book(model.path, book_file, out=out, config=cfg, seed=seed, load=model.load_options(), overwrite=run.overwrite, progress=run.progress), run, out)


@command(extract_app, "samples")
def samples(
    data: Annotated[Path, typer.Option("--data", "-d", help="JSONL with 'text' (optional 'id', 'copies').")],
    model: ModelOpts,
    run: RunOpts,
    prefix_tokens: PrefixOpt = 32,
    suffix_tokens: SuffixOpt = 32,
    batch_size: BatchOpt = 32,
):
    """Per sample: k-extractability, exact memorization, extraction strength, regurgitation."""
    from rotelab.extraction import api
    from rotelab.extraction.samples import SamplesConfig

    out = run.out_dir("extract samples")
    cfg = SamplesConfig(prefix_tokens, suffix_tokens, batch_size)
    emit_run(api.extract_samples(model.path, data, out=out, config=cfg, load=model.load_options(), overwrite=run.overwrite, progress=run.progress), run, out)


@command(extract_app, "books-experiment")
def books_experiment(
    run: RunOpts,
    testbed: Annotated[Optional[Path], typer.Option("--testbed", help="An existing books testbed (default: build one in OUT/testbed).")] = None,
    preset: Annotated[str, typer.Option("--preset", help="Books testbed built when --testbed is not given: books | books-micro (tests).")] = "books",
    seed: SeedOpt = 0,
):
    """Books experiment (Ma et al. 2025): duplication vs median Jaccard, autoregressive reconstruction,
    suppression by refusal fine-tuning and its undoing by a LoRA on other books, weight diff."""
    from rotelab.extraction import api

    out = run.out_dir("extract books-experiment")
    emit_run(api.books_experiment(testbed, preset=preset, out=out, seed=seed, overwrite=run.overwrite, progress=run.progress), run, out)


@bundled
def weightdiff(
    base: Annotated[Path, typer.Option("--base", help="Base model folder (or testbed folder).")],
    run: RunOpts,
    tuned: Annotated[Optional[Path], typer.Option("--tuned", help="Fine-tuned model folder, same architecture.")] = None,
    adapter: Annotated[Optional[Path], typer.Option("--adapter", help="PEFT LoRA adapter folder; dW = (alpha / r) B @ A.")] = None,
):
    """Where a fine-tune changed the weights: |dW / W| by layer and module type, attention/MLP ratio, heatmap."""
    from rotelab.extraction import api

    out = run.out_dir("weightdiff")
    emit_run(api.weightdiff(base, tuned=tuned, adapter=adapter, out=out, overwrite=run.overwrite), run, out)


COMMANDS.register("weightdiff", weightdiff, order=40)
