"""MEDS in and out: a dataset written with pyarrow from the ``meds`` schema (not rotelab's writer),
the token format, and every bad input as one line naming the file and the field."""

from __future__ import annotations

import datetime as dt

import meds
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rotelab.clinical.medsio import read_meds
from rotelab.clinical.tokens import TokenFormat
from rotelab.errors import RotelabError

T0 = dt.datetime(2150, 3, 1, 8)


def _events(sid: int, age: int, codes: list[tuple[float, str, float | None]], sex: str = "F") -> list[tuple]:
    rows = [(sid, T0 - dt.timedelta(days=365.25 * age + 10), meds.birth_code, None), (sid, None, f"GENDER//{sex}", None)]
    return rows + [(sid, T0 + dt.timedelta(days=d), c, v) for d, c, v in codes]


def write_foreign_meds(root, subjects: dict[int, list[tuple]], splits: dict[int, str], *, drop: str | None = None, extra_split: int | None = None):
    """A MEDS root the way another ETL writes one: the ``meds`` package's pyarrow schema, one shard."""
    rows = [r for sid in sorted(subjects) for r in subjects[sid]]
    cols = {"subject_id": [r[0] for r in rows], "time": [r[1] for r in rows], "code": [r[2] for r in rows], "numeric_value": [r[3] for r in rows],
            "text_value": [None] * len(rows)}
    schema = meds.DataSchema.schema()
    if drop:
        schema = schema.remove(schema.get_field_index(drop))
        cols.pop(drop)
    (root / "data").mkdir(parents=True)
    (root / "metadata").mkdir(parents=True)
    pq.write_table(pa.table(cols, schema=schema), root / "data" / "shard0.parquet")
    sids = sorted(splits) + ([extra_split] if extra_split is not None else [])
    pq.write_table(pa.table({"subject_id": pa.array(sids, pa.int64()), "split": [splits.get(s, "held_out") for s in sids]}), root / meds.subject_splits_filepath)
    pq.write_table(pa.table({"code": ["LAB//CD4", "DIAGNOSIS//ICD10//B20"], "description": ["CD4 count", "HIV disease"]}), root / meds.code_metadata_filepath)


SUBJECTS = {
    1: _events(1, 76, [(0, "DIAGNOSIS//ICD10//I10", None), (0, "LAB//CD4", 150.0), (3, "MEDICATION//Insulin glargine//SC", None)]),
    2: _events(2, 40, [(0, "LAB//CD4", 800.0), (45, "DIAGNOSIS//ICD10//B20", None)], sex="M"),
    3: _events(3, 55, [(0, "LAB//CD4", 500.0), (0.5, "DIAGNOSIS//ICD10//I10", None)]),
}
SPLITS = {1: "train", 2: "train", 3: "held_out"}


def test_foreign_meds_dataset_reads_and_tokenises_in_the_paper_format(tmp_path):
    write_foreign_meds(tmp_path, SUBJECTS, SPLITS)
    data = read_meds(tmp_path)
    assert [s.subject_id for s in data.subjects] == [1, 2, 3] and [s.split for s in data.subjects] == ["train", "train", "held_out"]
    assert data.descriptions["LAB//CD4"] == "CD4 count"
    fmt = TokenFormat.fit(data, value_bins=2)  # bins on the train split: CD4 150, 800 -> edge 475
    assert fmt.edges["LAB//CD4"] == [475.0]
    toks = fmt.encode(data.subjects[0])
    assert toks == ["AGE//76", "GENDER//F", "DIAGNOSIS//ICD10//I10", "LAB//CD4//0", "TIME//2", "MEDICATION//Insulin_glargine//SC"]
    assert fmt.encode(data.subjects[1]) == ["AGE//40", "GENDER//M", "LAB//CD4//1", "TIME//40-60", "DIAGNOSIS//ICD10//B20"]
    assert fmt.encode(data.subjects[2])[2:] == ["LAB//CD4//1", "TIME//0", "DIAGNOSIS//ICD10//I10"]
    assert fmt.descriptions["LAB//CD4//0"] == "CD4 count, value bin 0"
    assert set(fmt.to_ids(toks)) <= set(range(len(fmt.vocab)))


