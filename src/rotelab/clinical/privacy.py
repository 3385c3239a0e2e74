"""Privacy of the audit itself: small-cell suppression (the convention of clinical data releases).

A count between 1 and k - 1 is shown as the string ``"<k"``; a rate is shown only when its
denominator is at least k and neither its numerator nor its complement is a small cell; an AUC
only when both classes hold at least k patients. Applied to every table, plot and printed result;
the run folder's evidence files keep the per-patient values (that is where patient ids live).
"""

from __future__ import annotations

from typing import Any

from rotelab.core.stats import rate_ci


def small(n: int, k: int) -> bool:
    """Examples:

    >>> small(0, 20), small(7, 20), small(20, 20)
    (False, True, False)
    """
    return 0 < n < k


def count(n: int, k: int) -> int | str:
    """Examples:

    >>> count(3, 20), count(0, 20), count(25, 20)
    ('<20', 0, 25)
    """
    return f"<{k}" if small(int(n), k) else int(n)


def rate(hits: int, n: int, k: int) -> dict[str, Any]:
    """:func:`rotelab.core.stats.rate_ci`, or null with the reason when a cell is small.

    A small complement is suppressed too (``hits`` as ``">n-k"``): hits and n would give it away.

    >>> rate(5, 100, 20)["rate_reason"], rate(40, 100, 20)["rate"], rate(95, 100, 20)["hits"]
    ('small cell (< 20)', 0.4, '>80')
    """
    if n < k or small(hits, k) or small(n - hits, k):
        shown = f">{n - k}" if n >= k and small(n - hits, k) else count(hits, k)
        return {"rate": None, "rate_reason": f"small cell (< {k})" if n else "no patients", "ci": None, "hits": shown, "n": count(n, k)}
    return rate_ci(int(hits), int(n))


def auc_allowed(n_pos: int, n_neg: int, k: int) -> str | None:
    """None when an AUC may be shown, else why not."""
    if n_pos < k or n_neg < k:
        return f"small cell: {count(n_pos, k)} positive, {count(n_neg, k)} negative (< {k})"
    return None
