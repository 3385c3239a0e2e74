"""The demo step: per-layer MBE of the testbed model on members vs non-members."""

from __future__ import annotations

from pathlib import Path
from rotelab.core.runs import RunFolder
from rotelab.demo import register_step

N_PER_GROUP = 150  # ~300 texts: well under a minute on 2 cores for the small testbed


@register_step("entropy", title="Matrix-based entropy per layer", order=70)
def demo_step(testbed: Path, out: Path, progress: bool) -> None:
    """Write an ``entropy mbe`` run of ``testbed/model`` over book members and non-members into ``out``."""
    from dataclasses import replace

    from rotelab.core.data import read_jsonl
    from rotelab.core.models import load_model
    from rotelab.entropy.measure import MBEConfig, mbe_run

    split = testbed / "splits"
    members = [s for s in read_jsonl(split / "members.jsonl") if s.meta.get("kind", "book") == "book"][:N_PER_GROUP]
    nonmembers = read_jsonl(split / "nonmembers.jsonl")[:N_PER_GROUP]
    samples = [replace(s, meta={**s.meta, "label": "member"}) for s in members] + [replace(s, meta={**s.meta, "label": "non-member"}) for s in nonmembers]
    run = RunFolder(out, command="entropy mbe", options={"model": testbed / "model", "data": "testbed members + non-members", "n_per_group": N_PER_GROUP}, seed=0)
    mbe_run(load_model(testbed), samples, run, MBEConfig(), progress=progress)
