"""The demo's clinical step: a tiny synthetic MEDS cohort, a micro EHR model, and a quick audit."""

from __future__ import annotations

from pathlib import Path

from rotelab.core.demo_steps import register_step


@register_step("clinical", title="EHR foundation model audit (T1-T6, synthetic MEDS)", order=90)
def demo_step(testbed: Path, out: Path, progress: bool) -> None:
    """``clinical synth`` (tiny) and ``clinical train`` (tiny) in sub-folders of ``out``, then ``clinical audit`` into ``out``.

    The audit is shortened (16 continuations of 16 tokens, rungs up to 20 codes, the small probe
    grid) so that the step takes well under a minute on 2 cores; the text testbed is not used.
    """
    from rotelab.clinical.api import audit, synth, train
    from rotelab.clinical.config import AuditConfig, synth_preset, train_preset

    data = synth(out=out / "cohort", config=synth_preset("tiny"), progress=progress)["data"]
    model = train(data, out=out / "ehr-model", config=train_preset("tiny"), progress=progress)["model"]
    cfg = AuditConfig(rungs=("random", "static", "10", "20"), n_samples=16, new_tokens=16, n_perturb=8, probe_grid="small", probe_fractions=(0.5,), embeddings="model")
    audit(model, data, out=out, config=cfg, progress=progress)
