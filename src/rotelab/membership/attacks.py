"""Membership-inference attacks: one registry, one convention (higher = more member-like).

Notation: l_t = log p(x_t | x_<t), t = 2..T; NLL(x) = -mean_t l_t; mu_t, sigma_t the mean and
standard deviation of log p_t(v) under p_t (see :mod:`rotelab.core.signals`).

Single-pass attacks (``loss``, ``zlib``, ``mink``, ``minkpp``) are pure functions of one text's
cached :class:`TokenSignals`; scoring with all of them costs one forward pass. The others need
extra passes (``lowercase``, ``reference``, ``neighbourhood``, ``recall``) or gradients
(``gradnorm``) and are registered with the access they need.
"""

from __future__ import annotations

import difflib
import math
import zlib as zlib_lib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from rotelab.core.access import Access
from rotelab.core.signals import TokenSignals
from rotelab.errors import RotelabError

if TYPE_CHECKING:
    from rotelab.membership.context import AttackContext


# -- pure per-text formulas -------------------------------------------------------------------
def loss_score(sig: TokenSignals) -> float:
    """Loss (Yeom et al. 2018): -NLL(x)."""
    return -sig.nll


def zlib_score(sig: TokenSignals, text: str) -> float:
    """Zlib (Carlini et al. 2021): -NLL(x) / Z(x), Z = bytes of zlib-compressed UTF-8 text."""
    return -sig.nll / len(zlib_lib.compress(text.encode("utf-8")))


def lowest_mean(values: np.ndarray, k: float) -> float:
    """Mean of the ceil(k * n) smallest values.

    >>> lowest_mean(np.array([3.0, 1.0, 2.0, 4.0]), 0.5)
    1.5
    """
    n = max(1, math.ceil(k * len(values) - 1e-9))
    return float(np.sort(values)[:n].mean())


def mink_score(sig: TokenSignals, *, k: float = 0.2) -> float:
    """Min-K% (Shi et al. 2024): mean of the ceil(k n) smallest l_t."""
    return lowest_mean(sig.logp.astype(np.float64), k)


def minkpp_score(sig: TokenSignals, *, k: float = 0.2) -> float:
    """Min-K%++ (Zhang et al. 2025): z_t = (l_t - mu_t) / sigma_t; mean of the ceil(k n) smallest z_t."""
    z = (sig.logp.astype(np.float64) - sig.mu) / sig.sigma
    return lowest_mean(z, k)


def lowercase_score(nll: float, nll_lower: float) -> float:
    """Lowercase (Carlini et al. 2021): NLL(lower(x)) / NLL(x)."""
    return nll_lower / max(nll, 1e-8)


def reference_score(nll: float, nll_ref: float) -> float:
    """Reference (Carlini et al. 2021): NLL_ref(x) - NLL_theta(x)."""
    return nll_ref - nll


def neighbourhood_score(nll: float, nll_neighbours: np.ndarray) -> float:
    """Neighbourhood (Mattern et al. 2023): mean_k NLL(x~_k) - NLL(x)."""
    return float(np.mean(nll_neighbours)) - nll


def recall_score(ll: float, ll_prefixed: float) -> float:
    """ReCaLL (Xie et al. 2024): LL(x | P) / LL(x), LL = mean log-likelihood (negative), P = known
    non-member prefix. Members lose more likelihood under a non-member prefix: ratio > 1."""
    return ll_prefixed / min(ll, -1e-8)


# -- registry ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Attack:
    id: str
    needs: Access
    single_pass: bool
    run: Callable[["AttackContext"], np.ndarray]  # (N,) scores, higher = member
    doc: str


ATTACKS: dict[str, Attack] = {}


def register_attack(id: str, *, needs: Access = Access.LOGPROBS, single_pass: bool = False):
    """File ``fn(ctx) -> scores`` under ``id``; the registry is the only list of attacks."""

    def deco(fn: Callable[["AttackContext"], np.ndarray]):
        if id in ATTACKS:
            raise ValueError(f"attack '{id}' is registered twice")
        ATTACKS[id] = Attack(id, needs, single_pass, fn, (fn.__doc__ or "").strip().splitlines()[0])
        return fn

    return deco


def resolve_attacks(spec: str) -> list[str]:
    """``all`` or a comma list of ids; unknown ids are refused with a suggestion."""
    if spec.strip() == "all":
        return list(ATTACKS)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise RotelabError("--attacks is empty; give 'all' or a comma list, e.g. loss,zlib")
    for n in names:
        if n not in ATTACKS:
            close = difflib.get_close_matches(n, ATTACKS, n=1)
            hint = f" Did you mean: {close[0]}?" if close else ""
            raise RotelabError(f"--attacks: unknown attack '{n}'.{hint} Available: {', '.join(ATTACKS)}")
    return list(dict.fromkeys(names))


@register_attack("loss", single_pass=True)
def _loss(ctx: "AttackContext") -> np.ndarray:
    """-NLL(x)."""
    return np.array([loss_score(s) for s in ctx.signals])


@register_attack("zlib", single_pass=True)
def _zlib(ctx: "AttackContext") -> np.ndarray:
    """-NLL(x) / zlib bytes."""
    return np.array([zlib_score(s, t) for s, t in zip(ctx.signals, ctx.texts)])


@register_attack("mink", single_pass=True)
def _mink(ctx: "AttackContext") -> np.ndarray:
    """Mean of the lowest k% token log-probs."""
    return np.array([mink_score(s, k=ctx.config.k) for s in ctx.signals])


@register_attack("minkpp", single_pass=True)
def _minkpp(ctx: "AttackContext") -> np.ndarray:
    """Mean of the lowest k% standardised token log-probs."""
    return np.array([minkpp_score(s, k=ctx.config.k) for s in ctx.signals])


@register_attack("lowercase")
def _lowercase(ctx: "AttackContext") -> np.ndarray:
    """NLL(lowercased x) / NLL(x); one extra pass."""
    low = ctx.signals_of([t.lower() for t in ctx.texts], "lowercase")
    return np.array([lowercase_score(s.nll, l.nll) for s, l in zip(ctx.signals, low)])


@register_attack("reference")
def _reference(ctx: "AttackContext") -> np.ndarray:
    """NLL under a reference model minus NLL under the target; one pass of the reference."""
    ref = ctx.reference_signals()
    return np.array([reference_score(s.nll, r.nll) for s, r in zip(ctx.signals, ref)])


@register_attack("neighbourhood")
def _neighbourhood(ctx: "AttackContext") -> np.ndarray:
    """Mean NLL of K embedding-neighbour variants minus NLL(x); K extra passes."""
    nlls = ctx.neighbour_nlls()  # (N, K)
    return np.array([neighbourhood_score(s.nll, row) for s, row in zip(ctx.signals, nlls)])


@register_attack("recall")
def _recall(ctx: "AttackContext") -> np.ndarray:
    """LL(x | non-member prefix) / LL(x); one extra pass."""
    ll_p, ll = ctx.prefixed_ll()
    return np.array([recall_score(a, b) for a, b in zip(ll, ll_p)])


@register_attack("gradnorm", needs=Access.WEIGHTS)
def _gradnorm(ctx: "AttackContext") -> np.ndarray:
    """-mean over parameter tensors of ||grad NLL(x)||_2 (Wang et al. 2024); one backward pass per text."""
    return -ctx.grad_norms()
