"""Membership-inference attacks: one registry, one convention (higher = more member-like).

Each module of this package holds one attack (or one family): its formula as a pure function, and
the scoring function registered with :func:`register_attack`, which declares what the attack needs
(access level, resources such as a reference model) and runs its own extra passes through the
generic services of :class:`~rotelab.membership.context.AttackContext`. The registry imports the
package's modules (and the ``rotelab.plugins`` entry points) on first lookup: adding an attack is
adding one module.

Notation: l_t = log p(x_t | x_<t), t = 2..T; NLL(x) = -mean_t l_t; mu_t, sigma_t the mean and
standard deviation of log p_t(v) under p_t (see :mod:`rotelab.core.signals`).

Single-pass attacks (``loss``, ``zlib``, ``mink``, ``minkpp``) are pure functions of one text's
cached :class:`~rotelab.core.signals.TokenSignals`; scoring with all of them costs one forward
pass. The others need extra passes, gradients or generations.

>>> ATTACKS["gradnorm"].needs.name, ATTACKS["loss"].single_pass, ATTACKS["recall"].requires
('WEIGHTS', True, ('prefix_pool',))
>>> ATTACKS["samia"].needs.name, ATTACKS["conrecall"].requires
('GENERATION', ('prefix_pool', 'member_prefix_pool'))
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from rotelab.core.access import Access
from rotelab.core.registry import Registry

if TYPE_CHECKING:
    from rotelab.membership.context import AttackContext

ScoreFn = Callable[["AttackContext"], np.ndarray]
CheckFn = Callable[["AttackContext"], None]


@dataclass(frozen=True)
class Attack:
    """A registered attack: its scoring function and what it declared."""

    name: str
    fn: ScoreFn
    needs: Access  # access level the backend must offer
    single_pass: bool  # a pure function of the cached signals: no model call of its own
    requires: tuple[str, ...]  # resources (:data:`rotelab.membership.context.RESOURCES`)
    doc: str
    check: CheckFn | None = None  # refuses, in one line, inputs it cannot score (before any pass)

    def run(self, ctx: "AttackContext") -> np.ndarray:
        """(N,) scores, higher = more member-like; what it records lands in ``ctx.details[name]``."""
        ctx.attack = self.name
        return np.asarray(self.fn(ctx), dtype=float)


class AttackRegistry(Registry[ScoreFn]):
    """The generic registry; ``ATTACKS[name]`` and ``values()`` give :class:`Attack` views."""

    def attack(self, name: str) -> Attack:
        e = self.get(name, option="--attacks")
        m = e.meta
        return Attack(e.name, e.obj, m["needs"], m["single_pass"], m["requires"], e.doc, m.get("check"))

    __getitem__ = attack

    def values(self) -> list[Attack]:
        return [self.attack(n) for n in self.names()]


def _discover() -> None:
    """Import every module of this package and the installed plug-ins, then order the entries
    by their declared ``order`` (cheap single-pass attacks first), whatever the import order."""
    import importlib
    import pkgutil
    from importlib.metadata import entry_points

    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")
    for ep in entry_points(group="rotelab.plugins"):
        ep.load()
    for e in sorted(ATTACKS.entries(), key=lambda e: e.meta["order"]):
        ATTACKS.unregister(e.name)
        ATTACKS.register(e.name, e.obj, **e.meta)


ATTACKS = AttackRegistry("attack", discover=_discover)
_NAME = re.compile(r"[a-z0-9][a-z0-9_+-]*")


def register_attack(
    name: str, *, needs: Access = Access.LOGPROBS, single_pass: bool = False, requires: tuple[str, ...] = (), order: int = 100, check: CheckFn | None = None
):
    """File ``fn(ctx) -> (N,) scores`` under ``name``: the decorator is the only list of attacks.

    ``requires`` names resources the API must supply before any pass (see
    :data:`rotelab.membership.context.RESOURCES`); ``order`` places the attack in ``all`` (lower
    first); ``check(ctx)`` runs once the models are loaded and before the run folder exists, on a
    context without signals, and raises a one-line :class:`~rotelab.errors.RotelabError` for
    inputs the attack cannot score.
    """
    from rotelab.membership.context import RESOURCES

    if not _NAME.fullmatch(name):
        raise ValueError(f"attack name '{name}': use lower-case letters, digits, '_', '+' or '-'")
    unknown = [r for r in requires if r not in RESOURCES]
    if unknown:
        raise ValueError(f"attack '{name}' requires unknown resource '{unknown[0]}'; known: {', '.join(RESOURCES)}")

    def deco(fn: ScoreFn) -> ScoreFn:
        doc = (fn.__doc__ or "").strip()
        if not doc:
            raise ValueError(f"attack '{name}' needs a docstring (its first line is its description)")
        return ATTACKS.register(name, fn, needs=needs, single_pass=single_pass, requires=tuple(requires), order=order, doc=doc.splitlines()[0], check=check)

    return deco


def resolve_attacks(spec: str) -> list[str]:
    """``all`` or a comma list of names; an unknown name is refused with a suggestion."""
    return ATTACKS.resolve(spec, option="--attacks")


# The formulas, importable from one place (REMIND's baselines use them too).
from rotelab.membership.attacks.pointwise import loss_score, lowest_mean, mink_score, minkpp_score, zlib_score  # noqa: E402
from rotelab.membership.attacks.lowercase import lowercase_score  # noqa: E402
from rotelab.membership.attacks.reference import reference_score  # noqa: E402
from rotelab.membership.attacks.neighbourhood import neighbourhood_score  # noqa: E402
from rotelab.membership.attacks.recall import recall_score  # noqa: E402

__all__ = [
    "ATTACKS", "Attack", "register_attack", "resolve_attacks",
    "loss_score", "zlib_score", "lowest_mean", "mink_score", "minkpp_score", "lowercase_score", "reference_score", "neighbourhood_score", "recall_score",
]
