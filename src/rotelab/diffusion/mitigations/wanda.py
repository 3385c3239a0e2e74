"""Wanda-style pruning as a registered mitigation: per-prompt weight sets (the maths: :mod:`rotelab.diffusion.wanda`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ContextManager

from rotelab.diffusion.mitigate import register
from rotelab.diffusion.mitigations.pruning import PerPromptPruning

if TYPE_CHECKING:
    from torch import Tensor

    from rotelab.diffusion.model import DiffusionModel


@register("wanda", per_prompt=True, order=20, doc="Wanda-style pruning (after Chavhan et al. 2024): zero the FFN and cross-attention weights a prompt's activations single out.")
class Wanda(PerPromptPruning):
    """Per prompt, the smallest per-row sparsity of D_ij = |W_ij|·(‖X^mem_j‖ − ‖X^ref_j‖) that stops replication."""

    def reference(self, model: "DiffusionModel", control_ys: "Tensor") -> dict | None:
        from rotelab.diffusion import wanda

        return wanda.reference_norms(model, control_ys)

    def select_one(self, model: "DiffusionModel", y: "Tensor", cal: dict, **kw: Any) -> dict:
        from rotelab.diffusion import wanda

        return wanda.select_weights(model, y, self.ref_norms, cal["tau"], **kw)

    def apply_record(self, unet, record: dict) -> ContextManager:
        from rotelab.diffusion import wanda

        return wanda.pruned(unet, record["weights"])

    def merged(self) -> dict:
        from rotelab.diffusion import wanda

        return {"weights": wanda.merge([r["weights"] for r in self.per_item.values()])}

    def units(self, record: dict) -> dict:
        return record["weights"]

    def row(self, record: dict) -> dict:
        return {"sparsity": record["sparsity"], "weights": int(sum(len(v) for v in record["weights"].values()))}
