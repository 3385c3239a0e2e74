"""Demo steps: the membership suite on the testbed's base model, and REMIND on its unlearned model."""

from __future__ import annotations

from pathlib import Path

from rotelab.core.data import read_jsonl
from rotelab.core.demo_steps import register_step


@register_step("mia", title="Membership inference", order=30)
def mia_demo_step(testbed: Path, out: Path, progress: bool) -> None:
    """Every attack on 100 high-copy book members vs 100 non-member book passages of the testbed
    (its reference model and prefix pool found by the API)."""
    from rotelab.membership.api import mia
    from rotelab.membership.context import MIAConfig

    sp = testbed / "splits"
    mem = sorted((s for s in read_jsonl(sp / "members.jsonl") if s.meta.get("kind") == "book"), key=lambda s: -s.meta["copies"])[:100]
    non = [s for s in read_jsonl(sp / "nonmembers.jsonl") if s.meta.get("kind") == "book"][:100]
    mia(testbed, mem, non, attacks="all", out=out, config=MIAConfig(n_neighbours=8), progress=progress)


@register_step("remind", title="REMIND: residual memorization after unlearning", order=50)
def demo_step(testbed: Path, out: Path, progress: bool) -> None:
    """REMIND on the demo's gradient-difference model (``<demo>/unlearn-graddiff/model``), falling
    back to the testbed's own model when that step has not run; up to 100 facts per state, K = 4,
    50 paraphrases each of forgotten and holdout facts."""
    from rotelab.membership.remind.api import remind
    from rotelab.membership.remind.landscape import ProbeConfig
    from rotelab.membership.remind.suite import RemindConfig

    sp = testbed / "splits"
    unlearned = testbed.parent / "unlearn-graddiff" / "model"
    model = unlearned if (unlearned / "config.json").exists() else testbed
    retain = [s for s in read_jsonl(sp / "retain.jsonl") if s.meta.get("kind") == "fact"][:100]
    para = read_jsonl(sp / "paraphrases.jsonl")
    paraphrases = [s for s in para if s.meta.get("split") == "forget"][:50] + [s for s in para if s.meta.get("split") == "holdout"][:50]
    remind(model, retain, read_jsonl(sp / "forget.jsonl")[:100], read_jsonl(sp / "holdout.jsonl")[:100], paraphrases=paraphrases,
           out=out, config=RemindConfig(probe=ProbeConfig(k=4)), progress=progress)
