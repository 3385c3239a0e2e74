"""The fact/book testbeds ``rotelab testbed build --preset NAME`` can build: one builder per
preset in :data:`rotelab.testbed.presets.PRESETS`, filed in :data:`~rotelab.testbed.presets.TESTBEDS`.

A builder is ``build(run, *, seed, progress) -> dict``: it fills the run folder (resumable
steps) and returns the headline figures the command prints.
"""

from __future__ import annotations

from typing import Any

from rotelab.core.runs import RunFolder
from rotelab.testbed.presets import PRESETS, TESTBEDS, Builder, Preset


def headline(ev: dict[str, Any]) -> dict[str, Any]:
    """What ``rotelab testbed build`` prints of a fact/book testbed's ``eval.json``."""
    return {
        "loss_auc_books_seen_ge4": ev["loss_auc_books_seen_ge4"]["auc"],
        "loss_auc_books_seen_once": ev["loss_auc_books_seen_once"]["auc"],
        "loss_auc_facts": ev["loss_auc_facts"]["auc"],
        "extraction_rate_by_copies": {k: v["rate"] for k, v in ev["extraction_books_by_copies"].items()},
        "extraction_rate_seen_ge20": ev["extraction_books_seen_ge20"]["rate"],
        "canary_secret_extraction_by_copies": {k: v["rate"] for k, v in ev["canary_secret_extraction_by_copies"].items()},
    }


def _builder(preset: Preset) -> Builder:
    def build(run: RunFolder, *, seed: int, progress: bool) -> dict[str, Any]:
        from rotelab.testbed.build import build_testbed

        return headline(build_testbed(preset, run, seed=seed, progress=progress))

    m = preset.model
    build.__doc__ = (
        f"Facts and book passages: GPT-2 {m.n_layer} layers, d={m.n_embd}, context {m.n_positions}, vocabulary {m.vocab_size}; "
        f"{len(preset.books)} book(s), {preset.n_member_passages} member passages, {preset.n_people} people."
    )
    return build


for _name, _preset in PRESETS.items():
    TESTBEDS.register(_name, _builder(_preset))
