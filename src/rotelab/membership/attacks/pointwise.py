"""Single-pass attacks: pure functions of one text's cached signals, no model call of their own.

Loss (Yeom et al. 2018), Zlib (Carlini et al. 2021), Min-K% (Shi et al. 2024), Min-K%++ (Zhang
et al. 2025). Scoring with all four costs the one shared signal pass.
"""

from __future__ import annotations

import zlib as zlib_lib
from typing import TYPE_CHECKING

import numpy as np

from rotelab.core.access import Access
from rotelab.core.signals import TokenSignals
from rotelab.membership.attacks import register_attack

if TYPE_CHECKING:
    from rotelab.membership.context import AttackContext


def loss_score(sig: TokenSignals) -> float:
    """Loss (Yeom et al. 2018): -NLL(x)."""
    return -sig.nll


def zlib_score(sig: TokenSignals, text: str) -> float:
    """Zlib (Carlini et al. 2021): -NLL(x) / Z(x), Z = bytes of zlib-compressed UTF-8 text."""
    return -sig.nll / len(zlib_lib.compress(text.encode("utf-8")))


def lowest_mean(values: np.ndarray, k: float) -> float:
    """Mean of the ``int(n * k)`` smallest of n values (floor), at least one.

    The count is the original Min-K% and Min-K%++ code's (``k_length = int(len(x) * ratio)``,
    swj0419/detect-pretrain-code, zjysteven/mink-plus-plus) and MIMIR's, with the same float
    product. Where that count is 0 (n * k < 1: n <= 4 at k = 0.2) the original code averages an
    empty slice and returns NaN; here the single smallest value is taken instead.

    >>> lowest_mean(np.array([3.0, 1.0, 2.0, 4.0, 5.0]), 0.5)  # int(2.5) = 2 lowest
    1.5
    >>> lowest_mean(np.array([3.0, 1.0, 2.0]), 0.2)  # int(0.6) = 0: at least one
    1.0
    """
    n = max(1, int(len(values) * k))
    return float(np.sort(values)[:n].mean())


def mink_score(sig: TokenSignals, *, k: float = 0.2) -> float:
    """Min-K% (Shi et al. 2024): mean of the int(n k) smallest l_t (at least one; see :func:`lowest_mean`)."""
    return lowest_mean(sig.logp.astype(np.float64), k)


def minkpp_score(sig: TokenSignals, *, k: float = 0.2) -> float:
    """Min-K%++ (Zhang et al. 2025): z_t = (l_t - mu_t) / sigma_t; mean of the int(n k) smallest z_t
    (at least one; see :func:`lowest_mean`). sigma_t^2 is clamped at 1e-6 (:mod:`rotelab.core.signals`),
    where the authors' code divides by the raw sqrt (inf or NaN for a one-hot next-token distribution)."""
    z = (sig.logp.astype(np.float64) - sig.mu) / sig.sigma
    return lowest_mean(z, k)


@register_attack("loss", single_pass=True, order=10)
def loss(ctx: "AttackContext") -> np.ndarray:
    """-NLL(x)."""
    return np.array([loss_score(s) for s in ctx.signals])


@register_attack("zlib", single_pass=True, order=20)
def zlib(ctx: "AttackContext") -> np.ndarray:
    """-NLL(x) / zlib bytes."""
    return np.array([zlib_score(s, t) for s, t in zip(ctx.signals, ctx.texts)])


@register_attack("mink", single_pass=True, order=30)
def mink(ctx: "AttackContext") -> np.ndarray:
    """Mean of the lowest k% token log-probs."""
    return np.array([mink_score(s, k=ctx.config.k) for s in ctx.signals])


@register_attack("minkpp", needs=Access.DISTRIBUTION, single_pass=True, order=40)
def minkpp(ctx: "AttackContext") -> np.ndarray:
    """Mean of the lowest k% standardised token log-probs."""
    return np.array([minkpp_score(s, k=ctx.config.k) for s in ctx.signals])
