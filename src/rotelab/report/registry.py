"""The section registry: every capability registers its report section here, in its own module.

A section is a function ``render(run: Path, manifest: dict) -> str | None`` returning an HTML
fragment, or None when the run holds nothing for it. Capabilities put it in
``rotelab/<capability>/report.py``; :func:`load_all` imports those modules, so no capability
edits a central template.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

Render = Callable[[Path, dict], "str | None"]


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    order: int
    render: Render


_SECTIONS: dict[str, Section] = {}


def register_section(name: str, *, title: str, order: int = 50) -> Callable[[Render], Render]:
    """Decorator filing ``render`` under ``name``; ``order`` sorts sections on the page."""

    def deco(fn: Render) -> Render:
        if name in _SECTIONS and _SECTIONS[name].render is not fn:
            raise ValueError(f"report section '{name}' is registered twice")
        _SECTIONS[name] = Section(name, title, order, fn)
        return fn

    return deco


def load_all() -> None:
    """Import ``rotelab.<pkg>.report`` for every sub-package that has one."""
    import rotelab

    for mod in pkgutil.iter_modules(rotelab.__path__):
        if mod.ispkg and mod.name != "report":
            spec = importlib.util.find_spec(f"rotelab.{mod.name}.report")
            if spec is not None:
                importlib.import_module(f"rotelab.{mod.name}.report")


def sections() -> list[Section]:
    load_all()
    return sorted(_SECTIONS.values(), key=lambda s: (s.order, s.name))
