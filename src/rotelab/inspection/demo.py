"""The demo's per-token signals step: the 40 most-copied and 40 last book members of the testbed."""

from __future__ import annotations

from pathlib import Path

from rotelab.core.demo_steps import register_step


@register_step("signals", title="Per-token signals", order=20)
def demo_step(testbed: Path, out: Path, progress: bool) -> None:
    from rotelab.core.cache import SignalCache
    from rotelab.core.data import read_jsonl
    from rotelab.inspection.api import inspect_signals
    from rotelab.core.models import load_model
    from rotelab.core.runs import RunFolder

    samples = [s for s in read_jsonl(testbed / "splits" / "members.jsonl") if s.meta.get("kind") == "book"]
    samples = sorted(samples, key=lambda s: -s.meta["copies"])[:40] + samples[-40:]
    with RunFolder(out, command="signals", options={"model": testbed / "model", "data": testbed / "splits/members.jsonl"}) as run:
        run.note("tokenizer", str(testbed / "model"))
        inspect_signals(load_model(testbed), samples, run, cache=SignalCache(), progress=progress)
