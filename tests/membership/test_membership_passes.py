"""Extra passes: checkpointed per batch (a resumed pass equals an uninterrupted one), and token-id
lists longer than the context scored exactly as the signal pass scores their text."""

from __future__ import annotations

import numpy as np
import pytest

from rotelab.core.models import load_model
from rotelab.core.signals import compute_signals
from rotelab.membership.passes import checkpointed_map, logp_of_id_lists


def _recorder(fail_after: int | None = None):
    seen: list[list[int]] = []

    def fn(batch):
        if fail_after is not None and len(seen) == fail_after:
            raise KeyboardInterrupt
        seen.append([x[0] for x in batch])
        return [np.asarray(x, dtype=float) * 10 for x in batch]

    return fn, seen


def test_an_interrupted_pass_resumes_with_the_same_batches(tmp_path):
    items = [[i] * (1 + (i * 7) % 5) for i in range(23)]  # lengths 1..5
    whole_fn, whole_batches = _recorder()
    whole = checkpointed_map(whole_fn, items, folder=None, batch_size=4)
    cut_fn, cut_batches = _recorder(fail_after=3)
    with pytest.raises(KeyboardInterrupt):
        checkpointed_map(cut_fn, items, folder=tmp_path, batch_size=4)
    rest_fn, rest_batches = _recorder()
    resumed = checkpointed_map(rest_fn, items, folder=tmp_path, batch_size=4)
    assert cut_batches + rest_batches == whole_batches  # nothing twice, same batches
    assert all(np.array_equal(a, b) for a, b in zip(resumed, whole))
    assert [len(x) for x in whole] == [len(x) for x in items]


def test_a_saved_item_whose_input_changed_is_recomputed(tmp_path):
    fn, _ = _recorder()
    checkpointed_map(fn, [[1, 2], [3]], folder=tmp_path, batch_size=1)
    fn2, seen = _recorder()
    out = checkpointed_map(fn2, [[1, 2], [4]], folder=tmp_path, batch_size=5)
    assert seen == [[4]] and out[1].tolist() == [40.0] and out[0].tolist() == [10.0, 20.0]


@pytest.fixture(scope="module")
def long_text(tiny_splits):
    return max((r["text"] for r in tiny_splits["members"] if r["kind"] == "book"), key=len)


@pytest.mark.parametrize("policy", ["window", "truncate"])
def test_long_id_lists_line_up_with_the_texts_signals(tiny_testbed, long_text, policy):
    lm = load_model(tiny_testbed, long_text=policy)
    ids = lm.tokenize([long_text])[0]
    assert len(ids) > lm.max_length + lm.max_length // 2  # needs at least three windows
    sig = compute_signals(lm, [long_text], progress=False)[0]
    lp = logp_of_id_lists(lm, [sig.token_ids.tolist()], batch_size=4)[0]
    assert lp.shape == sig.logp.shape == ((len(ids) if policy == "window" else lm.max_length) - 1,)
    assert np.allclose(lp, sig.logp, atol=1e-5)
