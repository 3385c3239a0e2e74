"""A testbed folder's companions, found in one place: the model, the reference model and the
splits (prefix pool, paraphrases, ...), whether a user names the testbed folder, its ``model/``,
or an unlearning folder built from it.

    TB/model/  TB/reference/  TB/splits/<name>.jsonl        (rotelab testbed build)
    U/model/   U/manifest.json -> "testbed", "splits"        (rotelab testbed unlearn --testbed TB)

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

    root: Path  # the testbed or unlearning folder
    model: Path  # its model folder
    splits: dict[str, Path] = field(default_factory=dict)  # split name -> JSONL
    reference: Path | None = None

    @classmethod
    def find(cls, path: Path | str) -> "Testbed | None":
        """The testbed (or unlearning folder) ``path`` is, or whose ``model/`` it is; else None."""
        p = Path(path)
        if p.name == "model" and (p / "config.json").exists() and not _is_testbed(p):
            p = p.parent
        if not _is_testbed(p):
            return None
        manifest = _manifest(p)
        splits = {f.stem: f for f in sorted((p / "splits").glob("*.jsonl"))}
        base = p
        if manifest.get("testbed") and not splits:  # an unlearning folder: splits and reference come from its testbed
            base = Path(manifest["testbed"])
            splits = {k: Path(v) for k, v in manifest.get("splits", {}).items() if Path(v).exists()}
            splits = {f.stem: f for f in sorted((base / "splits").glob("*.jsonl"))} | splits
        ref = base / "reference"
        return cls(p, p / "model", splits, ref if (ref / "config.json").exists() else None)

    def split(self, name: str) -> Path | None:
        return self.splits.get(name)


def _is_testbed(p: Path) -> bool:
    if not (p / "model" / "config.json").exists():
        return False
    return (p / "splits" / "members.jsonl").exists() or "testbed" in _manifest(p)


def _manifest(p: Path) -> dict:
    try:
        return json.loads((p / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