def test_meds_writer_round_trips_through_the_reader(tmp_path):
    from rotelab.clinical.config import synth_preset
    from rotelab.clinical.synth import write_synthetic

    res = write_synthetic(tmp_path, synth_preset("tiny"))
    data = read_meds(tmp_path)
    assert len(data.subjects) == res["subjects"] and sum(len(s.codes) for s in data.subjects) == res["events"]
    assert {s.split for s in data.subjects} == {"train", "tuning", "held_out"}
    # 16 identical copies of each x16 canary: same codes under distinct subject ids
    truth = pq.read_table(tmp_path / "truth" / "planted.parquet").to_pydict()
    group = [g for g, c in zip(truth["canary_group"], truth["copies"]) if c == 16][0]
    sids = {s for s, g in zip(truth["subject_id"], truth["canary_group"]) if g == group}
    records = {tuple(s.codes) for s in data.subjects if s.subject_id in sids}
    assert len(sids) == 16 and len(records) == 1


@pytest.mark.parametrize("column", ["code", "subject_id", "time"])
def test_shard_missing_a_column_is_one_line_naming_shard_and_field(tmp_path, column):
    write_foreign_meds(tmp_path, SUBJECTS, SPLITS, drop=column)
    with pytest.raises(RotelabError, match=rf"^data/shard0\.parquet: missing column '{column}'") as e:
        read_meds(tmp_path)
    assert "\n" not in str(e.value) and e.value.exit_code == 2


def test_code_absent_from_the_vocabulary_names_shard_row_and_field(tmp_path):
    write_foreign_meds(tmp_path / "a", {k: SUBJECTS[k] for k in (1, 3)}, {1: "train", 3: "held_out"})
    fmt = TokenFormat.fit(read_meds(tmp_path / "a"))
    write_foreign_meds(tmp_path / "b", SUBJECTS, SPLITS)
    other = read_meds(tmp_path / "b")
    with pytest.raises(RotelabError, match=r"shard0\.parquet: row \d+: field 'code' 'GENDER//M' is not in the model's vocabulary") as e:
        fmt.encode(other.subjects[1], root=other.root)
    assert "\n" not in str(e.value) and e.value.exit_code == 2


def test_subject_without_events_names_the_split_file_row(tmp_path):
    write_foreign_meds(tmp_path, SUBJECTS, SPLITS, extra_split=99)
    with pytest.raises(RotelabError, match=r"^metadata/subject_splits\.parquet: row 3: field 'subject_id': the subject has no events") as e:
        read_meds(tmp_path)
    assert "\n" not in str(e.value) and e.value.exit_code == 2


