"""Access levels a backend offers and a method needs (DESIGN: narrow backend interface)."""

from __future__ import annotations

import enum

from rotelab.errors import RotelabError


class Access(enum.IntEnum):
    """What a backend lets a method see, from least to most.

    LOGPROBS: per-token log-probabilities of given texts (an inference server's prompt log-probs).
    GENERATION: greedy / sampled continuations.
    HIDDEN: hidden states (residual stream) and forward hooks.
    WEIGHTS: parameters and gradients (white-box).
    """

    LOGPROBS = 1
    GENERATION = 2
    HIDDEN = 3
    WEIGHTS = 4


def require(offered: frozenset[Access], needed: Access, *, method: str, backend: str) -> None:
    """Refuse up front, in one line, a method that needs more access than the backend offers."""
    if needed not in offered:
        have = ", ".join(a.name.lower() for a in sorted(offered)) or "nothing"
        raise RotelabError(
            f"{method} needs {needed.name.lower()} access, which the {backend} backend does not "
            f"offer (it offers: {have})"
        )
