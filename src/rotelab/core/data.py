"""Readers for user input: JSONL samples and plain-text books, validated at the boundary.

Every problem is one :class:`RotelabError` line naming the file and line or field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from rotelab.core.io import atomic_write_text
from rotelab.errors import RotelabError


@dataclass(frozen=True)
class Sample:
    """One text to score. ``meta`` keeps the optional JSONL fields (label, copies, kind, ...)."""

    id: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)


def _read_utf8(path: Path) -> str:
    path = Path(path)
    if not path.exists():
        raise RotelabError(f"{path}: file not found")
    if path.is_dir():
        raise RotelabError(f"{path}: is a folder, expected a file")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")  # a leading byte-order mark (Windows editors) is read, not refused
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise RotelabError(f"{path}:{line}: not valid UTF-8 (byte {e.start})") from None


def _check_encodable(path: Path, lineno: int, name: str, text: str) -> None:
    """JSON's \\ud800-style escapes can produce lone surrogates, which no tokenizer can encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise RotelabError(f"{path}:{lineno}: field '{name}' holds a lone surrogate (U+{ord(text[e.start]):04X} at character {e.start})") from None


def read_jsonl(path: Path | str, *, text_field: str = "text", role: str | None = None) -> list[Sample]:
    """Read samples from JSONL: ``text`` required, ``id`` optional.

    A line without an id gets ``<role>:<n>`` (n its 0-based line number; ``role`` defaults to the
    file's stem), so two files without ids never share one and their rows never mix in outputs.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.jsonl")
    >>> _ = open(p, "w").write('{"text": "hello"}\\n{"id": "b", "text": "world"}\\n')
    >>> [(s.id, s.text) for s in read_jsonl(p, role="members")]
    [('members:0', 'hello'), ('b', 'world')]
    """
    path = Path(path)
    role = role or path.stem
    content = _read_utf8(path)
    samples: list[Sample] = []
    seen: set[str] = set()
    for lineno, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise RotelabError(f"{path}:{lineno}: malformed JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise RotelabError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        if text_field not in obj:
            raise RotelabError(f"{path}:{lineno}: missing field '{text_field}'")
        text = obj[text_field]
        if not isinstance(text, str):
            raise RotelabError(f"{path}:{lineno}: field '{text_field}' must be a string")
        if not text.strip():
            raise RotelabError(f"{path}:{lineno}: field '{text_field}' is empty")
        _check_encodable(path, lineno, text_field, text)
        sid = obj.get("id", f"{role}:{lineno - 1}")
        if not isinstance(sid, (str, int)):
            raise RotelabError(f"{path}:{lineno}: field 'id' must be a string")
        sid = str(sid)
        if sid in seen:
            raise RotelabError(f"{path}:{lineno}: duplicate id '{sid}'")
        seen.add(sid)
        meta = {k: v for k, v in obj.items() if k not in ("id", text_field)}
        samples.append(Sample(sid, text, meta))
    if not samples:
        raise RotelabError(f"{path}: no samples")
    return samples


def check_disjoint(a: Sequence[Sample], b: Sequence[Sample], what: str) -> None:
    """Refuse two sample sets that share a text or an id (one line naming both and an example).

    >>> check_disjoint([Sample("a", "x")], [Sample("b", "y")], "--members and --nonmembers")
    >>> check_disjoint([Sample("a", "x")], [Sample("a", "y")], "--members and --nonmembers")
    Traceback (most recent call last):
    ...
    rotelab.errors.RotelabError: --members and --nonmembers: 1 ids appear in both (e.g. 'a')
    """
    common = {s.text for s in a} & {s.text for s in b}
    if common:
        raise RotelabError(f"{what}: {len(common)} texts appear in both (e.g. '{min(common)[:60]}')")
    shared = {s.id for s in a} & {s.id for s in b}
    if shared:
        raise RotelabError(f"{what}: {len(shared)} ids appear in both (e.g. '{min(shared)}')")


def write_jsonl(path: Path | str, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows as JSONL atomically (temporary file, then rename)."""
    atomic_write_text(Path(path), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def samples_to_rows(samples: Iterable[Sample]) -> list[dict[str, Any]]:
    return [{"id": s.id, "text": s.text, **s.meta} for s in samples]


def read_book(path: Path | str) -> str:
    """Read a plain-text book (UTF-8); refuse an empty one."""
    path = Path(path)
    text = _read_utf8(path)
    if not text.strip():
        raise RotelabError(f"{path}: the book is empty")
    return text
