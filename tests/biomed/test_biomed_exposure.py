"""Membership scores follow identifier exposure: on the synthetic arm at micro scale, a pair the base
model read more often in pretraining (more mentions, from its popularity) scores as more
member-like, and after fine-tuning the pairs it was tuned on score above the held-out ones."""

import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from rotelab.biomed import api
from rotelab.biomed.evaluate import EvalConfig, membership
from rotelab.biomed.finetune import FinetuneConfig
from rotelab.biomed.pretrain import PretrainConfig
from rotelab.biomed.task import TaskConfig, read_task
from rotelab.core.api import as_model


@pytest.fixture(scope="module")
def exposed(tmp_path_factory):
    d = tmp_path_factory.mktemp("exposure")
    api.build_task("synthetic", out=d / "task", config=TaskConfig(n_per_bin=120, n_bins=1, val_share=0.25, directions="forward"), progress=False)
    api.pretrain(d / "task", out=d / "base", config=PretrainConfig(n_layer=1, n_embd=64, n_head=4, n_positions=48, epochs=8, max_mentions=12),
                 progress=False)
    return d


def test_pairs_seen_more_in_pretraining_score_as_more_member_like(exposed):
    d = exposed
    task = read_task(d / "task")
    items = [it for it in task.items() if it.arm == "arbitrary"]  # random ids: nothing but exposure tells them apart
    lm = as_model(d / "base" / "model")
    scores = membership(task, items, {"tuned": lm, "base": lm}, EvalConfig(attacks="loss", encoder=False), progress=False)["loss"]
    m = json.loads((d / "base" / "pretrain.json").read_text())["mentions"]
    exposure = np.array([m[f"{it.arm}/{it.key}"] for it in items])
    assert (exposure == 0).sum() >= 10 and (exposure >= 6).sum() >= 10  # both ends of the exposure range are there
    r = spearmanr(scores, exposure)
    assert r.statistic > 0.3 and r.pvalue < 1e-3  # measured 0.44 (p 7e-7) at seed 0
    assert np.median(scores[exposure >= 6]) > np.median(scores[exposure == 0])


def test_pairs_seen_in_fine_tuning_score_above_held_out_ones(exposed):
    d = exposed
    api.finetune(d / "base", d / "task", out=d / "ft", config=FinetuneConfig(epochs=40, lr=3e-3, warmup_steps=10), progress=False)
    api.evaluate(d / "ft", d / "task", out=d / "ev", config=EvalConfig(k=1, encoder=False, attacks="loss"), progress=False)
    loss = json.loads((d / "ev" / "metrics.json").read_text())["membership"]["loss"]
    assert loss["auc_ci"][0] > 0.5  # train pairs (members) vs validation pairs, 95% bootstrap interval
