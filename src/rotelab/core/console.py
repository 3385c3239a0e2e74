"""The one console: progress bars, notes and warnings go to stderr, so stdout carries only results
(``--json`` prints exactly one JSON document there).

rich's ``track()`` and a bare ``Progress()`` write to *stdout* when it is not a terminal; every
bar in rotelab comes from :func:`progress` instead.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Iterable, Iterator, TypeVar

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

T = TypeVar("T")


@lru_cache(maxsize=1)
def console() -> "Console":
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)  # a note stays one line when stderr is a file or a pipe


def progress(*columns, disable: bool = False, transient: bool = True) -> "Progress":
    """A rich ``Progress`` on stderr (``columns`` as rich's; default columns when empty).

    Off when stderr is not a terminal (a log file, CI): a bar that cannot redraw itself would
    leave a blank line per bar there.
    """
    from rich.progress import Progress

    return Progress(*columns, console=console(), disable=disable or not console().is_terminal, transient=transient)


def track(items: Iterable[T], description: str, *, total: int | None = None, disable: bool = False) -> Iterator[T]:
    """``rich.progress.track`` on stderr."""
    with progress(disable=disable) as bar:
        yield from bar.track(items, total=total, description=description)


def say(message: str, *, style: str = "yellow", prefix: str = "note") -> None:
    """One line for the user on stderr, e.g. a note the manifest also records."""
    console().print(f"[{style}]{prefix}:[/] {message}", highlight=False)
