"""Demo steps: the membership suite on the testbed's base model, and REMIND on its unlearned model."""

from __future__ import annotations

from pathlib import Path

from rotelab.core.data import read_jsonl
from rotelab.core.runs import RunFolder
from rotelab.demo import register_step


@register_step("mia", title="Membership inference", order=30)
def mia_demo_step(testbed: Path, out: Path, progress: bool) -> None:
    """Every attack on 100 high-copy book members vs 100 non-member book passages of the testbed."""
    from rotelab.core.models import load_model
    from rotelab.membership.attacks import ATTACKS
    from rotelab.membership.context import MIAConfig
    from rotelab.membership.suite import run_mia

    sp = testbed / "splits"
    mem = sorted((s for s in read_jsonl(sp / "members.jsonl") if s.meta.get("kind") == "book"), key=lambda s: -s.meta["copies"])[:100]
    non = [s for s in read_jsonl(sp / "nonmembers.jsonl") if s.meta.get("kind") == "book"][:100]
    run = RunFolder(out, command="mia run", options={"model": testbed, "members": "members.jsonl (100 highest-copy books)", "nonmembers": "nonmembers.jsonl (100 books)"}, seed=0)
    if not run.is_done("mia"):
        run.step("mia", lambda: run_mia(load_model(testbed), mem, non, run, list(ATTACKS), config=MIAConfig(n_neighbours=8), reference=load_model(testbed / "reference"),
                                        prefix_texts=[s.text for s in read_jsonl(sp / "prefix_pool.jsonl")], progress=progress))


@register_step("remind", title="REMIND: residual memorization after unlearning", order=50)
def demo_step(testbed: Path, out: Path, progress: bool) -> None:
    """REMIND on the demo's gradient-difference model (``<demo>/unlearn-graddiff/model``), falling
    back to the testbed's own model when that step has not run; up to 100 facts per state, K = 4."""
    from rotelab.core.models import load_model
    from rotelab.membership.landscape import ProbeConfig
    from rotelab.membership.remind import RemindConfig, run_remind

    sp = testbed / "splits"
    unlearned = testbed.parent / "unlearn-graddiff" / "model"
    model = unlearned if (unlearned / "config.json").exists() else testbed
    sets = {
        "retained": [s for s in read_jsonl(sp / "retain.jsonl") if s.meta.get("kind") == "fact"][:100],
        "forgotten": read_jsonl(sp / "forget.jsonl")[:100],
        "holdout": read_jsonl(sp / "holdout.jsonl")[:100],
    }
    para = read_jsonl(sp / "paraphrases.jsonl")
    paraphrases = {"forgotten": [s for s in para if s.meta.get("split") == "forget"][:50], "holdout": [s for s in para if s.meta.get("split") == "holdout"][:50]}
    run = RunFolder(out, command="remind run", options={"model": model, "sets": "retain facts / forget / holdout, <= 100 each"}, seed=0)
    if not run.is_done("remind"):
        run.step("remind", lambda: run_remind(load_model(model), sets, run, config=RemindConfig(probe=ProbeConfig(k=4)), paraphrases=paraphrases, progress=progress))
