"""Interaction logs -> a compact per-user event store, read through memory maps.

Formats (detected from the file name inside ``--data DIR``):

- ML-1M ``ratings.dat``: ``UserID::MovieID::Rating::Timestamp``; label bit 0 = rating >= 4;
- ML-20M ``ratings.csv``: ``userId,movieId,rating,timestamp`` (header); label bit 0 = rating >= 4;
- KuaiRand ``log_standard*.csv``: ``user_id,video_id,time_ms,is_click,is_like,is_follow,
  is_comment,is_forward,...``; label bit t = task t (the DLRMv3 bitmask, weights 1, 2, 4, 8, 16).

The store is a folder of ``.npy`` arrays sorted by (user, time): ``items`` (int32, 1..V; 0 is
padding), ``ts`` (int64), ``labels`` (uint8 bitmask), ``offsets`` (int64, one per user + 1),
``users`` (raw ids). Readers open them with ``mmap_mode="r"``, so serving a request touches only
the slice it needs: a 1M-event history is never loaded whole unless a model asks for all of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rotelab.core.io import read_json, write_json
from rotelab.errors import RotelabError

ML_TASKS = ("liked",)
KUAIRAND_TASKS = ("is_click", "is_like", "is_follow", "is_comment", "is_forward")


def detect_format(data: Path) -> tuple[str, Path]:
    """(format, file) for a data folder or file; one-line error naming what was looked for."""
    data = Path(data)
    if data.is_file():
        cands = [data]
    elif data.is_dir():
        cands = sorted(data.glob("ratings.dat")) + sorted(data.glob("ratings.csv")) + sorted(data.glob("log_standard*.csv"))
    else:
        raise RotelabError(f"--data {data}: no such file or folder")
    for f in cands:
        if f.name == "ratings.dat":
            return "ml-1m", f
        if f.name == "ratings.csv":
            return "ml-20m", f
        if f.name.startswith("log_standard") and f.suffix == ".csv":
            return "kuairand", f
    raise RotelabError(f"--data {data}: found none of ratings.dat (ML-1M), ratings.csv (ML-20M), log_standard*.csv (KuaiRand)")


def _read_csv(path: Path, *, delimiter: str, header: bool, names: list[str] | None = None):
    import pyarrow.csv as pcsv

    ro = pcsv.ReadOptions(autogenerate_column_names=not header and names is None, column_names=names if not header else None)
    try:
        table = pcsv.read_csv(path, read_options=ro, parse_options=pcsv.ParseOptions(delimiter=delimiter))
    except Exception as e:  # pyarrow raises ArrowInvalid with the line in the message
        raise RotelabError(f"{path}: cannot parse ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if table.num_rows == 0:
        raise RotelabError(f"{path}: no events")
    return table


def _column(table, name: str, path: Path) -> np.ndarray:
    if name not in table.column_names:
        raise RotelabError(f"{path}: missing column '{name}' (has {', '.join(table.column_names)})")
    col = table.column(name)
    if col.null_count:
        import pyarrow.compute as pc

        row = int(pc.index(pc.is_null(col), True).as_py())
        raise RotelabError(f"{path}: column '{name}' has {col.null_count} empty values (first in data row {row + 1})")
    out = col.to_numpy()
    if out.dtype.kind not in "iuf":
        row, bad = next((r, v) for r, v in enumerate(col.to_pylist()) if not _is_number(v))
        raise RotelabError(f"{path}: column '{name}': {bad!r} in data row {row + 1} is not a number")
    if out.dtype.kind == "f" and not np.isfinite(out).all():
        row = int(np.flatnonzero(~np.isfinite(out))[0])
        raise RotelabError(f"{path}: column '{name}': {out[row]} in data row {row + 1} is not a finite number")
    return out


def _is_number(v) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return not isinstance(v, bool)


def read_log(path: Path, fmt: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """(user, item, ts, labels, task names) as flat arrays, in file order."""
    if fmt == "ml-1m":
        # '::' is two one-character delimiters around an empty field: columns 0, 2, 4, 6
        t = _read_csv(path, delimiter=":", header=False, names=["u", "_a", "i", "_b", "r", "_c", "t"])
        u, i, r, ts = (_column(t, c, path) for c in ("u", "i", "r", "t"))
        return u, i, ts.astype(np.int64), (r >= 4).astype(np.uint8), ML_TASKS
    if fmt == "ml-20m":
        t = _read_csv(path, delimiter=",", header=True)
        u, i, r, ts = (_column(t, c, path) for c in ("userId", "movieId", "rating", "timestamp"))
        return u, i, ts.astype(np.int64), (r >= 4).astype(np.uint8), ML_TASKS
    if fmt == "kuairand":
        t = _read_csv(path, delimiter=",", header=True)
        u, i, ts = (_column(t, c, path) for c in ("user_id", "video_id", "time_ms"))
        labels = np.zeros(len(u), dtype=np.uint8)
        for bit, task in enumerate(KUAIRAND_TASKS):
            labels |= (_column(t, task, path).astype(np.uint8) & 1) << bit
        return u, i, ts.astype(np.int64), labels, KUAIRAND_TASKS
    raise RotelabError(f"unknown data format '{fmt}'; expected ml-1m, ml-20m or kuairand")


@dataclass(frozen=True)
class EventStore:
    """Memory-mapped per-user event arrays (see module docstring)."""

    path: Path
    users: np.ndarray
    offsets: np.ndarray
    items: np.ndarray
    ts: np.ndarray
    labels: np.ndarray
    n_items: int
    tasks: tuple[str, ...]
    fmt: str

    @property
    def n_users(self) -> int:
        return len(self.users)

    def length(self, u: int) -> int:
        return int(self.offsets[u + 1] - self.offsets[u])

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def slice(self, u: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Events [start, stop) of user ``u`` (negative indices as in Python): items, ts, labels."""
        lo, n = int(self.offsets[u]), self.length(u)
        a, b, _ = slice(start, stop).indices(n)
        return (np.asarray(self.items[lo + a : lo + b]), np.asarray(self.ts[lo + a : lo + b]), np.asarray(self.labels[lo + a : lo + b]))


