import numpy as np
import pytest

from rotelab.recsys.cache import SummaryCache, dequantize_int8, quantize_int8


def test_int8_roundtrip_error_is_at_most_half_a_step():
    x = np.random.default_rng(0).normal(size=(32, 16)).astype(np.float32) * np.arange(1, 33)[:, None]
    q, s = quantize_int8(x)
    assert q.dtype == np.int8 and np.abs(q).max() == 127
    assert np.all(np.abs(dequantize_int8(q, s) - x) <= s[:, None] / 2 + 1e-6)


def test_store_roundtrip_versions_and_staleness_fields(tmp_path):
    z = np.random.default_rng(1).normal(size=(8, 4)).astype(np.float32)
    with SummaryCache(tmp_path / "c.sqlite") as c:
        c.put(7, "v1", z, event_ts=123, n_events=900)
        c.put(7, "v2", z * 2, event_ts=456, n_events=950)
    with SummaryCache(tmp_path / "c.sqlite") as c:  # persisted on disk, read by a new connection
        a, b = c.get(7, "v1"), c.get(7, "v2")
        assert (a.event_ts, a.n_events, b.event_ts) == (123, 900, 456)
        assert a.nbytes == 8 * 4 + 8 * 4  # int8 values + one float32 scale per row
        np.testing.assert_allclose(a.z, z, atol=np.abs(z).max() / 254 + 1e-6)
        np.testing.assert_allclose(b.z, 2 * z, atol=2 * np.abs(z).max() / 254 + 1e-6)
        assert c.get(8, "v1") is None
        got = c.get_many([8, 7], "v1")
        assert got[0] is None and got[1].event_ts == 123


def test_fp32_store_is_exact(tmp_path):
    z = np.random.default_rng(2).normal(size=(3, 5)).astype(np.float32)
    with SummaryCache(tmp_path / "f.sqlite", dtype="fp32") as c:
        c.put(1, "v", z, event_ts=0, n_events=1)
        np.testing.assert_array_equal(c.get(1, "v").z, z)
        assert c.get(1, "v").nbytes == z.nbytes


def test_unknown_dtype_is_refused(tmp_path):
    with pytest.raises(ValueError, match="int8 or fp32; got 'fp16'"):
        SummaryCache(tmp_path / "x.sqlite", dtype="fp16")
