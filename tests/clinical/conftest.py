"""A micro synthetic MEDS cohort, a micro EHR model that memorized its canaries (16 copies of a
record seen 640 times, one copy 40 times), and one short audit of it, shared by the audit tests
(session-scoped; every test that needs them lives in test_clinical_audit.py, so that one worker
builds them)."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from rotelab.clinical.config import AuditConfig, synth_preset, train_preset

MICRO_SYNTH = synth_preset("tiny", n_patients=60, n_canaries=2, n_bait_heldout=4, n_rare=4, visits=(3, 4), events=(3, 4))
MICRO_TRAIN = train_preset("tiny", n_embd=48, epochs=40, context=64)
MICRO_AUDIT = AuditConfig(rungs=("random", "static", "5"), t1_rung="5", n_samples=8, new_tokens=12, n_perturb=6, probe_grid="small",
                          probe_fractions=(0.5,), embeddings="model")


@pytest.fixture(scope="session")
def micro_cohort(tmp_path_factory):
    from rotelab.clinical.api import synth

    return synth(out=tmp_path_factory.mktemp("clinical") / "cohort", config=MICRO_SYNTH, progress=False)["data"]


@pytest.fixture(scope="session")
def micro_model(micro_cohort, tmp_path_factory):
    from rotelab.clinical.api import train

    return train(micro_cohort, out=tmp_path_factory.mktemp("clinical") / "model", config=MICRO_TRAIN, progress=False)["model"]


@pytest.fixture(scope="session")
def micro_audit(micro_model, micro_cohort, tmp_path_factory):
    from rotelab.clinical.api import audit

    out = tmp_path_factory.mktemp("clinical") / "audit"
    return out, audit(micro_model, micro_cohort, out=out, config=MICRO_AUDIT, progress=False)


def planted_kind(cohort_dir, subject_ids) -> np.ndarray:
    """Each audited patient's planted role: canary1 / canary4 / canary16, heldbait (a bait code,
    never trained on), implied-train / implied-held_out (a profile-implied sensitive code), train, held_out."""
    t = pq.read_table(f"{cohort_dir}/truth/planted.parquet").to_pydict()
    row = {s: i for i, s in enumerate(t["subject_id"])}
    out = []
    for s in subject_ids:
        i = row[int(s)]
        if t["canary_group"][i] >= 0:
            out.append(f"canary{t['copies'][i]}")
        elif t["bait_code"][i]:
            out.append("heldbait")
        elif t["implied_code"][i]:
            out.append(f"implied-{t['split'][i]}")
        else:
            out.append(t["split"][i])
    return np.array(out)
