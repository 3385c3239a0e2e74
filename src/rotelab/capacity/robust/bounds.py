"""Parameter-count bounds for rho-robust memorization (Kim, Moon, Yun, NeurIPS 2025).

Lower bound (Thm 3.1, as the research note's secondary source states it; constants unknown):
some D in D_{d,N,2} forces

.. math:: P = \\Omega\\big((\\rho^2 \\min\\{N, d\\} + 1)\\, d + \\min\\{1/\\sqrt{1-\\rho^2}, \\sqrt d\\}\\, \\sqrt N\\big)

Upper bounds: O~(sqrt N) for small rho (as non-robust, Vardi et al. 2021), growing with rho up
to O~(N d^2). The regime boundaries are NOT verified against the paper's text.
"""

from __future__ import annotations

import math
from typing import Any


def lower_bound_terms(n: int, d: int, rho: float) -> dict[str, float]:
    """The two terms of Thm 3.1 without constants, and their sum.

    >>> lower_bound_terms(100, 4, 0.0)["total"]
    14.0
    """
    width_term = (rho**2 * min(n, d) + 1) * d
    vc_term = min(1 / math.sqrt(1 - rho**2), math.sqrt(d)) * math.sqrt(n)
    return {"width_term": width_term, "vc_term": vc_term, "total": width_term + vc_term}


def bounds_summary(n: int, d: int, rho: float) -> dict[str, Any]:
    """What ``rotelab capacity bounds`` prints: the lower bound and the upper-bound regime."""
    lb = lower_bound_terms(n, d, rho)
    small = 1 / (math.sqrt(d) * n)  # guess from the note: rho <~ 1/(sqrt(d) poly N)
    large = 1 / math.sqrt(d)  # guess from the note: rho >~ 1/sqrt(d)
    if rho <= small:
        regime, upper = "small rho: O~(sqrt N), as non-robust memorization", math.sqrt(n)
    elif rho >= large:
        regime, upper = "large rho: up to O~(N d^2)", n * d**2
    else:
        regime, upper = "intermediate rho: between O~(sqrt N) and O~(N d^2); sub-linear-in-N constructions exist in parts", None
    return {
        "n": n, "d": d, "rho": rho,
        "lower_bound": lb["total"], "lower_bound_terms": {k: lb[k] for k in ("width_term", "vc_term")},
        "lower_bound_note": "Omega(.) of Thm 3.1; constants and log factors unknown",
        "upper_regime": regime, "upper_bound_order": upper,
        "upper_bound_order_reason": None if upper is not None else "no single order established in the research note",
        "unverified": f"regime boundaries rho <= 1/(sqrt(d) N) = {small:.3g} and rho >= 1/sqrt(d) = {large:.3g} are guesses "
                      "from a secondary summary, not checked against the paper; the bound formula is from the same summary",
    }
