"""Access levels a backend offers and a method needs (DESIGN: narrow backend interface).

A local Hugging Face model offers every level. A model behind an inference server offers what its
conformance check found (:mod:`rotelab.core.server`): the log-probs of given tokens, the top-k
log-probs at each position, the full distribution (vLLM with ``--max-logprobs -1``), generation.
"""

from __future__ import annotations

import enum

from rotelab.errors import RotelabError


class Access(enum.IntEnum):
    """What a backend lets a method see.

    LOGPROBS: log p of each given token (an inference server's prompt log-probs).
    TOPK: the top-k log-probs at each position, besides the given token's (k the server's limit).
    DISTRIBUTION: the whole next-token distribution at each position (its moments: Min-K%++).
    GENERATION: greedy / sampled continuations.
    HIDDEN: hidden states (residual stream) and forward hooks.
    WEIGHTS: parameters and gradients (white-box).
    """

    LOGPROBS = 1
    TOPK = 2
    DISTRIBUTION = 3
    GENERATION = 4
    HIDDEN = 5
    WEIGHTS = 6


def require(offered: frozenset[Access], needed: Access, *, method: str, backend: str, remaining: str | None = None) -> None:
    """Refuse up front, in one line, a method that needs more access than the backend offers
    (``remaining``: what can still run on this backend, named in the message)."""
    if needed not in offered:
        have = ", ".join(a.name.lower() for a in sorted(offered)) or "nothing"
        tail = f"; with it you can still run: {remaining}" if remaining else ""
        raise RotelabError(
            f"{method} needs {needed.name.lower()} access, which the {backend} backend does not "
            f"offer (it offers: {have}){tail}"
        )
