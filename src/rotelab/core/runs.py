"""Run folders: manifest, atomic writes, a lock, and resume only from work done on the same inputs.

Every command writes ``--out`` (default ``runs/<command>-<timestamp>``)::

    manifest.json    command, options, seed, package versions, input hashes, model fingerprints,
                     notes (e.g. long-text counts), finished steps
    *.json/*.parquet results, written atomically (temporary file + rename)
    figures/*.png
    report.html
    .rotelab.lock    held (flock) by the process writing the folder

Rules
-----
* ``--out`` must be a new folder, an empty one, or a run folder of the same command; an existing
  file, a folder of other files, or another command's run folder is refused in one line.
* One writer at a time: a second process gets one line naming the holder.
* Re-running into the folder resumes (a finished step is skipped) only when the run's *identity*
  is the one its work was computed from: the result-affecting options and seed, every input
  file's SHA-256 and every model's fingerprint. Volatile options (device, batch size, verbosity,
  cache location) are not part of it. Otherwise the run is refused in one line naming what
  changed, or, with ``overwrite=True`` (``--overwrite``), the folder's results are deleted and
  recomputed.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shutil
import socket
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import numpy as np

from rotelab.core.io import atomic_write_bytes, file_sha256, jsonable, read_json, write_json
from rotelab.errors import RotelabError

T = TypeVar("T")

_VERSIONED = ("rotelab", "torch", "transformers", "tokenizers", "numpy", "scikit-learn", "scipy", "peft", "diffusers")
LOCK_NAME = ".rotelab.lock"
MANIFEST = "manifest.json"
# Options that never change a result: where and how fast it is computed, and what is printed.
VOLATILE = frozenset({"device", "quiet", "json", "json_out", "progress", "out", "cache_dir", "no_cache", "overwrite", "threads"})


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


def is_run_folder(path: Path | str) -> bool:
    return (Path(path) / MANIFEST).is_file()


# -- the lock -------------------------------------------------------------------------------
_HELD: dict[str, list] = {}  # realpath -> [fd, refcount]: one process may open its folder twice


def _acquire(path: Path, command: str) -> str:
    """Take the folder's exclusive lock (re-entrant within this process); refuse if another holds it."""
    import fcntl

    key = os.path.realpath(path)
    if key in _HELD:
        _HELD[key][1] += 1
        return key
    fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
        os.close(fd)
        raise RotelabError(f"{path}: in use by {holder}; wait for it to finish or use another --out") from None
    info = f"pid {os.getpid()} on {socket.gethostname()} ('{command}', since {_dt.datetime.now().isoformat(timespec='seconds')})"
    os.ftruncate(fd, 0)
    os.pwrite(fd, info.encode(), 0)
    _HELD[key] = [fd, 1]
    return key


def _release(key: str) -> None:
    held = _HELD.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] == 0:
        os.ftruncate(held[0], 0)
        os.close(held[0])  # closing the descriptor releases the flock
        del _HELD[key]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- identity -------------------------------------------------------------------------------
def _strip(options: dict[str, Any], volatile: Iterable[str]) -> dict[str, Any]:
    vol = set(volatile)
    return {k: v for k, v in jsonable(options).items() if k not in vol}


def _diff(old: dict, new: dict) -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            out.append(f"{k}: {_short(old.get(k))} -> {_short(new.get(k))}")
    return out


def _short(v: Any) -> str:
    s = str(v)
    return s if len(s) <= 40 else s[:37] + "..."


