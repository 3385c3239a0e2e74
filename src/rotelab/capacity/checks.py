"""One-line checks of option values, shared by the capacity configs (standard library only).

Each raises :class:`RotelabError` naming the option (its command-line spelling) and the value.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from rotelab.errors import RotelabError


def _show(values: Sequence[float]) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def at_least(option: str, value: float, low: float) -> None:
    """``value >= low``.

    >>> at_least("--steps", 0, 1)
    Traceback (most recent call last):
    rotelab.errors.RotelabError: --steps must be >= 1; got 0
    """
    if not value >= low:
        raise RotelabError(f"{option} must be >= {low:g}; got {value!r}")


def each_at_least(option: str, values: Sequence[int], low: int) -> None:
    """A non-empty list whose values are all ``>= low``."""
    if not values or min(values) < low:
        raise RotelabError(f"{option} values must be >= {low}; got {_show(values)!r}")


def each_between(option: str, values: Sequence[float], low: float, high: float) -> None:
    """A non-empty list whose values all lie in the open interval (low, high)."""
    if not values or not all(low < v < high for v in values):
        raise RotelabError(f"{option} values must be in ({low:g}, {high:g}); got {_show(values)!r}")


def one_of(option: str, value: str, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise RotelabError(f"{option} must be one of {', '.join(allowed)}; got {value!r}")
