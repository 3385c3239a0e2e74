"""NeMo as a registered mitigation: per-prompt value-neuron selections (the maths: :mod:`rotelab.diffusion.nemo`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ContextManager

from rotelab.diffusion.mitigate import register
from rotelab.diffusion.mitigations.pruning import PerPromptPruning

if TYPE_CHECKING:
    from torch import Tensor

    from rotelab.diffusion.model import DiffusionModel


@register("nemo", per_prompt=True, order=10, doc="NeMo (Hintersdorf et al. 2024): switch off the cross-attention value neurons a prompt over-activates.")
class NeMo(PerPromptPruning):
    """Per prompt, the ``attn2.to_v`` output channels whose deactivation stops replication."""

    def select_one(self, model: "DiffusionModel", y: "Tensor", cal: dict, **kw: Any) -> dict:
        from rotelab.diffusion import nemo

        return nemo.select_neurons(model, y, cal["stats"], cal["tau"], **kw)

    def apply_record(self, unet, record: dict) -> ContextManager:
        from rotelab.diffusion import nemo

        return nemo.deactivated(unet, record["selection"])

    def merged(self) -> dict:
        from rotelab.diffusion import nemo

        return {"selection": nemo.merge([r["selection"] for r in self.per_item.values()])}

    def units(self, record: dict) -> dict:
        return record["selection"]

    def row(self, record: dict) -> dict:
        sel = record["selection"]
        return {"theta": record["theta"], "neurons": sum(len(v) for v in sel.values()), "layers": sum(bool(v) for v in sel.values())}

    def diagnostics(self, model: "DiffusionModel", items: list[dict], ys: "Tensor") -> dict | None:
        """Also NeMo vs Wanda on the same value neurons: Wanda's score with NeMo's count per layer."""
        from rotelab.diffusion import locality
        from rotelab.diffusion.mitigate import controls_for_calibration

        out = super().diagnostics(model, items, ys)
        sets = self.unit_sets()
        ctrl = controls_for_calibration(items, model.embed([it["text"] for it in items]))
        cross = {}
        mem = [it for it in items if it["label"] == 1 and "image" in it]
        for it, y in zip(mem, ys):
            s = sets[it["id"]]
            if any(s.values()):
                wv = locality.wanda_value_neurons(model, y, ctrl, {n: len(v) for n, v in s.items()})
                cross[it["id"]] = locality.iou({(n, k) for n, v in s.items() for k in v}, {(n, k) for n, v in wv.items() for k in v})
        out["nemo_vs_wanda_value_neurons"] = cross
        return out
