import json

import numpy as np
import pytest

from rotelab.core.api import as_samples
from rotelab.core.data import Sample, check_disjoint, read_jsonl
from rotelab.core.io import load_npy, safe_filename
from rotelab.errors import RotelabError


@pytest.mark.parametrize("name", ["../../../x", "/etc/passwd", "a/b\\c", "..", ".", "", "x\x00y", "é東京 💥", "a" * 500])
def test_safe_filename_never_leaves_its_folder(tmp_path, name):
    f = safe_filename(name)
    assert "/" not in f and "\\" not in f and not f.startswith(".") and len(f) <= 73
    p = (tmp_path / f).resolve()
    assert p.parent == tmp_path.resolve()
    p.write_text("ok")  # a valid file name on this system


def test_safe_filename_keeps_distinct_ids_apart():
    ids = ["a/b", "a_b", "a b", "../a_b", "A_B"]
    assert len({safe_filename(i) for i in ids}) == len(ids)


def test_load_npy_refuses_object_arrays(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(RotelabError, match="not a plain numeric array"):
        load_npy(p)


def test_utf8_bom_is_read_not_refused(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_bytes("\ufeff".encode() + b'{"text": "hello"}\n')
    assert [s.text for s in read_jsonl(p)] == ["hello"]


def test_lone_surrogate_is_one_line_naming_file_line_field(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"text": "ok"}\n{"text": "bad \\ud800 here"}\n')
    with pytest.raises(RotelabError) as e:
        read_jsonl(p)
    assert str(e.value) == f"{p}:2: field 'text' holds a lone surrogate (U+D800 at character 4)"


def test_default_ids_carry_the_files_role(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"text": "x"}\n')
    b.write_text('{"text": "y"}\n')
    assert read_jsonl(a, role="members")[0].id == "members:0"
    assert read_jsonl(b)[0].id == "b:0"  # the file's stem by default
    check_disjoint(read_jsonl(a, role="members"), read_jsonl(b, role="nonmembers"), "x")


def test_shared_explicit_ids_or_texts_are_refused():
    with pytest.raises(RotelabError, match="1 texts appear in both"):
        check_disjoint([Sample("a", "same")], [Sample("b", "same")], "--members and --nonmembers")
    with pytest.raises(RotelabError, match="ids appear in both"):
        check_disjoint([Sample("a", "x")], [Sample("a", "y")], "--members and --nonmembers")


def test_as_samples_takes_paths_samples_and_strings(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text(json.dumps({"id": "q", "text": "t"}) + "\n")
    assert as_samples(p, role="members")[0].id == "q"
    assert [s.id for s in as_samples(["u", "v"], role="members")] == ["members:0", "members:1"]
    with pytest.raises(RotelabError, match="members: text 1 is empty"):
        as_samples(["u", " "], role="members")
    with pytest.raises(RotelabError, match="members: duplicate sample ids"):
        as_samples([Sample("a", "x"), Sample("a", "y")], role="members")


def test_read_json_errors_are_one_line(tmp_path):
    from rotelab.core.io import read_json

    bad = tmp_path / "a.json"
    bad.write_text('{"a": 1,\n oops}')
    with pytest.raises(RotelabError, match=r"a.json:2: malformed JSON \(Expecting property name"):
        read_json(bad)
    bad.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(RotelabError, match=r"a.json: not valid UTF-8 \(byte 7\)"):
        read_json(bad)
