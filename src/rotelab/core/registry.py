"""One registry for everything rotelab lets you plug in: attacks, unlearning methods, diffusion
mitigations, report sections, demo steps and capability command groups.

A :class:`Registry` maps a name to an object and its metadata (``needs``, ``higher_is_better``,
``order``, ...). It refuses a name registered twice, answers an unknown name with "Did you mean"
and the list of names, and resolves ``all`` or a comma list. Registries whose entries live in
modules of their own take a ``discover`` callable, run once before the first lookup, that imports
those modules (so adding an entry never edits a central list).

>>> shapes = Registry("shape")
>>> @shapes.register("square", sides=4)
... def square(x): return x * x
>>> shapes["square"].obj(3), shapes["square"].meta["sides"]
(9, 4)
>>> shapes.resolve("all")
['square']
>>> shapes.get("squre")
Traceback (most recent call last):
...
rotelab.errors.RotelabError: unknown shape 'squre'. Did you mean: square? Available: square
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

from rotelab.errors import RotelabError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered object: its name, the object, its metadata and the first line of its doc."""

    name: str
    obj: T
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def doc(self) -> str:
        text = self.meta.get("doc") or getattr(self.obj, "__doc__", None) or ""
        return text.strip().splitlines()[0] if text.strip() else ""


class Registry(Generic[T]):
    """Name -> object, with metadata; the only list of its kind.

    Parameters
    ----------
    kind : what is registered, for messages ("attack", "unlearning method", ...).
    discover : called once before the first lookup; imports the modules that register entries.
    base : when given, registered objects must be subclasses (classes) or instances of it.
    """

    def __init__(self, kind: str, *, discover: Callable[[], None] | None = None, base: type | None = None):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._discover = discover
        self._discovered = discover is None
        self._base = base

    # -- registering ----------------------------------------------------------------------
    def register(self, name: str, obj: T | None = None, **meta: Any):
        """File ``obj`` under ``name``; without ``obj``, a decorator.

        Re-registering the same object (a module imported twice) is harmless; another object
        under a taken name is refused.
        """

        def add(o: T) -> T:
            if self._base is not None:
                ok = issubclass(o, self._base) if isinstance(o, type) else isinstance(o, self._base)
                if not ok:
                    raise TypeError(f"{self.kind} '{name}' must be a {self._base.__name__}; got {o!r}")
            old = self._entries.get(name)
            if old is not None and not _same(old.obj, o):
                raise ValueError(f"{self.kind} '{name}' is registered twice ({_where(old.obj)} and {_where(o)})")
            self._entries[name] = Entry(name, o, dict(meta))
            return o

        return add(obj) if obj is not None else add

    def unregister(self, name: str) -> None:
        """Remove an entry (tests that register a temporary plug-in clean up with this)."""
        self._entries.pop(name, None)

    # -- looking up -----------------------------------------------------------------------
    def _load(self) -> None:
        if not self._discovered:
            self._discovered = True
            self._discover()  # type: ignore[misc]

    def names(self) -> list[str]:
        self._load()
        return list(self._entries)

    def entries(self) -> list[Entry[T]]:
        self._load()
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def get(self, name: str, *, option: str | None = None) -> Entry[T]:
        """The entry under ``name``; an unknown name is one line with a suggestion."""
        self._load()
        if name in self._entries:
            return self._entries[name]
        close = difflib.get_close_matches(name, self._entries, n=1)
        hint = f" Did you mean: {close[0]}?" if close else ""
        where = f"{option}: " if option else ""
        raise RotelabError(f"{where}unknown {self.kind} '{name}'.{hint} Available: {', '.join(self._entries)}")

    __getitem__ = get

    def resolve(self, spec: str, *, option: str | None = None) -> list[str]:
        """``all`` or a comma list of names (order kept, duplicates dropped), each checked."""
        self._load()
        if spec.strip() == "all":
            return list(self._entries)
        names = [s.strip() for s in spec.split(",") if s.strip()]
        if not names:
            raise RotelabError(f"{option or self.kind} is empty; give 'all' or a comma list, e.g. {','.join(list(self._entries)[:2])}")
        for n in names:
            self.get(n, option=option)
        return list(dict.fromkeys(names))


def discover(module: str) -> Callable[[], None]:
    """A ``discover`` callable importing ``rotelab.<pkg>.<module>`` for every sub-package that has
    one (``report``, ``cli``, ``demo``, ...), then the installed plug-ins (entry-point group
    ``rotelab.plugins``): a capability registers its entries by having that module."""

    def run() -> None:
        import importlib
        import importlib.util
        import pkgutil
        from importlib.metadata import entry_points

        import rotelab

        for mod in pkgutil.iter_modules(rotelab.__path__):
            if mod.ispkg and importlib.util.find_spec(f"rotelab.{mod.name}.{module}") is not None:
                importlib.import_module(f"rotelab.{mod.name}.{module}")
        for ep in entry_points(group="rotelab.plugins"):
            ep.load()

    return run


def _same(a: Any, b: Any) -> bool:
    """The same object, or the same definition re-imported (same module and qualified name)."""
    if a is b:
        return True
    key = lambda o: (getattr(o, "__module__", None), getattr(o, "__qualname__", None))  # noqa: E731
    return key(a) == key(b) and key(a) != (None, None)


def _where(o: Any) -> str:
    return f"{getattr(o, '__module__', '?')}.{getattr(o, '__qualname__', type(o).__name__)}"
