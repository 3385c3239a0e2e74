"""Con-ReCaLL (Wang et al. 2024, COLING 2025): contrast a non-member prefix with a member prefix.

    score(x) = (LL(x | P_nonmember) - gamma * LL(x | P_member)) / LL(x)

LL is the mean log-likelihood (negative) over the same tokens 2..n of x, as in ReCaLL
(:mod:`rotelab.membership.attacks.recall`, whose whole-shot prefixes and accounting it shares).
A non-member prefix costs a member likelihood (first ratio > 1); a member prefix helps it (second
ratio < 1): higher = more member-like, as the authors' ``(ll_nonmember - gamma * ll_member) / ll``.

P_member comes from a declared pool of known members (``--member-prefix-pool``; a testbed's
``splits/member_prefix_pool.jsonl``), which the API refuses if it shares a text or id with the
scored sets: the authors' code and a peer (fast-mia) draw these prefixes from the labelled
evaluation data itself, which leaks the labels. The authors' code reports every gamma in
{0.1, ..., 1.0} and the paper the best one per setting, which would tune on the evaluated labels;
rotelab fixes gamma = 0.5, the middle of that grid (``--conrecall-gamma``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rotelab.membership.attacks import register_attack
from rotelab.membership.attacks.recall import check_pools, prefixed_lls

if TYPE_CHECKING:
    from rotelab.membership.context import AttackContext


def conrecall_score(ll: float, ll_nonmember: float, ll_member: float, *, gamma: float = 0.5) -> float:
    """Con-ReCaLL (Wang et al. 2024): (LL(x | P_non) - gamma LL(x | P_mem)) / LL(x).

    >>> conrecall_score(-2.0, -3.0, -1.0, gamma=0.5)  # (-3 + 0.5) / -2
    1.25
    """
    return (ll_nonmember - gamma * ll_member) / min(ll, -1e-8)


POOLS = {"conrecall_nonmember": "prefix_pool", "conrecall_member": "member_prefix_pool"}


@register_attack("conrecall", requires=("prefix_pool", "member_prefix_pool"), order=85, check=lambda ctx: check_pools(ctx, list(POOLS.values())))
def conrecall(ctx: "AttackContext") -> np.ndarray:
    """(LL(x | non-member shots) - gamma LL(x | member shots)) / LL(x); two extra passes."""
    lls, ll = prefixed_lls(ctx, POOLS)
    g = ctx.config.conrecall_gamma
    return np.array([conrecall_score(a, b, c, gamma=g) for a, b, c in zip(ll, lls["conrecall_nonmember"], lls["conrecall_member"])])
