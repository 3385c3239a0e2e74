import numpy as np
import pytest

from rotelab.errors import RotelabError
from rotelab.recsys.events import build_store, detect_format
from rotelab.recsys.synth import write_synthetic
from tests.recsys.conftest import MICRO


def test_ml1m_file_is_parsed_sorted_by_user_then_time(tmp_path):
    (tmp_path / "ratings.dat").write_text("2::50::5::30\n1::70::3::20\n1::50::4::10\n2::90::1::10\n")
    s = build_store(tmp_path, tmp_path / "store")
    assert s.fmt == "ml-1m" and s.tasks == ("liked",) and s.n_items == 3
    assert s.users.tolist() == [1, 2] and s.lengths().tolist() == [2, 2]
    items, ts, labels = s.slice(0, 0, None)
    assert ts.tolist() == [10, 20] and labels.tolist() == [1, 0]  # rating 4 liked, 3 not
    assert items.tolist() == [1, 2]  # raw 50 -> 1, 70 -> 2 (0 is padding)
    assert s.slice(1, -1, None)[0].tolist() == [1]  # user 2's latest event: raw item 50


def test_all_three_formats_give_the_same_events(tmp_path):
    from dataclasses import replace

    stores = {}
    for fmt in ("kuairand", "ml-1m", "ml-20m"):
        write_synthetic(tmp_path / fmt, replace(MICRO, n_users=3, lifelong_lens=(), fmt=fmt))
        stores[fmt] = build_store(tmp_path / fmt, tmp_path / f"{fmt}_store")
    k, m1, m20 = stores["kuairand"], stores["ml-1m"], stores["ml-20m"]
    assert k.tasks[:2] == ("is_click", "is_like") and m1.tasks == ("liked",)
    for s in (m1, m20):
        np.testing.assert_array_equal(np.asarray(s.items), np.asarray(k.items))
        np.testing.assert_array_equal(np.asarray(s.offsets), np.asarray(k.offsets))
        np.testing.assert_array_equal(np.asarray(s.labels), np.asarray(k.labels) & 1)  # liked == clicked


def test_unknown_folder_contents_are_named_in_one_line(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(RotelabError, match="found none of ratings.dat"):
        detect_format(tmp_path)


def test_missing_column_is_named(tmp_path):
    (tmp_path / "log_standard_x.csv").write_text("user_id,video_id,time_ms,is_click\n1,2,3,1\n")
    with pytest.raises(RotelabError, match="missing column 'is_like'"):
        build_store(tmp_path, tmp_path / "s")


def test_store_is_memory_mapped(micro_store):
    assert isinstance(micro_store.items, np.memmap)
