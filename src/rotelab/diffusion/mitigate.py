"""Mitigations of diffusion memorization: the interface, the registry, and how they are stored.

A mitigation is one class in its own module under :mod:`rotelab.diffusion.mitigations`, filed by
the decorator ``@MITIGATIONS.register("name", per_prompt=...)``; that line is the only list (the
``--method`` choices of ``rotelab diffusion mitigate`` come from it). The registry imports every
module of that package on first use; the modules import torch only inside their methods, so the
command line's help stays fast.

A mitigation is saved in its run folder as ``mitigation.safetensors`` (tensors in the body, the
rest as JSON in the header: :mod:`rotelab.diffusion.store`); nothing rotelab loads can run code.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, ContextManager

from rotelab.core.registry import Registry
from rotelab.errors import RotelabError

if TYPE_CHECKING:
    from torch import Tensor

    from rotelab.core.runs import RunFolder
    from rotelab.diffusion.model import DiffusionModel

FILE = "mitigation.safetensors"


@dataclasses.dataclass(frozen=True)
class NoConfig:
    """A mitigation without options."""


class Mitigation:
    """What every mitigation offers.

    Lifecycle: ``m = cls(config)``; ``m.select(model, items, run=..., threshold=...)`` finds it;
    ``m.save(folder)`` / ``cls.load(folder)`` store it; ``m.mitigated(model)`` is the model to
    evaluate, on which ``m.apply(model, item_id)`` mitigates one memorized prompt and
    ``m.deploy(model)`` every prompt at once (the held-out cost).

    Class attributes: ``name`` (set by the registry), ``Config`` (a frozen dataclass of the
    method's options, written to the manifest).
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type] = NoConfig

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()
        if not isinstance(self.config, self.Config):
            raise RotelabError(f"{self.name}: config must be a {self.Config.__name__}; got {type(self.config).__name__}")
        self.model_fingerprint: str | None = None

    @classmethod
    def make_config(cls, **values: Any) -> Any:
        """The method's config from command-line values, keeping those its ``Config`` has."""
        names = {f.name for f in dataclasses.fields(cls.Config)}
        return cls.Config(**{k: v for k, v in values.items() if k in names})

    # -- checks the entry point runs before a run folder exists ---------------------------------
    def check_config(self) -> None:
        """Refuse impossible options in one line (the entry point calls this first)."""

    def check_items(self, items: list[dict], where: Path | None) -> None:
        """Refuse items this method cannot work with, in one line naming ``where`` (the data file).
        The entry point has already checked that some memorized item (label 1) has an image."""

    # -- finding it -------------------------------------------------------------------------
    def select(self, model: "DiffusionModel", items: list[dict], *, run: "RunFolder", threshold: float = 0.7, progress: bool = True) -> None:
        """Find the mitigation of every memorized item (label 1) of ``items``.

        ``run`` is the run folder: long searches may keep resumable ``run.step``s and artefacts there.
        """
        raise NotImplementedError

    # -- using it ---------------------------------------------------------------------------
    def mitigated(self, model: "DiffusionModel") -> "DiffusionModel":
        """The model on which mitigated prompts generate (pruning: ``model`` itself)."""
        return model

    def apply(self, model: "DiffusionModel", item_id: str) -> ContextManager:
        """A context in which ``model`` generates as the mitigated model does for that item's prompt."""
        return contextlib.nullcontext()

    def deploy(self, model: "DiffusionModel") -> ContextManager:
        """A context with every item's mitigation at once (what deploying it costs on held-out data)."""
        return contextlib.nullcontext()

    def summary(self) -> dict:
        """``tau_signal``, ``selection_mitigated`` and per-item ``selection`` rows for the result and report."""
        return {"tau_signal": None, "selection_mitigated": None, "selection": []}

    def diagnostics(self, model: "DiffusionModel", items: list[dict], ys: "Tensor") -> dict | None:
        """Extra measurements of the selection (IoU across prompts, ...), or None."""
        return None

    # -- storing it -------------------------------------------------------------------------
    def state(self) -> dict:
        """Everything :meth:`from_state` needs (tensors allowed; no pickles)."""
        return {}

    def restore(self, state: dict, folder: Path) -> None:
        """Fill the instance from :meth:`state`'s dict (``folder``: where it was saved)."""

    def record(self) -> dict:
        """What :meth:`save` writes: method, config, model fingerprint and :meth:`state`."""
        return {"method": self.name, "config": dataclasses.asdict(self.config), "model_fingerprint": self.model_fingerprint, **self.state()}

    def save(self, folder: Path | str, *, name: str = FILE) -> Path:
        from rotelab.diffusion import store

        path = Path(folder) / name
        store.save(path, self.record())
        return path

    @classmethod
    def from_state(cls, state: dict, folder: Path) -> "Mitigation":
        try:
            m = cls(cls.Config(**state["config"]))
            m.model_fingerprint = state.get("model_fingerprint")
            m.restore(state, Path(folder))
        except (KeyError, TypeError) as e:
            raise RotelabError(f"{folder}: the stored {cls.name} mitigation is incomplete ({type(e).__name__}: {e})") from None
        return m