class RunFolder:
    """One command's output folder (see the module docstring for its rules).

    Parameters
    ----------
    path : folder to write (created).
    command : e.g. ``"mia run"``.
    options : the command's options, written verbatim to the manifest.
    seed : the run's seed.
    inputs : name -> input file or folder, hashed into the identity (also :meth:`add_input`).
    models : name -> a loaded model or its fingerprint, part of the identity (also :meth:`add_model`).
    overwrite : recompute (delete old results) instead of refusing a changed identity.
    volatile : option names left out of the identity, besides :data:`VOLATILE`
        (e.g. ``batch_size`` for inference; training commands keep it).

    Use as a context manager (or call :meth:`close`) to release the lock; it is also released
    when the process exits.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        command: str,
        options: dict[str, Any],
        seed: int | None = None,
        inputs: dict[str, Path | str | None] | None = None,
        models: dict[str, Any] | None = None,
        overwrite: bool = False,
        volatile: Iterable[str] = (),
    ):
        self.path = Path(path)
        self.command = command
        self.overwrite = overwrite
        _prepare(self.path, command)
        self._lock = _acquire(self.path, command)
        try:
            for tmp in self.path.rglob(".*.tmp"):  # half-written files of a killed run (atomic writes' temporaries)
                tmp.unlink(missing_ok=True)
            self._open(options, seed, volatile)
            for name, p in (inputs or {}).items():
                if p is not None:
                    self.add_input(name, p)
            for name, fp in (models or {}).items():
                self.add_model(name, fp)
        except BaseException:
            self.close()
            raise

    def _open(self, options: dict[str, Any], seed: int | None, volatile: Iterable[str]) -> None:
        old = read_json(self.path / MANIFEST) if is_run_folder(self.path) else None
        if old is not None and old.get("command") != self.command:
            raise RotelabError(f"{self.path}: holds a '{old.get('command')}' run; use another --out for '{self.command}'")
        identity = {"options": _strip(options, VOLATILE | set(volatile)), "seed": seed, "inputs": {}, "models": {}}
        self._had_work = old is not None and self._has_work(old)
        if self._had_work:
            old_id = old.get("identity")
            if old_id is None:
                changed = ["written by a rotelab without input hashes"]
                old_id = {}
            else:
                changed = _diff(old_id.get("options", {}), identity["options"])
            if old_id.get("seed", seed) != seed:
                changed.append(f"seed: {old_id.get('seed')} -> {seed}")
            if changed:
                self._changed(changed, "options")
                old = None
            else:
                identity["inputs"] = dict(old_id.get("inputs", {}))
                identity["models"] = dict(old_id.get("models", {}))
        now = _dt.datetime.now().isoformat(timespec="seconds")
        self.manifest: dict[str, Any] = {
            **(old or {}),  # keep what capabilities recorded (preset, training log, ...) on resume
            "command": self.command,
            "options": jsonable(options),
            "seed": seed,
            "identity": identity,
            "versions": package_versions(),
            "created": (old or {}).get("created", now),
            "updated": now,
            "inputs": (old or {}).get("inputs", {}),
            "notes": (old or {}).get("notes", {}),
            "steps_done": (old or {}).get("steps_done", []),
        }
        self.save_manifest()

    def _has_work(self, manifest: dict) -> bool:
        if manifest.get("steps_done"):
            return True
        return any(p.name not in (MANIFEST, LOCK_NAME, "report.html") for p in self.path.iterdir())

    def _changed(self, changed: list[str], what: str) -> None:
        """The identity differs from the one the folder's work was computed from."""
        if not self.overwrite:
            raise RotelabError(
                f"{self.path}: its results were computed from other {what} ({'; '.join(changed[:3])}); "
                "use another --out, or --overwrite to recompute"
            )
        for p in self.path.iterdir():
            if p.name in (LOCK_NAME,):
                continue
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        self._had_work = False

    # -- context manager --------------------------------------------------------------------
    def close(self) -> None:
        if getattr(self, "_lock", None):
            _release(self._lock)
            self._lock = None

    def __enter__(self) -> "RunFolder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- manifest ---------------------------------------------------------------------------
    def save_manifest(self) -> None:
        write_json(self.path / MANIFEST, self.manifest)

    def add_input(self, name: str, path: Path | str) -> None:
        """Record an input file (or folder) with its SHA-256 (files); part of the identity."""
        p = Path(path)
        entry: dict[str, Any] = {"path": str(p)}
        if p.is_file():
            entry["sha256"] = file_sha256(p)
        self._check_identity("inputs", name, entry.get("sha256", str(p.resolve())))
        self.manifest["inputs"][name] = entry
        self.save_manifest()

    def add_model(self, name: str, model: Any) -> None:
        """Record a model: a fingerprint string, or a loaded model (its ``cache_namespace`` is the
        fingerprint, and its ``describe()`` -- source, context and where it came from, dtype --
        goes to the manifest's ``models``)."""
        fingerprint = model if isinstance(model, str) else model.cache_namespace
        self._check_identity("models", name, fingerprint)
        if not isinstance(model, str) and hasattr(model, "describe"):
            self.manifest.setdefault("models", {})[name] = jsonable(model.describe())
        self.save_manifest()

    def _check_identity(self, kind: str, name: str, value: str) -> None:
        ident = self.manifest["identity"][kind]
        if self._had_work and name in ident and ident[name] != value:
            self._changed([f"{name} changed"], "inputs" if kind == "inputs" else "models")
            keep = {k: self.manifest[k] for k in ("command", "options", "seed", "versions", "created", "updated")}
            self.manifest = keep | {"identity": self.manifest["identity"], "inputs": {}, "notes": {}, "steps_done": []}
        ident[name] = value

    def note(self, key: str, value: Any, *, say: str | None = None) -> None:
        """Record a fact in the manifest's notes; ``say`` is printed once to stderr."""
        self.manifest["notes"][key] = jsonable(value)
        self.save_manifest()
        if say:
            from rotelab.core.console import say as _say

            _say(say)

    # -- files ------------------------------------------------------------------------------
    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, obj: Any) -> Path:
        p = self.file(name)
        write_json(p, obj)
        return p

    def write_parquet(self, name: str, table: Any) -> Path:
        """Write a table (dict of columns, or a pyarrow Table) as Parquet, atomically."""
        p = self.file(name)
        write_parquet(p, table)
        return p

    def figure(self, name: str, fig: Any) -> Path:
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


