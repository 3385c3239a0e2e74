"""Reference (Carlini et al. 2021): NLL_ref(x) - NLL_theta(x); one signal pass of a reference
model that shares the target's tokenizer (``--reference``; a testbed ships one in ``reference/``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rotelab.membership.attacks import register_attack

if TYPE_CHECKING:
    from rotelab.membership.context import AttackContext


def reference_score(nll: float, nll_ref: float) -> float:
    """Reference (Carlini et al. 2021): NLL_ref(x) - NLL_theta(x)."""
    return nll_ref - nll


@register_attack("reference", requires=("reference",), order=60)
def reference(ctx: "AttackContext") -> np.ndarray:
    """NLL under a reference model minus NLL under the target; one pass of the reference."""
    from rotelab.membership.context import check_same_tokenizer

    ref = ctx.resource("reference")
    check_same_tokenizer(ctx.lm, ref, ctx.texts, "--reference")
    sig = ctx.signals_of(ctx.texts, "reference", lm=ref)
    return np.array([reference_score(s.nll, r.nll) for s, r in zip(ctx.signals, sig)])
