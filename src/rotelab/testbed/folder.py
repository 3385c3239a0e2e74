"""A testbed folder's companions, found in one place: the model, the reference model and the
splits (prefix pool, paraphrases, ...), whether a user names the testbed folder, its ``model/``,
an unlearning folder built from it, or one of that folder's checkpoints.

    TB/model/  TB/reference/  TB/splits/<name>.jsonl          (rotelab testbed build)
    U/model/   U/checkpoints/<strength>/  U/manifest.json -> "testbed": TB
                                                               (rotelab testbed unlearn --testbed TB)

An unlearning folder's splits and reference are its testbed's (the reference never saw the
forget set either). Only ``TB/splits/*.jsonl`` are offered as splits: nothing a manifest names
can point a reader elsewhere.

>>> Testbed.find("/nonexistent") is None
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Testbed:
    """The folder a model came from and where its companions are."""

    __test__ = False  # not a pytest test class, though its name starts with "Test"

    root: Path  # the testbed or unlearning folder
    model: Path  # the model folder named (default: root/model)
    splits: dict[str, Path] = field(default_factory=dict)  # split name -> JSONL
    reference: Path | None = None

    @classmethod
    def find(cls, path: Path | str) -> "Testbed | None":
        """The testbed (or unlearning folder) ``path`` is, whose ``model/`` it is, or whose
        checkpoint (``checkpoints/<name>``) it is; else None (a plain model folder, a missing path)."""
        p = Path(path).expanduser()
        if _is_testbed(p):
            return cls._at(p, p / "model")
        if not _is_model(p):
            return None
        for root in (p.parent, p.parent.parent):
            if _is_testbed(root) and (p == root / "model" or (p.parent.name == "checkpoints" and p.parent.parent == root and _unlearning_base(root))):
                return cls._at(root, p)
        return None

    @classmethod
    def _at(cls, root: Path, model: Path) -> "Testbed":
        base = _unlearning_base(root) or root  # an unlearning folder: companions come from its testbed
        splits = {f.stem: f for f in sorted((base / "splits").glob("*.jsonl")) if f.is_file()}
        ref = base / "reference"
        return cls(root, model, splits, ref if _is_model(ref) else None)

    def split(self, name: str) -> Path | None:
        return self.splits.get(name)


def _is_model(p: Path) -> bool:
    return (p / "config.json").is_file()


def _is_testbed(p: Path) -> bool:
    """A testbed folder (model/ and splits/members.jsonl) or an unlearning folder (model/ and a manifest naming its testbed)."""
    if not _is_model(p / "model"):
        return False
    return (p / "splits" / "members.jsonl").is_file() or _unlearning_base(p) is not None


def _unlearning_base(p: Path) -> Path | None:
    """The testbed an unlearning folder was built from (its manifest's ``testbed``), if ``p`` is one."""
    try:
        m = json.loads((p / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    tb = m.get("testbed") if isinstance(m, dict) else None
    if not isinstance(tb, str) or not tb:
        return None
    base = Path(tb)
    return base if base.is_absolute() else (p / base)
