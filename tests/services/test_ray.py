"""Scoring fanned out over Ray workers: equal to local scoring, and a killed worker's batch re-run
without loss or duplication. Runs in the serial service stage of `make test` (a Ray head started
by .ci/services; $RAY_ADDRESS), or against a local Ray when run alone."""

import os
import signal

import numpy as np
import pytest

pytestmark = pytest.mark.service


@pytest.fixture(scope="module")
def ray_model(arch_dirs):
    from rotelab.core.models import LoadOptions

    lm = LoadOptions(workers=2, ray_address=os.environ.get("RAY_ADDRESS")).load(arch_dirs["gpt2"])
    yield lm
    lm.close()


TEXTS = [f"the quick fox number {i} jumps over the lazy dog and then it sleeps {'again ' * (i % 7)}" for i in range(96)]


def test_ray_scoring_equals_local(ray_model, gpt2_lm):
    from rotelab.core.signals import compute_signals

    a = compute_signals(ray_model, TEXTS, batch_size=8, progress=False)
    b = compute_signals(gpt2_lm, TEXTS, batch_size=8, progress=False)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.logp, y.logp, atol=1e-6)
        np.testing.assert_allclose(x.sigma, y.sigma, atol=1e-6)
    assert ray_model.cache_namespace == gpt2_lm.cache_namespace


def test_a_killed_worker_loses_and_duplicates_nothing(ray_model, gpt2_lm, tmp_path):
    from rotelab.core.cache import SignalCache
    from rotelab.core.signals import iter_signals

    from rotelab.core.signals import compute_signals

    cache = SignalCache(tmp_path / "cache")
    victim = ray_model.worker_pids()[0]
    texts = [f"{t} (copy {c})" for c in range(4) for t in TEXTS]
    seen: list[int] = []
    for i, _ in iter_signals(ray_model, texts, batch_size=4, cache=cache, progress=False):
        if not seen:  # the first result is in: both workers hold batches in flight
            os.kill(victim, signal.SIGKILL)
        seen.append(i)
    assert sorted(seen) == list(range(len(texts)))  # every text once: no loss, no duplicate
    assert ray_model.resubmitted >= 1 and victim not in ray_model.worker_pids()  # its batch ran again, on a restarted worker
    want = compute_signals(gpt2_lm, texts, progress=False)
    for t, w in zip(texts, want):
        np.testing.assert_allclose(cache.get(gpt2_lm, t).logp, w.logp, atol=1e-6)


def test_multi_pass_attacks_fan_out_and_equal_local(ray_model, gpt2_lm, tmp_path):
    """Variant / prefix passes (ReCaLL here) go to the workers as many batches at once."""
    import rotelab
    from rotelab.core.runs import read_parquet
    from rotelab.membership.passes import logp_many

    seqs = gpt2_lm.tokenize(TEXTS[:40])
    batches = [seqs[i : i + 8] for i in range(0, 40, 8)]
    got = dict(logp_many(ray_model, batches))
    for j, b in enumerate(batches):
        for x, y in zip(got[j], (gpt2_lm.forward_logp([s])[0] for s in b)):
            np.testing.assert_allclose(x, y, atol=1e-5)
    kw = dict(attacks="loss,recall", prefix_pool=TEXTS[80:86], cache=None, progress=False)
    rotelab.mia(ray_model, TEXTS[:20], TEXTS[40:60], out=tmp_path / "ray", **kw)
    rotelab.mia(gpt2_lm, TEXTS[:20], TEXTS[40:60], out=tmp_path / "local", **kw)
    a, b = read_parquet(tmp_path / "ray" / "scores.parquet"), read_parquet(tmp_path / "local" / "scores.parquet")
    np.testing.assert_allclose(np.asarray(a["recall"], float), np.asarray(b["recall"], float), atol=1e-5)
