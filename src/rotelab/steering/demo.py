"""The demo's steering step: probe + a reduced steering eval on the demo testbed (< 90 s on the small one)."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

from rotelab.core.demo_steps import register_step
from rotelab.errors import RotelabError


@register_step("steering", title="Dynamic Mode Steering (probe + steering)", order=80)
def demo_step(testbed: Path, out: Path, progress: bool) -> None:
    """Write a ``steer demo`` run into ``out``: the probe (diversity labels, K=4) and the eval with
    two static, two dynamic and one gated strength, on fewer held-out texts. A testbed whose model
    recites too little for diversity labels (the ``tiny`` preset) falls back to source labels (noted)."""
    from rotelab.core.models import load_model
    from rotelab.core.runs import open_run
    from rotelab.report import build_report
    from rotelab.steering.evaluate import EvalConfig, run_eval
    from rotelab.steering.probe import Probe
    from rotelab.steering.workflows import ProbeConfig, eval_sets, prompt_set, run_probe, testbed_inputs
    from rotelab.testbed.folder import Testbed

    tb = Testbed.find(testbed)
    lm = load_model(tb.model)
    n = min(32, (lm.max_length - 1) // 2)  # prefix and suffix of 32 tokens, fitted to small contexts
    pcfg = ProbeConfig(k=4, max_per_group=60, prefix=n, suffix=n, displacements=(-1.0, -0.5, 0.0, 0.5))
    ecfg = EvalConfig(static_alphas=(1.0, 2.0), dynamic_alphas=(2.0, 4.0), gated_alphas=(2.0,), max_ce_texts=100, max_paraphrases=100)
    prompts = prompt_set(lm, pcfg, testbed=tb, seed=0)
    options = {"testbed": str(tb.root), "probe": asdict(pcfg), "eval": asdict(ecfg)}
    with open_run(out, "steer demo", options, seed=0, inputs=testbed_inputs(tb), models={"model": lm}) as run:

        def probe():
            try:
                return run_probe(lm, run, pcfg, prompts, seed=0, progress=progress)
            except RotelabError as e:
                run.note("probe_labels", f"diversity labels unusable ({e}); the probe uses source labels", say="diversity labels unusable on this testbed; using source labels")
                return run_probe(lm, run, replace(pcfg, labels="source"), prompts, seed=0, progress=progress)

        run.step("probe", probe)
        run.step("eval", lambda: run_eval(lm, Probe.load(out), run, ecfg, **eval_sets(lm, out, testbed=tb), progress=progress))
        build_report(out)
