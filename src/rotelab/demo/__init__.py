"""``rotelab demo``: the end-to-end tour on the ``small`` testbed, one step per capability.

The demo first builds the testbed (``<out>/testbed``); then every registered step runs in its
``order``, each writing its own sub-run folder under the demo folder. A capability adds a step by
decorating a function ``step(testbed, out, progress)`` in its own ``demo.py`` with
:func:`rotelab.core.demo_steps.register_step`. The demo's report shows every sub-run's sections in order. Re-running
resumes: finished steps are skipped.
"""

from __future__ import annotations

from pathlib import Path

from rotelab.core.demo_steps import STEPS, Step
from rotelab.core.runs import RunFolder


def plan() -> list[tuple[str, str, Step]]:
    """(name, title, step) of every registered step, in order."""
    return [(e.name, e.meta["title"], e.obj) for e in sorted(STEPS.entries(), key=lambda e: (e.meta["order"], e.name))]


def _build_testbed(out: Path, preset: str, seed: int, progress: bool) -> None:
    from rotelab.testbed.build import build_testbed
    from rotelab.testbed.presets import get_preset

    with RunFolder(out, command="testbed build", options={"preset": preset}, seed=seed) as run:
        build_testbed(get_preset(preset), run, seed=seed, progress=progress)


def run_demo(out: Path, *, preset: str = "small", seed: int = 0, progress: bool = True) -> dict:
    from rotelab.core.console import console
    from rotelab.core.io import read_json
    from rotelab.report import build_report
    from rotelab.testbed.presets import get_preset

    get_preset(preset)  # a one-line error before anything is written
    out = Path(out)
    testbed = out / "testbed"
    steps = [("testbed", "Testbed", lambda tb, o, p: _build_testbed(o, preset, seed, p))] + plan()
    with RunFolder(out, command="demo", options={"preset": preset}, seed=seed) as demo:
        demo.manifest["subruns"] = [{"name": n, "title": t} for n, t, _ in steps]
        demo.save_manifest()
        for i, (name, title, fn) in enumerate(steps, 1):
            if demo.is_done(name):
                console().print(f"[dim]{i}/{len(steps)} {title}: done earlier, skipped[/]")
                continue
            console().print(f"[bold]{i}/{len(steps)} {title}[/]")
            demo.step(name, lambda fn=fn, name=name: fn(testbed, out / name, progress))
        build_report(out)
    return {"run": str(out), "testbed": read_json(testbed / "eval.json")["loss_auc_books_seen_ge4"]}
