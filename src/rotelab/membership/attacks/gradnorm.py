"""GradNorm (Wang et al. 2024): members sit where the loss is flat in the parameters, so the
gradient of their loss is small. One backward pass per text; needs weight access.

    score(x) = -(1 / |Theta|) sum_{theta in Theta} || d NLL(x) / d theta ||_p

NLL(x) is the mean token NLL over tokens 2..T (the model's own ``labels=`` loss, which equals
MIMIR's ``-mean(get_probabilities(...))`` for a text within the context); Theta is every parameter
tensor that receives a gradient, each counted once (tied embeddings once, as
``model.parameters()`` yields them). p = inf (the largest absolute entry) is MIMIR's default;
p = 2 was rotelab's only norm before, and the note lists p = 1 too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from rotelab.core.access import Access
from rotelab.membership.attacks import register_attack

if TYPE_CHECKING:
    import torch

    from rotelab.core.models import LanguageModel
    from rotelab.membership.context import AttackContext

NORMS = {"1": 1.0, "2": 2.0, "inf": float("inf")}  # --gradnorm-p: the accepted spellings


def mean_tensor_norm(grads: Sequence["torch.Tensor | None"], p: float) -> float:
    """Mean over tensors of ||g||_p (tensors without a gradient, None, are left out).

    >>> import torch
    >>> mean_tensor_norm([torch.tensor([3.0, -4.0]), None, torch.tensor([[1.0]])], 2.0)  # (5 + 1) / 2
    3.0
    >>> mean_tensor_norm([torch.tensor([3.0, -4.0]), torch.tensor([[1.0]])], float("inf"))  # (4 + 1) / 2
    2.5
    """
    return float(np.mean([g.detach().norm(p).item() for g in grads if g is not None]))


def grad_norm(lm: "LanguageModel", ids: np.ndarray, *, p: float = float("inf")) -> float:
    """Mean over parameter tensors of ||grad_theta NLL(x)||_p for one token-id sequence."""
    import torch

    model = lm.model
    params = [q for q in model.parameters() if q.requires_grad]
    x = torch.as_tensor(ids, device=lm.device)[None]  # (1, T)
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        loss = model(input_ids=x, labels=x).loss  # mean NLL of tokens 2..T
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    return mean_tensor_norm(grads, p)


@register_attack("gradnorm", needs=Access.WEIGHTS, order=90)
def gradnorm(ctx: "AttackContext") -> np.ndarray:
    """-mean over parameter tensors of ||grad NLL(x)||_p (Wang et al. 2024; p = --gradnorm-p, default inf as MIMIR); one backward pass per text."""
    lm = ctx.lm
    lm.require(Access.WEIGHTS, method="attack 'gradnorm'")
    p = ctx.config.gradnorm_p
    seqs = [s.token_ids[: lm.max_length] for s in ctx.signals]
    norms = ctx.checkpointed(f"gradnorm_p{p}", seqs, lambda batch: [np.array([grad_norm(lm, x, p=NORMS[p])]) for x in batch])
    ctx.record({"p": p})
    return -np.concatenate(norms)