def _prepare(path: Path, command: str) -> None:
    """Refuse, in one line, an ``--out`` that is a file, a folder of other files, or not creatable."""
    if path.exists() and not path.is_dir():
        raise RotelabError(f"{path}: exists and is a file; --out must be a folder")
    if path.is_dir() and not is_run_folder(path):
        # Sub-run folders are no user files to overwrite (the demo's testbed can be placed beforehand).
        others = [p.name for p in path.iterdir() if p.name != LOCK_NAME and not is_run_folder(p)]
        if others:
            raise RotelabError(
                f"{path}: not a rotelab run folder and not empty ({len(others)} entries, e.g. '{others[0]}'); "
                f"choose a new or empty folder for '{command}'"
            )
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".{LOCK_NAME}.probe"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise RotelabError(f"{path}: cannot write the run folder ({e.strerror or e})") from None


def open_run(
    out: Path | str | None,
    command: str,
    options: dict[str, Any],
    *,
    seed: int | None = None,
    inputs: dict[str, Path | str | None] | None = None,
    models: dict[str, Any] | None = None,
    overwrite: bool = False,
    volatile: Iterable[str] = (),
) -> RunFolder:
    """A :class:`RunFolder` at ``out`` (default ``runs/<command>-<timestamp>``)."""
    return RunFolder(out or default_out(command), command=command, options=options, seed=seed, inputs=inputs, models=models, overwrite=overwrite, volatile=volatile)


def write_parquet(path: Path | str, table: Any) -> None:
    """A dict of columns (numpy arrays or lists) or a pyarrow Table, as Parquet, atomically."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(table, dict):
        table = pa.table({k: (np.asarray(v) if not isinstance(v, list) else v) for k, v in table.items()})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_parquet(path: Path | str) -> dict[str, np.ndarray]:
    """Read a Parquet file into a dict of numpy columns."""
    import pyarrow.parquet as pq

    p = Path(path)
    if not p.exists():
        raise RotelabError(f"{p}: file not found")
    t = pq.read_table(p)
    return {name: t.column(name).to_numpy(zero_copy_only=False) for name in t.column_names}
