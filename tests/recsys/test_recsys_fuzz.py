"""Fuzzing the interaction-log readers: any file either loads into a consistent store or is refused
in one line (a RotelabError), never another exception."""

import tempfile
from pathlib import Path

import numpy as np
import pytest

from rotelab.errors import RotelabError
from rotelab.recsys.events import read_events, write_store

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

NUMBER = st.integers(0, 10**6)
JUNK = st.one_of(st.integers(-5, 2**70), st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["", "x", "1e3", "nan", "true", " 4 ", "2020-01-01", "\u00e9"]))
FORMATS = {  # file name: (header, separator, columns)
    "log_standard_f.csv": ("user_id,video_id,time_ms,is_click,is_like,is_follow,is_comment,is_forward", ",", 8),
    "ratings.csv": ("userId,movieId,rating,timestamp", ",", 4),
    "ratings.dat": (None, "::", 4),
}


def _rows(name):
    _, _, n = FORMATS[name]
    good = st.lists(NUMBER, min_size=n, max_size=n)
    odd = st.lists(st.one_of(NUMBER, JUNK), min_size=n - 1, max_size=n + 1)
    return st.lists(st.one_of(good, good, good, good, odd), max_size=12)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(sorted(FORMATS)))
def test_any_log_loads_consistently_or_is_refused_in_one_line(data, name):
    header, sep, _ = FORMATS[name]
    rows = data.draw(_rows(name))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / name).write_text("\n".join(([header] if header else []) + [sep.join(map(str, r)) for r in rows]) + "\n", encoding="utf-8")
        try:
            log = read_events(d)
        except RotelabError as e:
            hypothesis.event("refused")
            assert "\n" not in str(e) and str(e).startswith(str(d))
            return
        hypothesis.event("loaded")
        store = write_store(log, d / "store")
        assert int(store.offsets[-1]) == len(log) == len(rows)
        for u in range(store.n_users):
            _, ts, _ = store.slice(u, 0, None)
            assert np.all(np.diff(ts) >= 0)  # each user's events in time order
        assert 1 <= np.asarray(store.items).min() and np.asarray(store.items).max() <= store.n_items
