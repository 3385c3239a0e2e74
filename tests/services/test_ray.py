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
