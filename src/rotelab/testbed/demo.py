"""The demo's unlearning step: gradient difference on the testbed's forget set."""

from __future__ import annotations

from pathlib import Path

from rotelab.core.demo_steps import register_step


@register_step("unlearn-graddiff", title="Unlearning (gradient difference)", order=40)
def demo_step(testbed: Path, out: Path, progress: bool) -> None:
    from rotelab.testbed.api import unlearn

    unlearn(testbed, method="graddiff", out=out, progress=progress)
