"""The generator plants interests that only the far past reveals."""

from dataclasses import replace

import numpy as np

from rotelab.core.stats import roc_auc
from rotelab.recsys import synth
from tests.recsys.conftest import MICRO


def _topic_counts(store, window):
    """Per candidate: events of the candidate's topic in the far past (first half of the history)
    or, with ``window``, in the last ``window`` events."""
    cluster, _ = synth._topic_sampler(np.random.default_rng(MICRO.seed), MICRO)  # the generator's first draw
    raw = np.load(store.path / "item_ids.npy")
    topic = np.r_[-1, cluster[raw - 1]]  # store item index (1..V) -> topic; 0 is padding
    scores, likes = [], []
    for u in range(store.n_users):
        n = store.length(u)
        hist = store.slice(u, 0, n - 16)[0]
        cand, _, lab = store.slice(u, n - 16, n)
        counts = np.bincount(topic[hist[: n // 2] if window is None else hist[-window:]], minlength=MICRO.n_clusters)
        scores += counts[topic[cand]].tolist()
        likes += ((lab & 2) > 0).tolist()  # bit 1 = is_like
    return np.array(scores), np.array(likes)


def test_long_range_likes_are_visible_in_the_whole_history_only(micro_store):
    far, y = _topic_counts(micro_store, None)
    recent, _ = _topic_counts(micro_store, 256)
    assert y.sum() >= 10
    assert roc_auc(far, y) > 0.72  # liked items belong to topics that fill the far past (some old-topic
    # candidates are not liked, so even a perfect old-topic detector stays near 0.8)
    assert roc_auc(recent, y) < 0.65  # but are no more frequent than others in the last 256 events


def test_same_seed_same_log(tmp_path):
    cfg = replace(MICRO, n_users=2, lifelong_lens=())
    a, b = synth.write_synthetic(tmp_path / "a", cfg), synth.write_synthetic(tmp_path / "b", cfg)
    assert a.read_bytes() == b.read_bytes()