def test_non_meds_folders_are_one_line(tmp_path):
    with pytest.raises(RotelabError, match="MEDS folder not found"):
        read_meds(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(RotelabError, match=r"not a MEDS dataset \(no data/\*\.parquet shards"):
        read_meds(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.parquet").write_text("not parquet")
    (tmp_path / "metadata").mkdir()
    pq.write_table(pa.table({"subject_id": [1], "split": ["train"]}), tmp_path / "metadata" / "subject_splits.parquet")
    with pytest.raises(RotelabError, match=r"^data/x\.parquet: not a readable Parquet file") as e:
        read_meds(tmp_path)
    assert "\n" not in str(e.value) and e.value.exit_code == 2


def test_split_file_missing_is_named(tmp_path):
    write_foreign_meds(tmp_path, SUBJECTS, SPLITS)
    (tmp_path / meds.subject_splits_filepath).unlink()
    with pytest.raises(RotelabError, match="subject_splits.parquet is missing"):
        read_meds(tmp_path)


def test_wrong_field_type_is_named(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "metadata").mkdir()
    pq.write_table(pa.table({"subject_id": ["a"], "time": pa.array([None], pa.timestamp("us")), "code": ["X"]}), tmp_path / "data" / "0.parquet")
    pq.write_table(pa.table({"subject_id": [1], "split": ["train"]}), tmp_path / "metadata" / "subject_splits.parquet")
    with pytest.raises(RotelabError, match=r"^data/0\.parquet: field 'subject_id' is string; MEDS requires subject_id int64"):
        read_meds(tmp_path)


def test_value_bins_are_quantiles_of_the_train_split():
    from rotelab.clinical.medsio import MedsData, Subject

    def subj(sid, split, v):
        return Subject(sid, split, "s", np.arange(1), np.zeros(1, dtype=np.int64), np.zeros(1, dtype=bool), ["LAB//x"], np.array([v]))

    data = MedsData(None, [subj(i, "train", float(i)) for i in range(1, 101)] + [subj(500, "held_out", 1e6)], {}, [])
    fmt = TokenFormat.fit(data, value_bins=4)
    assert np.allclose(fmt.edges["LAB//x"], [25.75, 50.5, 75.25])
    assert fmt.value_token("LAB//x", 10.0) == "LAB//x//0" and fmt.value_token("LAB//x", 1e6) == "LAB//x//3"


def test_foreign_meds_dataset_is_audited_end_to_end(tmp_path):
    """Another tool's MEDS folder (pyarrow, the ``meds`` schema) audited end to end (a small
    untrained model over its vocabulary: this checks the plumbing, not the findings); every train
    and held-out subject gets a verdict, the tuning split is left out."""
    from rotelab.clinical.api import audit
    from rotelab.clinical.config import AuditConfig, train_preset
    from rotelab.clinical.tokens import build_tokenizer
    from rotelab.clinical.train import new_ehr_model
    from rotelab.core.training import save_model_dir

    rng = np.random.default_rng(3)
    pool = ["DIAGNOSIS//ICD10//I10", "DIAGNOSIS//ICD10//E11", "DIAGNOSIS//ICD10//F32", "MEDICATION//Metformin//PO", "PROCEDURE//ECG"]
    subjects, splits = {}, {}
    for sid in range(100, 140):
        codes = [(float(d), str(rng.choice(pool)), None) for d in sorted(rng.uniform(0, 400, size=6))] + [(401.0, "LAB//CD4", float(rng.uniform(100, 900)))]
        subjects[sid] = _events(sid, int(rng.integers(20, 90)), codes, sex="FM"[sid % 2])
        splits[sid] = "held_out" if sid % 4 == 0 else "tuning" if sid % 4 == 1 else "train"
    write_foreign_meds(tmp_path / "meds", subjects, splits)
    fmt = TokenFormat.fit(read_meds(tmp_path / "meds"))
    model = tmp_path / "model"
    save_model_dir(new_ehr_model(train_preset("tiny", n_layer=1, n_embd=16, n_head=2, context=32), len(fmt.vocab), fmt.ids), build_tokenizer(fmt.vocab, context=32), model)
    fmt.save(model)
    cfg = AuditConfig(tests=("T1", "T2", "T4"), rungs=("random", "static", "3"), t1_rung="3", n_samples=2, new_tokens=4, embeddings="model")
    s = audit(model, tmp_path / "meds", out=tmp_path / "run", config=cfg, progress=False)
    pts = pq.read_table(tmp_path / "run" / "evidence" / "patients.parquet").to_pydict()
    audited = {sid for sid, sp in splits.items() if sp != "tuning"}
    assert set(pts["subject_id"]) == audited and set(pts["verdict"]) <= {"memorization", "generalization", "no finding"}
    assert s["patients"]["members"] == 20 and s["patients"]["held_out"] == "<20"  # 10 held-out: a small cell
    lad = pq.read_table(tmp_path / "run" / "evidence" / "ladder.parquet").to_pydict()
    assert set(lad["rung"]) == {"random", "static", "3"} and len(lad["rung"]) == 3 * len(audited)
