"""GradNorm (Wang et al. 2024): members sit where the loss is flat in the parameters, so the
gradient of their loss is small. One backward pass per text; needs weight access."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rotelab.core.access import Access
from rotelab.membership.attacks import register_attack

if TYPE_CHECKING:
    from rotelab.core.models import LanguageModel
    from rotelab.membership.context import AttackContext


def grad_norm(lm: "LanguageModel", ids: np.ndarray) -> float:
    """Mean over parameter tensors of ||grad_theta NLL(x)||_2 for one token-id sequence."""
    import torch

    model = lm.model
    params = [p for p in model.parameters() if p.requires_grad]
    x = torch.as_tensor(ids, device=lm.device)[None]
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        loss = model(input_ids=x, labels=x).loss
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    return float(np.mean([g.norm(2).item() for g in grads if g is not None]))


@register_attack("gradnorm", needs=Access.WEIGHTS, order=90)
def gradnorm(ctx: "AttackContext") -> np.ndarray:
    """-mean over parameter tensors of ||grad NLL(x)||_2 (Wang et al. 2024); one backward pass per text."""
    lm = ctx.lm
    lm.require(Access.WEIGHTS, method="attack 'gradnorm'")
    seqs = [s.token_ids[: lm.max_length] for s in ctx.signals]
    norms = ctx.checkpointed("gradnorm", seqs, lambda batch: [np.array([grad_norm(lm, x)]) for x in batch])
    return -np.concatenate(norms)
