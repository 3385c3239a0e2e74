"""The demo's extraction step: sliding extraction along *Alice* on the demo testbed's model."""

from __future__ import annotations

from pathlib import Path

from rotelab.core.demo_steps import register_step

DEMO_BOOK = "alice29"
DEMO_MAX_WINDOWS = 600  # ~1 minute on 2 cores for the small preset (0.9M parameters, ctx 128)


@register_step("extract-book", title="Book extraction (Alice, sliding)", order=60)
def demo_step(testbed: Path, out: Path, progress: bool) -> None:
    """Write an ``extract book`` run into ``out``: paper defaults fitted to the testbed's context
    (recorded in the manifest), first ``DEMO_MAX_WINDOWS`` windows of the trimmed book."""
    from rotelab.extraction.api import extract_book
    from rotelab.extraction.book import Book, BookConfig
    from rotelab.testbed.corpora import load_book

    extract_book(testbed, Book(DEMO_BOOK, load_book(DEMO_BOOK)), out=out, config=BookConfig(max_windows=DEMO_MAX_WINDOWS), seed=0, progress=progress)
