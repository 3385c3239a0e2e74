"""The demo-step registry: each capability files its step of ``rotelab demo`` in its own
``demo.py`` with :func:`register_step`; :mod:`rotelab.demo` runs them in order. The registry
lives in the core so that capabilities register without importing the demo (no package cycle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from rotelab.core.registry import Registry, discover

Step = Callable[[Path, Path, bool], None]  # (testbed, out, progress)
STEPS: Registry[Step] = Registry("demo step", discover=discover("demo"))


def register_step(name: str, *, title: str, order: int) -> Callable[[Step], Step]:
    """File a demo step under ``name`` (its sub-folder); ``order`` places it in the tour."""
    return STEPS.register(name, title=title, order=order)