def _discover() -> None:
    import importlib
    import pkgutil

    from rotelab.diffusion import mitigations

    for mod in pkgutil.iter_modules(mitigations.__path__):
        importlib.import_module(f"rotelab.diffusion.mitigations.{mod.name}")


MITIGATIONS: Registry[type[Mitigation]] = Registry("mitigation", discover=_discover, base=Mitigation)
"""Mitigation classes by name; metadata ``per_prompt`` (applied at inference for the prompt it was
found for, so ``diffusion dori --mitigation`` can attack it) and ``doc``."""


def register(name: str, **meta: Any):
    """``@register("nemo", per_prompt=True)``: file a :class:`Mitigation` subclass and name it."""

    def deco(cls: type[Mitigation]) -> type[Mitigation]:
        cls.name = name
        return MITIGATIONS.register(name, **meta)(cls)

    return deco


def load_mitigation(folder: Path | str, *, name: str = FILE) -> Mitigation:
    """The mitigation saved in a ``diffusion mitigate`` run folder (one line if there is none)."""
    from rotelab.diffusion import store

    folder = Path(folder)
    if not folder.is_dir():
        raise RotelabError(f"{folder}: not found (expected a 'diffusion mitigate' run folder)")
    if not (folder / name).is_file():
        legacy = " (its mitigation.pt is a pickle from an older rotelab and is never loaded: it could run code; re-run 'diffusion mitigate')" \
            if (folder / "mitigation.pt").exists() else ""
        raise RotelabError(f"{folder}: no {name}; is it a 'diffusion mitigate' run folder?{legacy}")
    return load_record(store.load(folder / name), folder, where=folder / name)


def load_record(state: Any, folder: Path, *, where: Path | None = None) -> Mitigation:
    """A mitigation from the dict :meth:`Mitigation.record` made (``folder``: where its files are)."""
    if not isinstance(state, dict) or not isinstance(state.get("method"), str):
        raise RotelabError(f"{where or folder}: not a stored mitigation (no method)")
    return MITIGATIONS.get(state["method"]).obj.from_state(state, Path(folder))


def check_calibration(items: list[dict], where: Path | str | None) -> None:
    """Calibration (NeMo's τ, Wanda's reference) needs at least 2 non-memorized prompts (label 0)."""
    if sum(it["label"] == 0 for it in items) < 2:
        raise RotelabError(f"{where or 'data'}: calibration needs at least 2 non-memorized prompts (label 0)")


def controls_for_calibration(items: list[dict], ys: "Tensor", *, limit: int = 16) -> "Tensor":
    """Embeddings of up to ``limit`` non-memorized prompts (label 0, evenly spaced): NeMo's reference
    distribution (NeMo used 50k prompts; each costs generations here, so the count is capped)."""
    import numpy as np

    idx = [i for i, it in enumerate(items) if it["label"] == 0]
    if len(idx) < 2:
        raise RotelabError("calibration needs at least 2 non-memorized prompts (label 0) in --data")
    pick = np.linspace(0, len(idx) - 1, min(limit, len(idx))).round().astype(int)
    return ys[[idx[k] for k in pick]]
