"""Run folders: manifest, atomic writes, resume.

Every command writes ``--out`` (default ``runs/<command>-<timestamp>``)::

    manifest.json   command, options, seed, package versions, input hashes, notes (e.g. long-text counts)
    *.json/*.parquet results, written atomically (temporary file + rename)
    figures/*.png
    report.html

Re-running into the same folder resumes: a step whose output exists is skipped.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from rotelab.errors import RotelabError

T = TypeVar("T")

_VERSIONED = ("rotelab", "torch", "transformers", "tokenizers", "numpy", "scikit-learn", "scipy", "peft", "diffusers")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
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
        return _jsonable(obj.tolist())
    if hasattr(obj, "value") and hasattr(obj, "name"):  # enums
        return obj.value
    return obj


def dumps(obj: Any) -> str:
    return json.dumps(_jsonable(obj), indent=2, ensure_ascii=False, allow_nan=False)


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, dumps(obj) + "\n")


def read_json(path: Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RotelabError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise RotelabError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def default_out(command: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{command.replace(' ', '-')}-{stamp}"


class RunFolder:
    """One command's output folder.

    Parameters
    ----------
    path : folder to write (created).
    command : e.g. ``"mia run"``.
    options : the command's options, written verbatim to the manifest.
    seed : the run's seed.

    A run folder already holding a manifest of *another* command is refused, so that a typo in
    ``--out`` never mixes two runs. The manifest's ``notes`` collect facts a user must see
    (long-text counts, reduced sizes, ...); each note is also printed once.
    """

    def __init__(self, path: Path | str, *, command: str, options: dict[str, Any], seed: int | None = None):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        manifest_path = self.path / "manifest.json"
        old = read_json(manifest_path) if manifest_path.exists() else None
        if old is not None and old.get("command") != command:
            raise RotelabError(
                f"{self.path}: holds a '{old.get('command')}' run; use another --out for '{command}'"
            )
        self.manifest: dict[str, Any] = {
            **(old or {}),  # keep what capabilities recorded (preset, training log, ...) on resume
            "command": command,
            "options": _jsonable(options),
            "seed": seed,
            "versions": package_versions(),
            "created": (old or {}).get("created", _dt.datetime.now().isoformat(timespec="seconds")),
            "updated": _dt.datetime.now().isoformat(timespec="seconds"),
            "inputs": (old or {}).get("inputs", {}),
            "notes": (old or {}).get("notes", {}),
            "steps_done": (old or {}).get("steps_done", []),
        }
        self.save_manifest()

    # -- manifest ---------------------------------------------------------------------------
    def save_manifest(self) -> None:
        write_json(self.path / "manifest.json", self.manifest)

    def add_input(self, name: str, path: Path | str) -> None:
        """Record an input file (or folder) with its SHA-256 (files) for reproducibility."""
        from rotelab.core.data import file_sha256

        p = Path(path)
        entry: dict[str, Any] = {"path": str(p)}
        if p.is_file():
            entry["sha256"] = file_sha256(p)
        self.manifest["inputs"][name] = entry
        self.save_manifest()

    def note(self, key: str, value: Any, *, say: str | None = None) -> None:
        """Record a fact in the manifest's notes; ``say`` is printed once to stderr."""
        self.manifest["notes"][key] = _jsonable(value)
        self.save_manifest()
        if say:
            from rich.console import Console

            Console(stderr=True).print(f"[yellow]note:[/] {say}")

    # -- files ------------------------------------------------------------------------------
    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, obj: Any) -> Path:
        p = self.file(name)
        write_json(p, obj)
        return p

    def write_parquet(self, name: str, table: "Any") -> Path:
        """Write a pandas-free table (dict of columns, or a pyarrow Table) as Parquet, atomically."""
        import io

        import pyarrow as pa
        import pyarrow.parquet as pq

        if isinstance(table, dict):
            table = pa.table({k: (np.asarray(v) if not isinstance(v, list) else v) for k, v in table.items()})
        buf = io.BytesIO()
        pq.write_table(table, buf)
        p = self.file(name)
        atomic_write_bytes(p, buf.getvalue())
        return p

    def figure(self, name: str, fig: "Any") -> Path:
        """Save a matplotlib figure under ``figures/`` atomically and close it."""
        import io

        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        p = self.file(f"figures/{name}.png")
        atomic_write_bytes(p, buf.getvalue())
        return p

    # -- resume -----------------------------------------------------------------------------
    def is_done(self, step: str) -> bool:
        return step in self.manifest["steps_done"]

    def step(self, name: str, fn: Callable[[], T], *, load: Callable[[], T] | None = None) -> T | None:
        """Run ``fn`` unless step ``name`` finished in an earlier run of this folder.

        A finished step is skipped and, if given, ``load()`` returns its stored result.
        """
        if self.is_done(name):
            return load() if load else None
        out = fn()
        self.manifest["steps_done"].append(name)
        self.save_manifest()
        return out


def read_parquet(path: Path | str) -> dict[str, np.ndarray]:
    """Read a Parquet file into a dict of numpy columns."""
    import pyarrow.parquet as pq

    p = Path(path)
    if not p.exists():
        raise RotelabError(f"{p}: file not found")
    t = pq.read_table(p)
    return {name: t.column(name).to_numpy(zero_copy_only=False) for name in t.column_names}
