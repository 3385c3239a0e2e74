"""The signal cache: one SQLite file per user, keyed by (model, tokenizer, policy, dtype, text).

SQLite (stdlib) gives atomic, concurrent-safe writes in a single file; a run interrupted midway
keeps every batch it committed. Location: ``$ROTELAB_CACHE`` or the platform's user cache folder
(``~/.cache/rotelab``), overridable per call.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from rotelab.core.signals import TokenSignals

# Bumped whenever TokenSignals' fields change, so older entries are never read (2: argmax -> top1).
FORMAT = b"signals-v2"

if TYPE_CHECKING:
    from rotelab.core.models import LanguageModel


def default_cache_dir() -> Path:
    env = os.environ.get("ROTELAB_CACHE")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("rotelab"))


class SignalCache:
    """Cache of :class:`TokenSignals`; ``get``/``put_many`` key on ``lm.cache_namespace``."""

    def __init__(self, folder: Path | str | None = None):
        self.folder = Path(folder) if folder is not None else default_cache_dir()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "signals.sqlite"
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS signals (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        self._db.commit()

    @staticmethod
    def key(lm: "LanguageModel", text: str) -> str:
        h = hashlib.sha256(FORMAT + b"\0" + lm.cache_namespace.encode())
        h.update(b"\0")
        h.update(text.encode("utf-8"))
        return h.hexdigest()

    def get(self, lm: "LanguageModel", text: str) -> TokenSignals | None:
        """The cached signals, or None; an unreadable entry (not plain arrays) is a miss, never code."""
        row = self._db.execute("SELECT value FROM signals WHERE key = ?", (self.key(lm, text),)).fetchone()
        if not row:
            return None
        try:
            return TokenSignals.from_bytes(row[0])
        except (ValueError, KeyError, OSError, EOFError):
            return None

    def put_many(self, lm: "LanguageModel", items: Iterable[tuple[str, TokenSignals]]) -> None:
        rows = [(self.key(lm, t), s.to_bytes()) for t, s in items]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO signals (key, value) VALUES (?, ?)", rows)

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM signals").fetchone()[0]

    def close(self) -> None:
        self._db.close()
