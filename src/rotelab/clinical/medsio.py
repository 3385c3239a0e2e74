"""MEDS datasets in and out, with pyarrow and the ``meds`` package's schema.

A MEDS root holds ``data/**/*.parquet`` (subject_id int64, time timestamp[us] (null for static
facts), code string, numeric_value float32, optional text_value and extra columns; a subject's
events in one shard, sorted by time), ``metadata/codes.parquet`` (code, description,
parent_codes) and ``metadata/subject_splits.parquet`` (subject_id, split: train / tuning /
held_out). See https://github.com/Medical-Event-Data-Standard/meds.

Reading is lenient where MEDS writers differ (any integer subject id, any timestamp unit, float64
values, nested shard folders) and strict where the audit would be wrong: every problem is one
line naming the shard (or metadata file), the field and the row. Rows, not subject ids, are named
in errors: ids stay out of logs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rotelab.errors import RotelabError

_LAYOUT = "expected data/*.parquet, metadata/subject_splits.parquet and optionally metadata/codes.parquet"


@dataclass
class Subject:
    """One subject's events, in time order (static facts first)."""

    subject_id: int
    split: str
    shard: str  # path relative to the root
    rows: np.ndarray  # (E,) row of each event in its shard
    times: np.ndarray  # (E,) int64 microseconds since the epoch; meaningless where static
    static: np.ndarray  # (E,) bool: time is null
    codes: list[str]
    values: np.ndarray  # (E,) float64, NaN where absent
    extra: dict[str, Any] = field(default_factory=dict)  # subgroup columns: first non-null value


@dataclass
class MedsData:
    root: Path
    subjects: list[Subject]
    descriptions: dict[str, str]
    files: list[Path]  # every file read (the run's inputs)
    left_out: dict[str, int] = field(default_factory=dict)  # why subjects were not read, counted


def _names():
    import meds

    return meds


def shards_of(root: Path) -> list[Path]:
    data = root / _names().data_subdirectory
    return sorted(p for p in data.rglob("*.parquet") if p.is_file()) if data.is_dir() else []


def _rel(root: Path, p: Path) -> str:
    try:
        return str(p.relative_to(root))
    except ValueError:
        return str(p)


