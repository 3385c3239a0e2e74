"""The demo's biomed step: a tiny synthetic task (random vs derived identifiers), its base model,
a fine-tune and the eval, each a run folder under the step's folder."""

from __future__ import annotations

from pathlib import Path

from rotelab.core.demo_steps import register_step

# A micro scale that runs in seconds on one CPU thread (the planted-effect test's scale, fewer steps).
DEMO = dict(
    task=dict(n_per_bin=60, n_bins=2, val_share=0.25, directions="forward"),
    pretrain=dict(n_layer=1, n_embd=64, n_head=4, n_positions=48, epochs=1, max_mentions=4),
    finetune=dict(epochs=30, lr=3e-3, batch_size=32, warmup_steps=10),
)


@register_step("biomed", title="Term-to-identifier normalization (synthetic)", order=75)
def demo_step(testbed: Path, out: Path, progress: bool) -> None:
    from rotelab.biomed import api
    from rotelab.biomed.evaluate import EvalConfig
    from rotelab.biomed.finetune import FinetuneConfig
    from rotelab.biomed.pretrain import PretrainConfig
    from rotelab.biomed.task import TaskConfig

    out = Path(out)
    api.build_task("synthetic", out=out / "task", config=TaskConfig(**DEMO["task"]), progress=progress)
    api.pretrain(out / "task", out=out / "base", config=PretrainConfig(**DEMO["pretrain"]), progress=progress)
    api.finetune(out / "base", out / "task", out=out / "finetune", config=FinetuneConfig(**DEMO["finetune"]), progress=progress)
    api.evaluate(out / "finetune", out / "task", out=out, config=EvalConfig(k=3, encoder=False, attacks="loss,reference"), progress=progress)
