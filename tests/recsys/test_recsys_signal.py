"""The planted far-back interests are readable from topic counts and need the whole history (micro data)."""

import numpy as np
import pytest

from rotelab.recsys.events import build_store
from rotelab.recsys.metrics import hr_ndcg, rank_of_positive
from rotelab.recsys.synth import SynthConfig, write_synthetic
from rotelab.recsys.train import TrainConfig, user_batch

# 3 items per topic, so (as in the bench) nearly every item occurs somewhere in a history: the
# signal is how *often* a candidate's topic occurs, and the old topics only occur far back
SIG = SynthConfig(n_users=64, n_items=120, n_clusters=40, min_len=600, max_len=700, p_signal=0.5, seed=5)
CFG = TrainConfig(d=16, heads=2, max_len=700, batch_size=16, lr=1e-2, n_neg=16, n_eval_neg=30)


@pytest.fixture(scope="module")
def sig_store(tmp_path_factory):
    d = tmp_path_factory.mktemp("sig")
    write_synthetic(d / "data", SIG)
    return build_store(d / "data", d / "store")


def _oracle_hr(store, users, window: int | None) -> float:
    """HR@10 of scoring a candidate by its count in the history (or its last ``window`` events)."""
    rng, hr = np.random.default_rng(0), []
    b = user_batch(store, users, CFG)
    for r in range(len(users)):
        h = b["hist"][r].numpy()
        h = h[h > 0][-(window or len(h)) :]
        cnt = np.bincount(h, minlength=store.n_items + 1) + 1e-3 * rng.random(store.n_items + 1)
        negs = rng.integers(1, store.n_items + 1, size=CFG.n_eval_neg)
        clicked = b["cand"][r].numpy()[b["labels"][r, :, 0].numpy() > 0]
        if len(clicked):
            hr.append(hr_ndcg(rank_of_positive(cnt[clicked], np.broadcast_to(cnt[negs], (len(clicked), len(negs)))), 10)[0].mean())
    return float(np.mean(hr))


def test_far_back_interests_need_the_whole_history(sig_store):
    users = np.arange(sig_store.n_users)
    full, recent = _oracle_hr(sig_store, users, None), _oracle_hr(sig_store, users, CFG.recent)
    assert full > 0.8 and full - recent > 0.2, (full, recent)