@dataclass(frozen=True)
class EventLog:
    """A parsed, checked interaction log, in file order (what :func:`read_events` returns)."""

    fmt: str
    source: Path  # the log file read
    user: np.ndarray
    item: np.ndarray
    ts: np.ndarray  # int64
    labels: np.ndarray  # uint8 task bitmask
    tasks: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.user)

    def users_longer_than(self, n: int) -> int:
        """How many users have more than ``n`` events."""
        return int((np.unique(self.user, return_counts=True)[1] > n).sum())


def read_events(data: Path | str) -> EventLog:
    """Parse and check a log (any supported format); every problem is one line naming the file.

    Commands call this before their run folder exists, so bad data leaves nothing behind.
    """
    fmt, f = detect_format(Path(data))
    u, i, ts, labels, tasks = read_log(f, fmt)
    if len(u) == 0:
        raise RotelabError(f"{f}: no events")
    return EventLog(fmt, f, u, i, ts, labels, tasks)


def write_store(log: EventLog, out: Path) -> EventStore:
    """Write the sorted event store of ``log`` into ``out`` and open it."""
    users, u_idx = np.unique(log.user, return_inverse=True)
    item_ids, i_idx = np.unique(log.item, return_inverse=True)
    order = np.lexsort((log.ts, u_idx))  # by user, then time; stable for ties
    counts = np.bincount(u_idx, minlength=len(users))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "items.npy", (i_idx[order] + 1).astype(np.int32))
    np.save(out / "ts.npy", log.ts[order])
    np.save(out / "labels.npy", log.labels[order])
    np.save(out / "offsets.npy", np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
    np.save(out / "users.npy", users)
    np.save(out / "item_ids.npy", item_ids)
    write_json(out / "store.json", {"format": log.fmt, "source": str(log.source), "n_items": len(item_ids), "tasks": list(log.tasks), "n_events": len(log), "n_users": len(users)})
    return open_store(out)


def build_store(data: Path, out: Path) -> EventStore:
    """Parse a log (any supported format) and write the sorted event store into ``out``."""
    return write_store(read_events(data), out)


def open_store(path: Path) -> EventStore:
    path = Path(path)
    meta = read_json(path / "store.json")
    m = {k: np.load(path / f"{k}.npy", mmap_mode="r", allow_pickle=False) for k in ("users", "offsets", "items", "ts", "labels")}
    return EventStore(path, m["users"], np.asarray(m["offsets"]), m["items"], m["ts"], m["labels"], int(meta["n_items"]), tuple(meta["tasks"]), meta["format"])
