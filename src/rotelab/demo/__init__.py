"""``rotelab demo``: the end-to-end tour on the ``small`` testbed, one step per capability.

Each step writes its own sub-run folder under the demo folder; the demo's report shows every
sub-run's sections in order. Re-running resumes: finished steps are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rotelab.core.runs import RunFolder


@dataclass(frozen=True)
class DemoStep:
    name: str  # sub-folder
    title: str
    run: Callable[[Path, Path, bool], None]  # (testbed, out, progress)


def _testbed(preset: str, seed: int) -> Callable[[Path, Path, bool], None]:
    def go(testbed: Path, out: Path, progress: bool) -> None:
        from rotelab.testbed.build import build_testbed
        from rotelab.testbed.presets import get_preset

        build_testbed(get_preset(preset), RunFolder(out, command="testbed build", options={"preset": preset}, seed=seed), seed=seed, progress=progress)

    return go


def _signals(testbed: Path, out: Path, progress: bool) -> None:
    from rotelab.core.cache import SignalCache
    from rotelab.core.data import read_jsonl
    from rotelab.core.inspect_signals import inspect_signals
    from rotelab.core.models import load_model

    run = RunFolder(out, command="signals", options={"model": testbed / "model", "data": testbed / "splits/members.jsonl"})
    run.note("tokenizer", str(testbed / "model"))
    samples = [s for s in read_jsonl(testbed / "splits" / "members.jsonl") if s.meta.get("kind") == "book"]
    samples = sorted(samples, key=lambda s: -s.meta["copies"])[:40] + samples[-40:]
    inspect_signals(load_model(testbed), samples, run, cache=SignalCache(), progress=progress)


def _unlearn(method: str) -> Callable[[Path, Path, bool], None]:
    def go(testbed: Path, out: Path, progress: bool) -> None:
        from rotelab.testbed.unlearn import UnlearnConfig, unlearn

        run = RunFolder(out, command="testbed unlearn", options={"testbed": testbed, "method": method}, seed=0)
        if not run.is_done("unlearn"):
            run.step("unlearn", lambda: unlearn(testbed, UnlearnConfig(method=method), run, progress=progress))

    return go


def _lazy(module: str, fn: str = "demo_step") -> Callable[[Path, Path, bool], None]:
    """A capability's own ``demo_step(testbed, out, progress)``, imported when the step runs."""

    def go(testbed: Path, out: Path, progress: bool) -> None:
        import importlib

        getattr(importlib.import_module(module), fn)(testbed, out, progress)

    return go


def steps(preset: str, seed: int) -> list[DemoStep]:
    """The demo's steps, in order. Each capability adds its own here."""
    return [
        DemoStep("testbed", "Testbed", _testbed(preset, seed)),
        DemoStep("signals", "Per-token signals", _signals),
        DemoStep("mia", "Membership inference", _lazy("rotelab.membership.demo", "mia_demo_step")),
        DemoStep("unlearn-graddiff", "Unlearning (gradient difference)", _unlearn("graddiff")),
        DemoStep("remind", "REMIND: residual memorization after unlearning", _lazy("rotelab.membership.demo")),
        DemoStep("extract-book", "Book extraction (Alice, sliding)", _lazy("rotelab.extraction.demo")),
        DemoStep("entropy", "Matrix-based entropy per layer", _lazy("rotelab.entropy.demo")),
        DemoStep("steering", "Dynamic Mode Steering (probe + steering)", _lazy("rotelab.steering.demo")),
    ]


def run_demo(out: Path, *, preset: str = "small", seed: int = 0, progress: bool = True) -> dict:
    from rich.console import Console

    console = Console(stderr=True)
    demo = RunFolder(out, command="demo", options={"preset": preset}, seed=seed)
    testbed = out / "testbed"
    plan = steps(preset, seed)
    demo.manifest["subruns"] = [{"name": s.name, "title": s.title} for s in plan]
    demo.save_manifest()
    for i, s in enumerate(plan, 1):
        if demo.is_done(s.name):
            console.print(f"[dim]{i}/{len(plan)} {s.title}: done earlier, skipped[/]")
            continue
        console.print(f"[bold]{i}/{len(plan)} {s.title}[/]")
        demo.step(s.name, lambda s=s: s.run(testbed, out / s.name, progress))
    from rotelab.core.runs import read_json

    return {"run": str(out), "testbed": read_json(testbed / "eval.json")["loss_auc_books_seen_ge4"]}
