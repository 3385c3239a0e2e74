"""The books testbeds ``rotelab testbed build --preset NAME`` can build (``books``, ``books-micro``,
``books-long``), filed in :data:`rotelab.testbed.presets.TESTBEDS`; ``rotelab.testbed`` finds them
through the registry and never imports extraction.

A builder is ``build(run, *, seed, progress) -> dict``: it fills the run folder (resumable steps)
and returns the headline figures the command prints.
"""

from __future__ import annotations

from typing import Any

from rotelab.core.runs import RunFolder
from rotelab.extraction.books.testbed import SPECS, BooksSpec
from rotelab.testbed.presets import TESTBEDS, Builder


def _builder(spec: BooksSpec) -> Builder:
    def build(run: RunFolder, *, seed: int, progress: bool) -> dict[str, Any]:
        from rotelab.extraction.books.testbed import build_into

        return build_into(run, spec, seed=seed, progress=progress)

    copies = "/".join(str(c) for c in sorted({c for _, c in spec.plan}, reverse=True))
    m = spec.model
    build.__doc__ = (
        f"Book excerpts of {spec.excerpt_tokens} tokens at {copies} copies (0: held out): GPT-2 {m.n_layer} layers, "
        f"d={m.n_embd}, context {m.n_positions}; the books experiment's testbed."
    )
    return build


for _name, _spec in SPECS.items():
    TESTBEDS.register(_name, _builder(_spec))
