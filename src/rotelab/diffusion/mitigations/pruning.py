"""Per-prompt pruning (NeMo, Wanda): what the two share.

For every memorized item (label 1) a selection of units is found that stops its prompt from
replicating its training image (:func:`rotelab.diffusion.nemo.check`); at inference that item's
selection is switched off while its prompt generates, as in NeMo. Calibration (NeMo's τ and
activation statistics) uses up to 16 non-memorized prompts. A subclass says how one prompt's
selection is found (:meth:`select_one`), applied (:meth:`apply_record`), merged across prompts,
and which units it holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ContextManager

from rotelab.diffusion.mitigate import Mitigation, check_calibration, controls_for_calibration

if TYPE_CHECKING:
    from torch import Tensor

    from rotelab.core.runs import RunFolder
    from rotelab.diffusion.model import DiffusionModel


class PerPromptPruning(Mitigation):
    """A selection per memorized prompt, applied while that prompt generates."""

    use_images = True  # an item's training image, when known, is the replication target of the check

    def __init__(self, config: Any = None):
        super().__init__(config)
        self.tau: float | None = None
        self.rep_threshold: float | None = None
        self.control_signals = None
        self.stats: dict = {}
        self.ref_norms: dict | None = None
        self.per_item: dict[str, dict] = {}

    # -- what a subclass says -----------------------------------------------------------------
    def reference(self, model: "DiffusionModel", control_ys: "Tensor") -> dict | None:
        """Extra calibration on the control prompts (Wanda's reference norms); None by default."""
        return None

    def select_one(self, model: "DiffusionModel", y: "Tensor", cal: dict, **kw: Any) -> dict:
        raise NotImplementedError

    def apply_record(self, unet, record: dict) -> ContextManager:
        raise NotImplementedError

    def merged(self) -> dict:
        """One record whose units are every item's (deploying all selections at once)."""
        raise NotImplementedError

    def units(self, record: dict) -> dict:
        """{layer: unit ids} of one record."""
        raise NotImplementedError

    def row(self, record: dict) -> dict:
        """Method-specific columns of one item's summary row."""
        return {}

    def check_items(self, items: list[dict], where: Path | None) -> None:
        check_calibration(items, where)

    # -- the shared search ------------------------------------------------------------------
    def select(self, model: "DiffusionModel", items: list[dict], *, run: "RunFolder", threshold: float = 0.7, progress: bool = True) -> None:
        from rotelab.core.console import progress as bar_
        from rotelab.diffusion import nemo
        from rotelab.diffusion.model import load_images

        seeds = nemo.SIGNAL_SEEDS
        ys = model.embed([it["text"] for it in items])
        ctrl = controls_for_calibration(items, ys)
        cal = nemo.calibrate(model, ctrl, seeds=seeds)
        self.ref_norms = self.reference(model, ctrl)
        self.tau, self.rep_threshold, self.control_signals, self.stats = cal["tau"], threshold, cal["control_signals"], cal["stats"]
        self.model_fingerprint = model.fingerprint
        mem = [(it, y) for it, y in zip(items, ys) if it["label"] == 1]
        with bar_(disable=not progress) as bar:
            task = bar.add_task(f"{self.name} selection", total=len(mem))
            for it, y in mem:
                target = load_images([it["image"]], model.image_size)[0] if self.use_images and it.get("image") else None
                self.per_item[it["id"]] = self.select_one(model, y, cal, seeds=seeds, target=target, rep_threshold=threshold)
                bar.advance(task)

    def apply(self, model: "DiffusionModel", item_id: str) -> ContextManager:
        import contextlib

        record = self.per_item.get(item_id)
        return contextlib.nullcontext() if record is None else self.apply_record(model.unet, record)

    def deploy(self, model: "DiffusionModel") -> ContextManager:
        return self.apply_record(model.unet, self.merged())

    def summary(self) -> dict:
        rows = []
        for iid, r in self.per_item.items():
            rows.append({"id": iid, "signal before": r["signal_before"], "signal after": r["signal_after"],
                         "share replicating before": r.get("replication_before"), "share replicating after": r.get("replication_after"),
                         "null floor": r.get("replication_floor"), "mitigated": bool(r["mitigated"]), **self.row(r)})
        return {"tau_signal": self.tau, "selection_mitigated": int(sum(bool(r["mitigated"]) for r in self.per_item.values())), "selection": rows}

    def unit_sets(self) -> dict[str, dict[str, set]]:
        from rotelab.diffusion import locality

        return {i: locality.as_sets(self.units(r)) for i, r in self.per_item.items()}

    def diagnostics(self, model: "DiffusionModel", items: list[dict], ys: "Tensor") -> dict | None:
        """IoU of the selections across prompts (pairs where a layer selected nothing are not counted)."""
        from rotelab.diffusion import locality

        return {"across_prompts": locality.pairwise_iou([v for v in self.unit_sets().values() if any(v.values())])}

    # -- storing ------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"tau": self.tau, "rep_threshold": self.rep_threshold, "control_signals": self.control_signals,
                "stats": {n: list(ms) for n, ms in self.stats.items()}, "ref_norms": self.ref_norms, "per_item": self.per_item}

    def restore(self, state: dict, folder: Path) -> None:
        self.tau, self.rep_threshold, self.control_signals = state["tau"], state["rep_threshold"], state["control_signals"]
        self.stats = {n: tuple(ms) for n, ms in state["stats"].items()}
        self.ref_norms, self.per_item = state["ref_norms"], state["per_item"]
