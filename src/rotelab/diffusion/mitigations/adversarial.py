"""Adversarial fine-tuning as a registered mitigation (Finding Dori §5; the maths:
:mod:`rotelab.diffusion.adversarial`). It changes the weights, so it is not per prompt: the
fine-tuned pipeline is saved as ``model/`` in its run folder and is what gets evaluated (or passed
as ``--model`` to ``diffusion dori``)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rotelab.diffusion.adversarial import AdversarialConfig
from rotelab.diffusion.mitigate import Mitigation, check_calibration, load_mitigation, load_record, register
from rotelab.errors import RotelabError

if TYPE_CHECKING:
    from rotelab.core.runs import RunFolder
    from rotelab.diffusion.model import DiffusionModel

PRUNING = "pruning.safetensors"  # the NeMo selection behind the surrogates, kept for resume


@register("adversarial", per_prompt=False, reuses_pruning=True, order=30,
          doc="Adversarial fine-tuning: teach prompts and their DoRI triggers to produce a surrogate image (NeMo's).")
class Adversarial(Mitigation):
    """Fine-tune the UNet so that each memorized prompt and its nearby triggers produce a surrogate.

    ``pruning``: a NeMo mitigation of the same model whose generations are the surrogates; found
    here (resumable step ``prune``) when not given.
    """

    Config = AdversarialConfig

    def __init__(self, config: Any = None, *, pruning: Mitigation | None = None):
        super().__init__(config)
        self.pruning = pruning
        self.folder: Path | None = None
        self.history: dict = {}

    def check_config(self) -> None:
        c = self.config
        for name, v in (("--adv-steps", c.steps), ("AdversarialConfig.batch_size", c.batch_size), ("AdversarialConfig.refresh_every", c.refresh_every),
                        ("AdversarialConfig.dori_steps", c.dori_steps)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise RotelabError(f"{name} must be >= 1; got {v}")
        if not (c.lr > 0 and c.dori_lr > 0):
            raise RotelabError(f"AdversarialConfig: lr and dori_lr must be > 0; got {c.lr}, {c.dori_lr}")

    def check_items(self, items: list[dict], where: Path | None) -> None:
        if self.pruning is None:
            check_calibration(items, where)
        if not any(it["label"] == 0 and "image" in it and it.get("split") != "unseen" for it in items):
            raise RotelabError(f"{where or 'data'}: adversarial fine-tuning needs ordinary training pairs (label 0, with an image, split not 'unseen')")

    def select(self, model: "DiffusionModel", items: list[dict], *, run: "RunFolder", threshold: float = 0.7, progress: bool = True) -> None:
        import copy

        from rotelab.core.console import progress as bar_
        from rotelab.diffusion import adversarial as adv
        from rotelab.diffusion.evaluate import item_tensors
        from rotelab.diffusion.mitigations.nemo import NeMo

        if self.pruning is None:
            def prune() -> None:
                p = NeMo()
                p.select(model, items, run=run, threshold=threshold, progress=progress)
                p.save(run.path, name=PRUNING)
            run.step("prune", prune)
            self.pruning = load_mitigation(run.path, name=PRUNING)
        self.model_fingerprint = model.fingerprint
        mem = [it for it in items if it["label"] == 1 and "image" in it]
        pix, x0, ys = item_tensors(model, mem)
        ctx = [lambda it=it: self.pruning.apply(model, it["id"]) for it in mem]
        ordinary = [it for it in items if it["label"] == 0 and "image" in it and it.get("split") != "unseen"]
        _, x_ord, y_ord = item_tensors(model, ordinary)
        x_sur, sur_sims = adv.surrogates(model, ys, ctx, seed=self.config.seed, targets=pix)
        tuned = copy.deepcopy(model)  # the caller's model stays as it was
        with bar_(disable=not progress) as bar:
            task = bar.add_task("adversarial fine-tuning", total=self.config.steps)
            h = adv.adversarial_finetune(tuned, x0, ys, x_sur, x_ord, y_ord, cfg=self.config, progress=lambda s: bar.update(task, completed=s))
        tuned.save(run.path / "model")
        self.folder = run.path
        self.history = {"surrogate_similarity": sur_sims.tolist(), **{k: v for k, v in h.items() if k != "y_adv"}}
        run.write_json("finetune.json", {"config": asdict(self.config), **self.history})

    def mitigated(self, model: "DiffusionModel") -> "DiffusionModel":
        from rotelab.diffusion.model import DiffusionModel

        return DiffusionModel.load(self.folder / "model")

    def summary(self) -> dict:
        return self.pruning.summary()

    def state(self) -> dict:
        return {"pruning": self.pruning.record(), "history": self.history}

    def restore(self, state: dict, folder: Path) -> None:
        self.pruning = load_record(state["pruning"], folder)
        self.history, self.folder = state["history"], folder
