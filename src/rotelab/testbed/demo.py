"""The demo's unlearning step: gradient difference on the testbed's forget set."""

from __future__ import annotations

from pathlib import Path

from rotelab.demo import register_step


@register_step("unlearn-graddiff", title="Unlearning (gradient difference)", order=40)
def demo_step(testbed: Path, out: Path, progress: bool) -> None:
    from rotelab.core.runs import RunFolder
    from rotelab.testbed.unlearn import UnlearnConfig, unlearn

    with RunFolder(out, command="testbed unlearn", options={"testbed": testbed, "method": "graddiff"}, seed=0) as run:
        run.step("unlearn", lambda: unlearn(testbed, UnlearnConfig(method="graddiff"), run, progress=progress))
