"""Lowercase (Carlini et al. 2021): NLL(lower(x)) / NLL(x); one extra signal pass."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rotelab.membership.attacks import register_attack

if TYPE_CHECKING:
    from rotelab.membership.context import AttackContext


def lowercase_score(nll: float, nll_lower: float) -> float:
    """Lowercase (Carlini et al. 2021): NLL(lower(x)) / NLL(x)."""
    return nll_lower / max(nll, 1e-8)


@register_attack("lowercase", order=50)
def lowercase(ctx: "AttackContext") -> np.ndarray:
    """NLL(lowercased x) / NLL(x); one extra pass."""
    low = ctx.signals_of([t.lower() for t in ctx.texts], "lowercase")
    return np.array([lowercase_score(s.nll, l.nll) for s, l in zip(ctx.signals, low)])
