import json

import pytest

from rotelab.core.runs import RunFolder, read_parquet
from rotelab.core.io import atomic_write_text
from rotelab.errors import RotelabError


def test_manifest_records_command_options_versions(tmp_path):
    run = RunFolder(tmp_path / "r", command="signals", options={"k": 0.2, "p": tmp_path}, seed=3)
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert m["command"] == "signals" and m["seed"] == 3 and m["options"]["k"] == 0.2
    assert "torch" in m["versions"] and "rotelab" in m["versions"]
    run.note("long_text", {"n": 1})
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["notes"]["long_text"] == {"n": 1}


def test_resume_skips_finished_steps(tmp_path):
    calls = []
    run = RunFolder(tmp_path, command="x", options={})
    run.step("a", lambda: calls.append("a"))
    again = RunFolder(tmp_path, command="x", options={})
    assert again.step("a", lambda: calls.append("a2"), load=lambda: "loaded") == "loaded"
    again.step("b", lambda: calls.append("b"))
    assert calls == ["a", "b"]


def test_reopening_keeps_what_capabilities_recorded(tmp_path):
    run = RunFolder(tmp_path, command="x", options={"a": 1}, seed=0)
    run.manifest["training"] = {"steps": 5}
    run.save_manifest()
    again = RunFolder(tmp_path, command="x", options={"a": 1}, seed=0)
    assert again.manifest["training"] == {"steps": 5}


def test_other_command_in_same_folder_refused(tmp_path):
    RunFolder(tmp_path, command="x", options={})
    with pytest.raises(RotelabError, match="holds a 'x' run"):
        RunFolder(tmp_path, command="y", options={})


def test_atomic_write_leaves_no_partial_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "a.json"
    atomic_write_text(p, "old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(p, "new")
    assert p.read_text() == "old" and [x.name for x in tmp_path.iterdir()] == ["a.json"]


def test_parquet_roundtrip(tmp_path):
    run = RunFolder(tmp_path, command="x", options={})
    run.write_parquet("t.parquet", {"id": ["a", "b"], "s": [0.5, 1.5], "l": [[1, 2], [3]]})
    t = read_parquet(tmp_path / "t.parquet")
    assert list(t["id"]) == ["a", "b"] and list(t["s"]) == [0.5, 1.5]
