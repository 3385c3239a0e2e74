"""The demo's extraction step: sliding extraction along *Alice* on the demo testbed's model."""

from __future__ import annotations

from pathlib import Path
from rotelab.core.runs import RunFolder
from rotelab.demo import register_step

DEMO_BOOK = "alice29"
DEMO_MAX_WINDOWS = 600  # ~1 minute on 2 cores for the small preset (0.9M parameters, ctx 128)


@register_step("extract-book", title="Book extraction (Alice, sliding)", order=60)
def demo_step(testbed: Path, out: Path, progress: bool) -> None:
    """Write an ``extract book`` run into ``out``: paper defaults fitted to the testbed's context
    (recorded in the manifest), first ``DEMO_MAX_WINDOWS`` windows of the trimmed book."""
    from rotelab.core.models import load_model
    from rotelab.extraction.book import BookConfig
    from rotelab.extraction.workflows import extract_book
    from rotelab.report import build_report
    from rotelab.testbed.corpora import load_book

    cfg = BookConfig(max_windows=DEMO_MAX_WINDOWS)
    run = RunFolder(out, command="extract book", options={"model": testbed, "book": DEMO_BOOK, **cfg.__dict__}, seed=0)
    extract_book(load_model(testbed), load_book(DEMO_BOOK), cfg, run, name=DEMO_BOOK, seed=0, progress=progress)
    build_report(out)
