"""REMIND: features per sample, out-of-fold classification, baselines on the same folds."""

from __future__ import annotations

import numpy as np
import pytest

from rotelab.core.data import Sample
from rotelab.core.models import load_model
from rotelab.core.runs import RunFolder, read_parquet
from rotelab.membership.remind.landscape import ProbeConfig
from rotelab.membership.remind.classify import STATES, _pipeline, assign_folds, cv_proba
from rotelab.membership.remind.suite import RemindConfig, run_remind

MICRO = RemindConfig(probe=ProbeConfig(ranks=(1, 4), rates=(0.3,), k=2), folds=3)


def _sets(splits, n=15):
    s = lambda rows: [Sample(r["id"], r["text"], r) for r in rows][:n]  # noqa: E731
    return {"retained": s([r for r in splits["retain"] if r["kind"] == "fact"]), "forgotten": s(splits["forget"]), "holdout": s(splits["holdout"])}


def test_cv_scores_each_sample_with_a_model_that_never_saw_it():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 10)
    X = rng.normal(size=(30, 3)) + y[:, None]
    fold = assign_folds(y, 5, 0)
    assert all(np.bincount(y[fold == f]).tolist() == [2, 2, 2] for f in range(5))
    P = cv_proba(X, y, fold, 1.0)
    f0 = fold == 0
    ref = _pipeline(1.0).fit(X[~f0], y[~f0]).predict_proba(X[f0])
    assert np.allclose(P[f0], ref)
    assert np.allclose(P.sum(1), 1)


def test_remind_on_the_trained_model_finds_the_forget_set(tiny_testbed, tiny_splits, tmp_path):
    """Before unlearning, 'forgotten' facts are trained: every method separates them from holdout."""
    sets = _sets(tiny_splits)
    para = {"forgotten": [Sample(r["id"], r["text"], r) for r in tiny_splits["paraphrases"] if r["split"] == "forget"][:10],
            "holdout": [Sample(r["id"], r["text"], r) for r in tiny_splits["paraphrases"] if r["split"] == "holdout"][:10]}
    run = RunFolder(tmp_path / "r", command="remind run", options={}, seed=0)
    m = run_remind(load_model(tiny_testbed), sets, run, config=MICRO, paraphrases=para, progress=False)
    assert m["remind"]["auc_forgotten_vs_holdout"] > 0.7
    assert set(m["baselines"]) == {"loss", "minkpp", "neighbourhood", "rouge_l"}
    assert m["baselines"]["loss"]["auc_forgotten_vs_holdout"] > 0.7
    assert m["remind"]["tpr_at_1pct_fpr_forgotten_vs_holdout"] is None and "100 needed" in m["remind"]["tpr_at_1pct_fpr_forgotten_vs_holdout_reason"]
    assert 0 <= m["remind"]["auc_3way_macro"] <= 1
    assert m["paraphrases"]["remind"]["n"] == {"retained": 0, "forgotten": 10, "holdout": 10}
    f = read_parquet(run.file("features.parquet"))
    assert len(f["id"]) == 45 and set(f["state"]) == set(STATES)
    assert np.allclose(f["p_retained"] + f["p_forgotten"] + f["p_holdout"], 1)
    assert {"loss", "dl_mean_j1_p0.1", "dl_mean_j4_p0.1", "dl_mean_j1_p0.3", "slope_rank", "ctx_dl"} <= set(f)
    for name in ("remind_landscape", "remind_roc"):
        assert run.file(f"figures/{name}.png").exists()
