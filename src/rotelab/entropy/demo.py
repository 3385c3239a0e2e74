"""The demo step: per-layer MBE of the testbed model on members vs non-members."""

from __future__ import annotations

from pathlib import Path

from rotelab.core.demo_steps import register_step

N_PER_GROUP = 150  # ~300 texts: well under a minute on 2 cores for the small testbed


@register_step("entropy", title="Matrix-based entropy per layer", order=70)
def demo_step(testbed: Path, out: Path, progress: bool) -> None:
    """Write an ``entropy mbe`` run of the testbed's model over book members and non-members into ``out``."""
    from dataclasses import replace

    from rotelab.core.data import read_jsonl
    from rotelab.entropy.api import mbe
    from rotelab.testbed.folder import Testbed

    tb = Testbed.find(testbed)
    members = [s for s in read_jsonl(tb.split("members")) if s.meta.get("kind", "book") == "book"][:N_PER_GROUP]
    nonmembers = read_jsonl(tb.split("nonmembers"))[:N_PER_GROUP]
    samples = [replace(s, meta={**s.meta, "label": "member"}) for s in members] + [replace(s, meta={**s.meta, "label": "non-member"}) for s in nonmembers]
    mbe(tb.model, samples, out=out, progress=progress)
