"""Micro fixtures for recsys: a tiny synthetic log in KuaiRand format and its event store."""

from __future__ import annotations

import pytest

from rotelab.recsys.synth import SynthConfig

MICRO = SynthConfig(n_users=16, n_items=200, n_clusters=10, min_len=600, max_len=700, lifelong_lens=(2000,), seed=3)


@pytest.fixture(scope="session")
def micro_data(tmp_path_factory):
    from rotelab.recsys.synth import write_synthetic

    d = tmp_path_factory.mktemp("recsys_data")
    write_synthetic(d, MICRO)
    return d


@pytest.fixture(scope="session")
def micro_store(micro_data, tmp_path_factory):
    from rotelab.recsys.events import build_store

    return build_store(micro_data, tmp_path_factory.mktemp("recsys_store"))