def _schema(path: Path, where: str):
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path)
    except Exception as e:  # pyarrow raises several types for a non-Parquet file
        raise RotelabError(f"{where}: not a readable Parquet file ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None


def _require(schema, where: str, column: str, kinds: Sequence[str], wanted: str, *, why: str = "MEDS data schema") -> None:
    import pyarrow.types as pt

    if column not in schema.names:
        raise RotelabError(f"{where}: missing column '{column}' ({why}: {wanted})")
    t = schema.field(column).type
    if pt.is_dictionary(t):
        t = t.value_type
    ok = {"int": pt.is_integer, "time": lambda x: pt.is_timestamp(x) or pt.is_null(x), "str": lambda x: pt.is_string(x) or pt.is_large_string(x),
          "num": lambda x: pt.is_floating(x) or pt.is_integer(x) or pt.is_null(x)}
    if not any(ok[k](t) for k in kinds):
        raise RotelabError(f"{where}: field '{column}' is {t}; MEDS requires {wanted}")


def _no_nulls(col, where: str, name: str) -> None:
    if col.null_count:
        import pyarrow.compute as pc

        row = int(pc.index(pc.is_null(col), True).as_py())
        raise RotelabError(f"{where}: row {row}: field '{name}' is null")


def read_meds(root: Path | str, *, subgroup_columns: Sequence[str] = (), splits: Sequence[str] | None = None) -> MedsData:
    """Read and check a MEDS root; subjects of ``splits`` (default: all) in split-file order.

    Subjects in the data but not in the split file, or in another split, are left out and counted.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    m = _names()
    root = Path(root)
    if not root.exists():
        raise RotelabError(f"{root}: MEDS folder not found")
    if not root.is_dir():
        raise RotelabError(f"{root}: is a file; a MEDS dataset is a folder ({_LAYOUT})")
    shards = shards_of(root)
    if not shards:
        raise RotelabError(f"{root}: not a MEDS dataset (no data/*.parquet shards; {_LAYOUT})")
    split_path = root / m.subject_splits_filepath
    if not split_path.is_file():
        raise RotelabError(f"{root}: not a MEDS dataset for an audit: {m.subject_splits_filepath} is missing (subject_id, split: train / tuning / held_out)")
    split_of, split_row = _read_splits(split_path, m.subject_splits_filepath)

    subjects: dict[int, Subject] = {}
    shard_of: dict[int, str] = {}
    left = {"no split": 0, "other split": 0}
    for path in shards:
        where = _rel(root, path)
        schema = _schema(path, where)
        _require(schema, where, m.DataSchema.subject_id_name, ["int"], "subject_id int64")
        _require(schema, where, m.DataSchema.time_name, ["time"], "time timestamp[us]")
        _require(schema, where, m.DataSchema.code_name, ["str"], "code string")
        has_value = m.DataSchema.numeric_value_name in schema.names
        if has_value:
            _require(schema, where, m.DataSchema.numeric_value_name, ["num"], "numeric_value float32")
        for c in subgroup_columns:
            if c not in schema.names:
                raise RotelabError(f"{where}: missing column '{c}' (named by --subgroup)")
        cols = [m.DataSchema.subject_id_name, m.DataSchema.time_name, m.DataSchema.code_name] + ([m.DataSchema.numeric_value_name] if has_value else []) + list(subgroup_columns)
        t = pq.read_table(path, columns=cols)
        sid_col, code_col = t.column(m.DataSchema.subject_id_name), t.column(m.DataSchema.code_name)
        _no_nulls(sid_col, where, m.DataSchema.subject_id_name)
        _no_nulls(code_col, where, m.DataSchema.code_name)
        sid = sid_col.to_numpy().astype(np.int64)
        tcol = t.column(m.DataSchema.time_name)
        static = tcol.is_null().to_numpy(zero_copy_only=False)
        import pyarrow as pa

        times = (tcol.cast(pa.timestamp("us")).cast(pa.int64()).fill_null(0).to_numpy() if not pa.types.is_null(tcol.type) else np.zeros(len(t), dtype=np.int64))
        codes = pc.cast(code_col, pa.string()).to_pylist()
        for r, c in enumerate(codes):
            if not c.strip():
                raise RotelabError(f"{where}: row {r}: field 'code' is empty")
        values = (t.column(m.DataSchema.numeric_value_name).cast(pa.float64()).fill_null(np.nan).to_numpy() if has_value else np.full(len(t), np.nan))
        extra = {c: t.column(c).to_pylist() for c in subgroup_columns}
        order = np.argsort(sid, kind="stable")
        bounds = np.flatnonzero(np.diff(sid[order])) + 1
        for idx in np.split(order, bounds):
            if not len(idx):
                continue
            s = int(sid[idx[0]])
            if s in shard_of:
                raise RotelabError(f"{where}: row {int(idx[0])}: field 'subject_id': the subject also has events in {shard_of[s]} (MEDS keeps a subject in one shard)")
            split = split_of.get(s)
            if split is None:
                left["no split"] += 1
                continue
            if splits is not None and split not in splits:
                left["other split"] += 1
                continue
            shard_of[s] = where
            # static facts first, then time order (stable: same-time events keep the shard's order)
            idx = idx[np.lexsort((np.where(static[idx], 0, times[idx]), ~static[idx]))]
            subjects[s] = Subject(s, split, where, idx, times[idx], static[idx], [codes[i] for i in idx], values[idx],
                                  {c: next((extra[c][i] for i in idx if extra[c][i] is not None), None) for c in subgroup_columns})
    for s, split in split_of.items():
        if (splits is None or split in splits) and s not in subjects:
            raise RotelabError(f"{m.subject_splits_filepath}: row {split_row[s]}: field 'subject_id': the subject has no events in data/")
    order = [s for s in split_of if s in subjects]
    files = shards + [split_path]
    codes_path = root / m.code_metadata_filepath
    descriptions = _read_descriptions(codes_path, m.code_metadata_filepath) if codes_path.is_file() else {}
    if codes_path.is_file():
        files.append(codes_path)
    return MedsData(root, [subjects[s] for s in order], descriptions, files, {k: v for k, v in left.items() if v})


def _read_splits(path: Path, where: str) -> tuple[dict[int, str], dict[int, int]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _schema(path, where)
    _require(schema, where, "subject_id", ["int"], "subject_id int64", why="MEDS subject splits")
    _require(schema, where, "split", ["str"], "split string", why="MEDS subject splits")
    t = pq.read_table(path, columns=["subject_id", "split"])
    _no_nulls(t.column("subject_id"), where, "subject_id")
    _no_nulls(t.column("split"), where, "split")
    split_of: dict[int, str] = {}
    row_of: dict[int, int] = {}
    for r, (s, sp) in enumerate(zip(t.column("subject_id").to_pylist(), t.column("split").cast(pa.string()).to_pylist())):
        if s in split_of:
            raise RotelabError(f"{where}: row {r}: field 'subject_id': the subject is listed twice")
        split_of[int(s)] = sp
        row_of[int(s)] = r
    return split_of, row_of


def _read_descriptions(path: Path, where: str) -> dict[str, str]:
    import pyarrow.parquet as pq

    schema = _schema(path, where)
    _require(schema, where, "code", ["str"], "code string", why="MEDS code metadata")
    if "description" not in schema.names:
        return {}
    t = pq.read_table(path, columns=["code", "description"])
    return {c: d for c, d in zip(t.column("code").to_pylist(), t.column("description").to_pylist()) if c and d}


# -- writing ---------------------------------------------------------------------------------
def write_meds(root: Path | str, events: dict[str, list], splits: dict[int, str], descriptions: dict[str, str], *, name: str, version: str) -> list[Path]:
    """Write a MEDS root: one shard per split (``data/<split>/0.parquet``), codes and splits.

    ``events``: columns subject_id, time (datetime or None), code, numeric_value (float or None),
    rows grouped by subject and sorted by time. Tables are cast to the ``meds`` schemas and
    validated by them. Returns the files written.
    """
    import pyarrow as pa

    from rotelab.core.runs import write_parquet
    from rotelab.core.io import write_json

    m = _names()
    root = Path(root)
    table = m.DataSchema.align(pa.table({k: events[k] for k in ("subject_id", "time", "code", "numeric_value")}))
    m.DataSchema.validate(table)
    files = []
    sid = np.asarray(events["subject_id"])
    for split in sorted(set(splits.values())):
        keep = np.isin(sid, [s for s, sp in splits.items() if sp == split])
        p = root / m.data_subdirectory / split / "0.parquet"
        write_parquet(p, table.filter(pa.array(keep)))
        files.append(p)
    subj = sorted(splits)
    split_table = m.SubjectSplitSchema.align(pa.table({"subject_id": subj, "split": [splits[s] for s in subj]}))
    m.SubjectSplitSchema.validate(split_table)
    write_parquet(root / m.subject_splits_filepath, split_table)
    codes = sorted(descriptions)
    code_table = m.CodeMetadataSchema.align(pa.table({"code": codes, "description": [descriptions[c] for c in codes], "parent_codes": pa.array([None] * len(codes), pa.list_(pa.string()))}))
    m.CodeMetadataSchema.validate(code_table)
    write_parquet(root / m.code_metadata_filepath, code_table)
    write_json(root / m.dataset_metadata_filepath, {"dataset_name": name, "dataset_version": version, "etl_name": "rotelab.clinical.synth", "etl_version": version,
                                                     "meds_version": _meds_version(), "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
    return files + [root / m.subject_splits_filepath, root / m.code_metadata_filepath]


def _meds_version() -> str:
    from importlib.metadata import version

    return version("meds")
