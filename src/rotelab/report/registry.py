"""The report-section registry: every capability registers its section in its own module.

A section is a function ``render(run: Path, manifest: dict) -> str | None`` returning an HTML
fragment, or None when the run holds nothing for it. Capabilities put it in
``rotelab/<capability>/report.py``, which the registry imports on first use, so no capability
edits a central template.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rotelab.core.registry import Registry, discover

Render = Callable[[Path, dict], "str | None"]


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    order: int
    render: Render


SECTIONS: Registry[Render] = Registry("report section", discover=discover("report"))


def register_section(name: str, *, title: str, order: int = 50) -> Callable[[Render], Render]:
    """Decorator filing ``render`` under ``name``; ``order`` sorts sections on the page."""
    return SECTIONS.register(name, title=title, order=order)


def sections() -> list[Section]:
    """Every registered section, in page order."""
    es = SECTIONS.entries()
    return sorted((Section(e.name, e.meta["title"], e.meta["order"], e.obj) for e in es), key=lambda s: (s.order, s.name))
