"""Files rotelab writes and reads back: atomic writes, JSON, hashes, safe file names.

Everything rotelab reads back is a data format (JSON, Parquet, safetensors, npy without pickle):
nothing it loads can run code. File names derived from user data (sample or item ids) go through
:func:`safe_filename`, so no id can name a path outside the run folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from rotelab.errors import RotelabError


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; results follow the user's umask
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def jsonable(obj: Any) -> Any:
    """Plain JSON values from numpy scalars and arrays, paths, enums; NaN becomes null."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        v = float(obj)
        return None if np.isnan(v) else v
    if isinstance(obj, float) and np.isnan(obj):
        return None  # JSON has no NaN; undefined figures carry a *_reason key instead
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if hasattr(obj, "value") and hasattr(obj, "name"):  # enums
        return obj.value
    return obj


def dumps(obj: Any) -> str:
    return json.dumps(jsonable(obj), indent=2, ensure_ascii=False, allow_nan=False)


def write_json(path: Path | str, obj: Any) -> None:
    atomic_write_text(path, dumps(obj) + "\n")


def read_json(path: Path | str) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RotelabError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise RotelabError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise RotelabError(f"{path}: not valid UTF-8 (byte {e.start})") from None


def file_sha256(path: Path | str) -> str:
    """SHA-256 of a file's bytes, streamed (for manifests)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str, *, max_len: int = 64) -> str:
    """A file name for user-derived ``name`` that cannot leave its folder, unique per ``name``.

    Characters outside ``[A-Za-z0-9._-]`` become ``_``, leading dots are dropped (no ``..``, no
    hidden files), and a hash of the original keeps two ids that sanitise alike apart.

    >>> safe_filename("item_3")
    'item_3-4a317b69'
    >>> safe_filename("../../etc/passwd")
    'etc_passwd-3754d6cb'
    >>> safe_filename("/abs/path") != safe_filename("abs/path")
    True
    """
    stem = _UNSAFE.sub("_", str(name)).lstrip("._")[:max_len] or "x"
    return f"{stem}-{hashlib.sha256(str(name).encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def load_npy(path: Path | str) -> np.ndarray:
    """Read an ``.npy`` array; object arrays (pickles) are refused."""
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        raise RotelabError(f"{path}: not a plain numeric array ({e})") from None


def save_npy(path: Path | str, arr: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, np.asarray(arr), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
