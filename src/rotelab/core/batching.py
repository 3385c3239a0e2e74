"""Length-sorted batching: the one loop that feeds variable-length items to a model.

Sorting by length (longest first, so a memory error shows up in the first batch) cuts padding;
results come back in input order.

>>> length_sorted_batches([3, 1, 2, 5], 2)
[[3, 0], [2, 1]]
>>> map_sorted(lambda xs: [len(x) for x in xs], ["aaa", "b", "cc"], batch_size=2)
[3, 1, 2]
"""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

X = TypeVar("X")
Y = TypeVar("Y")


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Index batches of at most ``batch_size``, longest items first (ties keep input order)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[b : b + batch_size] for b in range(0, len(order), batch_size)]


def map_sorted(
    fn: Callable[[list[X]], Sequence[Y]],
    items: Sequence[X],
    *,
    batch_size: int,
    length: Callable[[X], int] = len,
    progress: bool = False,
    label: str = "batches",
) -> list[Y]:
    """``fn`` over length-sorted batches of ``items``; one output per item, in input order."""
    from rotelab.core.console import progress as bar_

    out: list[Y | None] = [None] * len(items)
    with bar_(disable=not progress) as bar:
        task = bar.add_task(label, total=len(items))
        for idx in length_sorted_batches([length(x) for x in items], batch_size):
            for i, y in zip(idx, fn([items[i] for i in idx])):
                out[i] = y
            bar.advance(task, len(idx))
    return out  # type: ignore[return-value]
